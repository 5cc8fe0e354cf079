package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
)

const (
	cniAppsNS     = "cni-apps"
	cniWorkloads  = 4
	cniOldRev     = "1-30-8"
	cniOldVersion = "1.30.8"
)

// TestTwoMinorCanaryMovesTheCNIThroughTheMiddleMinor runs a 1.30 → 1.32
// canary with the istio-cni node agent and Automatic rollouts. While the
// agent cannot roll out, no workload moves to the canary. Sampled
// throughout: the agent's DaemonSet (its template and its pods) is never
// more than one minor from an istiod serving pods (one that running pods
// were injected by, or that the routing sends new pods to); its version
// goes 1.30 → 1.31 → 1.32, in that order; the workloads end on 1.32.
func TestTwoMinorCanaryMovesTheCNIThroughTheMiddleMinor(t *testing.T) {
	runsLong(t, 70*time.Second)
	t.Parallel()
	e := newEnv(t, 2)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Version = cniOldVersion
	mi.Spec.Gateways = nil
	mi.Spec.Profile = meshv1alpha1.ProfileMinimal
	mi.Spec.CNI.Enabled = true
	mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{
		Type:                                meshv1alpha1.UpdateStrategyCanary,
		Canary:                              &meshv1alpha1.CanaryStrategy{Steps: []int32{50, 100}, StepInterval: &metav1.Duration{Duration: 3 * time.Second}},
		InactiveRevisionDeletionGracePeriod: &metav1.Duration{Duration: 3 * time.Second},
	}
	four := intstr.FromInt32(cniWorkloads)
	mi.Spec.DataPlane.Rollout = meshv1alpha1.DataPlaneRollout{Mode: meshv1alpha1.RolloutAutomatic, MaxConcurrent: &four}
	if err := e.k8s.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	e.waitReady(t, mi.Name, installTimeout)
	e.ensureNamespace(t, cniAppsNS, map[string]string{"istio-injection": "enabled"})
	for i := range cniWorkloads {
		if err := e.k8s.Create(ctx, app(cniAppsNS, cniWorkload(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	e.waitCNIWorkloadsOn(t, cniOldRev)

	s := e.sampleCNISkew(t, mi.Spec.Namespace)
	// The agent's new pods cannot be scheduled at first: the canary's
	// istiod becomes available, but no workload may move to it while the
	// agent is not available on 1.31.
	e.updateMeshInstall(t, mi.Name, func(m *meshv1alpha1.MeshInstall) {
		m.Spec.Version = canaryVer
		m.Spec.CNI.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64")}}
	})
	eventually(t, 60*time.Second, "the canary's istiod available, the agent not", func() error {
		got := e.getMeshInstall(t, mi.Name)
		c := apimeta.FindStatusCondition(got.Status.Conditions, meshv1alpha1.ConditionCNIReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != meshv1alpha1.ReasonCNIRollingOut {
			return fmt.Errorf("CNIReady %+v", c)
		}
		for _, r := range got.Status.Revisions {
			if r.Name == canaryRev && r.Ready {
				return nil
			}
		}
		return fmt.Errorf("canary istiod not ready: %+v", got.Status.Revisions)
	})
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if r := e.routing(t, mi.Spec.Namespace); r.Weight != 0 {
			t.Fatalf("workloads routed to the canary while the node agent is not available: %+v", r)
		}
	}
	e.updateMeshInstall(t, mi.Name, func(m *meshv1alpha1.MeshInstall) { m.Spec.CNI.Resources = nil })
	e.waitCNIWorkloadsOn(t, canaryRev)
	e.waitPruned(t, cniOldRev)
	eventually(t, 60*time.Second, "the agent on 1.32 and ready", func() error {
		got := e.getMeshInstall(t, mi.Name)
		c := apimeta.FindStatusCondition(got.Status.Conditions, meshv1alpha1.ConditionCNIReady)
		if got.Status.CNI == nil || got.Status.CNI.Version != canaryVer || c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("status.cni %+v, CNIReady %+v", got.Status.CNI, c)
		}
		return nil
	})
	versions, violations, samples := s.stop()
	t.Logf("%d samples; agent versions seen in order: %v", samples, versions)
	if want := []string{cniOldVersion, "1.31.4", canaryVer}; !slices.Equal(versions, want) {
		t.Errorf("the agent's versions went %v, want %v", versions, want)
	}
	for _, v := range violations {
		t.Error(v)
	}
}

func cniWorkload(i int) string { return fmt.Sprintf("c-%d", i) }

// waitCNIWorkloadsOn waits until every workload runs one Ready pod injected by rev.
func (e *env) waitCNIWorkloadsOn(t *testing.T, rev string) {
	t.Helper()
	eventually(t, 90*time.Second, "workloads on "+rev, func() error {
		for i := range cniWorkloads {
			var pods corev1.PodList
			if err := e.k8s.List(context.Background(), &pods, client.InNamespace(cniAppsNS), client.MatchingLabels{"app": cniWorkload(i)}); err != nil {
				return err
			}
			if len(pods.Items) != 1 || pods.Items[0].Annotations[inject.AnnotationRevision] != rev || !podReady(&pods.Items[0]) {
				return fmt.Errorf("%s: %d pods, first on %q", cniWorkload(i), len(pods.Items), firstRevision(pods.Items))
			}
		}
		return nil
	})
}

func firstRevision(pods []corev1.Pod) string {
	if len(pods) == 0 {
		return ""
	}
	return pods[0].Annotations[inject.AnnotationRevision]
}

// cniSampler checks, every sample, the agent against the istiods serving pods.
type cniSampler struct {
	mu         sync.Mutex
	versions   []string // the DaemonSet template's versions, each time it changed
	violations []string
	samples    int
	done       chan struct{}
	wg         sync.WaitGroup
}

func (e *env) sampleCNISkew(t *testing.T, controlPlane string) *cniSampler {
	t.Helper()
	s := &cniSampler{done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-s.done:
				return
			case <-time.After(200 * time.Millisecond):
			}
			s.sample(e, controlPlane)
		}
	}()
	t.Cleanup(func() { s.stop() })
	return s
}

// stop ends the sampling and returns what it found.
func (s *cniSampler) stop() (versions, violations []string, samples int) {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.versions), slices.Clone(s.violations), s.samples
}

// sample reads the routing, the running injected pods and the agent, and
// records any agent version more than one minor from a serving istiod.
func (s *cniSampler) sample(e *env, controlPlane string) {
	ctx := context.Background()
	serving := map[string]bool{} // revision names
	routing := &corev1.ConfigMap{}
	if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: controlPlane, Name: render.RoutingConfigMapName}, routing); err == nil {
		if r, err := revision.RoutingFromData(routing.Data); err == nil {
			serving[r.Active] = true
			if r.Canary != "" && r.Weight > 0 {
				serving[r.Canary] = true
			}
		}
	}
	var pods corev1.PodList
	if err := e.k8s.List(ctx, &pods, client.InNamespace(cniAppsNS)); err != nil {
		return
	}
	for _, p := range pods.Items {
		if rev := p.Annotations[inject.AnnotationRevision]; rev != "" && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			serving[rev] = true
		}
	}
	ds := &appsv1.DaemonSet{}
	if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: render.DefaultCNINamespace, Name: render.CNIDaemonSetName}, ds); err != nil {
		return
	}
	var agentPods corev1.PodList
	if err := e.k8s.List(ctx, &agentPods, client.InNamespace(render.DefaultCNINamespace), client.MatchingLabels{"k8s-app": render.CNIDaemonSetName}); err != nil {
		return
	}
	agents := map[string]string{"DaemonSet template": ds.Spec.Template.Labels[render.LabelVersion]}
	for _, p := range agentPods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			agents["agent pod "+p.Name] = p.Labels[render.LabelVersion]
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	if v := agents["DaemonSet template"]; len(s.versions) == 0 || s.versions[len(s.versions)-1] != v {
		s.versions = append(s.versions, v)
	}
	for what, agent := range agents {
		for rev := range serving {
			istiod := strings.ReplaceAll(rev, "-", ".") // canary revisions are named by version
			if d := minorDistance(agent, istiod); d > 1 {
				s.violations = append(s.violations, fmt.Sprintf("%s runs %s while istiod %s serves pods (%d minors apart)", what, agent, istiod, d))
			}
		}
	}
}

// minorDistance is how many minors two X.Y.Z versions are apart; unreadable ones are far.
func minorDistance(a, b string) int64 {
	va, errA := semver.NewVersion(a)
	vb, errB := semver.NewVersion(b)
	if errA != nil || errB != nil || va.Major() != vb.Major() {
		return 99
	}
	d := int64(va.Minor()) - int64(vb.Minor())
	if d < 0 {
		d = -d
	}
	return d
}
