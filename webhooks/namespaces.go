package webhooks

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CachedNamespaces is the injector's NamespaceSource in the operator: the
// namespaces of the manager's cache, which holds them whole (the
// MeshInstall controller watches them).
type CachedNamespaces struct {
	Reader client.Reader
}

// namespaceReadTimeout bounds a read of the cache, which waits while the
// namespaces informer has not synced: the pod is then not checked rather
// than held.
const namespaceReadTimeout = time.Second

// NamespaceLabels returns the cached namespace's labels, nil when it is
// not (yet) in the cache.
func (c CachedNamespaces) NamespaceLabels(name string) map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), namespaceReadTimeout)
	defer cancel()
	ns := &corev1.Namespace{}
	if err := c.Reader.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		return nil
	}
	return ns.Labels
}
