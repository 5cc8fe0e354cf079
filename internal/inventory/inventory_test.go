package inventory

import (
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

func injectorFor(revisions ...string) *admissionregistrationv1.MutatingWebhookConfiguration {
	return webhookconfig.InjectorConfiguration(webhookconfig.Injector{
		ControlPlaneNamespace: "istio-system", Revisions: revisions, Tags: []string{"prod"},
		Endpoint: webhookconfig.Endpoint{URL: "https://127.0.0.1:9443"},
	})
}

func ns(name string, labels map[string]string) map[string]string {
	out := map[string]string{"kubernetes.io/metadata.name": name}
	for k, v := range labels {
		out[k] = v
	}
	return out
}

func TestTargetMatchesTheWebhookEntries(t *testing.T) {
	m, err := NewMatcher(injectorFor("default", "1-32-0"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		ns   map[string]string
		pod  Pod
		want string
	}{
		{"enabled namespace", ns("shop", map[string]string{"istio-injection": "enabled"}), Pod{}, "/inject/tag/default"},
		{"revision namespace", ns("shop", map[string]string{"istio.io/rev": "1-32-0"}), Pod{}, "/inject/rev/1-32-0"},
		{"tag on the pod", ns("shop", nil), Pod{Labels: map[string]string{"istio.io/rev": "prod"}}, "/inject/tag/prod"},
		{"plain pod in plain namespace", ns("shop", nil), Pod{}, ""},
		{"opted out by label", ns("shop", map[string]string{"istio-injection": "enabled"}), Pod{Labels: map[string]string{"sidecar.istio.io/inject": "false"}}, ""},
		{"opted out by annotation", ns("shop", map[string]string{"istio-injection": "enabled"}), Pod{Annotations: map[string]string{"sidecar.istio.io/inject": "false"}}, ""},
		{"annotation other than false falls back to the default, as in Istio", ns("shop", map[string]string{"istio-injection": "enabled"}), Pod{Annotations: map[string]string{"sidecar.istio.io/inject": "no"}}, "/inject/tag/default"},
		{"kube-system", ns("kube-system", map[string]string{"istio-injection": "enabled"}), Pod{}, ""},
		{"already injected", ns("shop", map[string]string{"istio-injection": "enabled"}), Pod{Annotations: map[string]string{"sidecar.istio.io/status": "{}"}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := m.Target(tc.ns, tc.pod); got != tc.want {
				t.Errorf("Target = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCount(t *testing.T) {
	m, err := NewMatcher(injectorFor("default"))
	if err != nil {
		t.Fatal(err)
	}
	stamped := func(rev, hash string) Pod {
		return Pod{Namespace: "shop", Annotations: map[string]string{
			inject.AnnotationRevision: rev, inject.AnnotationConfigHash: hash, "sidecar.istio.io/status": "{}"}}
	}
	pods := []Pod{
		stamped("default", "h1"), stamped("default", "h1"), stamped("default", "old"),
		stamped("gone", "h9"),
		{Namespace: "shop"}, // should have been injected
		{Namespace: "shop", Labels: map[string]string{"sidecar.istio.io/inject": "false"}},
		{Namespace: "plain"},
		{Namespace: "shop", Annotations: map[string]string{"sidecar.istio.io/status": "{}"}}, // Istio's own injector
	}
	namespaces := map[string]map[string]string{
		"shop":  ns("shop", map[string]string{"istio-injection": "enabled"}),
		"plain": ns("plain", nil),
	}
	got := Count(pods, namespaces, m, map[string]string{"default": "h1"})
	if got.Injected != 5 || got.UpToDate != 2 || got.Outdated != 3 || got.Uninjected != 1 {
		t.Errorf("counts = %+v, want injected 5, up to date 2, outdated 3, uninjected 1", got)
	}
	if r := got.Revisions["default"]; r.Pods != 3 || r.UpToDate != 2 {
		t.Errorf("default revision = %+v, want 3 pods, 2 up to date", r)
	}
}
