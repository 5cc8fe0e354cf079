package webhooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// Bounds a hostile request must be answered within, by either webhook.
const (
	// hostileMaxTime bounds a refusal (they take milliseconds). A request
	// served in full takes what its size takes (a pod of 320,000 labels,
	// 0.5 s on an idle 2-core machine): what bounds its cost is how many are
	// served at once (Limits), not time.
	hostileMaxTime = 2 * time.Second
	// hostileMaxHeapGrowth bounds the heap one request may take while it
	// is served: the per-request share of the memory limit (see Limits and
	// config/manager). The worst is a pod of tiny labels up to
	// MaxRequestBytes, decoded into a map, copied and patched.
	hostileMaxHeapGrowth = 80 << 20
	// hostileMaxRetained bounds the heap still held after the request.
	hostileMaxRetained = 4 << 20
)

// muxServer is the webhook server as RegisterInjector sees it.
type muxServer struct {
	webhook.Server
	mux *http.ServeMux
}

func (s muxServer) Register(path string, h http.Handler) { s.mux.Handle(path, h) }

// webhooksUnderTest serves both webhooks as the operator registers them.
func webhooksUnderTest(t *testing.T) *httptest.Server {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := meshv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	RegisterInjector(muxServer{mux: mux}, NewInjectHandler(testSource(), logr.Discard()))
	validator := &MeshInstallValidator{APIReader: fake.NewClientBuilder().WithScheme(scheme).Build()}
	mux.Handle(webhookconfig.ValidatePath, validator.Handler(scheme))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// meshInstallReview is an AdmissionReview creating mi.
func meshInstallReview(t *testing.T, mi *meshv1alpha1.MeshInstall) []byte {
	t.Helper()
	raw, err := json.Marshal(mi)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "0c1d2e3f-4a5b-4c6d-8e9f-a0b1c2d3e4f5",
			Kind:      metav1.GroupVersionKind{Group: meshv1alpha1.GroupVersion.Group, Version: "v1alpha1", Kind: "MeshInstall"},
			Resource:  metav1.GroupVersionResource{Group: meshv1alpha1.GroupVersion.Group, Version: "v1alpha1", Resource: "meshinstalls"},
			Operation: admissionv1.Create,
			Object:    runtimeRaw(raw),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// podOfLabels is a pod of n tiny labels: what decodes into the most heap
// per byte of request.
func podOfLabels(n int) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "labels", Namespace: "tenant", Labels: map[string]string{}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
	for i := range n {
		pod.Labels[fmt.Sprintf("l%d", i)] = ""
	}
	return pod
}

// bombInstall is a MeshInstall whose overlay doubles istiod's spec 16 times.
func bombInstall() *meshv1alpha1.MeshInstall {
	ops := make([]meshv1alpha1.JSONPatchOperation, 16)
	for i := range ops {
		ops[i] = meshv1alpha1.JSONPatchOperation{Op: meshv1alpha1.JSONPatchCopy, From: ptr.To("/spec"), Path: fmt.Sprintf("/spec/bomb%d", i)}
	}
	return &meshv1alpha1.MeshInstall{
		ObjectMeta: metav1.ObjectMeta{Name: "default"},
		Spec: meshv1alpha1.MeshInstallSpec{Version: "1.32.0", Overlays: []meshv1alpha1.Overlay{{
			Target: meshv1alpha1.OverlayTarget{Kind: "Deployment", Name: "istiod"}, JSONPatch: ops,
		}}},
	}
}

// refusal says whether an answer refuses: an HTTP error (the API server
// applies the failurePolicy), or a review that does not allow.
func refusal(status int, body []byte) bool {
	if status != http.StatusOK {
		return true
	}
	var review admissionv1.AdmissionReview
	return json.Unmarshal(body, &review) == nil && review.Response != nil && !review.Response.Allowed
}

func TestWebhooksBoundHostileRequests(t *testing.T) {
	srv := webhooksUnderTest(t)
	nested := bytes.Repeat([]byte("["), MaxRequestBytes-64)
	// Just under the bound: decoded, then refused by the API server's own
	// validation (label count), never by exhausting the operator.
	labelled := reviewOf(t, podOfLabels(320_000))
	if len(labelled) > MaxRequestBytes {
		t.Fatalf("the labelled pod's review is %d bytes, over MaxRequestBytes", len(labelled))
	}
	for _, c := range []struct {
		name    string
		path    string
		body    []byte
		chunked bool
		// refused says the webhook must refuse it; otherwise it only has to
		// answer within the bounds.
		refused bool
	}{
		{name: "oversized pod", path: webhookconfig.InjectPath, body: reviewOf(t, podOfLabels(400_000)), refused: true},
		{name: "oversized pod, length not announced", path: webhookconfig.InjectPath, body: reviewOf(t, podOfLabels(400_000)), chunked: true, refused: true},
		{name: "pod of tiny labels up to the bound", path: webhookconfig.InjectPath, body: labelled},
		{name: "deeply nested", path: webhookconfig.InjectPath, body: nested, refused: true},
		{name: "malformed", path: webhookconfig.InjectPath, body: []byte(`{"kind":"AdmissionReview","request":{"object":{"metadata":`), refused: true},
		{name: "oversized MeshInstall", path: webhookconfig.ValidatePath, body: reviewOf(t, podOfLabels(400_000)), refused: true},
		{name: "deeply nested MeshInstall", path: webhookconfig.ValidatePath, body: nested, refused: true},
		{name: "malformed MeshInstall", path: webhookconfig.ValidatePath, body: []byte(`{"kind":"AdmissionReview","request":{"object":{"spec":`), refused: true},
		{name: "overlay bomb", path: webhookconfig.ValidatePath, body: meshInstallReview(t, bombInstall()), refused: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(c.body)
			if c.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			req, err := http.NewRequest(http.MethodPost, srv.URL+c.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			goruntime.GC()
			var before, after goruntime.MemStats
			goruntime.ReadMemStats(&before)
			peak := sampleHeapPeak()
			start := time.Now()
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("the webhook did not answer: %v", err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			grown := peak() - before.HeapAlloc
			goruntime.ReadMemStats(&after)
			allocated := after.TotalAlloc - before.TotalAlloc
			goruntime.GC()
			goruntime.ReadMemStats(&after)
			retained := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			t.Logf("%d byte request: HTTP %d in %s, heap grew by %d KiB at most, %d KiB allocated, %d KiB retained",
				len(c.body), resp.StatusCode, took, grown>>10, allocated>>10, retained>>10)
			if c.refused && !refusal(resp.StatusCode, answer) {
				t.Errorf("HTTP %d %.200s: not refused", resp.StatusCode, answer)
			}
			if c.refused && took > hostileMaxTime {
				t.Errorf("refused in %s, want at most %s", took, hostileMaxTime)
			}
			if grown > hostileMaxHeapGrowth {
				t.Errorf("the heap grew by %d MiB, want at most %d MiB", grown>>20, hostileMaxHeapGrowth>>20)
			}
			if retained > hostileMaxRetained {
				t.Errorf("%d KiB still held after the request", retained>>10)
			}
		})
	}
	// Still alive and answering.
	w := serve(srv.Config.Handler, webhookconfig.InjectPath, "application/json", reviewOf(t, podInputs(t)["bare-pod"]))
	if resp := admissionResponse(t, w); !resp.Allowed || resp.Patch == nil {
		t.Errorf("a plain pod after the hostile requests: %+v", resp)
	}
}

// sampleHeapPeak samples the heap every millisecond until the returned
// function is called, which returns the highest figure seen.
func sampleHeapPeak() func() uint64 {
	stop, done := make(chan struct{}), make(chan uint64)
	go func() {
		var peak uint64
		var m goruntime.MemStats
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			goruntime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
			select {
			case <-stop:
				done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(stop); return <-done }
}

// stalledRequest posts to path a body that never ends and whose length is
// not announced (so it weighs MaxRequestBytes), holding its share of the
// webhook until release is closed.
func stalledRequest(t *testing.T, srv *httptest.Server, path string, release <-chan struct{}, done *sync.WaitGroup) {
	t.Helper()
	r, w := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	done.Add(1)
	go func() {
		defer done.Done()
		if resp, err := srv.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	_, _ = w.Write([]byte(`{"kind":`))
	go func() { <-release; w.CloseWithError(io.ErrUnexpectedEOF) }()
}

func TestWebhooksShedRequestsPastTheirLimit(t *testing.T) {
	srv := webhooksUnderTest(t)
	for _, c := range []struct {
		path   string
		limits Limits
	}{{webhookconfig.InjectPath, InjectorLimits}, {webhookconfig.ValidatePath, ValidatorLimits}} {
		t.Run(strings.TrimPrefix(c.path, "/"), func(t *testing.T) {
			release := make(chan struct{})
			var held sync.WaitGroup
			for range c.limits.InFlightBytes / MaxRequestBytes {
				stalledRequest(t, srv, c.path, release, &held)
			}
			defer func() { close(release); held.Wait() }()
			time.Sleep(200 * time.Millisecond) // the stalled requests reach their slots
			start := time.Now()
			resp, err := srv.Client().Post(srv.URL+c.path, "application/json", bytes.NewReader(reviewOf(t, podInputs(t)["bare-pod"])))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			took := time.Since(start)
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Errorf("request past %d bytes at once: HTTP %d, want 429", c.limits.InFlightBytes, resp.StatusCode)
			}
			if took > c.limits.Wait+500*time.Millisecond {
				t.Errorf("answered in %s, want within the %s wait", took, c.limits.Wait)
			}
		})
	}
	// Once the slots are free, requests are served again.
	w := serve(srv.Config.Handler, webhookconfig.InjectPath, "application/json", reviewOf(t, podInputs(t)["bare-pod"]))
	if w.Code != http.StatusOK {
		t.Errorf("after the burst: HTTP %d", w.Code)
	}
}

func TestInjectorServesABurstOfOrdinaryPods(t *testing.T) {
	srv := webhooksUnderTest(t)
	review := reviewOf(t, podInputs(t)["deployment"])
	const burst = 100 // a ReplicaSet's slow start sends up to half its replicas at once
	statuses := make(chan int, burst)
	for range burst {
		go func() {
			resp, err := srv.Client().Post(srv.URL+webhookconfig.InjectPath, "application/json", bytes.NewReader(review))
			if err != nil {
				statuses <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	for range burst {
		if status := <-statuses; status != http.StatusOK {
			t.Errorf("HTTP %d in a burst of %d ordinary pods, want every one injected", status, burst)
		}
	}
}
