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
	"github.com/meshkeeper/meshkeeper/internal/refusal"
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

// unusedSince says status saw the revision unused from that time on.
func unusedSince(rev, v string, since time.Time) miOpt {
	return func(mi *meshv1alpha1.MeshInstall) {
		lu := metav1.NewTime(since)
		mi.Status.Revisions = append(mi.Status.Revisions, meshv1alpha1.RevisionStatus{Name: rev, Version: v, Role: meshv1alpha1.RevisionDraining, LastUsedTime: &lu})
	}
}

// remembers says status recorded the canary at weight, healthy since healthy (zero: not healthy).
func remembers(rev string, weight int32, healthy time.Time) miOpt {
	return func(mi *meshv1alpha1.MeshInstall) {
		start := metav1.NewTime(t0.Add(-time.Hour))
		mi.Status.Canary = &meshv1alpha1.CanaryStatus{Revision: rev, Version: strings.ReplaceAll(rev, "-", "."), Weight: weight, StepStartTime: &start}
		if !healthy.IsZero() {
			h := metav1.NewTime(healthy)
			mi.Status.Canary.HealthySince = &h
		}
	}
}

type rev = ObservedRevision

// avail is a revision whose istiod is available, injecting its own version, with Ready pods.
func avail(v string) rev {
	return rev{ControlPlaneVersion: v, ProxyVersion: v, Istiod: &Rollout{Available: true}, PodsReady: true}
}

func withPods(r rev, n int32) rev { r.Pods = n; return r }

// starting says one of the revision's pods, created at created, is not Ready yet.
func starting(r rev, created time.Time) rev {
	r.Pods++
	r.PodsReady, r.OldestUnreadyPod = false, created
	return r
}

// serving says some of the revision's istiod replicas serve while it rolls.
func serving(r rev) rev {
	rollout := *r.Istiod
	rollout.Serving = true
	r.Istiod = &rollout
	return r
}

// rolling is a revision whose istiod runs cp but is not available yet, injecting proxy.
func rolling(cp, proxy, reason string, deadlineExceeded bool) rev {
	return rev{ControlPlaneVersion: cp, ProxyVersion: proxy, PodsReady: true,
		Istiod: &Rollout{Reason: reason, DeadlineExceeded: deadlineExceeded}}
}

func routed(active string) *Routing { return &Routing{Tags: []string{"default"}, Active: active} }

func routedCanary(active, canary string, weight int32) *Routing {
	return &Routing{Tags: []string{"default"}, Active: active, Canary: canary, Weight: weight}
}

func observed(r *Routing, revs map[string]rev) Observed {
	return Observed{Now: t0, Revisions: revs, Routing: r, InventoryKnown: true}
}

func names(ps []Planned) []string {
	var out []string
	for _, p := range ps {
		s := p.Name + "=" + p.Version.String()
		if p.ProxyVersion.Compare(p.Version) != 0 {
			s += "(proxy " + p.ProxyVersion.String() + ")"
		}
		out = append(out, s+"/"+string(p.Role))
	}
	return out
}

func routingString(r *Routing) string {
	if r == nil {
		return ""
	}
	if r.Canary == "" {
		return r.Active
	}
	return r.Active + "+" + r.Canary + "@" + itoa(r.Weight)
}

func TestDecide(t *testing.T) {
	cases := []struct {
		name        string
		mi          *meshv1alpha1.MeshInstall
		obs         Observed
		wantPhase   Phase
		wantRevs    []string
		wantRouting string // "active", "active+canary@weight", or "" for no routing yet
		wantCanary  string // "rev@weight" or ""
		wantPrune   []string
		wantWaiting bool
		wantBlocked bool
		wantRefusal string // reason
	}{
		{
			name: "fresh in-place install uses the default revision and routes nothing yet",
			mi:   meshInstall("1.31.4"), obs: observed(nil, nil),
			wantPhase: PhaseInstalling, wantRevs: []string{"default=1.31.4/Active"},
		},
		{
			name: "fresh canary-strategy install names the revision by version",
			mi:   meshInstall("1.31.4", canary(10, 100)), obs: observed(nil, nil),
			wantPhase: PhaseInstalling, wantRevs: []string{"1-31-4=1.31.4/Active"},
		},
		{
			name: "an installing istiod that is not available gets no pods",
			mi:   meshInstall("1.31.4"), obs: observed(nil, map[string]rev{"default": rolling("1.31.4", "1.31.4", "Unschedulable", false)}),
			wantPhase: PhaseInstalling, wantRevs: []string{"default=1.31.4/Active"}, wantWaiting: true,
		},
		{
			name: "a status naming the installing revision routes nothing before its istiod is available",
			mi: meshInstall("1.31.4", func(mi *meshv1alpha1.MeshInstall) {
				mi.Status.ActiveRevision = "default"
			}),
			obs:       observed(nil, map[string]rev{"default": rolling("1.31.4", "1.31.4", "", false)}),
			wantPhase: PhaseInstalling, wantRevs: []string{"default=1.31.4/Active"}, wantWaiting: true,
		},
		{
			name: "a status of an older meshkeeper, without routing in the cluster, keeps the tags where they were",
			mi: meshInstall("1.32.0", canary(10, 100), func(mi *meshv1alpha1.MeshInstall) {
				mi.Status.ActiveRevision, mi.Status.Version = "1-31-4", "1.31.4"
				mi.Status.Canary = &meshv1alpha1.CanaryStatus{Revision: "1-32-0", Version: "1.32.0", Weight: 10}
			}),
			obs:       observed(nil, map[string]rev{"1-31-4": avail("1.31.4"), "1-32-0": serving(rolling("1.32.0", "1.32.0", "", false))}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@10", wantRouting: "1-31-4+1-32-0@10", wantWaiting: true,
			wantRevs: []string{"1-31-4=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "a pod stamped with a revision long gone does not take over an install",
			mi:   meshInstall("1.31.4"),
			obs: observed(nil, map[string]rev{"default": rolling("1.31.4", "1.31.4", "", false),
				"1-30-8": {PodVersion: "1.30.8", Pods: 1}}),
			wantPhase: PhaseInstalling, wantRevs: []string{"default=1.31.4/Active", "1-30-8=1.30.8/Draining"}, wantWaiting: true,
		},
		{
			name: "the tags are routed once the first istiod is available",
			mi:   meshInstall("1.31.4"), obs: observed(nil, map[string]rev{"default": avail("1.31.4")}),
			wantPhase: PhaseSteady, wantRevs: []string{"default=1.31.4/Active"}, wantRouting: "default",
		},
		{
			name: "steady when rolled out",
			mi:   meshInstall("1.31.4"), obs: observed(routed("default"), map[string]rev{"default": avail("1.31.4")}),
			wantPhase: PhaseSteady, wantRevs: []string{"default=1.31.4/Active"}, wantRouting: "default",
		},
		{
			name: "in place: istiod rolls first, new pods keep the old proxy",
			mi:   meshInstall("1.32.0"), obs: observed(routed("default"), map[string]rev{"default": avail("1.31.4")}),
			wantPhase: PhaseUpgradingInPlace, wantRevs: []string{"default=1.32.0(proxy 1.31.4)/Active"}, wantRouting: "default", wantWaiting: true,
		},
		{
			name: "in place: the proxy waits while the new istiod is not available",
			mi:   meshInstall("1.32.0"), obs: observed(routed("default"), map[string]rev{"default": rolling("1.32.0", "1.31.4", "", false)}),
			wantPhase: PhaseUpgradingInPlace, wantRevs: []string{"default=1.32.0(proxy 1.31.4)/Active"}, wantRouting: "default", wantWaiting: true,
		},
		{
			name: "in place: the proxy follows once the new istiod is available",
			mi:   meshInstall("1.32.0"), obs: observed(routed("default"), map[string]rev{"default": {ControlPlaneVersion: "1.32.0", ProxyVersion: "1.31.4", Istiod: &Rollout{Available: true}, PodsReady: true}}),
			wantPhase: PhaseSteady, wantRevs: []string{"default=1.32.0/Active"}, wantRouting: "default",
		},
		{
			name: "in place: an istiod past its progress deadline blocks the upgrade",
			mi:   meshInstall("1.32.0"), obs: observed(routed("default"), map[string]rev{"default": rolling("1.32.0", "1.31.4", "0/3 nodes are available: 3 Insufficient cpu", true)}),
			wantPhase: PhaseUpgradingInPlace, wantRevs: []string{"default=1.32.0(proxy 1.31.4)/Active"}, wantRouting: "default", wantWaiting: true, wantBlocked: true,
		},
		{
			name: "in place: setting the version back before the rollout finished rolls istiod back",
			mi:   meshInstall("1.31.4"), obs: observed(routed("default"), map[string]rev{"default": rolling("1.32.0", "1.31.4", "", true)}),
			wantPhase: PhaseInstalling, wantRevs: []string{"default=1.31.4/Active"}, wantRouting: "default",
		},
		{
			name: "in-place two-minor jump refused",
			mi:   meshInstall("1.32.0"), obs: observed(routed("default"), map[string]rev{"default": avail("1.30.8")}),
			wantRefusal: meshv1alpha1.ReasonVersionSkewTooLarge,
		},
		{
			name: "a second bump during an unfinished rollout cannot skip a minor",
			mi:   meshInstall("1.32.0"), obs: observed(routed("default"), map[string]rev{"default": rolling("1.31.4", "1.30.8", "", false)}),
			wantRefusal: meshv1alpha1.ReasonVersionSkewTooLarge,
		},
		{
			name: "in-place downgrade refused",
			mi:   meshInstall("1.31.0"), obs: observed(routed("default"), map[string]rev{"default": avail("1.31.4")}),
			wantRefusal: meshv1alpha1.ReasonDowngradeNotAllowed,
		},
		{
			name: "unsupported version refused",
			mi:   meshInstall("1.29.0"), obs: observed(nil, nil),
			wantRefusal: meshv1alpha1.ReasonUnsupportedVersion,
		},
		{
			name: "a canary is created with no workload until its istiod is available",
			mi:   meshInstall("1.32.0", canary(10, 50, 100)), obs: observed(routed("default"), map[string]rev{"default": avail("1.31.4")}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@0", wantRouting: "default+1-32-0@0", wantWaiting: true,
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "an unschedulable canary keeps weight 0 and blocks past its deadline",
			mi:   meshInstall("1.32.0", canary(10, 50, 100)),
			obs: observed(routedCanary("default", "1-32-0", 0), map[string]rev{"default": avail("1.31.4"),
				"1-32-0": rolling("1.32.0", "1.32.0", "0/3 nodes are available: 3 Insufficient cpu", true)}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@0", wantRouting: "default+1-32-0@0", wantWaiting: true, wantBlocked: true,
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name:      "the first step starts once the canary's istiod is available",
			mi:        meshInstall("1.32.0", canary(10, 50, 100)),
			obs:       observed(routedCanary("default", "1-32-0", 0), map[string]rev{"default": avail("1.31.4"), "1-32-0": avail("1.32.0")}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@10", wantRouting: "default+1-32-0@10",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "a canary two minors apart is allowed",
			mi:   meshInstall("1.32.0", canary(10, 100)), obs: observed(routed("default"), map[string]rev{"default": avail("1.30.8")}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@0", wantRouting: "default+1-32-0@0", wantWaiting: true,
			wantRevs: []string{"default=1.30.8/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "a canary three minors apart is refused",
			mi:   meshInstall("1.32.0", canary(10, 100)), obs: observed(routed("default"), map[string]rev{"default": {ControlPlaneVersion: "1.29.0", ProxyVersion: "1.29.0"}}),
			wantRefusal: meshv1alpha1.ReasonUnsupportedVersion,
		},
		{
			name:      "a step holds until the canary has been healthy for the interval",
			mi:        meshInstall("1.32.0", canary(10, 50, 100), remembers("1-32-0", 10, t0.Add(-30*time.Second))),
			obs:       observed(routedCanary("default", "1-32-0", 10), map[string]rev{"default": avail("1.31.4"), "1-32-0": avail("1.32.0")}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@10", wantRouting: "default+1-32-0@10",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name:      "a step advances after the interval of health",
			mi:        meshInstall("1.32.0", canary(10, 50, 100), remembers("1-32-0", 10, t0.Add(-2*time.Minute))),
			obs:       observed(routedCanary("default", "1-32-0", 10), map[string]rev{"default": avail("1.31.4"), "1-32-0": avail("1.32.0")}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@50", wantRouting: "default+1-32-0@50",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name:      "a step that was unhealthy most of its interval does not jump when it turns healthy",
			mi:        meshInstall("1.32.0", canary(10, 50, 100), remembers("1-32-0", 10, time.Time{})),
			obs:       observed(routedCanary("default", "1-32-0", 10), map[string]rev{"default": avail("1.31.4"), "1-32-0": avail("1.32.0")}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@10", wantRouting: "default+1-32-0@10",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "a step does not advance while the canary's pods are not ready",
			mi:   meshInstall("1.32.0", canary(10, 50, 100), remembers("1-32-0", 10, t0.Add(-2*time.Minute))),
			obs: observed(routedCanary("default", "1-32-0", 10), map[string]rev{"default": avail("1.31.4"),
				"1-32-0": {ControlPlaneVersion: "1.32.0", ProxyVersion: "1.32.0", Istiod: &Rollout{Available: true}, Pods: 3}}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@10", wantRouting: "default+1-32-0@10",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "pods still starting (younger than the grace) do not hold a step: a busy cluster's canary advances",
			mi:   meshInstall("1.32.0", canary(10, 50, 100), remembers("1-32-0", 10, t0.Add(-2*time.Minute))),
			obs: observed(routedCanary("default", "1-32-0", 10), map[string]rev{"default": avail("1.31.4"),
				"1-32-0": starting(avail("1.32.0"), t0.Add(-PodStartGrace+time.Second))}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@50", wantRouting: "default+1-32-0@50",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "a pod not Ready past the grace holds the step",
			mi:   meshInstall("1.32.0", canary(10, 50, 100), remembers("1-32-0", 10, t0.Add(-2*time.Minute))),
			obs: observed(routedCanary("default", "1-32-0", 10), map[string]rev{"default": avail("1.31.4"),
				"1-32-0": starting(avail("1.32.0"), t0.Add(-PodStartGrace))}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@10", wantRouting: "default+1-32-0@10",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "the grace is never longer than the step's interval",
			mi: meshInstall("1.32.0", canary(10, 50, 100), remembers("1-32-0", 10, t0.Add(-2*time.Minute)), func(mi *meshv1alpha1.MeshInstall) {
				mi.Spec.UpdateStrategy.Canary.StepInterval = &metav1.Duration{Duration: 8 * time.Second}
			}),
			obs: observed(routedCanary("default", "1-32-0", 10), map[string]rev{"default": avail("1.31.4"),
				"1-32-0": starting(avail("1.32.0"), t0.Add(-10*time.Second))}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@10", wantRouting: "default+1-32-0@10",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "a canary whose istiod rolls a new template, its old replicas serving, holds its weight",
			mi:   meshInstall("1.32.0", canary(10, 50, 100), remembers("1-32-0", 50, t0.Add(-2*time.Minute))),
			obs: observed(routedCanary("default", "1-32-0", 50), map[string]rev{"default": avail("1.31.4"),
				"1-32-0": serving(rolling("1.32.0", "1.32.0", "", false))}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@50", wantRouting: "default+1-32-0@50", wantWaiting: true,
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "a canary whose istiod stops serving gets no new pods until it is back",
			mi:   meshInstall("1.32.0", canary(10, 50, 100), remembers("1-32-0", 50, t0.Add(-2*time.Minute))),
			obs: observed(routedCanary("default", "1-32-0", 50), map[string]rev{"default": avail("1.31.4"),
				"1-32-0": withPods(rolling("1.32.0", "1.32.0", "", false), 4)}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@0", wantRouting: "default+1-32-0@0", wantWaiting: true,
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name:      "a canary started while paused is never promoted by its first step",
			mi:        meshInstall("1.32.0", canary(100), func(mi *meshv1alpha1.MeshInstall) { mi.Spec.UpdateStrategy.Canary.Paused = true }),
			obs:       observed(routedCanary("default", "1-32-0", 0), map[string]rev{"default": avail("1.31.4"), "1-32-0": avail("1.32.0")}),
			wantPhase: PhaseCanaryPaused, wantCanary: "1-32-0@0", wantRouting: "default+1-32-0@0",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name:      "a paused canary holds",
			mi:        meshInstall("1.32.0", canary(10, 50, 100), paused, remembers("1-32-0", 10, t0.Add(-time.Hour))),
			obs:       observed(routedCanary("default", "1-32-0", 10), map[string]rev{"default": avail("1.31.4"), "1-32-0": avail("1.32.0")}),
			wantPhase: PhaseCanaryPaused, wantCanary: "1-32-0@10", wantRouting: "default+1-32-0@10",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "the last step promotes: the canary becomes active and the old revision drains",
			mi:   meshInstall("1.32.0", canary(10, 50, 100), remembers("1-32-0", 50, t0.Add(-2*time.Minute))),
			obs: observed(routedCanary("default", "1-32-0", 50), map[string]rev{"default": withPods(avail("1.31.4"), 4),
				"1-32-0": avail("1.32.0")}),
			wantPhase: PhaseDraining, wantRouting: "1-32-0",
			wantRevs: []string{"1-32-0=1.32.0/Active", "default=1.31.4/Draining"},
		},
		{
			name: "setting the version back aborts the canary, which drains",
			mi:   meshInstall("1.31.4", canary(10, 50, 100), remembers("1-32-0", 50, t0)),
			obs: observed(routedCanary("default", "1-32-0", 50), map[string]rev{"default": avail("1.31.4"),
				"1-32-0": withPods(avail("1.32.0"), 2)}),
			wantPhase: PhaseAborting, wantRouting: "default",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Draining"},
		},
		{
			name:        "a third version during a canary is refused",
			mi:          meshInstall("1.31.0", canary(10, 100)),
			obs:         observed(routedCanary("default", "1-32-0", 10), map[string]rev{"default": avail("1.31.4"), "1-32-0": avail("1.32.0")}),
			wantRefusal: meshv1alpha1.ReasonInvalidSpec,
		},
		{
			name:        "switching to InPlace during a canary is refused",
			mi:          meshInstall("1.32.0"),
			obs:         observed(routedCanary("default", "1-32-0", 10), map[string]rev{"default": avail("1.31.4"), "1-32-0": avail("1.32.0")}),
			wantRefusal: meshv1alpha1.ReasonStrategyChangeRejected,
		},
		{
			name:        "starting a canary during an unfinished in-place upgrade is refused",
			mi:          meshInstall("1.32.0", canary(10, 100)),
			obs:         observed(routed("default"), map[string]rev{"default": rolling("1.31.4", "1.31.0", "", false)}),
			wantRefusal: meshv1alpha1.ReasonStrategyChangeRejected,
		},
		{
			name: "status wiped mid-canary: the routing in the cluster keeps the canary, its clock restarts, nothing is pruned",
			mi:   meshInstall("1.32.0", canary(10, 50, 100)),
			obs: observed(routedCanary("default", "1-32-0", 50), map[string]rev{"default": withPods(avail("1.31.4"), 5),
				"1-32-0": withPods(avail("1.32.0"), 5)}),
			wantPhase: PhaseCanary, wantCanary: "1-32-0@50", wantRouting: "default+1-32-0@50",
			wantRevs: []string{"default=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name: "status and routing both lost: the revision most pods use stays active and none is pruned",
			mi:   meshInstall("1.32.0", canary(10, 100)),
			obs: observed(nil, map[string]rev{"1-31-4": withPods(avail("1.31.4"), 7),
				"1-32-0": withPods(avail("1.32.0"), 2)}),
			wantPhase: PhaseCanary, wantRouting: "1-31-4+1-32-0@10",
			wantCanary: "1-32-0@10",
			wantRevs:   []string{"1-31-4=1.31.4/Active", "1-32-0=1.32.0/Canary"},
		},
		{
			name:      "an unused revision is pruned after the grace period",
			mi:        meshInstall("1.32.0", canary(10, 100), unusedSince("default", "1.31.4", t0.Add(-time.Minute))),
			obs:       observed(routed("1-32-0"), map[string]rev{"1-32-0": avail("1.32.0"), "default": avail("1.31.4")}),
			wantPhase: PhaseSteady, wantRevs: []string{"1-32-0=1.32.0/Active"}, wantRouting: "1-32-0", wantPrune: []string{"default"},
		},
		{
			name:      "an unused revision status knows nothing of waits a whole grace period",
			mi:        meshInstall("1.32.0", canary(10, 100)),
			obs:       observed(routed("1-32-0"), map[string]rev{"1-32-0": avail("1.32.0"), "default": avail("1.31.4")}),
			wantPhase: PhaseDraining, wantRevs: []string{"1-32-0=1.32.0/Active", "default=1.31.4/Draining"}, wantRouting: "1-32-0",
		},
		{
			name:      "an unused revision is kept within the grace period",
			mi:        meshInstall("1.32.0", canary(10, 100), unusedSince("default", "1.31.4", t0.Add(-10*time.Second))),
			obs:       observed(routed("1-32-0"), map[string]rev{"1-32-0": avail("1.32.0"), "default": avail("1.31.4")}),
			wantPhase: PhaseDraining, wantRevs: []string{"1-32-0=1.32.0/Active", "default=1.31.4/Draining"}, wantRouting: "1-32-0",
		},
		{
			name:      "a revision still in use is never pruned",
			mi:        meshInstall("1.32.0", canary(10, 100), unusedSince("default", "1.31.4", t0.Add(-time.Hour))),
			obs:       observed(routed("1-32-0"), map[string]rev{"1-32-0": avail("1.32.0"), "default": withPods(avail("1.31.4"), 1)}),
			wantPhase: PhaseDraining, wantRevs: []string{"1-32-0=1.32.0/Active", "default=1.31.4/Draining"}, wantRouting: "1-32-0",
		},
		{
			name: "nothing is pruned when pod usage is unknown",
			mi:   meshInstall("1.32.0", canary(10, 100), unusedSince("default", "1.31.4", t0.Add(-time.Hour))),
			obs: Observed{Now: t0, InventoryKnown: false, Routing: routed("1-32-0"),
				Revisions: map[string]rev{"1-32-0": avail("1.32.0"), "default": avail("1.31.4")}},
			wantPhase: PhaseDraining, wantRevs: []string{"1-32-0=1.32.0/Active", "default=1.31.4/Draining"}, wantRouting: "1-32-0",
		},
		{
			name:      "a revision known only from its pods is rendered again until unused",
			mi:        meshInstall("1.32.0", canary(10, 100)),
			obs:       observed(routed("1-32-0"), map[string]rev{"1-32-0": avail("1.32.0"), "1-31-4": {PodVersion: "1.31.4", Pods: 3}}),
			wantPhase: PhaseDraining, wantRevs: []string{"1-32-0=1.32.0/Active", "1-31-4=1.31.4/Draining"}, wantRouting: "1-32-0",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Decide(tc.mi, tc.obs)
			if tc.wantRefusal != "" {
				var r *refusal.Error
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
			if got := routingString(p.Routing); got != tc.wantRouting {
				t.Errorf("routing = %q, want %q", got, tc.wantRouting)
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
			if p.Waiting != tc.wantWaiting || p.Blocked != tc.wantBlocked {
				t.Errorf("waiting %v blocked %v (%s), want %v %v", p.Waiting, p.Blocked, p.Message, tc.wantWaiting, tc.wantBlocked)
			}
			if p.Blocked && !strings.Contains(p.Message, "Insufficient cpu") {
				t.Errorf("a blocked upgrade's message does not say why: %s", p.Message)
			}
		})
	}
}

// TestDecideNeverRoutesToAnUnavailableIstiod walks a canary through every
// state its istiod and pods can be in and checks the invariants a user
// relies on: a canary's weight only grows while its istiod is available,
// and it keeps new pods only while its istiod serves.
func TestDecideNeverRoutesToAnUnavailableIstiod(t *testing.T) {
	mi := meshInstall("1.32.0", canary(10, 50, 100))
	states := map[string]rev{
		"absent":                 {},
		"not serving":            rolling("1.32.0", "1.32.0", "", false),
		"stuck":                  rolling("1.32.0", "1.32.0", "Unschedulable", true),
		"rolling, still serving": serving(rolling("1.32.0", "1.32.0", "", false)),
		"available":              avail("1.32.0"),
		"pods unready":           {ControlPlaneVersion: "1.32.0", ProxyVersion: "1.32.0", Istiod: &Rollout{Available: true, Serving: true}, Pods: 2},
	}
	for _, weight := range []int32{0, 10, 50} {
		for state, canaryRev := range states {
			for _, healthyFor := range []time.Duration{0, 30 * time.Second, time.Hour} {
				m := mi.DeepCopy()
				if healthyFor > 0 {
					remembers("1-32-0", weight, t0.Add(-healthyFor))(m)
				}
				revs := map[string]rev{"default": avail("1.31.4")}
				if state != "absent" {
					revs["1-32-0"] = canaryRev
				}
				p, err := Decide(m, observed(routedCanary("default", "1-32-0", weight), revs))
				if err != nil {
					t.Fatal(err)
				}
				available := state == "available" || state == "pods unready"
				grew := p.Routing.Canary == "1-32-0" && p.Routing.Weight > weight || p.Routing.Active == "1-32-0"
				if grew && !available {
					t.Errorf("weight %d, canary %s, healthy for %s: routing moved to %s", weight, state, healthyFor, routingString(p.Routing))
				}
				servingNow := available || state == "rolling, still serving"
				if p.Routing.Canary == "1-32-0" && p.Routing.Weight > 0 && !servingNow {
					t.Errorf("weight %d, canary %s: new pods are still sent to it (%s)", weight, state, routingString(p.Routing))
				}
				if servingNow && p.Routing.Canary == "1-32-0" && p.Routing.Weight < weight {
					t.Errorf("weight %d, canary %s: workloads moved back from a serving canary (%s)", weight, state, routingString(p.Routing))
				}
			}
		}
	}
}

func TestDecideIsPure(t *testing.T) {
	mi := meshInstall("1.32.0", canary(10, 50, 100))
	obs := observed(routedCanary("default", "1-32-0", 0), map[string]rev{"default": avail("1.31.4"), "1-32-0": avail("1.32.0")})
	before := mi.DeepCopy()
	a, errA := Decide(mi, obs)
	b, errB := Decide(mi, obs)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if !slices.Equal(names(a.Revisions), names(b.Revisions)) || a.Phase != b.Phase || !a.Routing.Equal(b.Routing) ||
		a.Canary.Revision != b.Canary.Revision || a.Canary.Weight != b.Canary.Weight || !a.Canary.StepStartTime.Equal(b.Canary.StepStartTime) {
		t.Errorf("two calls with the same input differ: %+v vs %+v", a, b)
	}
	if before.Status.Canary != nil || len(mi.Status.Revisions) != len(before.Status.Revisions) {
		t.Errorf("Decide modified its input")
	}
	if obs.Routing.Weight != 0 {
		t.Errorf("Decide modified the observed routing")
	}
}

func itoa(i int32) string {
	return strconv.Itoa(int(i))
}

// TestDecideSchedulesTheNextLook checks when the reconciler is asked to look
// again with nothing changed (the canary's next step, the end of a grace
// period, a wait for an istiod) and the unused-since times it records for
// draining revisions.
func TestDecideSchedulesTheNextLook(t *testing.T) {
	both := func(oldPods int32) map[string]rev {
		return map[string]rev{"1-32-0": avail("1.32.0"), "default": withPods(avail("1.31.4"), oldPods)}
	}
	promoted := func(opts ...miOpt) *meshv1alpha1.MeshInstall {
		return meshInstall("1.32.0", append([]miOpt{canary(10, 100)}, opts...)...)
	}
	cases := []struct {
		name            string
		mi              *meshv1alpha1.MeshInstall
		obs             Observed
		wantRequeue     time.Duration
		wantUnusedSince map[string]time.Time
	}{
		{
			name:        "steady: nothing to wait for",
			mi:          meshInstall("1.31.4"),
			obs:         observed(routed("default"), map[string]rev{"default": avail("1.31.4")}),
			wantRequeue: 0,
		},
		{
			name:        "a canary step looks again when its interval of health ends",
			mi:          meshInstall("1.32.0", canary(10, 50, 100), remembers("1-32-0", 10, t0.Add(-20*time.Second))),
			obs:         observed(routedCanary("default", "1-32-0", 10), map[string]rev{"default": avail("1.31.4"), "1-32-0": avail("1.32.0")}),
			wantRequeue: 40 * time.Second,
		},
		{
			name: "a step with a starting pod looks again when the pod's grace ends",
			mi:   meshInstall("1.32.0", canary(10, 50, 100), remembers("1-32-0", 10, t0.Add(-20*time.Second))),
			obs: observed(routedCanary("default", "1-32-0", 10), map[string]rev{"default": avail("1.31.4"),
				"1-32-0": starting(avail("1.32.0"), t0.Add(-25*time.Second))}),
			wantRequeue: PodStartGrace - 25*time.Second,
		},
		{
			name:        "a step that just advanced waits a whole interval",
			mi:          meshInstall("1.32.0", canary(10, 50, 100), remembers("1-32-0", 10, t0.Add(-2*time.Minute))),
			obs:         observed(routedCanary("default", "1-32-0", 10), map[string]rev{"default": avail("1.31.4"), "1-32-0": avail("1.32.0")}),
			wantRequeue: time.Minute,
		},
		{
			name:        "a wait for an istiod polls",
			mi:          meshInstall("1.32.0"),
			obs:         observed(routed("default"), map[string]rev{"default": rolling("1.32.0", "1.31.4", "", false)}),
			wantRequeue: waitPoll,
		},
		{
			name:            "an idle draining revision keeps its unused-since time and is looked at when its grace ends",
			mi:              promoted(unusedSince("default", "1.31.4", t0.Add(-10*time.Second))),
			obs:             observed(routed("1-32-0"), both(0)),
			wantRequeue:     20 * time.Second,
			wantUnusedSince: map[string]time.Time{"default": t0.Add(-10 * time.Second)},
		},
		{
			name:            "a draining revision first seen unused starts its grace now",
			mi:              promoted(),
			obs:             observed(routed("1-32-0"), both(0)),
			wantRequeue:     30 * time.Second,
			wantUnusedSince: map[string]time.Time{"default": t0},
		},
		{
			name:        "a draining revision in use has no unused-since time and needs no look: its pods' events bring one",
			mi:          promoted(unusedSince("default", "1.31.4", t0.Add(-time.Hour))),
			obs:         observed(routed("1-32-0"), both(2)),
			wantRequeue: 0,
		},
		{
			name:        "unknown usage counts as use",
			mi:          promoted(unusedSince("default", "1.31.4", t0.Add(-time.Hour))),
			obs:         Observed{Now: t0, Revisions: both(0), Routing: routed("1-32-0"), InventoryKnown: false},
			wantRequeue: 0,
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
			for name, lu := range p.UnusedSince {
				got[name] = lu.Time
			}
			if len(got) != len(tc.wantUnusedSince) {
				t.Errorf("UnusedSince = %v, want %v", got, tc.wantUnusedSince)
			}
			for name, want := range tc.wantUnusedSince {
				if !got[name].Equal(want) {
					t.Errorf("UnusedSince[%s] = %v, want %v", name, got[name], want)
				}
			}
		})
	}
}

func TestRoutingRoundTrips(t *testing.T) {
	for _, r := range []Routing{
		{Tags: []string{"default"}, Active: "default"},
		{Tags: []string{"default", "prod"}, Active: "1-31-4", Canary: "1-32-0", Weight: 50},
		{Tags: []string{"default"}, Active: "1-31-4", Canary: "1-32-0", Weight: 0},
	} {
		got, err := RoutingFromData(r.Data())
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(&r) {
			t.Errorf("%+v came back as %+v", r, got)
		}
	}
	for _, bad := range []map[string]string{
		{},
		{"active": "default", "canary": "1-32-0", "canaryWeight": "x"},
		{"active": "default", "canary": "1-32-0", "canaryWeight": "101"},
	} {
		if _, err := RoutingFromData(bad); err == nil {
			t.Errorf("%v was accepted", bad)
		}
	}
}
