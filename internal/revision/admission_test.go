package revision

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

func TestValidateCreate(t *testing.T) {
	other := meshv1alpha1.MeshInstall{ObjectMeta: metav1.ObjectMeta{Name: "first"}}
	deleting := meshv1alpha1.MeshInstall{ObjectMeta: metav1.ObjectMeta{Name: "old", DeletionTimestamp: &metav1.Time{Time: t0}}}
	cases := []struct {
		name    string
		mi      *meshv1alpha1.MeshInstall
		others  []meshv1alpha1.MeshInstall
		wantErr string
	}{
		{name: "supported version", mi: meshInstall("1.32.0")},
		{name: "unsupported version", mi: meshInstall("1.33.0"), wantErr: `spec.version: Invalid value: "1.33.0": Istio version 1.33.0 is not supported; supported versions: 1.32.0, 1.31.0-1.31.4, 1.30.0-1.30.8`},
		{name: "second MeshInstall", mi: meshInstall("1.32.0"), others: []meshv1alpha1.MeshInstall{other}, wantErr: "MeshInstall first already manages the mesh"},
		{name: "a MeshInstall being deleted does not count", mi: meshInstall("1.32.0"), others: []meshv1alpha1.MeshInstall{deleting}},
		{name: "tag that looks like a revision", mi: meshInstall("1.32.0", func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.RevisionTags = []string{"prod", "1-31-4"}
		}), wantErr: "spec.revisionTags[1]"},
		{name: "control plane in kube-system", mi: meshInstall("1.32.0", func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Namespace = "kube-system"
		}), wantErr: "spec.namespace: kube-system is reserved"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateCreate(tc.mi, tc.others)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// running says status reports an active revision available at v.
func running(rev, v string) miOpt {
	return func(mi *meshv1alpha1.MeshInstall) {
		mi.Status.ActiveRevision = rev
		mi.Status.Version = v
		mi.Status.Revisions = append(mi.Status.Revisions, meshv1alpha1.RevisionStatus{Name: rev, Version: v, Role: meshv1alpha1.RevisionActive, Ready: true})
	}
}

// canaryAt says status reports a canary at a step.
func canaryAt(rev string, step, weight int32, since time.Time) miOpt {
	return func(mi *meshv1alpha1.MeshInstall) {
		s := metav1.NewTime(since)
		mi.Status.Canary = &meshv1alpha1.CanaryStatus{Revision: rev, Version: strings.ReplaceAll(rev, "-", "."), Step: step, Weight: weight, StepStartTime: &s}
	}
}

func TestValidateUpdate(t *testing.T) {
	installed := func(v string, opts ...miOpt) *meshv1alpha1.MeshInstall {
		return meshInstall(v, append([]miOpt{running("default", v)}, opts...)...)
	}
	withVersion := func(mi *meshv1alpha1.MeshInstall, v string) *meshv1alpha1.MeshInstall {
		u := mi.DeepCopy()
		u.Spec.Version = v
		return u
	}
	cases := []struct {
		name     string
		old, new *meshv1alpha1.MeshInstall
		wantErr  string
	}{
		{name: "patch upgrade in place", old: installed("1.31.0"), new: withVersion(installed("1.31.0"), "1.31.4")},
		{name: "minor upgrade in place", old: installed("1.31.4"), new: withVersion(installed("1.31.4"), "1.32.0")},
		{name: "two minors in place", old: installed("1.30.8"), new: withVersion(installed("1.30.8"), "1.32.0"), wantErr: "skips more than 1 minor version"},
		{name: "downgrade in place", old: installed("1.31.4"), new: withVersion(installed("1.31.4"), "1.31.0"), wantErr: "in-place downgrade from 1.31.4 to 1.31.0 is not allowed"},
		{name: "two minors as a canary", old: installed("1.30.8", canary(10, 100)), new: withVersion(installed("1.30.8", canary(10, 100)), "1.32.0")},
		{name: "unsupported version", old: installed("1.31.4"), new: withVersion(installed("1.31.4"), "1.40.0"), wantErr: "not supported"},
		{name: "metadata-only update of an invalid spec is allowed", old: installed("1.29.0"), new: installed("1.29.0")},
		{
			name:    "switching to InPlace during a canary",
			old:     installed("1.31.4", canary(10, 100), canaryAt("1-32-0", 0, 10, t0)),
			new:     func() *meshv1alpha1.MeshInstall { mi := withVersion(installed("1.31.4"), "1.32.0"); return mi }(),
			wantErr: "a canary to 1.32.0 is in progress",
		},
		{
			name: "aborting a canary by setting the version back",
			old:  withVersion(installed("1.31.4", canary(10, 100), canaryAt("1-32-0", 0, 10, t0)), "1.32.0"),
			new:  installed("1.31.4", canary(10, 100), canaryAt("1-32-0", 0, 10, t0)),
		},
		{
			name: "pausing a canary",
			old:  withVersion(installed("1.31.4", canary(10, 100), canaryAt("1-32-0", 0, 10, t0)), "1.32.0"),
			new: func() *meshv1alpha1.MeshInstall {
				mi := withVersion(installed("1.31.4", canary(10, 100), canaryAt("1-32-0", 0, 10, t0)), "1.32.0")
				mi.Spec.UpdateStrategy.Canary.Paused = true
				mi.Spec.UpdateStrategy.Canary.StepInterval = &metav1.Duration{Duration: time.Hour}
				return mi
			}(),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateUpdate(tc.old, tc.new)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
