package revision

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// DefaultSteps and DefaultStepInterval apply when spec.updateStrategy.canary is unset.
var (
	DefaultSteps        = []int32{10, 50, 100}
	DefaultStepInterval = 5 * time.Minute
)

func canarySettings(mi *meshv1alpha1.MeshInstall) (steps []int32, interval time.Duration, paused bool) {
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

// startCanary begins a canary from the active version to desired.
func startCanary(mi *meshv1alpha1.MeshInstall, obs Observed, active, desired version.Version, p *Plan) error {
	if err := version.CheckCanary(active, desired); err != nil {
		return refusalFromSkew(err)
	}
	name := desired.Revision()
	if name == p.Active.Name {
		return refuse(meshv1alpha1.ReasonInvalidSpec,
			"spec.version: the active revision is already named %s but runs %s; upgrade it in place", name, active)
	}
	steps, _, _ := canarySettings(mi)
	now := metav1.NewTime(obs.Now)
	p.Canary = &meshv1alpha1.CanaryStatus{Revision: name, Version: desired.String(), Step: 0, Weight: steps[0], StepStartTime: &now}
	if steps[0] >= 100 {
		// A single 100% step: bring the canary up, then promote once it is ready.
		p.Canary.Weight = 0
	}
	return continueCanary(mi, obs, desired, p)
}

// continueCanary advances, holds, promotes or aborts the canary in progress.
func continueCanary(mi *meshv1alpha1.MeshInstall, obs Observed, desired version.Version, p *Plan) error {
	c := p.Canary
	if c == nil {
		c = mi.Status.Canary.DeepCopy()
	}
	canaryVersion, err := version.Parse(c.Version)
	if err != nil {
		return refuse(meshv1alpha1.ReasonUnsupportedVersion, "canary revision %s: %v", c.Revision, err)
	}

	switch {
	case desired.Compare(p.Active.Version) == 0:
		// spec.version went back: the canary gets no more workloads and drains.
		p.Phase = PhaseAborting
		p.Message = fmt.Sprintf("canary %s aborted: workloads return to revision %s", c.Revision, p.Active.Name)
		p.Canary = nil
		return nil
	case desired.Compare(canaryVersion) != 0:
		return refuse(meshv1alpha1.ReasonInvalidSpec,
			"spec.version: a canary to %s is in progress; set spec.version to %s to continue it or back to %s to abort it",
			canaryVersion, canaryVersion, p.Active.Version)
	case mi.Spec.UpdateStrategy.Type != meshv1alpha1.UpdateStrategyCanary:
		return refuse(meshv1alpha1.ReasonStrategyChangeRejected,
			"spec.updateStrategy.type: a canary to %s is in progress; finish it, or abort it by setting spec.version back to %s, before switching to InPlace",
			canaryVersion, p.Active.Version)
	}

	steps, interval, paused := canarySettings(mi)
	step := int(c.Step)
	if step >= len(steps) {
		step = len(steps) - 1
	}
	o := obs.Revisions[c.Revision]
	healthy := o.Ready && o.PodsReady
	started := obs.Now
	if c.StepStartTime != nil {
		started = c.StepStartTime.Time
	}
	elapsed := obs.Now.Sub(started)
	p.Phase = PhaseCanary

	switch {
	case paused:
		p.Phase = PhaseCanaryPaused
		p.Message = fmt.Sprintf("canary %s paused at %d%%", c.Revision, c.Weight)
	case !healthy:
		p.Message = fmt.Sprintf("canary %s at %d%%: waiting for its istiod and pods to be ready", c.Revision, c.Weight)
		p.RequeueAfter = 10 * time.Second
	case steps[step] >= 100 || (elapsed >= interval && step+1 < len(steps) && steps[step+1] >= 100):
		promote(c, canaryVersion, p)
		return nil
	case elapsed >= interval && step+1 < len(steps):
		now := metav1.NewTime(obs.Now)
		step++
		c = &meshv1alpha1.CanaryStatus{Revision: c.Revision, Version: c.Version, Step: int32(step), Weight: steps[step], StepStartTime: &now}
		p.Message = fmt.Sprintf("canary %s advanced to %d%%", c.Revision, c.Weight)
		p.RequeueAfter = interval
	default:
		p.Message = fmt.Sprintf("canary %s at %d%%", c.Revision, c.Weight)
		p.RequeueAfter = interval - elapsed
	}
	p.Canary = c
	p.Active.Weight = 100 - c.Weight
	p.Revisions = append(p.Revisions, Planned{Name: c.Revision, Version: canaryVersion, Role: meshv1alpha1.RevisionCanary, Weight: c.Weight})
	return nil
}

// promote makes the canary the active revision; the old one drains.
func promote(c *meshv1alpha1.CanaryStatus, v version.Version, p *Plan) {
	old := p.Active
	p.Active = Planned{Name: c.Revision, Version: v, Role: meshv1alpha1.RevisionActive, Weight: 100}
	p.Canary = nil
	p.Phase = PhaseSteady
	p.Message = fmt.Sprintf("revision %s promoted; %s drains", c.Revision, old.Name)
}
