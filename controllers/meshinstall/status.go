package meshinstall

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inventory"
	"github.com/meshkeeper/meshkeeper/internal/meshca"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/rollout"
)

// statusBuilder collects what one pass found and writes status once, at the
// end of the pass, from those findings.
type statusBuilder struct {
	now time.Time
	gen int64

	suspend bool
	// countOnly is a pass whose plan found nothing to apply
	// (nothingToApply): it writes the counts and the rollout only; what the
	// last pass that applied reported still holds.
	countOnly bool
	// appliedInputs are the applyInputs of a pass that applied and
	// succeeded, remembered once its report is written.
	appliedInputs string
	refusal       *refusal.Error
	plan          *revision.Plan
	obs           *observation
	// outcome is what the staged apply did; nil in a pass that found nothing to apply.
	outcome *applyOutcome
	inv     inventory.Result
	invErr  bool
	// rollout is the data plane rollout's decision; nil when none was made.
	rollout *rollout.Plan
	// ca is what the pass decided of the mesh CA; nil when it decided nothing.
	ca *meshca.Decision
	// cni says spec.cni is on: the node agent is reported and awaited.
	cni bool
	// migration is the progress of spec.migration; nil when the pass decided none.
	migration *meshv1alpha1.MigrationStatus
}

func newStatusBuilder(mi *meshv1alpha1.MeshInstall, now time.Time) *statusBuilder {
	return &statusBuilder{now: now, gen: mi.Generation, cni: mi.Spec.CNI.Enabled}
}

func (s *statusBuilder) suspended() { s.suspend = true }

func (s *statusBuilder) refused(r *refusal.Error) { s.refusal = r }

// observed records the plan and the observation it was made from.
func (s *statusBuilder) observed(p revision.Plan, obs *observation) { s.plan, s.obs = &p, obs }

func (s *statusBuilder) applied(o applyOutcome) { s.outcome = &o }

func (s *statusBuilder) rolled(p rollout.Plan) { s.rollout = &p }

func (s *statusBuilder) certificateAuthority(d meshca.Decision) { s.ca = &d }

func (s *statusBuilder) migrated(m meshv1alpha1.MigrationStatus) { s.migration = &m }

func (s *statusBuilder) counted(inv inventory.Result) {
	s.inv, s.invErr = inv, !s.obs.InventoryKnown
}

// finish computes status from the pass's findings. A pass that found
// nothing to apply writes only the counts and the rollout.
func (s *statusBuilder) finish(mi *meshv1alpha1.MeshInstall, reconcileErr error) {
	st := &mi.Status
	set := func(c metav1.Condition) {
		c.ObservedGeneration = s.gen
		meta.SetStatusCondition(&st.Conditions, c)
	}
	if s.migration != nil {
		st.Migration = s.migration
	}
	if s.countOnly {
		if s.plan != nil {
			s.recordDataPlane(mi)
			set(s.dataPlane())
			if s.rollout != nil {
				set(s.workloadRollout(mi))
			}
		}
		return
	}
	if s.plan != nil || s.refusal != nil || (s.ca != nil && s.ca.Hold) {
		// This pass judged the current spec, a refusal included.
		st.ObservedGeneration = s.gen
	}
	if s.ca != nil {
		s.recordCertificateAuthority(mi)
	}
	if s.plan != nil && s.outcome != nil {
		s.recordPlan(mi)
		s.recordDataPlane(mi)
		s.recordCNI(mi)
		s.recordPodSecurity(mi)
	}
	set(s.stalled())
	set(s.reconciling(reconcileErr))
	set(s.ready(mi, reconcileErr))
	set(s.upgrading())
	if s.plan != nil {
		set(s.dataPlane())
	}
	if s.rollout != nil {
		set(s.workloadRollout(mi))
	}
}

// recordCertificateAuthority reports the mesh CA from cert-manager, or
// drops its status and condition with istiod's own CA.
func (s *statusBuilder) recordCertificateAuthority(mi *meshv1alpha1.MeshInstall) {
	mi.Status.CertificateAuthority = s.ca.Status
	if s.ca.Condition == nil {
		meta.RemoveStatusCondition(&mi.Status.Conditions, meshv1alpha1.ConditionCertificateAuthorityReady)
		return
	}
	c := *s.ca.Condition
	c.ObservedGeneration = s.gen
	meta.SetStatusCondition(&mi.Status.Conditions, c)
}

// caNotReady is the CertificateAuthorityReady condition while the CA the
// spec asks for is not issued.
func (s *statusBuilder) caNotReady() *metav1.Condition {
	if s.ca == nil || !s.ca.Pending() {
		return nil
	}
	return s.ca.Condition
}

// caHeld is true when the control plane waits for its CA before it is installed.
func (s *statusBuilder) caHeld() bool { return s.ca != nil && s.ca.Hold }

// workloadRollout says what the data plane rollout is doing.
func (s *statusBuilder) workloadRollout(mi *meshv1alpha1.MeshInstall) metav1.Condition {
	ro := s.rollout.Status
	c := metav1.Condition{Type: meshv1alpha1.ConditionWorkloadRollout, Status: metav1.ConditionFalse}
	progress := fmt.Sprintf("%d of %d workloads done, %d restarting, %d waiting", ro.Done, ro.Total, ro.InProgress, ro.Waiting)
	switch ro.Phase {
	case meshv1alpha1.RolloutRolling:
		c.Status, c.Reason = metav1.ConditionTrue, meshv1alpha1.ReasonRestarting
		c.Message = progress + "; restarting " + strings.Join(ro.Current, ", ")
	case meshv1alpha1.RolloutWaiting:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, meshv1alpha1.ReasonRolloutWaiting, progress
	case meshv1alpha1.RolloutPaused:
		c.Reason, c.Message = meshv1alpha1.ReasonRolloutPaused, "spec.dataPlane.rollout.paused is true; "+progress
	case meshv1alpha1.RolloutFailed:
		c.Reason, c.Message = meshv1alpha1.ReasonRolloutFailed, ro.LastError
	case meshv1alpha1.RolloutManualPhase:
		c.Reason = meshv1alpha1.ReasonRolloutManual
		c.Message = fmt.Sprintf("spec.dataPlane.rollout.mode is Manual: %d workloads to restart", ro.Waiting)
		if len(ro.Pending) > 0 {
			c.Message += ", e.g. " + restartCommand(ro.Pending[0])
		}
	default:
		c.Reason, c.Message = meshv1alpha1.ReasonRolloutComplete, fmt.Sprintf("every workload runs the proxy it should (%d restarted)", ro.Done)
	}
	if len(ro.NeedsManualAction) > 0 {
		c.Message += fmt.Sprintf("; %d need a manual restart, e.g. %s", ro.Skipped, ro.NeedsManualAction[0])
	}
	return c
}

// restartCommand is the kubectl command that restarts a workload named "Kind namespace/name".
func restartCommand(workload string) string {
	kind, rest, _ := strings.Cut(workload, " ")
	ns, name, _ := strings.Cut(rest, "/")
	return fmt.Sprintf("kubectl rollout restart %s/%s -n %s", strings.ToLower(kind), name, ns)
}

// recordPlan reports the revisions and where the tags point now: the
// routing in effect, which is the plan's unless it could not be written.
func (s *statusBuilder) recordPlan(mi *meshv1alpha1.MeshInstall) {
	p, st, routing := s.plan, &mi.Status, s.outcome.routing
	active := p.Active.Name
	var canary string
	var weight int32
	if routing != nil {
		active, canary, weight = routing.Active, routing.Canary, routing.Weight
	}
	st.ActiveRevision = active
	switch {
	case canary == "":
		st.Canary = nil
	case p.Canary != nil && p.Canary.Revision == canary && p.Canary.Weight == weight:
		st.Canary = p.Canary
	case st.Canary == nil || st.Canary.Revision != canary || st.Canary.Weight != weight:
		st.Canary = &meshv1alpha1.CanaryStatus{Revision: canary, Weight: weight}
	}
	revs := make([]meshv1alpha1.RevisionStatus, 0, len(p.Revisions))
	for _, r := range p.Revisions {
		o := s.obs.Revisions[r.Name]
		rs := meshv1alpha1.RevisionStatus{
			Name: r.Name, Version: r.ProxyVersion.String(), ControlPlaneVersion: r.Version.String(),
			Role: meshv1alpha1.RevisionDraining, Ready: available(o, r.Version.String()),
		}
		switch r.Name {
		case active:
			rs.Role, rs.Weight = meshv1alpha1.RevisionActive, 100-weight
			// A rolled-out version only once workloads are routed to it:
			// currentRouting believes status when the routing is lost, and
			// with spec.cni an available istiod is not yet routed to.
			if rs.Ready && routing != nil {
				st.Version = r.ProxyVersion.String()
			}
		case canary:
			rs.Role, rs.Weight = meshv1alpha1.RevisionCanary, weight
			if st.Canary.Version == "" {
				st.Canary.Version = r.Version.String()
			}
		}
		revs = append(revs, rs)
	}
	st.Revisions = append(revs, s.retiringStatus(st.Revisions)...)
}

// retiringStatus is what status keeps of the revisions the plan prunes but
// whose objects stay until gather confirms them unused (retiring): as they
// were reported, draining, with when they were last used, so that the next
// pass judges them from the same time.
func (s *statusBuilder) retiringStatus(before []meshv1alpha1.RevisionStatus) []meshv1alpha1.RevisionStatus {
	var out []meshv1alpha1.RevisionStatus
	for _, name := range retiring(*s.plan, s.obs) {
		o := s.obs.Revisions[name]
		rs := meshv1alpha1.RevisionStatus{Name: name, Version: o.ProxyVersion, ControlPlaneVersion: o.ControlPlaneVersion}
		if i := slices.IndexFunc(before, func(r meshv1alpha1.RevisionStatus) bool { return r.Name == name }); i >= 0 {
			rs = *before[i].DeepCopy()
		}
		rs.Role, rs.Weight = meshv1alpha1.RevisionDraining, 0
		rs.Ready = available(o, rs.ControlPlaneVersion)
		out = append(out, rs)
	}
	return out
}

// recordDataPlane reports the pods of each revision and the data plane counts.
func (s *statusBuilder) recordDataPlane(mi *meshv1alpha1.MeshInstall) {
	st := &mi.Status
	for i := range st.Revisions {
		r := &st.Revisions[i]
		r.Pods = s.obs.Revisions[r.Name].Pods
		if !slices.Contains(retiring(*s.plan, s.obs), r.Name) {
			r.LastUsedTime = nil
			if since, ok := s.plan.UnusedSince[r.Name]; ok {
				r.LastUsedTime = &since
			}
		}
		if !s.invErr {
			r.UpToDatePods = min(s.inv.Revisions[r.Name].UpToDate, r.Pods)
		}
	}
	if !s.invErr {
		st.DataPlane = &meshv1alpha1.DataPlaneStatus{
			InjectedPods: s.inv.Injected, UpToDatePods: s.inv.UpToDate,
			OutdatedPods: s.inv.Outdated, UninjectedPods: s.inv.Uninjected, UnmanagedPods: s.inv.Unmanaged,
		}
		if s.rollout != nil {
			ro := s.rollout.Status
			st.DataPlane.Rollout = &ro
		}
	}
}

func available(o revision.ObservedRevision, v string) bool {
	return o.Istiod != nil && o.Istiod.Available && o.ControlPlaneVersion == v
}

func (s *statusBuilder) dataPlane() metav1.Condition {
	c := metav1.Condition{Type: meshv1alpha1.ConditionDataPlaneUpToDate, Status: metav1.ConditionTrue,
		Reason: meshv1alpha1.ReasonUpToDate, Message: fmt.Sprintf("%d injected pods run their revision's current configuration", s.inv.UpToDate)}
	unmanaged := ""
	if s.inv.Unmanaged > 0 {
		unmanaged = fmt.Sprintf(" (%d of them have no controller: delete and recreate them)", s.inv.Unmanaged)
	}
	switch {
	case s.invErr:
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, meshv1alpha1.ReasonInventoryUnavailable, "pods could not be listed"
	case s.inv.Uninjected > 0:
		c.Status, c.Reason = metav1.ConditionFalse, meshv1alpha1.ReasonUninjectedPods
		c.Message = fmt.Sprintf("%d pods should have a sidecar but have none; restart their workloads%s", s.inv.Uninjected, unmanaged)
		if s.inv.Outdated > 0 {
			// The outdated are still named: one problem does not hide the other.
			c.Message += fmt.Sprintf("; %d pods run an older proxy or injection configuration%s", s.inv.Outdated, goneRevisions(s.inv.Gone))
		}
	case s.inv.Outdated > 0:
		c.Status, c.Reason = metav1.ConditionFalse, meshv1alpha1.ReasonOutdatedPods
		c.Message = fmt.Sprintf("%d pods run an older proxy or injection configuration; restart their workloads to update%s%s",
			s.inv.Outdated, unmanaged, goneRevisions(s.inv.Gone))
	}
	return c
}

// goneRevisions names the revisions that injected running pods but no
// longer exist (their objects are gone), with how many pods each.
func goneRevisions(gone map[string]int32) string {
	if len(gone) == 0 {
		return ""
	}
	var parts []string
	for _, rev := range slices.Sorted(maps.Keys(gone)) {
		parts = append(parts, fmt.Sprintf("%d of revision %s", gone[rev], rev))
	}
	return "; pods of revisions that no longer exist: " + strings.Join(parts, ", ")
}

func (s *statusBuilder) failed() bool { return s.outcome != nil && len(s.outcome.failures) > 0 }

func (s *statusBuilder) blocked() bool { return s.plan != nil && s.plan.Blocked }

// A rung of the ladder: a fact of the pass and what each of Ready,
// Reconciling and Stalled says when it is the first fact that holds for
// them. A nil verdict leaves that condition to a later rung.
type rung struct {
	fact                        string
	holds                       func(s *statusBuilder) bool
	ready, reconciling, stalled func(s *statusBuilder, err error) verdict
}

// verdict is a condition's status, reason and message.
type verdict struct {
	status          metav1.ConditionStatus
	reason, message string
}

// ladder is the one order in which the facts of a pass win over each other in
// Ready, Reconciling and Stalled: each condition takes the first rung that
// holds and has a verdict for it. Suspension and a refusal (the spec, an
// object not owned, a foreign Istio installation: ForeignIstioInstallation) come first,
// then what waits for the mesh CA, a pass that could not plan, a failed
// write, a control plane past its deadline, and progress last (the active
// istiod, then the istio-cni node agent).
var ladder = []rung{{
	fact:  "suspended",
	holds: func(s *statusBuilder) bool { return s.suspend },
	// Ready keeps what was last known (finish); suspension changes nothing in the cluster.
	ready:       say(metav1.ConditionFalse, meshv1alpha1.ReasonSuspended, "spec.suspend is true"),
	reconciling: say(metav1.ConditionFalse, meshv1alpha1.ReasonSuspended, "spec.suspend is true: nothing is reconciled"),
}, {
	fact:  "spec refused",
	holds: func(s *statusBuilder) bool { return s.refusal != nil },
	ready: func(s *statusBuilder, _ error) verdict {
		return verdict{metav1.ConditionFalse, s.refusal.Reason, s.refusal.Message}
	},
	reconciling: func(s *statusBuilder, _ error) verdict {
		return verdict{metav1.ConditionFalse, s.refusal.Reason, "waiting for the spec to be fixed"}
	},
	stalled: func(s *statusBuilder, _ error) verdict {
		return verdict{metav1.ConditionTrue, s.refusal.Reason, s.refusal.Message}
	},
}, {
	fact:        "held for the mesh CA, a write failed",
	holds:       func(s *statusBuilder) bool { return s.caHeld() && s.failed() },
	ready:       applyFailed(metav1.ConditionFalse),
	reconciling: applyFailed(metav1.ConditionTrue),
}, {
	fact:        "held for the mesh CA, which needs a person",
	holds:       func(s *statusBuilder) bool { return s.caHeld() && s.ca.NeedsPerson },
	reconciling: caWaitsForPerson,
}, {
	fact:        "held for the mesh CA",
	holds:       (*statusBuilder).caHeld,
	ready:       caPending(metav1.ConditionFalse),
	reconciling: caPending(metav1.ConditionTrue),
}, {
	fact:  "no plan",
	holds: func(s *statusBuilder) bool { return s.plan == nil },
	ready: func(_ *statusBuilder, err error) verdict {
		return verdict{metav1.ConditionFalse, meshv1alpha1.ReasonProgressing, errMessage(err, "reconciling")}
	},
	reconciling: func(_ *statusBuilder, err error) verdict {
		return verdict{metav1.ConditionTrue, meshv1alpha1.ReasonProgressing, errMessage(err, "retrying")}
	},
}, {
	fact:        "a write failed",
	holds:       (*statusBuilder).failed,
	ready:       applyFailed(metav1.ConditionFalse),
	reconciling: applyFailed(metav1.ConditionTrue),
}, {
	fact:  "control plane missed its deadline",
	holds: (*statusBuilder).blocked,
	ready: func(s *statusBuilder, _ error) verdict {
		return verdict{metav1.ConditionFalse, meshv1alpha1.ReasonControlPlaneNotAvailable, s.plan.Message}
	},
	reconciling: func(s *statusBuilder, _ error) verdict {
		return verdict{metav1.ConditionFalse, meshv1alpha1.ReasonControlPlaneNotAvailable, "waiting for a person: " + s.plan.Message}
	},
	stalled: func(s *statusBuilder, _ error) verdict {
		return verdict{metav1.ConditionTrue, meshv1alpha1.ReasonControlPlaneNotAvailable, s.plan.Message}
	},
}, {
	fact:  "installing, upgrading or pruning",
	holds: func(s *statusBuilder) bool { return s.plan != nil && s.plan.Phase != revision.PhaseSteady },
	reconciling: func(s *statusBuilder, _ error) verdict {
		return verdict{metav1.ConditionTrue, phaseReason(s.plan.Phase), s.plan.Message}
	},
}, {
	fact:        "mesh CA not issued, needs a person",
	holds:       func(s *statusBuilder) bool { return s.caNotReady() != nil && s.ca.NeedsPerson },
	ready:       caPending(metav1.ConditionFalse),
	reconciling: caWaitsForPerson,
	stalled:     caPending(metav1.ConditionTrue),
}, {
	fact:        "mesh CA not issued",
	holds:       func(s *statusBuilder) bool { return s.caNotReady() != nil },
	ready:       caPending(metav1.ConditionFalse),
	reconciling: caPending(metav1.ConditionTrue),
}, {
	fact:  "active istiod not available",
	holds: func(s *statusBuilder) bool { return !s.activeReady() },
	ready: func(s *statusBuilder, _ error) verdict {
		reason := phaseReason(s.plan.Phase)
		if s.plan.Phase == revision.PhaseSteady || s.plan.Phase == revision.PhaseDraining {
			reason = meshv1alpha1.ReasonControlPlaneNotReady
		}
		return verdict{metav1.ConditionFalse, reason,
			fmt.Sprintf("istiod revision %s (%s) is not available yet", s.plan.Active.Name, s.plan.Active.Version)}
	},
	reconciling: say(metav1.ConditionTrue, meshv1alpha1.ReasonControlPlaneNotReady, "waiting for istiod to become available"),
}, {
	fact:  "node agent not available",
	holds: (*statusBuilder).cniNotReady,
	ready: func(s *statusBuilder, _ error) verdict {
		c := s.cniCondition()
		return verdict{metav1.ConditionFalse, c.Reason, c.Message}
	},
	reconciling: func(s *statusBuilder, _ error) verdict {
		c := s.cniCondition()
		return verdict{metav1.ConditionTrue, c.Reason, c.Message}
	},
}, {
	fact:  "done",
	holds: func(*statusBuilder) bool { return true },
	ready: func(s *statusBuilder, _ error) verdict {
		return verdict{metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded,
			fmt.Sprintf("Istio %s is available (revision %s)", s.plan.Active.ProxyVersion, s.plan.Active.Name)}
	},
	reconciling: say(metav1.ConditionFalse, meshv1alpha1.ReasonReconcileSucceeded, "the control plane matches the spec"),
	stalled:     say(metav1.ConditionFalse, meshv1alpha1.ReasonReconcileSucceeded, "no action needed from a person"),
}}

func say(status metav1.ConditionStatus, reason, message string) func(*statusBuilder, error) verdict {
	return func(*statusBuilder, error) verdict { return verdict{status, reason, message} }
}

func applyFailed(status metav1.ConditionStatus) func(*statusBuilder, error) verdict {
	return func(s *statusBuilder, _ error) verdict {
		return verdict{status, meshv1alpha1.ReasonApplyFailed, s.outcome.err().Error()}
	}
}

// caPending repeats CertificateAuthorityReady's reason and message.
func caPending(status metav1.ConditionStatus) func(*statusBuilder, error) verdict {
	return func(s *statusBuilder, _ error) verdict {
		ca := s.caNotReady()
		return verdict{status, ca.Reason, ca.Message}
	}
}

func caWaitsForPerson(s *statusBuilder, _ error) verdict {
	ca := s.caNotReady()
	return verdict{metav1.ConditionFalse, ca.Reason, "waiting for a person: " + ca.Message}
}

// climb returns the condition of type t from the first rung of the ladder
// that holds and has a verdict for t.
func (s *statusBuilder) climb(t string, err error) metav1.Condition {
	for _, r := range ladder {
		decide := r.verdictFor(t)
		if decide == nil || !r.holds(s) {
			continue
		}
		v := decide(s, err)
		return metav1.Condition{Type: t, Status: v.status, Reason: v.reason, Message: v.message}
	}
	panic("status ladder has no last rung for " + t)
}

func (r rung) verdictFor(t string) func(*statusBuilder, error) verdict {
	switch t {
	case meshv1alpha1.ConditionReady:
		return r.ready
	case meshv1alpha1.ConditionReconciling:
		return r.reconciling
	case meshv1alpha1.ConditionStalled:
		return r.stalled
	}
	return nil
}

func (s *statusBuilder) stalled() metav1.Condition {
	return s.climb(meshv1alpha1.ConditionStalled, nil)
}

func (s *statusBuilder) reconciling(err error) metav1.Condition {
	return s.climb(meshv1alpha1.ConditionReconciling, err)
}

func (s *statusBuilder) ready(mi *meshv1alpha1.MeshInstall, err error) metav1.Condition {
	if s.suspend {
		// Keep what was last known; suspension changes nothing in the cluster.
		if old := meta.FindStatusCondition(mi.Status.Conditions, meshv1alpha1.ConditionReady); old != nil {
			return *old
		}
	}
	return s.climb(meshv1alpha1.ConditionReady, err)
}

func (s *statusBuilder) upgrading() metav1.Condition {
	c := metav1.Condition{Type: meshv1alpha1.ConditionUpgradeInProgress, Status: metav1.ConditionFalse,
		Reason: meshv1alpha1.ReasonUpToDate, Message: "no upgrade in progress"}
	if s.plan == nil {
		return c
	}
	if s.blocked() {
		c.Reason, c.Message = meshv1alpha1.ReasonControlPlaneNotAvailable, s.plan.Message
		return c
	}
	switch s.plan.Phase {
	case revision.PhaseUpgradingInPlace, revision.PhaseCanary, revision.PhaseCanaryPaused, revision.PhaseAborting:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, phaseReason(s.plan.Phase), s.plan.Message
		return c
	}
	if m := s.migration; m != nil && m.Phase != meshv1alpha1.MigrationComplete && m.Phase != meshv1alpha1.MigrationAborted {
		c.Status, c.Reason = metav1.ConditionTrue, meshv1alpha1.ReasonMigrating
		c.Message = fmt.Sprintf("migration off the foreign revision %s (%s, %d%%): %s", m.Revision, m.Phase, m.Weight, m.Message)
	}
	return c
}

// activeReady is true when the active revision's istiod is available with
// its current template and the data plane gets that version.
func (s *statusBuilder) activeReady() bool {
	a := s.plan.Active
	return available(s.obs.Revisions[a.Name], a.Version.String()) && a.Version.Compare(a.ProxyVersion) == 0
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
