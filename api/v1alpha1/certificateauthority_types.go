package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CertificateAuthorityType says what signs the mesh's workload certificates.
// +kubebuilder:validation:Enum=SelfSigned;CertManager
type CertificateAuthorityType string

const (
	// CertificateAuthoritySelfSigned is istiod's own CA: a self-signed root
	// istiod creates (Secret istio-ca-secret), or a cacerts Secret the user
	// put in the control plane namespace by hand.
	CertificateAuthoritySelfSigned CertificateAuthorityType = "SelfSigned"
	// CertificateAuthorityCertManager is an intermediate CA issued by the
	// user's cert-manager issuer into the Secret cacerts, which istiod uses as
	// its plug-in CA.
	CertificateAuthorityCertManager CertificateAuthorityType = "CertManager"
)

// CertificateAuthoritySpec says where istiod's CA comes from.
// +kubebuilder:validation:XValidation:rule="self.type != 'CertManager' || has(self.issuerRef)",message="spec.security.certificateAuthority.issuerRef is required when type is CertManager"
// +kubebuilder:validation:XValidation:rule="self.type == 'CertManager' || (!has(self.issuerRef) && !has(self.duration) && !has(self.renewBefore))",message="spec.security.certificateAuthority: issuerRef, duration and renewBefore may only be set when type is CertManager"
// +kubebuilder:validation:XValidation:rule="!has(self.renewBefore) || duration(self.renewBefore) < (has(self.duration) ? duration(self.duration) : duration('2160h'))",message="spec.security.certificateAuthority.renewBefore must be shorter than duration (cert-manager's default, 2160h, when duration is unset)"
type CertificateAuthoritySpec struct {
	// Type is SelfSigned (istiod's own CA) or CertManager (an intermediate
	// CA issued by issuerRef into the Secret cacerts of spec.namespace, as a
	// cert-manager Certificate meshkeeper owns). It cannot change while the
	// control plane runs (see AnnotationAllowCertificateAuthorityChange).
	// +kubebuilder:default=SelfSigned
	// +optional
	Type CertificateAuthorityType `json:"type,omitempty"`

	// IssuerRef is the cert-manager issuer that signs the mesh CA: a CA,
	// Vault or other issuer able to issue CA certificates. Required when type
	// is CertManager.
	// +optional
	IssuerRef *CertificateAuthorityIssuerRef `json:"issuerRef,omitempty"`

	// Duration is the lifetime of the mesh CA certificate; cert-manager's
	// default (90 days) when unset. Workload certificates are renewed by
	// their proxies long before it ends.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h')",message="spec.security.certificateAuthority.duration must be at least 1h"
	// +optional
	Duration *metav1.Duration `json:"duration,omitempty"`

	// RenewBefore is how long before the end of the mesh CA certificate
	// cert-manager renews it; cert-manager's default (a third of the
	// duration) when unset. A renewal keeps the root, and istiod reloads the
	// new intermediate without a restart.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5m')",message="spec.security.certificateAuthority.renewBefore must be at least 5m"
	// +optional
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`
}

// IssuerKind is the kind of a cert-manager issuer.
// +kubebuilder:validation:Enum=Issuer;ClusterIssuer
type IssuerKind string

const (
	// IssuerKindIssuer is a namespaced cert-manager Issuer, in spec.namespace.
	IssuerKindIssuer IssuerKind = "Issuer"
	// IssuerKindClusterIssuer is a cert-manager ClusterIssuer.
	IssuerKindClusterIssuer IssuerKind = "ClusterIssuer"
)

// CertificateAuthorityIssuerRef names a cert-manager issuer.
type CertificateAuthorityIssuerRef struct {
	// Name of the Issuer or ClusterIssuer.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// Kind is Issuer (in spec.namespace) or ClusterIssuer.
	// +required
	Kind IssuerKind `json:"kind"`

	// Group is cert-manager.io, the only one supported.
	// +kubebuilder:validation:Enum=cert-manager.io
	// +optional
	Group string `json:"group,omitempty"`
}

// AnnotationAllowCertificateAuthorityChange on a MeshInstall, with value
// "true", lets spec.security.certificateAuthority change while the control
// plane runs. Set it only when every running workload trusts the new CA's
// root: the new issuer signs under the root the mesh trusts now, or both
// roots are trusted (Istio's multi-root migration). istiod restarts onto the
// new CA once it is issued.
const AnnotationAllowCertificateAuthorityChange = "mesh.meshkeeper.dev/allow-certificate-authority-change"

// CertificateAuthorityStatus is the state of the mesh CA issued by cert-manager.
type CertificateAuthorityStatus struct {
	// Issuer signing the mesh CA, as Kind/name (e.g. ClusterIssuer/mesh-root).
	Issuer string `json:"issuer"`
	// Certificate is the cert-manager Certificate of the mesh CA, as
	// namespace/name; its Secret is cacerts in the same namespace.
	Certificate string `json:"certificate"`
	// Ready is true when cacerts holds a CA certificate issued for the
	// current spec by Issuer.
	Ready bool `json:"ready"`
	// NotAfter is when the CA certificate in cacerts expires.
	// +optional
	NotAfter *metav1.Time `json:"notAfter,omitempty"`
	// RenewalTime is when cert-manager renews it.
	// +optional
	RenewalTime *metav1.Time `json:"renewalTime,omitempty"`
	// Revision counts the CA certificates cert-manager has issued; it grows
	// by one at every renewal.
	// +optional
	Revision *int `json:"revision,omitempty"`
}
