package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
// client authentication) can exhaust the operator's memory: at most
// InFlight requests are read and answered at a time, each of at most
// MaxRequestBytes; up to Queue more wait for a slot, each at most Wait,
// holding only their connection (their body is not read yet). The rest,
// and those that waited too long, are answered 429 at once, so that the
// API server applies the webhook's failurePolicy rather than time out.
type Limits struct {
	InFlight int
	Queue    int
	Wait     time.Duration
	// ReadBody bounds the time to read a request's body once it holds a
	// slot: the API server sends it at once; a client that trickles it
	// would hold the slot.
	ReadBody time.Duration
}

// Each webhook's limits. A request of MaxRequestBytes takes up to ~66 MiB
// of heap while it is decoded and answered (a pod of 320,000 tiny labels,
// measured by TestWebhooksBoundHostileRequests; an ordinary pod takes
// ~3 MiB), so InFlight bounds each webhook's share of the memory limit
// (config/manager): 2 × 66 MiB for the injector, 1 × 15 MiB for the
// validator. An ordinary injection takes about a millisecond, so two at a
// time still answer a burst of hundreds of pods within the Wait; a waiting
// request holds only its connection (~40 KiB with TLS buffers).
var (
	InjectorLimits  = Limits{InFlight: 2, Queue: 256, Wait: time.Second, ReadBody: 5 * time.Second}
	ValidatorLimits = Limits{InFlight: 1, Queue: 16, Wait: time.Second, ReadBody: 5 * time.Second}
)

var shedRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "meshkeeper_webhook_requests_shed_total",
	Help: "Admission requests answered 429 because the webhook (injector or validator) was serving its limit of requests at once.",
}, []string{"webhook"})

func init() {
	metrics.Registry.MustRegister(shedRequests)
}

// Bounded serves h within l: a request waits for one of l.InFlight slots,
// and its body is refused past MaxRequestBytes (413) before h reads it.
// name labels the shed requests metric.
func Bounded(name string, h http.Handler, l Limits) http.Handler {
	slots := make(chan struct{}, l.InFlight)
	queue := make(chan struct{}, l.Queue)
	shed := func(w http.ResponseWriter) {
		shedRequests.WithLabelValues(name).Inc()
		w.Header().Set("Retry-After", "1")
		http.Error(w, fmt.Sprintf("the %s is serving its limit of %d requests at once", name, l.InFlight), http.StatusTooManyRequests)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := acquire(r.Context(), slots, queue, l.Wait); err != nil {
			shed(w)
			return
		}
		defer func() { <-slots }()
		if r.ContentLength > MaxRequestBytes {
			http.Error(w, fmt.Sprintf("request body exceeds %d bytes", MaxRequestBytes), http.StatusRequestEntityTooLarge)
			return
		}
		// Ignored where the connection cannot have one (HTTP/2 streams, tests).
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(l.ReadBody))
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		h.ServeHTTP(w, r)
	})
}

var errBusy = errors.New("busy")

// acquire takes a slot, waiting in queue at most wait when none is free.
func acquire(ctx context.Context, slots, queue chan struct{}, wait time.Duration) error {
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case queue <- struct{}{}:
		defer func() { <-queue }()
	default:
		return errBusy
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case slots <- struct{}{}:
		return nil
	case <-timer.C:
		return errBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}
