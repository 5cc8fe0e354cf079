package meshinstall

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/apply"
)

// createFailOpen creates a missing Istio config validator with failurePolicy
// Ignore, as Istio's chart does on a fresh install: Istio config is not
// refused while istiod is not serving yet. istiod itself switches it to Fail
// (and sets caBundle) once it is ready. The renderer leaves both fields out,
// so the server-side apply that follows never takes them back from istiod.
// exists says whether the cache holds it already.
func (r *Reconciler) createFailOpen(ctx context.Context, obj client.Object, exists bool) error {
	vwc, ok := obj.(*admissionregistrationv1.ValidatingWebhookConfiguration)
	if !ok || exists {
		return nil
	}
	fresh := vwc.DeepCopy()
	ignore := admissionregistrationv1.Ignore
	for i := range fresh.Webhooks {
		fresh.Webhooks[i].FailurePolicy = &ignore
	}
	if err := r.Create(ctx, fresh, apply.FieldOwner); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating %s: %w", apply.KeyOf(vwc), err)
	}
	return nil
}
