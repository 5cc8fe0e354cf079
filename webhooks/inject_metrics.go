package webhooks

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// Results of an injection request (the result label).
const (
	resultInjected = "injected"
	resultSkipped  = "skipped"
	resultRefused  = "refused"
	resultError    = "error"
)

// Reasons (the reason label): why a pod was skipped, refused, or the
// request failed.
const (
	reasonNone             = ""
	reasonNotPodCreate     = "not-pod-create"
	reasonIncompletePod    = "incomplete-pod"
	reasonHostNetwork      = webhookconfig.ExcludedHostNetwork
	reasonAlreadyInjected  = webhookconfig.ExcludedAlreadyInjected
	reasonDisabled         = webhookconfig.ExcludedOptedOut
	reasonSystemNamespace  = webhookconfig.ExcludedSystemNamespace
	reasonInvalidPod       = "invalid-pod"
	reasonPodSecurity      = "pod-security"
	reasonBadRequest       = "bad-request"
	reasonNoConfig         = "no-config"
	reasonInternal         = "internal"
	reasonUnsupportedMedia = "unsupported-media-type"
	reasonTooLarge         = "too-large"
)

var (
	injectionRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshkeeper_injection_requests_total",
		Help: "Sidecar injection webhook requests, by result (injected, skipped, refused, error), " +
			"reason (why skipped, refused or failed) and whether the request was a dry run.",
	}, []string{"result", "reason", "dry_run"})

	injectionDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "meshkeeper_injection_duration_seconds",
		Help: "Time the sidecar injection webhook takes to answer, from request to response.",
		Buckets: []float64{
			25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
			1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3,
		},
	})
)

func init() {
	metrics.Registry.MustRegister(injectionRequests, injectionDuration)
}

func countRequest(result, reason string, dryRun bool) {
	dry := "false"
	if dryRun {
		dry = "true"
	}
	injectionRequests.WithLabelValues(result, reason, dry).Inc()
}
