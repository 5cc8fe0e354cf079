// Package readiness serves the operator's readiness checks (/readyz) as a
// metric, so that an alert sees a replica that runs and answers its scrape
// but cannot serve its webhooks: the kubelet's probe keeps such a replica
// out of the Service, and nothing else would tell.
package readiness

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

// checkTimeout bounds one check at scrape time (a check may call the API
// server: cert-manager's CA injection).
const checkTimeout = 5 * time.Second

var readyDesc = prometheus.NewDesc("meshkeeper_ready_check",
	"1 when the readiness check (the check label, as /readyz names it) passes at scrape time, 0 when it fails.",
	[]string{"check"}, nil)

// Checks is the set of readiness checks, run at each scrape.
type Checks map[string]healthz.Checker

var _ prometheus.Collector = Checks(nil)

// Describe implements prometheus.Collector.
func (c Checks) Describe(ch chan<- *prometheus.Desc) { ch <- readyDesc }

// Collect runs every check and reports its result.
func (c Checks) Collect(ch chan<- prometheus.Metric) {
	for name, check := range c {
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, passes(check), name)
	}
}

func passes(check healthz.Checker) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/readyz", nil)
	if err != nil || check(req) != nil {
		return 0
	}
	return 1
}
