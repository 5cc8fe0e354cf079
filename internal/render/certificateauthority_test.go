package render

import (
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

func withCertManagerCA(kind meshv1alpha1.IssuerKind, name string) func(*meshv1alpha1.MeshInstall) {
	return func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.Security.CertificateAuthority = &meshv1alpha1.CertificateAuthoritySpec{
			Type:      meshv1alpha1.CertificateAuthorityCertManager,
			IssuerRef: &meshv1alpha1.CertificateAuthorityIssuerRef{Kind: kind, Name: name},
		}
	}
}

func TestCertificateAuthorityOf(t *testing.T) {
	cases := []struct {
		name string
		mi   *meshv1alpha1.MeshInstall
		want string
	}{
		{"unset is istiod's own", meshInstall("1.32.0"), ""},
		{"SelfSigned", meshInstall("1.32.0", func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Security.CertificateAuthority = &meshv1alpha1.CertificateAuthoritySpec{Type: meshv1alpha1.CertificateAuthoritySelfSigned}
		}), ""},
		{"ClusterIssuer", meshInstall("1.32.0", withCertManagerCA(meshv1alpha1.IssuerKindClusterIssuer, "root")), "ClusterIssuer/root"},
		{"Issuer", meshInstall("1.32.0", withCertManagerCA(meshv1alpha1.IssuerKindIssuer, "root")), "Issuer/root"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := CertificateAuthorityOf(tc.mi); got != tc.want {
				t.Errorf("CertificateAuthorityOf = %q, want %q", got, tc.want)
			}
			if (CACertificate(tc.mi) == nil) != (tc.want == "") {
				t.Errorf("CACertificate = %v, want one exactly when the CA is cert-manager's", CACertificate(tc.mi))
			}
		})
	}
}

// TestCACertificateIsAnIntermediateInIstiodsSecret checks what istiod needs
// of its plug-in CA: a CA certificate (istiod refuses to sign with one that
// is not), allowed to sign, in the Secret mounted at /etc/cacerts.
func TestCACertificateIsAnIntermediateInIstiodsSecret(t *testing.T) {
	mi := meshInstall("1.32.0", withCertManagerCA(meshv1alpha1.IssuerKindClusterIssuer, "mesh-root"), func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.Namespace = "mesh-system"
		mi.Spec.MeshConfig.TrustDomain = "example.org"
		mi.Spec.Security.CertificateAuthority.Duration = &metav1.Duration{Duration: 720 * time.Hour}
		mi.Spec.Security.CertificateAuthority.RenewBefore = &metav1.Duration{Duration: 240 * time.Hour}
	})
	c := CACertificate(mi)
	if c.Namespace != "mesh-system" || c.Name != CACertificateName || c.Kind != "Certificate" || c.APIVersion != "cert-manager.io/v1" {
		t.Errorf("Certificate %s %s/%s, want cert-manager.io/v1 Certificate mesh-system/%s", c.APIVersion, c.Namespace, c.Name, CACertificateName)
	}
	if c.Labels[LabelManagedBy] != ManagedBy || c.Labels[LabelMeshInstall] != "mesh" {
		t.Errorf("labels %v lack meshkeeper's", c.Labels)
	}
	s := c.Spec
	if !s.IsCA || s.SecretName != "cacerts" {
		t.Errorf("isCA %v secretName %q, want a CA in cacerts", s.IsCA, s.SecretName)
	}
	if s.IssuerRef.Kind != "ClusterIssuer" || s.IssuerRef.Name != "mesh-root" || s.IssuerRef.Group != "cert-manager.io" {
		t.Errorf("issuerRef %+v", s.IssuerRef)
	}
	if s.Duration.Duration != 720*time.Hour || s.RenewBefore.Duration != 240*time.Hour {
		t.Errorf("duration %v renewBefore %v, want the spec's", s.Duration, s.RenewBefore)
	}
	signs := false
	for _, u := range s.Usages {
		signs = signs || u == cmapi.UsageCertSign
	}
	if !signs {
		t.Errorf("usages %v lack cert sign", s.Usages)
	}
	if s.PrivateKey.RotationPolicy != cmapi.RotationPolicyAlways {
		t.Errorf("rotationPolicy %q: a renewal must bring a new key", s.PrivateKey.RotationPolicy)
	}
	if s.Subject == nil || len(s.Subject.Organizations) != 1 || s.Subject.Organizations[0] != "example.org" {
		t.Errorf("subject %+v, want the trust domain as organization", s.Subject)
	}
}

// TestIstiodRestartsOnlyForAnotherCA: the pod template carries the CA istiod
// runs with, so a change of CA rolls istiod, and nothing else about the CA
// does (a renewal is reloaded by istiod itself).
func TestIstiodRestartsOnlyForAnotherCA(t *testing.T) {
	mi := meshInstall("1.32.0", withCertManagerCA(meshv1alpha1.IssuerKindClusterIssuer, "root"))
	rev := mustRevision(t, DefaultRevision, "1.32.0")
	template := func(rev Revision) map[string]string {
		return find[*appsv1.Deployment](t, mustControlPlane(t, mi, rev), "istiod").Spec.Template.Annotations
	}
	if _, ok := template(rev)[AnnotationCertificateAuthority]; ok {
		t.Errorf("istiod of its own CA carries %s", AnnotationCertificateAuthority)
	}
	rev.CertificateAuthority = "ClusterIssuer/root"
	if got := template(rev)[AnnotationCertificateAuthority]; got != "ClusterIssuer/root" {
		t.Errorf("%s = %q, want ClusterIssuer/root", AnnotationCertificateAuthority, got)
	}
}
