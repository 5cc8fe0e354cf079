package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/localcluster"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

// caPoll bounds a wait on what the operator polls rather than watches
// (cert-manager's CRDs, the issuer): its 30s poll, and slack for a busy machine.
const caPoll = 90 * time.Second

// TestMeshCAFromCertManager is a user's story with real cert-manager: the
// mesh CA is an intermediate issued by the user's CA ClusterIssuer into
// cacerts, where istiod reads it. cert-manager is installed after the
// operator started, and the issuer after the MeshInstall; each step builds
// on the previous one.
func TestMeshCAFromCertManager(t *testing.T) {
	runsLong(t, 90*time.Second)
	t.Parallel()
	e := newEnv(t, 1)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Security.CertificateAuthority = &meshv1alpha1.CertificateAuthoritySpec{
		Type:      meshv1alpha1.CertificateAuthorityCertManager,
		IssuerRef: &meshv1alpha1.CertificateAuthorityIssuerRef{Kind: meshv1alpha1.IssuerKindClusterIssuer, Name: "mesh-root"},
	}
	name, ns := mi.Name, mi.Spec.Namespace
	istiod := client.ObjectKey{Namespace: ns, Name: render.IstiodName(render.DefaultRevision)}
	var cm *localcluster.CertManager
	t.Cleanup(func() {
		if cm != nil {
			if t.Failed() {
				fmt.Fprintln(os.Stderr, cm.Logs(40))
			}
			cm.Stop()
		}
	})
	var root *x509.Certificate // the user's root, from its Secret
	var first *x509.Certificate
	var istiodGeneration int64

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"without cert-manager the CA condition names it and nothing is installed", func(t *testing.T) {
			if err := e.k8s.Create(ctx, mi); err != nil {
				t.Fatal(err)
			}
			e.waitCACondition(t, name, metav1.ConditionFalse, meshv1alpha1.ReasonCertManagerNotInstalled, 60*time.Second)
			got := e.getMeshInstall(t, name)
			if c := meta.FindStatusCondition(got.Status.Conditions, meshv1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
				t.Errorf("Stalled = %+v, want True: a person must install cert-manager", c)
			}
			if err := e.k8s.Get(ctx, istiod, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
				t.Errorf("istiod exists (%v): it would start with its own CA", err)
			}
		}},
		{"cert-manager started after the operator: the missing issuer is named", func(t *testing.T) {
			var err error
			crds, err := localcluster.CertManagerCRDDir(testenv.RepoRoot())
			if err != nil {
				t.Fatal(err)
			}
			cm, err = localcluster.StartCertManager(ctx, e.k8s, e.cluster.Kubeconfig, localcluster.CertManagerOptions{
				BinDir: os.Getenv("MESHKEEPER_CERT_MANAGER_BIN"), CRDDir: crds, ClusterResourceNamespace: "cert-manager",
			}, filepath.Join(workDir, strings.ReplaceAll(t.Name(), "/", "_")))
			if err != nil {
				t.Fatal(err)
			}
			e.waitCACondition(t, name, metav1.ConditionFalse, meshv1alpha1.ReasonIssuerNotFound, caPoll)
		}},
		{"an issuer without its CA Secret is named as not Ready, and still nothing is installed", func(t *testing.T) {
			e.create(t, &cmapi.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "mesh-root"},
				Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: "mesh-root"}}}})
			c := e.waitCACondition(t, name, metav1.ConditionFalse, meshv1alpha1.ReasonIssuerNotReady, caPoll)
			if !strings.Contains(c.Message, "ClusterIssuer mesh-root") {
				t.Errorf("CertificateAuthorityReady says %q", c.Message)
			}
			if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.CACertificateName}, &cmapi.Certificate{}); !apierrors.IsNotFound(err) {
				t.Errorf("the mesh CA Certificate exists (%v) while its issuer is not Ready", err)
			}
		}},
		{"the user's root arrives: cacerts chains to it, in the layout istiod reads", func(t *testing.T) {
			// The user's PKI: a self-signed root CA, whose Secret the CA ClusterIssuer signs with.
			e.create(t, &cmapi.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "selfsigned"},
				Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}}})
			e.create(t, &cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: "cert-manager", Name: "mesh-root"},
				Spec: cmapi.CertificateSpec{IsCA: true, CommonName: "mesh root CA", SecretName: "mesh-root",
					PrivateKey: &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256},
					IssuerRef:  cmmeta.IssuerReference{Kind: "ClusterIssuer", Name: "selfsigned"}}})
			e.waitCACondition(t, name, metav1.ConditionTrue, meshv1alpha1.ReasonCertificateIssued, caPoll)
			root = e.certificates(t, "cert-manager", "mesh-root", corev1.TLSCertKey)[0]
			first = e.checkCACerts(t, ns, root)
		}},
		{"istiod mounts cacerts and the mesh becomes Ready, with the CA in status", func(t *testing.T) {
			got := e.waitReady(t, name, installTimeout)
			d := &appsv1.Deployment{}
			if err := e.k8s.Get(ctx, istiod, d); err != nil {
				t.Fatal(err)
			}
			if err := mountsCACerts(d); err != nil {
				t.Error(err)
			}
			if a := d.Spec.Template.Annotations[render.AnnotationCertificateAuthority]; a != "ClusterIssuer/mesh-root" {
				t.Errorf("istiod's %s = %q", render.AnnotationCertificateAuthority, a)
			}
			istiodGeneration = d.Generation
			st := got.Status.CertificateAuthority
			if st == nil || !st.Ready || st.Issuer != "ClusterIssuer/mesh-root" || st.NotAfter == nil || !st.NotAfter.Time.Equal(first.NotAfter) || st.RenewalTime == nil {
				t.Errorf("status.certificateAuthority = %+v, want Ready, issued by ClusterIssuer/mesh-root, expiring %s", st, first.NotAfter)
			}
		}},
		{"a renewal puts a new CA under the same root in cacerts and restarts nothing", func(t *testing.T) {
			revision := *e.getMeshInstall(t, name).Status.CertificateAuthority.Revision
			e.renew(t, ns, render.CACertificateName)
			var renewed *x509.Certificate
			eventually(t, 60*time.Second, "a new CA certificate in cacerts", func() error {
				renewed = e.certificates(t, ns, render.CASecretName, corev1.TLSCertKey)[0]
				if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
					return fmt.Errorf("serial %s unchanged", renewed.SerialNumber)
				}
				return nil
			})
			renewed = e.checkCACerts(t, ns, root)
			if bytes.Equal(renewed.RawSubjectPublicKeyInfo, first.RawSubjectPublicKeyInfo) {
				t.Error("the renewed CA kept its key (rotationPolicy Always)")
			}
			eventually(t, 30*time.Second, "status shows the renewal", func() error {
				st := e.getMeshInstall(t, name).Status.CertificateAuthority
				if st.Revision == nil || *st.Revision <= revision || !st.NotAfter.Time.Equal(renewed.NotAfter) {
					return fmt.Errorf("status.certificateAuthority = %+v, want revision above %d expiring %s", st, revision, renewed.NotAfter)
				}
				return nil
			})
			d := &appsv1.Deployment{}
			if err := e.k8s.Get(ctx, istiod, d); err != nil {
				t.Fatal(err)
			}
			if d.Generation != istiodGeneration {
				t.Errorf("istiod's Deployment changed on a renewal (generation %d, was %d): istiod reloads a new intermediate under the same root by itself", d.Generation, istiodGeneration)
			}
		}},
		{"another issuer on the running mesh is refused at admission, saying how to do it safely", func(t *testing.T) {
			e.create(t, &cmapi.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "other-root"},
				Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}}})
			got := e.getMeshInstall(t, name)
			err := e.update(t, got, func() { got.Spec.Security.CertificateAuthority.IssuerRef.Name = "other-root" })
			for _, want := range []string{"cannot change from ClusterIssuer mesh-root to ClusterIssuer other-root while the mesh runs",
				"mTLS between pods holding old and new certificates would fail", meshv1alpha1.AnnotationAllowCertificateAuthorityChange + "=true"} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("got %v, want the change refused saying %q", err, want)
				}
			}
			if err := e.update(t, got, func() { got.Spec.Security.CertificateAuthority.IssuerRef.Kind = "VaultIssuer" }); err == nil || !strings.Contains(err.Error(), "spec.security.certificateAuthority.issuerRef.kind") {
				t.Errorf("an issuer of another kind: got %v, want it refused naming the field", err)
			}
		}},
		{"with the annotation, an issuer under the same root takes over and istiod restarts onto it", func(t *testing.T) {
			// The safe switch: a second CA ClusterIssuer signing with the same root.
			e.create(t, &cmapi.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "mesh-root-2"},
				Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: "mesh-root"}}}})
			e.updateMeshInstall(t, name, func(mi *meshv1alpha1.MeshInstall) {
				mi.Annotations = map[string]string{meshv1alpha1.AnnotationAllowCertificateAuthorityChange: "true"}
				mi.Spec.Security.CertificateAuthority.IssuerRef.Name = "mesh-root-2"
			})
			eventually(t, caPoll, "istiod restarts onto the new issuer", func() error {
				d := &appsv1.Deployment{}
				if err := e.k8s.Get(ctx, istiod, d); err != nil {
					return err
				}
				if a := d.Spec.Template.Annotations[render.AnnotationCertificateAuthority]; a != "ClusterIssuer/mesh-root-2" {
					return fmt.Errorf("istiod runs with %q", a)
				}
				return nil
			})
			e.checkCACerts(t, ns, root)
			got := e.waitReady(t, name, installTimeout)
			if st := got.Status.CertificateAuthority; st == nil || !st.Ready || st.Issuer != "ClusterIssuer/mesh-root-2" {
				t.Errorf("status.certificateAuthority = %+v", st)
			}
		}},
	}
	for _, step := range steps {
		if !t.Run(step.name, step.run) {
			t.Fatalf("step %q failed; the rest depend on it", step.name)
		}
	}
}

func (e *env) create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := e.k8s.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

func (e *env) waitCACondition(t *testing.T, name string, status metav1.ConditionStatus, reason string, timeout time.Duration) *metav1.Condition {
	t.Helper()
	var c *metav1.Condition
	eventually(t, timeout, "CertificateAuthorityReady "+reason, func() error {
		c = meta.FindStatusCondition(e.getMeshInstall(t, name).Status.Conditions, meshv1alpha1.ConditionCertificateAuthorityReady)
		if c == nil || c.Status != status || c.Reason != reason {
			return fmt.Errorf("condition is %+v", c)
		}
		return nil
	})
	return c
}

// certificates reads the PEM certificates under key of a Secret, in order.
func (e *env) certificates(t *testing.T, namespace, name, key string) []*x509.Certificate {
	t.Helper()
	s := &corev1.Secret{}
	if err := e.k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	certs, err := parseCertificates(s.Data[key])
	if err != nil || len(certs) == 0 {
		t.Fatalf("Secret %s/%s %s: %d certificates (%v)", namespace, name, key, len(certs), err)
	}
	return certs
}

func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out, nil
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

// checkCACerts checks cacerts as istiod reads it (pilot/pkg/bootstrap/istio_ca.go,
// security/pkg/pki/ca/ca.go, security/pkg/pki/util/keycertbundle.go): the
// kubernetes.io/tls layout, the signing certificate first in tls.crt and a
// CA allowed to sign, its key in tls.key, the root in ca.crt, and the
// signing certificate verifying up to that root through tls.crt + ca.crt.
// The root must be the user's. It returns the signing certificate.
func (e *env) checkCACerts(t *testing.T, namespace string, root *x509.Certificate) *x509.Certificate {
	t.Helper()
	s := &corev1.Secret{}
	if err := e.k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: render.CASecretName}, s); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey, "ca.crt"} {
		if len(s.Data[k]) == 0 {
			t.Fatalf("cacerts has no %s (keys: %v)", k, keys(s.Data))
		}
	}
	chain, err := parseCertificates(s.Data[corev1.TLSCertKey])
	if err != nil {
		t.Fatal(err)
	}
	roots, err := parseCertificates(s.Data["ca.crt"])
	if err != nil || len(roots) != 1 {
		t.Fatalf("ca.crt: %d certificates (%v)", len(roots), err)
	}
	if !roots[0].Equal(root) {
		t.Errorf("ca.crt is %q, not the user's root %q", roots[0].Subject, root.Subject)
	}
	ca := chain[0]
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("the signing certificate %q is not a CA allowed to sign (isCA %v, key usage %b)", ca.Subject, ca.IsCA, ca.KeyUsage)
	}
	if ca.Equal(root) {
		t.Error("the mesh CA is the root itself, not an intermediate under it")
	}
	pool, intermediates := x509.NewCertPool(), x509.NewCertPool()
	pool.AddCert(root)
	for _, c := range append(chain[1:], roots...) {
		intermediates.AddCert(c)
	}
	if _, err := ca.Verify(x509.VerifyOptions{Roots: pool, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("the mesh CA does not chain to the user's root: %v", err)
	}
	// The pair check matches tls.key to the first certificate of tls.crt.
	if _, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]); err != nil {
		t.Errorf("tls.key is not the key of the signing certificate: %v", err)
	}
	return ca
}

// renew asks cert-manager to issue a Certificate again, as `cmctl renew` does.
func (e *env) renew(t *testing.T, namespace, name string) {
	t.Helper()
	eventually(t, 10*time.Second, "renewal requested", func() error {
		c := &cmapi.Certificate{}
		if err := e.k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, c); err != nil {
			return err
		}
		now := metav1.Now()
		c.Status.Conditions = append(c.Status.Conditions, cmapi.CertificateCondition{Type: cmapi.CertificateConditionIssuing,
			Status: cmmeta.ConditionTrue, Reason: "ManuallyTriggered", Message: "Certificate re-issuance manually triggered", LastTransitionTime: &now})
		return e.k8s.Status().Update(context.Background(), c)
	})
}

func mountsCACerts(d *appsv1.Deployment) error {
	volume := ""
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == render.CASecretName {
			volume = v.Name
		}
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if c.Name == "discovery" && m.Name == volume && m.MountPath == "/etc/cacerts" {
				return nil
			}
		}
	}
	return fmt.Errorf("istiod does not mount Secret %s at /etc/cacerts (volumes %+v)", render.CASecretName, d.Spec.Template.Spec.Volumes)
}

func keys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
