package localcluster

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

// TestCertManagerIssuesAndInjects runs the cert-manager built by `make
// cert-manager` against an API server: a SelfSigned ClusterIssuer signs a
// CA, a CA Issuer signs a serving certificate, and cainjector puts that CA
// into a webhook configuration asking for it.
func TestCertManagerIssuesAndInjects(t *testing.T) {
	binDir := os.Getenv("MESHKEEPER_CERT_MANAGER_BIN")
	if binDir == "" {
		t.Fatal("MESHKEEPER_CERT_MANAGER_BIN names the directory of cert-manager's controller and cainjector (make cert-manager; make test sets it)")
	}
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.Environment.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	crds, err := CertManagerCRDDir(testenv.RepoRoot())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := env.Client
	start := time.Now()
	cm, err := StartCertManager(ctx, c, kubeconfig, CertManagerOptions{BinDir: binDir, CRDDir: crds}, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(cm.Logs(40))
		}
		cm.Stop()
	})
	t.Logf("CRDs established and cert-manager started in %s", time.Since(start).Round(time.Millisecond))

	const ns = "certs"
	if err := EnsureNamespace(ctx, c, ns, nil); err != nil {
		t.Fatal(err)
	}
	objs := []client.Object{
		&cmapi.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "selfsigned"},
			Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}}},
		&cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ca"}, Spec: cmapi.CertificateSpec{
			IsCA: true, CommonName: "test CA", SecretName: "ca",
			IssuerRef: cmmeta.IssuerReference{Kind: cmapi.ClusterIssuerKind, Name: "selfsigned"},
		}},
		&cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ca"},
			Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: "ca"}}}},
		&cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "serving"}, Spec: cmapi.CertificateSpec{
			SecretName: "serving", DNSNames: []string{"webhook.certs.svc"},
			IssuerRef: cmmeta.IssuerReference{Kind: cmapi.IssuerKind, Name: "ca"},
		}},
		&admissionregistrationv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "injected", Annotations: map[string]string{"cert-manager.io/inject-ca-from": ns + "/serving"}},
			Webhooks: []admissionregistrationv1.ValidatingWebhook{{
				Name:                    "injected.meshkeeper.test",
				ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/")},
				SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
				AdmissionReviewVersions: []string{"v1"},
				// Selects nothing: no request of this API server reaches it.
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"no": "namespace"}},
			}},
		},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	secret := &corev1.Secret{}
	testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, "serving Certificate Ready", func() error {
		crt := &cmapi.Certificate{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "serving"}, crt); err != nil {
			return err
		}
		if !ready(crt.Status.Conditions) {
			return fmt.Errorf("conditions %+v", crt.Status.Conditions)
		}
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "serving"}, secret)
	})
	t.Logf("serving Certificate Ready %s after cert-manager started", time.Since(start).Round(time.Millisecond))
	block, _ := pem.Decode(secret.Data[corev1.TLSCertKey])
	if block == nil {
		t.Fatalf("no certificate in the Secret: %v", secret.Data)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(secret.Data["ca.crt"]) {
		t.Fatal("no CA in the Secret's ca.crt")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "webhook.certs.svc"}); err != nil {
		t.Fatalf("the serving certificate does not verify against its CA: %v", err)
	}

	testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, "caBundle injected", func() error {
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := c.Get(ctx, client.ObjectKey{Name: "injected"}, vwc); err != nil {
			return err
		}
		if got := vwc.Webhooks[0].ClientConfig.CABundle; !bytes.Contains(got, bytes.TrimSpace(secret.Data["ca.crt"])) {
			return fmt.Errorf("caBundle %q", got)
		}
		return nil
	})
	t.Logf("caBundle injected %s after cert-manager started", time.Since(start).Round(time.Millisecond))
}

func ready(conds []cmapi.CertificateCondition) bool {
	for _, c := range conds {
		if c.Type == cmapi.CertificateConditionReady {
			return c.Status == cmmeta.ConditionTrue
		}
	}
	return false
}
