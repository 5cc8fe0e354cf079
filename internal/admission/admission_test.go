package admission

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type miOpt func(*meshv1alpha1.MeshInstall)

func meshInstall(v string, opts ...miOpt) *meshv1alpha1.MeshInstall {
	mi := &meshv1alpha1.MeshInstall{Spec: meshv1alpha1.MeshInstallSpec{
		Version: v, UpdateStrategy: meshv1alpha1.UpdateStrategy{Type: meshv1alpha1.UpdateStrategyInPlace},
	}}
	for _, o := range opts {
		o(mi)
	}
	return mi
}

func canary(steps ...int32) miOpt {
	return func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.UpdateStrategy.Type = meshv1alpha1.UpdateStrategyCanary
		mi.Spec.UpdateStrategy.Canary = &meshv1alpha1.CanaryStrategy{Steps: steps, StepInterval: &metav1.Duration{Duration: time.Minute}}
	}
}

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
			err := ValidateCreate(tc.mi, tc.others, Namespaces{})
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
			_, err := ValidateUpdate(tc.old, tc.new, Namespaces{})
			if tc.wantErr == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// withOverlay adds an overlay patching target with a strategic merge patch.
func withOverlay(kind, name, patch string) miOpt {
	return func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.Overlays = append(mi.Spec.Overlays, meshv1alpha1.Overlay{
			Target:         meshv1alpha1.OverlayTarget{Kind: kind, Name: name},
			StrategicMerge: &runtime.RawExtension{Raw: []byte(patch)},
		})
	}
}

func TestValidateOverlays(t *testing.T) {
	annotate := `{"metadata": {"annotations": {"example.com/a": "b"}}}`
	if err := ValidateCreate(meshInstall("1.32.0", withOverlay("Deployment", "istiod", annotate)), nil, Namespaces{}); err != nil {
		t.Errorf("an overlay on istiod was refused: %v", err)
	}
	// Installed as a canary revision from the start: istiod-1-32-0 is still "istiod".
	if err := ValidateCreate(meshInstall("1.32.0", canary(50, 100), withOverlay("Deployment", "istiod", annotate)), nil, Namespaces{}); err != nil {
		t.Errorf("an overlay on istiod of a canary-strategy install was refused: %v", err)
	}
	err := ValidateCreate(meshInstall("1.32.0", withOverlay("Deployment", "istiod", annotate), withOverlay("Deployment", "pilot", annotate)), nil, Namespaces{})
	if err == nil || !strings.Contains(err.Error(), `spec.overlays[1]: Invalid value: "Deployment pilot": matches no object`) {
		t.Errorf("got %v, want spec.overlays[1] refused for matching nothing", err)
	}
	err = ValidateCreate(meshInstall("1.32.0", withOverlay("Deployment", "istiod", `{"metadata": {"labels": {"istio.io/rev": "other"}}}`)), nil, Namespaces{})
	if err == nil || !strings.Contains(err.Error(), "spec.overlays[0]") || !strings.Contains(err.Error(), "Deployment istio-system/istiod") ||
		!strings.Contains(err.Error(), "metadata.labels[istio.io/rev]") {
		t.Errorf("got %v, want spec.overlays[0] refused for changing istiod's istio.io/rev", err)
	}

	// During a canary an overlay is judged against both revisions.
	old := meshInstall("1.32.0", running("default", "1.31.4"), canary(10, 100), canaryAt("1-32-0", 0, 10, t0))
	updated := old.DeepCopy()
	withOverlay("ConfigMap", "istio", `{"data": {"extra": "x"}}`)(updated)
	if _, err := ValidateUpdate(old, updated, Namespaces{}); err != nil {
		t.Errorf("an overlay on the mesh ConfigMap during a canary was refused: %v", err)
	}
	pinned := updated.DeepCopy()
	withOverlay("Deployment", "istiod", `{"metadata": {"name": "pilot"}}`)(pinned)
	pinned.Spec.Overlays[1].Target.Revision = "1-32-0"
	if _, err := ValidateUpdate(old, pinned, Namespaces{}); err == nil || !strings.Contains(err.Error(), "Deployment istio-system/istiod-1-32-0") {
		t.Errorf("got %v, want the overlay refused on the canary's istiod-1-32-0", err)
	}
	withOverlay("Deployment", "istiod", `{"spec": {"replicas": "two"}}`)(updated)
	if _, err := ValidateUpdate(old, updated, Namespaces{}); err == nil || !strings.Contains(err.Error(), "spec.overlays[1]") || !strings.Contains(err.Error(), "not a valid Deployment") {
		t.Errorf("got %v, want spec.overlays[1] refused", err)
	}
}

// The namespace rule is checked on create and update when the operator was
// given its mesh namespaces, and left to the reconciler otherwise.
func TestNamespaces(t *testing.T) {
	managed := Namespaces{Mesh: []string{"istio-system"}, Operator: "meshkeeper-system"}
	inShop := meshInstall("1.32.0", func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Namespace = "shop" })
	if err := ValidateCreate(inShop, nil, managed); err == nil || !strings.Contains(err.Error(), "spec.namespace: namespace shop") {
		t.Errorf("create in an unmanaged namespace: got %v, want spec.namespace refused", err)
	}
	if err := ValidateCreate(inShop, nil, Namespaces{}); err != nil {
		t.Errorf("create without --mesh-namespaces: refused: %v", err)
	}
	old := meshInstall("1.32.0", func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Namespace = "istio-system" })
	if _, err := ValidateUpdate(old, inShop, managed); err == nil || !strings.Contains(err.Error(), "spec.namespace: namespace shop") {
		t.Errorf("update to an unmanaged namespace: got %v, want spec.namespace refused", err)
	}
	if err := ValidateCreate(old, nil, managed); err != nil {
		t.Errorf("create in a managed namespace: refused: %v", err)
	}
}

// An accepted upgrade to a minor that changes istiod's defaults warns of each
// default the user has not pinned in spec.pilot.env.
func TestUpgradeWarnings(t *testing.T) {
	from, to := meshInstall("1.30.8", running("default", "1.30.8")), meshInstall("1.31.4", running("default", "1.30.8"))
	warnings, err := ValidateUpdate(from, to, Namespaces{})
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "upgrading from Istio 1.30 to 1.31 changes istiod defaults; to keep 1.30's behaviour set in spec.pilot.env: ") {
		t.Fatalf("warnings = %q, want one naming the defaults 1.31 changes", warnings)
	}
	pinned := to.DeepCopy()
	pinned.Spec.Pilot.Env = map[string]string{}
	for _, kv := range strings.Split(strings.TrimPrefix(warnings[0], "upgrading from Istio 1.30 to 1.31 changes istiod defaults; to keep 1.30's behaviour set in spec.pilot.env: "), ", ") {
		name, value, _ := strings.Cut(kv, "=")
		pinned.Spec.Pilot.Env[name] = value
	}
	if warnings, err := ValidateUpdate(from, pinned, Namespaces{}); err != nil || len(warnings) != 0 {
		t.Errorf("with every default pinned: warnings %q, error %v; want neither", warnings, err)
	}
}
