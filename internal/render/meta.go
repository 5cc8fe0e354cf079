package render

import (
	"cmp"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// defaultNamespace is spec.namespace's default.
const defaultNamespace = "istio-system"

// namespace is the control plane namespace, also Istio's root namespace.
func namespace(mi *meshv1alpha1.MeshInstall) string {
	return cmp.Or(mi.Spec.Namespace, defaultNamespace)
}

// ControlPlaneNamespace is where mi's control plane runs: spec.namespace, defaulted.
func ControlPlaneNamespace(mi *meshv1alpha1.MeshInstall) string { return namespace(mi) }

// typeMeta is set on every object: server-side apply needs apiVersion and kind.
func typeMeta(gv schema.GroupVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: gv.String(), Kind: kind}
}

func objectMeta(name, namespace string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels}
}
