// Package webhookcert keeps the certificate meshkeeper's webhook server
// serves and says how the API server reaches it. Two providers, chosen by
// --webhook-cert-provider: SelfManagedReconciler (the operator's own CA, in
// a Secret) and CertManagerReconciler (a cert-manager Certificate, its CA
// injected by cainjector). Each runs on every replica, since each serves
// webhooks; each applies the MeshInstall validator's configuration, and the
// MeshInstall reconciler reads Endpoint to configure the injector.
package webhookcert

import (
	"context"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
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

// Provider provides the webhook server's certificate and tells the
// MeshInstall reconciler how the API server reaches the webhooks.
type Provider interface {
	// Bootstrap puts a certificate on disk before the webhook server starts.
	Bootstrap(ctx context.Context, c client.Client) error
	// Endpoint is where the API server calls the webhooks, and the CA it
	// trusts them with.
	Endpoint(ctx context.Context) (webhookconfig.Endpoint, error)
	SetupWithManager(mgr ctrl.Manager) error
}

var (
	_ Provider = &SelfManagedReconciler{}
	_ Provider = &CertManagerReconciler{}
)

// Server is where the webhook server is, as both providers need it.
type Server struct {
	// CertDir is the webhook server's certificate directory, which its
	// certwatcher reloads.
	CertDir string
	// Hosts the serving certificate must cover.
	Hosts certs.Hosts
	// Service reaches the webhook in the cluster; nil when URL is used.
	Service *admissionregistrationv1.ServiceReference
	// URL is the webhook server's base URL when the operator runs outside the cluster.
	URL string
	// OnCABundleChange is called after the CA the API server must trust
	// changed (the injector configuration must follow).
	OnCABundleChange func()
}

// setup runs r, a webhook certificate reconciler, as controller name on
// every replica (each serves webhooks), not only the leader: at start, and
// whenever the certificate's Secret or one of meshkeeper's webhook
// configurations changes (cainjector filled a bundle; a CA rotation's
// second step waits for the injector to carry the new CA). Every request
// is the one key, the Secret's.
func setup(mgr ctrl.Manager, name string, secret types.NamespacedName, r reconcile.Reconciler) error {
	key := reconcile.Request{NamespacedName: secret}
	toKey := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request { return []reconcile.Request{key} })
	kick := source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		q.Add(key)
		return nil
	})
	named := func(namespace, name string) builder.Predicates {
		return builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetNamespace() == namespace && o.GetName() == name
		}))
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(name).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Watches(&corev1.Secret{}, toKey, named(secret.Namespace, secret.Name)).
		Watches(&admissionregistrationv1.ValidatingWebhookConfiguration{}, toKey, named("", webhookconfig.ValidatorName)).
		Watches(&admissionregistrationv1.MutatingWebhookConfiguration{}, toKey, named("", webhookconfig.InjectorName)).
		WatchesRawSource(kick).
		Complete(r)
}
