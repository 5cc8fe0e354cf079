// Package revision decides, purely, which control plane revisions should
// exist and what each one does: install, in-place upgrade, canary steps,
// promotion, abort and pruning. The reconciler observes the cluster, asks
// Decide, and carries out the one plan it returns.
//
// The cluster is the planner's memory: the revisions that exist come from
// the MeshInstall's own objects (pod stamps only count their pods), and
// where the tags point from the routing kept beside the control plane. Status only refines timings (when a canary
// turned healthy, when a revision was first seen unused); when it is
// missing, the planner waits as if those clocks had just started.
package revision

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/requeue"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// DefaultTag is the tag istio-injection=enabled, and the pod label
// sidecar.istio.io/inject=true in an unlabelled namespace, select; it
// always follows the active revision.
const DefaultTag = "default"

// Observed is what the reconciler saw in the cluster this pass.
type Observed struct {
	// Now is the time of the observation.
	Now time.Time
	// Revisions are every revision the cluster holds, by name: those with
	// objects the MeshInstall owns (pod stamps never add one: they only count).
	Revisions map[string]ObservedRevision
	// Routing is where the tags point, as kept in the cluster; nil when
	// nothing has been routed yet.
	Routing *Routing
	// InventoryKnown is false when pods could not be counted; nothing is pruned then.
	InventoryKnown bool
	// CanaryWorkloadsPending is true while workloads the canary's step
	// assigns to it wait to be restarted or are rolling (Automatic rollouts).
	CanaryWorkloadsPending bool
	// CNI is the istio-cni node agent; nil when there is none. With
	// spec.cni, no workload is routed to a revision it is not ready for
	// (cniReadyFor), as none is to a revision whose istiod is not available.
	CNI *ObservedCNI
}

// ObservedRevision is the observed state of one revision.
type ObservedRevision struct {
	// ControlPlaneVersion is the version its istiod Deployment is set to; "" without one.
	ControlPlaneVersion string
	// ProxyVersion is the version of its injection configuration, which new
	// pods get; "" without one.
	ProxyVersion string
	// PodVersion is the newest proxy version its running pods are stamped
	// with, for a revision whose objects are gone.
	PodVersion string
	// Istiod is its istiod Deployment's rollout; nil when there is no Deployment.
	Istiod *Rollout
	// Pods is the number of running pods injected by this revision.
	Pods int32
	// PodsReady is true when every running pod injected by this revision is Ready.
	PodsReady bool
	// OldestUnreadyPod is when the oldest of its running pods that are not
	// Ready was created (zero when PodsReady): a canary's pods are judged
	// with a grace for starting (PodStartGrace).
	OldestUnreadyPod time.Time
	// SelectedBy says what would still have new pods injected by this
	// revision (a namespace's istio.io/rev label, a workload's pod
	// template), in words: a revision is not pruned while anything selects
	// it, even with no pod running (a CronJob between runs, a workload
	// scaled to zero).
	SelectedBy []string
	// InjectsCNI says its injection configuration in the cluster injects
	// pods for the istio-cni node agent (istio-validation, no istio-init).
	InjectsCNI bool
}

// Rollout is the state of an istiod Deployment.
type Rollout struct {
	// Available is true when every replica runs the current template and is available.
	Available bool
	// Serving is true while some replica is available, whatever its
	// template (during a rollout of the same version, the old ones serve).
	Serving bool
	// DeadlineExceeded is true when the Deployment missed its progress deadline.
	DeadlineExceeded bool
	// Reason says why it is not available, in the Deployment's and its pods' words.
	Reason string
}

// availableAt reports whether the revision's istiod is available running v.
func (o ObservedRevision) availableAt(v version.Version) bool {
	return o.Istiod != nil && o.Istiod.Available && o.ControlPlaneVersion == v.String()
}

// Planned is one revision that should exist.
type Planned struct {
	Name string
	// Version is what its istiod runs.
	Version version.Version
	// ProxyVersion is what its injection configuration (and, for the active
	// revision, the gateways) gives new pods. It trails Version during an
	// in-place upgrade until the new istiod is available: the data plane is
	// never ahead of its control plane.
	ProxyVersion version.Version
	Role         meshv1alpha1.RevisionRole
	// Weight is the share (percent) of tag-selecting workloads assigned to it.
	Weight int32
	// InjectCNI says its injection configuration injects pods for the
	// istio-cni node agent (planCNI).
	InjectCNI bool
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
	// Routing is where the tags should point after this pass; nil while
	// nothing may be routed yet (a first install whose istiod is not available).
	Routing *Routing
	// Canary is the canary progress to record; nil when no canary runs.
	Canary *meshv1alpha1.CanaryStatus
	// Prune are revisions to delete now.
	Prune []string
	// UnusedSince is, for each draining revision no running pod uses, when it
	// was first seen unused.
	UnusedSince map[string]metav1.Time
	// Phase says what is happening.
	Phase Phase
	// Message explains the phase to a person.
	Message string
	// Waiting is set while a new istiod is not available yet and nothing moves to it.
	Waiting bool
	// Blocked is set when that istiod also missed its progress deadline: a
	// person must fix it, or set spec.version back.
	Blocked bool
	// RequeueAfter is when to look again even if nothing changes (0 = no need).
	RequeueAfter time.Duration
	// CNIVersion is the version the istio-cni node agent should run
	// (CNIVersion); zero without spec.cni.
	CNIVersion version.Version
}

// waitPoll is how often a wait for an istiod or for pods looks again.
const waitPoll = 10 * time.Second

// Decide returns the plan for mi given what was observed. Its only inputs
// are its arguments.
func Decide(mi *meshv1alpha1.MeshInstall, obs Observed) (Plan, error) {
	desired, err := version.Parse(mi.Spec.Version)
	if err != nil {
		return Plan{}, refusal.Newf(meshv1alpha1.ReasonUnsupportedVersion, "spec.version: %v", err)
	}
	routing := currentRouting(mi, obs)
	if routing == nil {
		p := install(mi, obs, desired)
		drain(mi, obs, &p)
		planCNI(mi, obs, &p)
		return p, nil
	}
	cp, proxy, err := versionsOf(mi, obs, routing.Active)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{
		Active:      Planned{Name: routing.Active, Version: cp, ProxyVersion: proxy, Role: meshv1alpha1.RevisionActive, Weight: 100},
		Routing:     &Routing{Tags: tagsOf(mi), Active: routing.Active},
		UnusedSince: map[string]metav1.Time{},
		Phase:       PhaseSteady,
	}
	switch {
	case routing.Canary != "":
		if err := continueCanary(mi, obs, routing, desired, &p); err != nil {
			return Plan{}, err
		}
	case desired.Compare(cp) == 0 && desired.Compare(proxy) == 0:
		// Nothing to roll out.
	case mi.Spec.UpdateStrategy.Type == meshv1alpha1.UpdateStrategyCanary && cp.Compare(proxy) == 0:
		if err := startCanary(mi, obs, desired, &p); err != nil {
			return Plan{}, err
		}
	case mi.Spec.UpdateStrategy.Type == meshv1alpha1.UpdateStrategyCanary && desired.Compare(proxy) != 0:
		return Plan{}, refusal.Newf(meshv1alpha1.ReasonStrategyChangeRejected,
			"spec.updateStrategy.type: revision %s is being upgraded in place from %s to %s; let it finish, or set spec.version back to %s, before starting a canary",
			routing.Active, proxy, cp, proxy)
	default:
		if err := upgradeInPlace(mi, obs, desired, &p); err != nil {
			return Plan{}, err
		}
	}
	if p.Phase == PhaseSteady {
		steady(obs, &p)
	}
	p.Revisions = append([]Planned{p.Active}, p.Revisions...)
	drain(mi, obs, &p)
	planCNI(mi, obs, &p)
	return p, nil
}

// planCNI sets the node agent's version from the revisions the plan keeps,
// and which revisions inject pods for it. A revision's injection switches
// to the agent's shape only once the agent is ready for it (cniReadyFor):
// turning spec.cni on over a running mesh would otherwise give new and
// restarted pods an istio-validation that fails on nodes without the
// agent. Once switched it stays (a flapping agent does not flip the pods'
// shape back and forth; the routing gate holds new moves). Turning
// spec.cni off switches back at once: istio-init needs no agent.
func planCNI(mi *meshv1alpha1.MeshInstall, obs Observed, p *Plan) {
	if !mi.Spec.CNI.Enabled {
		return
	}
	p.CNIVersion, _ = CNIVersion(p.Revisions)
	for i := range p.Revisions {
		r := &p.Revisions[i]
		ready, _ := cniReadyFor(mi, obs, r.Version)
		r.InjectCNI = ready || obs.Revisions[r.Name].InjectsCNI
		if r.Name == p.Active.Name {
			p.Active.InjectCNI = r.InjectCNI
		}
	}
}

// currentRouting is where the tags point now: the routing kept in the
// cluster. Without it (a cluster written by an older meshkeeper, or the
// routing deleted), status is believed if it reports a rolled-out version
// and the cluster still holds what it names, and otherwise the revision
// most running pods use. Nil means a
// fresh install: nothing was ever routed.
func currentRouting(mi *meshv1alpha1.MeshInstall, obs Observed) *Routing {
	if obs.Routing != nil {
		return obs.Routing
	}
	// Status names a revision that was routed once it reports a rolled-out version.
	if a := mi.Status.ActiveRevision; a != "" && mi.Status.Version != "" {
		if _, ok := obs.Revisions[a]; ok {
			r := &Routing{Active: a}
			if c := mi.Status.Canary; c != nil {
				if _, ok := obs.Revisions[c.Revision]; ok {
					r.Canary, r.Weight = c.Revision, c.Weight
				}
			}
			return r
		}
	}
	// Serving revisions first, then the one most pods use.
	better := func(a, b ObservedRevision) bool {
		if sa, sb := a.Istiod != nil && a.Istiod.Serving, b.Istiod != nil && b.Istiod.Serving; sa != sb {
			return sa
		}
		return a.Pods > b.Pods
	}
	// Only a revision whose control plane is still there can be the active
	// one; one known only from pod stamps is drained, never routed to.
	best := ""
	for _, name := range slices.Sorted(maps.Keys(obs.Revisions)) {
		o := obs.Revisions[name]
		if o.Pods > 0 && (o.Istiod != nil || o.ControlPlaneVersion != "") && (best == "" || better(o, obs.Revisions[best])) {
			best = name
		}
	}
	if best == "" {
		return nil
	}
	return &Routing{Active: best}
}

// install plans the first revision of a new MeshInstall. Tags are routed to
// it only once its istiod is available: until then, as with Istio's own
// injector, pods cannot be injected (the webhook's failurePolicy decides).
func install(mi *meshv1alpha1.MeshInstall, obs Observed, desired version.Version) Plan {
	name := render.DefaultRevision
	if mi.Spec.UpdateStrategy.Type == meshv1alpha1.UpdateStrategyCanary {
		name = desired.Revision()
	}
	active := Planned{Name: name, Version: desired, ProxyVersion: desired, Role: meshv1alpha1.RevisionActive, Weight: 100}
	p := Plan{
		Active: active, Revisions: []Planned{active}, UnusedSince: map[string]metav1.Time{},
		Phase: PhaseInstalling, Message: fmt.Sprintf("installing Istio %s as revision %s", desired, name),
	}
	o := obs.Revisions[name]
	ready, cniWhy := readyAt(mi, obs, name, desired)
	switch {
	case ready:
		p.Routing = &Routing{Tags: tagsOf(mi), Active: name}
		p.Phase, p.Message = PhaseSteady, ""
	case cniWhy != "":
		waitForCNI(&p, cniWhy, "installing Istio %s: istiod is available; waiting for the node agent before routing any pod to it", desired)
	case o.Istiod != nil:
		waitFor(&p, name, o, "installing Istio %s: waiting for istiod", desired)
	}
	return p
}

// steady checks that the active revision's istiod serves what it should.
func steady(obs Observed, p *Plan) {
	o := obs.Revisions[p.Active.Name]
	if o.availableAt(p.Active.Version) {
		return
	}
	p.Phase = PhaseInstalling
	p.Message = fmt.Sprintf("waiting for istiod revision %s (%s) to become available", p.Active.Name, p.Active.Version)
	if o.Istiod != nil && o.Istiod.Reason != "" {
		p.Message += ": " + o.Istiod.Reason
	}
	p.RequeueAfter = requeue.Sooner(p.RequeueAfter, waitPoll)
}

// upgradeInPlace rolls the active revision's istiod to desired; its
// injection configuration and the gateways follow once the new istiod is
// available. Setting spec.version back to what the data plane runs, before
// that, is a rollback of an unfinished upgrade and always allowed.
func upgradeInPlace(mi *meshv1alpha1.MeshInstall, obs Observed, desired version.Version, p *Plan) error {
	if desired.Compare(p.Active.ProxyVersion) == 0 {
		// Back to what the data plane runs: istiod rolls back, nothing else moves.
		p.Active.Version = desired
		return nil
	}
	for _, from := range []version.Version{p.Active.Version, p.Active.ProxyVersion} {
		if err := version.CheckInPlace(from, desired); err != nil {
			return refusalFromSkew(err)
		}
	}
	from := p.Active.ProxyVersion
	p.Active.Version = desired
	o := obs.Revisions[p.Active.Name]
	ready, cniWhy := readyAt(mi, obs, p.Active.Name, desired)
	if ready {
		p.Active.ProxyVersion = desired
		return nil
	}
	p.Phase = PhaseUpgradingInPlace
	if cniWhy != "" {
		waitForCNI(p, cniWhy, "istiod revision %s runs %s: pods keep the %s proxy until the node agent is ready for it",
			p.Active.Name, desired, from)
		return nil
	}
	waitFor(p, p.Active.Name, o, "rolling istiod revision %s from %s to %s: pods keep the %s proxy until it is available",
		p.Active.Name, from, desired, from)
	return nil
}

// waitFor records a wait for a new istiod, with its reason, and whether it
// missed its progress deadline.
func waitFor(p *Plan, rev string, o ObservedRevision, format string, args ...any) {
	p.Waiting = true
	p.Message = fmt.Sprintf(format, args...)
	if o.Istiod != nil && o.Istiod.Reason != "" {
		p.Message += " (" + o.Istiod.Reason + ")"
	}
	if o.Istiod != nil && o.Istiod.DeadlineExceeded {
		p.Blocked = true
		p.Message = fmt.Sprintf("istiod of revision %s is not available within spec.updateStrategy.progressDeadline; nothing moves to it until it is fixed or spec.version is set back. %s",
			rev, p.Message)
	}
	p.RequeueAfter = requeue.Sooner(p.RequeueAfter, waitPoll)
}

// waitForCNI records a wait for the node agent before pods move to an
// istiod that is available.
func waitForCNI(p *Plan, why, format string, args ...any) {
	p.Waiting = true
	p.Message = fmt.Sprintf(format, args...) + " (" + why + ")"
	p.RequeueAfter = requeue.Sooner(p.RequeueAfter, waitPoll)
}

// versionsOf returns what a revision's istiod runs and what it injects, from
// its objects (or, when they are gone, its pods, then status).
func versionsOf(mi *meshv1alpha1.MeshInstall, obs Observed, name string) (cp, proxy version.Version, err error) {
	o := obs.Revisions[name]
	var knownCP, knownProxy string
	for _, r := range mi.Status.Revisions {
		if r.Name == name {
			knownCP, knownProxy = cmp.Or(r.ControlPlaneVersion, r.Version), r.Version
		}
	}
	cpS := cmp.Or(o.ControlPlaneVersion, knownCP, o.ProxyVersion, o.PodVersion)
	// Without its injection configuration, what new pods got is what status
	// last reported, else what running pods carry: never simply istiod's
	// version, which may be ahead.
	proxyS := cmp.Or(o.ProxyVersion, knownProxy, o.PodVersion, cpS)
	if cpS == "" {
		return version.Version{}, version.Version{}, refusal.Newf(meshv1alpha1.ReasonUnsupportedVersion,
			"revision %s: the cluster does not say which Istio version it runs", name)
	}
	if cp, err = version.Parse(cpS); err == nil {
		proxy, err = version.Parse(proxyS)
	}
	if err != nil {
		return version.Version{}, version.Version{}, refusal.Newf(meshv1alpha1.ReasonUnsupportedVersion,
			"revision %s runs a version this operator does not support: %v", name, err)
	}
	return cp, proxy, nil
}

func refusalFromSkew(err error) error {
	if skew, ok := err.(*version.SkewError); ok {
		return &refusal.Error{Reason: skew.Rule, Message: skew.Message}
	}
	return err
}

// tagsOf are the tags that follow the active revision: default, then ExtraTags.
func tagsOf(mi *meshv1alpha1.MeshInstall) []string {
	return append([]string{DefaultTag}, ExtraTags(mi)...)
}

// ExtraTags are the tags besides default, sorted: spec.revisionTags and,
// while spec.migration is set, the name of the foreign revision it
// migrates off, so that a namespace or pod labelled istio.io/rev=<it>
// keeps being injected once its workloads move to meshkeeper's revision.
func ExtraTags(mi *meshv1alpha1.MeshInstall) []string {
	extra := slices.Clone(mi.Spec.RevisionTags)
	if m := mi.Spec.Migration; m != nil && m.Revision != DefaultTag {
		extra = append(extra, m.Revision)
	}
	slices.Sort(extra)
	return slices.Compact(extra)
}

// drain keeps every other revision the cluster holds until no running pod
// has used it for the grace period, then prunes it. When the time it was
// first seen unused is not known (status lost), the wait starts now.
func drain(mi *meshv1alpha1.MeshInstall, obs Observed, p *Plan) {
	grace := 30 * time.Second
	if g := mi.Spec.UpdateStrategy.InactiveRevisionDeletionGracePeriod; g != nil {
		grace = g.Duration
	}
	keep := map[string]bool{}
	for _, r := range p.Revisions {
		keep[r.Name] = true
	}
	unusedSince := map[string]metav1.Time{}
	for _, r := range mi.Status.Revisions {
		if r.LastUsedTime != nil {
			unusedSince[r.Name] = *r.LastUsedTime
		}
	}
	for _, name := range slices.Sorted(maps.Keys(obs.Revisions)) {
		if keep[name] {
			continue
		}
		o := obs.Revisions[name]
		cp, proxy, err := versionsOf(mi, obs, name)
		if err != nil {
			// A revision we cannot describe is still kept until unused.
			cp, proxy = p.Active.Version, p.Active.ProxyVersion
		}
		if o.Pods == 0 && obs.InventoryKnown && len(o.SelectedBy) == 0 {
			since, ok := unusedSince[name]
			if !ok {
				since = metav1.NewTime(obs.Now)
			}
			idle := obs.Now.Sub(since.Time)
			if idle >= grace {
				p.Prune = append(p.Prune, name)
				continue
			}
			p.UnusedSince[name] = since
			p.RequeueAfter = requeue.Sooner(p.RequeueAfter, grace-idle)
		}
		p.Revisions = append(p.Revisions, Planned{Name: name, Version: cp, ProxyVersion: proxy, Role: meshv1alpha1.RevisionDraining})
		if p.Phase == PhaseSteady {
			p.Phase = PhaseDraining
			p.Message = fmt.Sprintf("waiting for revision %s to be unused before removing it", name)
			if len(o.SelectedBy) > 0 {
				p.Message = fmt.Sprintf("revision %s kept: %s", name, listed(o.SelectedBy, 3))
			}
		}
	}
}

// listed joins the first n of items, saying how many more there are.
func listed(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(items[:n], "; "), len(items)-n)
}
