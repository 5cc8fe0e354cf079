package webhooks

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshkeeper/meshkeeper/internal/inject"
)

// discardWriter is an http.ResponseWriter that keeps the last response body.
type discardWriter struct {
	header http.Header
	body   bytes.Buffer
	status int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(b []byte) (int, error) { return w.body.Write(b) }

// BenchmarkInject measures the webhook's full path, AdmissionReview JSON in
// to AdmissionReview JSON out, for a Deployment's pod with one container,
// one port, HTTP readiness and liveness probes (testdata/deployment.in.yaml).
func BenchmarkInject(b *testing.B) {
	pod := podInputs(b)["deployment"]
	body := reviewOf(b, pod)
	for _, mode := range []struct {
		name   string
		native string
		// restricted: CNI and RuntimeDefault, in a namespace that enforces
		// Pod Security restricted, which the pod (no security context)
		// fails on its own: the injected pod and the pod as created are
		// both evaluated, the check's most expensive case.
		restricted bool
	}{
		{"native", inject.NativeSidecarsEnabled, false},
		{"classic", inject.NativeSidecarsDisabled, false},
		{"native-cni-restricted-namespace", inject.NativeSidecarsEnabled, true},
	} {
		b.Run(mode.name, func(b *testing.B) {
			cfg := testConfig("default")
			cfg.NativeSidecars = mode.native
			h := NewInjectHandler(staticSource{
				revisions: map[string]*inject.Config{"default": cfg},
				tags:      map[string]string{"default": "default"},
			}, logr.Discard())
			if mode.restricted {
				cfg.CNI = &inject.CNI{}
				cfg.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
				h.WithNamespaces(namespaceLabels{pod.Namespace: {"pod-security.kubernetes.io/enforce": "restricted"}})
			}
			reader := bytes.NewReader(body)
			req := httptest.NewRequest(http.MethodPost, "/inject", reader)
			req.Header.Set("Content-Type", "application/json")
			w := &discardWriter{header: http.Header{}}
			// One request first, checked, so the benchmark measures a real injection.
			h.ServeHTTP(w, req)
			if w.status != 0 && w.status != http.StatusOK || !bytes.Contains(w.body.Bytes(), []byte(`"patch":"`)) {
				b.Fatalf("not injected: %d %s", w.status, w.body.String())
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				reader.Reset(body)
				req.Body = readCloser{reader}
				w.body.Reset()
				h.ServeHTTP(w, req)
			}
		})
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
