package meshinstall

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// The metrics config/prometheus/alerts.yaml needs beyond the counts of
// metrics.go: what a person is paged for reads here as plain values, so an
// alert is a comparison, not a reconstruction of status from counts.
var (
	stalledGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meshkeeper_meshinstall_stalled",
		Help: "1 when the MeshInstall's Stalled condition is True, with its reason (ControlPlaneNotAvailable: a new istiod " +
			"missed spec.updateStrategy.progressDeadline); 0, with reason \"\", when it is not stalled.",
	}, []string{"meshinstall", "reason"})
	canaryHealthyGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meshkeeper_canary_healthy",
		Help: "While a canary runs: 1 when it is healthy at its step (status.canary.healthySince is set), 0 when the step " +
			"is held because it is not. Absent when no canary runs.",
	}, []string{"meshinstall", "revision"})
	meshCAExpiryGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meshkeeper_mesh_ca_expiry_timestamp_seconds",
		Help: "When the mesh CA certificate (cacerts, issued by cert-manager: spec.security.certificateAuthority type CertManager) " +
			"expires, in seconds since the epoch. Absent while no such CA is issued.",
	}, []string{"meshinstall"})
)

func init() {
	metrics.Registry.MustRegister(stalledGauge, canaryHealthyGauge, meshCAExpiryGauge)
}

// recordAlertMetrics publishes the stall, the canary's health and the mesh
// CA's expiry from the status the pass wrote. Each series of the
// MeshInstall is replaced, so a reason, a canary or a CA that is gone
// leaves no series behind.
func recordAlertMetrics(mi *meshv1alpha1.MeshInstall) {
	byName := prometheus.Labels{"meshinstall": mi.Name}
	stalledGauge.DeletePartialMatch(byName)
	canaryHealthyGauge.DeletePartialMatch(byName)
	meshCAExpiryGauge.DeletePartialMatch(byName)

	if c := meta.FindStatusCondition(mi.Status.Conditions, meshv1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		stalledGauge.WithLabelValues(mi.Name, c.Reason).Set(1)
	} else {
		stalledGauge.WithLabelValues(mi.Name, "").Set(0)
	}
	if c := mi.Status.Canary; c != nil {
		canaryHealthyGauge.WithLabelValues(mi.Name, c.Revision).Set(boolValue(c.HealthySince != nil))
	}
	if ca := mi.Status.CertificateAuthority; ca != nil && ca.NotAfter != nil {
		meshCAExpiryGauge.WithLabelValues(mi.Name).Set(float64(ca.NotAfter.Unix()))
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
