package apply

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func TestContains(t *testing.T) {
	cases := []struct {
		name       string
		have, want map[string]any
		contains   bool
	}{
		{name: "equal", have: map[string]any{"a": "x"}, want: map[string]any{"a": "x"}, contains: true},
		{name: "have holds more (defaults, others' labels)", have: map[string]any{"a": "x", "b": "y"}, want: map[string]any{"a": "x"}, contains: true},
		{name: "a field changed", have: map[string]any{"a": "y"}, want: map[string]any{"a": "x"}},
		{name: "a field removed", have: map[string]any{}, want: map[string]any{"a": "x"}},
		{name: "nested maps by key", have: map[string]any{"m": map[string]any{"a": "x", "b": "y"}}, want: map[string]any{"m": map[string]any{"a": "x"}}, contains: true},
		{name: "an empty map matches a missing one", have: map[string]any{}, want: map[string]any{"m": map[string]any{}}, contains: true},
		{name: "an empty map does not match a scalar", have: map[string]any{"m": "x"}, want: map[string]any{"m": map[string]any{}}},
		{name: "lists item by item", have: map[string]any{"l": []any{"a", "b"}}, want: map[string]any{"l": []any{"a", "b"}}, contains: true},
		{name: "an item added to a list is drift", have: map[string]any{"l": []any{"a", "b", "c"}}, want: map[string]any{"l": []any{"a", "b"}}},
		{name: "list items in another order", have: map[string]any{"l": []any{"b", "a"}}, want: map[string]any{"l": []any{"a", "b"}}},
		{name: "numbers by value across types", have: map[string]any{"n": float64(3)}, want: map[string]any{"n": int64(3)}, contains: true},
		{name: "numbers that differ", have: map[string]any{"n": int32(2)}, want: map[string]any{"n": int64(3)}},
		{name: "a number against a string", have: map[string]any{"n": "3"}, want: map[string]any{"n": int64(3)}},
		{name: "the type is not compared (cached typed objects carry none)", have: map[string]any{}, want: map[string]any{"apiVersion": "v1", "kind": "ConfigMap"}, contains: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := contains(tc.have, tc.want); got != tc.contains {
				t.Errorf("contains(%v, %v) = %t, want %t", tc.have, tc.want, got, tc.contains)
			}
		})
	}
}

// recorder is a writer that records what is applied, and fails on any
// other write: IfChanged only applies.
type recorder struct {
	client.Writer
	applied []runtime.ApplyConfiguration
}

func (r *recorder) Apply(_ context.Context, obj runtime.ApplyConfiguration, _ ...client.ApplyOption) error {
	r.applied = append(r.applied, obj)
	return nil
}

func TestIfChanged(t *testing.T) {
	configMap := func(data map[string]string) *corev1.ConfigMap {
		return &corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istio"},
			Data:       data,
		}
	}
	want := configMap(map[string]string{"mesh": "a"})
	// applied is what the cluster holds after want was applied: its
	// content, the applied-hash annotation and what the API server adds.
	applied := func(mutate func(*corev1.ConfigMap)) *corev1.ConfigMap {
		u, err := toUnstructured(want)
		if err != nil {
			t.Fatal(err)
		}
		live := want.DeepCopy()
		live.Annotations = map[string]string{AnnotationAppliedHash: SpecHash(u.Object)}
		live.ResourceVersion, live.UID = "7", "uid"
		if mutate != nil {
			mutate(live)
		}
		return live
	}
	cases := []struct {
		name  string
		live  client.Object
		write bool
	}{
		{name: "missing", live: nil, write: true},
		{name: "unchanged", live: applied(nil)},
		{name: "someone else's label is kept", live: applied(func(cm *corev1.ConfigMap) { cm.Labels = map[string]string{"team": "x"} })},
		{name: "drift: a field edited by someone else", live: applied(func(cm *corev1.ConfigMap) { cm.Data["mesh"] = "b" }), write: true},
		{name: "drift: a field removed by someone else", live: applied(func(cm *corev1.ConfigMap) { delete(cm.Data, "mesh") }), write: true},
		{name: "applied by another rendering", live: applied(func(cm *corev1.ConfigMap) { cm.Annotations[AnnotationAppliedHash] = "old" }), write: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := &recorder{}
			wrote, err := IfChanged(context.Background(), w, want, tc.live)
			if err != nil {
				t.Fatal(err)
			}
			if wrote != tc.write || len(w.applied) != map[bool]int{false: 0, true: 1}[tc.write] {
				t.Errorf("wrote %t (%d applies), want %t", wrote, len(w.applied), tc.write)
			}
		})
	}
}

func TestIfChangedNamesTheObjectItCouldNotApply(t *testing.T) {
	w := &failing{err: errors.New("conflict")}
	obj := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istio"}}
	_, err := IfChanged(context.Background(), w, obj, nil)
	if err == nil || err.Error() != "applying ConfigMap istio-system/istio: conflict" {
		t.Errorf("got %v, want the object named", err)
	}
	if _, err := IfChanged(context.Background(), w, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "untyped"}}, nil); err == nil {
		t.Error("an object without apiVersion/kind was applied")
	}
}

type failing struct {
	client.Writer
	err error
}

func (f *failing) Apply(context.Context, runtime.ApplyConfiguration, ...client.ApplyOption) error {
	return f.err
}
