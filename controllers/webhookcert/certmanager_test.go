package webhookcert

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	admissionregistrationv1ac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/certmanager"
	"github.com/meshkeeper/meshkeeper/internal/certs"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

var webhookHosts = certs.Hosts{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}

// ensureCertManagerCRDs installs cert-manager's CRDs into the suite's API
// server (envtest waits until they are served).
func ensureCertManagerCRDs(t *testing.T) {
	t.Helper()
	dir, err := testenv.CertManagerCRDDir(testenv.RepoRoot())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{Paths: []string{dir}, ErrorIfPathMissing: true}); err != nil {
		t.Fatal(err)
	}
}

func certManagerWebhookReconciler(t *testing.T, c client.Client, ns string) *CertManagerReconciler {
	t.Helper()
	return &CertManagerReconciler{
		Client: c, APIReader: c, Namespace: ns, CertificateName: "webhook",
		IssuerRef: cmmeta.IssuerReference{Kind: cmapi.IssuerKind, Name: "webhook-ca", Group: cmapi.SchemeGroupVersion.Group},
		Duration:  time.Hour, Wait: time.Second,
		Server: Server{CertDir: t.TempDir(), Hosts: webhookHosts, URL: "https://127.0.0.1:1"},
	}
}

// TestCertManagerWebhookCertificateNamesWhatIsMissing: without cert-manager,
// or with its issuer missing or not Ready, the operator does not start
// serving, says which, and applies nothing.
func TestCertManagerWebhookCertificateNamesWhatIsMissing(t *testing.T) {
	ctx := context.Background()
	t.Run("cert-manager not installed", func(t *testing.T) {
		// The API server serves no cert-manager.io kind.
		noMatch := func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			switch obj.(type) {
			case *cmapi.Issuer, *cmapi.ClusterIssuer, *cmapi.Certificate:
				return &meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: "cert-manager.io", Kind: "Issuer"}, SearchedVersions: []string{"v1"}}
			}
			return c.Get(ctx, key, obj, opts...)
		}
		c := fake.NewClientBuilder().WithScheme(env.Scheme).WithInterceptorFuncs(interceptor.Funcs{Get: noMatch}).Build()
		r := certManagerWebhookReconciler(t, c, "meshkeeper-system")
		err := r.Bootstrap(ctx, c)
		if err == nil || !strings.Contains(err.Error(), "cert-manager is not installed") {
			t.Fatalf("Bootstrap: %v, want an error saying cert-manager is not installed", err)
		}
	})

	ensureCertManagerCRDs(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cm-webhook-missing"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, ns) })
	r := certManagerWebhookReconciler(t, env.Client, ns.Name)
	nothingApplied := func(t *testing.T) {
		t.Helper()
		for _, o := range []client.Object{
			&cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "webhook"}},
			&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhookconfig.ValidatorName}},
		} {
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(o), o); !apierrors.IsNotFound(err) {
				t.Errorf("%T %s: %v, want it not applied", o, o.GetName(), err)
			}
		}
		if _, err := os.Stat(filepath.Join(r.CertDir, "tls.crt")); !os.IsNotExist(err) {
			t.Errorf("a certificate was written: %v", err)
		}
	}

	t.Run("issuer missing", func(t *testing.T) {
		err := r.Bootstrap(ctx, env.Client)
		if err == nil || !strings.Contains(err.Error(), "Issuer cm-webhook-missing/webhook-ca (cert-manager.io) of the webhook certificate does not exist") {
			t.Fatalf("Bootstrap: %v, want an error naming the missing Issuer", err)
		}
		nothingApplied(t)
	})
	t.Run("issuer not Ready", func(t *testing.T) {
		issuer := &cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "webhook-ca"},
			Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: "no-such-ca"}}}}
		if err := env.Client.Create(ctx, issuer); err != nil {
			t.Fatal(err)
		}
		setIssuerCondition(t, issuer, cmmeta.ConditionFalse, "ErrGetKeyPair", `secret "no-such-ca" not found`)
		err := r.Bootstrap(ctx, env.Client)
		if err == nil || !strings.Contains(err.Error(), `Issuer cm-webhook-missing/webhook-ca of the webhook certificate is not Ready: ErrGetKeyPair: secret "no-such-ca" not found`) {
			t.Fatalf("Bootstrap: %v, want an error saying why the Issuer is not Ready", err)
		}
		nothingApplied(t)
	})
}

func setIssuerCondition(t *testing.T, issuer *cmapi.Issuer, status cmmeta.ConditionStatus, reason, message string) {
	t.Helper()
	issuer.Status.Conditions = []cmapi.IssuerCondition{{Type: cmapi.IssuerConditionReady, Status: status, Reason: reason, Message: message}}
	if err := env.Client.Status().Update(context.Background(), issuer); err != nil {
		t.Fatal(err)
	}
}

// issue plays cert-manager: it writes the Certificate's Secret, signed by
// a CA of its own (a CA renewal is a new one).
func issueWebhookSecret(t *testing.T, ns string, ca *certs.Bundle) *certs.Bundle {
	t.Helper()
	now := time.Now()
	life := certs.Lifetimes{CA: 24 * time.Hour, Serving: time.Hour}
	if ca == nil {
		ca = &certs.Bundle{}
	}
	b, err := certs.Renew(ca, certs.Renewal{CA: len(ca.CACert) == 0, Serving: true}, webhookHosts, now, life)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "webhook"}}
	data := map[string][]byte{corev1.TLSCertKey: b.Cert, corev1.TLSPrivateKeyKey: b.Key, cmmeta.TLSCAKey: certs.CurrentCA(b)}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret); apierrors.IsNotFound(err) {
		secret.Type, secret.Data = corev1.SecretTypeTLS, data
		if err := env.Client.Create(ctx, secret); err != nil {
			t.Fatal(err)
		}
		return b
	} else if err != nil {
		t.Fatal(err)
	}
	secret.Data = data
	if err := env.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCertManagerWebhookCertificateIsServedOnceTrusted plays cert-manager
// and its cainjector around the reconciler: it applies the Certificate
// cert-manager issues from, serves the issued Secret, writes the validator
// with the inject-ca-from annotation and never a caBundle of its own (so
// cainjector's stays), and serves a certificate of a renewed CA only once
// every webhook configuration trusts that CA.
func TestCertManagerWebhookCertificateIsServedOnceTrusted(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	ensureCertManagerCRDs(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cm-webhook"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	issuer := &cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "webhook-ca"},
		Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: "ca"}}}}
	if err := c.Create(ctx, issuer); err != nil {
		t.Fatal(err)
	}
	setIssuerCondition(t, issuer, cmmeta.ConditionTrue, "KeyPairVerified", "")
	// The injector as the MeshInstall reconciler writes it in this mode: no caBundle.
	endpoint := webhookconfig.Endpoint{URL: "https://127.0.0.1:1", InjectCAFrom: ns.Name + "/webhook"}
	injector := webhookconfig.InjectorConfiguration(webhookconfig.Injector{Revisions: []string{"1-32-0"}, Endpoint: endpoint})
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

	r := certManagerWebhookReconciler(t, c, ns.Name)
	r.Wait = 30 * time.Second
	bundleChanges := 0
	r.OnCABundleChange = func() { bundleChanges++ }
	bootstrapped := make(chan error, 1)
	go func() { bootstrapped <- r.Bootstrap(ctx, c) }()

	crt := &cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "webhook"}}
	eventually(t, timeout, "the Certificate applied", func() error { return c.Get(ctx, client.ObjectKeyFromObject(crt), crt) })
	if got := crt.Spec; got.SecretName != "webhook" || got.IssuerRef != r.IssuerRef || len(got.IPAddresses) != 1 || got.IPAddresses[0] != "127.0.0.1" ||
		len(got.Usages) != 3 || got.SecretTemplate == nil || got.SecretTemplate.Labels[render.LabelManagedBy] != render.ManagedBy {
		t.Errorf("Certificate spec %+v: want secret webhook, the issuer, 127.0.0.1, server auth usages, meshkeeper's label on the Secret", got)
	}
	first := issueWebhookSecret(t, ns.Name, nil)
	if err := <-bootstrapped; err != nil {
		t.Fatal(err)
	}
	served := func() []byte {
		data, err := os.ReadFile(filepath.Join(r.CertDir, "tls.crt"))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	if !bytes.Equal(served(), first.Cert) {
		t.Fatal("the issued certificate is not what is served after Bootstrap")
	}
	if ep, err := r.Endpoint(ctx); err != nil || ep.InjectCAFrom != ns.Name+"/webhook" || len(ep.CABundle) != 0 || !certs.Trusts(ep.ServingCA, first.CACert) {
		t.Fatalf("Endpoint %+v, %v: want inject-ca-from the Certificate, no bundle of meshkeeper's, the served CA", ep, err)
	}

	reconcile := func(step string) {
		t.Helper()
		if _, err := r.Reconcile(ctx, ctrl.Request{}); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	reconcile("first pass")
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := c.Get(ctx, client.ObjectKey{Name: webhookconfig.ValidatorName}, vwc); err != nil {
		t.Fatal(err)
	}
	if vwc.Annotations[cmapi.WantInjectAnnotation] != ns.Name+"/webhook" || len(vwc.Webhooks[0].ClientConfig.CABundle) != 0 {
		t.Fatalf("validator annotations %v, caBundle %q: want inject-ca-from and no caBundle", vwc.Annotations, vwc.Webhooks[0].ClientConfig.CABundle)
	}

	// cainjector fills every bundle; meshkeeper's passes keep them.
	inject := func(bundle []byte) {
		t.Helper()
		v := admissionregistrationv1ac.ValidatingWebhookConfiguration(webhookconfig.ValidatorName).WithWebhooks(
			admissionregistrationv1ac.ValidatingWebhook().WithName(vwc.Webhooks[0].Name).
				WithClientConfig(admissionregistrationv1ac.WebhookClientConfig().WithCABundle(bundle...)))
		m := admissionregistrationv1ac.MutatingWebhookConfiguration(webhookconfig.InjectorName)
		for _, w := range injector.Webhooks {
			m.WithWebhooks(admissionregistrationv1ac.MutatingWebhook().WithName(w.Name).
				WithClientConfig(admissionregistrationv1ac.WebhookClientConfig().WithCABundle(bundle...)))
		}
		for _, ac := range []runtime.ApplyConfiguration{v, m} {
			if err := c.Apply(ctx, ac, certmanager.CAInjectorFieldOwner, client.ForceOwnership); err != nil {
				t.Fatal(err)
			}
		}
	}
	probe := httptest.NewRequest(http.MethodGet, "/readyz", nil)
	if err := r.CAInjected(probe); err == nil || !strings.Contains(err.Error(), "cainjector has not put the CA") {
		t.Errorf("ready before cainjector filled the validator's bundle: %v", err)
	}
	inject(first.CACert)
	if err := r.CAInjected(probe); err != nil {
		t.Errorf("not ready with the validator's bundle filled: %v", err)
	}
	reconcile("with the bundles injected")
	if err := c.Get(ctx, client.ObjectKey{Name: webhookconfig.ValidatorName}, vwc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(vwc.Webhooks[0].ClientConfig.CABundle, first.CACert) {
		t.Fatalf("meshkeeper's pass changed cainjector's caBundle to %q", vwc.Webhooks[0].ClientConfig.CABundle)
	}
	for _, f := range vwc.ManagedFields {
		if f.Manager == string(apply.FieldOwner) && f.FieldsV1 != nil && strings.Contains(string(f.FieldsV1.Raw), "caBundle") {
			t.Errorf("meshkeeper owns a caBundle of the validator: %s", f.FieldsV1.Raw)
		}
	}

	// A manual renewal by the same CA is served at once: it is trusted.
	renewed := issueWebhookSecret(t, ns.Name, first)
	reconcile("after a renewal")
	if !bytes.Equal(served(), renewed.Cert) {
		t.Fatal("a renewal signed by the trusted CA is not served")
	}

	// A renewed CA: its certificate waits until cainjector has added the
	// new CA beside the old one, everywhere.
	changesBefore := bundleChanges
	rotated := issueWebhookSecret(t, ns.Name, nil)
	reconcile("after a CA renewal")
	if !bytes.Equal(served(), renewed.Cert) {
		t.Fatal("a certificate of the new CA is served before any webhook configuration trusts it")
	}
	both := append(append([]byte{}, first.CACert...), rotated.CACert...)
	v := admissionregistrationv1ac.ValidatingWebhookConfiguration(webhookconfig.ValidatorName).WithWebhooks(
		admissionregistrationv1ac.ValidatingWebhook().WithName(vwc.Webhooks[0].Name).
			WithClientConfig(admissionregistrationv1ac.WebhookClientConfig().WithCABundle(both...)))
	if err := c.Apply(ctx, v, certmanager.CAInjectorFieldOwner, client.ForceOwnership); err != nil {
		t.Fatal(err)
	}
	reconcile("with the validator trusting the new CA, the injector not yet")
	if !bytes.Equal(served(), renewed.Cert) {
		t.Fatal("a certificate of the new CA is served before the injector trusts it")
	}
	if ep, _ := r.Endpoint(ctx); !certs.Trusts(ep.ServingCA, first.CACert) || bundleChanges != changesBefore {
		t.Fatal("the served CA was published as changed before the certificate was")
	}
	inject(both)
	reconcile("with every configuration trusting both CAs")
	if !bytes.Equal(served(), rotated.Cert) {
		t.Fatal("the certificate of the new CA is not served once every configuration trusts it")
	}
	if ep, _ := r.Endpoint(ctx); !certs.Trusts(ep.ServingCA, rotated.CACert) || bundleChanges != changesBefore+1 {
		t.Fatalf("the new served CA was not published (%d changes)", bundleChanges-changesBefore)
	}
	if got, want := testutil.ToFloat64(certificateExpiry.WithLabelValues(certificateServing)), float64(notAfters(rotated.Cert)[0].Unix()); got != want {
		t.Errorf("meshkeeper_webhook_certificate_expiry_timestamp_seconds{certificate=\"serving\"} = %v, want the served certificate's %v", got, want)
	}
}

// TestChooseServed: what cert-manager issued replaces what is served only
// when it is usable, and trusted everywhere or better than nothing.
func TestChooseServed(t *testing.T) {
	now := time.Now()
	life := certs.Lifetimes{CA: 24 * time.Hour, Serving: time.Hour}
	bundle := func(b *certs.Bundle, at time.Time) servedFiles {
		t.Helper()
		if b == nil {
			b = &certs.Bundle{}
		}
		out, err := certs.Renew(b, certs.Renewal{CA: len(b.CACert) == 0, Serving: true}, webhookHosts, at, life)
		if err != nil {
			t.Fatal(err)
		}
		return servedFiles{cert: out.Cert, key: out.Key, ca: certs.CurrentCA(out)}
	}
	current := bundle(nil, now)
	issued := bundle(nil, now)
	expired := bundle(nil, now.Add(-2*time.Hour))
	noCA := issued
	noCA.ca = nil
	for _, tc := range []struct {
		name            string
		current, issued servedFiles
		trusted         bool
		serve           bool
		why             string
	}{
		{"the same", current, current, false, false, ""},
		{"trusted everywhere", current, issued, true, true, "trusted"},
		{"not trusted yet: wait", current, issued, false, false, "waiting for cainjector"},
		{"not trusted, nothing served: serve", servedFiles{}, issued, false, true, "nothing usable"},
		{"not trusted, what is served expired: serve", expired, issued, false, true, "nothing usable"},
		{"issued expired", current, expired, true, false, "cannot be served"},
		{"issued without ca.crt", current, noCA, true, false, "no ca.crt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serve, why := chooseServed(tc.current, tc.issued, tc.trusted, webhookHosts, now)
			if serve != tc.serve || !strings.Contains(why, tc.why) {
				t.Errorf("chooseServed = %v, %q; want %v, %q", serve, why, tc.serve, tc.why)
			}
		})
	}
}
