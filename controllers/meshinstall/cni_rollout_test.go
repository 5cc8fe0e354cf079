package meshinstall

import (
	"cmp"
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/rollout"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// TestTurningCNIOnRestartsWorkloadsOntoTheNewShape: spec.cni.enabled
// changes the revision's injection configuration, so a pod injected before
// (with istio-init) is outdated, and the Automatic rollout restarts its
// workload for the configuration with CNI (istio-validation).
func TestTurningCNIOnRestartsWorkloadsOntoTheNewShape(t *testing.T) {
	mi, ns := automaticMeshAndNamespace(t, "cni-rollout")
	hash := func(mi *meshv1alpha1.MeshInstall) string {
		v, err := version.Parse(mi.Spec.Version)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := render.InjectionConfig(mi, render.Revision{Name: render.DefaultRevision, Version: v, InjectCNI: mi.Spec.CNI.Enabled})
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Hash()
	}
	withoutCNI := hash(mi)

	// A Deployment whose pod the current configuration injected.
	outdatedWorkload(t, ns, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2)}})
	ctx := context.Background()
	pod := &corev1.Pod{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-5d4f8b7c9-x7k2p"}, pod); err != nil {
		t.Fatal(err)
	}
	pod.Annotations[inject.AnnotationConfigHash] = withoutCNI
	pod.Annotations[inject.AnnotationProxyVersion] = mi.Spec.Version
	if err := env.Client.Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "the pass that saw the up-to-date pod", func() error {
		got := getMI(t, mi.Name)
		if got.Status.ObservedGeneration != got.Generation || got.Status.DataPlane == nil {
			return fmt.Errorf("status not yet of generation %d", got.Generation)
		}
		return nil
	})
	if got := restartedFor(t, ns, "web"); got != "" {
		t.Fatalf("a workload injected by the current configuration was restarted (for %s)", got)
	}

	updateMI(t, mi.Name, func(mi *meshv1alpha1.MeshInstall) { mi.Spec.CNI.Enabled = true })
	withCNI := hash(getMI(t, mi.Name))
	if withCNI == withoutCNI {
		t.Fatalf("enabling CNI left the injection configuration's hash at %s", withCNI)
	}
	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))
	// Until the node agent is available, pods keep istio-init's shape: an
	// istio-validation on a node without the agent would fail.
	eventually(t, timeout, "a pass of the generation with spec.cni, the node agent rendered", func() error {
		got := getMI(t, mi.Name)
		if got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("status not yet of generation %d", got.Generation)
		}
		var list appsv1.DaemonSetList
		if err := env.Client.List(ctx, &list, client.InNamespace(render.CNINamespace(got))); err != nil || len(list.Items) == 0 {
			return fmt.Errorf("no node agent DaemonSet yet (%v)", err)
		}
		return nil
	})
	cm := &corev1.ConfigMap{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.InjectionConfigMapName(render.DefaultRevision)}, cm); err != nil {
		t.Fatal(err)
	}
	if got := cm.Annotations[inject.AnnotationConfigHash]; got != withoutCNI {
		t.Errorf("the injection switched to CNI (hash %s) before the node agent was available", got)
	}
	if got := restartedFor(t, ns, "web"); got != "" {
		t.Errorf("web restarted (for %s) before the node agent was available", got)
	}
	want := rollout.Target(render.DefaultRevision, withCNI)
	eventually(t, timeout, "web restarted for the configuration with CNI", func() error {
		markNodeAgentsAvailable(t, getMI(t, mi.Name))
		cm := &corev1.ConfigMap{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.InjectionConfigMapName(render.DefaultRevision)}, cm); err != nil {
			return err
		}
		if got := cm.Annotations[inject.AnnotationConfigHash]; got != withCNI {
			return fmt.Errorf("injection ConfigMap's hash %s, want %s", got, withCNI)
		}
		if got := restartedFor(t, ns, "web"); got != want {
			return fmt.Errorf("web restarted for %q, want %q; data plane %+v", got, want, getMI(t, mi.Name).Status.DataPlane)
		}
		return nil
	})
}

// markNodeAgentsAvailable plays the DaemonSet controller, which envtest does
// not run, for the DaemonSets the MeshInstall controls in spec.cni's
// namespace (the CNI node agent, where the reconciler renders one, whose
// availability may gate routing): each is rolled out on one node.
func markNodeAgentsAvailable(t *testing.T, mi *meshv1alpha1.MeshInstall) {
	t.Helper()
	ctx := context.Background()
	var list appsv1.DaemonSetList
	if err := env.Client.List(ctx, &list, client.InNamespace(cmp.Or(mi.Spec.CNI.Namespace, "kube-system"))); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		ds := &list.Items[i]
		if !metav1.IsControlledBy(ds, mi) || ds.Status.ObservedGeneration == ds.Generation && ds.Status.NumberAvailable == 1 {
			continue
		}
		ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, DesiredNumberScheduled: 1,
			CurrentNumberScheduled: 1, UpdatedNumberScheduled: 1, NumberReady: 1, NumberAvailable: 1}
		_ = env.Client.Status().Update(ctx, ds) // a conflict is retried by the caller's next round
	}
}
