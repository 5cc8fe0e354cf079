package webhookconfig_test

import (
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/meshkeeper/meshkeeper/internal/certs"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// TestCABundleComesFromMeshkeeperOrCAInjector checks that every entry of
// both configurations carries meshkeeper's CA, or, with cert-manager, none
// (cainjector's is kept) and the annotation asking cainjector for it.
func TestCABundleComesFromMeshkeeperOrCAInjector(t *testing.T) {
	for _, tc := range []struct {
		name       string
		endpoint   webhookconfig.Endpoint
		wantBundle string
		wantInject string
	}{
		{"self-managed", webhookconfig.Endpoint{URL: "https://127.0.0.1:9443", CABundle: []byte("own CA")}, "own CA", ""},
		{"cert-manager, outside the cluster", webhookconfig.Endpoint{URL: "https://127.0.0.1:9443", InjectCAFrom: "meshkeeper-system/webhook", ServingCA: []byte("cm CA")}, "", "meshkeeper-system/webhook"},
		{"cert-manager, through the Service", webhookconfig.Endpoint{
			Service:      &admissionregistrationv1.ServiceReference{Namespace: "meshkeeper-system", Name: "meshkeeper-webhook-service"},
			InjectCAFrom: "meshkeeper-system/webhook", ServingCA: []byte("cm CA")}, "", "meshkeeper-system/webhook"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			injector := webhookconfig.InjectorConfiguration(webhookconfig.Injector{
				ControlPlaneNamespace: "istio-system", Revisions: []string{"1-31-0", "1-32-0"}, Tags: []string{"prod"}, Endpoint: tc.endpoint,
			})
			validator := webhookconfig.ValidatorConfiguration(tc.endpoint, nil)
			var configs []map[string]string
			var bundles []string
			configs = append(configs, injector.Annotations, validator.Annotations)
			for _, w := range injector.Webhooks {
				bundles = append(bundles, string(w.ClientConfig.CABundle))
			}
			for _, w := range validator.Webhooks {
				bundles = append(bundles, string(w.ClientConfig.CABundle))
			}
			for _, a := range configs {
				if got := a[cmapi.WantInjectAnnotation]; got != tc.wantInject {
					t.Errorf("%s = %q, want %q", cmapi.WantInjectAnnotation, got, tc.wantInject)
				}
			}
			if len(bundles) < 10 {
				t.Fatalf("only %d entries", len(bundles))
			}
			for i, b := range bundles {
				if b != tc.wantBundle {
					t.Errorf("entry %d: caBundle %q, want %q", i, b, tc.wantBundle)
				}
			}
		})
	}
}

// TestMatcherTrustsOnlyEntriesThatHoldTheCA: an entry is callable once its
// bundle holds the CA, also beside another (a rotation's old and new); a
// path with no entry, or with one entry not filled yet, is not.
func TestMatcherTrustsOnlyEntriesThatHoldTheCA(t *testing.T) {
	now := time.Now()
	life := certs.Lifetimes{CA: time.Hour, Serving: time.Hour}
	oldCA, err := certs.Renew(&certs.Bundle{}, certs.Renewal{CA: true, Serving: true}, certs.Hosts{DNSNames: []string{"a"}}, now, life)
	if err != nil {
		t.Fatal(err)
	}
	newCA, err := certs.Renew(&certs.Bundle{}, certs.Renewal{CA: true, Serving: true}, certs.Hosts{DNSNames: []string{"a"}}, now, life)
	if err != nil {
		t.Fatal(err)
	}
	rev := webhookconfig.TargetPath("rev", "1-32-0")
	withBundles := func(bundle func(path, name string) []byte) *admissionregistrationv1.MutatingWebhookConfiguration {
		mwc := webhookconfig.InjectorConfiguration(webhookconfig.Injector{Revisions: []string{"1-32-0"},
			Endpoint: webhookconfig.Endpoint{URL: "https://127.0.0.1:9443", InjectCAFrom: "ns/crt"}})
		for i, w := range mwc.Webhooks {
			mwc.Webhooks[i].ClientConfig.CABundle = bundle(*w.ClientConfig.URL, w.Name)
		}
		return mwc
	}
	both := append(append([]byte{}, oldCA.CACert...), newCA.CACert...)
	for _, tc := range []struct {
		name string
		mwc  *admissionregistrationv1.MutatingWebhookConfiguration
		path string
		ca   []byte
		want bool
	}{
		{"every entry holds the CA", withBundles(func(string, string) []byte { return oldCA.CACert }), rev, oldCA.CACert, true},
		{"a rotation's bundle holds old and new", withBundles(func(string, string) []byte { return both }), rev, newCA.CACert, true},
		{"the bundle holds another CA", withBundles(func(string, string) []byte { return oldCA.CACert }), rev, newCA.CACert, false},
		{"one of the path's entries is not filled yet", withBundles(func(_, name string) []byte {
			if name == "rev.object.1-32-0.sidecar-injector.meshkeeper.dev" {
				return nil
			}
			return oldCA.CACert
		}), rev, oldCA.CACert, false},
		{"another path's entry is not filled: this one is callable", withBundles(func(url, _ string) []byte {
			if url == "https://127.0.0.1:9443"+webhookconfig.TargetPath("tag", "default") {
				return nil
			}
			return oldCA.CACert
		}), rev, oldCA.CACert, true},
		{"no entry calls the path", withBundles(func(string, string) []byte { return oldCA.CACert }), webhookconfig.TargetPath("rev", "1-33-0"), oldCA.CACert, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := webhookconfig.NewMatcher(tc.mwc)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Trusts(tc.path, tc.ca); got != tc.want {
				t.Errorf("Trusts(%s) = %v, want %v", tc.path, got, tc.want)
			}
		})
	}
	var none *webhookconfig.Matcher
	if none.Trusts(rev, oldCA.CACert) {
		t.Error("no injector in the cluster trusts nothing")
	}
}
