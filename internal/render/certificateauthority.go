package render

import (
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// The mesh CA from cert-manager: a Certificate with isCA issued into the
// Secret istiod reads its plug-in CA from. istiod mounts that Secret at
// /etc/cacerts (istiodVolumes), its default ROOT_CA_DIR, and, finding tls.crt
// there, reads the kubernetes.io/tls layout cert-manager writes: tls.crt
// (the CA certificate first, then the chain below the root), tls.key, and
// ca.crt (the root).
const (
	// CASecretName is the Secret istiod takes its plug-in CA from.
	CASecretName = "cacerts"
	// CACertificateName is the cert-manager Certificate that issues the mesh CA into CASecretName.
	CACertificateName = "istio-mesh-ca"
	// AnnotationCertificateAuthority is on istiod's pod template: the CA
	// istiod was started with (CertificateAuthorityOf). istiod reloads a
	// renewed intermediate under the same root by itself, but not a CA from
	// another issuer, so a change of issuer restarts it through this annotation.
	AnnotationCertificateAuthority = "mesh.meshkeeper.dev/certificate-authority"
	// caKeySize is the RSA key size of the mesh CA, Istio's default CA key size.
	caKeySize = 2048
	// caRevisionHistoryLimit keeps the last few CertificateRequests of the mesh CA.
	caRevisionHistoryLimit = 3
)

// CertificateAuthorityOf identifies the CA the spec asks for: "" for
// istiod's own, else the issuer as Kind/name (ClusterIssuer/mesh-root). Two
// specs with the same identity sign under the same issuer; a change of
// identity is a change of CA.
func CertificateAuthorityOf(mi *meshv1alpha1.MeshInstall) string {
	ca := mi.Spec.Security.CertificateAuthority
	if ca == nil || ca.Type != meshv1alpha1.CertificateAuthorityCertManager || ca.IssuerRef == nil {
		return ""
	}
	return string(ca.IssuerRef.Kind) + "/" + ca.IssuerRef.Name
}

// CACertificate renders the cert-manager Certificate of the mesh CA, or nil
// when istiod runs its own CA. It is an intermediate CA (isCA, allowed to
// sign certificates) under the root of spec.security.certificateAuthority's
// issuer, with a new key at every renewal.
func CACertificate(mi *meshv1alpha1.MeshInstall) *cmapi.Certificate {
	if CertificateAuthorityOf(mi) == "" {
		return nil
	}
	ca := mi.Spec.Security.CertificateAuthority
	return &cmapi.Certificate{
		TypeMeta:   typeMeta(cmapi.SchemeGroupVersion, cmapi.CertificateKind),
		ObjectMeta: objectMeta(CACertificateName, namespace(mi), with(istioLabels(mi, ""), labelComponent, componentPilot)),
		Spec: cmapi.CertificateSpec{
			SecretName: CASecretName,
			IsCA:       true,
			CommonName: "Istio intermediate CA",
			Subject: &cmapi.X509Subject{
				Organizations: []string{trustDomain(mi)},
			},
			Duration:    ca.Duration,
			RenewBefore: ca.RenewBefore,
			Usages:      []cmapi.KeyUsage{cmapi.UsageCertSign, cmapi.UsageCRLSign, cmapi.UsageDigitalSignature},
			PrivateKey: &cmapi.CertificatePrivateKey{
				Algorithm:      cmapi.RSAKeyAlgorithm,
				Size:           caKeySize,
				RotationPolicy: cmapi.RotationPolicyAlways,
			},
			IssuerRef: cmmeta.IssuerReference{
				Name:  ca.IssuerRef.Name,
				Kind:  string(ca.IssuerRef.Kind),
				Group: cmapi.SchemeGroupVersion.Group,
			},
			RevisionHistoryLimit: ptr.To(int32(caRevisionHistoryLimit)),
		},
	}
}
