package webhookcert

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/certs"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// SelfManagedReconciler keeps the webhook server's certificate: it issues a
// CA and serving certificate into a Secret, renews them well before expiry,
// writes them where the webhook server's certwatcher reloads them without a
// restart, and puts the CA bundle into the webhook configurations. It runs on
// every replica (each serves webhooks), not only the leader.
type SelfManagedReconciler struct {
	Client client.Client
	Server
	// Namespace and SecretName locate the certificate Secret.
	Namespace, SecretName string
	// Lifetimes of issued certificates; certs.DefaultLifetimes when zero.
	Lifetimes certs.Lifetimes

	mu       sync.RWMutex
	caBundle []byte
}

// Endpoint returns how the API server reaches the webhook server, with the current CA bundle.
func (r *SelfManagedReconciler) Endpoint(context.Context) (webhookconfig.Endpoint, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.caBundle) == 0 {
		return webhookconfig.Endpoint{}, fmt.Errorf("the webhook CA is not issued yet")
	}
	return r.endpointWith(bytes.Clone(r.caBundle)), nil
}

// RBAC: the certificate Secret is read (watched in the operator's namespace
// only, see main.go's cache options), created and updated with optimistic
// concurrency; the only Secret access the operator has, in a Role of its own
// namespace (kustomize turns "system" into it, as for every object in config/).
// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=get;list;watch;create;update
// The validator's ValidatingWebhookConfiguration is applied with the CA
// bundle, and both webhook configurations are read to know where the CA is
// trusted (the rules are controllers/meshinstall/controller.go's).
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,verbs=get;list;watch

// Bootstrap makes sure a valid certificate is on disk before the webhook
// server starts (its certwatcher needs the files to exist). It uses a client
// that works before the manager's cache has started.
func (r *SelfManagedReconciler) Bootstrap(ctx context.Context, c client.Client) error {
	// Replicas starting together race to create the Secret; the loser reads the winner's.
	raced := func(err error) bool { return apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) }
	return retry.OnError(retry.DefaultRetry, raced, func() error {
		_, _, err := r.ensure(ctx, c)
		return err
	})
}

// Reconcile renews what is due and publishes the result.
func (r *SelfManagedReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	bundle, waiting, err := r.ensure(ctx, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}
	validator := webhookconfig.ValidatorConfiguration(r.endpointWith(bundle.CACert), map[string]string{render.LabelManagedBy: render.ManagedBy})
	live := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	var current client.Object = live
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(validator), live); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		current = nil
	}
	if _, err := apply.IfChanged(ctx, r.Client, validator, current); err != nil {
		return ctrl.Result{}, err
	}
	if waiting {
		// A new CA waits to be trusted everywhere before it signs what is served.
		return ctrl.Result{RequeueAfter: caPropagationPoll}, nil
	}
	now := time.Now()
	return ctrl.Result{RequeueAfter: certs.NextCheck(bundle, now).Sub(now) + time.Second}, nil
}

// caPropagationPoll is how often a pending serving certificate looks for its
// CA in the webhook configurations (their changes also trigger a look).
const caPropagationPoll = 5 * time.Second

func (r *SelfManagedReconciler) endpointWith(ca []byte) webhookconfig.Endpoint {
	return webhookconfig.Endpoint{Service: r.Service, URL: r.URL, CABundle: ca}
}

// ensure reads the Secret, renews what is due (storing it with optimistic
// concurrency, so replicas agree on one certificate), writes the files and
// records the CA bundle. A CA rotation takes two steps: the new CA is staged
// beside the current one, which keeps signing what is served; it is
// promoted, and signs a serving certificate, only once every webhook
// configuration meshkeeper manages trusts it. waiting reports that the
// second step is pending.
func (r *SelfManagedReconciler) ensure(ctx context.Context, c client.Client) (bundle *certs.Bundle, waiting bool, err error) {
	secret := &corev1.Secret{}
	err = c.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: r.SecretName}, secret)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, false, fmt.Errorf("reading the webhook certificate secret: %w", err)
	}
	bundle = certs.FromData(secret.Data)
	now := time.Now()
	life := r.Lifetimes
	if life.CA == 0 || life.Serving == 0 {
		life = certs.DefaultLifetimes
	}
	changed := false
	log := ctrl.LoggerFrom(ctx)

	if next := certs.NextCA(bundle); next != nil {
		trusted, err := trustedEverywhere(ctx, c, next)
		if err != nil {
			return nil, false, err
		}
		if trusted {
			log.Info("promoting the webhook CA: every webhook configuration trusts it")
			if bundle, err = certs.PromoteCA(bundle, now); err != nil {
				return nil, false, err
			}
			changed = true
		} else {
			waiting = true
		}
	}
	renewal := certs.Check(bundle, r.Hosts, now)
	if renewal.CA && certs.Serves(bundle, now) {
		// Step one of a rotation: stage the new CA, keep serving.
		log.Info("staging a new webhook CA", "reason", renewal.Reason)
		if bundle, err = certs.StageCA(bundle, now, life); err != nil {
			return nil, false, err
		}
		renewal.CA, changed, waiting = false, true, true
	}
	if renewal.Serving && !renewal.CA && certs.Serves(bundle, now) {
		// A serving certificate is issued by a CA every configuration trusts.
		trusted, err := trustedEverywhere(ctx, c, certs.CurrentCA(bundle))
		if err != nil {
			return nil, false, err
		}
		if !trusted {
			renewal.Serving, waiting = false, true
			log.Info("waiting for every webhook configuration to trust the current CA before serving a certificate it signed", "reason", renewal.Reason)
		}
	}
	if renewal.CA || renewal.Serving {
		log.Info("issuing webhook certificate", "reason", renewal.Reason, "newCA", renewal.CA)
		if bundle, err = certs.Renew(bundle, renewal, r.Hosts, now, life); err != nil {
			return nil, false, err
		}
		changed = true
	}
	if changed {
		if !exists {
			secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.SecretName}}
		}
		secret.Labels = map[string]string{render.LabelManagedBy: render.ManagedBy}
		secret.Type = corev1.SecretTypeOpaque
		secret.Data = bundle.Data()
		if exists {
			err = c.Update(ctx, secret) // fails on conflict: another replica renewed first
		} else {
			err = c.Create(ctx, secret)
		}
		if err != nil {
			return nil, false, fmt.Errorf("storing the webhook certificate: %w", err)
		}
	}
	if err := writeCertFiles(r.CertDir, map[string][]byte{certs.KeyKey: bundle.Key, certs.CertKey: bundle.Cert, certs.CACertKey: bundle.CACert}); err != nil {
		return nil, false, err
	}
	recordServed(bundle.Cert, bundle.CACert)
	r.mu.Lock()
	bundleChanged := !bytes.Equal(r.caBundle, bundle.CACert)
	r.caBundle = bytes.Clone(bundle.CACert)
	r.mu.Unlock()
	if bundleChanged && r.OnCABundleChange != nil {
		r.OnCABundleChange()
	}
	return bundle, waiting, nil
}

// trustedEverywhere reports whether every webhook configuration meshkeeper
// manages that exists (the validator and the injector, each entry) holds the CA.
func trustedEverywhere(ctx context.Context, c client.Reader, caPEM []byte) (bool, error) {
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	for _, o := range []client.Object{vwc, mwc} {
		name := webhookconfig.ValidatorName
		if o == client.Object(mwc) {
			name = webhookconfig.InjectorName
		}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, o); client.IgnoreNotFound(err) != nil {
			return false, err
		}
	}
	var bundles [][]byte
	for _, w := range vwc.Webhooks {
		bundles = append(bundles, w.ClientConfig.CABundle)
	}
	for _, w := range mwc.Webhooks {
		bundles = append(bundles, w.ClientConfig.CABundle)
	}
	for _, b := range bundles {
		if !certs.Trusts(b, caPEM) {
			return false, nil
		}
	}
	return true, nil
}

// writeCertFiles replaces the webhook server's certificate files in dir
// atomically when they differ. The key is written first: the certwatcher
// reloads on the certificate's change.
func writeCertFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, name := range []string{certs.KeyKey, certs.CertKey, certs.CACertKey} {
		data, ok := files[name]
		if !ok {
			continue
		}
		path := filepath.Join(dir, name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			continue
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return nil
}

// SetupWithManager runs the reconciler on every replica: at start, when the
// Secret or a webhook configuration changes, and when renewal is due.
func (r *SelfManagedReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	return setup(mgr, "webhookcerts", types.NamespacedName{Namespace: r.Namespace, Name: r.SecretName}, r)
}
