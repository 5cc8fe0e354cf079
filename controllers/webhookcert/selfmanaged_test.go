package webhookcert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/certs"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// TestCARotationNeverServesAnUntrustedCertificate rotates a CA that is due
// and checks, at every step, that the certificate on disk (what the webhook
// server serves) verifies against the caBundle of every webhook
// configuration: the new CA reaches them all before it signs what is served.
func TestCARotationNeverServesAnUntrustedCertificate(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	hosts := certs.Hosts{DNSNames: []string{"meshkeeper-webhook.test.svc"}}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "rotation-test"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	// A bundle whose CA is two thirds through its life, with a valid serving certificate.
	issued := time.Now().Add(-50 * time.Second)
	life := certs.Lifetimes{CA: time.Minute, Serving: time.Hour}
	old, err := certs.Renew(&certs.Bundle{}, certs.Renewal{CA: true, Serving: true}, hosts, issued, life)
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "certs"}, Data: old.Data()}
	if err := c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	// The injector as the MeshInstall reconciler last wrote it, with the old CA.
	// It selects no namespace: no pod of this suite reaches it.
	injector := webhookconfig.InjectorConfiguration(webhookconfig.Injector{
		Endpoint: webhookconfig.Endpoint{URL: "https://127.0.0.1:1", CABundle: old.CACert},
	})
	for i := range injector.Webhooks {
		injector.Webhooks[i].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"no": "namespace"}}
	}
	if err := c.Create(ctx, injector); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Delete(ctx, injector)
		_ = c.Delete(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhookconfig.ValidatorName}})
		_ = c.Delete(ctx, ns)
	})

	dir := t.TempDir()
	r := &SelfManagedReconciler{Client: c, Namespace: ns.Name, SecretName: secret.Name, Lifetimes: life,
		Server: Server{CertDir: dir, Hosts: hosts, URL: "https://127.0.0.1:1"}}
	servedEverywhere := func(step string) *x509.Certificate {
		t.Helper()
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		leaf, _ := x509.ParseCertificate(pair.Certificate[0])
		var bundles [][]byte
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := c.Get(ctx, client.ObjectKey{Name: webhookconfig.ValidatorName}, vwc); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		bundles = append(bundles, vwc.Webhooks[0].ClientConfig.CABundle)
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(injector), mwc); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		for _, w := range mwc.Webhooks {
			bundles = append(bundles, w.ClientConfig.CABundle)
		}
		for _, b := range bundles {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(b)
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: hosts.DNSNames[0]}); err != nil {
				t.Fatalf("%s: the served certificate is not trusted by a webhook configuration: %v", step, err)
			}
		}
		return leaf
	}

	// Step one: a new CA, published; the old certificate is still served.
	res, err := r.Reconcile(ctx, ctrl.Request{})
	if err != nil {
		t.Fatal(err)
	}
	first := servedEverywhere("after the new CA was issued")
	if res.RequeueAfter != caPropagationPoll {
		t.Errorf("RequeueAfter = %s, want a poll for the new CA to propagate", res.RequeueAfter)
	}
	endpoint, err := r.Endpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(secret), stored); err != nil {
		t.Fatal(err)
	}
	newCA := certs.NextCA(certs.FromData(stored.Data))
	if newCA == nil || certs.Trusts(old.CACert, newCA) || !certs.Trusts(endpoint.CABundle, newCA) {
		t.Fatal("no new CA was staged and published")
	}
	// The injector has not caught up: the old certificate stays.
	if _, err := r.Reconcile(ctx, ctrl.Request{}); err != nil {
		t.Fatal(err)
	}
	// (A renewal that falls due meanwhile is signed by the old CA, which everything trusts.)
	again := servedEverywhere("while the injector still has the old CA")
	oldPool := x509.NewCertPool()
	oldPool.AppendCertsFromPEM(old.CACert)
	if _, err := again.Verify(x509.VerifyOptions{Roots: oldPool, DNSName: hosts.DNSNames[0]}); err != nil {
		t.Errorf("the new CA signed what is served before the injector trusted it: %v", err)
	}

	// The MeshInstall reconciler writes the new bundle into the injector.
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(injector), mwc); err != nil {
		t.Fatal(err)
	}
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ClientConfig.CABundle = endpoint.CABundle
	}
	if err := c.Update(ctx, mwc); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, ctrl.Request{}); err != nil {
		t.Fatal(err)
	}
	renewed := servedEverywhere("after the rotation")
	if renewed.Equal(first) || renewed.Equal(again) {
		t.Fatal("the serving certificate was not renewed once the new CA was trusted")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(newCA)
	if _, err := renewed.Verify(x509.VerifyOptions{Roots: pool, DNSName: hosts.DNSNames[0]}); err != nil {
		t.Errorf("the renewed certificate is not signed by the new CA: %v", err)
	}
	if got := testutil.ToFloat64(certificateExpiry.WithLabelValues(certificateServing)); got != float64(renewed.NotAfter.Unix()) {
		t.Errorf("meshkeeper_webhook_certificate_expiry_timestamp_seconds{certificate=\"serving\"} = %v, want the served certificate's %v", got, renewed.NotAfter.Unix())
	}
	if data, err := os.ReadFile(filepath.Join(dir, "ca.crt")); err != nil || !certs.Trusts(data, certs.CurrentCA(old)) {
		t.Error("the old CA left the bundle while certificates it signed may still be in use")
	}
}
