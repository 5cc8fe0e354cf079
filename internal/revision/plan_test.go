package revision

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

func paused(mi *meshv1alpha1.MeshInstall) { mi.Spec.UpdateStrategy.Canary.Paused = true }

// running says the status records an active revision at a rolled-out version.
func running(rev, v string) miOpt {
	return func(mi *meshv1alpha1.MeshInstall) {
		mi.Status.ActiveRevision = rev
		mi.Status.Version = v
		mi.Status.Revisions = append(mi.Status.Revisions, meshv1alpha1.RevisionStatus{Name: rev, Version: v, Role: meshv1alpha1.RevisionActive})
	}
}

func withRevision(rev, v string, role meshv1alpha1.RevisionRole, lastUsed time.Time) miOpt {
	return func(mi *meshv1alpha1.MeshInstall) {
		lu := metav1.NewTime(lastUsed)
		mi.Status.Revisions = append(mi.Status.Revisions, meshv1alpha1.RevisionStatus{Name: rev, Version: v, Role: role, LastUsedTime: &lu})
	}
}

func canaryAt(rev string, step, weight int32, since time.Time) miOpt {
	return func(mi *meshv1alpha1.MeshInstall) {
		s := metav1.NewTime(since)
		v := strings.ReplaceAll(rev, "-", ".")
		mi.Status.Canary = &meshv1alpha1.CanaryStatus{Revision: rev, Version: v, Step: step, Weight: weight, StepStartTime: &s}
	}
}

type rev = ObservedRevision

func observed(now time.Time, revs map[string]rev) Observed {
	return Observed{Now: now, Revisions: revs, InventoryKnown: true}
}

func names(ps []Planned) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name+"="+p.Version.String()+"/"+string(p.Role))
	}
	return out
}

func TestDecide(t *testing.T) {
	ready := func(v string) rev { return rev{Version: v, Ready: true, PodsReady: true} }
	cases := []struct {
		name        string
		mi          *meshv1alpha1.MeshInstall
		obs         Observed
		wantPhase   Phase
		wantRevs    []string
		wantCanary  string // "rev@weight" or ""
		wantPrune   []string
		wantRefusal string // reason
	}{
		{
			name: "fresh in-place install uses the default revision",
			mi:   meshInstall("1.31.4"), obs: observed(t0, nil),
			wantPhase: PhaseInstalling, wantRevs: []string{"default=1.31.4/Active"},
		},
		{
			name: "fresh canary-strategy install names the revision by version",
			mi:   meshInstall("1.31.4", canary(10, 100)), obs: observed(t0, nil),
			wantPhase: PhaseInstalling, wantRevs: []string{"1-31-4=1.31.4/Active"},
		},
		{
			name: "steady when rolled out",
			mi:   meshInstall("1.31.4", running("default", "1.31.4")), obs: observed(t0, map[string]rev{"default": ready("1.31.4")}),
			wantPhase: PhaseSteady, wantRevs: []string{"default=1.31.4/Active"},
		},
		{
			name: "in-place minor upgrade",
			mi:   meshInstall("1.32.0", running("default", "1.31.4")), obs: observed(t0, map[string]rev{"default": ready("1.31.4")}),
			wantPhase: PhaseUpgradingInPlace, wantRevs: []string{"default=1.32.0/Active"},
		},
		{
			name: "in-place upgrade waits for the rollout",
			mi: meshInstall("1.32.0", running("default", "1.31.4"), func(mi *meshv1alpha1.MeshInstall) {
				mi.Status.Revisions[0].Version = "1.32.0"
			}),
			obs:       observed(t0, map[string]rev{"default": {Version: "1.32.0", Ready: false}}),
			wantPhase: PhaseUpgradingInPlace, wantRevs: []string{"default=1.32.0/Active"},
		},
		{
			name: "in-place two-minor jump refused",
			mi:   meshInstall("1.32.0", running("default", "1.30.8")), obs: observed(t0, nil),
			wantRefusal: meshv1alpha1.ReasonVersionSkewTooLarge,
		},
		{
			name: "second bump during an unfinished rollout cannot skip a minor",
			mi: meshInstall("1.32.0", running("default", "1.30.8"), func(mi *meshv1alpha1.MeshInstall) {
				mi.Status.Revisions[0].Version = "1.31.4" // set, not yet rolled out
			}),
			obs:         observed(t0, nil),
			wantRefusal: meshv1alpha1.ReasonVersionSkewTooLarge,
		},
		{
			name: "in-place downgrade refused",
			mi:   meshInstall("1.31.0", running("default", "1.31.4")), obs: observed(t0, nil),
			wantRefusal: meshv1alpha1.ReasonDowngradeNotAllowed,
		},
		{
			name: "unsupported version refused",
			mi:   meshInstall("1.29.0"), obs: observed(t0, nil),
			wantRefusal: meshv1alpha1.ReasonUnsupportedVersion,
		},
		{
			name:      "canary starts at the first step",
			mi:        meshInstall("1.32.0", canary(10, 50, 100), running("default", "1.31.4")),
			obs:       observed(t0, map[string]rev{"default": ready("1.31.4")}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@10",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name:      "canary two minors apart is allowed",
			mi:        meshInstall("1.32.0", canary(10, 100), running("default", "1.30.8")),
			obs:       observed(t0, map[string]rev{"default": ready("1.30.8")}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@10",
			wantRevs: []string{"default=1.30.8/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "canary holds its step until the interval passes",
			mi: meshInstall("1.32.0", canary(10, 50, 100), running("default", "1.31.4"),
				withRevision("1-32-0", "1.32.0", meshv1alpha1.RevisionCanary, t0), canaryAt("1-32-0", 0, 10, t0.Add(-30*time.Second))),
			obs:       observed(t0, map[string]rev{"default": ready("1.31.4"), "1-32-0": ready("1.32.0")}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@10",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "canary advances after the interval when healthy",
			mi: meshInstall("1.32.0", canary(10, 50, 100), running("default", "1.31.4"),
				withRevision("1-32-0", "1.32.0", meshv1alpha1.RevisionCanary, t0), canaryAt("1-32-0", 0, 10, t0.Add(-2*time.Minute))),
			obs:       observed(t0, map[string]rev{"default": ready("1.31.4"), "1-32-0": ready("1.32.0")}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@50",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "canary does not advance while its pods are not ready",
			mi: meshInstall("1.32.0", canary(10, 50, 100), running("default", "1.31.4"),
				withRevision("1-32-0", "1.32.0", meshv1alpha1.RevisionCanary, t0), canaryAt("1-32-0", 0, 10, t0.Add(-2*time.Minute))),
			obs:       observed(t0, map[string]rev{"default": ready("1.31.4"), "1-32-0": {Version: "1.32.0", Ready: true, Pods: 3, PodsReady: false}}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@10",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "paused canary holds",
			mi: meshInstall("1.32.0", canary(10, 50, 100), paused, running("default", "1.31.4"),
				withRevision("1-32-0", "1.32.0", meshv1alpha1.RevisionCanary, t0), canaryAt("1-32-0", 0, 10, t0.Add(-time.Hour))),
			obs:       observed(t0, map[string]rev{"default": ready("1.31.4"), "1-32-0": ready("1.32.0")}),
			wantPhase: PhaseCanaryPaused, wantCanary: "1-32-0@10",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "last step promotes: the canary becomes active and the old revision drains",
			mi: meshInstall("1.32.0", canary(10, 50, 100), running("default", "1.31.4"),
				withRevision("1-32-0", "1.32.0", meshv1alpha1.RevisionCanary, t0), canaryAt("1-32-0", 1, 50, t0.Add(-2*time.Minute))),
			obs:       observed(t0, map[string]rev{"default": {Version: "1.31.4", Ready: true, Pods: 4, PodsReady: true}, "1-32-0": ready("1.32.0")}),
			wantPhase: PhaseDraining,
			wantRevs:  []string{"1-32-0=1.32.0/Active", "default=1.31.4/Draining"},
		},
		{
			name: "setting the version back aborts the canary, which drains",
			mi: meshInstall("1.31.4", canary(10, 50, 100), running("default", "1.31.4"),
				withRevision("1-32-0", "1.32.0", meshv1alpha1.RevisionCanary, t0), canaryAt("1-32-0", 1, 50, t0.Add(-2*time.Minute))),
			obs:       observed(t0, map[string]rev{"default": ready("1.31.4"), "1-32-0": {Version: "1.32.0", Ready: true, Pods: 2, PodsReady: true}}),
			wantPhase: PhaseAborting,
			wantRevs:  []string{"default=1.31.4/Active", "1-32-0=1.32.0/Draining"},
		},
		{
			name: "a third version during a canary is refused",
			mi: meshInstall("1.31.0", canary(10, 100), running("default", "1.31.4"),
				canaryAt("1-32-0", 0, 10, t0)),
			obs:         observed(t0, nil),
			wantRefusal: meshv1alpha1.ReasonInvalidSpec,
		},
		{
			name: "switching to InPlace during a canary is refused",
			mi: meshInstall("1.32.0", running("default", "1.31.4"),
				withRevision("1-32-0", "1.32.0", meshv1alpha1.RevisionCanary, t0), canaryAt("1-32-0", 0, 10, t0)),
			obs:         observed(t0, nil),
			wantRefusal: meshv1alpha1.ReasonStrategyChangeRejected,
		},
		{
			name: "an unused revision is pruned after the grace period",
			mi: meshInstall("1.32.0", canary(10, 100), running("1-32-0", "1.32.0"),
				withRevision("default", "1.31.4", meshv1alpha1.RevisionDraining, t0.Add(-time.Minute))),
			obs:       observed(t0, map[string]rev{"1-32-0": ready("1.32.0"), "default": ready("1.31.4")}),
			wantPhase: PhaseSteady, wantRevs: []string{"1-32-0=1.32.0/Active"}, wantPrune: []string{"default"},
		},
		{
			name: "an unused revision is kept within the grace period",
			mi: meshInstall("1.32.0", canary(10, 100), running("1-32-0", "1.32.0"),
				withRevision("default", "1.31.4", meshv1alpha1.RevisionDraining, t0.Add(-10*time.Second))),
			obs:       observed(t0, map[string]rev{"1-32-0": ready("1.32.0"), "default": ready("1.31.4")}),
			wantPhase: PhaseDraining, wantRevs: []string{"1-32-0=1.32.0/Active", "default=1.31.4/Draining"},
		},
		{
			name: "a revision still in use is never pruned",
			mi: meshInstall("1.32.0", canary(10, 100), running("1-32-0", "1.32.0"),
				withRevision("default", "1.31.4", meshv1alpha1.RevisionDraining, t0.Add(-time.Hour))),
			obs:       observed(t0, map[string]rev{"1-32-0": ready("1.32.0"), "default": {Version: "1.31.4", Ready: true, Pods: 1}}),
			wantPhase: PhaseDraining, wantRevs: []string{"1-32-0=1.32.0/Active", "default=1.31.4/Draining"},
		},
		{
			name: "nothing is pruned when pod usage is unknown",
			mi: meshInstall("1.32.0", canary(10, 100), running("1-32-0", "1.32.0"),
				withRevision("default", "1.31.4", meshv1alpha1.RevisionDraining, t0.Add(-time.Hour))),
			obs: Observed{Now: t0, InventoryKnown: false,
				Revisions: map[string]rev{"1-32-0": ready("1.32.0"), "default": ready("1.31.4")}},
			wantPhase: PhaseDraining, wantRevs: []string{"1-32-0=1.32.0/Active", "default=1.31.4/Draining"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Decide(tc.mi, tc.obs)
			if tc.wantRefusal != "" {
				var r *Refusal
				if !errors.As(err, &r) || r.Reason != tc.wantRefusal {
					t.Fatalf("got %v, want a refusal with reason %s", err, tc.wantRefusal)
				}
				if !strings.Contains(r.Message, "spec.") && tc.wantRefusal != meshv1alpha1.ReasonUnsupportedVersion {
					t.Errorf("refusal message names no field: %s", r.Message)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Phase != tc.wantPhase {
				t.Errorf("phase = %s (%s), want %s", p.Phase, p.Message, tc.wantPhase)
			}
			if got := names(p.Revisions); !slices.Equal(got, tc.wantRevs) {
				t.Errorf("revisions = %v, want %v", got, tc.wantRevs)
			}
			gotCanary := ""
			if p.Canary != nil {
				gotCanary = p.Canary.Revision + "@" + itoa(p.Canary.Weight)
			}
			if gotCanary != tc.wantCanary {
				t.Errorf("canary = %q, want %q", gotCanary, tc.wantCanary)
			}
			if !slices.Equal(p.Prune, tc.wantPrune) {
				t.Errorf("prune = %v, want %v", p.Prune, tc.wantPrune)
			}
		})
	}
}

func TestDecideIsPure(t *testing.T) {
	mi := meshInstall("1.32.0", canary(10, 50, 100), running("default", "1.31.4"))
	obs := observed(t0, map[string]rev{"default": {Version: "1.31.4", Ready: true, PodsReady: true}})
	before := mi.DeepCopy()
	a, errA := Decide(mi, obs)
	b, errB := Decide(mi, obs)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if !slices.Equal(names(a.Revisions), names(b.Revisions)) || a.Phase != b.Phase ||
		a.Canary.Revision != b.Canary.Revision || a.Canary.Weight != b.Canary.Weight || !a.Canary.StepStartTime.Equal(b.Canary.StepStartTime) {
		t.Errorf("two calls with the same input differ: %+v vs %+v", a, b)
	}
	if before.Status.Canary != nil || len(mi.Status.Revisions) != len(before.Status.Revisions) {
		t.Errorf("Decide modified its input")
	}
}

func itoa(i int32) string {
	return strconv.Itoa(int(i))
}

// TestDecideSchedulesTheNextLook checks when the reconciler is asked to look
// again with nothing changed (the canary's next step, the end of a grace
// period) and the last-used times it records for draining revisions.
func TestDecideSchedulesTheNextLook(t *testing.T) {
	ready := func(v string) rev { return rev{Version: v, Ready: true, PodsReady: true} }
	both := func(oldPods int32) map[string]rev {
		return map[string]rev{"1-32-0": ready("1.32.0"), "default": {Version: "1.31.4", Ready: true, PodsReady: true, Pods: oldPods}}
	}
	promoted := func(lastUsed time.Time) *meshv1alpha1.MeshInstall {
		return meshInstall("1.32.0", canary(10, 100), running("1-32-0", "1.32.0"),
			withRevision("default", "1.31.4", meshv1alpha1.RevisionDraining, lastUsed))
	}
	cases := []struct {
		name         string
		mi           *meshv1alpha1.MeshInstall
		obs          Observed
		wantRequeue  time.Duration
		wantLastUsed map[string]time.Time
	}{
		{
			name:        "steady: nothing to wait for",
			mi:          meshInstall("1.31.4", running("default", "1.31.4")),
			obs:         observed(t0, map[string]rev{"default": ready("1.31.4")}),
			wantRequeue: 0,
		},
		{
			name: "a canary step looks again when its interval ends",
			mi: meshInstall("1.32.0", canary(10, 50, 100), running("default", "1.31.4"),
				withRevision("1-32-0", "1.32.0", meshv1alpha1.RevisionCanary, t0), canaryAt("1-32-0", 0, 10, t0.Add(-20*time.Second))),
			obs:         observed(t0, map[string]rev{"default": ready("1.31.4"), "1-32-0": ready("1.32.0")}),
			wantRequeue: 40 * time.Second,
		},
		{
			name: "a step that just advanced waits a whole interval",
			mi: meshInstall("1.32.0", canary(10, 50, 100), running("default", "1.31.4"),
				withRevision("1-32-0", "1.32.0", meshv1alpha1.RevisionCanary, t0), canaryAt("1-32-0", 0, 10, t0.Add(-2*time.Minute))),
			obs:         observed(t0, map[string]rev{"default": ready("1.31.4"), "1-32-0": ready("1.32.0")}),
			wantRequeue: time.Minute,
		},
		{
			name:         "an idle draining revision keeps its last-used time and is looked at when its grace ends",
			mi:           promoted(t0.Add(-10 * time.Second)),
			obs:          observed(t0, both(0)),
			wantRequeue:  20 * time.Second,
			wantLastUsed: map[string]time.Time{"default": t0.Add(-10 * time.Second)},
		},
		{
			name:         "a draining revision in use is last used now and waits a whole grace period",
			mi:           promoted(t0.Add(-time.Hour)),
			obs:          observed(t0, both(2)),
			wantRequeue:  30 * time.Second,
			wantLastUsed: map[string]time.Time{"default": t0},
		},
		{
			name:         "unknown usage counts as use",
			mi:           promoted(t0.Add(-time.Hour)),
			obs:          Observed{Now: t0, Revisions: both(0), InventoryKnown: false},
			wantRequeue:  30 * time.Second,
			wantLastUsed: map[string]time.Time{"default": t0},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Decide(tc.mi, tc.obs)
			if err != nil {
				t.Fatal(err)
			}
			if p.RequeueAfter != tc.wantRequeue {
				t.Errorf("RequeueAfter = %s, want %s", p.RequeueAfter, tc.wantRequeue)
			}
			got := map[string]time.Time{}
			for name, lu := range p.LastUsed {
				got[name] = lu.Time
			}
			if len(got) != len(tc.wantLastUsed) {
				t.Errorf("LastUsed = %v, want %v", got, tc.wantLastUsed)
			}
			for name, want := range tc.wantLastUsed {
				if !got[name].Equal(want) {
					t.Errorf("LastUsed[%s] = %v, want %v", name, got[name], want)
				}
			}
		})
	}
}
