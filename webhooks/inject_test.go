package webhooks

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// testConfig is a revision of Istio 1.32 as meshkeeper renders and serves it
// for a MeshInstall with the defaults.
func testConfig(rev string) *inject.Config {
	r, err := render.NewRevision(rev, "1.32.0")
	if err != nil {
		panic(err)
	}
	mi := &meshv1alpha1.MeshInstall{Spec: meshv1alpha1.MeshInstallSpec{Version: "1.32.0", Namespace: "istio-system"}}
	rendered, err := render.InjectionConfig(mi, r)
	if err != nil {
		panic(err)
	}
	// Through JSON, as the operator serves it: RevisionSource reads it back
	// from the revision's ConfigMap.
	raw, err := json.Marshal(rendered)
	if err != nil {
		panic(err)
	}
	cfg := &inject.Config{}
	if err := json.Unmarshal(raw, cfg); err != nil {
		panic(err)
	}
	return cfg
}

// testSource serves the default revision (tags default and prod) and a
// classic-sidecar canary 1-33-0.
func testSource() staticSource {
	canary := testConfig("1-33-0")
	canary.NativeSidecars = inject.NativeSidecarsDisabled
	return staticSource{
		revisions: map[string]*inject.Config{"default": testConfig("default"), "1-33-0": canary},
		tags:      map[string]string{"default": "default", "prod": "default"},
	}
}

// staticSource is a ConfigSource over fixed configurations.
type staticSource struct {
	// revisions are the configurations by revision name.
	revisions map[string]*inject.Config
	// tags map a tag to a revision name.
	tags map[string]string
}

func (s staticSource) Resolve(target Target, _ Workload) (*inject.Config, error) {
	rev := target.Revision
	if rev == "" {
		var ok bool
		if rev, ok = s.tags[target.Tag]; !ok {
			return nil, fmt.Errorf("revision tag %q points at no revision", target.Tag)
		}
	}
	cfg, ok := s.revisions[rev]
	if !ok {
		return nil, fmt.Errorf("no injection configuration for revision %q", rev)
	}
	return cfg, nil
}

func newTestHandler() *InjectHandler { return NewInjectHandler(testSource(), logr.Discard()) }

// podInputs are the injector's golden test pods.
func podInputs(t testing.TB) map[string]*corev1.Pod {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "internal", "inject", "testdata", "*.in.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test pods: %v", err)
	}
	pods := map[string]*corev1.Pod{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{}
		if err := yaml.UnmarshalStrict(b, pod); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		pods[strings.TrimSuffix(filepath.Base(f), ".in.yaml")] = pod
	}
	return pods
}

// reviewOf is the AdmissionReview the API server sends for creating pod.
func reviewOf(t testing.TB, pod *corev1.Pod, mutate ...func(*admissionv1.AdmissionRequest)) []byte {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	ns := pod.Namespace
	if ns == "" {
		ns = "default"
	}
	req := &admissionv1.AdmissionRequest{
		UID:       "7f0c8f6e-1d2b-4d3c-9a8b-0e1f2a3b4c5d",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: ns,
		Operation: admissionv1.Create,
		Object:    runtimeRaw(raw),
	}
	for _, m := range mutate {
		m(req)
	}
	b, err := json.Marshal(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serve sends body to the handler at path and returns the HTTP response.
func serve(h http.Handler, path, contentType string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// admissionResponse decodes a 200 response.
func admissionResponse(t testing.TB, w *httptest.ResponseRecorder) *admissionv1.AdmissionResponse {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", w.Code, w.Body.String())
	}
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(w.Body.Bytes(), &ar); err != nil {
		t.Fatalf("response is not an AdmissionReview: %v\n%s", err, w.Body.String())
	}
	if ar.APIVersion != "admission.k8s.io/v1" || ar.Kind != "AdmissionReview" || ar.Response == nil {
		t.Fatalf("response is not an AdmissionReview: %s", w.Body.String())
	}
	if ar.Response.UID != "7f0c8f6e-1d2b-4d3c-9a8b-0e1f2a3b4c5d" {
		t.Fatalf("response uid %q does not echo the request's", ar.Response.UID)
	}
	return ar.Response
}

// patched applies the response's patch to the pod's JSON.
func patched(t testing.TB, pod *corev1.Pod, resp *admissionv1.AdmissionResponse) *corev1.Pod {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patch type %v, want JSONPatch", resp.PatchType)
	}
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatalf("invalid patch: %v", err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("patch does not apply: %v\n%s", err, resp.Patch)
	}
	res := &corev1.Pod{}
	if err := json.Unmarshal(out, res); err != nil {
		t.Fatal(err)
	}
	return res
}

func sameJSON(t testing.TB, a, b any) bool {
	t.Helper()
	return bytes.Equal(asDecoded(t, a), asDecoded(t, b))
}

// asDecoded is v's JSON as the API server holds it once decoded: a string
// cut inside a multi-byte character (Istio's templates, and Inject, cut
// the canonical name at 63 bytes) has an invalid byte, which json.Marshal
// writes as the escape \ufffd; decoded, that is the character U+FFFD,
// which it writes as itself. The patched pod has been through that
// decoding and Inject's own result has not, so both are compared after it.
func asDecoded(t testing.TB, v any) []byte {
	t.Helper()
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var decoded any
	if err := json.Unmarshal(j, &decoded); err != nil {
		t.Fatal(err)
	}
	if j, err = json.Marshal(decoded); err != nil {
		t.Fatal(err)
	}
	return j
}

// TestInjectHandlerInjects sends every golden test pod through the handler:
// the patch must turn the pod into what inject.Inject returns for it.
func TestInjectHandlerInjects(t *testing.T) {
	h := newTestHandler()
	cfg := testSource().revisions["default"]
	for name, pod := range podInputs(t) {
		t.Run(name, func(t *testing.T) {
			resp := admissionResponse(t, serve(h, "/inject", "application/json", reviewOf(t, pod)))
			if !resp.Allowed {
				t.Fatalf("pod refused: %v", resp.Result)
			}
			want, err := inject.Inject(pod, cfg, inject.Request{Namespace: pod.Namespace})
			if err != nil {
				t.Fatal(err)
			}
			if got := patched(t, pod, resp); !sameJSON(t, got, want) {
				t.Errorf("patched pod differs from inject.Inject's")
			}
		})
	}
}

// TestInjectHandlerCutsAMultiByteAppName: a long app label is cut to 63
// bytes for service.istio.io/canonical-name, as Istio's template cuts it,
// which can split a character. The patch must still give what Inject
// gives, as the API server decodes it (the fuzzer found this case).
func TestInjectHandlerCutsAMultiByteAppName(t *testing.T) {
	pod := podInputs(t)["deployment"].DeepCopy()
	// 62 ASCII bytes, then "é" (2 bytes): the cut at 63 splits it.
	pod.Labels["app"] = strings.Repeat("a", 62) + "éé"
	pod.Labels["app.kubernetes.io/name"] = pod.Labels["app"]
	resp := admissionResponse(t, serve(newTestHandler(), "/inject", "application/json", reviewOf(t, pod)))
	if !resp.Allowed {
		t.Fatalf("pod refused: %v", resp.Result)
	}
	want, err := inject.Inject(pod, testSource().revisions["default"], inject.Request{Namespace: pod.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	got := patched(t, pod, resp)
	if !sameJSON(t, got, want) {
		t.Errorf("patched pod differs from inject.Inject's: canonical-name %q, want %q",
			got.Labels["service.istio.io/canonical-name"], want.Labels["service.istio.io/canonical-name"])
	}
	if name := got.Labels["service.istio.io/canonical-name"]; name != strings.Repeat("a", 62)+"\ufffd" {
		t.Errorf("canonical-name %q, want the 62 bytes and the cut character as U+FFFD", name)
	}
}

func TestInjectHandlerTargets(t *testing.T) {
	pod := podInputs(t)["deployment"]
	cases := []struct {
		name, path   string
		wantRevision string
		wantEnv      map[string]string
	}{
		{name: "no parameters: the default tag", path: "/inject", wantRevision: "default"},
		{name: "trailing slash", path: "/inject/", wantRevision: "default"},
		{name: "a tag", path: "/inject/tag/prod", wantRevision: "default"},
		{name: "a revision", path: "/inject/rev/1-33-0", wantRevision: "1-33-0"},
		{
			name: "cluster and network overrides", path: "/inject/cluster/east/net/network-1/rev/1-33-0", wantRevision: "1-33-0",
			wantEnv: map[string]string{"ISTIO_META_CLUSTER_ID": "east", "ISTIO_META_NETWORK": "network-1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := patched(t, pod, admissionResponse(t, serve(newTestHandler(), tc.path, "application/json", reviewOf(t, pod))))
			if rev := got.Annotations[inject.AnnotationRevision]; rev != tc.wantRevision {
				t.Errorf("injected revision %q, want %q", rev, tc.wantRevision)
			}
			proxy := findProxy(got)
			if proxy == nil {
				t.Fatal("no istio-proxy")
			}
			for k, v := range tc.wantEnv {
				if got := envOf(proxy, k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func findProxy(pod *corev1.Pod) *corev1.Container {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == inject.ProxyContainerName {
				return &cs[i]
			}
		}
	}
	return nil
}

func envOf(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func TestHardenTLS(t *testing.T) {
	c := &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
	for _, opt := range TLSOptions() {
		opt(c)
	}
	if c.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x, want TLS 1.2", c.MinVersion)
	}
	if len(c.NextProtos) != 1 || c.NextProtos[0] != "http/1.1" {
		t.Errorf("NextProtos %v, want only http/1.1", c.NextProtos)
	}
}

// counterValue reads a counter.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func runtimeRaw(b []byte) runtime.RawExtension { return runtime.RawExtension{Raw: b} }
