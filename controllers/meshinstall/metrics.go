package meshinstall

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
)

// The pass label of meshkeeper_passes_total.
const (
	// passApply is a pass that rendered and applied.
	passApply = "full"
	// passCount is a pass whose plan found nothing to apply (nothingToApply).
	passCount = "recount"
)

var (
	revisionsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meshkeeper_revisions",
		Help: "Control plane revisions of a MeshInstall by role (Active, Canary, Draining) and readiness.",
	}, []string{"meshinstall", "role", "ready"})
	readyGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meshkeeper_meshinstall_ready",
		Help: "1 when the MeshInstall's Ready condition is True, else 0.",
	}, []string{"meshinstall"})
	canaryWeightGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meshkeeper_canary_weight_percent",
		Help: "Share of tag-selecting workloads assigned to the canary revision (0 when no canary runs).",
	}, []string{"meshinstall"})
	dataPlaneGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meshkeeper_dataplane_pods",
		Help: "Running pods of the mesh by state: injected, up_to_date, outdated, uninjected (should have a sidecar but have none), and unmanaged (outdated or uninjected pods no controller owns).",
	}, []string{"meshinstall", "state"})
	revisionPodsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meshkeeper_revision_pods",
		Help: "Running pods injected by each control plane revision, and how many of them are up to date.",
	}, []string{"meshinstall", "revision", "state"})
	passes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshkeeper_passes_total",
		Help: "MeshInstall passes by kind: full (gather, plan, render, apply, status) or recount (gather and plan found nothing to apply: the data plane counts and the rollout only).",
	}, []string{"meshinstall", "pass"})
	rolloutWorkloads = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meshkeeper_rollout_workloads",
		Help: "Workloads of the data plane rollout by state: waiting, in_progress, done, failed, skipped.",
	}, []string{"meshinstall", "state"})
	rolloutDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "meshkeeper_rollout_workload_duration_seconds",
		Help:    "How long a workload restarted by meshkeeper took to run its new proxy everywhere.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12),
	})
	reconcileErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshkeeper_reconcile_errors_total",
		Help: "Failed MeshInstall reconciliations by reason (a Stalled reason, ApplyFailed, or Transient).",
	}, []string{"meshinstall", "reason"})
)

func init() {
	metrics.Registry.MustRegister(revisionsGauge, readyGauge, canaryWeightGauge, dataPlaneGauge, revisionPodsGauge, passes, rolloutWorkloads, rolloutDuration, reconcileErrors)
}

// recordMetrics publishes what the pass wrote to status.
func recordMetrics(mi *meshv1alpha1.MeshInstall, err error) {
	revisionsGauge.DeletePartialMatch(prometheus.Labels{"meshinstall": mi.Name})
	revisionPodsGauge.DeletePartialMatch(prometheus.Labels{"meshinstall": mi.Name})
	for _, r := range mi.Status.Revisions {
		revisionsGauge.WithLabelValues(mi.Name, string(r.Role), strconv.FormatBool(r.Ready)).Inc()
		revisionPodsGauge.WithLabelValues(mi.Name, r.Name, "running").Set(float64(r.Pods))
		revisionPodsGauge.WithLabelValues(mi.Name, r.Name, "up_to_date").Set(float64(r.UpToDatePods))
	}
	if dp := mi.Status.DataPlane; dp != nil {
		dataPlaneGauge.WithLabelValues(mi.Name, "injected").Set(float64(dp.InjectedPods))
		dataPlaneGauge.WithLabelValues(mi.Name, "up_to_date").Set(float64(dp.UpToDatePods))
		dataPlaneGauge.WithLabelValues(mi.Name, "outdated").Set(float64(dp.OutdatedPods))
		dataPlaneGauge.WithLabelValues(mi.Name, "uninjected").Set(float64(dp.UninjectedPods))
		dataPlaneGauge.WithLabelValues(mi.Name, "unmanaged").Set(float64(dp.UnmanagedPods))
		if ro := dp.Rollout; ro != nil {
			for state, n := range map[string]int32{"waiting": ro.Waiting, "in_progress": ro.InProgress, "done": ro.Done, "failed": ro.Failed, "skipped": ro.Skipped} {
				rolloutWorkloads.WithLabelValues(mi.Name, state).Set(float64(n))
			}
		}
	}
	ready := 0.0
	if meta.IsStatusConditionTrue(mi.Status.Conditions, meshv1alpha1.ConditionReady) {
		ready = 1
	}
	readyGauge.WithLabelValues(mi.Name).Set(ready)
	weight := 0.0
	if mi.Status.Canary != nil {
		weight = float64(mi.Status.Canary.Weight)
	}
	canaryWeightGauge.WithLabelValues(mi.Name).Set(weight)
	recordAlertMetrics(mi)
	if err != nil {
		reason := "Transient"
		var refused *refusal.Error
		if errors.As(err, &refused) {
			reason = refused.Reason
		} else if c := meta.FindStatusCondition(mi.Status.Conditions, meshv1alpha1.ConditionReady); c != nil && c.Reason == meshv1alpha1.ReasonApplyFailed {
			reason = meshv1alpha1.ReasonApplyFailed
		}
		reconcileErrors.WithLabelValues(mi.Name, reason).Inc()
	}
}

// forgetMetrics removes every series of MeshInstall name: a MeshInstall
// deleted (or being deleted) is reported by no gauge, so no alert keeps
// firing on the last values it had.
func forgetMetrics(name string) {
	byName := prometheus.Labels{"meshinstall": name}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{revisionsGauge, readyGauge, canaryWeightGauge, dataPlaneGauge, revisionPodsGauge, passes, rolloutWorkloads, reconcileErrors,
		stalledGauge, canaryHealthyGauge, meshCAExpiryGauge} {
		v.DeletePartialMatch(byName)
	}
}

func itoa(i int32) string { return strconv.Itoa(int(i)) }
