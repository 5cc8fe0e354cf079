package webhooks

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
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
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/meshkeeper/meshkeeper/internal/inject"
)

// testConfig is a revision of Istio 1.32 as meshkeeper renders it.
func testConfig(rev string) *inject.Config {
	istiod := "istiod.istio-system.svc:15012"
	if rev != "default" {
		istiod = "istiod-" + rev + ".istio-system.svc:15012"
	}
	return &inject.Config{
		Revision:         rev,
		Version:          "1.32.0",
		Namespace:        "istio-system",
		ProxyImage:       "docker.io/istio/proxyv2:1.32.0",
		ClusterID:        "Kubernetes",
		MeshID:           "cluster.local",
		TrustDomain:      "cluster.local",
		DiscoveryAddress: istiod,
		CAAddress:        istiod,
		NativeSidecars:   inject.NativeSidecarsAuto,
		RewriteAppProbes: true,
		ProxyResources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")},
		},
		EnablePrometheusMerge: true,
		LogLevel:              "warning",
		ComponentLogLevel:     "misc:error",
		DefaultProxyConfig:    inject.ProxyConfig{DiscoveryAddress: istiod},
	}
}

// testSource serves the default revision (tags default and prod) and a
// classic-sidecar canary 1-33-0.
func testSource() StaticConfigSource {
	canary := testConfig("1-33-0")
	canary.NativeSidecars = inject.NativeSidecarsDisabled
	return StaticConfigSource{
		Revisions: map[string]*inject.Config{"default": testConfig("default"), "1-33-0": canary},
		Tags:      map[string]string{"default": "default", "prod": "default"},
	}
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
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

// TestInjectHandlerInjects sends every golden test pod through the handler:
// the patch must turn the pod into what inject.Inject returns for it.
func TestInjectHandlerInjects(t *testing.T) {
	h := newTestHandler()
	cfg := testSource().Revisions["default"]
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

func TestInjectHandlerSkips(t *testing.T) {
	base := podInputs(t)["bare-pod"]
	injected, err := inject.Inject(base, testConfig("default"), inject.Request{})
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(*corev1.Pod)) *corev1.Pod {
		p := base.DeepCopy()
		f(p)
		return p
	}
	cases := []struct {
		name   string
		pod    *corev1.Pod
		req    func(*admissionv1.AdmissionRequest)
		reason string
	}{
		{name: "host network", pod: with(func(p *corev1.Pod) { p.Spec.HostNetwork = true }), reason: reasonHostNetwork},
		{name: "already injected", pod: injected, reason: reasonAlreadyInjected},
		{name: "inject label false", pod: with(func(p *corev1.Pod) { p.Labels = map[string]string{"sidecar.istio.io/inject": "false"} }), reason: reasonDisabled},
		{name: "inject annotation false", pod: with(func(p *corev1.Pod) { p.Annotations = map[string]string{"sidecar.istio.io/inject": "false"} }), reason: reasonDisabled},
		{name: "label false beats annotation true", pod: with(func(p *corev1.Pod) {
			p.Labels = map[string]string{"sidecar.istio.io/inject": "false"}
			p.Annotations = map[string]string{"sidecar.istio.io/inject": "true"}
		}), reason: reasonDisabled},
		{name: "kube-system", pod: with(func(p *corev1.Pod) { p.Namespace = "kube-system" }), reason: reasonSystemNamespace},
		{name: "control plane namespace", pod: with(func(p *corev1.Pod) { p.Namespace = "istio-system" }), reason: reasonSystemNamespace},
		{name: "pod update", pod: base, req: func(r *admissionv1.AdmissionRequest) { r.Operation = admissionv1.Update }, reason: reasonNotPodCreate},
		{name: "pod subresource", pod: base, req: func(r *admissionv1.AdmissionRequest) { r.SubResource = "ephemeralcontainers" }, reason: reasonNotPodCreate},
		{name: "not a pod", pod: base, req: func(r *admissionv1.AdmissionRequest) {
			r.Kind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
			r.Resource = metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
		}, reason: reasonNotPodCreate},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mutate []func(*admissionv1.AdmissionRequest)
			if tc.req != nil {
				mutate = append(mutate, tc.req)
			}
			before := counterValue(t, injectionRequests.WithLabelValues(resultSkipped, tc.reason, "false"))
			resp := admissionResponse(t, serve(newTestHandler(), "/inject", "application/json", reviewOf(t, tc.pod, mutate...)))
			if !resp.Allowed || len(resp.Patch) != 0 || resp.PatchType != nil {
				t.Errorf("want allowed without a patch, got allowed=%v patch=%s", resp.Allowed, resp.Patch)
			}
			if after := counterValue(t, injectionRequests.WithLabelValues(resultSkipped, tc.reason, "false")); after != before+1 {
				t.Errorf("skipped{reason=%q} went from %v to %v", tc.reason, before, after)
			}
		})
	}

	t.Run("label true beats annotation false", func(t *testing.T) {
		pod := with(func(p *corev1.Pod) {
			p.Labels = map[string]string{"sidecar.istio.io/inject": "true"}
			p.Annotations = map[string]string{"sidecar.istio.io/inject": "false"}
		})
		resp := admissionResponse(t, serve(newTestHandler(), "/inject", "application/json", reviewOf(t, pod)))
		if len(resp.Patch) == 0 {
			t.Error("pod not injected")
		}
	})
}

func TestInjectHandlerRefusesInvalidAnnotations(t *testing.T) {
	base := podInputs(t)["bare-pod"]
	cases := []struct{ annotation, value string }{
		{"sidecar.istio.io/proxyCPU", "two cores"},
		{"sidecar.istio.io/proxyMemoryLimit", "1Gb"},
		{"sidecar.istio.io/interceptionMode", "MAGIC"},
		{"status.sidecar.istio.io/port", "70000"},
		{"readiness.status.sidecar.istio.io/periodSeconds", "-1"},
		{"traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/33"},
		{"traffic.sidecar.istio.io/excludeInboundPorts", "80,http"},
		{"traffic.sidecar.istio.io/excludeInterfaces", "eth0,"},
		{"prometheus.istio.io/merge-metrics", "yes please"},
		{"proxy.istio.io/config", "discoveryAddress: istiod"},
		{"proxy.istio.io/config", "concurrency: many"},
		{"inject.istio.io/templates", "waypoint"},
		{"sidecar.istio.io/userVolume", "[not an object]"},
		{"prometheus.io/port", "15000"},
	}
	for _, tc := range cases {
		t.Run(tc.annotation+"="+tc.value, func(t *testing.T) {
			pod := base.DeepCopy()
			pod.Annotations = map[string]string{tc.annotation: tc.value}
			before := counterValue(t, injectionRequests.WithLabelValues(resultRefused, reasonInvalidPod, "false"))
			resp := admissionResponse(t, serve(newTestHandler(), "/inject", "application/json", reviewOf(t, pod)))
			if resp.Allowed {
				t.Fatal("pod admitted")
			}
			if resp.Result == nil || !strings.Contains(resp.Result.Message, tc.annotation) || resp.Result.Code != http.StatusBadRequest {
				t.Errorf("refusal %+v does not name %s with code 400", resp.Result, tc.annotation)
			}
			if after := counterValue(t, injectionRequests.WithLabelValues(resultRefused, reasonInvalidPod, "false")); after != before+1 {
				t.Errorf("refused count went from %v to %v", before, after)
			}
		})
	}
}

func TestInjectHandlerErrors(t *testing.T) {
	pod := podInputs(t)["bare-pod"]
	review := reviewOf(t, pod)
	cases := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        []byte
		source      ConfigSource
		wantStatus  int
	}{
		{name: "no configuration for the revision", path: "/inject/rev/1-99-0", body: review, wantStatus: http.StatusInternalServerError},
		{name: "tag pointing nowhere", path: "/inject/tag/staging", body: review, wantStatus: http.StatusInternalServerError},
		{name: "empty source", path: "/inject", body: review, source: StaticConfigSource{}, wantStatus: http.StatusInternalServerError},
		{name: "wrong content type", path: "/inject", contentType: "application/yaml", body: review, wantStatus: http.StatusUnsupportedMediaType},
		{name: "no content type", path: "/inject", contentType: "-", body: review, wantStatus: http.StatusUnsupportedMediaType},
		{name: "body too large", path: "/inject", body: bytes.Repeat([]byte(" "), MaxRequestBytes+1), wantStatus: http.StatusRequestEntityTooLarge},
		{name: "malformed JSON", path: "/inject", body: []byte(`{"kind":`), wantStatus: http.StatusBadRequest},
		{name: "not an AdmissionReview", path: "/inject", body: []byte(`{"kind":"Pod","apiVersion":"v1"}`), wantStatus: http.StatusBadRequest},
		{name: "review without request", path: "/inject", body: []byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}`), wantStatus: http.StatusBadRequest},
		{name: "pod that does not decode", path: "/inject", body: bytes.Replace(review, []byte(`"containers":[`), []byte(`"containers":7,"x":[`), 1), wantStatus: http.StatusBadRequest},
		{name: "GET", method: http.MethodGet, path: "/inject", body: review, wantStatus: http.StatusMethodNotAllowed},
		{name: "unknown path parameter", path: "/inject/zone/a", body: review, wantStatus: http.StatusNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			source := tc.source
			if source == nil {
				source = testSource()
			}
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			r := httptest.NewRequest(method, tc.path, bytes.NewReader(tc.body))
			switch tc.contentType {
			case "":
				r.Header.Set("Content-Type", "application/json; charset=utf-8")
			case "-":
			default:
				r.Header.Set("Content-Type", tc.contentType)
			}
			w := httptest.NewRecorder()
			NewInjectHandler(source, logr.Discard()).ServeHTTP(w, r)
			if w.Code != tc.wantStatus {
				t.Errorf("HTTP %d (%s), want %d", w.Code, strings.TrimSpace(w.Body.String()), tc.wantStatus)
			}
		})
	}
}

func TestInjectHandlerDryRun(t *testing.T) {
	pod := podInputs(t)["deployment"]
	dry := func(r *admissionv1.AdmissionRequest) { r.DryRun = ptrTo(true) }
	injectedDry := injectionRequests.WithLabelValues(resultInjected, reasonNone, "true")
	injectedReal := injectionRequests.WithLabelValues(resultInjected, reasonNone, "false")
	beforeDry, beforeReal := counterValue(t, injectedDry), counterValue(t, injectedReal)

	real := serve(newTestHandler(), "/inject", "application/json", reviewOf(t, pod))
	dryRun := serve(newTestHandler(), "/inject", "application/json", reviewOf(t, pod, dry))
	if real.Body.String() != dryRun.Body.String() {
		t.Errorf("dry run answered differently:\n%s\n%s", real.Body.String(), dryRun.Body.String())
	}
	if got := counterValue(t, injectedDry) - beforeDry; got != 1 {
		t.Errorf("dry-run injections counted %v times, want 1", got)
	}
	if got := counterValue(t, injectedReal) - beforeReal; got != 1 {
		t.Errorf("real injections counted %v times, want 1", got)
	}
}

func TestParseInjectPath(t *testing.T) {
	cases := []struct {
		path    string
		want    Target
		wantErr bool
	}{
		{path: "/inject", want: Target{Tag: "default"}},
		{path: "/inject/", want: Target{Tag: "default"}},
		{path: "/inject/rev/1-32-0", want: Target{Revision: "1-32-0"}},
		{path: "/inject/tag/prod/", want: Target{Tag: "prod"}},
		{path: "/inject/cluster/c1/net/n1", want: Target{Tag: "default", ClusterID: "c1", Network: "n1"}},
		{path: "/inject/net/a--slash--b/tag/canary", want: Target{Tag: "canary", Network: "a/b"}},
		{path: "/inject/rev/a/tag/b", wantErr: true},
		{path: "/inject/rev", wantErr: true},
		{path: "/inject/rev/a/rev/b", wantErr: true},
		{path: "/inject/zone/a", wantErr: true},
		{path: "/injector", wantErr: true},
		{path: "/mutate", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			got, err := ParseInjectPath(tc.path)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
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

func ptrTo[T any](v T) *T { return &v }

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
