// Package rollout decides, purely, which workloads to restart so that their
// pods run the proxy and revision they should: after an upgrade, at each
// canary step, after an abort, and for pods that missed injection. Its
// memory is the cluster's: what a workload was restarted for is on its pod
// template, so a restart is never made twice for the same target, also
// across operator restarts.
package rollout

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/requeue"
)

// Kinds of workloads meshkeeper restarts.
const (
	Deployment  = "Deployment"
	StatefulSet = "StatefulSet"
	DaemonSet   = "DaemonSet"
)

// Key names a workload (or, for what cannot be restarted, a Job or a pod).
type Key struct {
	Kind, Namespace, Name string
}

func (k Key) String() string { return k.Kind + " " + k.Namespace + "/" + k.Name }

// Restartable reports whether meshkeeper restarts workloads of this kind.
func (k Key) Restartable() bool {
	return k.Kind == Deployment || k.Kind == StatefulSet || k.Kind == DaemonSet
}

// Workload is what the rollout reads of one Deployment, StatefulSet or DaemonSet.
type Workload struct {
	Key
	// OptedOut is true when it or its namespace carries mesh.meshkeeper.dev/rollout: disabled.
	OptedOut bool
	// RestartedFor and RestartedAt are its pod template's annotations.
	RestartedFor string
	RestartedAt  time.Time
	// RolledOut is true when its controller has rolled out its current template.
	RolledOut bool
	// Reason is the controller's account of a rollout that is not done.
	Reason string
	// Unrestartable says why a restart would not move its pods (a paused
	// Deployment, an OnDelete or partitioned update strategy); "" when it would.
	Unrestartable string
}

// Pod is what the rollout reads of one running pod.
type Pod struct {
	// Owner is the workload the pod belongs to, a Job, or the pod itself (Kind Pod).
	Owner Key
	// Current is what it runs, <revision>/<configuration hash>; "" without meshkeeper's stamp.
	Current string
	// Uninjected is true when it has no sidecar at all.
	Uninjected bool
	// Target is what it should run; "" when it should have no sidecar.
	Target string
	// TargetReady is true when the target revision's istiod serves.
	TargetReady bool
}

// Target joins a revision and a configuration hash.
func Target(revision, hash string) string { return revision + "/" + hash }

// RevisionOf is the revision of a target.
func RevisionOf(target string) string {
	rev, _, _ := strings.Cut(target, "/")
	return rev
}

// Input is everything Decide reads.
type Input struct {
	Now       time.Time
	Settings  meshv1alpha1.DataPlaneRollout
	Workloads map[Key]Workload
	Pods      []Pod
	// Canary is the canary revision while it receives workloads: only the
	// workloads assigned to it are restarted, first. "" otherwise.
	Canary string
	// Previous is the rollout status last reported (nil when unknown).
	Previous *meshv1alpha1.RolloutStatus
	// RoutingJustWritten says the routing the pods' targets follow was
	// written by this very pass: the injectors (every replica's, from its
	// own cache) may not have it yet, and a workload restarted now could
	// be injected by the routing it leaves. Nothing is restarted; the pass
	// the routing's update starts restarts what it moves.
	RoutingJustWritten bool
}

// routingSettle is how soon a pass that held its restarts for a routing it
// had just written looks again, should the routing's own update not start
// one.
const routingSettle = time.Second

// Restart is a workload to restart now, and what for.
type Restart struct {
	Key
	Target string
}

// Plan is the decision of one pass.
type Plan struct {
	Restart []Restart
	Status  meshv1alpha1.RolloutStatus
	// Finished are restarted workloads that finished since Previous, with
	// how long each took.
	Finished map[Key]time.Duration
	// CanaryPending is true while a workload assigned to the canary waits
	// or rolls (Automatic mode): the canary step is not healthy yet.
	CanaryPending bool
	// RequeueAfter is when to look again with nothing changed (0: no need).
	RequeueAfter time.Duration
}

// listed caps the workloads listed in status.
const listed = 50

// poll is how often a rollout in progress is looked at for its deadlines.
const poll = 5 * time.Second

type state int

const (
	upToDate state = iota
	candidate
	waiting
	inProgress
	done
	failed
	skipped
)

// Decide returns what to restart now and the rollout's status.
func Decide(in Input) Plan {
	s := settingsOf(in.Settings)
	byOwner := map[Key][]Pod{}
	// manual lists what needs a person; unowned are those of them no
	// workload state counts (Jobs, bare pods, unknown controllers).
	manual, unowned := map[string]bool{}, 0
	for _, p := range in.Pods {
		if p.Target == "" {
			continue // not in the mesh: nothing to run
		}
		if !p.Owner.Restartable() {
			if p.Current != p.Target && !manual[p.Owner.String()] {
				manual[p.Owner.String()] = true
				unowned++
			}
			continue
		}
		byOwner[p.Owner] = append(byOwner[p.Owner], p)
	}

	plan := Plan{Finished: map[Key]time.Duration{}}
	st := &plan.Status
	states := map[Key]state{}
	targets := map[Key]string{}
	reasons := map[Key]string{}
	// A workload meshkeeper restarted that is still rolling holds a slot,
	// whatever its pods' target now and even while it has no pod.
	for key, w := range in.Workloads {
		if _, hasPods := byOwner[key]; !hasPods && w.RestartedFor != "" && !w.RolledOut && !w.OptedOut && within(w, in.Now, s.deadline) {
			byOwner[key] = nil
		}
	}
	for _, key := range slices.SortedFunc(maps.Keys(byOwner), compareKeys) {
		w, known := in.Workloads[key]
		target, stale, leaked, ready := targetOf(byOwner[key])
		if !known {
			// Its controller is not one meshkeeper knows (e.g. a ReplicaSet without a Deployment).
			if stale > 0 && !manual[key.String()] {
				manual[key.String()] = true
				unowned++
			}
			continue
		}
		if target == "" {
			target = w.RestartedFor // rolling with no pod right now
		}
		targets[key] = target
		switch {
		case stale > 0 && w.OptedOut:
			states[key] = skipped
			manual[key.String()+" (opted out)"] = true
		case stale > 0 && w.Unrestartable != "":
			states[key] = skipped
			manual[key.String()+" ("+w.Unrestartable+")"] = true
		case w.RestartedFor == target && w.RolledOut && stale == 0:
			states[key] = done
		case w.RestartedFor == target && w.RolledOut && stale == leaked && !within(w, in.Now, s.deadline):
			// It rolled out, then pods came up without a sidecar (admitted
			// while the webhook was unreachable): repair it.
			states[key] = candidate
		case w.RestartedFor == target && !within(w, in.Now, s.deadline):
			states[key] = failed
			reasons[key] = cmp.Or(w.Reason, fmt.Sprintf("%d pods still run another proxy", stale))
		case w.RestartedFor == target:
			states[key] = inProgress
		case w.RestartedFor != "" && !w.RolledOut && within(w, in.Now, s.deadline):
			// Restarted for an earlier target and still rolling: it holds its slot.
			states[key] = inProgress
		case stale == 0:
			states[key] = upToDate
		case !ready || !w.RolledOut:
			// Its target does not serve yet, or a rollout of its own is under way: wait for it.
			states[key] = waiting
			reasons[key] = w.Reason
		case in.Canary != "" && RevisionOf(target) != in.Canary:
			states[key] = waiting // after the canary's workloads, once it is promoted
		default:
			states[key] = candidate
		}
		// A canary step waits for the workloads it can move; one busy with a
		// rollout of its own, or failed, is reported, not waited for forever.
		if in.Canary != "" && RevisionOf(target) == in.Canary && s.automatic && (states[key] == candidate || states[key] == inProgress) {
			plan.CanaryPending = true
		}
	}

	var candidates, current []Key
	for _, key := range slices.SortedFunc(maps.Keys(states), compareKeys) {
		switch states[key] {
		case candidate:
			candidates = append(candidates, key)
			st.Waiting++
		case waiting:
			st.Waiting++
		case inProgress:
			current = append(current, key)
			st.InProgress++
		case done:
			st.Done++
			if wasCurrent(in.Previous, key) {
				plan.Finished[key] = in.Now.Sub(in.Workloads[key].RestartedAt)
			}
		case failed:
			st.Failed++
			if st.LastError == "" {
				st.LastError = fmt.Sprintf("%s did not finish its rollout within %s: %s", key, s.deadline, reasons[key])
			}
		case skipped:
			st.Skipped++
		}
	}
	st.Total = st.Waiting + st.InProgress + st.Done + st.Failed
	st.Skipped += int32(unowned) // the skipped workloads are counted by state already
	st.NeedsManualAction = firstN(slices.Sorted(maps.Keys(manual)), listed)

	// When the last restarted workload finished; the next waits pauseBetween.
	if in.Previous != nil {
		st.LastFinishedTime = in.Previous.LastFinishedTime
	}
	if len(plan.Finished) > 0 || (in.Previous == nil && st.Done > 0) {
		// (Status lost mid-rollout: the pause starts again now.)
		now := metav1.NewTime(in.Now)
		st.LastFinishedTime = &now
	}

	slots := s.maxConcurrent(int(st.Total)) - len(current)
	var wait time.Duration
	if lf := st.LastFinishedTime; lf != nil && s.pause > 0 {
		wait = s.pause - in.Now.Sub(lf.Time)
	}
	switch {
	case !s.automatic:
		st.Phase = meshv1alpha1.RolloutManualPhase
		slots = 0
	case st.Failed > 0:
		st.Phase = meshv1alpha1.RolloutFailed
		slots = 0
	case in.Settings.Paused:
		st.Phase = meshv1alpha1.RolloutPaused
		slots = 0
	case len(candidates) > 0 && slots > 0 && in.RoutingJustWritten:
		st.Phase = meshv1alpha1.RolloutWaiting
		plan.RequeueAfter = routingSettle
		slots = 0
	case len(candidates) > 0 && slots > 0 && wait > 0:
		st.Phase = meshv1alpha1.RolloutWaiting
		plan.RequeueAfter = wait
		slots = 0
	}
	for _, key := range candidates {
		if slots <= 0 {
			break
		}
		plan.Restart = append(plan.Restart, Restart{Key: key, Target: targets[key]})
		current = append(current, key)
		slots--
		st.Waiting--
		st.InProgress++
	}
	if st.Phase == "" {
		switch {
		case st.InProgress > 0:
			st.Phase = meshv1alpha1.RolloutRolling
		case st.Waiting > 0:
			st.Phase = meshv1alpha1.RolloutWaiting
		default:
			st.Phase = meshv1alpha1.RolloutIdle
		}
	}
	st.Current = keysToStrings(current)
	var pending []Key
	for _, key := range candidates[len(plan.Restart):] {
		pending = append(pending, key)
	}
	st.Pending = firstN(keysToStrings(pending), listed)
	if len(current) > 0 {
		plan.RequeueAfter = requeue.Sooner(plan.RequeueAfter, poll)
	}
	return plan
}

// within reports whether a workload restarted by meshkeeper is still within its progress deadline.
func within(w Workload, now time.Time, deadline time.Duration) bool {
	return w.RestartedAt.IsZero() || now.Sub(w.RestartedAt) <= deadline
}

// targetOf is what a workload's pods should run (the most common target;
// its pods agree unless its template changed), how many do not run it (and
// of those, how many have no sidecar at all), and whether it serves.
func targetOf(pods []Pod) (target string, stale, leaked int, ready bool) {
	count := map[string]int{}
	for _, p := range pods {
		count[p.Target]++
	}
	for t, n := range count {
		if target == "" || n > count[target] || (n == count[target] && t < target) {
			target = t
		}
	}
	for _, p := range pods {
		if p.Target == target {
			ready = p.TargetReady
		}
		if p.Current != target {
			stale++
			if p.Uninjected {
				leaked++
			}
		}
	}
	return target, stale, leaked, ready
}

func wasCurrent(prev *meshv1alpha1.RolloutStatus, key Key) bool {
	return prev != nil && slices.Contains(prev.Current, key.String())
}

type settings struct {
	automatic bool
	max       intstr.IntOrString
	pause     time.Duration
	deadline  time.Duration
}

func settingsOf(r meshv1alpha1.DataPlaneRollout) settings {
	s := settings{automatic: r.Mode == meshv1alpha1.RolloutAutomatic, max: intstr.FromInt32(1), deadline: 10 * time.Minute}
	if r.MaxConcurrent != nil {
		s.max = *r.MaxConcurrent
	}
	if r.PauseBetween != nil {
		s.pause = r.PauseBetween.Duration
	}
	if r.ProgressDeadline != nil && r.ProgressDeadline.Duration > 0 {
		s.deadline = r.ProgressDeadline.Duration
	}
	return s
}

// maxConcurrent resolves maxConcurrent against the workloads to restart (at least 1).
func (s settings) maxConcurrent(total int) int {
	n, err := intstr.GetScaledValueFromIntOrPercent(&s.max, total, true)
	if err != nil || n < 1 {
		return 1
	}
	return min(n, math.MaxInt32)
}

func compareKeys(a, b Key) int { return strings.Compare(a.String(), b.String()) }

func keysToStrings(keys []Key) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.String())
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	if len(s) == 0 {
		return nil
	}
	return s
}
