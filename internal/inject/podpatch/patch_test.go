package podpatch

import (
	"encoding/json"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/randfill"
)

// applyPatch applies a JSON patch to the pod's JSON and decodes the result.
func applyPatch(t *testing.T, doc []byte, patch []byte) *corev1.Pod {
	t.Helper()
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("invalid patch: %v\n%s", err, patch)
	}
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("patch does not apply: %v\n%s", err, patch)
	}
	pod := &corev1.Pod{}
	if err := json.Unmarshal(out, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCreatePatch(t *testing.T) {
	probe := func(port int32) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(port)}}, PeriodSeconds: 5}
	}
	rewritten := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/app-health/a/readyz", Port: intstr.FromInt32(15020)}}, PeriodSeconds: 5}
	cases := []struct {
		name    string
		a, b    corev1.Pod
		wantOps []string
	}{
		{
			name: "unchanged pod, empty patch",
			a:    corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}}},
			b:    corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}}},
		},
		{
			name: "labels added to a pod without labels, annotation keys escaped",
			a:    corev1.Pod{},
			b:    corev1.Pod{},
			wantOps: []string{
				`{"op":"add","path":"/metadata/labels","value":{"x":"1"}}`,
				`{"op":"add","path":"/metadata/annotations/a~1b~0c","value":"v"}`,
				`{"op":"remove","path":"/metadata/annotations/gone"}`,
			},
		},
		{
			name: "containers inserted around kept ones; probe handler swapped in place",
			a:    corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", ReadinessProbe: probe(80)}, {Name: "b"}}}},
			b:    corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x"}, {Name: "a", ReadinessProbe: rewritten}, {Name: "b"}, {Name: "y"}}}},
			wantOps: []string{
				`{"op":"add","path":"/spec/containers/0","value":{"name":"x","resources":{}}}`,
				`{"op":"add","path":"/spec/containers/1/readinessProbe/httpGet","value":{"path":"/app-health/a/readyz","port":15020}}`,
				`{"op":"remove","path":"/spec/containers/1/readinessProbe/tcpSocket"}`,
				`{"op":"add","path":"/spec/containers/3","value":{"name":"y","resources":{}}}`,
			},
		},
		{
			name: "a container that moved list is removed and re-added",
			a:    corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}, {Name: "istio-proxy", Image: "auto"}}}},
			b: corev1.Pod{Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "istio-proxy", Image: "proxyv2"}},
				Containers:     []corev1.Container{{Name: "app"}},
			}},
			wantOps: []string{
				`{"op":"add","path":"/spec/initContainers","value":[{"name":"istio-proxy","image":"proxyv2","resources":{}}]}`,
				`{"op":"remove","path":"/spec/containers/1"}`,
			},
		},
	}
	cases[1].a.Annotations = map[string]string{"gone": "1", "kept": "2"}
	cases[1].b.Labels = map[string]string{"x": "1"}
	cases[1].b.Annotations = map[string]string{"a/b~c": "v", "kept": "2"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			patch, err := CreatePatch(&tc.a, &tc.b)
			if err != nil {
				t.Fatal(err)
			}
			want := "[" + strings.Join(tc.wantOps, ",") + "]"
			if string(patch) != want {
				t.Errorf("patch:\n got %s\nwant %s", patch, want)
			}
			got := applyPatch(t, mustJSON(t, &tc.a), patch)
			if g, w := mustJSON(t, got), mustJSON(t, &tc.b); string(g) != string(w) {
				t.Errorf("patched pod:\n got %s\nwant %s", g, w)
			}
		})
	}
}

// TestEqualBesidesProbes checks the fast comparison against reflect.DeepEqual
// on random containers, and that it knows every field of corev1.Container.
func TestEqualBesidesProbes(t *testing.T) {
	if n := reflect.TypeOf(corev1.Container{}).NumField(); n != 25 {
		t.Fatalf("corev1.Container has %d fields, equalBesidesProbes compares 25: update it", n)
	}
	f := randfill.New().RandSource(rand.NewSource(2)).NilChance(0.3).NumElements(0, 2).MaxDepth(6).Funcs(
		func(q *resource.Quantity, c randfill.Continue) {
			*q = *resource.NewQuantity(int64(c.Uint64()%100), resource.DecimalSI)
		},
	)
	withoutProbes := func(c corev1.Container) corev1.Container {
		c.ReadinessProbe, c.LivenessProbe, c.StartupProbe, c.Lifecycle = nil, nil, nil, nil
		return c
	}
	fields := reflect.TypeOf(corev1.Container{}).NumField()
	for i := 0; i < 100*(fields+1); i++ {
		var a corev1.Container
		f.Fill(&a)
		b := *a.DeepCopy()
		// Refill one field of b in turn (every field is reached), or nothing.
		if k := i % (fields + 1); k < fields {
			f.Fill(reflect.ValueOf(&b).Elem().Field(k).Addr().Interface())
		}
		wa, wb := withoutProbes(a), withoutProbes(b)
		want := reflect.DeepEqual(&wa, &wb)
		if got := equalBesidesProbes(&a, &b); got != want {
			t.Fatalf("case %d: equalBesidesProbes = %v, reflect.DeepEqual = %v", i, got, want)
		}
	}
}
