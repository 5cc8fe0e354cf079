package webhooks

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/meshkeeper/meshkeeper/internal/inject"
)

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
		{name: "no containers", pod: with(func(p *corev1.Pod) { p.Spec.Containers = nil }), reason: reasonIncompletePod},
		{name: "no name", pod: with(func(p *corev1.Pod) { p.Name = "" }), reason: reasonIncompletePod},
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

	t.Run("an inject value other than false does not opt out, as in Istio", func(t *testing.T) {
		pod := with(func(p *corev1.Pod) { p.Annotations = map[string]string{"sidecar.istio.io/inject": "No"} })
		resp := admissionResponse(t, serve(newTestHandler(), "/inject", "application/json", reviewOf(t, pod)))
		if len(resp.Patch) == 0 {
			t.Error("pod not injected")
		}
	})

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
		// unknownLength sends the body without a Content-Length, as a chunked request does.
		unknownLength bool
		wantStatus    int
		wantReason    string
	}{
		{name: "no configuration for the revision", path: "/inject/rev/1-99-0", body: review, wantStatus: http.StatusInternalServerError, wantReason: reasonNoConfig},
		{name: "tag pointing nowhere", path: "/inject/tag/staging", body: review, wantStatus: http.StatusInternalServerError, wantReason: reasonNoConfig},
		{name: "empty source", path: "/inject", body: review, source: staticSource{}, wantStatus: http.StatusInternalServerError, wantReason: reasonNoConfig},
		{name: "wrong content type", path: "/inject", contentType: "application/yaml", body: review, wantStatus: http.StatusUnsupportedMediaType, wantReason: reasonUnsupportedMedia},
		{name: "no content type", path: "/inject", contentType: "-", body: review, wantStatus: http.StatusUnsupportedMediaType, wantReason: reasonUnsupportedMedia},
		{name: "body too large", path: "/inject", body: bytes.Repeat([]byte(" "), MaxRequestBytes+1), wantStatus: http.StatusRequestEntityTooLarge, wantReason: reasonTooLarge},
		{name: "body too large, length not announced", path: "/inject", body: bytes.Repeat([]byte(" "), MaxRequestBytes+1), unknownLength: true, wantStatus: http.StatusRequestEntityTooLarge, wantReason: reasonTooLarge},
		{name: "malformed JSON", path: "/inject", body: []byte(`{"kind":`), wantStatus: http.StatusBadRequest, wantReason: reasonBadRequest},
		{name: "not an AdmissionReview", path: "/inject", body: []byte(`{"kind":"Pod","apiVersion":"v1"}`), wantStatus: http.StatusBadRequest, wantReason: reasonBadRequest},
		{name: "review without request", path: "/inject", body: []byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}`), wantStatus: http.StatusBadRequest, wantReason: reasonBadRequest},
		{name: "pod that does not decode", path: "/inject", body: bytes.Replace(review, []byte(`"containers":[`), []byte(`"containers":7,"x":[`), 1), wantStatus: http.StatusBadRequest, wantReason: reasonBadRequest},
		{name: "GET", method: http.MethodGet, path: "/inject", body: review, wantStatus: http.StatusMethodNotAllowed, wantReason: reasonBadRequest},
		{name: "unknown path parameter", path: "/inject/zone/a", body: review, wantStatus: http.StatusNotFound, wantReason: reasonBadRequest},
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
			if tc.unknownLength {
				r.ContentLength = -1
			}
			counter := injectionRequests.WithLabelValues(resultError, tc.wantReason, "false")
			before := counterValue(t, counter)
			w := httptest.NewRecorder()
			NewInjectHandler(source, logr.Discard()).ServeHTTP(w, r)
			if w.Code != tc.wantStatus {
				t.Errorf("HTTP %d (%s), want %d", w.Code, strings.TrimSpace(w.Body.String()), tc.wantStatus)
			}
			if after := counterValue(t, counter); after != before+1 {
				t.Errorf("error{reason=%q} went from %v to %v", tc.wantReason, before, after)
			}
		})
	}
}

func TestInjectHandlerDryRun(t *testing.T) {
	pod := podInputs(t)["deployment"]
	dry := func(r *admissionv1.AdmissionRequest) { r.DryRun = ptr.To(true) }
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
		{path: "/inject/rev//tag/b", wantErr: true},
		{path: "/inject/net/n1/net/n1", wantErr: true},
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
