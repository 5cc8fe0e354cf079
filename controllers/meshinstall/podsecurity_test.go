package meshinstall

import (
	"context"
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// PodSecurityCompatible tells, from the cluster's namespaces as they are
// labelled now, whether the pods the mesh injects can pass the Pod Security
// level meshed namespaces enforce: not with istio-init, not before the node
// agent is ready, then yes; and it goes away with the last such namespace.
func TestPodSecurityCompatibleFollowsTheNamespacesAndTheAgent(t *testing.T) {
	startManager(t, managerOpts{})
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("restricted-%d", testNamespaceSeq),
		Labels: map[string]string{"istio-injection": "enabled", "pod-security.kubernetes.io/enforce": "restricted"}}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, ns) })
	mi := createSample(t, nil)
	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))
	waitConditionMessage(t, mi.Name, meshv1alpha1.ConditionPodSecurityCompatible, meshv1alpha1.ReasonPodSecurityGap,
		"meshed namespaces enforce Pod Security restricted ("+ns.Name+"), which pods injected by this mesh cannot pass: spec.cni.enabled is false")

	updateMI(t, mi.Name, func(m *meshv1alpha1.MeshInstall) {
		withCNIEnabled(m)
		m.Spec.Proxy.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	})
	eventually(t, timeout, "the node agent's DaemonSet", func() error { _, err := cniDaemonSet(t); return err })
	// Until the agent is ready the revision still injects istio-init.
	waitConditionMessage(t, mi.Name, meshv1alpha1.ConditionPodSecurityCompatible, meshv1alpha1.ReasonPodSecurityGap, "spec.cni.enabled is false")
	makeDaemonSetAvailable(t, 1)
	waitCondition(t, mi.Name, meshv1alpha1.ConditionPodSecurityCompatible, metav1.ConditionTrue, meshv1alpha1.ReasonPodSecurityMet)

	patch := client.MergeFrom(ns.DeepCopy())
	delete(ns.Labels, "pod-security.kubernetes.io/enforce")
	if err := env.Client.Patch(ctx, ns, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "PodSecurityCompatible gone with the last namespace enforcing a level", func() error {
		if c := condition(t, mi.Name, meshv1alpha1.ConditionPodSecurityCompatible); c != nil {
			return errors.New(c.Message)
		}
		return nil
	})
}
