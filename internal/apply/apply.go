// Package apply writes what a reconciler decided: server-side apply under
// meshkeeper's one field owner, skipped when the cluster already holds it,
// and deletes. It takes a client.Writer: nothing here reads the cluster or
// decides what to write.
package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FieldOwner is the one field manager meshkeeper applies with.
const FieldOwner = client.FieldOwner("meshkeeper")

// Key identifies an object across kinds.
type Key struct {
	GVK       schema.GroupVersionKind
	Namespace string
	Name      string
}

// KeyOf is obj's Key; obj must carry its type (apiVersion and kind).
func KeyOf(obj client.Object) Key {
	return Key{GVK: obj.GetObjectKind().GroupVersionKind(), Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

func (k Key) String() string {
	if k.Namespace == "" {
		return k.GVK.Kind + " " + k.Name
	}
	return k.GVK.Kind + " " + k.Namespace + "/" + k.Name
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
// CRDs, which carry the reconciler's spec-hash annotation): the hash of the configuration it
// applied, so that a pass whose rendering did not change writes nothing.
const AnnotationAppliedHash = "mesh.meshkeeper.dev/applied-hash"

// IfChanged applies obj unless live (the cached object, nil when
// missing) already carries exactly what meshkeeper would apply: the same
// applied-hash annotation, and every field of the configuration at the same
// value. A changed rendering changes the hash; drift (a field edited or
// removed by someone else) fails the comparison; both are applied. It
// reports whether it wrote.
func IfChanged(ctx context.Context, c client.Writer, obj, live client.Object) (bool, error) {
	u, err := toUnstructured(obj)
	if err != nil {
		return false, err
	}
	hash := SpecHash(u.Object)
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
		return false, fmt.Errorf("applying %s: %w", KeyOf(obj), err)
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

// DeleteIfExists deletes obj, treating "already gone" as success.
func DeleteIfExists(ctx context.Context, c client.Writer, obj client.Object) error {
	if err := client.IgnoreNotFound(c.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground))); err != nil {
		return fmt.Errorf("deleting %s: %w", KeyOf(obj), err)
	}
	return nil
}

// SpecHash is a short hash of v's JSON: what the applied-hash annotation
// (and the reconciler's record of an Istio CRD's spec) compares.
func SpecHash(v any) string {
	raw, _ := json.Marshal(v)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}
