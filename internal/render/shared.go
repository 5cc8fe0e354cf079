package render

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// PeerAuthenticationName is the mesh-wide PeerAuthentication in the root namespace.
const PeerAuthenticationName = "default"

// Shared renders, in apply order, the objects that exist once whatever the
// number of revisions and follow the active one: the Istio reader
// ServiceAccount, the default validation webhook istiod-default-validator,
// the mesh-wide PeerAuthentication when spec.security.mtls is set, and each
// gateway of spec.gateways (injected by the active revision). None carries
// LabelRevision. Namespaces are not rendered: the control plane namespace
// and gateway namespaces are the reconciler's to create (or to find), since
// a namespace someone else made must never be taken over nor deleted. It
// fails with an *InvalidError when mi or active cannot be rendered.
func Shared(mi *meshv1alpha1.MeshInstall, active Revision) ([]client.Object, error) {
	if err := validateFor(mi, active); err != nil {
		return nil, err
	}
	p := profileFor(mi.Spec.Profile)
	objs := []client.Object{
		readerServiceAccount(mi),
		defaultValidator(mi, active),
	}
	if pa := peerAuthentication(mi); pa != nil {
		objs = append(objs, pa)
	}
	for _, gw := range Gateways(mi) {
		objs = append(objs, gatewayObjects(mi, active, gw, p)...)
	}
	return finish(objs), nil
}

// Gateways are the gateways meshkeeper runs: spec.gateways when it lists
// any, else the profile's, as Istio's installation profiles have them: the
// default profile runs istio-ingressgateway (a LoadBalancer Service), demo
// adds istio-egressgateway, minimal runs none ("just the core control
// plane"). Listing gateways replaces the profile's.
func Gateways(mi *meshv1alpha1.MeshInstall) []meshv1alpha1.GatewaySpec {
	if len(mi.Spec.Gateways) > 0 {
		return mi.Spec.Gateways
	}
	return profileFor(mi.Spec.Profile).gateways
}

// ControlPlaneNamespaceLabels are labels Istio reads on the control plane
// namespace: on a multi-network mesh, topology.istio.io/network names the
// network of this cluster (Istio's docs have users add it by hand). Empty on
// a single network. For the reconciler to set on a namespace it creates.
func ControlPlaneNamespaceLabels(mi *meshv1alpha1.MeshInstall) map[string]string {
	labels := map[string]string{}
	if n := mi.Spec.Cluster.Network; n != "" {
		labels[labelNetwork] = n
	}
	return labels
}

// readerServiceAccount is Istio's base chart's single reader identity,
// bound by each revision's istio-reader-clusterrole.
func readerServiceAccount(mi *meshv1alpha1.MeshInstall) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta: typeMeta(corev1.SchemeGroupVersion, "ServiceAccount"),
		ObjectMeta: objectMeta(readerServiceAccountName, namespace(mi),
			with(istioLabels(mi, ""), labelApp, "istio-reader", labelName, "istio-reader")),
	}
}

// peerAuthentication is the mesh-wide mTLS mode: a PeerAuthentication named
// default in the root namespace (the control plane namespace). Nil when
// spec.security.mtls is unset, which leaves mTLS to the user.
func peerAuthentication(mi *meshv1alpha1.MeshInstall) *unstructured.Unstructured {
	var mode string
	switch mi.Spec.Security.MTLS {
	case meshv1alpha1.MTLSStrict:
		mode = "STRICT"
	case meshv1alpha1.MTLSPermissive:
		mode = "PERMISSIVE"
	default:
		return nil
	}
	pa := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{"mtls": map[string]any{"mode": mode}},
	}}
	pa.SetGroupVersionKind(PeerAuthenticationGVK)
	pa.SetName(PeerAuthenticationName)
	pa.SetNamespace(namespace(mi))
	pa.SetLabels(baseLabels(mi))
	return pa
}
