package podpatch

import (
	"bytes"
	"encoding/json"
	"maps"
	"math/rand"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/randfill"
	"sigs.k8s.io/yaml"
)

// TestEncodersMatchEncodingJSON fills containers, volumes and the rest with
// random values (every field, random Unicode) and checks that the fast
// encoders write exactly what encoding/json writes.
func TestEncodersMatchEncodingJSON(t *testing.T) {
	f := randfill.New().RandSource(rand.NewSource(1)).NilChance(0.3).NumElements(0, 3).MaxDepth(12).Funcs(
		func(q *resource.Quantity, c randfill.Continue) {
			switch c.Uint64() % 3 {
			case 0:
				*q = *resource.NewMilliQuantity(int64(c.Uint64()%1_000_000), resource.DecimalSI)
			case 1:
				*q = resource.MustParse([]string{"1", "+1", "100m", "4000m", "1.5Gi", "128Mi", "0.5", "1e3", "2k"}[c.Uint64()%9])
			default:
				*q = *resource.NewQuantity(int64(c.Uint64()%(1<<40)), resource.BinarySI)
			}
		},
		func(v *metav1.FieldsV1, c randfill.Continue) { v.Raw = []byte(`{"f:x":{}}`) },
		func(v *intstr.IntOrString, c randfill.Continue) {
			if c.Bool() {
				*v = intstr.FromInt32(int32(c.Uint64() % 65536))
			} else {
				*v = intstr.FromString(c.String(8))
			}
		},
	)
	check := func(name string, v any, enc func([]byte) ([]byte, error)) {
		t.Helper()
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: encoding/json: %v", name, err)
		}
		got, err := enc(nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s differs from encoding/json:\n got %s\nwant %s", name, got, want)
		}
	}
	for i := 0; i < 500; i++ {
		var c corev1.Container
		f.Fill(&c)
		check("container", &c, func(b []byte) ([]byte, error) { return appendContainer(b, &c) })
		var v corev1.Volume
		f.Fill(&v)
		check("volume", &v, func(b []byte) ([]byte, error) { return appendVolume(b, &v) })
		var p corev1.Probe
		f.Fill(&p)
		check("probe", &p, func(b []byte) ([]byte, error) { return appendProbe(b, &p) })
		var l corev1.Lifecycle
		f.Fill(&l)
		check("lifecycle", &l, func(b []byte) ([]byte, error) { return appendLifecycle(b, &l) })
		var m map[string]string
		f.Fill(&m)
		check("map", m, func(b []byte) ([]byte, error) { return appendStringMap(b, m), nil })
		// The injector's probers: a map, never nil, of probers, never nil.
		var probers map[string]*AppProber
		f.Fill(&probers)
		if probers == nil {
			probers = map[string]*AppProber{}
		}
		maps.DeleteFunc(probers, func(_ string, p *AppProber) bool { return p == nil })
		check("app probers", probers, func(b []byte) ([]byte, error) { return AppendAppProbers(b, probers) })
		var s string
		f.Fill(&s)
		check("string", s, func(b []byte) ([]byte, error) { return AppendString(b, s), nil })
	}
	for _, s := range []string{"\x00\x1f\b\f\n\r\t", "<a href=\"x\">&amp;</a>", "\xff\xfeok", "\u2028\u2029", "é日本"} {
		check("string", s, func(b []byte) ([]byte, error) { return AppendString(b, s), nil })
	}
}

func BenchmarkEncodeContainer(b *testing.B) {
	// The istio-proxy of a Deployment's injected pod (inject's golden output).
	raw, err := os.ReadFile("../testdata/deployment.golden.yaml")
	if err != nil {
		b.Fatal(err)
	}
	out := &corev1.Pod{}
	if err := yaml.UnmarshalStrict(raw, out); err != nil {
		b.Fatal(err)
	}
	proxy := &out.Spec.InitContainers[1]
	if proxy.Name != "istio-proxy" {
		b.Fatalf("init container 1 is %s, not istio-proxy", proxy.Name)
	}
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 8192)
		for b.Loop() {
			buf, _ = appendContainer(buf[:0], proxy)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(proxy)
		}
	})
}
