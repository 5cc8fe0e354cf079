package meshinstall

import (
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/meshca"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
	"github.com/meshkeeper/meshkeeper/internal/revision"
)

// TestTheLadder checks the order in which the facts of a pass win in Ready,
// Reconciling and Stalled: each case makes two or more facts hold at once,
// and the condition a user reads names the one that outranks the others.
func TestTheLadder(t *testing.T) {
	v := mustVersion(t, "1.31.4")
	type fact func(*statusBuilder)
	planned := func(phase revision.Phase, blocked bool) fact {
		return func(s *statusBuilder) {
			a := revision.Planned{Name: "default", Version: v, ProxyVersion: v, Role: meshv1alpha1.RevisionActive, Weight: 100}
			s.plan = &revision.Plan{Active: a, Revisions: []revision.Planned{a}, Phase: phase, Blocked: blocked, Message: "the plan's message"}
			s.obs = &observation{Observed: revision.Observed{InventoryKnown: true, Revisions: map[string]revision.ObservedRevision{
				"default": {ControlPlaneVersion: v.String(), ProxyVersion: v.String(), Istiod: &revision.Rollout{Available: true}, PodsReady: true},
			}}}
			s.outcome = &applyOutcome{routing: &revision.Routing{Tags: []string{"default"}, Active: "default"}, injectorApplied: true}
		}
	}
	var (
		steady      = planned(revision.PhaseSteady, false)
		canary      = planned(revision.PhaseCanary, false)
		blocked     = planned(revision.PhaseCanary, true)
		unavailable = func(s *statusBuilder) {
			s.obs.Revisions["default"] = revision.ObservedRevision{ControlPlaneVersion: v.String()}
		}
		failed = func(s *statusBuilder) {
			s.outcome.failures = []applyFailure{{err: errors.New("applying Service istio-system/istiod: denied")}}
		}
		refused = func(s *statusBuilder) {
			s.refused(refusal.Newf(meshv1alpha1.ReasonInvalidSpec, "spec.namespace: invalid"))
		}
		suspended  = func(s *statusBuilder) { s.suspended() }
		caDecision = func(hold, needsPerson bool, reason string) fact {
			return func(s *statusBuilder) {
				s.certificateAuthority(meshca.Decision{Hold: hold, NeedsPerson: needsPerson,
					Status:    &meshv1alpha1.CertificateAuthorityStatus{Issuer: "ClusterIssuer mesh-ca"},
					Condition: &metav1.Condition{Type: meshv1alpha1.ConditionCertificateAuthorityReady, Status: metav1.ConditionFalse, Reason: reason, Message: "the CA's message"}})
			}
		}
		caIssuing     = caDecision(false, false, meshv1alpha1.ReasonCertificateIssuing)
		caNeedsPerson = caDecision(false, true, meshv1alpha1.ReasonCertManagerNotInstalled)
		caHeld        = caDecision(true, false, meshv1alpha1.ReasonIssuerNotReady)
		caHeldPerson  = caDecision(true, true, meshv1alpha1.ReasonCertManagerNotInstalled)
	)
	type want struct {
		status metav1.ConditionStatus
		reason string
	}
	var (
		F, T = metav1.ConditionFalse, metav1.ConditionTrue
		ok   = want{F, meshv1alpha1.ReasonReconcileSucceeded}
	)
	cases := []struct {
		name                        string
		facts                       []fact
		ready, reconciling, stalled want
	}{{
		name: "done", facts: []fact{steady},
		ready: want{T, meshv1alpha1.ReasonReconcileSucceeded}, reconciling: ok, stalled: ok,
	}, {
		name: "the active istiod not available", facts: []fact{steady, unavailable},
		ready:       want{F, meshv1alpha1.ReasonControlPlaneNotReady},
		reconciling: want{T, meshv1alpha1.ReasonControlPlaneNotReady}, stalled: ok,
	}, {
		name: "the mesh CA being issued outranks an unavailable istiod", facts: []fact{steady, unavailable, caIssuing},
		ready:       want{F, meshv1alpha1.ReasonCertificateIssuing},
		reconciling: want{T, meshv1alpha1.ReasonCertificateIssuing}, stalled: ok,
	}, {
		name: "a mesh CA that needs a person outranks one being issued, and stalls", facts: []fact{steady, unavailable, caNeedsPerson},
		ready:       want{F, meshv1alpha1.ReasonCertManagerNotInstalled},
		reconciling: want{F, meshv1alpha1.ReasonCertManagerNotInstalled},
		stalled:     want{T, meshv1alpha1.ReasonCertManagerNotInstalled},
	}, {
		name: "an upgrade in progress outranks the mesh CA in Reconciling only", facts: []fact{canary, caIssuing},
		ready:       want{F, meshv1alpha1.ReasonCertificateIssuing},
		reconciling: want{T, meshv1alpha1.ReasonCanaryInProgress}, stalled: ok,
	}, {
		name: "a missed progress deadline outranks the upgrade and the mesh CA", facts: []fact{blocked, caNeedsPerson},
		ready:       want{F, meshv1alpha1.ReasonControlPlaneNotAvailable},
		reconciling: want{F, meshv1alpha1.ReasonControlPlaneNotAvailable},
		stalled:     want{T, meshv1alpha1.ReasonControlPlaneNotAvailable},
	}, {
		name: "a failed write outranks a missed deadline, which still stalls", facts: []fact{blocked, failed},
		ready:       want{F, meshv1alpha1.ReasonApplyFailed},
		reconciling: want{T, meshv1alpha1.ReasonApplyFailed},
		stalled:     want{T, meshv1alpha1.ReasonControlPlaneNotAvailable},
	}, {
		name: "no plan, the mesh CA needs a person", facts: []fact{caNeedsPerson},
		ready:       want{F, meshv1alpha1.ReasonProgressing},
		reconciling: want{T, meshv1alpha1.ReasonProgressing},
		stalled:     want{T, meshv1alpha1.ReasonCertManagerNotInstalled},
	}, {
		name: "held for the mesh CA outranks having no plan", facts: []fact{caHeld},
		ready:       want{F, meshv1alpha1.ReasonIssuerNotReady},
		reconciling: want{T, meshv1alpha1.ReasonIssuerNotReady}, stalled: ok,
	}, {
		name: "held for a mesh CA that needs a person", facts: []fact{caHeldPerson},
		ready:       want{F, meshv1alpha1.ReasonCertManagerNotInstalled},
		reconciling: want{F, meshv1alpha1.ReasonCertManagerNotInstalled},
		stalled:     want{T, meshv1alpha1.ReasonCertManagerNotInstalled},
	}, {
		name: "held for the mesh CA, a failed write outranks it", facts: []fact{steady, failed, caHeldPerson},
		ready:       want{F, meshv1alpha1.ReasonApplyFailed},
		reconciling: want{T, meshv1alpha1.ReasonApplyFailed},
		stalled:     want{T, meshv1alpha1.ReasonCertManagerNotInstalled},
	}, {
		name: "a refusal outranks everything but suspension", facts: []fact{blocked, failed, caHeldPerson, refused},
		ready:       want{F, meshv1alpha1.ReasonInvalidSpec},
		reconciling: want{F, meshv1alpha1.ReasonInvalidSpec},
		stalled:     want{T, meshv1alpha1.ReasonInvalidSpec},
	}, {
		name: "suspension outranks a refusal, which still stalls", facts: []fact{refused, suspended},
		ready:       want{F, meshv1alpha1.ReasonSuspended},
		reconciling: want{F, meshv1alpha1.ReasonSuspended},
		stalled:     want{T, meshv1alpha1.ReasonInvalidSpec},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mi := &meshv1alpha1.MeshInstall{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
			s := newStatusBuilder(mi, time.Now())
			for _, f := range tc.facts {
				f(s)
			}
			s.finish(mi, nil)
			for typ, w := range map[string]want{
				meshv1alpha1.ConditionReady: tc.ready, meshv1alpha1.ConditionReconciling: tc.reconciling, meshv1alpha1.ConditionStalled: tc.stalled,
			} {
				c := meta.FindStatusCondition(mi.Status.Conditions, typ)
				if c == nil {
					t.Errorf("%s not set", typ)
					continue
				}
				if c.Status != w.status || c.Reason != w.reason {
					t.Errorf("%s = %s/%s (%q), want %s/%s", typ, c.Status, c.Reason, c.Message, w.status, w.reason)
				}
			}
		})
	}
}
