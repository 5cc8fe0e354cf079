package meshinstall

import (
	"context"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	admissionregistrationv1ac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/certmanager"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// TestInjectorEntriesCAInjectorCoOwnsAreRemoved: cainjector co-owns every
// entry it filled, so a server-side apply that leaves one out (a pruned
// revision) is refused; the entries are removed by name first.
func TestInjectorEntriesCAInjectorCoOwnsAreRemoved(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	endpoint := webhookconfig.Endpoint{URL: "https://127.0.0.1:1", InjectCAFrom: "meshkeeper-system/webhook"}
	render := func(revisions ...string) *admissionregistrationv1.MutatingWebhookConfiguration {
		mwc := webhookconfig.InjectorConfiguration(webhookconfig.Injector{Revisions: revisions, Endpoint: endpoint})
		for i := range mwc.Webhooks {
			mwc.Webhooks[i].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"no": "namespace"}}
		}
		return mwc
	}
	both := render("1-31-0", "1-32-0")
	if _, err := apply.IfChanged(ctx, c, both, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(ctx, both) })
	m := admissionregistrationv1ac.MutatingWebhookConfiguration(webhookconfig.InjectorName)
	for _, w := range both.Webhooks {
		m.WithWebhooks(admissionregistrationv1ac.MutatingWebhook().WithName(w.Name).
			WithClientConfig(admissionregistrationv1ac.WebhookClientConfig().WithCABundle([]byte("injected CA")...)))
	}
	if err := c.Apply(ctx, m, certmanager.CAInjectorFieldOwner, client.ForceOwnership); err != nil {
		t.Fatal(err)
	}
	live := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(both), live); err != nil {
		t.Fatal(err)
	}

	pruned := render("1-32-0")
	if _, err := apply.IfChanged(ctx, c, pruned, live); !apierrors.IsInvalid(err) {
		t.Fatalf("applying without the removed entries: %v; the API server no longer refuses it, and removeDroppedEntries may go", err)
	}
	if err := removeDroppedEntries(ctx, c, live, pruned); err != nil {
		t.Fatal(err)
	}
	if _, err := apply.IfChanged(ctx, c, pruned, live); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(both), live); err != nil {
		t.Fatal(err)
	}
	if len(live.Webhooks) != len(pruned.Webhooks) {
		t.Fatalf("%d entries, want %d", len(live.Webhooks), len(pruned.Webhooks))
	}
	for _, w := range live.Webhooks {
		if strings.Contains(w.Name, "1-31-0") {
			t.Errorf("entry %s of the pruned revision is still there", w.Name)
		}
		if string(w.ClientConfig.CABundle) != "injected CA" {
			t.Errorf("entry %s lost cainjector's caBundle: %q", w.Name, w.ClientConfig.CABundle)
		}
	}
}

// TestNoWorkloadIsRoutedToAnEntryCAInjectorHasNotFilled: with cainjector
// writing the bundles, a revision whose injector entries are missing or do
// not trust the served CA yet is one the routing does not move towards.
func TestNoWorkloadIsRoutedToAnEntryCAInjectorHasNotFilled(t *testing.T) {
	ca := []byte("-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n")
	other := []byte("-----BEGIN CERTIFICATE-----\nBAUG\n-----END CERTIFICATE-----\n")
	injector := func(bundle func(name string) []byte, revisions ...string) *webhookconfig.Matcher {
		mwc := webhookconfig.InjectorConfiguration(webhookconfig.Injector{Revisions: revisions, Endpoint: webhookconfig.Endpoint{URL: "https://127.0.0.1:1"}})
		for i, w := range mwc.Webhooks {
			mwc.Webhooks[i].ClientConfig.CABundle = bundle(w.Name)
		}
		m, err := webhookconfig.NewMatcher(mwc)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	filled := func(string) []byte { return ca }
	plan := revision.Plan{Revisions: []revision.Planned{{Name: "1-31-0"}, {Name: "1-32-0"}}}
	cm := webhookconfig.Endpoint{InjectCAFrom: "meshkeeper-system/webhook", ServingCA: ca}
	for _, tc := range []struct {
		name     string
		endpoint webhookconfig.Endpoint
		matcher  *webhookconfig.Matcher
		want     []string
	}{
		{"every entry filled", cm, injector(filled, "1-31-0", "1-32-0"), nil},
		{"the canary's entries not written yet", cm, injector(filled, "1-31-0"), []string{"1-32-0"}},
		{"the canary's entries written, not filled", cm, injector(func(name string) []byte {
			if strings.Contains(name, "1-32-0") {
				return nil
			}
			return ca
		}, "1-31-0", "1-32-0"), []string{"1-32-0"}},
		{"filled with another CA", cm, injector(func(string) []byte { return other }, "1-31-0", "1-32-0"), []string{"1-31-0", "1-32-0"}},
		{"no injector yet", cm, nil, []string{"1-31-0", "1-32-0"}},
		{"meshkeeper's own CA: never held", webhookconfig.Endpoint{CABundle: ca}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := untrustedRevisions(plan, &observation{matcher: tc.matcher}, tc.endpoint)
			if len(got) != len(tc.want) {
				t.Fatalf("untrusted %v, want %v", got, tc.want)
			}
			for _, rev := range tc.want {
				if !got[rev] {
					t.Errorf("untrusted %v, want %v", got, tc.want)
				}
			}
		})
	}
	// The in-place revision is served by the default tag's entries.
	inPlace := revision.Plan{Revisions: []revision.Planned{{Name: revision.DefaultTag}}}
	if got := untrustedRevisions(inPlace, &observation{matcher: injector(filled)}, cm); len(got) != 0 {
		t.Errorf("the in-place revision is held with its tag's entries filled: %v", got)
	}
}
