package controllers

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FieldOwner is the one field manager meshkeeper applies with.
const FieldOwner = client.FieldOwner("meshkeeper")

// objectKey identifies an object across kinds.
type objectKey struct {
	gvk       schema.GroupVersionKind
	namespace string
	name      string
}

func keyOf(obj client.Object) objectKey {
	return objectKey{gvk: obj.GetObjectKind().GroupVersionKind(), namespace: obj.GetNamespace(), name: obj.GetName()}
}

func (k objectKey) String() string {
	if k.namespace == "" {
		return k.gvk.Kind + " " + k.name
	}
	return k.gvk.Kind + " " + k.namespace + "/" + k.name
}

// toApplyConfiguration turns a typed or unstructured object into an apply
// configuration holding only the fields the renderer set: no status, no
// creationTimestamp, no managedFields.
func toApplyConfiguration(obj client.Object) (runtime.ApplyConfiguration, error) {
	var u *unstructured.Unstructured
	if uo, ok := obj.(*unstructured.Unstructured); ok {
		u = uo.DeepCopy()
	} else {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return nil, err
		}
		u = &unstructured.Unstructured{Object: m}
	}
	if u.GetAPIVersion() == "" || u.GetKind() == "" {
		return nil, fmt.Errorf("%s %s has no apiVersion/kind", obj.GetNamespace(), obj.GetName())
	}
	delete(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
	unstructured.RemoveNestedField(u.Object, "metadata", "resourceVersion")
	unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
	return client.ApplyConfigurationFromUnstructured(u), nil
}

// apply server-side applies obj under meshkeeper's field owner, taking
// ownership of conflicting fields (drift is corrected, not negotiated).
func apply(ctx context.Context, c client.Client, obj client.Object) error {
	ac, err := toApplyConfiguration(obj)
	if err != nil {
		return err
	}
	if err := c.Apply(ctx, ac, FieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("applying %s: %w", keyOf(obj), err)
	}
	return nil
}

// deleteIfExists deletes obj, treating "already gone" as success.
func deleteIfExists(ctx context.Context, c client.Client, obj client.Object) error {
	if err := client.IgnoreNotFound(c.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground))); err != nil {
		return fmt.Errorf("deleting %s: %w", keyOf(obj), err)
	}
	return nil
}

// createFailOpen creates a missing Istio config validator with failurePolicy
// Ignore, as Istio's chart does on a fresh install: Istio config is not
// refused while istiod is not serving yet. istiod itself switches it to Fail
// (and sets caBundle) once it is ready. The renderer leaves both fields out,
// so the server-side apply that follows never takes them back from istiod.
func (r *MeshInstallReconciler) createFailOpen(ctx context.Context, obj client.Object) error {
	vwc, ok := obj.(*admissionregistrationv1.ValidatingWebhookConfiguration)
	if !ok {
		return nil
	}
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(vwc), &admissionregistrationv1.ValidatingWebhookConfiguration{})
	if !apierrors.IsNotFound(err) {
		return err
	}
	fresh := vwc.DeepCopy()
	ignore := admissionregistrationv1.Ignore
	for i := range fresh.Webhooks {
		fresh.Webhooks[i].FailurePolicy = &ignore
	}
	if err := r.Create(ctx, fresh, FieldOwner); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating %s: %w", keyOf(vwc), err)
	}
	return nil
}
