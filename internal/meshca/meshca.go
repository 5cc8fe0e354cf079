// Package meshca decides what becomes of the mesh's certificate authority
// in one pass: whether the cert-manager Certificate of the mesh CA is
// applied, which CA istiod runs with, whether the control plane waits for
// its CA, and what the CertificateAuthorityReady condition and status say.
// It also holds the rule that the CA of a running mesh does not change
// unless the user says every workload trusts the new one.
//
// What istiod does with the CA (checked in istio.io/istio,
// pilot/pkg/bootstrap/istio_ca.go): it reads the Secret cacerts mounted at
// /etc/cacerts at start-up, in the kubernetes.io/tls layout when tls.crt
// exists; it watches that directory and reloads a new intermediate whose
// root (ca.crt) is unchanged, but ignores a new root until it restarts, and
// an istiod started with its own self-signed CA never looks at cacerts again.
// So a renewal needs nothing, and a change of issuer needs a restart.
package meshca

import (
	"fmt"
	"strings"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/certmanager"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// Observed is what one pass found of the mesh CA.
type Observed struct {
	// CertManagerInstalled is true when cert-manager's CRDs are served.
	CertManagerInstalled bool
	// Issuer is the issuer spec.security.certificateAuthority names; nil
	// when it does not exist (or was not looked for).
	Issuer *certmanager.Issuer
	// Certificate is the live mesh CA Certificate; nil when there is none.
	Certificate *cmapi.Certificate
	// IstiodExists is true when an istiod Deployment of the MeshInstall exists.
	IstiodExists bool
	// IstiodCA is the CA that istiod runs with, from its pod template
	// (render.AnnotationCertificateAuthority): "" for istiod's own.
	IstiodCA string
	// Running is true once the mesh has served workloads (its routing
	// exists): they hold certificates of the CA istiod runs with.
	Running bool
}

// Pending is true when the CA the spec asks for is not issued: the
// MeshInstall is not Ready until it is.
func (d Decision) Pending() bool { return d.Status != nil && !d.Status.Ready }

// Decision is what a pass does about the mesh CA.
type Decision struct {
	// Certificate is the Certificate to apply; nil leaves the live one as
	// it is (nothing of a CA change is applied while its issuer is missing).
	Certificate *cmapi.Certificate
	// DeleteCertificate is true when the live Certificate is no longer
	// wanted (istiod's own CA).
	DeleteCertificate bool
	// IstiodCA is the CA istiod is rendered with (render.Revision's
	// CertificateAuthority): the spec's once cert-manager has issued it,
	// until then the one istiod runs with.
	IstiodCA string
	// Hold is true while no istiod may be created: none exists and the CA
	// the spec asks for is not issued yet. An istiod started without its CA
	// would make its own, and the first workloads would trust that one.
	Hold bool
	// Condition is CertificateAuthorityReady; nil with istiod's own CA.
	Condition *metav1.Condition
	// NeedsPerson is true when the condition's cause needs a person (Stalled).
	NeedsPerson bool
	// Status is status.certificateAuthority; nil with istiod's own CA.
	Status *meshv1alpha1.CertificateAuthorityStatus
	// Poll is true while the pass waits on what no watch reports:
	// cert-manager's CRDs appearing, the issuer appearing or becoming Ready.
	Poll bool
}

// Decide says what to do about the mesh CA of mi given obs. It refuses
// (*refusal.Error) a change of CA on a running mesh without
// AnnotationAllowCertificateAuthorityChange.
func Decide(mi *meshv1alpha1.MeshInstall, obs Observed) (Decision, error) {
	want := render.CertificateAuthorityOf(mi)
	live := obs.IstiodCA
	if obs.Running && obs.IstiodExists && want != live && !changeAllowed(mi) {
		return Decision{}, &refusal.Error{Reason: meshv1alpha1.ReasonCertificateAuthorityChangeRefused, Message: ChangeRefusal(mi, live, want)}
	}
	if want == "" {
		return Decision{DeleteCertificate: obs.Certificate != nil}, nil
	}
	d := Decision{IstiodCA: live, Hold: !obs.IstiodExists}
	d.Status = &meshv1alpha1.CertificateAuthorityStatus{
		Issuer:      want,
		Certificate: namespaceOf(mi) + "/" + render.CACertificateName,
	}
	cond := metav1.Condition{Type: meshv1alpha1.ConditionCertificateAuthorityReady, Status: metav1.ConditionFalse}
	issuer := describe(want)
	if obs.CertManagerInstalled && IssuedBy(obs.Certificate, want) {
		// cacerts holds the CA the spec asks for, whatever becomes of its issuer.
		d.IstiodCA, d.Hold, d.Status.Ready = want, false, true
	}
	switch {
	case !obs.CertManagerInstalled:
		cond.Reason = meshv1alpha1.ReasonCertManagerNotInstalled
		cond.Message = "cert-manager is not installed (the CRD certificates.cert-manager.io is not served): install it to issue the mesh CA from " + issuer
		d.NeedsPerson, d.Poll = true, true
	case obs.Issuer == nil:
		cond.Reason = meshv1alpha1.ReasonIssuerNotFound
		cond.Message = fmt.Sprintf("%s (spec.security.certificateAuthority.issuerRef) does not exist", issuerWhere(mi, want))
		d.NeedsPerson, d.Poll = true, true
	case !obs.Issuer.Ready:
		cond.Reason = meshv1alpha1.ReasonIssuerNotReady
		cond.Message = fmt.Sprintf("%s (spec.security.certificateAuthority.issuerRef) is not Ready: %s", issuerWhere(mi, want), obs.Issuer.Message)
		d.Poll = true
	default:
		d.Certificate = render.CACertificate(mi)
		if d.Status.Ready {
			cond.Status, cond.Reason = metav1.ConditionTrue, meshv1alpha1.ReasonCertificateIssued
			cond.Message = fmt.Sprintf("Secret %s holds the mesh CA issued by %s", render.CASecretName, issuer)
		} else {
			cond.Reason = meshv1alpha1.ReasonCertificateIssuing
			cond.Message = fmt.Sprintf("cert-manager is issuing the mesh CA from %s (Certificate %s)%s", issuer, d.Status.Certificate, readyMessage(obs.Certificate))
		}
	}
	if c := obs.Certificate; c != nil {
		d.Status.NotAfter, d.Status.RenewalTime, d.Status.Revision = c.Status.NotAfter, c.Status.RenewalTime, c.Status.Revision
	}
	switch {
	case cond.Status == metav1.ConditionTrue:
	case d.Hold:
		cond.Message += "; the control plane is installed once the mesh CA is issued"
	case d.Status.Ready:
		// Nothing waits, but the next renewal would fail.
		cond.Message += "; Secret " + render.CASecretName + " holds a CA from it, which cannot be renewed until then"
		d.NeedsPerson = false
	default:
		cond.Message += "; istiod keeps its current CA"
	}
	d.Condition = &cond
	return d, nil
}

// IssuedBy reports whether a Certificate is Ready, for its current spec,
// with a certificate from the issuer identified as render.CertificateAuthorityOf
// says. cert-manager re-judges Ready at every change of spec (a Secret from
// another issuer is not Ready), and records the generation it judged.
func IssuedBy(c *cmapi.Certificate, identity string) bool {
	if c == nil || c.Spec.IssuerRef.Kind+"/"+c.Spec.IssuerRef.Name != identity {
		return false
	}
	for _, cond := range c.Status.Conditions {
		if cond.Type == cmapi.CertificateConditionReady {
			return cond.Status == cmmeta.ConditionTrue && cond.ObservedGeneration == c.Generation
		}
	}
	return false
}

func readyMessage(c *cmapi.Certificate) string {
	if c == nil {
		return ""
	}
	for _, cond := range c.Status.Conditions {
		if cond.Type == cmapi.CertificateConditionReady && cond.Message != "" {
			return ": " + cond.Message
		}
	}
	return ""
}

// ValidateUpdate refuses at admission what Decide would refuse: a change of
// CA on a mesh whose status says it runs, without the annotation.
func ValidateUpdate(old, updated *meshv1alpha1.MeshInstall) error {
	from, to := render.CertificateAuthorityOf(old), render.CertificateAuthorityOf(updated)
	if from == to || old.Status.ActiveRevision == "" || changeAllowed(updated) {
		return nil
	}
	return fmt.Errorf("%s", ChangeRefusal(updated, from, to))
}

// Warnings are what an accepted change of CA leaves to the user.
func Warnings(old, updated *meshv1alpha1.MeshInstall) []string {
	from, to := render.CertificateAuthorityOf(old), render.CertificateAuthorityOf(updated)
	if from == to {
		return nil
	}
	var out []string
	if old.Status.ActiveRevision != "" {
		out = append(out, fmt.Sprintf("spec.security.certificateAuthority changes on a running mesh (%s): istiod restarts onto %s once it is issued; every workload must already trust its root",
			meshv1alpha1.AnnotationAllowCertificateAuthorityChange, describe(to)))
	}
	if from != "" && to == "" {
		out = append(out, fmt.Sprintf("the Secret %s/%s that cert-manager issued stays, and istiod takes any Secret of that name as its CA: delete it to return to istiod's own self-signed CA",
			namespaceOf(updated), render.CASecretName))
	}
	return out
}

// ChangeRefusal says why the CA of a running mesh may not change from one
// identity to another, and how to change it safely.
func ChangeRefusal(mi *meshv1alpha1.MeshInstall, from, to string) string {
	trustFirst := "issue the new CA under the root the mesh trusts now (an issuer under the same root as " + describe(from) + ")"
	if from == "" {
		trustFirst = fmt.Sprintf("issue the new CA under the root the mesh trusts now (a cert-manager CA issuer whose Secret holds istiod's root and key: ca-cert.pem and ca-key.pem of the Secret istio-ca-secret in %s)", namespaceOf(mi))
	}
	return fmt.Sprintf("spec.security.certificateAuthority cannot change from %s to %s while the mesh runs: istiod would sign new workload "+
		"certificates under a root the running workloads may not trust, and mTLS between pods holding old and new certificates would fail. "+
		"To change it safely, as Istio's plug-in CA migration does, make every workload trust the new root first: either %s, "+
		"or trust both roots (ISTIO_MULTIROOT_MESH, both roots in root-cert.pem) and restart every workload; "+
		"then set the annotation %s=true on the MeshInstall together with the new spec.security.certificateAuthority: "+
		"istiod restarts onto the new CA once cert-manager has issued it",
		describe(from), describe(to), trustFirst, meshv1alpha1.AnnotationAllowCertificateAuthorityChange)
}

func changeAllowed(mi *meshv1alpha1.MeshInstall) bool {
	return mi.Annotations[meshv1alpha1.AnnotationAllowCertificateAuthorityChange] == "true"
}

// describe names a CA identity for people.
func describe(identity string) string {
	if identity == "" {
		return "istiod's own self-signed CA"
	}
	kind, name, _ := strings.Cut(identity, "/")
	return kind + " " + name
}

// issuerWhere names the issuer with its namespace when it is an Issuer.
func issuerWhere(mi *meshv1alpha1.MeshInstall, identity string) string {
	kind, name, _ := strings.Cut(identity, "/")
	if kind == string(meshv1alpha1.IssuerKindIssuer) {
		return fmt.Sprintf("Issuer %s/%s", namespaceOf(mi), name)
	}
	return kind + " " + name
}

func namespaceOf(mi *meshv1alpha1.MeshInstall) string {
	if mi.Spec.Namespace == "" {
		return "istio-system"
	}
	return mi.Spec.Namespace
}
