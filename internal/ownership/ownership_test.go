package ownership

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

func meshInstall() *meshv1alpha1.MeshInstall {
	return &meshv1alpha1.MeshInstall{
		ObjectMeta: metav1.ObjectMeta{Name: "default", UID: "mi-uid"},
		Spec: meshv1alpha1.MeshInstallSpec{Namespace: "istio-system",
			Gateways: []meshv1alpha1.GatewaySpec{{Name: "in", Namespace: "istio-ingress"}, {Name: "out"}}},
	}
}

func configMap(ns string, controller types.UID, refs ...metav1.OwnerReference) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "istio-sidecar-injector"}}
	if controller != "" {
		refs = append(refs, metav1.OwnerReference{APIVersion: "mesh.meshkeeper.dev/v1alpha1", Kind: "MeshInstall",
			Name: "default", UID: controller, Controller: ptr.To(true)})
	}
	cm.OwnerReferences = refs
	return cm
}

func TestOwns(t *testing.T) {
	s := Of(meshInstall(), "old-gateways")
	for _, tc := range []struct {
		name         string
		obj          metav1.Object
		owns, ownsCP bool
	}{
		{"in the control plane namespace with its reference", configMap("istio-system", "mi-uid"), true, true},
		{"in a gateway namespace with its reference", configMap("istio-ingress", "mi-uid"), true, false},
		{"in a namespace it created once", configMap("old-gateways", "mi-uid"), true, false},
		{"a tenant's copy with its reference", configMap("tenant", "mi-uid"), false, false},
		{"in the control plane namespace, labelled only", configMap("istio-system", ""), false, false},
		{"another MeshInstall's (an earlier one, deleted)", configMap("istio-system", "old-uid"), false, false},
		{"its reference, but not as controller", configMap("istio-system", "", metav1.OwnerReference{Kind: "MeshInstall", UID: "mi-uid"}), false, false},
		{"cluster-scoped with its reference", configMap("", "mi-uid"), true, false},
		{"cluster-scoped without it", configMap("", "other"), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Owns(tc.obj); got != tc.owns {
				t.Errorf("Owns = %t, want %t", got, tc.owns)
			}
			if got := s.OwnsControlPlane(tc.obj); got != tc.ownsCP {
				t.Errorf("OwnsControlPlane = %t, want %t", got, tc.ownsCP)
			}
		})
	}
}

func TestAMeshInstallWithoutUIDOwnsNothing(t *testing.T) {
	mi := meshInstall()
	mi.UID = ""
	if Of(mi).Owns(configMap("istio-system", "")) {
		t.Error("an object without a controller reference was believed")
	}
}

func TestNamespaces(t *testing.T) {
	got := Namespaces(meshInstall())
	if want := []string{"istio-system", "istio-ingress"}; !slices.Equal(got, want) {
		t.Errorf("Namespaces = %v, want %v", got, want)
	}
}

func TestCreatedBy(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system", Annotations: map[string]string{AnnotationCreatedBy: "mi-uid"}}}
	if !CreatedBy(ns, "mi-uid") || CreatedBy(ns, "other") {
		t.Error("the created-by annotation is not read")
	}
	legacy := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system", OwnerReferences: configMap("", "mi-uid").OwnerReferences}}
	if !CreatedBy(legacy, "mi-uid") {
		t.Error("a namespace an older meshkeeper created (controller reference) is not recognised")
	}
}

// In kube-system (and spec.cni.namespace) only the node agent's objects can
// be the MeshInstall's, and only with its controller reference.
func TestScopeOwnsTheNodeAgentOnly(t *testing.T) {
	mi := meshInstall()
	agent := func(ns string, controller types.UID) *corev1.ConfigMap {
		cm := configMap(ns, controller)
		cm.Labels = map[string]string{render.LabelCNI: "true"}
		return cm
	}
	s := Of(mi)
	for _, tc := range []struct {
		name string
		obj  *corev1.ConfigMap
		want bool
	}{
		{"the agent's, in kube-system", agent("kube-system", "mi-uid"), true},
		{"the agent's label, another controller", agent("kube-system", "other"), false},
		{"not the agent's, in kube-system", configMap("kube-system", "mi-uid"), false},
		{"the agent's label in a tenant's namespace", agent("shop", "mi-uid"), false},
	} {
		if got := s.Owns(tc.obj); got != tc.want {
			t.Errorf("%s: Owns = %v, want %v", tc.name, got, tc.want)
		}
	}
}
