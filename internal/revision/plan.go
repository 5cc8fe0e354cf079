// Package revision decides, purely, which control plane revisions should
// exist and what each one does: install, in-place upgrade, canary steps,
// promotion, abort and pruning. The reconciler observes the cluster, asks
// Decide, and carries out the one plan it returns.
package revision

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// DefaultRevision is the name of the revision installed with the InPlace
// strategy; its istiod is named plain "istiod".
const DefaultRevision = "default"

// Observed is what the reconciler saw in the cluster this pass.
type Observed struct {
	// Now is the time of the observation.
	Now time.Time
	// Revisions are the revisions whose istiod Deployment exists, by name.
	Revisions map[string]ObservedRevision
	// InventoryKnown is false when pods could not be listed; nothing is pruned then.
	InventoryKnown bool
}

// ObservedRevision is the observed state of one revision.
type ObservedRevision struct {
	// Version the istiod Deployment currently runs (from its labels).
	Version string
	// Ready is true when the Deployment rolled out its current template and is available.
	Ready bool
	// Pods is the number of running pods injected by this revision.
	Pods int32
	// PodsReady is true when every running pod injected by this revision is Ready.
	PodsReady bool
}

// Planned is one revision that should exist.
type Planned struct {
	Name    string
	Version version.Version
	Role    meshv1alpha1.RevisionRole
	// Weight is the share (percent) of tag-selecting workloads assigned to it.
	Weight int32
}

// Phase summarises what the plan is doing, for conditions and events.
type Phase string

// Phases of a plan.
const (
	PhaseInstalling       Phase = "Installing"
	PhaseUpgradingInPlace Phase = "UpgradingInPlace"
	PhaseCanary           Phase = "Canary"
	PhaseCanaryPaused     Phase = "CanaryPaused"
	PhaseAborting         Phase = "Aborting"
	PhaseDraining         Phase = "Draining"
	PhaseSteady           Phase = "Steady"
)

// Plan is the decision of one pass.
type Plan struct {
	// Active is the revision the tags point at after this pass.
	Active Planned
	// Revisions are every revision to keep rendered, the active one first.
	Revisions []Planned
	// Canary is the canary progress to record; nil when no canary runs.
	Canary *meshv1alpha1.CanaryStatus
	// Prune are revisions to delete now.
	Prune []string
	// LastUsed is when each non-active revision was last seen in use.
	LastUsed map[string]metav1.Time
	// Phase says what is happening.
	Phase Phase
	// Message explains the phase to a person.
	Message string
	// RequeueAfter is when to look again even if nothing changes (0 = no need).
	RequeueAfter time.Duration
}

// Refusal is a spec the operator will not carry out; Reason is one of the
// api/v1alpha1 Reason* constants. The reconciler reports it as Stalled.
type Refusal struct {
	Reason  string
	Message string
}

func (r *Refusal) Error() string { return r.Message }

func refuse(reason, format string, args ...any) *Refusal {
	return &Refusal{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Decide returns the plan for mi given what was observed. Its only inputs
// are its arguments.
func Decide(mi *meshv1alpha1.MeshInstall, obs Observed) (Plan, error) {
	desired, err := version.Parse(mi.Spec.Version)
	if err != nil {
		return Plan{}, refuse(meshv1alpha1.ReasonUnsupportedVersion, "spec.version: %v", err)
	}
	st := &mi.Status
	if st.ActiveRevision == "" {
		return install(mi, desired), nil
	}
	active, err := activeVersion(mi)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{
		Active:   Planned{Name: st.ActiveRevision, Version: active, Role: meshv1alpha1.RevisionActive, Weight: 100},
		LastUsed: map[string]metav1.Time{},
		Phase:    PhaseSteady,
	}

	switch {
	case st.Canary != nil:
		if err := continueCanary(mi, obs, desired, &p); err != nil {
			return Plan{}, err
		}
	case desired.Compare(active) == 0:
		// Nothing to roll out.
	case mi.Spec.UpdateStrategy.Type == meshv1alpha1.UpdateStrategyCanary:
		if err := startCanary(mi, obs, active, desired, &p); err != nil {
			return Plan{}, err
		}
	default:
		if err := checkInPlace(mi, active, desired); err != nil {
			return Plan{}, err
		}
		p.Active.Version = desired
	}
	if p.Phase == PhaseSteady {
		rolledOut := st.Version // the last version the active revision fully rolled out
		switch o, ok := obs.Revisions[p.Active.Name]; {
		case !ok:
			p.Phase = PhaseInstalling
			p.Message = fmt.Sprintf("installing Istio %s as revision %s", p.Active.Version, p.Active.Name)
		case o.Ready && o.Version == p.Active.Version.String():
			// Rolled out.
		case rolledOut == "":
			p.Phase = PhaseInstalling
			p.Message = fmt.Sprintf("waiting for istiod revision %s (%s) to become available", p.Active.Name, p.Active.Version)
		case rolledOut != p.Active.Version.String():
			p.Phase = PhaseUpgradingInPlace
			p.Message = fmt.Sprintf("rolling istiod revision %s from %s to %s", p.Active.Name, rolledOut, p.Active.Version)
		}
	}
	p.Revisions = append([]Planned{p.Active}, p.Revisions...)
	drain(mi, obs, &p)
	return p, nil
}

// install plans the first revision of a new MeshInstall.
func install(mi *meshv1alpha1.MeshInstall, desired version.Version) Plan {
	name := DefaultRevision
	if mi.Spec.UpdateStrategy.Type == meshv1alpha1.UpdateStrategyCanary {
		name = desired.Revision()
	}
	active := Planned{Name: name, Version: desired, Role: meshv1alpha1.RevisionActive, Weight: 100}
	return Plan{
		Active: active, Revisions: []Planned{active}, LastUsed: map[string]metav1.Time{},
		Phase: PhaseInstalling, Message: fmt.Sprintf("installing Istio %s as revision %s", desired, name),
	}
}

// activeVersion is the version the active revision was last set to.
func activeVersion(mi *meshv1alpha1.MeshInstall) (version.Version, error) {
	v := mi.Status.Version
	for _, r := range mi.Status.Revisions {
		if r.Name == mi.Status.ActiveRevision {
			v = r.Version
		}
	}
	parsed, err := version.Parse(v)
	if err != nil {
		return version.Version{}, refuse(meshv1alpha1.ReasonUnsupportedVersion,
			"the active revision %s runs %q, which this operator does not support: %v", mi.Status.ActiveRevision, v, err)
	}
	return parsed, nil
}

// checkInPlace applies Istio's in-place rules against both the version the
// active revision is set to and the last one it fully rolled out, so a second
// bump during an unfinished rollout cannot skip a minor.
func checkInPlace(mi *meshv1alpha1.MeshInstall, active, desired version.Version) error {
	if err := version.CheckInPlace(active, desired); err != nil {
		return refusalFromSkew(err)
	}
	if rolledOut, err := version.Parse(mi.Status.Version); err == nil {
		if err := version.CheckInPlace(rolledOut, desired); err != nil {
			return refusalFromSkew(err)
		}
	}
	return nil
}

func refusalFromSkew(err error) error {
	if skew, ok := err.(*version.SkewError); ok {
		return &Refusal{Reason: skew.Rule, Message: skew.Message}
	}
	return err
}

// drain keeps revisions that are neither active nor canary until no running
// pod has used them for the grace period, then prunes them.
func drain(mi *meshv1alpha1.MeshInstall, obs Observed, p *Plan) {
	grace := 30 * time.Second
	if g := mi.Spec.UpdateStrategy.InactiveRevisionDeletionGracePeriod; g != nil {
		grace = g.Duration
	}
	keep := map[string]bool{}
	for _, r := range p.Revisions {
		keep[r.Name] = true
	}
	lastUsed := map[string]metav1.Time{}
	versions := map[string]string{}
	for _, r := range mi.Status.Revisions {
		if r.LastUsedTime != nil {
			lastUsed[r.Name] = *r.LastUsedTime
		}
		versions[r.Name] = r.Version
	}
	// Only revisions still in the cluster can be drained or pruned; one
	// that status remembers but the cluster no longer has is already gone.
	for _, name := range slices.Sorted(maps.Keys(obs.Revisions)) {
		if keep[name] {
			continue
		}
		o := obs.Revisions[name]
		last, seen := lastUsed[name]
		if !seen || o.Pods > 0 || !obs.InventoryKnown {
			last = metav1.NewTime(obs.Now)
		}
		p.LastUsed[name] = last
		idle := obs.Now.Sub(last.Time)
		if obs.InventoryKnown && o.Pods == 0 && idle >= grace {
			p.Prune = append(p.Prune, name)
			continue
		}
		v, err := version.Parse(cmp.Or(o.Version, versions[name]))
		if err != nil {
			// A revision we cannot describe is still kept until unused.
			v = p.Active.Version
		}
		p.Revisions = append(p.Revisions, Planned{Name: name, Version: v, Role: meshv1alpha1.RevisionDraining})
		if p.Phase == PhaseSteady {
			p.Phase = PhaseDraining
			p.Message = fmt.Sprintf("waiting for revision %s to be unused before removing it", name)
		}
		// In use (or usage unknown), idle is 0 and the wait a whole grace period.
		p.RequeueAfter = minPositive(p.RequeueAfter, grace-idle)
	}
}

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 || (b > 0 && b < a) {
		return b
	}
	return a
}
