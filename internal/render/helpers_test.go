package render

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// meshInstall builds a MeshInstall as the API server would default it
// minimally: name "mesh", the given version, then each option.
func meshInstall(version string, opts ...func(*meshv1alpha1.MeshInstall)) *meshv1alpha1.MeshInstall {
	mi := &meshv1alpha1.MeshInstall{
		TypeMeta:   metav1.TypeMeta{APIVersion: meshv1alpha1.GroupVersion.String(), Kind: "MeshInstall"},
		ObjectMeta: metav1.ObjectMeta{Name: "mesh"},
		Spec:       meshv1alpha1.MeshInstallSpec{Version: version},
	}
	for _, o := range opts {
		o(mi)
	}
	return mi
}

func withProfile(p meshv1alpha1.ProfileName) func(*meshv1alpha1.MeshInstall) {
	return func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Profile = p }
}

func withReplicas(n int32) func(*meshv1alpha1.MeshInstall) {
	return func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Pilot.Replicas = &n }
}

func withAutoscaling(minReplicas, maxReplicas int32) func(*meshv1alpha1.MeshInstall) {
	return func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.Pilot.Autoscaling = &meshv1alpha1.AutoscalingSpec{
			Enabled: true, MinReplicas: &minReplicas, MaxReplicas: &maxReplicas,
		}
	}
}

func withGateways(gws ...meshv1alpha1.GatewaySpec) func(*meshv1alpha1.MeshInstall) {
	return func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Gateways = append(mi.Spec.Gateways, gws...) }
}

func withMTLS(m meshv1alpha1.MTLSMode) func(*meshv1alpha1.MeshInstall) {
	return func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Security.MTLS = m }
}

func mustRevision(t testing.TB, name, version string) Revision {
	t.Helper()
	rev, err := NewRevision(name, version)
	if err != nil {
		t.Fatalf("NewRevision(%q, %q): %v", name, version, err)
	}
	return rev
}

func mustControlPlane(t testing.TB, mi *meshv1alpha1.MeshInstall, rev Revision) []client.Object {
	t.Helper()
	objs, err := ControlPlane(mi, rev)
	if err != nil {
		t.Fatalf("ControlPlane: %v", err)
	}
	return objs
}

func mustShared(t testing.TB, mi *meshv1alpha1.MeshInstall, active Revision) []client.Object {
	t.Helper()
	objs, err := Shared(mi, active)
	if err != nil {
		t.Fatalf("Shared: %v", err)
	}
	return objs
}

// find returns the rendered object of that kind and name, or fails.
func find[T client.Object](t testing.TB, objs []client.Object, name string) T {
	t.Helper()
	for _, o := range objs {
		if typed, ok := o.(T); ok && o.GetName() == name {
			return typed
		}
	}
	var zero T
	t.Fatalf("no %T named %q among %d objects", zero, name, len(objs))
	return zero
}

// has reports whether an object of that type and name was rendered.
func has[T client.Object](objs []client.Object, name string) bool {
	for _, o := range objs {
		if _, ok := o.(T); ok && o.GetName() == name {
			return true
		}
	}
	return false
}
