package meshinstall

import (
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inventory"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

func mustVersion(t *testing.T, v string) version.Version {
	t.Helper()
	parsed, err := version.Parse(v)
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}

// TestConditions checks every condition the status builder writes, for each
// kind of pass a user can meet.
func TestConditions(t *testing.T) {
	v1314, v1320 := mustVersion(t, "1.31.4"), mustVersion(t, "1.32.0")
	active := func(cp, proxy version.Version) revision.Planned {
		return revision.Planned{Name: "default", Version: cp, ProxyVersion: proxy, Role: meshv1alpha1.RevisionActive, Weight: 100}
	}
	availableAt := func(v string) *observation {
		return &observation{Observed: revision.Observed{InventoryKnown: true, Revisions: map[string]revision.ObservedRevision{
			"default": {ControlPlaneVersion: v, ProxyVersion: v, Istiod: &revision.Rollout{Available: true}, PodsReady: true},
		}}}
	}
	routed := &revision.Routing{Tags: []string{"default"}, Active: "default"}
	planned := func(p revision.Plan) func(*statusBuilder) {
		return func(s *statusBuilder) {
			if len(p.Revisions) == 0 {
				p.Revisions = []revision.Planned{p.Active}
			}
			s.plan = &p
			if s.obs == nil {
				s.obs = availableAt(p.Active.Version.String())
			}
			if s.outcome == nil {
				s.outcome = &applyOutcome{routing: routed, injectorApplied: true}
			}
		}
	}
	steady := planned(revision.Plan{Active: active(v1314, v1314), Phase: revision.PhaseSteady})
	type want struct {
		status metav1.ConditionStatus
		reason string
		text   string // in the message, when set
	}
	cases := []struct {
		name  string
		setup []func(*statusBuilder)
		err   error
		want  map[string]want
		// wantGeneration is true when the pass judged the spec.
		wantGeneration bool
	}{
		{
			name:  "steady and available",
			setup: []func(*statusBuilder){steady},
			want: map[string]want{
				meshv1alpha1.ConditionReady:             {metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded, "1.31.4"},
				meshv1alpha1.ConditionReconciling:       {metav1.ConditionFalse, meshv1alpha1.ReasonReconcileSucceeded, ""},
				meshv1alpha1.ConditionStalled:           {metav1.ConditionFalse, meshv1alpha1.ReasonReconcileSucceeded, ""},
				meshv1alpha1.ConditionUpgradeInProgress: {metav1.ConditionFalse, meshv1alpha1.ReasonUpToDate, ""},
				meshv1alpha1.ConditionDataPlaneUpToDate: {metav1.ConditionTrue, meshv1alpha1.ReasonUpToDate, ""},
			},
			wantGeneration: true,
		},
		{
			name:  "installing, istiod not available yet",
			setup: []func(*statusBuilder){func(s *statusBuilder) { s.obs = &observation{Observed: revision.Observed{InventoryKnown: true}} }, planned(revision.Plan{Active: active(v1314, v1314), Phase: revision.PhaseInstalling})},
			want: map[string]want{
				meshv1alpha1.ConditionReady:       {metav1.ConditionFalse, meshv1alpha1.ReasonInstalling, "not available yet"},
				meshv1alpha1.ConditionReconciling: {metav1.ConditionTrue, meshv1alpha1.ReasonInstalling, ""},
				meshv1alpha1.ConditionStalled:     {metav1.ConditionFalse, meshv1alpha1.ReasonReconcileSucceeded, ""},
			},
			wantGeneration: true,
		},
		{
			name: "in place, the new istiod rolling: the data plane still on the old proxy",
			setup: []func(*statusBuilder){planned(revision.Plan{Active: active(v1320, v1314), Phase: revision.PhaseUpgradingInPlace, Waiting: true,
				Message: "rolling istiod revision default from 1.31.4 to 1.32.0"})},
			want: map[string]want{
				meshv1alpha1.ConditionReady:             {metav1.ConditionFalse, meshv1alpha1.ReasonUpgradingInPlace, ""},
				meshv1alpha1.ConditionUpgradeInProgress: {metav1.ConditionTrue, meshv1alpha1.ReasonUpgradingInPlace, "1.31.4 to 1.32.0"},
				meshv1alpha1.ConditionStalled:           {metav1.ConditionFalse, meshv1alpha1.ReasonReconcileSucceeded, ""},
			},
			wantGeneration: true,
		},
		{
			name: "a new istiod past its progress deadline: stalled, not in progress",
			setup: []func(*statusBuilder){planned(revision.Plan{Active: active(v1314, v1314), Phase: revision.PhaseCanary, Waiting: true, Blocked: true,
				Message: "istiod of revision 1-32-0 is not available (Unschedulable: 0/3 nodes are available: 3 Insufficient cpu)"})},
			want: map[string]want{
				meshv1alpha1.ConditionStalled:           {metav1.ConditionTrue, meshv1alpha1.ReasonControlPlaneNotAvailable, "Insufficient cpu"},
				meshv1alpha1.ConditionUpgradeInProgress: {metav1.ConditionFalse, meshv1alpha1.ReasonControlPlaneNotAvailable, "Insufficient cpu"},
				meshv1alpha1.ConditionReady:             {metav1.ConditionFalse, meshv1alpha1.ReasonControlPlaneNotAvailable, "Insufficient cpu"},
				meshv1alpha1.ConditionReconciling:       {metav1.ConditionFalse, meshv1alpha1.ReasonControlPlaneNotAvailable, ""},
			},
			wantGeneration: true,
		},
		{
			name:  "a canary in progress keeps the mesh Ready",
			setup: []func(*statusBuilder){planned(revision.Plan{Active: active(v1314, v1314), Phase: revision.PhaseCanary, Message: "canary 1-32-0 at 10%"})},
			want: map[string]want{
				meshv1alpha1.ConditionReady:             {metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded, ""},
				meshv1alpha1.ConditionUpgradeInProgress: {metav1.ConditionTrue, meshv1alpha1.ReasonCanaryInProgress, "10%"},
				meshv1alpha1.ConditionReconciling:       {metav1.ConditionTrue, meshv1alpha1.ReasonCanaryInProgress, ""},
			},
			wantGeneration: true,
		},
		{
			name:  "a paused canary",
			setup: []func(*statusBuilder){planned(revision.Plan{Active: active(v1314, v1314), Phase: revision.PhaseCanaryPaused})},
			want: map[string]want{
				meshv1alpha1.ConditionUpgradeInProgress: {metav1.ConditionTrue, meshv1alpha1.ReasonCanaryPaused, ""},
			},
			wantGeneration: true,
		},
		{
			name:  "an aborted canary",
			setup: []func(*statusBuilder){planned(revision.Plan{Active: active(v1314, v1314), Phase: revision.PhaseAborting})},
			want: map[string]want{
				meshv1alpha1.ConditionUpgradeInProgress: {metav1.ConditionTrue, meshv1alpha1.ReasonCanaryAborting, ""},
			},
			wantGeneration: true,
		},
		{
			name:  "an old revision draining",
			setup: []func(*statusBuilder){planned(revision.Plan{Active: active(v1320, v1320), Phase: revision.PhaseDraining})},
			want: map[string]want{
				meshv1alpha1.ConditionReady:             {metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded, ""},
				meshv1alpha1.ConditionReconciling:       {metav1.ConditionTrue, meshv1alpha1.ReasonPruningRevision, ""},
				meshv1alpha1.ConditionUpgradeInProgress: {metav1.ConditionFalse, meshv1alpha1.ReasonUpToDate, ""},
			},
			wantGeneration: true,
		},
		{
			name: "objects that failed are each named",
			setup: []func(*statusBuilder){steady, func(s *statusBuilder) {
				s.outcome.failures = []applyFailure{
					{err: errors.New("applying Service istio-system/istio-ingressgateway: denied")},
					{err: errors.New("applying HorizontalPodAutoscaler istio-system/istiod: quota")},
				}
			}},
			err: errors.New("2 object(s) could not be applied"),
			want: map[string]want{
				meshv1alpha1.ConditionReady:       {metav1.ConditionFalse, meshv1alpha1.ReasonApplyFailed, "Service istio-system/istio-ingressgateway: denied; applying HorizontalPodAutoscaler"},
				meshv1alpha1.ConditionReconciling: {metav1.ConditionTrue, meshv1alpha1.ReasonApplyFailed, ""},
				meshv1alpha1.ConditionStalled:     {metav1.ConditionFalse, meshv1alpha1.ReasonReconcileSucceeded, ""},
			},
			wantGeneration: true,
		},
		{
			name: "a refused spec is judged: Stalled at this generation",
			setup: []func(*statusBuilder){func(s *statusBuilder) {
				s.refused(&refusal.Error{Reason: meshv1alpha1.ReasonVersionSkewTooLarge, Message: "spec.version: skips"})
			}},
			want: map[string]want{
				meshv1alpha1.ConditionStalled:     {metav1.ConditionTrue, meshv1alpha1.ReasonVersionSkewTooLarge, "spec.version"},
				meshv1alpha1.ConditionReady:       {metav1.ConditionFalse, meshv1alpha1.ReasonVersionSkewTooLarge, ""},
				meshv1alpha1.ConditionReconciling: {metav1.ConditionFalse, meshv1alpha1.ReasonVersionSkewTooLarge, ""},
			},
			wantGeneration: true,
		},
		{
			name: "a transient error before any judgement leaves observedGeneration",
			err:  errors.New("the API server is unavailable"),
			want: map[string]want{
				meshv1alpha1.ConditionReady:       {metav1.ConditionFalse, meshv1alpha1.ReasonProgressing, "unavailable"},
				meshv1alpha1.ConditionReconciling: {metav1.ConditionTrue, meshv1alpha1.ReasonProgressing, ""},
				meshv1alpha1.ConditionStalled:     {metav1.ConditionFalse, meshv1alpha1.ReasonReconcileSucceeded, ""},
			},
		},
		{
			name:  "suspended",
			setup: []func(*statusBuilder){func(s *statusBuilder) { s.suspended() }},
			want: map[string]want{
				meshv1alpha1.ConditionReconciling: {metav1.ConditionFalse, meshv1alpha1.ReasonSuspended, ""},
				meshv1alpha1.ConditionReady:       {metav1.ConditionTrue, "Earlier", ""}, // what it was before
			},
		},
		{
			name:  "pods missing their sidecar, some of them bare",
			setup: []func(*statusBuilder){steady, func(s *statusBuilder) { s.inv = inventory.Result{Uninjected: 3, Unmanaged: 1} }},
			want: map[string]want{
				meshv1alpha1.ConditionDataPlaneUpToDate: {metav1.ConditionFalse, meshv1alpha1.ReasonUninjectedPods, "1 of them have no controller"},
			},
			wantGeneration: true,
		},
		{
			name:  "outdated pods",
			setup: []func(*statusBuilder){steady, func(s *statusBuilder) { s.inv = inventory.Result{Injected: 4, Outdated: 2} }},
			want: map[string]want{
				meshv1alpha1.ConditionDataPlaneUpToDate: {metav1.ConditionFalse, meshv1alpha1.ReasonOutdatedPods, "2 pods"},
			},
			wantGeneration: true,
		},
		{
			name:  "pods could not be counted",
			setup: []func(*statusBuilder){steady, func(s *statusBuilder) { s.invErr = true }},
			want: map[string]want{
				meshv1alpha1.ConditionDataPlaneUpToDate: {metav1.ConditionUnknown, meshv1alpha1.ReasonInventoryUnavailable, ""},
			},
			wantGeneration: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mi := &meshv1alpha1.MeshInstall{ObjectMeta: metav1.ObjectMeta{Generation: 7}}
			mi.Status.ObservedGeneration = 6
			meta.SetStatusCondition(&mi.Status.Conditions, metav1.Condition{Type: meshv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Earlier", Message: "before"})
			s := newStatusBuilder(mi, time.Now())
			for _, f := range tc.setup {
				f(s)
			}
			s.finish(mi, tc.err)
			for typ, w := range tc.want {
				c := meta.FindStatusCondition(mi.Status.Conditions, typ)
				if c == nil {
					t.Errorf("%s not set", typ)
					continue
				}
				if c.Status != w.status || c.Reason != w.reason || !strings.Contains(c.Message, w.text) {
					t.Errorf("%s = %s/%s %q, want %s/%s containing %q", typ, c.Status, c.Reason, c.Message, w.status, w.reason, w.text)
				}
			}
			if got := mi.Status.ObservedGeneration == 7; got != tc.wantGeneration {
				t.Errorf("observedGeneration = %d, judged = %v", mi.Status.ObservedGeneration, tc.wantGeneration)
			}
		})
	}
}

// TestAPassWithNothingToApplyWritesOnlyTheCounts checks that a pass that
// stops after its plan (nothingToApply) changes the data plane counts and
// nothing else of status: the last report of a pass that applied stands.
func TestAPassWithNothingToApplyWritesOnlyTheCounts(t *testing.T) {
	mi := &meshv1alpha1.MeshInstall{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
	mi.Status = meshv1alpha1.MeshInstallStatus{
		ObservedGeneration: 2, ActiveRevision: "default", Version: "1.31.4",
		Revisions: []meshv1alpha1.RevisionStatus{{Name: "default", Version: "1.31.4", Role: meshv1alpha1.RevisionActive, Pods: 1}},
	}
	meta.SetStatusCondition(&mi.Status.Conditions, metav1.Condition{Type: meshv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: meshv1alpha1.ReasonApplyFailed})
	before := mi.DeepCopy()
	s := newStatusBuilder(mi, time.Now())
	s.countOnly = true
	s.observed(revision.Plan{Active: revision.Planned{Name: "default"}}, &observation{Observed: revision.Observed{InventoryKnown: true,
		Revisions: map[string]revision.ObservedRevision{"default": {Pods: 4}}}})
	s.counted(inventory.Result{Injected: 4, UpToDate: 4, Revisions: map[string]inventory.RevisionCount{"default": {Pods: 4, UpToDate: 4}}})
	s.finish(mi, nil)

	if mi.Status.Revisions[0].Pods != 4 || mi.Status.DataPlane == nil || mi.Status.DataPlane.InjectedPods != 4 {
		t.Errorf("counts not updated: %+v", mi.Status)
	}
	if mi.Status.ObservedGeneration != 2 || mi.Status.ActiveRevision != "default" || mi.Status.Version != "1.31.4" {
		t.Errorf("a pass with nothing to apply changed what it did not judge: %+v", mi.Status)
	}
	if c := meta.FindStatusCondition(mi.Status.Conditions, meshv1alpha1.ConditionReady); c.Reason != meshv1alpha1.ReasonApplyFailed {
		t.Errorf("a pass with nothing to apply rewrote Ready: %+v (was %+v)", c, before.Status.Conditions)
	}
}
