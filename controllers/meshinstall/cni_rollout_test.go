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
)

// TestTurningCNIOnRestartsWorkloadsOntoTheNewShape: spec.cni.enabled
// changes the revision's injection configuration, so a pod injected before
// (with istio-init) is outdated, and the Automatic rollout restarts its
// workload for the configuration with CNI (istio-validation).
func TestTurningCNIOnRestartsWorkloadsOntoTheNewShape(t *testing.T) {
	mi, ns := automaticMeshAndNamespace(t, "cni-rollout")
	ctx := context.Background()
	// The injection configuration as the reconciler rendered it (its hash
	// also follows the nodes other tests left, for native sidecars).
	injection := func() (*corev1.ConfigMap, error) {
		cm := &corev1.ConfigMap{}
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.InjectionConfigMapName(render.DefaultRevision)}, cm)
		return cm, err
	}
	cm, err := injection()
	if err != nil {
		t.Fatal(err)
	}
	withoutCNI := cm.Annotations[inject.AnnotationConfigHash]

	// A Deployment whose pod the current configuration injected. (Created
	// outdated, then stamped up to date, a pass in between restarted it.)
	injectedWorkload(t, ns, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2)}}, withoutCNI)
	eventually(t, timeout, "the pass that saw the up-to-date pod", func() error {
		got := getMI(t, mi.Name)
		if got.Status.ObservedGeneration != got.Generation || got.Status.DataPlane == nil || got.Status.DataPlane.UpToDatePods == 0 {
			return fmt.Errorf("status not yet of generation %d with the pod up to date", got.Generation)
		}
		return nil
	})
	if got := restartedFor(t, ns, "web"); got != "" {
		t.Fatalf("a workload injected by the current configuration was restarted (for %s)", got)
	}

	updateMI(t, mi.Name, func(mi *meshv1alpha1.MeshInstall) { mi.Spec.CNI.Enabled = true })
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
	if cm, err := injection(); err != nil || cm.Annotations[inject.AnnotationConfigHash] != withoutCNI || cm.Annotations[render.AnnotationInjectsCNI] != "" {
		t.Errorf("the injection switched to CNI before the node agent was available (%v): %v", err, cm.Annotations)
	}
	if got := restartedFor(t, ns, "web"); got != "" {
		t.Errorf("web restarted (for %s) before the node agent was available", got)
	}

	var withCNI string
	eventually(t, timeout, "web restarted for the configuration with CNI", func() error {
		markNodeAgentsAvailable(t, getMI(t, mi.Name))
		cm, err := injection()
		if err != nil {
			return err
		}
		if cm.Annotations[render.AnnotationInjectsCNI] != "true" {
			return fmt.Errorf("the injection configuration does not inject for the node agent yet: %v", cm.Annotations)
		}
		if withCNI = cm.Annotations[inject.AnnotationConfigHash]; withCNI == withoutCNI {
			return fmt.Errorf("the injection configuration's hash is still %s", withCNI)
		}
		if got, want := restartedFor(t, ns, "web"), rollout.Target(render.DefaultRevision, withCNI); got != want {
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
