package e2e

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/controllers/meshinstall"
	"github.com/meshkeeper/meshkeeper/internal/localcluster"
)

const (
	burstPods = 1000
	// Write budgets, from the operator's own rest_client_requests_total.
	steadyWriteBudget = 0
	// burstWriteBudget bounds a burst's writes whatever its size: at most
	// one status write per batch of pod events (podEventDelayForTests) while the
	// pods keep changing, and one more for the last. How long a burst of
	// pods takes to become Ready is the simulated cluster's pace (100 s on
	// an idle machine, over 3 min on a busy one), not the operator's, so the
	// budget follows the burst's duration rather than a fixed count that a
	// slow cluster exceeds (11 writes over 3m2s against a fixed 10).
	burstWriteBudgetFloor = 10
)

// burstWriteBudget is the write budget of a burst that took elapsed.
func burstWriteBudget(elapsed time.Duration) int {
	return max(burstWriteBudgetFloor, int(elapsed/podEventDelayForTests)+1)
}

// TestQuietClusterCostsNoWrites measures the requests the operator makes:
// over a steady minute with a draining revision still in use, and for a
// burst of 1,000 pod creations. Leader election is off, so every write
// counted is the controllers' own.
func TestQuietClusterCostsNoWrites(t *testing.T) {
	runsLong(t, 150*time.Second)
	t.Parallel()
	// Plain HTTP metrics: authenticating a scrape costs the operator a
	// TokenReview (a POST), which the write budgets would count.
	e := newEnvWith(t, 10, func(o *localcluster.Operator) {
		o.ExtraArgs = []string{"--leader-elect=false"}
		o.InsecureMetrics = true
	})
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Version = stableVer
	mi.Spec.Gateways = nil
	mi.Spec.Profile = meshv1alpha1.ProfileMinimal // no gateway: the control plane only
	mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{
		Type:   meshv1alpha1.UpdateStrategyCanary,
		Canary: &meshv1alpha1.CanaryStrategy{Steps: []int32{100}, StepInterval: &metav1.Duration{Duration: time.Second}},
		// The old revision drains for longer than the test: its pods keep it.
		InactiveRevisionDeletionGracePeriod: &metav1.Duration{Duration: time.Hour},
	}
	if err := e.k8s.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	e.waitReady(t, mi.Name, installTimeout)
	e.ensureNamespace(t, "shop", map[string]string{"istio-injection": "enabled"})
	for i := range 5 {
		if err := e.k8s.Create(ctx, app("shop", fmt.Sprintf("web-%d", i), 2)); err != nil {
			t.Fatal(err)
		}
	}
	e.updateMeshInstall(t, mi.Name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Version = canaryVer })
	eventually(t, 90*time.Second, "promoted, the old revision draining with its pods", func() error {
		st := e.getMeshInstall(t, mi.Name).Status
		if st.ActiveRevision != canaryRev || len(st.Revisions) != 2 || st.Revisions[1].Pods != 10 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	e.waitReady(t, mi.Name, 30*time.Second)
	time.Sleep(2 * podEventDelayForTests) // let the last batch of pod events land

	before := e.requests(t)
	time.Sleep(time.Minute)
	steady := e.requests(t).minus(before)
	t.Logf("one steady minute with a draining revision: %s", steady)
	if w := steady.writes(); w > steadyWriteBudget {
		t.Errorf("%d writes over a steady minute, budget %d", w, steadyWriteBudget)
	}

	e.ensureNamespace(t, "burst", map[string]string{"istio-injection": "enabled"})
	before = e.requests(t)
	fullBefore := e.counter(t, `meshkeeper_passes_total{meshinstall="default",pass="full"}`)
	start := time.Now()
	e.createObjects(t, burstPods, func(i int) client.Object {
		return barePod("burst", fmt.Sprintf("pod-%04d", i), map[string]string{"app": "burst"})
	})
	eventually(t, 2*time.Minute, "every burst pod Running and counted", func() error {
		var pods corev1.PodList
		if err := e.k8s.List(ctx, &pods, client.InNamespace("burst")); err != nil {
			return err
		}
		running := 0
		for i := range pods.Items {
			if podReady(&pods.Items[i]) {
				running++
			}
		}
		dp := e.getMeshInstall(t, mi.Name).Status.DataPlane
		if running != burstPods || dp == nil || dp.InjectedPods != burstPods+10 {
			return fmt.Errorf("%d ready, dataPlane %+v", running, dp)
		}
		return nil
	})
	time.Sleep(2 * podEventDelayForTests)
	burst := e.requests(t).minus(before)
	elapsed := time.Since(start)
	t.Logf("a burst of %d pods (created, scheduled, Running and Ready, and counted, in %s): %s; budget %d writes",
		burstPods, elapsed.Round(time.Second), burst, burstWriteBudget(elapsed))
	if w := burst.writes(); w > burstWriteBudget(elapsed) {
		t.Errorf("%d writes for a burst of %d pods over %s, budget %d", w, burstPods, elapsed.Round(time.Second), burstWriteBudget(elapsed))
	}
	// Pods alone change nothing a pass applies from: every pass they
	// trigger stops after its plan (nothingToApply), rendering nothing.
	if full := e.counter(t, `meshkeeper_passes_total{meshinstall="default",pass="full"}`) - fullBefore; full != 0 {
		t.Errorf("%v full passes (render and apply) for a burst of pods, want none", full)
	}
}

// counter reads one sample of the operator's metrics (0 when absent).
func (e *env) counter(t *testing.T, sample string) float64 {
	t.Helper()
	text, err := e.operator.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}

// podEventDelayForTests is the operator's batching of pod events.
const podEventDelayForTests = meshinstall.DefaultPodEventDelay

// requestCounts are the operator's API requests by method.
type requestCounts map[string]float64

func (c requestCounts) minus(o requestCounts) requestCounts {
	out := requestCounts{}
	for m, n := range c {
		if d := n - o[m]; d != 0 {
			out[m] = d
		}
	}
	return out
}

func (c requestCounts) writes() int {
	return int(c["POST"] + c["PUT"] + c["PATCH"] + c["DELETE"])
}

func (c requestCounts) String() string {
	if len(c) == 0 {
		return "no requests"
	}
	var parts []string
	for _, m := range []string{"GET", "LIST", "WATCH", "POST", "PUT", "PATCH", "DELETE"} {
		if n := c[m]; n != 0 {
			parts = append(parts, fmt.Sprintf("%d %s", int(n), m))
		}
	}
	return strings.Join(parts, ", ")
}

// requests reads client-go's rest_client_requests_total from the operator's metrics.
func (e *env) requests(t *testing.T) requestCounts {
	t.Helper()
	text, err := e.operator.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	out := requestCounts{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "rest_client_requests_total{") {
			continue
		}
		labels, value, ok := strings.Cut(strings.TrimPrefix(line, "rest_client_requests_total{"), "} ")
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		for _, l := range strings.Split(labels, ",") {
			if m, ok := strings.CutPrefix(l, `method="`); ok {
				out[strings.TrimSuffix(m, `"`)] += n
			}
		}
	}
	return out
}
