package webhookconfig_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"istio.io/api/label"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var ownership = map[string]string{"app.kubernetes.io/managed-by": "meshkeeper", "mesh.meshkeeper.dev/meshinstall": "mesh"}

// TestTagConfigurationsGolden compares the tag configurations with
// testdata/tags.yaml; `go test ./internal/webhookconfig -update` rewrites it.
func TestTagConfigurationsGolden(t *testing.T) {
	var out bytes.Buffer
	for _, c := range webhookconfig.TagConfigurations(webhookconfig.Tags{
		Tags: []string{"default", "prod", "canary-stable"}, Revision: "1-32-0", ControlPlaneNamespace: "istio-system", Labels: ownership,
	}) {
		b, err := yaml.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString("---\n")
		out.Write(b)
	}
	path := filepath.Join("testdata", "tags.yaml")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/webhookconfig -update)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("tag configurations differ from %s (run go test ./internal/webhookconfig -update and read the diff):\n%s", path, out.String())
	}
}

// TestTagConfigurationsAsIstioReadsThem checks what istioctl tag list and
// istiod's tag and default-revision watchers read: one configuration per
// tag, labelled istio.io/tag and istio.io/rev, named as Istio names it
// (the default tag is looked up by name), keeping meshkeeper's ownership
// labels, and none while no revision is routed.
func TestTagConfigurationsAsIstioReadsThem(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        webhookconfig.Tags
		wantNames []string
	}{
		{"istio-system", webhookconfig.Tags{Tags: []string{"prod", "default"}, Revision: "1-32-0", ControlPlaneNamespace: "istio-system"},
			[]string{"istio-revision-tag-default", "istio-revision-tag-prod"}},
		{"another namespace: suffixed, as Istio's chart and istioctl name them", webhookconfig.Tags{Tags: []string{"default"}, Revision: "default", ControlPlaneNamespace: "mesh"},
			[]string{"istio-revision-tag-default-mesh"}},
		{"duplicates and empty names are dropped", webhookconfig.Tags{Tags: []string{"default", "prod", "prod", ""}, Revision: "1-32-0"},
			[]string{"istio-revision-tag-default", "istio-revision-tag-prod"}},
		{"nothing routed", webhookconfig.Tags{Tags: []string{"default", "prod"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Labels = ownership
			got := webhookconfig.TagConfigurations(tc.in)
			var names []string
			for _, c := range got {
				names = append(names, c.Name)
				tag := strings.TrimSuffix(strings.TrimPrefix(c.Name, "istio-revision-tag-"), "-"+tc.in.ControlPlaneNamespace)
				if c.Labels[label.IoIstioTag.Name] != tag || c.Labels[label.IoIstioRev.Name] != tc.in.Revision {
					t.Errorf("%s: labels %v, want %s=%s and %s=%s", c.Name, c.Labels, label.IoIstioTag.Name, tag, label.IoIstioRev.Name, tc.in.Revision)
				}
				for k, v := range ownership {
					if c.Labels[k] != v {
						t.Errorf("%s: lost the ownership label %s=%s", c.Name, k, v)
					}
				}
				if len(c.Webhooks) != 0 {
					t.Errorf("%s: %d entries; the injector configuration holds every entry", c.Name, len(c.Webhooks))
				}
			}
			if strings.Join(names, ",") != strings.Join(tc.wantNames, ",") {
				t.Errorf("names %v, want %v", names, tc.wantNames)
			}
		})
	}
	if ownership[label.IoIstioTag.Name] != "" {
		t.Fatal("the caller's labels were changed")
	}
}

// TestIstiodNeverPatchesMeshkeeperConfigurations: istiod's CA bundle
// patcher rewrites caBundle of the entries whose name ends in
// sidecar-injector.istio.io, in any MutatingWebhookConfiguration labelled
// istio.io/rev=<its revision>. Were it to touch meshkeeper's, it would
// replace meshkeeper's CA with its own and every injection would fail TLS.
func TestIstiodNeverPatchesMeshkeeperConfigurations(t *testing.T) {
	configs := webhookconfig.TagConfigurations(webhookconfig.Tags{Tags: []string{"default", "prod"}, Revision: "1-32-0", ControlPlaneNamespace: "istio-system"})
	configs = append(configs, webhookconfig.InjectorConfiguration(webhookconfig.Injector{
		ControlPlaneNamespace: "istio-system", Revisions: []string{"1-31-0", "1-32-0", "default"}, Tags: []string{"prod"},
		Endpoint: webhookconfig.Endpoint{URL: "https://127.0.0.1:9443", CABundle: []byte("CA")}, Labels: ownership,
	}))
	for _, c := range configs {
		_, revisioned := c.Labels[label.IoIstioRev.Name]
		for _, w := range c.Webhooks {
			if revisioned && strings.HasSuffix(w.Name, "sidecar-injector.istio.io") {
				t.Errorf("%s: entry %s of a configuration labelled %s: istiod would patch its caBundle", c.Name, w.Name, label.IoIstioRev.Name)
			}
		}
	}
	injector := configs[len(configs)-1]
	if _, ok := injector.Labels[label.IoIstioRev.Name]; ok {
		t.Errorf("the injector configuration is labelled %s: istiod would take it for its own", label.IoIstioRev.Name)
	}
}

// TestInjectorEntriesNeverOverlap checks the injector the way istioctl
// analyze's webhook analyzer does (IST0130 "Webhook overlaps with
// others"): for every namespace and pod labelling it tries (none,
// istio-injection enabled/disabled, sidecar.istio.io/inject true/false,
// each with and without istio.io/rev=<each revision and tag>), at most
// one entry may match, else a pod would be injected twice.
func TestInjectorEntriesNeverOverlap(t *testing.T) {
	injector := webhookconfig.InjectorConfiguration(webhookconfig.Injector{
		ControlPlaneNamespace: "istio-system", OperatorNamespace: "meshkeeper-system",
		Revisions: []string{"1-31-0", "1-32-0"}, Tags: []string{"prod"},
		Endpoint: webhookconfig.Endpoint{URL: "https://127.0.0.1:9443"},
	})
	targets := []string{"", "1-31-0", "1-32-0", "default", "prod"}
	var nsSets, podSets []labels.Set
	for _, target := range targets {
		for _, base := range []labels.Set{{}, {"istio-injection": "enabled"}, {"istio-injection": "disabled"}} {
			nsSets = append(nsSets, withRev(base, target))
		}
		for _, base := range []labels.Set{{}, {label.SidecarInject.Name: "true"}, {label.SidecarInject.Name: "false"}} {
			podSets = append(podSets, withRev(base, target))
		}
	}
	for _, ns := range nsSets {
		for _, pod := range podSets {
			var matched []string
			for _, w := range injector.Webhooks {
				if matches(t, w.NamespaceSelector, ns) && matches(t, w.ObjectSelector, pod) {
					matched = append(matched, w.Name)
				}
			}
			if len(matched) > 1 {
				t.Errorf("namespace %v, pod %v: entries %v all match", ns, pod, matched)
			}
		}
	}
}

func withRev(base labels.Set, rev string) labels.Set {
	out := labels.Set{}
	for k, v := range base {
		out[k] = v
	}
	if rev != "" {
		out[label.IoIstioRev.Name] = rev
	}
	return out
}

func matches(t *testing.T, s *metav1.LabelSelector, set labels.Set) bool {
	t.Helper()
	if s == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel.Matches(set)
}
