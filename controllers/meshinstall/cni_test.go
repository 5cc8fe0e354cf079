package meshinstall

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

func withCNIEnabled(mi *meshv1alpha1.MeshInstall) {
	mi.Spec.CNI.Enabled = true
}

// cniDaemonSet reads the node agent's DaemonSet in kube-system.
func cniDaemonSet(t *testing.T) (*appsv1.DaemonSet, error) {
	t.Helper()
	ds := &appsv1.DaemonSet{}
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: render.DefaultCNINamespace, Name: render.CNIDaemonSetName}, ds)
	return ds, err
}

// makeDaemonSetAvailable plays the DaemonSet controller, which envtest
// does not run: the current template runs, available, on nodes nodes.
func makeDaemonSetAvailable(t *testing.T, nodes int32) {
	t.Helper()
	eventually(t, timeout, "the node agent marked available", func() error {
		ds, err := cniDaemonSet(t)
		if err != nil {
			return err
		}
		ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, DesiredNumberScheduled: nodes,
			CurrentNumberScheduled: nodes, UpdatedNumberScheduled: nodes, NumberReady: nodes, NumberAvailable: nodes}
		return env.Client.Status().Update(context.Background(), ds)
	})
}

// routingExists reports whether the routing ConfigMap (where the tags send
// new pods) was written: the moment workloads are routed to a revision.
func routingExists(t *testing.T, mi *meshv1alpha1.MeshInstall) bool {
	t.Helper()
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.RoutingConfigMapName}, &corev1.ConfigMap{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// With spec.cni, the node agent is installed as Istio's chart installs it,
// owned by the MeshInstall; no workload is routed to istiod until the
// agent is available too; CNIReady, Ready and status.cni say so.
func TestCNIAgentIsInstalledAndGatesRouting(t *testing.T) {
	startManager(t, managerOpts{})
	mi := createSample(t, withCNIEnabled)
	ctx := context.Background()

	eventually(t, timeout, "the node agent's DaemonSet", func() error {
		ds, err := cniDaemonSet(t)
		if err != nil {
			return err
		}
		if !metav1.IsControlledBy(ds, getMI(t, mi.Name)) {
			return fmt.Errorf("not controlled by the MeshInstall: %v", ds.OwnerReferences)
		}
		if img := ds.Spec.Template.Spec.Containers[0].Image; img != "docker.io/istio/install-cni:"+mi.Spec.Version {
			return fmt.Errorf("image %s", img)
		}
		return nil
	})
	for _, o := range []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: render.CNIName}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: render.CNIConfigMapName}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: render.CNIName}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: render.CNIName}},
	} {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			t.Errorf("%T %s: %v", o, o.GetName(), err)
		}
	}

	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))
	waitCondition(t, mi.Name, meshv1alpha1.ConditionCNIReady, metav1.ConditionFalse, meshv1alpha1.ReasonCNIRollingOut)
	// istiod is available: without the agent, the tags would be routed now.
	time.Sleep(2 * time.Second)
	if routingExists(t, mi) {
		ds, _ := cniDaemonSet(t)
		t.Fatalf("workloads were routed to istiod while the node agent was not available: status %+v; agent %+v", getMI(t, mi.Name).Status, ds.Status)
	}
	if c := condition(t, mi.Name, meshv1alpha1.ConditionReady); c.Status != metav1.ConditionFalse {
		t.Errorf("Ready = %+v while the node agent is not available", c)
	}

	makeDaemonSetAvailable(t, 1)
	eventually(t, timeout, "routed once the node agent is available", func() error {
		if !routingExists(t, mi) {
			return fmt.Errorf("no routing yet")
		}
		return nil
	})
	waitCondition(t, mi.Name, meshv1alpha1.ConditionCNIReady, metav1.ConditionTrue, meshv1alpha1.ReasonCNIAvailable)
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded)
	if st := getMI(t, mi.Name).Status.CNI; st == nil || st.Version != mi.Spec.Version || st.TargetVersion != mi.Spec.Version ||
		st.Namespace != "kube-system" || st.NodesReady != 1 || st.NodesDesired != 1 {
		t.Errorf("status.cni = %+v", st)
	}
}

// An istio-cni someone else installed is never written over: the
// MeshInstall is refused, naming it, and the DaemonSet is left as it was.
func TestCNIAgentOfSomeoneElseIsNotTakenOver(t *testing.T) {
	startManager(t, managerOpts{})
	ctx := context.Background()
	theirs := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: render.CNIDaemonSetName, Labels: map[string]string{"owner": "helm"}},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": render.CNIDaemonSetName}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"k8s-app": render.CNIDaemonSetName}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "install-cni", Image: "example/install-cni:theirs"}}},
			},
		},
	}
	if err := env.Client.Create(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, theirs) })

	mi := createSample(t, withCNIEnabled)
	waitCondition(t, mi.Name, meshv1alpha1.ConditionStalled, metav1.ConditionTrue, meshv1alpha1.ReasonObjectNotOwned)
	ds, err := cniDaemonSet(t)
	if err != nil {
		t.Fatal(err)
	}
	if img := ds.Spec.Template.Spec.Containers[0].Image; img != "example/install-cni:theirs" || len(ds.OwnerReferences) > 0 || ds.Labels[render.LabelCNI] != "" {
		t.Errorf("their DaemonSet was written over: image %s, owners %v, labels %v", img, ds.OwnerReferences, ds.Labels)
	}
}

// Turning spec.cni off keeps the agent while a running pod was injected
// for it (CNIReady False, CNIRetained), and deletes what meshkeeper made of
// it once none is left.
func TestCNIAgentIsRemovedOnceNoPodReliesOnIt(t *testing.T) {
	startManager(t, managerOpts{})
	ctx := context.Background()
	mi := createSample(t, withCNIEnabled)
	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))
	eventually(t, timeout, "the node agent's DaemonSet", func() error { _, err := cniDaemonSet(t); return err })
	makeDaemonSetAvailable(t, 1)
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded)

	// A pod injected for the agent: stamped by the revision, with istio-validation.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cni-shop-%d", testNamespaceSeq)}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "app", Labels: map[string]string{inject.LabelInjectedBy: render.DefaultRevision}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: inject.ValidationContainerName, Image: "proxyv2"}},
			Containers:     []corev1.Container{{Name: "app", Image: "app"}},
		},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, ns) })

	updateMI(t, mi.Name, func(got *meshv1alpha1.MeshInstall) { got.Spec.CNI.Enabled = false })
	waitCondition(t, mi.Name, meshv1alpha1.ConditionCNIReady, metav1.ConditionFalse, meshv1alpha1.ReasonCNIRetained)
	if _, err := cniDaemonSet(t); err != nil {
		t.Fatalf("the agent went while a pod relies on it: %v", err)
	}

	if err := env.Client.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout+envtestPodEventDelay, "the agent's objects deleted", func() error {
		for _, o := range []client.Object{
			&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: render.CNIDaemonSetName}},
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: render.CNIConfigMapName}},
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: render.CNIName}},
			&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: render.CNIName}},
			&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: render.CNIName}},
		} {
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(o), o); !apierrors.IsNotFound(err) {
				return fmt.Errorf("%T %s: still there (%v)", o, o.GetName(), err)
			}
		}
		return nil
	})
	eventually(t, timeout, "CNIReady and status.cni dropped", func() error {
		got := getMI(t, mi.Name)
		if got.Status.CNI != nil || condition(t, mi.Name, meshv1alpha1.ConditionCNIReady) != nil {
			return fmt.Errorf("status.cni %+v", got.Status.CNI)
		}
		return nil
	})
	// kube-system's own objects are untouched.
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "kube-system"}, &corev1.Namespace{}); err != nil {
		t.Error(err)
	}
}

// A node that runs meshed pods but no ready agent holds the agent
// unavailable (CNINotOnNodes), naming the node, until an agent's pod is
// Ready there.
func TestCNIAgentMustRunWhereMeshedPodsRun(t *testing.T) {
	startManager(t, managerOpts{})
	ctx := context.Background()
	mi := createSample(t, withCNIEnabled)
	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))
	eventually(t, timeout, "the node agent's DaemonSet", func() error { _, err := cniDaemonSet(t); return err })
	makeDaemonSetAvailable(t, 1)
	waitCondition(t, mi.Name, meshv1alpha1.ConditionCNIReady, metav1.ConditionTrue, meshv1alpha1.ReasonCNIAvailable)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cni-nodes-%d", testNamespaceSeq)}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, ns) })
	meshed := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "app", Labels: map[string]string{inject.LabelInjectedBy: render.DefaultRevision}},
		Spec:       corev1.PodSpec{NodeName: "node-b", Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
	if err := env.Client.Create(ctx, meshed); err != nil {
		t.Fatal(err)
	}
	// No namespace controller runs here: a pod stamped "default" left behind
	// would count for the next test's revision.
	t.Cleanup(func() { _ = env.Client.Delete(ctx, meshed, client.GracePeriodSeconds(0)) })
	// Meshed once its namespace selects the mesh (labelled after the pod
	// was created: envtest's API server cannot call the injector). A
	// stamped pod outside the mesh does not say where the agent must run.
	eventually(t, timeout, "a pass that counted the stamped pod", func() error {
		for _, r := range getMI(t, mi.Name).Status.Revisions {
			if r.Name == render.DefaultRevision && r.Pods > 0 {
				return nil
			}
		}
		return errors.New("the stamped pod is not counted yet")
	})
	if c := condition(t, mi.Name, meshv1alpha1.ConditionCNIReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("a stamped pod outside the mesh made the agent unavailable: %+v", c)
	}
	patch := client.MergeFrom(ns.DeepCopy())
	ns.Labels = map[string]string{"istio-injection": "enabled"}
	if err := env.Client.Patch(ctx, ns, patch); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, mi.Name, meshv1alpha1.ConditionCNIReady, metav1.ConditionFalse, meshv1alpha1.ReasonCNINotOnNodes)
	if c := condition(t, mi.Name, meshv1alpha1.ConditionCNIReady); !strings.Contains(c.Message, "node-b") {
		t.Errorf("CNIReady message %q does not name the node", c.Message)
	}

	ds, err := cniDaemonSet(t)
	if err != nil {
		t.Fatal(err)
	}
	agent := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "istio-cni-node-b", Labels: map[string]string{"k8s-app": render.CNIDaemonSetName},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID, Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{NodeName: "node-b", Containers: []corev1.Container{{Name: "install-cni", Image: "install-cni"}}},
	}
	if err := env.Client.Create(ctx, agent); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, agent, client.GracePeriodSeconds(0)) })
	agent.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if err := env.Client.Status().Update(ctx, agent); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, mi.Name, meshv1alpha1.ConditionCNIReady, metav1.ConditionTrue, meshv1alpha1.ReasonCNIAvailable)
}

// In kube-system the manager caches the agent's own objects, not the
// namespace's others, even those labelled like meshkeeper's.
func TestCacheHoldsOnlyTheAgentsObjectsInKubeSystem(t *testing.T) {
	r := startManager(t, managerOpts{})
	ctx := context.Background()
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: fmt.Sprintf("not-the-agent-%d", testNamespaceSeq),
		Labels: map[string]string{render.LabelManagedBy: render.ManagedBy, render.LabelMeshInstall: "sample"}}}
	if err := env.Client.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, other) })
	createSample(t, withCNIEnabled)
	eventually(t, timeout, "the agent's ConfigMap cached", func() error {
		return r.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: render.CNIConfigMapName}, &corev1.ConfigMap{})
	})
	if err := r.Get(ctx, client.ObjectKeyFromObject(other), &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Errorf("another kube-system ConfigMap labelled like meshkeeper's is cached (%v)", err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(other), other); err != nil {
		t.Errorf("it must stay untouched: %v", err)
	}
}

// withMultus runs the plugin through Multus (OpenShift).
func withMultus(mi *meshv1alpha1.MeshInstall) {
	mi.Spec.CNI.Enabled, mi.Spec.CNI.Provider = true, meshv1alpha1.CNIProviderMultus
}

// With provider multus, injected pods ask Multus for the network
// default/istio-cni: no workload is routed to the mesh, and CNIReady says
// why, while Multus is not installed or that NetworkAttachmentDefinition
// does not exist; meshkeeper writes nothing in namespace default.
func TestMultusNetworkGatesRouting(t *testing.T) {
	startManager(t, managerOpts{})
	ctx := context.Background()
	mi := createSample(t, withMultus)
	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))
	eventually(t, timeout, "the node agent's DaemonSet", func() error { _, err := cniDaemonSet(t); return err })
	makeDaemonSetAvailable(t, 1)

	waitConditionMessage(t, mi.Name, meshv1alpha1.ConditionCNIReady, meshv1alpha1.ReasonCNINetworkMissing, "no NetworkAttachmentDefinition kind")
	if routingExists(t, mi) {
		t.Fatal("workloads were routed to the mesh without Multus")
	}

	crd := networkAttachmentDefinitionCRD()
	if err := env.Client.Create(ctx, crd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, crd) })
	waitConditionMessage(t, mi.Name, meshv1alpha1.ConditionCNIReady, meshv1alpha1.ReasonCNINetworkMissing, "there is no NetworkAttachmentDefinition default/istio-cni")
	if routingExists(t, mi) {
		t.Fatal("workloads were routed to the mesh without the network their pods ask Multus for")
	}
	var nads metav1.PartialObjectMetadataList
	nads.SetGroupVersionKind(schema.GroupVersionKind{Group: "k8s.cni.cncf.io", Version: "v1", Kind: "NetworkAttachmentDefinitionList"})
	if err := env.Client.List(ctx, &nads, client.InNamespace("default")); err != nil || len(nads.Items) > 0 {
		t.Errorf("NetworkAttachmentDefinitions in default: %d (%v), want none: meshkeeper writes nothing there", len(nads.Items), err)
	}

	nad := &unstructured.Unstructured{}
	nad.SetGroupVersionKind(schema.GroupVersionKind{Group: "k8s.cni.cncf.io", Version: "v1", Kind: "NetworkAttachmentDefinition"})
	nad.SetNamespace("default")
	nad.SetName("istio-cni")
	if err := env.Client.Create(ctx, nad); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, nad) })
	waitCondition(t, mi.Name, meshv1alpha1.ConditionCNIReady, metav1.ConditionTrue, meshv1alpha1.ReasonCNIAvailable)
	eventually(t, timeout, "routed once the network exists", func() error {
		if !routingExists(t, mi) {
			return errors.New("no routing yet")
		}
		return nil
	})
}

// waitConditionMessage waits for a False condition of reason whose message says want.
func waitConditionMessage(t *testing.T, name, condType, reason, want string) {
	t.Helper()
	eventually(t, timeout, condType+" "+reason, func() error {
		c := condition(t, name, condType)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != reason || !strings.Contains(c.Message, want) {
			return fmt.Errorf("%s = %+v, want False, %s, saying %q", condType, c, reason, want)
		}
		return nil
	})
}

// networkAttachmentDefinitionCRD is Multus's kind, as far as a test needs it.
func networkAttachmentDefinitionCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "network-attachment-definitions.k8s.cni.cncf.io"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "k8s.cni.cncf.io",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "network-attachment-definitions", Singular: "network-attachment-definition",
				Kind: "NetworkAttachmentDefinition", ListKind: "NetworkAttachmentDefinitionList", ShortNames: []string{"net-attach-def"}},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr.To(true)}}}},
		},
	}
}
