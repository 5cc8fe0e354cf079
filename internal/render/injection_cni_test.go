package render

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
)

// TestInjectionConfigCNI: spec.cni.enabled and spec.proxy.seccompProfile
// reach the injection configuration, each changing its hash (so pods
// injected before are outdated), while a mesh without them keeps the hash
// it had before meshkeeper knew them (an operator upgrade restarts nothing).
func TestInjectionConfigCNI(t *testing.T) {
	rev := mustRevision(t, DefaultRevision, "1.32.0")
	rev.InjectCNI = true // the planner found the node agent ready
	config := func(opts ...func(*meshv1alpha1.MeshInstall)) *inject.Config {
		t.Helper()
		cfg, err := InjectionConfig(meshInstall("1.32.0", opts...), rev)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	plain := config()
	if plain.CNI != nil || plain.SeccompProfile != nil {
		t.Errorf("without spec.cni and seccompProfile: cni %+v, seccompProfile %+v, want neither", plain.CNI, plain.SeccompProfile)
	}
	// The CRD's defaults for a disabled CNI change nothing either.
	disabled := config(func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.CNI = meshv1alpha1.CNISpec{Namespace: "kube-system", Provider: meshv1alpha1.CNIProviderMultus, BinDir: "/opt/cni/bin"}
	})
	if disabled.Hash() != plain.Hash() {
		t.Errorf("a disabled spec.cni changed the hash: %s, was %s", disabled.Hash(), plain.Hash())
	}

	cni := config(func(mi *meshv1alpha1.MeshInstall) { mi.Spec.CNI.Enabled = true })
	if cni.CNI == nil || cni.CNI.Provider != inject.CNIProviderDefault {
		t.Errorf("spec.cni.enabled: cni %+v, want the default provider", cni.CNI)
	}
	waiting := rev
	waiting.InjectCNI = false
	if cfg, err := InjectionConfig(meshInstall("1.32.0", func(mi *meshv1alpha1.MeshInstall) { mi.Spec.CNI.Enabled = true }), waiting); err != nil || cfg.CNI != nil || cfg.Hash() != plain.Hash() {
		t.Errorf("spec.cni.enabled before the planner found the node agent ready: cni %+v (%v), want istio-init's shape, unchanged", cfg.CNI, err)
	}
	multus := config(func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.CNI = meshv1alpha1.CNISpec{Enabled: true, Provider: meshv1alpha1.CNIProviderMultus}
	})
	if multus.CNI == nil || multus.CNI.Provider != inject.CNIProviderMultus {
		t.Errorf("spec.cni.provider multus: cni %+v", multus.CNI)
	}
	seccomp := config(func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.Proxy.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	})
	if seccomp.SeccompProfile == nil || seccomp.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("spec.proxy.seccompProfile: %+v", seccomp.SeccompProfile)
	}
	hashes := map[string]string{}
	for name, cfg := range map[string]*inject.Config{"none": plain, "cni": cni, "multus": multus, "seccomp": seccomp} {
		if other, dup := hashes[cfg.Hash()]; dup {
			t.Errorf("%s and %s have the same hash %s", name, other, cfg.Hash())
		}
		hashes[cfg.Hash()] = name
	}
}
