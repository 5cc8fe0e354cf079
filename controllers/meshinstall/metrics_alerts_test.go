package meshinstall

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// TestAlertMetricsFollowStatus records passes of one MeshInstall in turn
// and reads back every series the alerts use: each one says what the
// status says now, and nothing of an earlier pass stays behind.
func TestAlertMetricsFollowStatus(t *testing.T) {
	expiry := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	stalled := metav1.Condition{Type: meshv1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: meshv1alpha1.ReasonControlPlaneNotAvailable}
	notStalled := metav1.Condition{Type: meshv1alpha1.ConditionStalled, Status: metav1.ConditionFalse, Reason: "NotStalled"}
	for _, step := range []struct {
		name    string
		status  meshv1alpha1.MeshInstallStatus
		stalled map[string]float64
		canary  map[string]float64
		ca      map[string]float64
	}{{
		name:    "a canary whose istiod missed its deadline",
		status:  meshv1alpha1.MeshInstallStatus{Conditions: []metav1.Condition{stalled}, Canary: &meshv1alpha1.CanaryStatus{Revision: "1-32-0"}},
		stalled: map[string]float64{"alerts,ControlPlaneNotAvailable": 1},
		canary:  map[string]float64{"alerts,1-32-0": 0},
		ca:      map[string]float64{},
	}, {
		name: "the canary healthy at its step, the mesh CA issued",
		status: meshv1alpha1.MeshInstallStatus{Conditions: []metav1.Condition{notStalled},
			Canary:               &meshv1alpha1.CanaryStatus{Revision: "1-32-0", Weight: 10, HealthySince: &metav1.Time{Time: expiry.Add(-time.Hour)}},
			CertificateAuthority: &meshv1alpha1.CertificateAuthorityStatus{Ready: true, NotAfter: &metav1.Time{Time: expiry}}},
		stalled: map[string]float64{"alerts,": 0},
		canary:  map[string]float64{"alerts,1-32-0": 1},
		ca:      map[string]float64{"alerts": float64(expiry.Unix())},
	}, {
		name:    "promoted, back to istiod's own CA, no condition yet",
		status:  meshv1alpha1.MeshInstallStatus{},
		stalled: map[string]float64{"alerts,": 0},
		canary:  map[string]float64{},
		ca:      map[string]float64{},
	}} {
		t.Run(step.name, func(t *testing.T) {
			recordAlertMetrics(&meshv1alpha1.MeshInstall{ObjectMeta: metav1.ObjectMeta{Name: "alerts"}, Status: step.status})
			for name, c := range map[string]struct {
				got, want map[string]float64
			}{
				"meshkeeper_meshinstall_stalled":              {seriesOf(t, stalledGauge, "alerts"), step.stalled},
				"meshkeeper_canary_healthy":                   {seriesOf(t, canaryHealthyGauge, "alerts"), step.canary},
				"meshkeeper_mesh_ca_expiry_timestamp_seconds": {seriesOf(t, meshCAExpiryGauge, "alerts"), step.ca},
			} {
				if !maps.Equal(c.got, c.want) {
					t.Errorf("%s = %v, want %v", name, c.got, c.want)
				}
			}
		})
	}
}

// seriesOf collects a gauge's series of one MeshInstall, keyed by their
// label values in the order of the gauge's labels, comma-separated.
func seriesOf(t *testing.T, g *prometheus.GaugeVec, meshInstall string) map[string]float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	g.Collect(ch)
	close(ch)
	out := map[string]float64{}
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		var values []string
		for _, l := range pb.GetLabel() {
			values = append(values, l.GetValue())
		}
		if !slices.Contains(values, meshInstall) {
			continue
		}
		out[strings.Join(values, ",")] = pb.GetGauge().GetValue()
	}
	return out
}

// A deleted MeshInstall leaves no series behind: its alerts (stalled, not
// Ready, pods without sidecars) would otherwise fire on its last values
// until the operator restarts.
func TestADeletedMeshInstallLeavesNoSeries(t *testing.T) {
	startManager(t, managerOpts{})
	ctx := context.Background()
	mi := createSample(t, nil)
	eventually(t, timeout, "the MeshInstall's series", func() error {
		if n := seriesNamed(t, mi.Name); n == 0 {
			return errors.New("none yet")
		}
		return nil
	})
	if err := env.Client.Delete(ctx, mi); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "no series of the deleted MeshInstall", func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(mi), &meshv1alpha1.MeshInstall{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the MeshInstall is still there (%v)", err)
		}
		if n := seriesNamed(t, mi.Name); n > 0 {
			return fmt.Errorf("%d series still name it", n)
		}
		return nil
	})
}

// seriesNamed counts the series in the manager's registry whose
// meshinstall label is name.
func seriesNamed(t *testing.T, name string) int {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "meshinstall" && l.GetValue() == name {
					n++
				}
			}
		}
	}
	return n
}
