package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/localcluster"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

// installTimeout bounds a first install. It is generous: the e2e tests run
// side by side on two cores, and a burst in one slows every cluster.
const installTimeout = 3 * time.Minute

func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, 250*time.Millisecond, what, check)
}

func sample(t *testing.T) *meshv1alpha1.MeshInstall {
	t.Helper()
	mi, err := testenv.Sample()
	if err != nil {
		t.Fatal(err)
	}
	return mi
}

func (e *env) getMeshInstall(t *testing.T, name string) *meshv1alpha1.MeshInstall {
	t.Helper()
	mi := &meshv1alpha1.MeshInstall{}
	if err := e.k8s.Get(context.Background(), client.ObjectKey{Name: name}, mi); err != nil {
		t.Fatal(err)
	}
	return mi
}

// updateMeshInstall retries a change on conflict.
func (e *env) updateMeshInstall(t *testing.T, name string, change func(*meshv1alpha1.MeshInstall)) {
	t.Helper()
	eventually(t, 10*time.Second, "update MeshInstall", func() error {
		mi := e.getMeshInstall(t, name)
		change(mi)
		return e.k8s.Update(context.Background(), mi)
	})
}

// waitReady waits for Ready=True at the current generation.
func (e *env) waitReady(t *testing.T, name string, timeout time.Duration) *meshv1alpha1.MeshInstall {
	t.Helper()
	var mi *meshv1alpha1.MeshInstall
	eventually(t, timeout, "MeshInstall Ready", func() error {
		mi = e.getMeshInstall(t, name)
		c := meta.FindStatusCondition(mi.Status.Conditions, meshv1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue || mi.Status.ObservedGeneration != mi.Generation {
			return fmt.Errorf("generation %d observed %d, Ready %+v", mi.Generation, mi.Status.ObservedGeneration, c)
		}
		return nil
	})
	return mi
}

func (e *env) ensureNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	if err := localcluster.EnsureNamespace(context.Background(), e.k8s, name, labels); err != nil {
		t.Fatal(err)
	}
}

// app is a Deployment like a user's: one container, one port, HTTP probes.
func app(namespace, name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       podSpec(),
			},
		},
	}
}

func podSpec() corev1.PodSpec {
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}}
	return corev1.PodSpec{Containers: []corev1.Container{{
		Name: "app", Image: "nginx:1.27",
		Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		ReadinessProbe: probe, LivenessProbe: probe,
	}}}
}

func barePod(namespace, name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels}, Spec: podSpec()}
}

// hasSidecar reports whether a pod carries istio-proxy, as a native sidecar or a container.
func hasSidecar(p *corev1.Pod) bool {
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.Name == "istio-proxy" {
			return true
		}
	}
	return false
}

// podsOf returns the pods of a Deployment's app label.
func (e *env) podsOf(t *testing.T, namespace, app string) []corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := e.k8s.List(context.Background(), &pods, client.InNamespace(namespace), client.MatchingLabels{"app": app}); err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// createObjects creates n objects, 16 at a time, as a burst of workloads would.
func (e *env) createObjects(t *testing.T, n int, object func(i int) client.Object) {
	t.Helper()
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, n)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := e.k8s.Create(context.Background(), object(i)); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// update reads obj, changes it and updates it, again while the update
// conflicts with a write of the operator's; it returns the update's error
// (a refusal, say) for the caller to judge.
func (e *env) update(t *testing.T, obj client.Object, change func()) error {
	t.Helper()
	ctx := context.Background()
	for {
		if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatal(err)
		}
		change()
		err := e.k8s.Update(ctx, obj)
		if !apierrors.IsConflict(err) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
