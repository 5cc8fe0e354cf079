package controllers

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
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/meshkeeper/meshkeeper/internal/certs"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// WebhookCertReconciler keeps the webhook server's certificate: it issues a
// CA and serving certificate into a Secret, renews them well before expiry,
// writes them where the webhook server's certwatcher reloads them without a
// restart, and puts the CA bundle into the webhook configurations. It runs on
// every replica (each serves webhooks), not only the leader.
type WebhookCertReconciler struct {
	Client client.Client
	// Namespace and SecretName locate the certificate Secret.
	Namespace, SecretName string
	// CertDir is the webhook server's certificate directory.
	CertDir string
	// Hosts the serving certificate must cover.
	Hosts certs.Hosts
	// Service reaches the webhook in the cluster; nil when URL is used.
	Service *admissionregistrationv1.ServiceReference
	// URL is the webhook server's base URL when the operator runs outside the cluster.
	URL string
	// OnCABundleChange is called after the CA bundle changed (the injector configuration must follow).
	OnCABundleChange func()
	// Lifetimes of issued certificates; certs.DefaultLifetimes when zero.
	Lifetimes certs.Lifetimes

	mu       sync.RWMutex
	caBundle []byte
}

// Endpoint returns how the API server reaches the webhook server, with the current CA bundle.
func (r *WebhookCertReconciler) Endpoint(context.Context) (webhookconfig.Endpoint, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.caBundle) == 0 {
		return webhookconfig.Endpoint{}, fmt.Errorf("the webhook CA is not issued yet")
	}
	return r.endpointWith(bytes.Clone(r.caBundle)), nil
}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch

// Bootstrap makes sure a valid certificate is on disk before the webhook
// server starts (its certwatcher needs the files to exist). It uses a client
// that works before the manager's cache has started.
func (r *WebhookCertReconciler) Bootstrap(ctx context.Context, c client.Client) error {
	// Replicas starting together race to create the Secret; the loser reads the winner's.
	raced := func(err error) bool { return apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) }
	return retry.OnError(retry.DefaultRetry, raced, func() error {
		_, err := r.ensure(ctx, c)
		return err
	})
}

// Reconcile renews what is due and publishes the result.
func (r *WebhookCertReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	bundle, err := r.ensure(ctx, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := apply(ctx, r.Client, webhookconfig.ValidatorConfiguration(r.endpointWith(bundle.CACert),
		map[string]string{LabelManagedBy: ManagedByValue})); err != nil {
		return ctrl.Result{}, err
	}
	now := time.Now()
	return ctrl.Result{RequeueAfter: certs.NextCheck(bundle, now).Sub(now) + time.Second}, nil
}

func (r *WebhookCertReconciler) endpointWith(ca []byte) webhookconfig.Endpoint {
	return webhookconfig.Endpoint{Service: r.Service, URL: r.URL, CABundle: ca}
}

// ensure reads the Secret, renews what is due (storing it with optimistic
// concurrency, so replicas agree on one certificate), writes the files and
// records the CA bundle.
func (r *WebhookCertReconciler) ensure(ctx context.Context, c client.Client) (*certs.Bundle, error) {
	secret := &corev1.Secret{}
	err := c.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: r.SecretName}, secret)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading the webhook certificate secret: %w", err)
	}
	bundle := certs.FromData(secret.Data)
	now := time.Now()
	if renewal := certs.Check(bundle, r.Hosts, now); renewal.CA || renewal.Serving {
		ctrl.LoggerFrom(ctx).Info("issuing webhook certificate", "reason", renewal.Reason, "newCA", renewal.CA)
		life := r.Lifetimes
		if life.CA == 0 || life.Serving == 0 {
			life = certs.DefaultLifetimes
		}
		if bundle, err = certs.Renew(bundle, renewal, r.Hosts, now, life); err != nil {
			return nil, err
		}
		if !exists {
			secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.SecretName}}
		}
		secret.Labels = map[string]string{LabelManagedBy: ManagedByValue}
		secret.Type = corev1.SecretTypeOpaque
		secret.Data = bundle.Data()
		if exists {
			err = c.Update(ctx, secret) // fails on conflict: another replica renewed first
		} else {
			err = c.Create(ctx, secret)
		}
		if err != nil {
			return nil, fmt.Errorf("storing the webhook certificate: %w", err)
		}
	}
	if err := r.writeFiles(bundle); err != nil {
		return nil, err
	}
	r.mu.Lock()
	changed := !bytes.Equal(r.caBundle, bundle.CACert)
	r.caBundle = bytes.Clone(bundle.CACert)
	r.mu.Unlock()
	if changed && r.OnCABundleChange != nil {
		r.OnCABundleChange()
	}
	return bundle, nil
}

// writeFiles replaces the certificate files atomically when they differ.
func (r *WebhookCertReconciler) writeFiles(b *certs.Bundle) error {
	if err := os.MkdirAll(r.CertDir, 0o700); err != nil {
		return err
	}
	for name, data := range map[string][]byte{"tls.key": b.Key, "tls.crt": b.Cert, "ca.crt": b.CACert} {
		path := filepath.Join(r.CertDir, name)
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
// Secret or the validator configuration changes, and when renewal is due.
func (r *WebhookCertReconciler) SetupWithManager(mgr ctrl.Manager) error {
	key := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: r.Namespace, Name: r.SecretName}}
	toKey := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request { return []reconcile.Request{key} })
	kick := source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		q.Add(key)
		return nil
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("webhookcerts").
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Watches(&corev1.Secret{}, toKey, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetNamespace() == r.Namespace && o.GetName() == r.SecretName
		}))).
		Watches(&admissionregistrationv1.ValidatingWebhookConfiguration{}, toKey, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetName() == webhookconfig.ValidatorName
		}))).
		WatchesRawSource(kick).
		Complete(r)
}
