package webhooks

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// MaxRequestBytes bounds an admission request's body, on both webhooks.
// The API server accepts request bodies of at most 3 MiB (its
// --max-request-bytes default) and etcd stores objects of at most 1.5 MiB;
// a review carries the object and, for an update, the stored old one, in
// JSON, plus about 1 KiB of envelope. 4 MiB admits every pod creation the
// API server accepts and every MeshInstall update etcd can store.
const MaxRequestBytes = 4 << 20

// Limits bounds what one webhook may hold at once, so that no burst and no
// hostile client (the webhook port is reachable in the cluster, without
// client authentication) can exhaust the operator's memory. A request
// weighs its body's announced length (MaxRequestBytes when it announces
// none), at least MinRequestWeight: requests are served while their weights
// add up to at most InFlightBytes, since a request's heap grows with its
// body. Up to Queue more wait for room, each at most Wait, holding only
// their connection (their body is not read yet). The rest, and those that
// waited too long, are answered 429 at once, so that the API server applies
// the webhook's failurePolicy rather than time out.
type Limits struct {
	InFlightBytes int64
	Queue         int
	Wait          time.Duration
	// ReadBody bounds the time to read a request's body once it is served:
	// the API server sends it at once; a client that trickles it would
	// hold its share of InFlightBytes.
	ReadBody time.Duration
}

// MinRequestWeight is the least a request weighs: an ordinary pod's review
// is a few KiB, and serving it takes a few hundred KiB of heap.
const MinRequestWeight = 64 << 10

// Each webhook's limits. A request of MaxRequestBytes takes up to ~66 MiB
// of heap while it is decoded and answered (a pod of 320,000 tiny labels,
// measured by TestWebhooksBoundHostileRequests; an ordinary pod's takes
// well under 1 MiB), so InFlightBytes bounds each webhook's share of the
// memory limit (config/manager): 2 maximal requests at once for the
// injector (2 x 66 MiB), 1 for the validator (15 MiB), or 128 and 64
// ordinary ones. A waiting request holds ~40 KiB (its TLS connection).
var (
	InjectorLimits  = Limits{InFlightBytes: 2 * MaxRequestBytes, Queue: 256, Wait: time.Second, ReadBody: 5 * time.Second}
	ValidatorLimits = Limits{InFlightBytes: MaxRequestBytes, Queue: 16, Wait: time.Second, ReadBody: 5 * time.Second}
)

var shedRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "meshkeeper_webhook_requests_shed_total",
	Help: "Admission requests answered 429 because the webhook (injector or validator) was serving its limit of request bytes at once.",
}, []string{"webhook"})

func init() {
	metrics.Registry.MustRegister(shedRequests)
}

// Bounded serves h within l, and refuses a body past MaxRequestBytes (413)
// before h reads it. name labels the shed requests metric.
func Bounded(name string, h http.Handler, l Limits) http.Handler {
	inFlight := semaphore.NewWeighted(l.InFlightBytes)
	queue := make(chan struct{}, l.Queue)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxRequestBytes {
			http.Error(w, fmt.Sprintf("request body exceeds %d bytes", MaxRequestBytes), http.StatusRequestEntityTooLarge)
			return
		}
		weight := int64(MaxRequestBytes)
		if r.ContentLength >= 0 {
			weight = max(r.ContentLength, MinRequestWeight)
		}
		if !acquire(r.Context(), inFlight, weight, queue, l.Wait) {
			shedRequests.WithLabelValues(name).Inc()
			w.Header().Set("Retry-After", "1")
			http.Error(w, fmt.Sprintf("the %s is serving its limit of %d bytes of requests at once", name, l.InFlightBytes), http.StatusTooManyRequests)
			return
		}
		defer inFlight.Release(weight)
		// Ignored where the connection cannot have one.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(l.ReadBody))
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		h.ServeHTTP(w, r)
	})
}

// acquire takes weight from inFlight, waiting in queue at most wait when
// there is not enough room.
func acquire(ctx context.Context, inFlight *semaphore.Weighted, weight int64, queue chan struct{}, wait time.Duration) bool {
	if inFlight.TryAcquire(weight) {
		return true
	}
	select {
	case queue <- struct{}{}:
		defer func() { <-queue }()
	default:
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return inFlight.Acquire(ctx, weight) == nil
}
