package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"

	"github.com/meshkeeper/meshkeeper/internal/inject"
)

// BenchmarkPatchWriters answers the same pods' AdmissionReviews three ways,
// side by side, to show what the hand-written encoders and patch writer
// (podpatch.AppendPatch) are worth on the webhook's whole path, AdmissionReview
// JSON in to AdmissionReview JSON out:
//
//   - meshkeeper: the injection handler as it serves;
//   - jsonpatch: the same handler's decoding and response, with the patch
//     made the generic way instead: the injected pod encoded with
//     encoding/json and diffed against the request's object by
//     controller-runtime's admission.PatchResponseFromRaw
//     (gomodules.xyz/jsonpatch/v2), its operations encoded with
//     encoding/json;
//   - controller-runtime: a generic controller-runtime webhook
//     (admission.Webhook, its decoder and encoder) around the same
//     injection and PatchResponseFromRaw.
//
// Before timing, each answer's patch is applied to the request's pod and
// must give the pod inject.Inject returns: the three do the same work.
//
// go test -run='^$' -bench=BenchmarkPatchWriters -benchmem ./webhooks/
func BenchmarkPatchWriters(b *testing.B) {
	source := testSource()
	pods := podInputs(b)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		b.Fatal(err)
	}
	writers := []struct {
		name    string
		handler http.Handler
	}{
		{"meshkeeper", NewInjectHandler(source, logr.Discard())},
		{"jsonpatch", genericPatchHandler{source}},
		{"controller-runtime", &admission.Webhook{
			Handler:        controllerRuntimeInjector{source, admission.NewDecoder(scheme)},
			LogConstructor: func(logr.Logger, *admission.Request) logr.Logger { return logr.Discard() },
		}},
	}
	// The pods: a Deployment's (one container, probes), a bare pod, a
	// gateway with an application container, and the largest golden input.
	for _, name := range []string{"deployment", "bare-pod", "gateway-with-app", "probes"} {
		pod, ok := pods[name]
		if !ok {
			b.Fatalf("no test pod %s", name)
		}
		body := reviewOf(b, pod)
		want := injectedAsTheWebhookWould(b, source, pod)
		for _, pw := range writers {
			b.Run(name+"/"+pw.name, func(b *testing.B) {
				w := &discardWriter{header: http.Header{}}
				reader := bytes.NewReader(body)
				req := httptest.NewRequest(http.MethodPost, "/inject", reader)
				req.Header.Set("Content-Type", "application/json")
				pw.handler.ServeHTTP(w, req)
				requirePatchGives(b, w.body.Bytes(), pod, want)
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					reader.Reset(body)
					req.Body = readCloser{reader}
					w.body.Reset()
					pw.handler.ServeHTTP(w, req)
				}
			})
		}
	}
}

// injectedAsTheWebhookWould is inject.Inject's pod for a request to /inject
// in the pod's namespace.
func injectedAsTheWebhookWould(b *testing.B, source ConfigSource, pod *corev1.Pod) *corev1.Pod {
	b.Helper()
	ns := pod.Namespace
	if ns == "" {
		ns = "default"
	}
	injected, err := injectFor(source, pod.DeepCopy(), ns)
	if err != nil {
		b.Fatal(err)
	}
	return injected
}

// injectFor injects pod as the handler does for /inject (the default tag).
func injectFor(source ConfigSource, pod *corev1.Pod, namespace string) (*corev1.Pod, error) {
	workload := inject.WorkloadOf(pod, namespace)
	cfg, err := source.Resolve(Target{Tag: "default"}, workload)
	if err != nil {
		return nil, err
	}
	return inject.Inject(pod, cfg, inject.Request{Namespace: namespace, Workload: workload})
}

// requirePatchGives fails b unless the AdmissionReview response's patch
// turns pod into want.
func requirePatchGives(b *testing.B, response []byte, pod, want *corev1.Pod) {
	b.Helper()
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(response, &review); err != nil || review.Response == nil || !review.Response.Allowed {
		b.Fatalf("not an admitting AdmissionReview (%v): %s", err, response)
	}
	patch, err := jsonpatch.DecodePatch(review.Response.Patch)
	if err != nil {
		b.Fatalf("invalid patch: %v", err)
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	patchedJSON, err := patch.Apply(raw)
	if err != nil {
		b.Fatalf("the patch does not apply: %v", err)
	}
	patched := &corev1.Pod{}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(patchedJSON, patched); err != nil {
		b.Fatal(err)
	}
	if !sameJSON(b, patched, want) {
		b.Fatalf("the patched pod differs from inject.Inject's:\npatch: %s", review.Response.Patch)
	}
}

// genericPatchHandler is the injection handler's path with a generic patch:
// the same decoding (keeping the request's object as sent) and response
// writing, the patch from encoding/json and PatchResponseFromRaw.
type genericPatchHandler struct{ source ConfigSource }

func (h genericPatchHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	in := buffers.Get().(*bytes.Buffer)
	defer putBuffer(in)
	if _, err := in.ReadFrom(r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var review rawAdmissionReview
	if err := kjson.UnmarshalCaseSensitivePreserveInts(in.Bytes(), &review); err != nil || review.Request == nil {
		http.Error(w, "decoding the AdmissionReview", http.StatusBadRequest)
		return
	}
	req := review.Request
	pod := &corev1.Pod{}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(req.Object, pod); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	injected, err := injectFor(h.source, pod, req.Namespace)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	current, err := json.Marshal(injected)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	resp := admission.PatchResponseFromRaw(req.Object, current)
	patch, err := json.Marshal(resp.Patches)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out := buffers.Get().(*bytes.Buffer)
	defer putBuffer(out)
	w.Header()["Content-Type"] = jsonContentType
	_, _ = w.Write(appendAllowed(out.AvailableBuffer(), review.APIVersion, req.UID, patch))
}

// controllerRuntimeInjector is the injection as a generic controller-runtime
// admission handler would write it.
type controllerRuntimeInjector struct {
	source  ConfigSource
	decoder admission.Decoder
}

func (h controllerRuntimeInjector) Handle(_ context.Context, req admission.Request) admission.Response {
	pod := &corev1.Pod{}
	if err := h.decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	injected, err := injectFor(h.source, pod, req.Namespace)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	current, err := json.Marshal(injected)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, current)
}
