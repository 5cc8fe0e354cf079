package webhookcert

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/certmanager"
	"github.com/meshkeeper/meshkeeper/internal/certs"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// CertManagerReconciler takes the webhook server's certificate from
// cert-manager instead of the operator's own CA: it applies a Certificate
// for the webhook's Service (or, outside the cluster, the host of its URL)
// issued by the configured issuer, serves the Secret cert-manager writes
// (through the cert dir the webhook server's certwatcher reloads), and
// applies the validator with cert-manager.io/inject-ca-from and no caBundle,
// so cert-manager's cainjector keeps the bundles. A renewed certificate is
// served only once every webhook configuration meshkeeper manages trusts its
// CA: cainjector appends a renewed CA to the bundles, and until it has, the
// previous certificate (still valid) is served. It runs on every replica.
type CertManagerReconciler struct {
	Server
	// Client reads the Secret and the webhook configurations (the manager's
	// cache once SetupWithManager ran) and applies.
	Client client.Client
	// APIReader reads the issuer and the Certificate, which are not cached.
	APIReader client.Reader
	// Namespace holds the Certificate and its Secret, both named CertificateName.
	Namespace, CertificateName string
	// IssuerRef is the issuer of the webhook certificate.
	IssuerRef cmmeta.IssuerReference
	// Duration of the certificate; cert-manager renews it a third before its end.
	Duration time.Duration
	// Wait bounds how long Bootstrap waits for cert-manager.
	Wait time.Duration

	mu        sync.RWMutex
	servingCA []byte
}

// RBAC: the Certificate is read and applied; the issuer is read to say
// whether it exists and is Ready (both uncached, so no list or watch). The
// Secret cert-manager writes is read as the self-managed one is
// (selfmanaged.go). The mesh CA's needs (controllers/meshinstall/meshca.go) hold these.
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;create;patch
// +kubebuilder:rbac:groups=cert-manager.io,resources=issuers;clusterissuers,verbs=get

// Endpoint says how the API server reaches the webhook server: the
// configurations name the Certificate for cainjector, and ServingCA is the
// CA of what is served now.
func (r *CertManagerReconciler) Endpoint(context.Context) (webhookconfig.Endpoint, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.servingCA) == 0 {
		return webhookconfig.Endpoint{}, fmt.Errorf("the webhook certificate %s is not served yet", r.certificateRef())
	}
	return r.endpointWith(bytes.Clone(r.servingCA)), nil
}

func (r *CertManagerReconciler) endpointWith(servingCA []byte) webhookconfig.Endpoint {
	return webhookconfig.Endpoint{Service: r.Service, URL: r.URL, InjectCAFrom: r.certificateRef(), ServingCA: servingCA}
}

func (r *CertManagerReconciler) certificateRef() string {
	return r.Namespace + "/" + r.CertificateName
}

// Bootstrap waits, up to Wait, until cert-manager has issued the
// certificate and it is on disk, before the webhook server starts. It
// applies nothing while the issuer is missing or not Ready, and fails
// naming what is missing: cert-manager itself, the issuer, or the issued
// certificate. c works before the manager's cache has started.
func (r *CertManagerReconciler) Bootstrap(ctx context.Context, c client.Client) error {
	log := ctrl.LoggerFrom(ctx).WithValues("certificate", r.certificateRef())
	deadline := time.Now().Add(r.Wait)
	var last string
	for {
		waiting, err := r.ensure(ctx, c, c)
		switch {
		case err != nil:
			waiting = err.Error()
		case r.serving():
			return nil
		}
		if waiting != last {
			log.Info("waiting for the webhook certificate from cert-manager", "reason", waiting)
			last = waiting
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the webhook certificate %s from cert-manager is not served after %s: %s", r.certificateRef(), r.Wait, waiting)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Reconcile applies the Certificate and the validator, and serves what
// cert-manager issued once it is trusted.
func (r *CertManagerReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	waiting, err := r.ensure(ctx, r.Client, r.APIReader)
	if err != nil {
		return ctrl.Result{}, err
	}
	if r.serving() {
		if err := r.applyValidator(ctx); err != nil {
			return ctrl.Result{}, err
		}
	}
	if waiting != "" {
		ctrl.LoggerFrom(ctx).Info("webhook certificate pending", "reason", waiting)
		return ctrl.Result{RequeueAfter: caPropagationPoll}, nil
	}
	return ctrl.Result{}, nil
}

func (r *CertManagerReconciler) applyValidator(ctx context.Context) error {
	r.mu.RLock()
	endpoint := r.endpointWith(r.servingCA)
	r.mu.RUnlock()
	validator := webhookconfig.ValidatorConfiguration(endpoint, map[string]string{render.LabelManagedBy: render.ManagedBy})
	live := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	var current client.Object = live
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(validator), live); err != nil {
		if !apierrors.IsNotFound(err) {
			return err
		}
		current = nil
	}
	_, err := apply.IfChanged(ctx, r.Client, validator, current)
	return err
}

// ensure checks the issuer, applies the Certificate, and serves the
// certificate of its Secret when it may. It returns why it waits ("" when
// nothing is pending); err is an API error worth retrying.
func (r *CertManagerReconciler) ensure(ctx context.Context, c client.Client, reader client.Reader) (waiting string, err error) {
	if why, err := r.issuerNotReady(ctx, reader); err != nil {
		return "", err
	} else if why != "" {
		// Nothing is applied for an issuer that cannot sign; what is
		// issued already is still served.
		waiting = why
	} else if why, err := r.applyCertificate(ctx, c, reader); err != nil {
		return "", err
	} else if why != "" {
		waiting = why
	}

	secret := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: r.CertificateName}, secret); err != nil {
		if !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("reading the webhook certificate secret: %w", err)
		}
		return cmp.Or(waiting, fmt.Sprintf("cert-manager has not issued the Certificate %s yet (no Secret)", r.certificateRef())), nil
	}
	issued := servedFiles{cert: secret.Data[corev1.TLSCertKey], key: secret.Data[corev1.TLSPrivateKeyKey], ca: secret.Data[cmmeta.TLSCAKey]}
	current := readServedFiles(r.CertDir)
	trusted, err := trustedEverywhere(ctx, c, issued.ca)
	if err != nil {
		return "", err
	}
	serve, why := chooseServed(current, issued, trusted, r.Hosts, time.Now())
	if serve {
		ctrl.LoggerFrom(ctx).Info("serving the webhook certificate cert-manager issued", "certificate", r.certificateRef(), "reason", why)
		if err := writeCertFiles(r.CertDir, issued.data()); err != nil {
			return "", err
		}
		current = issued
	} else if why != "" {
		waiting = cmp.Or(waiting, why)
	}
	if certs.Usable(current.cert, current.key, r.Hosts, time.Now()) != nil {
		return cmp.Or(waiting, "no usable webhook certificate"), nil
	}
	recordServed(current.cert, current.ca)
	r.mu.Lock()
	changed := !bytes.Equal(r.servingCA, current.ca)
	r.servingCA = bytes.Clone(current.ca)
	r.mu.Unlock()
	if changed && r.OnCABundleChange != nil {
		r.OnCABundleChange()
	}
	return waiting, nil
}

// CAInjected is a readiness check: it fails until the validator's caBundle
// holds the CA of the served certificate, which cainjector puts there a
// moment after the validator is written. Before, the API server could not
// call this replica's webhooks; a missing cainjector shows here.
func (r *CertManagerReconciler) CAInjected(req *http.Request) error {
	r.mu.RLock()
	ca := r.servingCA
	r.mu.RUnlock()
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := r.Client.Get(req.Context(), client.ObjectKey{Name: webhookconfig.ValidatorName}, vwc); err != nil {
		return fmt.Errorf("reading %s: %w", webhookconfig.ValidatorName, err)
	}
	for _, w := range vwc.Webhooks {
		if !certs.Trusts(w.ClientConfig.CABundle, ca) {
			return fmt.Errorf("cert-manager's cainjector has not put the CA of %s into %s yet", r.certificateRef(), webhookconfig.ValidatorName)
		}
	}
	return nil
}

// serving reports whether a usable certificate is on disk and published.
func (r *CertManagerReconciler) serving() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.servingCA) > 0
}

// servedFiles are the webhook server's certificate, key and CA.
type servedFiles struct{ cert, key, ca []byte }

func (f servedFiles) data() map[string][]byte {
	return map[string][]byte{certs.CertKey: f.cert, certs.KeyKey: f.key, certs.CACertKey: f.ca}
}

func (f servedFiles) equal(o servedFiles) bool {
	return bytes.Equal(f.cert, o.cert) && bytes.Equal(f.key, o.key) && bytes.Equal(f.ca, o.ca)
}

func readServedFiles(dir string) servedFiles {
	read := func(name string) []byte {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		return data
	}
	return servedFiles{cert: read(certs.CertKey), key: read(certs.KeyKey), ca: read(certs.CACertKey)}
}

// chooseServed decides whether the webhook server switches from what it
// serves (current) to what cert-manager issued: when the issued certificate
// is usable and either its CA is trusted by every webhook configuration or
// nothing usable is served (a first start: nothing better exists). Else the
// current one is kept and why says what the switch waits for.
func chooseServed(current, issued servedFiles, trusted bool, hosts certs.Hosts, now time.Time) (serve bool, why string) {
	if current.equal(issued) {
		return false, ""
	}
	if err := certs.Usable(issued.cert, issued.key, hosts, now); err != nil {
		return false, "the issued webhook certificate cannot be served: " + err.Error()
	}
	if len(issued.ca) == 0 {
		return false, "the issued webhook certificate's Secret has no ca.crt (cainjector and meshkeeper need it)"
	}
	if trusted {
		return true, "its CA is trusted by every webhook configuration"
	}
	if certs.Usable(current.cert, current.key, hosts, now) != nil {
		return true, "nothing usable was served"
	}
	return false, "waiting for cainjector to add the renewed CA to every webhook configuration before serving a certificate it signed"
}

// issuerNotReady says why the issuer cannot sign ("" when it can, or when
// it is not one of cert-manager's own kinds, whose readiness is not read).
func (r *CertManagerReconciler) issuerNotReady(ctx context.Context, reader client.Reader) (string, error) {
	group := r.IssuerRef.Group
	if group != "" && group != cmapi.SchemeGroupVersion.Group {
		return "", nil
	}
	var namespace, name string // a ClusterIssuer has no namespace
	switch r.IssuerRef.Kind {
	case cmapi.ClusterIssuerKind:
		name = "ClusterIssuer " + r.IssuerRef.Name
	case "", cmapi.IssuerKind:
		namespace, name = r.Namespace, "Issuer "+r.Namespace+"/"+r.IssuerRef.Name
	default:
		return "", fmt.Errorf("issuer kind %q: want Issuer or ClusterIssuer", r.IssuerRef.Kind)
	}
	issuer, err := certmanager.ReadIssuer(ctx, reader, namespace, r.IssuerRef.Name)
	switch {
	case certmanager.NotServed(err):
		return notInstalled(err), nil
	case err != nil:
		return "", fmt.Errorf("reading the %s: %w", name, err)
	case issuer == nil:
		return fmt.Sprintf("the %s (cert-manager.io) of the webhook certificate does not exist", name), nil
	case issuer.Ready:
		return "", nil
	case !issuer.HasReadyCondition:
		return fmt.Sprintf("the %s of the webhook certificate is not Ready yet (no Ready condition)", name), nil
	}
	return fmt.Sprintf("the %s of the webhook certificate is not Ready: %s: %s", name, issuer.Reason, issuer.Message), nil
}

func notInstalled(err error) string {
	return "cert-manager is not installed: the API server does not serve cert-manager.io's kinds (" + err.Error() + "); install cert-manager, or run without --webhook-cert-provider=cert-manager"
}

// applyCertificate applies the Certificate when it differs from the one in
// the cluster, and says why it is not Ready ("" when it is).
func (r *CertManagerReconciler) applyCertificate(ctx context.Context, c client.Client, reader client.Reader) (string, error) {
	want := r.certificate()
	live := &cmapi.Certificate{}
	var current client.Object = live
	if err := reader.Get(ctx, client.ObjectKeyFromObject(want), live); err != nil {
		switch {
		case certmanager.NotServed(err):
			return notInstalled(err), nil
		case !apierrors.IsNotFound(err):
			return "", fmt.Errorf("reading the webhook Certificate: %w", err)
		}
		current = nil
	}
	if _, err := apply.IfChanged(ctx, c, want, current); err != nil {
		if certmanager.NotServed(err) {
			return notInstalled(err), nil
		}
		return "", err
	}
	if current == nil {
		return fmt.Sprintf("the Certificate %s was just created", r.certificateRef()), nil
	}
	for _, cond := range live.Status.Conditions {
		if cond.Type == cmapi.CertificateConditionReady && cond.Status != cmmeta.ConditionTrue {
			return fmt.Sprintf("the Certificate %s is not Ready: %s: %s", r.certificateRef(), cond.Reason, cond.Message), nil
		}
	}
	return "", nil
}

// certificate is the webhook server's Certificate: its Secret carries
// meshkeeper's label so the manager's cache (which holds only what
// meshkeeper manages) sees it.
func (r *CertManagerReconciler) certificate() *cmapi.Certificate {
	managed := map[string]string{render.LabelManagedBy: render.ManagedBy}
	ips := make([]string, 0, len(r.Hosts.IPs))
	for _, ip := range r.Hosts.IPs {
		ips = append(ips, ip.String())
	}
	crt := &cmapi.Certificate{
		TypeMeta:   metav1.TypeMeta{APIVersion: cmapi.SchemeGroupVersion.String(), Kind: cmapi.CertificateKind},
		ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.CertificateName, Labels: managed},
		Spec: cmapi.CertificateSpec{
			SecretName:     r.CertificateName,
			SecretTemplate: &cmapi.CertificateSecretTemplate{Labels: managed},
			DNSNames:       r.Hosts.DNSNames,
			IPAddresses:    ips,
			IssuerRef:      r.IssuerRef,
			Usages:         []cmapi.KeyUsage{cmapi.UsageServerAuth, cmapi.UsageDigitalSignature, cmapi.UsageKeyEncipherment},
			PrivateKey: &cmapi.CertificatePrivateKey{
				Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256, RotationPolicy: cmapi.RotationPolicyAlways,
			},
			RevisionHistoryLimit: ptr.To(int32(1)),
		},
	}
	if r.Duration > 0 {
		crt.Spec.Duration = &metav1.Duration{Duration: r.Duration}
	}
	return crt
}

// SetupWithManager runs the reconciler on every replica: at start, when
// the Secret or a webhook configuration changes (cainjector filled a
// bundle), and while something is pending.
func (r *CertManagerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	return setup(mgr, "webhookcerts-certmanager", types.NamespacedName{Namespace: r.Namespace, Name: r.CertificateName}, r)
}
