package rollout

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

const (
	oldT    = "default/aaaa"
	newT    = "default/bbbb"
	canaryT = "1-32-0/cccc"
)

func deploy(name string) Key { return Key{Kind: Deployment, Namespace: "shop", Name: name} }

// world builds workloads and pods: each workload gets two pods running current, meant to run target.
type world struct {
	workloads map[Key]Workload
	pods      []Pod
}

func newWorld() *world { return &world{workloads: map[Key]Workload{}} }

func (w *world) add(wl Workload, current, target string) *world {
	w.workloads[wl.Key] = wl
	for range 2 {
		w.pods = append(w.pods, Pod{Owner: wl.Key, Current: current, Target: target, TargetReady: true})
	}
	return w
}

func rolledOut(k Key) Workload { return Workload{Key: k, RolledOut: true} }

func restartedFor(k Key, target string, at time.Time, rolled bool) Workload {
	return Workload{Key: k, RestartedFor: target, RestartedAt: at, RolledOut: rolled, Reason: "1 of 2 replicas updated"}
}

func automatic(max string) meshv1alpha1.DataPlaneRollout {
	m := intstr.Parse(max)
	return meshv1alpha1.DataPlaneRollout{Mode: meshv1alpha1.RolloutAutomatic, MaxConcurrent: &m,
		ProgressDeadline: &metav1.Duration{Duration: time.Minute}}
}

func restarted(p Plan) []string {
	var out []string
	for _, r := range p.Restart {
		out = append(out, r.Name+"@"+r.Target)
	}
	return out
}

func TestDecide(t *testing.T) {
	five := func() *world {
		w := newWorld()
		for i := range 5 {
			w.add(rolledOut(deploy(fmt.Sprintf("w%d", i))), oldT, newT)
		}
		return w
	}
	cases := []struct {
		name     string
		world    *world
		settings meshv1alpha1.DataPlaneRollout
		canary   string
		previous *meshv1alpha1.RolloutStatus
		check    func(t *testing.T, p Plan)
	}{
		{
			name: "manual mode lists the workloads to restart and restarts none", world: five(),
			settings: meshv1alpha1.DataPlaneRollout{Mode: meshv1alpha1.RolloutManual},
			check: func(t *testing.T, p Plan) {
				if len(p.Restart) != 0 || p.Status.Phase != meshv1alpha1.RolloutManualPhase || len(p.Status.Pending) != 5 || p.Status.Waiting != 5 {
					t.Errorf("plan = %+v", p)
				}
			},
		},
		{
			name: "automatic restarts maxConcurrent at once, in a stable order, for the target", world: five(), settings: automatic("3"),
			check: func(t *testing.T, p Plan) {
				if got := restarted(p); !slices.Equal(got, []string{"w0@" + newT, "w1@" + newT, "w2@" + newT}) {
					t.Errorf("restarted %v", got)
				}
				if s := p.Status; s.Phase != meshv1alpha1.RolloutRolling || s.InProgress != 3 || s.Waiting != 2 || s.Total != 5 ||
					!slices.Equal(s.Pending, []string{"Deployment shop/w3", "Deployment shop/w4"}) {
					t.Errorf("status = %+v", s)
				}
			},
		},
		{
			name: "a percentage of the workloads to restart, rounded up", world: five(), settings: automatic("30%"),
			check: func(t *testing.T, p Plan) {
				if len(p.Restart) != 2 {
					t.Errorf("restarted %v, want 2 of 5 at 30%%", restarted(p))
				}
			},
		},
		{
			name: "workloads restarted for the target and still rolling fill the slots, and are not restarted again",
			world: newWorld().
				add(restartedFor(deploy("a"), newT, t0.Add(-10*time.Second), false), oldT, newT).
				add(restartedFor(deploy("b"), newT, t0.Add(-10*time.Second), true), oldT, newT). // rolled out, old pods not gone yet
				add(rolledOut(deploy("c")), oldT, newT).
				add(rolledOut(deploy("d")), oldT, newT),
			settings: automatic("3"),
			check: func(t *testing.T, p Plan) {
				if got := restarted(p); !slices.Equal(got, []string{"c@" + newT}) {
					t.Errorf("restarted %v, want only c", got)
				}
				if !slices.Equal(p.Status.Current, []string{"Deployment shop/a", "Deployment shop/b", "Deployment shop/c"}) {
					t.Errorf("current = %v", p.Status.Current)
				}
			},
		},
		{
			name: "a workload done for the target counts as done and is reported finished once",
			world: newWorld().
				add(restartedFor(deploy("a"), newT, t0.Add(-30*time.Second), true), newT, newT).
				add(rolledOut(deploy("b")), oldT, newT),
			settings: automatic("1"),
			previous: &meshv1alpha1.RolloutStatus{Current: []string{"Deployment shop/a"}},
			check: func(t *testing.T, p Plan) {
				if d, ok := p.Finished[deploy("a")]; !ok || d != 30*time.Second {
					t.Errorf("finished = %v", p.Finished)
				}
				if p.Status.Done != 1 || p.Status.LastFinishedTime == nil || !p.Status.LastFinishedTime.Time.Equal(t0) {
					t.Errorf("status = %+v", p.Status)
				}
				if got := restarted(p); !slices.Equal(got, []string{"b@" + newT}) {
					t.Errorf("restarted %v", got)
				}
			},
		},
		{
			name: "pauseBetween holds the next restart after a workload finished",
			world: newWorld().
				add(restartedFor(deploy("a"), newT, t0.Add(-30*time.Second), true), newT, newT).
				add(rolledOut(deploy("b")), oldT, newT),
			settings: func() meshv1alpha1.DataPlaneRollout {
				s := automatic("1")
				s.PauseBetween = &metav1.Duration{Duration: 20 * time.Second}
				return s
			}(),
			previous: &meshv1alpha1.RolloutStatus{LastFinishedTime: &metav1.Time{Time: t0.Add(-5 * time.Second)}},
			check: func(t *testing.T, p Plan) {
				if len(p.Restart) != 0 || p.RequeueAfter != 15*time.Second || p.Status.Phase != meshv1alpha1.RolloutWaiting {
					t.Errorf("restarted %v, requeue %s, phase %s", restarted(p), p.RequeueAfter, p.Status.Phase)
				}
			},
		},
		{
			name: "with status lost mid-rollout, the pause starts again rather than being skipped",
			world: newWorld().
				add(restartedFor(deploy("a"), newT, t0.Add(-30*time.Second), true), newT, newT).
				add(rolledOut(deploy("b")), oldT, newT),
			settings: func() meshv1alpha1.DataPlaneRollout {
				s := automatic("1")
				s.PauseBetween = &metav1.Duration{Duration: 20 * time.Second}
				return s
			}(),
			check: func(t *testing.T, p Plan) {
				if len(p.Restart) != 0 || p.RequeueAfter != 20*time.Second {
					t.Errorf("restarted %v, requeue %s", restarted(p), p.RequeueAfter)
				}
			},
		},
		{
			name: "a workload past its progress deadline stops the rollout and is named with its controller's reason",
			world: newWorld().
				add(restartedFor(deploy("stuck"), newT, t0.Add(-2*time.Minute), false), oldT, newT).
				add(rolledOut(deploy("next")), oldT, newT),
			settings: automatic("5"),
			check: func(t *testing.T, p Plan) {
				s := p.Status
				if len(p.Restart) != 0 || s.Phase != meshv1alpha1.RolloutFailed || s.Failed != 1 ||
					!strings.Contains(s.LastError, "Deployment shop/stuck") || !strings.Contains(s.LastError, "1 of 2 replicas updated") {
					t.Errorf("restarted %v, status %+v", restarted(p), s)
				}
			},
		},
		{
			name: "opted-out workloads, Jobs and bare pods are never restarted and are reported",
			world: func() *world {
				w := newWorld().add(Workload{Key: deploy("private"), OptedOut: true, RolledOut: true}, oldT, newT)
				w.pods = append(w.pods,
					Pod{Owner: Key{Kind: "Job", Namespace: "shop", Name: "batch"}, Current: oldT, Target: newT, TargetReady: true},
					Pod{Owner: Key{Kind: "Pod", Namespace: "shop", Name: "debug"}, Current: "", Target: newT, TargetReady: true},
					Pod{Owner: Key{Kind: "Pod", Namespace: "shop", Name: "fine"}, Current: newT, Target: newT, TargetReady: true})
				return w
			}(),
			settings: automatic("5"),
			check: func(t *testing.T, p Plan) {
				want := []string{"Deployment shop/private (opted out)", "Job shop/batch", "Pod shop/debug"}
				if len(p.Restart) != 0 || !slices.Equal(p.Status.NeedsManualAction, want) || p.Status.Skipped != 3 || p.Status.Phase != meshv1alpha1.RolloutIdle {
					t.Errorf("restarted %v, status %+v", restarted(p), p.Status)
				}
			},
		},
		{
			name: "a workload that cannot be restarted is reported and counted once",
			world: func() *world {
				w := newWorld().add(Workload{Key: deploy("db"), RolledOut: true, Unrestartable: "Recreate strategy"}, oldT, newT)
				w.pods = append(w.pods, Pod{Owner: Key{Kind: "Job", Namespace: "shop", Name: "batch"}, Current: oldT, Target: newT, TargetReady: true})
				return w
			}(),
			settings: automatic("5"),
			check: func(t *testing.T, p Plan) {
				want := []string{"Deployment shop/db (Recreate strategy)", "Job shop/batch"}
				if len(p.Restart) != 0 || !slices.Equal(p.Status.NeedsManualAction, want) || p.Status.Skipped != 2 {
					t.Errorf("restarted %v, status %+v", restarted(p), p.Status)
				}
			},
		},
		{
			name: "during a canary only the workloads assigned to it are restarted, and the step waits for them",
			world: newWorld().
				add(rolledOut(deploy("moves")), oldT, canaryT).
				add(rolledOut(deploy("stays")), oldT, newT),
			settings: automatic("5"), canary: "1-32-0",
			check: func(t *testing.T, p Plan) {
				if got := restarted(p); !slices.Equal(got, []string{"moves@" + canaryT}) || !p.CanaryPending {
					t.Errorf("restarted %v, canary pending %v", got, p.CanaryPending)
				}
			},
		},
		{
			name: "the canary's workloads done, the step is no longer held",
			world: newWorld().
				add(restartedFor(deploy("moves"), canaryT, t0.Add(-10*time.Second), true), canaryT, canaryT).
				add(rolledOut(deploy("stays")), oldT, oldT),
			settings: automatic("5"), canary: "1-32-0",
			check: func(t *testing.T, p Plan) {
				if p.CanaryPending || len(p.Restart) != 0 {
					t.Errorf("canary pending %v, restarted %v", p.CanaryPending, restarted(p))
				}
			},
		},
		{
			name:     "manual mode never holds a canary step",
			world:    newWorld().add(rolledOut(deploy("moves")), oldT, canaryT),
			settings: meshv1alpha1.DataPlaneRollout{Mode: meshv1alpha1.RolloutManual}, canary: "1-32-0",
			check: func(t *testing.T, p Plan) {
				if p.CanaryPending {
					t.Error("a Manual rollout held the canary step")
				}
			},
		},
		{
			name: "a workload rolling out on its own, or whose target does not serve, is waited for",
			world: func() *world {
				w := newWorld().add(Workload{Key: deploy("busy"), RolledOut: false}, oldT, newT)
				w.add(rolledOut(deploy("pinned")), oldT, "1-30-8/dddd")
				for i := range w.pods {
					if w.pods[i].Owner.Name == "pinned" {
						w.pods[i].TargetReady = false
					}
				}
				return w
			}(),
			settings: automatic("5"),
			check: func(t *testing.T, p Plan) {
				if len(p.Restart) != 0 || p.Status.Waiting != 2 || p.Status.Phase != meshv1alpha1.RolloutWaiting {
					t.Errorf("restarted %v, status %+v", restarted(p), p.Status)
				}
			},
		},
		{
			name: "paused holds every restart", world: five(),
			settings: func() meshv1alpha1.DataPlaneRollout { s := automatic("5"); s.Paused = true; return s }(),
			check: func(t *testing.T, p Plan) {
				if len(p.Restart) != 0 || p.Status.Phase != meshv1alpha1.RolloutPaused {
					t.Errorf("restarted %v, phase %s", restarted(p), p.Status.Phase)
				}
			},
		},
		{
			name:     "pods that missed injection get their workload restarted",
			world:    newWorld().add(rolledOut(deploy("leaked")), "", newT),
			settings: automatic("1"),
			check: func(t *testing.T, p Plan) {
				if got := restarted(p); !slices.Equal(got, []string{"leaked@" + newT}) {
					t.Errorf("restarted %v", got)
				}
			},
		},
		{
			name:     "pods that should have no sidecar are left alone",
			world:    newWorld().add(rolledOut(deploy("outside")), oldT, ""),
			settings: automatic("1"),
			check: func(t *testing.T, p Plan) {
				if len(p.Restart) != 0 || p.Status.Total != 0 {
					t.Errorf("restarted %v, status %+v", restarted(p), p.Status)
				}
			},
		},
		{
			name: "opting out a workload that failed lets the rollout go on",
			world: newWorld().
				add(Workload{Key: deploy("stuck"), OptedOut: true, RestartedFor: newT, RestartedAt: t0.Add(-time.Hour)}, oldT, newT).
				add(rolledOut(deploy("next")), oldT, newT),
			settings: automatic("1"),
			check: func(t *testing.T, p Plan) {
				if got := restarted(p); !slices.Equal(got, []string{"next@" + newT}) || p.Status.Failed != 0 {
					t.Errorf("restarted %v, status %+v", got, p.Status)
				}
			},
		},
		{
			name: "a workload restarted for an earlier target and still rolling holds its slot",
			world: newWorld().
				add(restartedFor(deploy("a"), canaryT, t0.Add(-10*time.Second), false), canaryT, newT).
				add(rolledOut(deploy("b")), oldT, newT),
			settings: automatic("1"),
			check: func(t *testing.T, p Plan) {
				if len(p.Restart) != 0 || p.Status.InProgress != 1 {
					t.Errorf("restarted %v, status %+v", restarted(p), p.Status)
				}
			},
		},
		{
			name: "a restarted workload with no pod at the moment holds its slot",
			world: func() *world {
				w := newWorld().add(rolledOut(deploy("b")), oldT, newT)
				w.workloads[deploy("a")] = restartedFor(deploy("a"), newT, t0.Add(-10*time.Second), false)
				return w
			}(),
			settings: automatic("1"),
			check: func(t *testing.T, p Plan) {
				if len(p.Restart) != 0 || !slices.Equal(p.Status.Current, []string{"Deployment shop/a"}) {
					t.Errorf("restarted %v, status %+v", restarted(p), p.Status)
				}
			},
		},
		{
			name: "pods that came up without a sidecar after the rollout get their workload repaired",
			world: func() *world {
				w := newWorld().add(restartedFor(deploy("a"), newT, t0.Add(-time.Hour), true), newT, newT)
				w.pods = append(w.pods, Pod{Owner: deploy("a"), Uninjected: true, Target: newT, TargetReady: true})
				return w
			}(),
			settings: automatic("1"),
			check: func(t *testing.T, p Plan) {
				if got := restarted(p); !slices.Equal(got, []string{"a@" + newT}) || p.Status.Failed != 0 {
					t.Errorf("restarted %v, status %+v", got, p.Status)
				}
			},
		},
		{
			name:     "a workload a restart would not move is reported, not restarted",
			world:    newWorld().add(Workload{Key: deploy("ondelete"), RolledOut: true, Unrestartable: "OnDelete update strategy"}, oldT, newT),
			settings: automatic("1"),
			check: func(t *testing.T, p Plan) {
				if len(p.Restart) != 0 || !slices.Equal(p.Status.NeedsManualAction, []string{"Deployment shop/ondelete (OnDelete update strategy)"}) {
					t.Errorf("restarted %v, status %+v", restarted(p), p.Status)
				}
			},
		},
		{
			name:     "a canary's workload busy with a rollout of its own does not hold the step forever",
			world:    newWorld().add(Workload{Key: deploy("crashing"), RolledOut: false, Reason: "0 of 1 available"}, oldT, canaryT),
			settings: automatic("1"), canary: "1-32-0",
			check: func(t *testing.T, p Plan) {
				if p.CanaryPending || p.Status.Waiting != 1 {
					t.Errorf("canary pending %v, status %+v", p.CanaryPending, p.Status)
				}
			},
		},
		{
			name:     "a restart for an older target is replaced by one for the new target",
			world:    newWorld().add(restartedFor(deploy("a"), oldT, t0.Add(-time.Hour), true), oldT, newT),
			settings: automatic("1"),
			check: func(t *testing.T, p Plan) {
				if got := restarted(p); !slices.Equal(got, []string{"a@" + newT}) {
					t.Errorf("restarted %v", got)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Decide(Input{Now: t0, Settings: tc.settings, Workloads: tc.world.workloads, Pods: tc.world.pods,
				Canary: tc.canary, Previous: tc.previous})
			tc.check(t, p)
		})
	}
}

// TestARestartHappensOncePerTarget replays passes over a workload that never
// finishes within its deadline: it is restarted once, then only waited for,
// then failed; never restarted again for the same target.
func TestARestartHappensOncePerTarget(t *testing.T) {
	w := newWorld().add(rolledOut(deploy("slow")), oldT, newT)
	restarts := 0
	for i := range 20 {
		now := t0.Add(time.Duration(i) * 10 * time.Second)
		p := Decide(Input{Now: now, Settings: automatic("1"), Workloads: w.workloads, Pods: w.pods})
		for range p.Restart {
			restarts++
			w.workloads[deploy("slow")] = restartedFor(deploy("slow"), newT, now, false)
		}
	}
	if restarts != 1 {
		t.Errorf("restarted %d times, want once", restarts)
	}
}

// TestNothingIsRestartedOntoARoutingJustWritten: a pass that has just
// written the routing restarts nothing (the injectors may not have it: a
// workload restarted now could land on the revision it leaves, seen in an
// e2e run on a loaded machine) and looks again within a second; the next
// pass, whose routing is the observed one, restarts.
func TestNothingIsRestartedOntoARoutingJustWritten(t *testing.T) {
	w := newWorld().add(rolledOut(deploy("a")), oldT, newT).add(rolledOut(deploy("b")), oldT, newT)
	in := Input{Now: t0, Settings: automatic("2"), Workloads: w.workloads, Pods: w.pods, RoutingJustWritten: true}
	p := Decide(in)
	if len(p.Restart) != 0 || p.Status.Phase != meshv1alpha1.RolloutWaiting || p.Status.Waiting != 2 || p.RequeueAfter != routingSettle {
		t.Errorf("with the routing just written: restarted %v, status %+v, requeue %s; want none, Waiting 2, %s", restarted(p), p.Status, p.RequeueAfter, routingSettle)
	}
	in.RoutingJustWritten = false
	if p := Decide(in); !slices.Equal(restarted(p), []string{"a@" + newT, "b@" + newT}) {
		t.Errorf("once the routing is observed: restarted %v, want both", restarted(p))
	}
}
