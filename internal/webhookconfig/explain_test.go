package webhookconfig_test

import (
	"strings"
	"testing"

	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// TestExplainNamesTheEntryOrTheRule: the answer kubectl meshkeeper
// check-inject prints is the entry that selects the pod, with its path, or
// the rule that excludes it, and agrees with Route.
func TestExplainNamesTheEntryOrTheRule(t *testing.T) {
	m, err := webhookconfig.NewMatcher(webhookconfig.InjectorConfiguration(webhookconfig.Injector{
		ControlPlaneNamespace: "istio-system", Revisions: []string{"1-32-0"}, Tags: []string{"prod"}, Endpoint: webhookconfig.Endpoint{URL: "https://127.0.0.1:9443"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	ns := func(name string, l ...string) map[string]string {
		out := map[string]string{"kubernetes.io/metadata.name": name}
		for i := 0; i+1 < len(l); i += 2 {
			out[l[i]] = l[i+1]
		}
		return out
	}
	for _, c := range []struct {
		name string
		ns   map[string]string
		pod  webhookconfig.Pod
		want webhookconfig.Match
	}{
		{"istio-injection=enabled", ns("shop", "istio-injection", "enabled"), webhookconfig.Pod{Namespace: "shop"},
			webhookconfig.Match{Entry: "namespace.sidecar-injector.meshkeeper.dev", Path: "/inject/tag/default"}},
		{"istio-injection beats istio.io/rev", ns("shop", "istio-injection", "enabled", "istio.io/rev", "prod"), webhookconfig.Pod{Namespace: "shop"},
			webhookconfig.Match{Entry: "namespace.sidecar-injector.meshkeeper.dev", Path: "/inject/tag/default"}},
		{"a namespace on a tag", ns("pay", "istio.io/rev", "prod"), webhookconfig.Pod{Namespace: "pay"},
			webhookconfig.Match{Entry: "tag.namespace.prod.sidecar-injector.meshkeeper.dev", Path: "/inject/tag/prod"}},
		{"a pod naming a revision", ns("plain"), webhookconfig.Pod{Namespace: "plain", Labels: map[string]string{"istio.io/rev": "1-32-0"}},
			webhookconfig.Match{Entry: "rev.object.1-32-0.sidecar-injector.meshkeeper.dev", Path: "/inject/rev/1-32-0"}},
		{"an injected pod goes where its workload's next pods go", ns("shop", "istio-injection", "enabled"),
			webhookconfig.Pod{Namespace: "shop", Annotations: map[string]string{"sidecar.istio.io/status": "{}"}},
			webhookconfig.Match{Entry: "namespace.sidecar-injector.meshkeeper.dev", Path: "/inject/tag/default"}},
		{"opted out", ns("shop", "istio-injection", "enabled"), webhookconfig.Pod{Namespace: "shop", Labels: map[string]string{"sidecar.istio.io/inject": "false"}},
			webhookconfig.Match{Excluded: webhookconfig.ExcludedOptedOut}},
		{"host network", ns("shop", "istio-injection", "enabled"), webhookconfig.Pod{Namespace: "shop", HostNetwork: true},
			webhookconfig.Match{Excluded: webhookconfig.ExcludedHostNetwork}},
		{"kube-system", ns("kube-system", "istio-injection", "enabled"), webhookconfig.Pod{Namespace: "kube-system"},
			webhookconfig.Match{Excluded: webhookconfig.ExcludedSystemNamespace}},
		{"a tag that does not exist selects nothing", ns("x", "istio.io/rev", "canary"), webhookconfig.Pod{Namespace: "x"}, webhookconfig.Match{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := m.Explain(c.ns, c.pod)
			if got != c.want {
				t.Errorf("Explain = %+v, want %+v", got, c.want)
			}
			if got.Entry != "" && webhookconfig.SelectedBecause(got.Entry) == "" {
				t.Errorf("SelectedBecause(%q) says nothing", got.Entry)
			}
			if route := m.Route(c.ns, c.pod); route != got.Path {
				t.Errorf("Route = %q, Explain's path %q", route, got.Path)
			}
		})
	}
	if got, want := m.Paths(), []string{"/inject/rev/1-32-0", "/inject/tag/default", "/inject/tag/prod"}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("Paths = %v, want %v", got, want)
	}
}

// TestEveryEntryIsExplained: SelectedBecause has words for every entry
// InjectorConfiguration renders, naming the label that selects it.
func TestEveryEntryIsExplained(t *testing.T) {
	mwc := webhookconfig.InjectorConfiguration(webhookconfig.Injector{
		ControlPlaneNamespace: "istio-system", Revisions: []string{"1-32-0"}, Tags: []string{"prod"}, Endpoint: webhookconfig.Endpoint{URL: "https://127.0.0.1:9443"},
	})
	for _, w := range mwc.Webhooks {
		why := webhookconfig.SelectedBecause(w.Name)
		if why == "" || !strings.Contains(why, "label") {
			t.Errorf("%s: %q", w.Name, why)
		}
	}
	if got := webhookconfig.SelectedBecause("rev.namespace.sidecar-injector.istio.io"); got != "" {
		t.Errorf("an entry meshkeeper does not render explained as %q", got)
	}
}
