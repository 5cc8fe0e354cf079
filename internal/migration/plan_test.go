package migration

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/rollout"
)

var t0 = time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)

func deployment(ns, name string) rollout.Key {
	return rollout.Key{Kind: rollout.Deployment, Namespace: ns, Name: name}
}

// workloads returns n workloads on the foreign revision, and the first
// one the given weight assigns to meshkeeper's revision, and one it does not.
func workloads(n int) []Workload {
	var ws []Workload
	for i := range n {
		ws = append(ws, Workload{Key: deployment("shop", "app-"+string(rune('a'+i))), ForeignPods: 1, RolledOut: true})
	}
	return ws
}

func input(mutate func(*Input)) Input {
	in := Input{
		Now:   t0,
		Spec:  &meshv1alpha1.MigrationSpec{Revision: "default", Namespace: "istio-system", ForeignControlPlane: meshv1alpha1.ForeignControlPlaneRemove},
		Steps: []int32{10, 50, 100}, StepInterval: time.Minute, Grace: 30 * time.Second, Automatic: true,
		Injectors:     map[string]bool{"istio-sidecar-injector": true, "istio-revision-tag-prod": true},
		ReadyToInject: true,
		Workloads:     workloads(20),
		ForeignPods:   20,
	}
	if mutate != nil {
		mutate(&in)
	}
	return in
}

func previous(phase meshv1alpha1.MigrationPhase, weight int32, started time.Time) *meshv1alpha1.MigrationStatus {
	s := metav1.NewTime(started)
	return &meshv1alpha1.MigrationStatus{Revision: "default", Namespace: "istio-system", Phase: phase, Weight: weight, StepStartTime: &s}
}

func TestDecide(t *testing.T) {
	onCanary := func(in Input, w int32) int {
		n := 0
		for _, wl := range in.Workloads {
			if revision.OnCanary(wl.Namespace, wl.Name, w) {
				n++
			}
		}
		return n
	}
	for _, tc := range []struct {
		name   string
		in     Input
		check  func(t *testing.T, in Input, p Plan)
		phase  meshv1alpha1.MigrationPhase
		weight int32
		says   string
	}{
		{name: "the foreign injector is narrowed first, nothing moves in that pass",
			in: input(func(in *Input) { in.Injectors["istio-sidecar-injector"] = false }), phase: meshv1alpha1.MigrationHandingOver, says: "narrowing",
			check: func(t *testing.T, _ Input, p Plan) {
				if len(p.Narrow) != 1 || p.Narrow[0] != "istio-sidecar-injector" || len(p.Label) != 0 {
					t.Errorf("narrow %v, label %v", p.Narrow, p.Label)
				}
			}},
		{name: "no template is labelled before meshkeeper's injector selects migrated pods",
			in: input(func(in *Input) { in.ReadyToInject = false }), phase: meshv1alpha1.MigrationHandingOver, says: "waiting for meshkeeper's revision",
			check: func(t *testing.T, _ Input, p Plan) {
				if len(p.Label) != 0 {
					t.Errorf("labelled %v", p.Label)
				}
			}},
		{name: "the first step labels the workloads it assigns to meshkeeper's revision",
			in: input(nil), phase: meshv1alpha1.MigrationMoving, weight: 10, says: "at 10%",
			check: func(t *testing.T, in Input, p Plan) {
				if len(p.Label) != onCanary(in, 10) || len(p.Label) == len(in.Workloads) {
					t.Errorf("labelled %d, want %d of %d", len(p.Label), onCanary(in, 10), len(in.Workloads))
				}
				for _, k := range p.Label {
					if !revision.OnCanary(k.Namespace, k.Name, 10) {
						t.Errorf("%s labelled, not assigned at 10%%", k)
					}
				}
			}},
		{name: "Manual rollouts: listed, not labelled",
			in: input(func(in *Input) { in.Automatic = false }), phase: meshv1alpha1.MigrationMoving, weight: 10, says: "spec.dataPlane.rollout.mode is Manual",
			check: func(t *testing.T, _ Input, p Plan) {
				if len(p.Label) != 0 {
					t.Errorf("labelled %v", p.Label)
				}
			}},
		{name: "a step waits for its workloads to roll out",
			in: input(func(in *Input) {
				in.Previous = previous(meshv1alpha1.MigrationMoving, 10, t0.Add(-time.Hour))
				for i, w := range in.Workloads {
					if revision.OnCanary(w.Namespace, w.Name, 10) {
						in.Workloads[i].Migrated, in.Workloads[i].RolledOut = true, false
					}
				}
			}), phase: meshv1alpha1.MigrationMoving, weight: 10, says: "(rolling out)"},
		{name: "a step lasts its interval",
			in: input(func(in *Input) {
				in.Previous = previous(meshv1alpha1.MigrationMoving, 10, t0.Add(-10*time.Second))
				migrate(in, 10)
			}), phase: meshv1alpha1.MigrationMoving, weight: 10, says: "next step once"},
		{name: "then the next step",
			in: input(func(in *Input) {
				in.Previous = previous(meshv1alpha1.MigrationMoving, 10, t0.Add(-2*time.Minute))
				migrate(in, 10)
			}), phase: meshv1alpha1.MigrationMoving, weight: 50, says: "moved to 50%"},
		{name: "paused holds the step",
			in: input(func(in *Input) {
				in.Previous = previous(meshv1alpha1.MigrationMoving, 10, t0.Add(-2*time.Minute))
				in.Paused = true
				migrate(in, 10)
			}), phase: meshv1alpha1.MigrationMoving, weight: 10, says: "paused"},
		{name: "at 100% a Job's pod on the foreign revision holds completion",
			in: input(func(in *Input) {
				in.Previous = previous(meshv1alpha1.MigrationMoving, 100, t0.Add(-2*time.Minute))
				migrate(in, 100)
				in.ForeignPods = 1
			}), phase: meshv1alpha1.MigrationMoving, weight: 100, says: "1 running pod(s) still injected"},
		{name: "unused: the grace period starts",
			in: input(func(in *Input) {
				in.Previous = previous(meshv1alpha1.MigrationMoving, 100, t0.Add(-2*time.Minute))
				migrate(in, 100)
			}), phase: meshv1alpha1.MigrationMoving, weight: 100, says: "complete after 30s",
			check: func(t *testing.T, _ Input, p Plan) {
				if p.RemoveForeign || p.Status.ForeignUnusedSince == nil {
					t.Errorf("remove %v, unused since %v", p.RemoveForeign, p.Status.ForeignUnusedSince)
				}
			}},
		{name: "complete with Remove: removed once",
			in: input(func(in *Input) {
				in.Previous = previous(meshv1alpha1.MigrationMoving, 100, t0.Add(-2*time.Minute))
				since := metav1.NewTime(t0.Add(-time.Minute))
				in.Previous.ForeignUnusedSince = &since
				migrate(in, 100)
			}), phase: meshv1alpha1.MigrationComplete, weight: 100, says: "were removed",
			check: func(t *testing.T, in Input, p Plan) {
				if !p.RemoveForeign {
					t.Error("not removed")
				}
				in.Previous = &p.Status
				if again := Decide(in); again.RemoveForeign || again.Status.Phase != meshv1alpha1.MigrationComplete {
					t.Errorf("the pass after completion: remove %v, phase %s", again.RemoveForeign, again.Status.Phase)
				}
				// Kept: a workload that appears on the foreign revision later moves too.
				in.Workloads = append(in.Workloads, Workload{Key: deployment("shop", "late"), ForeignPods: 1, RolledOut: true})
				if again := Decide(in); len(again.Label) != 1 || again.Label[0].Name != "late" || again.Status.Phase != meshv1alpha1.MigrationComplete {
					t.Errorf("a late workload after completion: label %v, phase %s", again.Label, again.Status.Phase)
				}
			}},
		{name: "complete with Keep: kept, and the status says what to run",
			in: input(func(in *Input) {
				in.Spec.ForeignControlPlane = meshv1alpha1.ForeignControlPlaneKeep
				in.Previous = previous(meshv1alpha1.MigrationMoving, 100, t0.Add(-2*time.Minute))
				since := metav1.NewTime(t0.Add(-time.Minute))
				in.Previous.ForeignUnusedSince = &since
				migrate(in, 100)
			}), phase: meshv1alpha1.MigrationComplete, weight: 100, says: "istioctl uninstall --revision default",
			check: func(t *testing.T, _ Input, p Plan) {
				if p.RemoveForeign {
					t.Error("removed what was to be kept")
				}
			}},
		{name: "abort: migrated workloads return first, the injector is not restored yet",
			in: input(func(in *Input) {
				in.Previous = previous(meshv1alpha1.MigrationMoving, 50, t0)
				in.Spec = nil
				migrate(in, 50)
			}), phase: meshv1alpha1.MigrationAborting, weight: 0, says: "(returning)",
			check: func(t *testing.T, in Input, p Plan) {
				if len(p.Unlabel) != onCanary(in, 50) || len(p.Restore) != 0 {
					t.Errorf("unlabel %d (want %d), restore %v", len(p.Unlabel), onCanary(in, 50), p.Restore)
				}
			}},
		{name: "abort: the injector is restored once no pod of meshkeeper's is left",
			in: input(func(in *Input) {
				in.Previous = previous(meshv1alpha1.MigrationAborting, 0, t0)
				in.Spec = nil
			}), phase: meshv1alpha1.MigrationAborted, says: "restored as it was",
			check: func(t *testing.T, _ Input, p Plan) {
				if len(p.Restore) != 2 {
					t.Errorf("restore %v", p.Restore)
				}
			}},
		{name: "abort: a returned workload still rolling holds the restore",
			in: input(func(in *Input) {
				in.Spec = nil
				in.Workloads[0].MigratedPods = 1
			}), phase: meshv1alpha1.MigrationAborting, says: "(rolling out)",
			check: func(t *testing.T, _ Input, p Plan) {
				if len(p.Restore) != 0 {
					t.Errorf("restored under a pod of meshkeeper's: %v", p.Restore)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Decide(tc.in)
			if p.Status.Phase != tc.phase || p.Status.Weight != tc.weight {
				t.Errorf("phase %s at %d%%, want %s at %d%% (%s)", p.Status.Phase, p.Status.Weight, tc.phase, tc.weight, p.Status.Message)
			}
			if !strings.Contains(p.Status.Message, tc.says) {
				t.Errorf("message %q does not say %q", p.Status.Message, tc.says)
			}
			if tc.check != nil {
				tc.check(t, tc.in, p)
			}
		})
	}
}

// migrate marks the workloads weight assigns to meshkeeper's revision as moved.
func migrate(in *Input, weight int32) {
	in.ForeignPods = 0
	for i, w := range in.Workloads {
		if revision.OnCanary(w.Namespace, w.Name, weight) {
			in.Workloads[i].Migrated, in.Workloads[i].ForeignPods, in.Workloads[i].MigratedPods = true, 0, 1
		} else {
			in.ForeignPods += w.ForeignPods
		}
	}
}

func TestActive(t *testing.T) {
	if Active(Input{Injectors: map[string]bool{"istio-sidecar-injector": false}}) {
		t.Error("an untouched foreign install is no migration")
	}
	if !Active(Input{Injectors: map[string]bool{"istio-sidecar-injector": true}}) {
		t.Error("a narrowed injector without spec.migration is an abort to finish")
	}
	if !Active(Input{Workloads: []Workload{{Migrated: true}}}) {
		t.Error("a migrated workload without spec.migration is an abort to finish")
	}
}
