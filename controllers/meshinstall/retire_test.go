package meshinstall

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// TestSendsPodsTo: a revision the observed injector has an entry for, or
// the observed routing points at, may still get new pods, so gather does
// not ask whether it is unused.
func TestSendsPodsTo(t *testing.T) {
	matcher, err := webhookconfig.NewMatcher(webhookconfig.InjectorConfiguration(webhookconfig.Injector{Revisions: []string{"1-30-0"}}))
	if err != nil {
		t.Fatal(err)
	}
	obs := &observation{matcher: matcher, Observed: revision.Observed{Routing: &revision.Routing{Active: "1-32-0", Canary: "1-33-0", Weight: 10}}}
	for rev, want := range map[string]bool{"1-30-0": true, "1-32-0": true, "1-33-0": true, "1-29-0": false} {
		if got := sendsPodsTo(obs, rev); got != want {
			t.Errorf("sendsPodsTo(%s) = %v, want %v", rev, got, want)
		}
	}
	if sendsPodsTo(&observation{}, "1-30-0") {
		t.Error("with no injector and no routing observed, a revision gets no pod")
	}
}

// TestOnlyRetiredRevisionsArePruned: of the revisions the plan prunes, a
// pass deletes the objects of those gather found retired; the others stay,
// and status keeps them, draining, from the time they were last used, so
// that the next pass prunes them rather than starting their grace again.
func TestOnlyRetiredRevisionsArePruned(t *testing.T) {
	v := mustVersion(t, "1.32.0")
	active := revision.Planned{Name: "1-32-0", Version: v, ProxyVersion: v, Role: meshv1alpha1.RevisionActive, Weight: 100}
	plan := revision.Plan{Active: active, Revisions: []revision.Planned{active}, Prune: []string{"1-30-0", "1-31-0"}}
	obs := &observation{
		Observed: revision.Observed{InventoryKnown: true, Revisions: map[string]revision.ObservedRevision{
			"1-32-0": {ControlPlaneVersion: "1.32.0", ProxyVersion: "1.32.0", Istiod: &revision.Rollout{Available: true}},
			"1-30-0": {ControlPlaneVersion: "1.30.0", ProxyVersion: "1.30.0", Istiod: &revision.Rollout{Available: true}},
			"1-31-0": {ControlPlaneVersion: "1.31.0", ProxyVersion: "1.31.0", Istiod: &revision.Rollout{Available: true}},
		}},
		retired: map[string]bool{"1-30-0": true, "1-31-0": false, "1-29-0": true},
	}
	if got := confirmedUnused(plan, obs); len(got) != 1 || !got["1-30-0"] {
		t.Errorf("confirmedUnused = %v, want only 1-30-0 (retired and pruned by the plan)", got)
	}
	if got := retiring(plan, obs); !slices.Equal(got, []string{"1-31-0"}) {
		t.Errorf("retiring = %v, want [1-31-0]", got)
	}

	lastUsed := metav1.NewTime(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	mi := &meshv1alpha1.MeshInstall{ObjectMeta: metav1.ObjectMeta{Generation: 1}}
	mi.Status.Revisions = []meshv1alpha1.RevisionStatus{
		{Name: "1-32-0", Version: "1.32.0", Role: meshv1alpha1.RevisionActive},
		{Name: "1-31-0", Version: "1.31.0", ControlPlaneVersion: "1.31.0", Role: meshv1alpha1.RevisionDraining, LastUsedTime: &lastUsed},
		{Name: "1-30-0", Version: "1.30.0", ControlPlaneVersion: "1.30.0", Role: meshv1alpha1.RevisionDraining, LastUsedTime: &lastUsed},
	}
	s := newStatusBuilder(mi, time.Now())
	s.observed(plan, obs)
	s.applied(applyOutcome{routing: &revision.Routing{Active: "1-32-0"}, injectorApplied: true})
	s.finish(mi, nil)
	var names []string
	for _, r := range mi.Status.Revisions {
		names = append(names, r.Name)
		if r.Name == "1-31-0" && (r.Role != meshv1alpha1.RevisionDraining || r.LastUsedTime == nil || !r.LastUsedTime.Equal(&lastUsed)) {
			t.Errorf("the retiring revision is reported as %+v, want draining, last used at %v", r, lastUsed)
		}
	}
	if !slices.Equal(names, []string{"1-32-0", "1-31-0"}) {
		t.Errorf("status reports revisions %v, want 1-32-0 and the retiring 1-31-0 (1-30-0 is pruned)", names)
	}
}
