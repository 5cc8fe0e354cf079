package webhooks

import (
	"cmp"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"

	"github.com/meshkeeper/meshkeeper/internal/inject"
)

// FuzzInjectHandler sends arbitrary AdmissionReviews (seeded with the
// injector's golden test pods) through the handler. It must never panic nor
// fail internally, and answer within callBounded's budget; every patch it answers with must apply to the request's
// object and give the pod inject.Inject returns; and that pod, sent again,
// must be admitted unchanged.
//
// The patch is checked against objects without duplicate JSON keys: the API
// server encodes the object it decoded, so it never sends any, and where Go
// and JSON patch libraries resolve duplicates differently the check would
// test the libraries, not the injector.
//
// Each input is sent twice: to the default revision (istio-init) and to a
// revision with CNI and a seccomp profile (istio-validation), in namespaces
// of which "restricted" and "baseline" enforce those Pod Security levels.
func FuzzInjectHandler(f *testing.F) {
	for _, pod := range podInputs(f) {
		f.Add(reviewOf(f, pod))
		pod = pod.DeepCopy()
		pod.Namespace = "restricted"
		f.Add(reviewOf(f, pod))
	}
	source := testSource()
	cni := testConfig("cni")
	cni.CNI = &inject.CNI{Provider: inject.CNIProviderMultus}
	cni.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	source.revisions["cni"] = cni
	namespaces := namespaceLabels{
		"restricted": {"pod-security.kubernetes.io/enforce": "restricted"},
		"baseline":   {"pod-security.kubernetes.io/enforce": "baseline"},
	}
	h := NewInjectHandler(source, logr.Discard()).WithNamespaces(namespaces)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkInjection(t, h, "/inject", source.revisions["default"], namespaces, body)
		checkInjection(t, h, "/inject/rev/cni", cni, namespaces, body)
	})
}

// checkInjection is FuzzInjectHandler's check of one request to path,
// which injects cfg.
func checkInjection(t *testing.T, h http.Handler, path string, cfg *inject.Config, namespaces namespaceLabels, body []byte) {
	t.Helper()
	var w *httptest.ResponseRecorder
	callBounded(t, "the injection handler", func() { w = serve(h, path, "application/json", body) })
	if w.Code == http.StatusInternalServerError {
		t.Fatalf("internal error: %s", w.Body.String())
	}
	if w.Code != http.StatusOK {
		return
	}
	var resp admissionv1.AdmissionReview
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.Response == nil {
		t.Fatalf("response is not an AdmissionReview: %v\n%s", err, w.Body.String())
	}
	if !resp.Response.Allowed || len(resp.Response.Patch) == 0 {
		return
	}
	var raw struct {
		Request struct {
			Namespace string          `json:"namespace"`
			Object    json.RawMessage `json:"object"`
		} `json:"request"`
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(body, &raw); err != nil {
		t.Fatalf("an injected request does not decode: %v", err)
	}
	if strict, err := kjson.UnmarshalStrict(raw.Request.Object, &corev1.Pod{}, kjson.DisallowDuplicateFields); err != nil || len(strict) > 0 {
		return
	}
	patch, err := jsonpatch.DecodePatch(resp.Response.Patch)
	if err != nil {
		t.Fatalf("invalid patch: %v", err)
	}
	patchedJSON, err := patch.Apply(raw.Request.Object)
	if err != nil {
		t.Fatalf("patch does not apply: %v\npatch: %s\nobject: %s", err, resp.Response.Patch, raw.Request.Object)
	}
	patched := &corev1.Pod{}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(patchedJSON, patched); err != nil {
		t.Fatalf("patched pod does not decode: %v", err)
	}
	pod := &corev1.Pod{}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw.Request.Object, pod); err != nil {
		t.Fatal(err)
	}
	nsLabels := namespaces[cmp.Or(pod.Namespace, raw.Request.Namespace)]
	want, err := inject.Inject(pod, cfg, inject.Request{Namespace: raw.Request.Namespace, NamespaceLabels: nsLabels})
	if err != nil {
		t.Fatalf("handler injected a pod inject.Inject refuses: %v", err)
	}
	if !sameJSON(t, patched, want) {
		t.Fatalf("patched pod differs from inject.Inject's:\npatch: %s", resp.Response.Patch)
	}
	again, err := inject.Inject(patched, cfg, inject.Request{Namespace: raw.Request.Namespace})
	if err != nil {
		t.Fatalf("re-injecting: %v", err)
	}
	if !sameJSON(t, again, patched) {
		t.Fatal("re-injecting the injected pod changed it")
	}
	second := serve(h, path, "application/json", withObject(t, body, patchedJSON))
	var resp2 admissionv1.AdmissionReview
	if err := json.Unmarshal(second.Body.Bytes(), &resp2); err != nil || resp2.Response == nil {
		t.Fatalf("HTTP %d: %s", second.Code, second.Body.String())
	}
	if !resp2.Response.Allowed || len(resp2.Response.Patch) != 0 {
		t.Fatalf("the injected pod, sent again, was patched or refused: %s", second.Body.String())
	}
}

// withObject returns the review with another request.object.
func withObject(t *testing.T, review, object []byte) []byte {
	t.Helper()
	var env, req map[string]json.RawMessage
	if err := json.Unmarshal(review, &env); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(env["request"], &req); err != nil {
		t.Fatal(err)
	}
	req["object"] = object
	var err error
	if env["request"], err = json.Marshal(req); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
