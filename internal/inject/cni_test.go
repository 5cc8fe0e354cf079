package inject

import (
	"strings"
	"testing"
)

// TestAppendMultusNetwork: the istio-cni network joins the pod's Multus
// networks in the notation the pod uses, once.
func TestAppendMultusNetwork(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"none", "", "default/istio-cni"},
		{"flat", "macvlan-conf-1", "macvlan-conf-1, default/istio-cni"},
		{"flat, already there", "macvlan-conf-1, default/istio-cni", "macvlan-conf-1, default/istio-cni"},
		{"flat, same name elsewhere", "istio-cni", "istio-cni, default/istio-cni"},
		{"JSON", `[{"name": "macvlan-conf-1"}]`, `[{"name": "macvlan-conf-1"}, {"name": "istio-cni", "namespace": "default"}]`},
		{"JSON, already there", `[{"name": "istio-cni", "namespace": "default"}]`, `[{"name": "istio-cni", "namespace": "default"}]`},
		{"JSON, same name without namespace", `[{"name": "istio-cni"}]`, `[{"name": "istio-cni"}, {"name": "istio-cni", "namespace": "default"}]`},
		{"JSON, empty list", `[ ]`, `[ {"name": "istio-cni", "namespace": "default"}]`},
		{"JSON that does not parse is kept", `[{"name": ]`, `[{"name": ]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := appendMultusNetwork(c.in); got != c.want {
				t.Errorf("appendMultusNetwork(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

// TestConfigWithAnUnknownCNIProviderIsRefused: a configuration read from a
// ConfigMap that names a provider the injector does not know injects
// nothing, naming the field.
func TestConfigWithAnUnknownCNIProviderIsRefused(t *testing.T) {
	cfg := testConfig()
	cfg.CNI = &CNI{Provider: "calico"}
	if err := cfg.Prepare(); err == nil || !strings.Contains(err.Error(), `cni.provider "calico"`) {
		t.Errorf("Prepare = %v, want an error naming cni.provider", err)
	}
}
