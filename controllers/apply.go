package controllers

import (
	"context"
	"fmt"
	"math"
	"reflect"

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

// toUnstructured turns a typed or unstructured object into what is
// applied: only the fields the renderer set, with no status,
// creationTimestamp, resourceVersion or managedFields.
func toUnstructured(obj client.Object) (*unstructured.Unstructured, error) {
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
	return u, nil
}

// AnnotationAppliedHash is on every object meshkeeper applies (but Istio's
// CRDs, which carry AnnotationSpecHash): the hash of the configuration it
// applied, so that a pass whose rendering did not change writes nothing.
const AnnotationAppliedHash = "mesh.meshkeeper.dev/applied-hash"

// applyIfChanged applies obj unless live (the cached object, nil when
// missing) already carries exactly what meshkeeper would apply: the same
// applied-hash annotation, and every field of the configuration at the same
// value. A changed rendering changes the hash; drift (a field edited or
// removed by someone else) fails the comparison; both are applied. It
// reports whether it wrote.
func applyIfChanged(ctx context.Context, c client.Client, obj, live client.Object) (bool, error) {
	u, err := toUnstructured(obj)
	if err != nil {
		return false, err
	}
	hash := specHash(u.Object)
	annotations := u.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[AnnotationAppliedHash] = hash
	u.SetAnnotations(annotations)
	if live != nil && live.GetAnnotations()[AnnotationAppliedHash] == hash {
		current, err := liveContent(live)
		if err != nil {
			return false, err
		}
		if contains(current, u.Object) {
			return false, nil
		}
	}
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), FieldOwner, client.ForceOwnership); err != nil {
		return false, fmt.Errorf("applying %s: %w", keyOf(obj), err)
	}
	return true, nil
}

// liveContent is a cached object as a map, for contains.
func liveContent(live client.Object) (map[string]any, error) {
	if u, ok := live.(*unstructured.Unstructured); ok {
		return u.Object, nil
	}
	return runtime.DefaultUnstructuredConverter.ToUnstructured(live)
}

// contains reports whether every field of want is in have with the same
// value: maps by key (have may hold more: defaults, others' labels), lists
// item by item and of the same length, scalars by value; an empty map in
// want sets nothing and matches a missing one. The type of an object is not
// compared (cached typed objects carry none).
func contains(have, want map[string]any) bool {
	for k, w := range want {
		if k == "apiVersion" || k == "kind" {
			continue
		}
		if !containsValue(have[k], w) {
			return false
		}
	}
	return true
}

func containsValue(have, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		// An empty map sets nothing: the object may have none.
		h, ok := have.(map[string]any)
		if !ok {
			return len(w) == 0 && have == nil
		}
		for k, wv := range w {
			if !containsValue(h[k], wv) {
				return false
			}
		}
		return true
	case []any:
		// Lists must hold the same items: an item someone added to an
		// atomic list (a ClusterRole's rules, a selector's expressions)
		// would survive a merge, so it is drift, put back by applying.
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return false
		}
		for i := range w {
			if !containsValue(h[i], w[i]) {
				return false
			}
		}
		return true
	case int64, int32, int, float64:
		return toFloat(have) == toFloat(want)
	default:
		return reflect.DeepEqual(have, want)
	}
}

func toFloat(v any) float64 {
	switch n := v.(type) {
	case int64:
		return float64(n)
	case int32:
		return float64(n)
	case int:
		return float64(n)
	case float64:
		return n
	}
	return math.NaN()
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
// exists says whether the cache holds it already.
func (r *MeshInstallReconciler) createFailOpen(ctx context.Context, obj client.Object, exists bool) error {
	vwc, ok := obj.(*admissionregistrationv1.ValidatingWebhookConfiguration)
	if !ok || exists {
		return nil
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
