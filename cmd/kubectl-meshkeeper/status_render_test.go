package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/revision"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/<name>.golden, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/kubectl-meshkeeper -run %s -update)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from %s (rerun with -update if the change is intended):\n%s", t.Name(), path, got)
	}
}

// TestGoldenFilesAreUsed fails on a golden file no test writes any more.
func TestGoldenFilesAreUsed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, c := range statusCases() {
		used[c.name] = true
		used[c.name+"-colour"] = true
	}
	for _, c := range checkInjectCases {
		used[c.name] = true
	}
	for _, name := range precheckGoldens {
		used[name] = true
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".golden")
		if !used[name] {
			t.Errorf("%s is written by no test: delete it", f)
		}
	}
}

var now = time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)

func ago(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-d)); return &t }

func condition(typ string, status metav1.ConditionStatus, reason, message string, age time.Duration) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: message, LastTransitionTime: *ago(age)}
}

func meshInstall(change func(*meshv1alpha1.MeshInstall)) *meshv1alpha1.MeshInstall {
	mi := &meshv1alpha1.MeshInstall{ObjectMeta: metav1.ObjectMeta{Name: "default", Generation: 3}}
	mi.Spec.Version = "1.31.4"
	mi.Spec.DataPlane.Rollout.Mode = meshv1alpha1.RolloutAutomatic
	mi.Status = meshv1alpha1.MeshInstallStatus{ObservedGeneration: 3, Version: "1.31.4", ActiveRevision: "1-31-4",
		Revisions: []meshv1alpha1.RevisionStatus{{Name: "1-31-4", Version: "1.31.4", Role: meshv1alpha1.RevisionActive, Weight: 100, Ready: true, Pods: 12, UpToDatePods: 12}},
		DataPlane: &meshv1alpha1.DataPlaneStatus{InjectedPods: 12, UpToDatePods: 12, Rollout: &meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.RolloutIdle}},
		Conditions: []metav1.Condition{
			condition(meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded, "revision 1-31-4 (Istio 1.31.4) is available", 2*time.Hour),
			condition(meshv1alpha1.ConditionReconciling, metav1.ConditionFalse, meshv1alpha1.ReasonReconcileSucceeded, "nothing to do", 2*time.Hour),
			condition(meshv1alpha1.ConditionStalled, metav1.ConditionFalse, meshv1alpha1.ReasonReconcileSucceeded, "nothing waits for a person", 2*time.Hour),
			condition(meshv1alpha1.ConditionUpgradeInProgress, metav1.ConditionFalse, meshv1alpha1.ReasonUpToDate, "no upgrade in progress", 2*time.Hour),
			condition(meshv1alpha1.ConditionDataPlaneUpToDate, metav1.ConditionTrue, meshv1alpha1.ReasonUpToDate, "all 12 injected pods run their revision's configuration", 90*time.Minute),
			condition(meshv1alpha1.ConditionPodSecurityCompatible, metav1.ConditionTrue, meshv1alpha1.ReasonPodSecurityMet, "namespace shop enforces baseline; injected pods pass it", 2*time.Hour),
		}}
	if change != nil {
		change(mi)
	}
	return mi
}

type statusCase struct {
	name string
	view statusView
}

// statusCases are the moments of an upgrade an SRE looks at.
func statusCases() []statusCase {
	steady := meshInstall(nil)
	canary := meshInstall(func(mi *meshv1alpha1.MeshInstall) {
		mi.Generation = 4
		mi.Spec.Version = "1.32.0"
		mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{Type: meshv1alpha1.UpdateStrategyCanary,
			Canary: &meshv1alpha1.CanaryStrategy{Steps: []int32{10, 50, 100}, StepInterval: &metav1.Duration{Duration: 2 * time.Minute}}}
		mi.Status.ObservedGeneration = 4
		mi.Status.Revisions = []meshv1alpha1.RevisionStatus{
			{Name: "1-31-4", Version: "1.31.4", Role: meshv1alpha1.RevisionActive, Weight: 50, Ready: true, Pods: 7, UpToDatePods: 7},
			{Name: "1-32-0", Version: "1.32.0", Role: meshv1alpha1.RevisionCanary, Weight: 50, Ready: true, Pods: 5, UpToDatePods: 5},
		}
		mi.Status.Canary = &meshv1alpha1.CanaryStatus{Revision: "1-32-0", Version: "1.32.0", Step: 1, Weight: 50, StepStartTime: ago(90 * time.Second), HealthySince: ago(40 * time.Second)}
		mi.Status.DataPlane = &meshv1alpha1.DataPlaneStatus{InjectedPods: 12, UpToDatePods: 11, OutdatedPods: 1, UnmanagedPods: 1,
			Rollout: &meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.RolloutRolling, Total: 6, Done: 3, InProgress: 1, Waiting: 2, Skipped: 2,
				Current: []string{"Deployment shop/cart"}, Pending: []string{"Deployment shop/web", "StatefulSet pay/ledger"},
				NeedsManualAction: []string{"Deployment shop/db (Recreate strategy: a restart stops every pod first; annotate mesh.meshkeeper.dev/restart=allow to allow it)", "Pod pay/debug"}}}
		mi.Status.Conditions = append(mi.Status.Conditions[:0],
			condition(meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded, "revision 1-31-4 (Istio 1.31.4) is available", 2*time.Hour),
			condition(meshv1alpha1.ConditionUpgradeInProgress, metav1.ConditionTrue, meshv1alpha1.ReasonCanaryInProgress, "canary 1-32-0 at 50% of workloads", 90*time.Second),
			condition(meshv1alpha1.ConditionReconciling, metav1.ConditionTrue, meshv1alpha1.ReasonCanaryInProgress, "canary 1-32-0 at 50% of workloads", 5*time.Minute),
			condition(meshv1alpha1.ConditionWorkloadRollout, metav1.ConditionTrue, meshv1alpha1.ReasonRestarting, "restarting Deployment shop/cart", 20*time.Second),
			condition(meshv1alpha1.ConditionDataPlaneUpToDate, metav1.ConditionFalse, meshv1alpha1.ReasonOutdatedPods, "1 pod runs an older proxy", 5*time.Minute),
		)
	})
	failed := meshInstall(func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.Version = "1.32.0"
		mi.Spec.DataPlane.Rollout.Mode = meshv1alpha1.RolloutAutomatic
		mi.Status.Revisions[0] = meshv1alpha1.RevisionStatus{Name: "default", Version: "1.31.4", ControlPlaneVersion: "1.32.0", Role: meshv1alpha1.RevisionActive, Weight: 100, Pods: 12, UpToDatePods: 4}
		mi.Status.ActiveRevision = "default"
		mi.Status.DataPlane = &meshv1alpha1.DataPlaneStatus{InjectedPods: 12, UpToDatePods: 4, OutdatedPods: 6, UninjectedPods: 2,
			Rollout: &meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.RolloutFailed, Total: 8, Done: 2, Waiting: 5, Failed: 1,
				LastError: "Deployment shop/cart did not finish its rollout within 10m0s: 0 of 2 replicas updated, 0 available"}}
		mi.Status.Conditions = append(mi.Status.Conditions[:0],
			condition(meshv1alpha1.ConditionReady, metav1.ConditionFalse, meshv1alpha1.ReasonControlPlaneNotAvailable, "istiod did not become available within 10m", 3*time.Minute),
			condition(meshv1alpha1.ConditionStalled, metav1.ConditionTrue, meshv1alpha1.ReasonControlPlaneNotAvailable, "istiod did not become available within 10m: 0 of 1 replicas updated, 0 available", 3*time.Minute),
		)
	})
	migrating := meshInstall(func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.Migration = &meshv1alpha1.MigrationSpec{Revision: "default", Namespace: "istio-system", ForeignControlPlane: meshv1alpha1.ForeignControlPlaneRemove}
		mi.Status.Revisions[0].Pods, mi.Status.Revisions[0].UpToDatePods = 5, 5
		mi.Status.DataPlane.InjectedPods, mi.Status.DataPlane.UpToDatePods = 5, 5
		mi.Status.Migration = &meshv1alpha1.MigrationStatus{Revision: "default", Namespace: "istio-system", Phase: meshv1alpha1.MigrationMoving,
			Weight: 50, MigratedWorkloads: 5, ForeignPods: 7, NarrowedWebhookConfigurations: []string{"istio-revision-tag-prod", "istio-sidecar-injector"},
			StepStartTime: ago(40 * time.Second), Message: "at 50%: waiting for Deployment shop/cart (rolling out)"}
		meta.SetStatusCondition(&mi.Status.Conditions, condition(meshv1alpha1.ConditionUpgradeInProgress, metav1.ConditionTrue, meshv1alpha1.ReasonMigrating,
			"migration off the foreign revision default (Moving, 50%): at 50%: waiting for Deployment shop/cart (rolling out)", 40*time.Second))
	})
	return []statusCase{
		{"status-migrating", statusView{MI: migrating, Istiods: map[string]replicas{"1-31-4": {2, 2}}, Now: now}},
		{"status-up-to-date", statusView{MI: steady, Istiods: map[string]replicas{"1-31-4": {2, 2}}, Now: now}},
		{"status-canary", statusView{MI: canary, Istiods: map[string]replicas{"1-31-4": {2, 2}, "1-32-0": {1, 2}}, Now: now}},
		{"status-canary-namespace", statusView{MI: canary, Istiods: map[string]replicas{"1-31-4": {2, 2}, "1-32-0": {2, 2}},
			Namespace: &namespacePods{Name: "shop", ByRevision: map[string]int32{"1-31-4": 3, "1-32-0": 2}, WithoutSidecar: 1}, Now: now}},
		{"status-stalled", statusView{MI: failed, Now: now}},
		{"status-not-judged", statusView{MI: meshInstall(func(mi *meshv1alpha1.MeshInstall) { mi.Generation = 4 }), Now: now}},
	}
}

// TestStatusGolden renders the status at the moments of an upgrade, as
// plain text (what a pipe or a file gets) and with colour (a terminal).
func TestStatusGolden(t *testing.T) {
	for _, c := range statusCases() {
		t.Run(c.name, func(t *testing.T) {
			plain := renderStatus(c.view, false)
			if strings.Contains(plain, "\x1b") {
				t.Errorf("plain text carries terminal escapes:\n%q", plain)
			}
			golden(t, c.name, plain)
			coloured := renderStatus(c.view, true)
			if stripEscapes(coloured) != plain {
				t.Errorf("with colour the text differs from the plain text:\n%s", coloured)
			}
			golden(t, c.name+"-colour", coloured)
		})
	}
}

func stripEscapes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b {
			for i < len(s) && s[i] != 'm' {
				i++
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestBarWidths(t *testing.T) {
	for _, c := range []struct {
		counts, want []int
	}{
		{[]int{0, 0, 0, 0}, []int{40, 0, 0, 0}},
		{[]int{3, 1, 2, 0}, []int{21, 6, 13, 0}},
		{[]int{99, 1, 0, 0}, []int{39, 1, 0, 0}},
		{[]int{1, 0, 0, 1}, []int{20, 0, 0, 20}},
	} {
		got := barWidths(c.counts, 40)
		sum := 0
		for _, w := range got {
			sum += w
		}
		if sum != 40 || !slicesEqual(got, c.want) {
			t.Errorf("barWidths(%v) = %v, want %v", c.counts, got, c.want)
		}
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestTagTargetDuringACanary: a tag sends a workload to the canary exactly
// when revision.Routing does, and the answer says which side of the weight
// its hash fell.
func TestTagTargetDuringACanary(t *testing.T) {
	r := &revision.Routing{Active: "1-31-4", Canary: "1-32-0", Weight: 50, Tags: []string{"default"}}
	for _, name := range []string{"web", "cart", "db", "api", "ledger", "search"} {
		w := inject.Workload{Kind: "Deployment", Namespace: "shop", Name: name}
		rev, why := tagTarget(r, "default", w, true)
		if want := r.Target("shop", name); rev != want {
			t.Errorf("%s: %s, routing says %s", name, rev, want)
		}
		side := "at or above"
		if rev == r.Canary {
			side = "under"
		}
		if want := fmt.Sprintf("hashes to %d, %s the weight", revision.Bucket("shop", name), side); !strings.Contains(why, want) {
			t.Errorf("%s: %q does not say %q", name, why, want)
		}
	}
	if rev, _ := tagTarget(r, "default", inject.Workload{}, false); rev != "1-31-4 or 1-32-0" {
		t.Errorf("a pod to be created, of no known workload: %q", rev)
	}
}
