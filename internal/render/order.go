package render

import (
	"cmp"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// PeerAuthenticationGVK is the kind of the mesh-wide mTLS policy.
var PeerAuthenticationGVK = schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthentication"}

// kinds lists every kind the renderer emits, in the order they are applied:
// CRDs, then identities and their permissions, configuration, workloads and
// their Services, and last what depends on a running istiod (its validation
// webhooks, then Istio config).
var kinds = []schema.GroupVersionKind{
	apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"),
	corev1.SchemeGroupVersion.WithKind("ServiceAccount"),
	rbacv1.SchemeGroupVersion.WithKind("ClusterRole"),
	rbacv1.SchemeGroupVersion.WithKind("ClusterRoleBinding"),
	rbacv1.SchemeGroupVersion.WithKind("Role"),
	rbacv1.SchemeGroupVersion.WithKind("RoleBinding"),
	corev1.SchemeGroupVersion.WithKind("ConfigMap"),
	corev1.SchemeGroupVersion.WithKind("Service"),
	appsv1.SchemeGroupVersion.WithKind("Deployment"),
	appsv1.SchemeGroupVersion.WithKind("DaemonSet"),
	autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"),
	policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"),
	admissionregistrationv1.SchemeGroupVersion.WithKind("ValidatingWebhookConfiguration"),
	PeerAuthenticationGVK,
}

// applyOrder ranks kinds for ApplyOrder: the renderer's, plus the two the
// reconciler adds itself, namespaces (before what they hold) and the
// injector's MutatingWebhookConfiguration (after the injection config it
// serves).
var applyOrder = slices.Concat(kinds[:1],
	[]schema.GroupVersionKind{corev1.SchemeGroupVersion.WithKind("Namespace")},
	kinds[1:],
	[]schema.GroupVersionKind{admissionregistrationv1.SchemeGroupVersion.WithKind("MutatingWebhookConfiguration")})

// Kinds returns every kind ControlPlane, Shared, CNI and IstioCRDs may emit, in
// apply order, so the reconciler can own or watch each of them.
func Kinds() []schema.GroupVersionKind { return slices.Clone(kinds) }

// ApplyOrder sorts objects, in place, into the order to apply them: by
// kind (as Kinds lists them, with namespaces right after CRDs and
// MutatingWebhookConfigurations last), then namespace and name; unknown
// kinds go last. ControlPlane and Shared
// return sorted lists; callers that merge them sort the union.
func ApplyOrder(objs []client.Object) {
	slices.SortStableFunc(objs, func(a, b client.Object) int {
		return cmp.Or(
			cmp.Compare(kindRank(a), kindRank(b)),
			cmp.Compare(a.GetNamespace(), b.GetNamespace()),
			cmp.Compare(a.GetName(), b.GetName()),
		)
	})
}

func kindRank(o client.Object) int {
	i := slices.Index(applyOrder, o.GetObjectKind().GroupVersionKind())
	if i < 0 {
		return len(applyOrder)
	}
	return i
}

// finish detaches the objects from any slice or map they share (package
// tables, one another) so a caller may change one freely, and sorts them.
func finish(objs []client.Object) []client.Object {
	out := make([]client.Object, len(objs))
	for i, o := range objs {
		out[i] = o.DeepCopyObject().(client.Object)
	}
	ApplyOrder(out)
	return out
}
