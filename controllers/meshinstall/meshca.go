package meshinstall

import (
	"context"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/certmanager"
	"github.com/meshkeeper/meshkeeper/internal/meshca"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// RBAC of the mesh CA (spec.security.certificateAuthority type CertManager).
// The operator owns the cert-manager Certificate of the mesh CA: it is
// read through the cache (get, list, watch), server-side applied (create,
// patch) and deleted when istiod goes back to its own CA. The issuer is
// read once per pass, straight from the API server, only to report whether
// it exists and is Ready (get). The CA's Secret (cacerts) is never read:
// the Certificate's status says all the operator needs.
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=cert-manager.io,resources=issuers;clusterissuers,verbs=get

// DefaultCertificateAuthorityPoll is how often a pass looks again for
// cert-manager's CRDs or the mesh CA's issuer while it waits on them.
const DefaultCertificateAuthorityPoll = 30 * time.Second

// caPoll is when to look again at what d waits on unwatched; 0 when nothing.
func (r *Reconciler) caPoll(d meshca.Decision) time.Duration {
	if !d.Poll {
		return 0
	}
	if r.CertificateAuthorityPoll > 0 {
		return r.CertificateAuthorityPoll
	}
	return DefaultCertificateAuthorityPoll
}

// applyCertificateAuthority applies or deletes the mesh CA Certificate as
// decided, recording a failure in out.
func (a applier) applyCertificateAuthority(ctx context.Context, d meshca.Decision, obs *observation, out *applyOutcome) {
	live := obs.ca.Certificate
	switch {
	case d.Certificate != nil:
		var liveObj client.Object
		if live != nil {
			liveObj = live
		}
		if _, err := apply.IfChanged(ctx, a.w, d.Certificate, liveObj); err != nil {
			out.failures = append(out.failures, applyFailure{err: err})
		}
	case d.DeleteCertificate && live != nil:
		ctrl.LoggerFrom(ctx).Info("pruning", "object", "Certificate "+live.Namespace+"/"+live.Name)
		if err := apply.DeleteIfExists(ctx, a.w, live); err != nil {
			out.failures = append(out.failures, applyFailure{err: err})
		}
	}
}

// reconcileCertificateAuthorityFirst is a pass that waits for the mesh CA
// before anything of the control plane exists: it creates the control
// plane namespace and the Certificate once the issuer is Ready, and nothing
// else.
func (r *Reconciler) reconcileCertificateAuthorityFirst(ctx context.Context, mi *meshv1alpha1.MeshInstall,
	d meshca.Decision, obs *observation, st *statusBuilder) (ctrl.Result, error) {
	var out applyOutcome
	if d.Certificate != nil {
		for _, ns := range namespacesToApply(mi, obs) {
			if ns.GetName() != mi.Spec.Namespace || hasLabels(obs.namespaces[ns.GetName()], ns.GetLabels()) {
				continue
			}
			if err := r.planner().own(mi, ns); err != nil {
				return ctrl.Result{}, err
			}
			if _, err := apply.IfChanged(ctx, r.Client, ns, nil); err != nil {
				out.failures = append(out.failures, applyFailure{err: err})
			}
		}
		if err := r.planner().own(mi, d.Certificate); err != nil {
			return ctrl.Result{}, err
		}
		if len(out.failures) == 0 {
			r.applier().applyCertificateAuthority(ctx, d, obs, &out)
		}
	}
	st.applied(out)
	if err := out.err(); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.caPoll(d)}, nil
}

// hasLabels reports whether have holds every label of want (false for a
// namespace that does not exist, whose labels are nil).
func hasLabels(have, want map[string]string) bool {
	if have == nil {
		return false
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// deleteCertificateAuthority deletes the mesh CA Certificate of a
// MeshInstall being deleted, when status says it has one (garbage
// collection would too, through its owner reference). Its Secret stays:
// cert-manager keeps the Secrets of deleted Certificates.
func (r *Reconciler) deleteCertificateAuthority(ctx context.Context, mi *meshv1alpha1.MeshInstall) error {
	if mi.Status.CertificateAuthority == nil {
		return nil
	}
	cert := &cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: mi.Spec.Namespace, Name: render.CACertificateName}}
	cert.SetGroupVersionKind(cmapi.SchemeGroupVersion.WithKind(cmapi.CertificateKind))
	err := apply.DeleteIfExists(ctx, r.Client, cert)
	if certmanager.NotServed(err) {
		return nil // cert-manager is gone, and its Certificates with it
	}
	return err
}
