package controllers

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inventory"
	"github.com/meshkeeper/meshkeeper/internal/revision"
)

// statusBuilder collects what one pass found and writes status once, at the
// end of the pass, from those findings.
type statusBuilder struct {
	now time.Time
	gen int64

	suspend  bool
	refusal  *revision.Refusal
	applyErr error
	plan     *revision.Plan
	obs      revision.Observed
	inv      inventory.Result
	invErr   bool
}

func newStatusBuilder(mi *meshv1alpha1.MeshInstall, now time.Time) *statusBuilder {
	return &statusBuilder{now: now, gen: mi.Generation}
}

func (s *statusBuilder) suspended() { s.suspend = true }

func (s *statusBuilder) refused(r *revision.Refusal) { s.refusal = r }

func (s *statusBuilder) applyFailed(err error) { s.applyErr = err }

func (s *statusBuilder) applied(p revision.Plan, obs revision.Observed, inv inventory.Result) {
	s.plan, s.obs, s.inv = &p, obs, inv
}

func (s *statusBuilder) inventoryUnknown() { s.invErr = true }

// finish computes status from the pass's findings.
func (s *statusBuilder) finish(mi *meshv1alpha1.MeshInstall, reconcileErr error) {
	st := &mi.Status
	if s.plan != nil {
		s.recordPlan(mi)
		st.ObservedGeneration = s.gen
	}
	set := func(c metav1.Condition) {
		c.ObservedGeneration = s.gen
		meta.SetStatusCondition(&st.Conditions, c)
	}
	set(s.stalled())
	set(s.reconciling(reconcileErr))
	set(s.ready(mi, reconcileErr))
	set(s.upgrading())
	if s.plan != nil {
		set(s.dataPlane())
	}
}

func (s *statusBuilder) dataPlane() metav1.Condition {
	c := metav1.Condition{Type: meshv1alpha1.ConditionDataPlaneUpToDate, Status: metav1.ConditionTrue,
		Reason: meshv1alpha1.ReasonUpToDate, Message: fmt.Sprintf("%d injected pods run their revision's current configuration", s.inv.UpToDate)}
	switch {
	case s.invErr:
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, meshv1alpha1.ReasonInventoryUnavailable, "pods could not be listed"
	case s.inv.Uninjected > 0:
		c.Status, c.Reason = metav1.ConditionFalse, meshv1alpha1.ReasonUninjectedPods
		c.Message = fmt.Sprintf("%d pods should have a sidecar but have none; restart them", s.inv.Uninjected)
	case s.inv.Outdated > 0:
		c.Status, c.Reason = metav1.ConditionFalse, meshv1alpha1.ReasonOutdatedPods
		c.Message = fmt.Sprintf("%d pods run an older proxy or injection configuration; restart them to update", s.inv.Outdated)
	}
	return c
}

// recordPlan stores the plan's revisions, canary and active version.
func (s *statusBuilder) recordPlan(mi *meshv1alpha1.MeshInstall) {
	p, st := s.plan, &mi.Status
	st.ActiveRevision = p.Active.Name
	st.Canary = p.Canary
	if o, ok := s.obs.Revisions[p.Active.Name]; ok && o.Ready && o.Version == p.Active.Version.String() {
		st.Version = p.Active.Version.String()
	}
	revs := make([]meshv1alpha1.RevisionStatus, 0, len(p.Revisions))
	for _, r := range p.Revisions {
		o := s.obs.Revisions[r.Name]
		rs := meshv1alpha1.RevisionStatus{
			Name: r.Name, Version: r.Version.String(), Role: r.Role, Weight: r.Weight,
			Ready: o.Ready && o.Version == r.Version.String(), Pods: o.Pods,
		}
		if lu, ok := p.LastUsed[r.Name]; ok {
			rs.LastUsedTime = &lu
		} else if o.Pods > 0 {
			now := metav1.NewTime(s.now)
			rs.LastUsedTime = &now
		}
		revs = append(revs, rs)
	}
	st.Revisions = revs
	if !s.invErr {
		st.DataPlane = &meshv1alpha1.DataPlaneStatus{
			InjectedPods: s.inv.Injected, UpToDatePods: s.inv.UpToDate,
			OutdatedPods: s.inv.Outdated, UninjectedPods: s.inv.Uninjected,
		}
		for i := range st.Revisions {
			st.Revisions[i].UpToDatePods = min(s.inv.Revisions[st.Revisions[i].Name].UpToDate, st.Revisions[i].Pods)
		}
	}
}

func (s *statusBuilder) stalled() metav1.Condition {
	if s.refusal != nil {
		return metav1.Condition{Type: meshv1alpha1.ConditionStalled, Status: metav1.ConditionTrue,
			Reason: s.refusal.Reason, Message: s.refusal.Message}
	}
	return metav1.Condition{Type: meshv1alpha1.ConditionStalled, Status: metav1.ConditionFalse,
		Reason: meshv1alpha1.ReasonReconcileSucceeded, Message: "no action needed from a person"}
}

func (s *statusBuilder) reconciling(err error) metav1.Condition {
	c := metav1.Condition{Type: meshv1alpha1.ConditionReconciling}
	switch {
	case s.suspend:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, meshv1alpha1.ReasonSuspended, "spec.suspend is true: nothing is reconciled"
	case s.refusal != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, s.refusal.Reason, "waiting for the spec to be fixed"
	case s.plan == nil:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, meshv1alpha1.ReasonProgressing, errMessage(err, "retrying")
	case s.plan.Phase != revision.PhaseSteady:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, phaseReason(s.plan.Phase), s.plan.Message
	case !s.activeReady():
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, meshv1alpha1.ReasonControlPlaneNotReady, "waiting for istiod to become available"
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, meshv1alpha1.ReasonReconcileSucceeded, "the control plane matches the spec"
	}
	return c
}

func (s *statusBuilder) ready(mi *meshv1alpha1.MeshInstall, err error) metav1.Condition {
	c := metav1.Condition{Type: meshv1alpha1.ConditionReady, Status: metav1.ConditionFalse}
	switch {
	case s.suspend:
		// Keep what was last known; suspension changes nothing in the cluster.
		if old := meta.FindStatusCondition(mi.Status.Conditions, meshv1alpha1.ConditionReady); old != nil {
			return *old
		}
		c.Reason, c.Message = meshv1alpha1.ReasonSuspended, "spec.suspend is true"
	case s.refusal != nil:
		c.Reason, c.Message = s.refusal.Reason, s.refusal.Message
	case s.applyErr != nil:
		c.Reason, c.Message = meshv1alpha1.ReasonApplyFailed, s.applyErr.Error()
	case s.plan == nil:
		c.Reason, c.Message = meshv1alpha1.ReasonProgressing, errMessage(err, "reconciling")
	case !s.activeReady():
		c.Reason = phaseReason(s.plan.Phase)
		if s.plan.Phase == revision.PhaseSteady || s.plan.Phase == revision.PhaseDraining {
			c.Reason = meshv1alpha1.ReasonControlPlaneNotReady
		}
		c.Message = fmt.Sprintf("istiod revision %s (%s) is not available yet", s.plan.Active.Name, s.plan.Active.Version)
	default:
		c.Status, c.Reason = metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded
		c.Message = fmt.Sprintf("Istio %s is available (revision %s)", s.plan.Active.Version, s.plan.Active.Name)
	}
	return c
}

func (s *statusBuilder) upgrading() metav1.Condition {
	c := metav1.Condition{Type: meshv1alpha1.ConditionUpgradeInProgress, Status: metav1.ConditionFalse,
		Reason: meshv1alpha1.ReasonUpToDate, Message: "no upgrade in progress"}
	if s.plan == nil {
		return c
	}
	switch s.plan.Phase {
	case revision.PhaseUpgradingInPlace, revision.PhaseCanary, revision.PhaseCanaryPaused, revision.PhaseAborting:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, phaseReason(s.plan.Phase), s.plan.Message
	}
	return c
}

func (s *statusBuilder) activeReady() bool {
	o, ok := s.obs.Revisions[s.plan.Active.Name]
	return ok && o.Ready && o.Version == s.plan.Active.Version.String()
}

func phaseReason(p revision.Phase) string {
	switch p {
	case revision.PhaseInstalling:
		return meshv1alpha1.ReasonInstalling
	case revision.PhaseUpgradingInPlace:
		return meshv1alpha1.ReasonUpgradingInPlace
	case revision.PhaseCanary:
		return meshv1alpha1.ReasonCanaryInProgress
	case revision.PhaseCanaryPaused:
		return meshv1alpha1.ReasonCanaryPaused
	case revision.PhaseAborting:
		return meshv1alpha1.ReasonCanaryAborting
	case revision.PhaseDraining:
		return meshv1alpha1.ReasonPruningRevision
	}
	return meshv1alpha1.ReasonReconcileSucceeded
}

func errMessage(err error, fallback string) string {
	if err != nil {
		return err.Error()
	}
	return fallback
}
