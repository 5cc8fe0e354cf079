package meshca

import (
	"errors"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/certmanager"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

var expiry = metav1.NewTime(time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC))

type miOpt func(*meshv1alpha1.MeshInstall)

func meshInstall(opts ...miOpt) *meshv1alpha1.MeshInstall {
	mi := &meshv1alpha1.MeshInstall{
		ObjectMeta: metav1.ObjectMeta{Name: "mesh"},
		Spec:       meshv1alpha1.MeshInstallSpec{Version: "1.32.0", Namespace: "istio-system"},
	}
	for _, o := range opts {
		o(mi)
	}
	return mi
}

func issuedBy(kind meshv1alpha1.IssuerKind, name string) miOpt {
	return func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.Security.CertificateAuthority = &meshv1alpha1.CertificateAuthoritySpec{
			Type:      meshv1alpha1.CertificateAuthorityCertManager,
			IssuerRef: &meshv1alpha1.CertificateAuthorityIssuerRef{Kind: kind, Name: name},
		}
	}
}

func selfSigned(mi *meshv1alpha1.MeshInstall) {
	mi.Spec.Security.CertificateAuthority = &meshv1alpha1.CertificateAuthoritySpec{Type: meshv1alpha1.CertificateAuthoritySelfSigned}
}

func allowChange(mi *meshv1alpha1.MeshInstall) {
	mi.Annotations = map[string]string{meshv1alpha1.AnnotationAllowCertificateAuthorityChange: "true"}
}

func running(mi *meshv1alpha1.MeshInstall) { mi.Status.ActiveRevision = "default" }

// certificate is the live Certificate, issued from kind/name, Ready as said
// for the generation it judged.
func certificate(kind, name string, ready bool, judged int64) *cmapi.Certificate {
	status := cmmeta.ConditionFalse
	if ready {
		status = cmmeta.ConditionTrue
	}
	return &cmapi.Certificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: render.CACertificateName, Generation: 2},
		Spec:       cmapi.CertificateSpec{IssuerRef: cmmeta.IssuerReference{Kind: kind, Name: name, Group: "cert-manager.io"}},
		Status: cmapi.CertificateStatus{
			Conditions: []cmapi.CertificateCondition{{Type: cmapi.CertificateConditionReady, Status: status, ObservedGeneration: judged, Message: "Issuing certificate as Secret does not exist"}},
			NotAfter:   &expiry, Revision: ptr.To(3),
		},
	}
}

func readyIssuer() *certmanager.Issuer { return &certmanager.Issuer{Ready: true} }

func TestDecide(t *testing.T) {
	cases := []struct {
		name string
		mi   *meshv1alpha1.MeshInstall
		obs  Observed
		// want
		apply, deleteCert, hold, needsPerson, ready bool
		istiodCA                                    string
		reason                                      string // of CertificateAuthorityReady; "" for none
		message                                     string
		requeue                                     bool
	}{
		{name: "istiod's own CA decides nothing", mi: meshInstall(), obs: Observed{IstiodExists: true}},
		{name: "back to istiod's own CA deletes the Certificate", mi: meshInstall(selfSigned),
			obs: Observed{CertManagerInstalled: true, Certificate: certificate("ClusterIssuer", "root", true, 2)}, deleteCert: true},
		{name: "fresh install without cert-manager holds everything", mi: meshInstall(issuedBy("ClusterIssuer", "root")),
			hold: true, needsPerson: true, reason: meshv1alpha1.ReasonCertManagerNotInstalled, requeue: true,
			message: "cert-manager is not installed (the CRD certificates.cert-manager.io is not served): install it to issue the mesh CA from ClusterIssuer root; the control plane is installed once the mesh CA is issued"},
		{name: "fresh install with a missing ClusterIssuer", mi: meshInstall(issuedBy("ClusterIssuer", "root")),
			obs:  Observed{CertManagerInstalled: true},
			hold: true, needsPerson: true, reason: meshv1alpha1.ReasonIssuerNotFound, requeue: true,
			message: "ClusterIssuer root (spec.security.certificateAuthority.issuerRef) does not exist"},
		{name: "a missing Issuer is named with its namespace", mi: meshInstall(issuedBy("Issuer", "ca")),
			obs:  Observed{CertManagerInstalled: true},
			hold: true, needsPerson: true, reason: meshv1alpha1.ReasonIssuerNotFound, requeue: true,
			message: "Issuer istio-system/ca (spec.security.certificateAuthority.issuerRef) does not exist"},
		{name: "an issuer not Ready is waited for", mi: meshInstall(issuedBy("ClusterIssuer", "root")),
			obs:  Observed{CertManagerInstalled: true, Issuer: &certmanager.Issuer{Message: "secret root-ca not found"}},
			hold: true, reason: meshv1alpha1.ReasonIssuerNotReady, requeue: true, message: "is not Ready: secret root-ca not found"},
		{name: "fresh install applies the Certificate and waits for it", mi: meshInstall(issuedBy("ClusterIssuer", "root")),
			obs:   Observed{CertManagerInstalled: true, Issuer: readyIssuer()},
			apply: true, hold: true, reason: meshv1alpha1.ReasonCertificateIssuing, message: "cert-manager is issuing the mesh CA from ClusterIssuer root (Certificate istio-system/istio-mesh-ca)"},
		{name: "issued: istiod runs with it", mi: meshInstall(issuedBy("ClusterIssuer", "root")),
			obs:   Observed{CertManagerInstalled: true, Issuer: readyIssuer(), Certificate: certificate("ClusterIssuer", "root", true, 2)},
			apply: true, ready: true, istiodCA: "ClusterIssuer/root", reason: meshv1alpha1.ReasonCertificateIssued},
		{name: "Ready for an older generation is not issued", mi: meshInstall(issuedBy("ClusterIssuer", "root")),
			obs:   Observed{CertManagerInstalled: true, Issuer: readyIssuer(), Certificate: certificate("ClusterIssuer", "root", true, 1)},
			apply: true, hold: true, reason: meshv1alpha1.ReasonCertificateIssuing},
		{name: "Ready from another issuer is not issued", mi: meshInstall(issuedBy("ClusterIssuer", "new")),
			obs:   Observed{CertManagerInstalled: true, Issuer: readyIssuer(), Certificate: certificate("ClusterIssuer", "root", true, 2), IstiodExists: true, IstiodCA: "ClusterIssuer/root"},
			apply: true, istiodCA: "ClusterIssuer/root", reason: meshv1alpha1.ReasonCertificateIssuing, message: "istiod keeps its current CA"},
		{name: "running mesh whose issuer disappeared keeps its CA and applies nothing", mi: meshInstall(issuedBy("ClusterIssuer", "root"), running),
			obs:   Observed{CertManagerInstalled: true, Certificate: certificate("ClusterIssuer", "root", true, 2), IstiodExists: true, IstiodCA: "ClusterIssuer/root", Running: true},
			ready: true, istiodCA: "ClusterIssuer/root", reason: meshv1alpha1.ReasonIssuerNotFound, requeue: true, message: "cannot be renewed"},
		{name: "running mesh whose cert-manager went away keeps its CA", mi: meshInstall(issuedBy("ClusterIssuer", "root"), running),
			obs:         Observed{IstiodExists: true, IstiodCA: "ClusterIssuer/root", Running: true},
			needsPerson: true, istiodCA: "ClusterIssuer/root", reason: meshv1alpha1.ReasonCertManagerNotInstalled, requeue: true, message: "istiod keeps its current CA"},
		{name: "before the mesh runs, istiod moves to the new CA once issued", mi: meshInstall(issuedBy("ClusterIssuer", "root")),
			obs:   Observed{CertManagerInstalled: true, Issuer: readyIssuer(), Certificate: certificate("ClusterIssuer", "root", true, 2), IstiodExists: true},
			apply: true, ready: true, istiodCA: "ClusterIssuer/root", reason: meshv1alpha1.ReasonCertificateIssued},
		{name: "a running mesh may change CA with the annotation", mi: meshInstall(issuedBy("ClusterIssuer", "new"), allowChange),
			obs:   Observed{CertManagerInstalled: true, Issuer: readyIssuer(), IstiodExists: true, Running: true},
			apply: true, reason: meshv1alpha1.ReasonCertificateIssuing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Decide(tc.mi, tc.obs)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if (d.Certificate != nil) != tc.apply || d.DeleteCertificate != tc.deleteCert || d.Hold != tc.hold || d.IstiodCA != tc.istiodCA {
				t.Errorf("apply %v delete %v hold %v istiodCA %q, want %v %v %v %q", d.Certificate != nil, d.DeleteCertificate, d.Hold, d.IstiodCA,
					tc.apply, tc.deleteCert, tc.hold, tc.istiodCA)
			}
			if tc.reason == "" {
				if d.Condition != nil || d.Status != nil {
					t.Errorf("condition %+v status %+v, want none with istiod's own CA", d.Condition, d.Status)
				}
				return
			}
			c := d.Condition
			if c == nil || c.Reason != tc.reason || !strings.Contains(c.Message, tc.message) {
				t.Fatalf("condition %+v, want reason %s and a message containing %q", c, tc.reason, tc.message)
			}
			if (c.Status == metav1.ConditionTrue) != (tc.reason == meshv1alpha1.ReasonCertificateIssued) {
				t.Errorf("condition status %s for reason %s", c.Status, c.Reason)
			}
			if d.NeedsPerson != tc.needsPerson || d.Poll != tc.requeue {
				t.Errorf("needsPerson %v requeue %v, want %v %v", d.NeedsPerson, d.Poll, tc.needsPerson, tc.requeue)
			}
			if d.Status.Ready != tc.ready || d.Status.Issuer == "" || d.Status.Certificate != "istio-system/"+render.CACertificateName {
				t.Errorf("status %+v, want ready %v with issuer and certificate", d.Status, tc.ready)
			}
			if tc.obs.Certificate != nil && (d.Status.NotAfter == nil || !d.Status.NotAfter.Equal(&expiry) || *d.Status.Revision != 3) {
				t.Errorf("status %+v lacks the Certificate's expiry and revision", d.Status)
			}
		})
	}
}

// TestTheCAOfARunningMeshDoesNotChange is the switch rule, in the
// reconciler (Decide, from what runs) and at admission (ValidateUpdate,
// from status): refused, saying how to do it safely, unless the annotation says
// every workload trusts the new root.
func TestTheCAOfARunningMeshDoesNotChange(t *testing.T) {
	cases := []struct {
		name     string
		old, new *meshv1alpha1.MeshInstall
		obs      Observed
		refused  bool
		message  []string
	}{
		{name: "self-signed to cert-manager on a running mesh", old: meshInstall(running), new: meshInstall(running, issuedBy("ClusterIssuer", "root")),
			obs: Observed{IstiodExists: true, Running: true}, refused: true,
			message: []string{"spec.security.certificateAuthority cannot change from istiod's own self-signed CA to ClusterIssuer root while the mesh runs",
				"mTLS between pods holding old and new certificates would fail", "istio-ca-secret in istio-system", "ISTIO_MULTIROOT_MESH",
				meshv1alpha1.AnnotationAllowCertificateAuthorityChange + "=true"}},
		{name: "another issuer on a running mesh", old: meshInstall(running, issuedBy("ClusterIssuer", "root")), new: meshInstall(running, issuedBy("Issuer", "other")),
			obs: Observed{IstiodExists: true, IstiodCA: "ClusterIssuer/root", Running: true}, refused: true,
			message: []string{"from ClusterIssuer root to Issuer other", "an issuer under the same root as ClusterIssuer root"}},
		{name: "cert-manager to self-signed on a running mesh", old: meshInstall(running, issuedBy("ClusterIssuer", "root")), new: meshInstall(running, selfSigned),
			obs: Observed{IstiodExists: true, IstiodCA: "ClusterIssuer/root", Running: true}, refused: true},
		{name: "same issuer, other duration", old: meshInstall(running, issuedBy("ClusterIssuer", "root")), new: meshInstall(running, issuedBy("ClusterIssuer", "root"), func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Security.CertificateAuthority.Duration = &metav1.Duration{Duration: 48 * time.Hour}
		}), obs: Observed{IstiodExists: true, IstiodCA: "ClusterIssuer/root", Running: true}},
		{name: "unset and SelfSigned are the same CA", old: meshInstall(running), new: meshInstall(running, selfSigned), obs: Observed{IstiodExists: true, Running: true}},
		{name: "before the mesh runs", old: meshInstall(), new: meshInstall(issuedBy("ClusterIssuer", "root")), obs: Observed{IstiodExists: true}},
		{name: "with the annotation", old: meshInstall(running), new: meshInstall(running, issuedBy("ClusterIssuer", "root"), allowChange),
			obs: Observed{IstiodExists: true, Running: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			admission := ValidateUpdate(tc.old, tc.new)
			_, reconciler := Decide(tc.new, tc.obs)
			for who, err := range map[string]error{"admission": admission, "reconciler": reconciler} {
				if (err != nil) != tc.refused {
					t.Fatalf("%s: got %v, want refused %v", who, err, tc.refused)
				}
				if err == nil {
					continue
				}
				for _, m := range tc.message {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("%s: %q does not say %q", who, err, m)
					}
				}
			}
			var refused *refusal.Error
			if tc.refused && (!errors.As(reconciler, &refused) || refused.Reason != meshv1alpha1.ReasonCertificateAuthorityChangeRefused) {
				t.Errorf("reconciler: %v is not a refusal with reason %s", reconciler, meshv1alpha1.ReasonCertificateAuthorityChangeRefused)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	if w := Warnings(meshInstall(running), meshInstall(running, issuedBy("ClusterIssuer", "root"), allowChange)); len(w) != 1 || !strings.Contains(w[0], "istiod restarts onto ClusterIssuer root") {
		t.Errorf("allowed change on a running mesh: warnings %q", w)
	}
	if w := Warnings(meshInstall(issuedBy("ClusterIssuer", "root")), meshInstall(selfSigned)); len(w) != 1 || !strings.Contains(w[0], "istio-system/cacerts") {
		t.Errorf("back to istiod's own CA: warnings %q, want the Secret that stays named", w)
	}
	if w := Warnings(meshInstall(), meshInstall(selfSigned)); w != nil {
		t.Errorf("no change of CA: warnings %q", w)
	}
}
