package revision

import (
	"strings"
	"testing"
	"time"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

func withCNI(mi *meshv1alpha1.MeshInstall) { mi.Spec.CNI.Enabled = true }

func cniAt(v string, available bool) *ObservedCNI {
	c := &ObservedCNI{Version: v, Available: available}
	if !available {
		c.Reason = "1 of 3 nodes updated"
	}
	return c
}

func withAgent(obs Observed, c *ObservedCNI) Observed { obs.CNI = c; return obs }

func planned(t *testing.T, versions ...string) []Planned {
	t.Helper()
	var out []Planned
	for _, s := range versions {
		v, err := version.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Planned{Name: v.Revision(), Version: v, ProxyVersion: v})
	}
	return out
}

// Every pair of supported minors, each order (upgrade and downgrade
// canaries), and the one-revision cases of an in-place upgrade: the agent
// sits within one minor of every kept revision, at the newest of them when
// it can, else at the newest patch of the minor between them.
func TestCNIVersionEveryPair(t *testing.T) {
	newest := map[string]string{"1.30": "1.30.8", "1.31": "1.31.4", "1.32": "1.32.0"}
	oldest := map[string]string{"1.30": "1.30.0", "1.31": "1.31.0", "1.32": "1.32.0"}
	want := map[[2]string]string{
		{"1.30", "1.30"}: "1.30.8", {"1.30", "1.31"}: "1.31.4", {"1.30", "1.32"}: "1.31.4",
		{"1.31", "1.30"}: "1.31.0", {"1.31", "1.31"}: "1.31.4", {"1.31", "1.32"}: "1.32.0",
		{"1.32", "1.30"}: "1.31.4", {"1.32", "1.31"}: "1.32.0", {"1.32", "1.32"}: "1.32.0",
	}
	for pair, w := range want {
		// The first runs its oldest patch, the second its newest.
		from, to := oldest[pair[0]], newest[pair[1]]
		t.Run(from+"+"+to, func(t *testing.T) {
			got, ok := CNIVersion(planned(t, from, to))
			if !ok || got.String() != w {
				t.Errorf("CNIVersion(%s, %s) = %v (%v), want %s", from, to, got, ok, w)
			}
			for _, alone := range []string{from, to} {
				// One revision (an install, or an in-place upgrade): the agent moves with it.
				if got, ok := CNIVersion(planned(t, alone)); !ok || got.String() != alone {
					t.Errorf("CNIVersion(%s) = %v, want %s", alone, got, alone)
				}
			}
		})
	}
	if _, ok := CNIVersion(nil); ok {
		t.Error("no revision, yet a version")
	}
}

// A two-minor canary with the node agent, pass by pass: no workload moves
// to the 1.32 canary while the agent is two minors away or rolling; the
// agent goes to 1.31 first, and to 1.32 only once 1.30 is pruned.
func TestCanaryWithCNIMovesThroughTheMiddleMinor(t *testing.T) {
	mi := meshInstall("1.32.0", canary(50, 100), withCNI)
	both := map[string]rev{"default": withPods(avail("1.30.8"), 3), "1-32-0": avail("1.32.0")}
	for _, tc := range []struct {
		name        string
		obs         Observed
		wantRouting string
		wantCNI     string
		wantMessage string
	}{
		{"the canary's istiod is available, the agent still on 1.30: nothing moves",
			withAgent(observed(routedCanary("default", "1-32-0", 0), both), cniAt("1.30.8", true)),
			"default+1-32-0@0", "1.31.4", "more than 1 minor from 1.32.0"},
		{"the agent rolls to 1.31: nothing moves",
			withAgent(observed(routedCanary("default", "1-32-0", 0), both), cniAt("1.31.4", false)),
			"default+1-32-0@0", "1.31.4", "not available: 1 of 3 nodes updated"},
		{"the agent is available on 1.31: the first step",
			withAgent(observed(routedCanary("default", "1-32-0", 0), both), cniAt("1.31.4", true)),
			"default+1-32-0@50", "1.31.4", ""},
		{"the agent lost on a node at 50%: the step holds, waiting for the agent",
			withAgent(observed(routedCanary("default", "1-32-0", 50), map[string]rev{"default": withPods(avail("1.30.8"), 3), "1-32-0": serving(avail("1.32.0"))}), cniAt("1.31.4", false)),
			"default+1-32-0@50", "1.31.4", "waiting for the node agent to be ready for it again: the istio-cni node agent (1.31.4) is not available"},
		{"promoted, 1.30 drains: the agent stays on 1.31",
			withAgent(observed(routed("1-32-0"), map[string]rev{"1-32-0": avail("1.32.0"), "default": withPods(avail("1.30.8"), 1)}), cniAt("1.31.4", true)),
			"1-32-0", "1.31.4", ""},
		{"1.30 is pruned: the agent moves to 1.32",
			withAgent(observed(routed("1-32-0"), map[string]rev{"1-32-0": avail("1.32.0"), "default": avail("1.30.8")}), cniAt("1.31.4", true)),
			"1-32-0", "1.32.0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mi.DeepCopy()
			if strings.HasPrefix(tc.name, "1.30 is pruned") {
				m = meshInstall("1.32.0", canary(50, 100), withCNI, unusedSince("default", "1.30.8", t0.Add(-time.Hour)))
			}
			p, err := Decide(m, tc.obs)
			if err != nil {
				t.Fatal(err)
			}
			if got := routingString(p.Routing); got != tc.wantRouting {
				t.Errorf("routing %q, want %q (%s)", got, tc.wantRouting, p.Message)
			}
			if p.CNIVersion.String() != tc.wantCNI {
				t.Errorf("agent version %s, want %s", p.CNIVersion, tc.wantCNI)
			}
			if tc.wantMessage != "" && (!p.Waiting || !strings.Contains(p.Message, tc.wantMessage)) {
				t.Errorf("waiting %v, message %q: want it to say %q", p.Waiting, p.Message, tc.wantMessage)
			}
		})
	}
}

// Routing waits for the node agent as it waits for istiod: a first install
// routes nothing and an in-place upgrade keeps the old proxy until the agent
// is available and within one minor; without spec.cni the agent is not
// awaited.
func TestRoutingIsGatedOnTheCNI(t *testing.T) {
	inPlace := map[string]rev{"default": {ControlPlaneVersion: "1.31.4", ProxyVersion: "1.30.8", Istiod: &Rollout{Available: true}, PodsReady: true}}
	for _, tc := range []struct {
		name        string
		mi          *meshv1alpha1.MeshInstall
		obs         Observed
		wantRouting string
		wantProxy   string
		wantWaiting bool
	}{
		{"install: no agent yet, nothing routed", meshInstall("1.31.4", withCNI),
			observed(nil, map[string]rev{"default": avail("1.31.4")}), "", "1.31.4", true},
		{"install: the agent rolling, nothing routed", meshInstall("1.31.4", withCNI),
			withAgent(observed(nil, map[string]rev{"default": avail("1.31.4")}), cniAt("1.31.4", false)), "", "1.31.4", true},
		{"install: the agent available, routed", meshInstall("1.31.4", withCNI),
			withAgent(observed(nil, map[string]rev{"default": avail("1.31.4")}), cniAt("1.31.4", true)), "default", "1.31.4", false},
		{"install without spec.cni: the agent is not awaited", meshInstall("1.31.4"),
			observed(nil, map[string]rev{"default": avail("1.31.4")}), "default", "1.31.4", false},
		{"in place: the agent rolling to 1.31, pods keep the 1.30 proxy", meshInstall("1.31.4", withCNI),
			withAgent(observed(routed("default"), inPlace), cniAt("1.31.4", false)), "default", "1.30.8", true},
		{"in place: the agent available on 1.31, the proxy follows", meshInstall("1.31.4", withCNI),
			withAgent(observed(routed("default"), inPlace), cniAt("1.31.4", true)), "default", "1.31.4", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Decide(tc.mi, tc.obs)
			if err != nil {
				t.Fatal(err)
			}
			if got := routingString(p.Routing); got != tc.wantRouting {
				t.Errorf("routing %q, want %q", got, tc.wantRouting)
			}
			if p.Active.ProxyVersion.String() != tc.wantProxy || p.Waiting != tc.wantWaiting {
				t.Errorf("proxy %s waiting %v (%s), want %s waiting %v", p.Active.ProxyVersion, p.Waiting, p.Message, tc.wantProxy, tc.wantWaiting)
			}
			if tc.mi.Spec.CNI.Enabled && p.CNIVersion.String() != tc.mi.Spec.Version {
				t.Errorf("agent version %s, want it to move with istiod to %s", p.CNIVersion, tc.mi.Spec.Version)
			}
			if !tc.mi.Spec.CNI.Enabled && p.CNIVersion.Release.Minor != "" {
				t.Errorf("agent version %s without spec.cni", p.CNIVersion)
			}
		})
	}
}

// TestInjectionWaitsForTheCNI: a revision's injection takes the node
// agent's shape (istio-validation) only once the agent is ready for it, and
// keeps it once it has it; without spec.cni it never does.
func TestInjectionWaitsForTheCNI(t *testing.T) {
	steady := func(injectsCNI bool) map[string]rev {
		r := avail("1.31.4")
		r.InjectsCNI = injectsCNI
		return map[string]rev{"default": r}
	}
	for _, tc := range []struct {
		name string
		mi   *meshv1alpha1.MeshInstall
		obs  Observed
		want bool
	}{
		{"spec.cni turned on, no agent yet: istio-init's shape", meshInstall("1.31.4", withCNI),
			observed(routed("default"), steady(false)), false},
		{"spec.cni on, the agent rolling out: istio-init's shape", meshInstall("1.31.4", withCNI),
			withAgent(observed(routed("default"), steady(false)), cniAt("1.31.4", false)), false},
		{"spec.cni on, the agent available: the agent's shape", meshInstall("1.31.4", withCNI),
			withAgent(observed(routed("default"), steady(false)), cniAt("1.31.4", true)), true},
		{"the agent available but two minors away: istio-init's shape", meshInstall("1.31.4", withCNI),
			withAgent(observed(routed("default"), steady(false)), cniAt("1.33.0", true)), false},
		{"already on the agent's shape, the agent unavailable a while: kept", meshInstall("1.31.4", withCNI),
			withAgent(observed(routed("default"), steady(true)), cniAt("1.31.4", false)), true},
		{"spec.cni turned off: istio-init's shape at once", meshInstall("1.31.4"),
			withAgent(observed(routed("default"), steady(true)), cniAt("1.31.4", true)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Decide(tc.mi, tc.obs)
			if err != nil {
				t.Fatal(err)
			}
			if p.Active.InjectCNI != tc.want || len(p.Revisions) == 0 || p.Revisions[0].InjectCNI != tc.want {
				t.Errorf("InjectCNI active %v, revisions %+v; want %v", p.Active.InjectCNI, p.Revisions, tc.want)
			}
		})
	}
}
