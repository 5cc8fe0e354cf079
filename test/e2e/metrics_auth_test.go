package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshkeeper/meshkeeper/internal/localcluster"
)

// TestMetricsAnswerOnlyAuthorizedTokens scrapes the operator's metrics as
// Prometheus would and as intruders would: the endpoint speaks HTTPS only,
// refuses a request the API server cannot authenticate (401) and one whose
// ServiceAccount may not GET /metrics (403), and answers a ServiceAccount
// bound to config/rbac's metrics-reader ClusterRole.
func TestMetricsAnswerOnlyAuthorizedTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	ctx := context.Background()
	if err := localcluster.CreateServiceAccount(ctx, e.cfg, "default", "no-metrics"); err != nil {
		t.Fatal(err)
	}
	unauthorized, _, err := localcluster.ServiceAccountToken(ctx, e.cfg, "default", "no-metrics", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, token string
		want        []int
	}{
		{"no token", "", []int{http.StatusUnauthorized}},
		// controller-runtime's filter answers 500 when the TokenReview
		// reports an error, as it does for a token that is no JWT.
		{"a forged token", "not-a-token", []int{http.StatusUnauthorized, http.StatusInternalServerError}},
		{"a ServiceAccount without the metrics-reader role", unauthorized, []int{http.StatusForbidden}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, err := e.operator.ScrapeMetrics(tc.token)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(tc.want, status) {
				t.Errorf("status %d, want one of %v: %s", status, tc.want, body)
			}
			if strings.Contains(body, "meshkeeper_") {
				t.Errorf("metrics served without authorization: %.200s", body)
			}
		})
	}

	t.Run("plain HTTP", func(t *testing.T) {
		resp, err := http.Get(strings.Replace(e.operator.MetricsURL(), "https://", "http://", 1))
		if err != nil {
			return // refused outright: fine
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP answered %s, want 400 (an HTTP request to an HTTPS server)", resp.Status)
		}
	})

	t.Run("a ServiceAccount bound to metrics-reader", func(t *testing.T) {
		body, err := e.operator.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"meshkeeper_injection_duration_seconds_count",
			`controller_runtime_reconcile_total{controller="webhookcerts"`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("no %s in the metrics", want)
			}
		}
	})
}
