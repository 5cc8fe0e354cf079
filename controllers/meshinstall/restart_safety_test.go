package meshinstall

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// outdatedWorkload creates a Deployment in ns with one pod of its current
// ReplicaSet injected by an older configuration of the default revision,
// as the rollout finds workloads after an upgrade, and marks it rolled out.
func outdatedWorkload(t *testing.T, ns string, d *appsv1.Deployment) {
	t.Helper()
	injectedWorkload(t, ns, d, "0000")
}

// injectedWorkload creates a rolled-out Deployment in ns whose one pod the
// default revision's configuration of hash injected.
func injectedWorkload(t *testing.T, ns string, d *appsv1.Deployment, hash string) {
	t.Helper()
	ctx := context.Background()
	d.Namespace = ns
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": d.Name}}
	d.Spec.Template.Labels = map[string]string{"app": d.Name}
	d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", Image: "nginx"}}
	if err := env.Client.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	makeAvailable(t, ns, d.Name)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: d.Name + "-5d4f8b7c9-x7k2p", GenerateName: d.Name + "-5d4f8b7c9-",
			Labels: map[string]string{"app": d.Name, "pod-template-hash": "5d4f8b7c9", inject.LabelInjectedBy: render.DefaultRevision},
			Annotations: map[string]string{"sidecar.istio.io/status": "{}", "mesh.meshkeeper.dev/revision": render.DefaultRevision,
				"mesh.meshkeeper.dev/config-hash": hash, "mesh.meshkeeper.dev/proxy-version": "1.31.4"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: d.Name + "-5d4f8b7c9",
				UID: types.UID("uid-" + ns + "-" + d.Name), Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
}

// outdatedStatefulSet creates a rolled-out StatefulSet in ns whose one pod
// an older configuration of the default revision injected.
func outdatedStatefulSet(t *testing.T, ns, name string, replicas int32) {
	t.Helper()
	ctx := context.Background()
	s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.StatefulSetSpec{
		Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}}}}}
	if err := env.Client.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	s.Status = appsv1.StatefulSetStatus{ObservedGeneration: s.Generation, Replicas: replicas, ReadyReplicas: replicas, UpdatedReplicas: replicas,
		AvailableReplicas: replicas, CurrentRevision: name + "-1", UpdateRevision: name + "-1"}
	if err := env.Client.Status().Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-0", GenerateName: name + "-",
			Labels: map[string]string{"app": name, inject.LabelInjectedBy: render.DefaultRevision},
			Annotations: map[string]string{"sidecar.istio.io/status": "{}", "mesh.meshkeeper.dev/revision": render.DefaultRevision,
				"mesh.meshkeeper.dev/config-hash": "0000", "mesh.meshkeeper.dev/proxy-version": "1.31.4"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: name, UID: s.UID, Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
}

func restartedFor(t *testing.T, ns, name string) string {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Annotations[meshv1alpha1.AnnotationRestartedFor]
}

func statefulSetRestartedFor(t *testing.T, ns, name string) string {
	t.Helper()
	s := &appsv1.StatefulSet{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	return s.Spec.Template.Annotations[meshv1alpha1.AnnotationRestartedFor]
}

// automaticMeshAndNamespace installs a MeshInstall in Automatic rollout
// mode with an available istiod, and a meshed namespace named after prefix
// whose workloads and pods are removed after the test: envtest runs no
// controllers, so what a test leaves would stay in progress forever and
// hold the rollout's slots in later tests.
func automaticMeshAndNamespace(t *testing.T, prefix string) (*meshv1alpha1.MeshInstall, string) {
	t.Helper()
	startManager(t, managerOpts{})
	mi := createSample(t, func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.DataPlane.Rollout.Mode = meshv1alpha1.RolloutAutomatic
		mi.Spec.DataPlane.Rollout.MaxConcurrent = ptr.To(intstr.FromInt32(10))
	})
	eventually(t, timeout, "installed", func() error { return allExist(expectedObjects(t, mi, render.DefaultRevision)) })
	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))

	ctx := context.Background()
	ns := fmt.Sprintf("%s-%d", prefix, testNamespaceSeq)
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"istio-injection": "enabled"}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, kind := range []client.Object{&appsv1.Deployment{}, &appsv1.StatefulSet{}} {
			_ = env.Client.DeleteAllOf(ctx, kind, client.InNamespace(ns))
		}
		_ = env.Client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(ns), client.GracePeriodSeconds(0))
	})
	return mi, ns
}

func TestAutomaticRolloutReportsRestartsThatWouldStopEveryPod(t *testing.T) {
	mi, ns := automaticMeshAndNamespace(t, "restart-safety")
	recreate := func(name string, annotations map[string]string) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}}
	}
	allUnavailable := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "all-unavailable"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: ptr.To(intstr.FromInt32(0)), MaxUnavailable: ptr.To(intstr.FromInt32(1))}}}}
	outdatedWorkload(t, ns, recreate("recreate", nil))
	outdatedWorkload(t, ns, allUnavailable)
	outdatedWorkload(t, ns, recreate("recreate-allowed", map[string]string{meshv1alpha1.AnnotationRestart: meshv1alpha1.RestartAllow}))
	outdatedWorkload(t, ns, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "rolling"}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2)}})
	outdatedStatefulSet(t, ns, "single", 1)
	outdatedStatefulSet(t, ns, "pair", 2)

	eventually(t, timeout, "the rolling and the opted-in Deployments restarted", func() error {
		if statefulSetRestartedFor(t, ns, "pair") == "" {
			return errors.New("StatefulSet pair not restarted")
		}
		for _, name := range []string{"rolling", "recreate-allowed"} {
			if restartedFor(t, ns, name) == "" {
				return fmt.Errorf("%s not restarted; data plane %+v, rollout %+v", name, getMI(t, mi.Name).Status.DataPlane, getMI(t, mi.Name).Status.DataPlane.Rollout)
			}
		}
		return nil
	})
	want := []string{
		"Deployment " + ns + "/all-unavailable (its rolling update may stop every replica (maxUnavailable); annotate mesh.meshkeeper.dev/restart=allow to allow it)",
		"Deployment " + ns + "/recreate (Recreate strategy: a restart stops every pod first; annotate mesh.meshkeeper.dev/restart=allow to allow it)",
		"StatefulSet " + ns + "/single (a single replica: a restart stops it; annotate mesh.meshkeeper.dev/restart=allow to allow it)",
	}
	eventually(t, timeout, "the Recreate and all-unavailable Deployments and the single-replica StatefulSet reported", func() error {
		ro := getMI(t, mi.Name).Status.DataPlane.Rollout
		if ro == nil {
			return errors.New("no rollout status")
		}
		// Other tests' pods of this shared API server are listed too.
		ours := slices.DeleteFunc(slices.Clone(ro.NeedsManualAction), func(s string) bool { return !strings.Contains(s, " "+ns+"/") })
		if !slices.Equal(ours, want) {
			return fmt.Errorf("rollout status %+v", ro)
		}
		return nil
	})
	for _, name := range []string{"recreate", "all-unavailable"} {
		if got := restartedFor(t, ns, name); got != "" {
			t.Errorf("%s was restarted (for %s): a restart stops all of its pods at once", name, got)
		}
	}
	if got := statefulSetRestartedFor(t, ns, "single"); got != "" {
		t.Errorf("the single-replica StatefulSet was restarted (for %s)", got)
	}
}

// TestAutomaticRolloutReportsRestartsBelowABudget: a Deployment of four
// replicas rolls one pod at a time (maxUnavailable 25%, rounded down);
// under a PodDisruptionBudget with minAvailable 4 that one pod is more
// than the budget allows, so it is reported, not restarted. Under a budget
// that allows one, or opted in, it is restarted.
func TestAutomaticRolloutReportsRestartsBelowABudget(t *testing.T) {
	mi, ns := automaticMeshAndNamespace(t, "budgets")
	ctx := context.Background()
	budget := func(name string, minAvailable, maxUnavailable *intstr.IntOrString) {
		p := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				MinAvailable: minAvailable, MaxUnavailable: maxUnavailable}}
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	four := func(name string, annotations map[string]string) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](4)}}
	}
	budget("guarded", ptr.To(intstr.FromInt32(4)), nil)
	budget("tolerant", nil, ptr.To(intstr.FromInt32(1)))
	budget("guarded-allowed", ptr.To(intstr.FromInt32(4)), nil)
	outdatedWorkload(t, ns, four("guarded", nil))
	outdatedWorkload(t, ns, four("tolerant", nil))
	outdatedWorkload(t, ns, four("guarded-allowed", map[string]string{meshv1alpha1.AnnotationRestart: meshv1alpha1.RestartAllow}))

	eventually(t, timeout, "the Deployments the budgets allow restarted", func() error {
		for _, name := range []string{"tolerant", "guarded-allowed"} {
			if restartedFor(t, ns, name) == "" {
				return fmt.Errorf("%s not restarted; rollout %+v", name, getMI(t, mi.Name).Status.DataPlane.Rollout)
			}
		}
		return nil
	})
	want := []string{"Deployment " + ns + "/guarded (a restart may take it below PodDisruptionBudget " + ns + "/guarded: it allows 0 unavailable, " +
		"the rollout takes up to 1; annotate mesh.meshkeeper.dev/restart=allow to allow it)"}
	eventually(t, timeout, "the guarded Deployment reported", func() error {
		ro := getMI(t, mi.Name).Status.DataPlane.Rollout
		if ro == nil {
			return errors.New("no rollout status")
		}
		ours := slices.DeleteFunc(slices.Clone(ro.NeedsManualAction), func(s string) bool { return !strings.Contains(s, " "+ns+"/") })
		if !slices.Equal(ours, want) {
			return fmt.Errorf("rollout status %+v", ro)
		}
		return nil
	})
	if got := restartedFor(t, ns, "guarded"); got != "" {
		t.Errorf("guarded was restarted (for %s): its budget allows no pod down", got)
	}
}
