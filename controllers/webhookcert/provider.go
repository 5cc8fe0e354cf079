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

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
