package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/rollout"
)

// restartTracker follows the restart annotations of a namespace's workloads
// through watches: which restarts happened, and how many workloads were
// rolling at once (restarted, their controller not yet done).
type restartTracker struct {
	mu         sync.Mutex
	restarts   map[string][]string // "Kind name" → restarted-for values, one per restart, in order
	last       map[string]string   // "Kind name" → its last restart (restarted-for and restartedAt)
	rolling    map[string]bool
	maxRolling int
}

func (e *env) trackRestarts(t *testing.T, namespace string) *restartTracker {
	t.Helper()
	wc, err := client.NewWithWatch(e.cfg, client.Options{Scheme: e.k8s.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	tr := &restartTracker{restarts: map[string][]string{}, last: map[string]string{}, rolling: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, list := range []client.ObjectList{&appsv1.DeploymentList{}, &appsv1.StatefulSetList{}, &appsv1.DaemonSetList{}} {
		w, err := wc.Watch(ctx, list, client.InNamespace(namespace))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer w.Stop()
			for ev := range w.ResultChan() {
				if ev.Type == watch.Added || ev.Type == watch.Modified {
					tr.observe(ev.Object.(client.Object))
				}
			}
		}()
	}
	return tr
}

func (tr *restartTracker) observe(o client.Object) {
	var kind string
	var template corev1.PodTemplateSpec
	var complete bool
	switch w := o.(type) {
	case *appsv1.Deployment:
		want := ptr.Deref(w.Spec.Replicas, 1)
		kind, template = "Deployment", w.Spec.Template
		complete = w.Status.ObservedGeneration >= w.Generation && w.Status.UpdatedReplicas == want && w.Status.AvailableReplicas == want && w.Status.Replicas == want
	case *appsv1.StatefulSet:
		want := ptr.Deref(w.Spec.Replicas, 1)
		kind, template = "StatefulSet", w.Spec.Template
		complete = w.Status.ObservedGeneration >= w.Generation && w.Status.UpdatedReplicas == want && w.Status.ReadyReplicas == want && w.Status.CurrentRevision == w.Status.UpdateRevision
	case *appsv1.DaemonSet:
		kind, template = "DaemonSet", w.Spec.Template
		s := w.Status
		complete = s.ObservedGeneration >= w.Generation && s.UpdatedNumberScheduled == s.DesiredNumberScheduled && s.NumberAvailable == s.DesiredNumberScheduled
	}
	key := kind + " " + o.GetName()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	// Every restart changes restartedAt, a repeated one for the same target too.
	if rf := template.Annotations[meshv1alpha1.AnnotationRestartedFor]; rf != "" {
		restart := rf + "@" + template.Annotations[meshv1alpha1.AnnotationRestartedAt]
		if tr.last[key] != restart {
			tr.last[key] = restart
			tr.restarts[key] = append(tr.restarts[key], rf)
			tr.rolling[key] = true
			complete = false // this very event is the restart
		}
	}
	if complete {
		delete(tr.rolling, key)
	}
	tr.maxRolling = max(tr.maxRolling, len(tr.rolling))
}

func (tr *restartTracker) snapshot() (restarts map[string][]string, maxRolling int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	restarts = map[string][]string{}
	for k, v := range tr.restarts {
		restarts[k] = slices.Clone(v)
	}
	return restarts, tr.maxRolling
}

func statefulSet(namespace, name string) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels}, ServiceName: name,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec()},
		},
	}
}

func daemonSet(namespace, name string) *appsv1.DaemonSet {
	labels := map[string]string{"app": name}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec()},
		},
	}
}

func (e *env) rolloutStatus(t *testing.T, name string) *meshv1alpha1.RolloutStatus {
	t.Helper()
	if dp := e.getMeshInstall(t, name).Status.DataPlane; dp != nil && dp.Rollout != nil {
		return dp.Rollout
	}
	return &meshv1alpha1.RolloutStatus{}
}

// waitPodsOn waits until every running pod of the namespace with the app
// label in apps runs the proxy version want, Ready.
func (e *env) waitPodsOn(t *testing.T, namespace string, apps []string, want string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "pods on proxy "+want, func() error {
		var pods corev1.PodList
		if err := e.k8s.List(context.Background(), &pods, client.InNamespace(namespace)); err != nil {
			return err
		}
		seen := map[string]bool{}
		for i := range pods.Items {
			p := &pods.Items[i]
			if !slices.Contains(apps, p.Labels["app"]) || !p.DeletionTimestamp.IsZero() {
				continue
			}
			seen[p.Labels["app"]] = true
			if got := p.Annotations[inject.AnnotationProxyVersion]; got != want || !podReady(p) {
				return fmt.Errorf("%s on %q (ready %v)", p.Name, got, podReady(p))
			}
		}
		if len(seen) != len(apps) {
			return fmt.Errorf("%d of %d apps have pods", len(seen), len(apps))
		}
		return nil
	})
}

// TestInPlaceUpgradeRollsTheDataPlane upgrades in place with 20 workloads
// (Deployments, a StatefulSet, a DaemonSet): Manual mode first lists what to
// restart and restarts nothing; Automatic then restarts exactly those, at
// most 3 at a time, each once, also across an operator crash; an opted-out
// workload and a bare pod are left alone and reported.
func TestInPlaceUpgradeRollsTheDataPlane(t *testing.T) {
	runsLong(t, 70*time.Second)
	t.Parallel()
	e := newEnv(t, 3)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Version = stableVer
	mi.Spec.Gateways = nil
	mi.Spec.Profile = meshv1alpha1.ProfileMinimal // no gateway: the control plane only
	three := intstr.FromInt32(3)
	mi.Spec.DataPlane.Rollout = meshv1alpha1.DataPlaneRollout{Mode: meshv1alpha1.RolloutManual, MaxConcurrent: &three,
		ProgressDeadline: &metav1.Duration{Duration: 2 * time.Minute}}
	if err := e.k8s.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	e.waitReady(t, mi.Name, installTimeout)
	const ns = "rolling"
	e.ensureNamespace(t, ns, map[string]string{"istio-injection": "enabled"})
	var apps, want []string
	for i := range 18 {
		name := fmt.Sprintf("web-%02d", i)
		if err := e.k8s.Create(ctx, app(ns, name, 1)); err != nil {
			t.Fatal(err)
		}
		apps, want = append(apps, name), append(want, "Deployment "+ns+"/"+name)
	}
	// A single-replica StatefulSet's restart stops it: meshkeeper restarts it only when opted in.
	db := statefulSet(ns, "db")
	db.Annotations = map[string]string{meshv1alpha1.AnnotationRestart: meshv1alpha1.RestartAllow}
	for _, o := range []client.Object{db, daemonSet(ns, "agent")} {
		if err := e.k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	apps = append(apps, "db", "agent")
	want = append(want, "StatefulSet "+ns+"/db", "DaemonSet "+ns+"/agent")
	slices.Sort(want)
	private := app(ns, "private", 1)
	private.Annotations = map[string]string{meshv1alpha1.AnnotationRollout: meshv1alpha1.RolloutDisabled}
	if err := e.k8s.Create(ctx, private); err != nil {
		t.Fatal(err)
	}
	if err := e.k8s.Create(ctx, barePod(ns, "debug", map[string]string{"app": "debug"})); err != nil {
		t.Fatal(err)
	}
	e.waitPodsOn(t, ns, append(slices.Clone(apps), "private", "debug"), stableVer, 90*time.Second)
	tracker := e.trackRestarts(t, ns)

	t.Run("Manual lists every workload to restart and restarts none", func(t *testing.T) {
		e.updateMeshInstall(t, mi.Name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Version = canaryVer })
		eventually(t, 90*time.Second, "the workloads to restart listed", func() error {
			ro := e.rolloutStatus(t, mi.Name)
			if ro.Phase != meshv1alpha1.RolloutManualPhase || !slices.Equal(ro.Pending, want) {
				return fmt.Errorf("rollout %+v", ro)
			}
			return nil
		})
		ro := e.rolloutStatus(t, mi.Name)
		for _, manual := range []string{"Deployment " + ns + "/private (opted out)", "Pod " + ns + "/debug"} {
			if !slices.Contains(ro.NeedsManualAction, manual) {
				t.Errorf("needsManualAction %v lacks %s", ro.NeedsManualAction, manual)
			}
		}
		c := conditionOf(e.getMeshInstall(t, mi.Name), meshv1alpha1.ConditionWorkloadRollout)
		if c == nil || c.Reason != meshv1alpha1.ReasonRolloutManual || !strings.Contains(c.Message, "kubectl rollout restart") {
			t.Errorf("WorkloadRollout = %+v, want the command to run", c)
		}
		time.Sleep(5 * time.Second)
		if restarts, _ := tracker.snapshot(); len(restarts) != 0 {
			t.Errorf("Manual mode restarted %v", restarts)
		}
	})
	t.Run("Automatic restarts exactly those, at most 3 at a time, once each, across an operator crash", func(t *testing.T) {
		e.updateMeshInstall(t, mi.Name, func(m *meshv1alpha1.MeshInstall) { m.Spec.DataPlane.Rollout.Mode = meshv1alpha1.RolloutAutomatic })
		eventually(t, 60*time.Second, "the rollout under way", func() error {
			if restarts, _ := tracker.snapshot(); len(restarts) < 4 {
				return fmt.Errorf("%d restarted", len(restarts))
			}
			return nil
		})
		if err := e.operator.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := e.operator.Start(ctx); err != nil {
			t.Fatal(err)
		}
		e.waitPodsOn(t, ns, apps, canaryVer, 4*time.Minute)
		eventually(t, 60*time.Second, "the rollout complete", func() error {
			if ro := e.rolloutStatus(t, mi.Name); ro.Phase != meshv1alpha1.RolloutIdle || ro.Done != int32(len(want)) {
				return fmt.Errorf("rollout %+v", ro)
			}
			return nil
		})
		restarts, maxRolling := tracker.snapshot()
		var restarted []string
		for key, targets := range restarts {
			kind, name, _ := strings.Cut(key, " ")
			restarted = append(restarted, kind+" "+ns+"/"+name)
			if len(targets) != 1 || rollout.RevisionOf(targets[0]) != "default" {
				t.Errorf("%s restarted for %v, want once for the default revision", key, targets)
			}
		}
		slices.Sort(restarted)
		if !slices.Equal(restarted, want) {
			t.Errorf("restarted %v, want exactly what Manual listed: %v", restarted, want)
		}
		t.Logf("at most %d workloads rolled at once (maxConcurrent 3)", maxRolling)
		if maxRolling > 3 {
			t.Errorf("%d workloads rolled at once, maxConcurrent is 3", maxRolling)
		}
	})
	t.Run("the opted-out workload and the bare pod are untouched", func(t *testing.T) {
		for _, a := range []string{"private", "debug"} {
			for _, p := range e.podsOf(t, ns, a) {
				if v := p.Annotations[inject.AnnotationProxyVersion]; v != stableVer {
					t.Errorf("%s moved to %s", p.Name, v)
				}
			}
		}
		if c := conditionOf(e.getMeshInstall(t, mi.Name), meshv1alpha1.ConditionWorkloadRollout); c == nil || c.Reason != meshv1alpha1.ReasonRolloutComplete || !strings.Contains(c.Message, "manual restart") {
			t.Errorf("WorkloadRollout = %+v, want complete, naming what needs a manual restart", c)
		}
	})
}

// TestRolloutStopsAtAWorkloadThatCannotFinish restarts three workloads one
// at a time; the second cannot finish (its surge pod fits nowhere). The
// rollout stops there with a condition naming it, restarts nothing else, and
// goes on by itself once the workload is fixed.
func TestRolloutStopsAtAWorkloadThatCannotFinish(t *testing.T) {
	runsLong(t, 60*time.Second)
	t.Parallel()
	e := newEnv(t, 3)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Version = stableVer
	mi.Spec.Gateways = nil
	mi.Spec.Profile = meshv1alpha1.ProfileMinimal // no gateway: the control plane only
	mi.Spec.DataPlane.Rollout = meshv1alpha1.DataPlaneRollout{Mode: meshv1alpha1.RolloutAutomatic,
		ProgressDeadline: &metav1.Duration{Duration: 15 * time.Second}}
	if err := e.k8s.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	e.waitReady(t, mi.Name, installTimeout)
	const ns = "stuck"
	e.ensureNamespace(t, ns, map[string]string{"istio-injection": "enabled"})
	// b fills every node: its rolling update's extra pod can never be scheduled.
	b := app(ns, "b", 3)
	b.Spec.Template.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("30")}
	for _, d := range []*appsv1.Deployment{app(ns, "a", 1), b, app(ns, "c", 1)} {
		if err := e.k8s.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	e.waitPodsOn(t, ns, []string{"a", "b", "c"}, stableVer, 90*time.Second)
	e.updateMeshInstall(t, mi.Name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Version = canaryVer })

	eventually(t, 2*time.Minute, "the rollout stopped at b", func() error {
		c := conditionOf(e.getMeshInstall(t, mi.Name), meshv1alpha1.ConditionWorkloadRollout)
		if c == nil || c.Reason != meshv1alpha1.ReasonRolloutFailed || !strings.Contains(c.Message, "Deployment "+ns+"/b") {
			return fmt.Errorf("WorkloadRollout = %+v", c)
		}
		return nil
	})
	time.Sleep(5 * time.Second)
	cDeploy := &appsv1.Deployment{}
	if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "c"}, cDeploy); err != nil {
		t.Fatal(err)
	}
	if _, restarted := cDeploy.Spec.Template.Annotations[meshv1alpha1.AnnotationRestartedFor]; restarted {
		t.Error("c was restarted after b stopped the rollout")
	}

	// The user fixes b: its rolling update may take a pod down first.
	bDeploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "b"}}
	if err := e.update(t, bDeploy, func() {
		bDeploy.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: ptr.To(intstr.FromInt32(0)), MaxUnavailable: ptr.To(intstr.FromInt32(1))}
	}); err != nil {
		t.Fatal(err)
	}
	e.waitPodsOn(t, ns, []string{"a", "b", "c"}, canaryVer, 2*time.Minute)
	eventually(t, 60*time.Second, "the rollout complete", func() error {
		c := conditionOf(e.getMeshInstall(t, mi.Name), meshv1alpha1.ConditionWorkloadRollout)
		if c == nil || c.Reason != meshv1alpha1.ReasonRolloutComplete {
			return fmt.Errorf("WorkloadRollout = %+v", c)
		}
		return nil
	})
}

// TestLeakedPodsAreRepaired admits pods without a sidecar while the webhook
// is unreachable (failurePolicy Ignore); once the operator is back, their
// workloads are restarted and injected.
func TestLeakedPodsAreRepaired(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Gateways = nil
	mi.Spec.Profile = meshv1alpha1.ProfileMinimal // no gateway: the control plane only
	mi.Spec.Injection.FailurePolicy = meshv1alpha1.FailurePolicyIgnore
	mi.Spec.DataPlane.Rollout.Mode = meshv1alpha1.RolloutAutomatic
	if err := e.k8s.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	e.waitReady(t, mi.Name, installTimeout)
	e.ensureNamespace(t, "leaky", map[string]string{"istio-injection": "enabled"})
	if err := e.operator.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.k8s.Create(ctx, app("leaky", "web", 2)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "pods admitted without a sidecar", func() error {
		pods := e.podsOf(t, "leaky", "web")
		if len(pods) != 2 || hasSidecar(&pods[0]) || hasSidecar(&pods[1]) {
			return fmt.Errorf("%d pods", len(pods))
		}
		return nil
	})
	if err := e.operator.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitPodsOn(t, "leaky", []string{"web"}, mi.Spec.Version, 90*time.Second)
	for _, p := range e.podsOf(t, "leaky", "web") {
		if p.DeletionTimestamp.IsZero() && !hasSidecar(&p) {
			t.Errorf("%s has no sidecar after the repair", p.Name)
		}
	}
}

// TestCanaryStepsMoveTheirWorkloads runs a canary with Automatic rollouts:
// each step restarts exactly the workloads the hash assigns to the canary,
// an abort moves them back, and a canary run to the end moves everything
// and prunes the old revision, with no manual restart. The real istioctl
// sees the mesh throughout: tag list shows the default and prod tags on the
// active revision with the namespaces that select them and follows the
// promotion; analyze finds nothing wrong with the injection webhooks or the
// namespaces; precheck passes. kubectl meshkeeper follows the same upgrade:
// its precheck predicts the refusal of a three-minor jump and names the
// Recreate Deployment the rollout then reports; its status matches the
// cluster's weights and pods at the paused first step, while that
// Deployment waits for a person, and at the end, up to date. The
// operator's metrics, scraped every second from the first step to the
// promotion, give every query of the Grafana dashboard (config/grafana)
// data, and hold every metric and label the alerts (config/prometheus) read.
func TestCanaryStepsMoveTheirWorkloads(t *testing.T) {
	runsLong(t, 100*time.Second)
	t.Parallel()
	istioctl := istioctlFor(t)
	plugin := kubectlMeshkeeper(t)
	e := newEnv(t, 3)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Version = stableVer
	mi.Spec.Gateways = nil
	mi.Spec.Profile = meshv1alpha1.ProfileMinimal // no gateway: the control plane only
	mi.Spec.RevisionTags = []string{"prod"}
	mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{
		Type:                                meshv1alpha1.UpdateStrategyCanary,
		Canary:                              &meshv1alpha1.CanaryStrategy{Steps: []int32{10, 50, 100}, StepInterval: &metav1.Duration{Duration: 5 * time.Second}, Paused: true},
		InactiveRevisionDeletionGracePeriod: &metav1.Duration{Duration: pruneGrace},
	}
	five := intstr.FromInt32(5)
	mi.Spec.DataPlane.Rollout = meshv1alpha1.DataPlaneRollout{Mode: meshv1alpha1.RolloutAutomatic, MaxConcurrent: &five}
	if err := e.k8s.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	e.waitReady(t, mi.Name, installTimeout)
	e.ensureNamespace(t, appsNS, map[string]string{"istio-injection": "enabled"})
	for i := range workloads {
		if err := e.k8s.Create(ctx, app(appsNS, workloadName(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	// A Recreate Deployment that only the last step (100%) moves: meshkeeper
	// never restarts it, and says so.
	recreate := recreateDeploymentName()
	db := app(appsNS, recreate, 1)
	db.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
	if err := e.k8s.Create(ctx, db); err != nil {
		t.Fatal(err)
	}
	e.istioctlNamespaces(t)
	e.waitAssignment(t, func(string) string { return stableRev })
	e.waitPodsOn(t, appsNS, []string{recreate}, stableVer, 60*time.Second)
	t.Run("istioctl: tag list shows the tags on the active revision, analyze and precheck find nothing", func(t *testing.T) {
		e.checkIstioctlTags(t, istioctl, stableRev)
		e.checkIstioctlAnalyze(t, istioctl)
		e.checkIstioctlPrecheck(t, istioctl)
	})
	var recreateReport string
	t.Run("kubectl meshkeeper precheck: a three-minor jump is refused as predicted, the canary names the Recreate Deployment", func(t *testing.T) {
		recreateReport = e.checkPluginPrecheck(t, plugin, mi.Name, recreate)
	})
	t.Run("check-inject: istioctl finds no injector, kubectl meshkeeper names the entry and the revision", func(t *testing.T) {
		e.checkInjectAgainstIstioctl(t, istioctl, plugin, stableRev)
	})
	tracker := e.trackRestarts(t, appsNS)
	metrics := e.recordMetrics(t, time.Second) // for the dashboard, below
	movedAt := func(weight int32) []string {
		var out []string
		for i := range workloads {
			if expectedAt(weight)(workloadName(i)) == canaryRev {
				out = append(out, "Deployment "+workloadName(i))
			}
		}
		return out
	}

	t.Run("the first step restarts exactly the workloads it assigns to the canary", func(t *testing.T) {
		e.updateMeshInstall(t, mi.Name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Version = canaryVer })
		e.waitCanary(t, canaryRev, 10)
		e.waitAssignment(t, expectedAt(10))
		restarts, _ := tracker.snapshot()
		var restarted []string
		for key, targets := range restarts {
			restarted = append(restarted, key)
			if len(targets) != 1 || rollout.RevisionOf(targets[0]) != canaryRev {
				t.Errorf("%s restarted for %v, want once onto %s", key, targets, canaryRev)
			}
		}
		slices.Sort(restarted)
		if want := movedAt(10); !slices.Equal(restarted, want) {
			t.Errorf("restarted %v, want %v", restarted, want)
		}
		out := e.checkPluginStatus(t, plugin, mi.Spec.Namespace, "upgrading")
		if !strings.Contains(out, "weight 10%") || !strings.Contains(out, "paused at this step") {
			t.Errorf("status does not show the canary paused at 10%%:\n%s", out)
		}
	})
	t.Run("an abort moves them back", func(t *testing.T) {
		e.updateMeshInstall(t, mi.Name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Version = stableVer })
		e.waitAssignment(t, func(string) string { return stableRev })
		e.waitPruned(t, canaryRev)
		restarts, _ := tracker.snapshot()
		for _, key := range movedAt(10) {
			if targets := restarts[key]; len(targets) != 2 || rollout.RevisionOf(targets[1]) != stableRev {
				t.Errorf("%s restarted for %v, want back onto %s", key, targets, stableRev)
			}
		}
	})
	t.Run("unpaused, the canary moves every workload step by step and the old revision is pruned", func(t *testing.T) {
		e.updateMeshInstall(t, mi.Name, func(m *meshv1alpha1.MeshInstall) {
			m.Spec.Version = canaryVer
			m.Spec.UpdateStrategy.Canary.Paused = false
		})
		e.waitAssignment(t, func(string) string { return canaryRev })
		// The Recreate Deployment, as precheck named it, waits for a person
		// and holds the old revision; status says so, then it is restarted by hand.
		eventually(t, 60*time.Second, "the rollout reporting "+recreate, func() error {
			if manual := e.rolloutStatus(t, mi.Name).NeedsManualAction; !slices.Contains(manual, recreateReport) {
				return fmt.Errorf("needs manual action: %q, want %q", manual, recreateReport)
			}
			return nil
		})
		if out := e.checkPluginStatus(t, plugin, mi.Spec.Namespace, ""); !strings.Contains(out, "Needs manual action") || !strings.Contains(out, "\n  "+recreateReport+"\n") {
			t.Errorf("status does not list %q as needing a person:\n%s", recreateReport, out)
		}
		e.restartByHand(t, appsNS, recreate)
		e.waitPodsOn(t, appsNS, []string{recreate}, canaryVer, 60*time.Second)
		e.waitPruned(t, stableRev)
		e.checkPluginStatus(t, plugin, mi.Spec.Namespace, "up to date")
		restarts, _ := tracker.snapshot()
		for key, targets := range restarts {
			for i := 1; i < len(targets); i++ {
				if targets[i] == targets[i-1] {
					t.Errorf("%s restarted twice for %s", key, targets[i])
				}
			}
			if rollout.RevisionOf(targets[len(targets)-1]) != canaryRev {
				t.Errorf("%s last restarted for %s", key, targets[len(targets)-1])
			}
		}
	})
	t.Run("the dashboard's queries all return data from the upgrade's metrics, the alerts read only what it serves", metrics.checkDashboard)
	t.Run("istioctl: after the promotion the tags point at the new revision", func(t *testing.T) {
		e.checkIstioctlTags(t, istioctl, canaryRev)
	})
	t.Run("istioctl: without the tag configurations it lists no tag", func(t *testing.T) {
		e.checkIstioctlReadsTagConfigurations(t, istioctl, mi.Spec.Namespace)
	})
}
