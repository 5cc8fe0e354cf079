package meshinstall

import (
	"context"
	"fmt"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

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

// observeCertificateAuthority adds to obs what the pass needs of the mesh
// CA: the CA istiod runs with, and, when the spec asks for cert-manager's CA
// or a Certificate of ours may be left to delete, whether cert-manager is
// installed, the Certificate and the issuer. cert-manager may be installed
// after the operator started: its CRDs are looked for on every such pass,
// and the Certificate is watched from the first pass that finds them.
func (r *Reconciler) observeCertificateAuthority(ctx context.Context, mi *meshv1alpha1.MeshInstall, obs *observation) error {
	obs.ca = meshca.Observed{Running: obs.Routing != nil}
	obs.ca.IstiodExists, obs.ca.IstiodCA = istiodCertificateAuthority(obs)
	want := render.CertificateAuthorityOf(mi)
	if want == "" && mi.Status.CertificateAuthority == nil {
		return nil // istiod's own CA, and no Certificate of ours to clean up
	}
	installed, err := certmanager.Served(r.RESTMapper())
	if err != nil || !installed {
		return err
	}
	obs.ca.CertManagerInstalled = true
	if err := r.watches.ensureKind(&cmapi.Certificate{}); err != nil {
		log.FromContext(ctx).Error(err, "watching cert-manager Certificates; their status is read again on the next pass")
	}
	cert := &cmapi.Certificate{}
	switch err := r.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.CACertificateName}, cert); {
	case err == nil:
		if metav1.IsControlledBy(cert, mi) {
			obs.ca.Certificate = cert
		}
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("reading the mesh CA Certificate: %w", err)
	}
	if want == "" {
		return nil
	}
	ref := mi.Spec.Security.CertificateAuthority.IssuerRef
	namespace := "" // a ClusterIssuer
	if ref.Kind == meshv1alpha1.IssuerKindIssuer {
		namespace = mi.Spec.Namespace
	}
	switch issuer, err := certmanager.ReadIssuer(ctx, r.APIReader, namespace, ref.Name); {
	case err == nil:
		obs.ca.Issuer = issuer
	case certmanager.NotServed(err):
		obs.ca.CertManagerInstalled = false // only part of cert-manager's CRDs are served
	default:
		return fmt.Errorf("reading %s %s: %w", ref.Kind, ref.Name, err)
	}
	return nil
}

// istiodCertificateAuthority says whether an istiod Deployment exists and
// which CA it runs with: the active revision's, else any revision's.
func istiodCertificateAuthority(obs *observation) (exists bool, ca string) {
	for key, o := range obs.live {
		d, ok := o.(*appsv1.Deployment)
		rev, labelled := o.GetLabels()[render.LabelRevision]
		if !ok || !labelled || key.Name != render.IstiodName(rev) {
			continue
		}
		if !exists || (obs.Routing != nil && rev == obs.Routing.Active) {
			exists, ca = true, d.Spec.Template.Annotations[render.AnnotationCertificateAuthority]
		}
	}
	return exists, ca
}

// applyCertificateAuthority applies or deletes the mesh CA Certificate as
// decided, recording a failure in out.
func (r *Reconciler) applyCertificateAuthority(ctx context.Context, d meshca.Decision, obs *observation, out *applyOutcome) {
	live := obs.ca.Certificate
	switch {
	case d.Certificate != nil:
		var liveObj client.Object
		if live != nil {
			liveObj = live
		}
		if _, err := apply.IfChanged(ctx, r.Client, d.Certificate, liveObj); err != nil {
			out.failures = append(out.failures, applyFailure{err: err})
		}
	case d.DeleteCertificate && live != nil:
		ctrl.LoggerFrom(ctx).Info("pruning", "object", "Certificate "+live.Namespace+"/"+live.Name)
		if err := apply.DeleteIfExists(ctx, r.Client, live); err != nil {
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
			if err := r.own(mi, ns); err != nil {
				return ctrl.Result{}, err
			}
			if _, err := apply.IfChanged(ctx, r.Client, ns, nil); err != nil {
				out.failures = append(out.failures, applyFailure{err: err})
			}
		}
		if err := r.own(mi, d.Certificate); err != nil {
			return ctrl.Result{}, err
		}
		if len(out.failures) == 0 {
			r.applyCertificateAuthority(ctx, d, obs, &out)
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
