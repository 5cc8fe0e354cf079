package render

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestIstioCRDs(t *testing.T) {
	mi := meshInstall("1.30.8")
	crds, err := IstioCRDs(mi)
	if err != nil {
		t.Fatal(err)
	}
	version, err := IstioCRDsVersion()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for i, crd := range crds {
		names[crd.Name] = true
		if crd.APIVersion != "apiextensions.k8s.io/v1" || crd.Kind != "CustomResourceDefinition" {
			t.Errorf("%s has TypeMeta %s %s", crd.Name, crd.APIVersion, crd.Kind)
		}
		if crd.Labels[LabelManagedBy] != ManagedBy || crd.Labels[LabelMeshInstall] != "mesh" ||
			crd.Labels[LabelVersion] != version || crd.Labels["release"] != "" {
			t.Errorf("%s labels = %v, want meshkeeper's (version %s) instead of the file's", crd.Name, crd.Labels, version)
		}
		if i > 0 && crds[i-1].Name >= crd.Name {
			t.Errorf("CRDs not sorted by name: %s before %s", crds[i-1].Name, crd.Name)
		}
		if !strings.HasSuffix(crd.Spec.Group, ".istio.io") || len(crd.Spec.Versions) == 0 {
			t.Errorf("%s: group %s, %d versions", crd.Name, crd.Spec.Group, len(crd.Spec.Versions))
		}
	}
	for _, want := range []string{
		"peerauthentications.security.istio.io", "authorizationpolicies.security.istio.io",
		"virtualservices.networking.istio.io", "destinationrules.networking.istio.io", "gateways.networking.istio.io",
		"serviceentries.networking.istio.io", "sidecars.networking.istio.io", "envoyfilters.networking.istio.io",
		"telemetries.telemetry.istio.io", "wasmplugins.extensions.istio.io", "requestauthentications.security.istio.io",
	} {
		if !names[want] {
			t.Errorf("IstioCRDs lacks %s", want)
		}
	}

	// Each call hands out its own objects.
	crds[0].Labels["x"] = "y"
	crds[0].Spec.Versions[0].Name = "changed"
	again, err := IstioCRDs(mi)
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Labels["x"] != "" || again[0].Spec.Versions[0].Name == "changed" {
		t.Error("IstioCRDs returned objects shared with an earlier call")
	}
}

// The embedded copy must come from the istio.io/api version go.mod pins;
// `make istio-crds` refreshes it.
func TestEmbeddedCRDsMatchGoMod(t *testing.T) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		t.Skip("no build info")
	}
	embedded, err := IstioCRDsVersion()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range info.Deps {
		if dep.Path == "istio.io/api" {
			if dep.Version != "v"+embedded {
				t.Errorf("go.mod has istio.io/api %s, the embedded CRDs come from v%s: run make istio-crds", dep.Version, embedded)
			}
			return
		}
	}
	t.Skip("istio.io/api not in the build info")
}
