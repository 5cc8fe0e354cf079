package revision

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
	"github.com/meshkeeper/meshkeeper/internal/requeue"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// DefaultSteps and DefaultStepInterval apply when spec.updateStrategy.canary is unset.
var (
	DefaultSteps        = []int32{10, 50, 100}
	DefaultStepInterval = 5 * time.Minute
)

// CanarySettings are the canary's steps, step interval and pause, defaults applied.
func CanarySettings(mi *meshv1alpha1.MeshInstall) (steps []int32, interval time.Duration, paused bool) {
	steps, interval = DefaultSteps, DefaultStepInterval
	if c := mi.Spec.UpdateStrategy.Canary; c != nil {
		if len(c.Steps) > 0 {
			steps = c.Steps
		}
		if c.StepInterval != nil {
			interval = c.StepInterval.Duration
		}
		paused = c.Paused
	}
	return steps, interval, paused
}

// startCanary creates the canary revision with no workload assigned: its
// first step starts only once its istiod is available.
func startCanary(mi *meshv1alpha1.MeshInstall, obs Observed, desired version.Version, p *Plan) error {
	if err := version.CheckCanary(p.Active.Version, desired); err != nil {
		return refusalFromSkew(err)
	}
	name := desired.Revision()
	if name == p.Active.Name {
		return refusal.Newf(meshv1alpha1.ReasonInvalidSpec,
			"spec.version: the active revision is already named %s but runs %s; upgrade it in place", name, p.Active.Version)
	}
	return continueCanary(mi, obs, &Routing{Active: p.Active.Name, Canary: name}, desired, p)
}

// continueCanary starts, advances, holds, promotes or aborts the canary that
// routing names. Its weight grows only while its istiod is available and its
// pods are Ready, and a step lasts stepInterval of uninterrupted health.
func continueCanary(mi *meshv1alpha1.MeshInstall, obs Observed, routing *Routing, desired version.Version, p *Plan) error {
	name := routing.Canary
	canaryVersion, err := canaryVersionOf(mi, obs, name, desired)
	if err != nil {
		return err
	}
	switch {
	case desired.Compare(p.Active.Version) == 0:
		// spec.version went back: the canary gets no more workloads and drains.
		p.Phase = PhaseAborting
		p.Message = fmt.Sprintf("canary %s aborted: workloads return to revision %s", name, p.Active.Name)
		return nil
	case desired.Compare(canaryVersion) != 0:
		return refusal.Newf(meshv1alpha1.ReasonInvalidSpec,
			"spec.version: a canary to %s is in progress; set spec.version to %s to continue it or back to %s to abort it",
			canaryVersion, canaryVersion, p.Active.Version)
	case mi.Spec.UpdateStrategy.Type != meshv1alpha1.UpdateStrategyCanary:
		return refusal.Newf(meshv1alpha1.ReasonStrategyChangeRejected,
			"spec.updateStrategy.type: a canary to %s is in progress; finish it, or abort it by setting spec.version back to %s, before switching to InPlace",
			canaryVersion, p.Active.Version)
	}

	steps, interval, paused := CanarySettings(mi)
	o := obs.Revisions[name]
	// Available for workloads: its istiod, and the node agent for its version.
	available, cniWhy := readyAt(mi, obs, name, canaryVersion)
	// With Automatic rollouts a step is healthy once the workloads it
	// assigns to the canary run on it.
	podsOK, recheck := podsHealthy(o, obs.Now, interval)
	healthy := available && podsOK && !obs.CanaryWorkloadsPending
	serving := available || (o.Istiod != nil && o.Istiod.Serving && o.ControlPlaneVersion == canaryVersion.String())
	now := metav1.NewTime(obs.Now)
	weight := routing.Weight
	// What status remembers of this very step; when it is lost the clocks start now.
	var remembered *meshv1alpha1.CanaryStatus
	if c := mi.Status.Canary; c != nil && c.Revision == name && c.Weight == weight {
		remembered = c
	}
	c := &meshv1alpha1.CanaryStatus{Revision: name, Version: canaryVersion.String(), Step: stepIndex(steps, weight), Weight: weight, StepStartTime: &now}
	if remembered != nil && remembered.StepStartTime != nil {
		c.StepStartTime = remembered.StepStartTime
	}
	p.Phase = PhaseCanary

	switch next := nextStep(steps, weight); {
	case weight > 0 && !serving:
		// Its istiod stopped serving: new pods go to the active revision
		// until it is back, and the steps start over then.
		c = &meshv1alpha1.CanaryStatus{Revision: name, Version: c.Version}
		waitFor(p, name, o, "canary %s (%s): its istiod is not serving; new pods go to revision %s until it is available again, then the canary starts over",
			name, canaryVersion, p.Active.Name)
	case weight == 0 && cniWhy != "":
		c.StepStartTime = nil
		waitForCNI(p, cniWhy, "canary %s (%s): its istiod is available; no workload moves to it before the node agent is ready for it", name, canaryVersion)
	case weight == 0 && !available:
		c.StepStartTime = nil
		waitFor(p, name, o, "canary %s (%s): waiting for its istiod to become available before any workload moves to it", name, canaryVersion)
	case weight == 0 && paused && next >= 100:
		p.Phase = PhaseCanaryPaused
		p.Message = fmt.Sprintf("canary %s paused before its promotion", name)
	case weight == 0 || (!paused && healthy && healthyFor(remembered, obs.Now) >= interval):
		// A canary started while paused gets its first step, never a promotion.
		if next >= 100 {
			promote(name, canaryVersion, p)
			return nil
		}
		c = &meshv1alpha1.CanaryStatus{Revision: name, Version: c.Version, Step: stepIndex(steps, next), Weight: next, StepStartTime: &now}
		if healthy {
			c.HealthySince = &now
		}
		p.Message = fmt.Sprintf("canary %s now receives %d%% of workloads", name, next)
		p.RequeueAfter = interval
	case paused:
		p.Phase = PhaseCanaryPaused
		p.Message = fmt.Sprintf("canary %s paused at %d%%", name, weight)
		c.HealthySince = healthySinceOf(remembered, healthy, now)
	case !healthy:
		what := "its pods to be Ready"
		switch {
		case cniWhy != "":
			what = "the node agent to be ready for it again: " + cniWhy
		case !available:
			what = "its istiod to be available again"
		case obs.CanaryWorkloadsPending:
			what = "the workloads this step assigns to it to be restarted onto it"
		}
		p.Message = fmt.Sprintf("canary %s at %d%%: waiting for %s; the step's interval starts again once it is healthy", name, weight, what)
		if !available {
			waitFor(p, name, o, "%s", p.Message)
		}
		p.RequeueAfter = requeue.Sooner(p.RequeueAfter, waitPoll)
	default:
		c.HealthySince = healthySinceOf(remembered, true, now)
		p.Message = fmt.Sprintf("canary %s at %d%%", name, weight)
		// A starting pod is judged when its grace ends, whether or not it
		// ever changes again.
		p.RequeueAfter = requeue.Sooner(interval-obs.Now.Sub(c.HealthySince.Time), recheck)
	}
	p.Canary = c
	p.Active.Weight = 100 - c.Weight
	p.Routing.Canary, p.Routing.Weight = name, c.Weight
	p.Revisions = append(p.Revisions, Planned{Name: name, Version: canaryVersion, ProxyVersion: canaryVersion,
		Role: meshv1alpha1.RevisionCanary, Weight: c.Weight})
	return nil
}

// canaryVersionOf is the version of the canary revision: what its objects
// say, else what status recorded, else the desired version when the
// revision is named after it.
func canaryVersionOf(mi *meshv1alpha1.MeshInstall, obs Observed, name string, desired version.Version) (version.Version, error) {
	if o, ok := obs.Revisions[name]; ok && (o.ControlPlaneVersion != "" || o.ProxyVersion != "" || o.PodVersion != "") {
		cp, _, err := versionsOf(mi, obs, name)
		return cp, err
	}
	if c := mi.Status.Canary; c != nil && c.Revision == name {
		if v, err := version.Parse(c.Version); err == nil {
			return v, nil
		}
	}
	if desired.Revision() == name {
		return desired, nil
	}
	return version.Version{}, refusal.Newf(meshv1alpha1.ReasonUnsupportedVersion,
		"canary revision %s: the cluster does not say which Istio version it runs", name)
}

// PodStartGrace is how long a pod on the canary may take to become Ready
// before it counts against the canary's health. Pods are created all the
// time on a busy cluster (replicas scaled up, Jobs, the workloads a step
// moves): "every pod Ready at once" is rarely true there, and a canary
// held to it never completed a step while pods kept coming (an e2e that
// created a pod every half second held one at 50 % for 20 s on a loaded
// machine). A pod that has run for longer than the grace counts as soon
// as it is not Ready.
const PodStartGrace = 30 * time.Second

// podsHealthy reports whether the revision's pods count as healthy: each
// one Ready, or not yet Ready but created less than the grace ago, which
// is PodStartGrace or the step's interval when that is shorter (no step
// completes over a pod that has been starting for its whole interval).
// When a starting pod decides it, recheck is when its grace ends.
func podsHealthy(o ObservedRevision, now time.Time, interval time.Duration) (healthy bool, recheck time.Duration) {
	if o.PodsReady {
		return true, 0
	}
	grace := min(PodStartGrace, interval)
	if o.OldestUnreadyPod.IsZero() {
		return false, 0
	}
	if age := now.Sub(o.OldestUnreadyPod); age < grace {
		return true, grace - age
	}
	return false, 0
}

// healthyFor is how long the canary has been healthy at its current step, as status remembers it.
func healthyFor(remembered *meshv1alpha1.CanaryStatus, now time.Time) time.Duration {
	if remembered == nil || remembered.HealthySince == nil {
		return 0
	}
	return now.Sub(remembered.HealthySince.Time)
}

func healthySinceOf(remembered *meshv1alpha1.CanaryStatus, healthy bool, now metav1.Time) *metav1.Time {
	if !healthy {
		return nil
	}
	if remembered != nil && remembered.HealthySince != nil {
		return remembered.HealthySince
	}
	return &now
}

// nextStep is the first step above weight (100 when none is).
func nextStep(steps []int32, weight int32) int32 {
	for _, s := range steps {
		if s > weight {
			return s
		}
	}
	return 100
}

// stepIndex is the index of the last step at or below weight (0 before the first).
func stepIndex(steps []int32, weight int32) int32 {
	i := int32(0)
	for j, s := range steps {
		if s <= weight {
			i = int32(j)
		}
	}
	return i
}

// promote makes the canary the active revision; the old one drains.
func promote(name string, v version.Version, p *Plan) {
	old := p.Active
	p.Active = Planned{Name: name, Version: v, ProxyVersion: v, Role: meshv1alpha1.RevisionActive, Weight: 100}
	p.Routing = &Routing{Tags: p.Routing.Tags, Active: name}
	p.Canary = nil
	p.Phase = PhaseSteady
	p.Message = fmt.Sprintf("revision %s promoted; %s drains", name, old.Name)
}
