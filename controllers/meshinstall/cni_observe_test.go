package meshinstall

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshkeeper/meshkeeper/internal/render"
)

// The node agent is available only rolled out on its nodes and ready
// wherever meshed pods run; otherwise the reason says what is missing.
func TestCNIObservedAvailability(t *testing.T) {
	ds := func(gen, observed, desired, updated, available int32) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Generation: int64(gen), Labels: map[string]string{render.LabelVersion: "1.31.4"}},
			Status: appsv1.DaemonSetStatus{ObservedGeneration: int64(observed), DesiredNumberScheduled: desired,
				UpdatedNumberScheduled: updated, NumberAvailable: available},
		}
	}
	nodes := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	for _, tc := range []struct {
		name      string
		obs       cniObservation
		available bool
		reason    string
	}{
		{"rolled out, an agent wherever meshed pods run", cniObservation{daemonSet: ds(2, 2, 3, 3, 3), readyNodes: nodes("a", "b", "c"), meshedNodes: nodes("a", "c")}, true, ""},
		{"a new template not observed yet", cniObservation{daemonSet: ds(3, 2, 3, 3, 3)}, false, "not observed yet"},
		{"rolling one node at a time", cniObservation{daemonSet: ds(2, 2, 3, 2, 2)}, false, "2 of 3 nodes updated, 2 available"},
		{"updated but not yet available", cniObservation{daemonSet: ds(2, 2, 3, 3, 2)}, false, "3 of 3 nodes updated, 2 available"},
		{"meshed pods on a node without an agent", cniObservation{daemonSet: ds(1, 1, 1, 1, 1), readyNodes: nodes("a"), meshedNodes: nodes("a", "tainted")}, false, "meshed pods: tainted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.obs.observed()
			if o.Available != tc.available || !strings.Contains(o.Reason, tc.reason) || o.Version != "1.31.4" {
				t.Errorf("observed %+v, want available %v, reason with %q", o, tc.available, tc.reason)
			}
		})
	}
	if (cniObservation{}).observed() != nil {
		t.Error("an agent observed without a DaemonSet")
	}
}

// TrimPod marks a pod injected for the node agent by its init container;
// a pod carrying the mark itself is not believed.
func TestTrimPodMarksPodsThatRelyOnTheAgent(t *testing.T) {
	relies := func(p *corev1.Pod) bool {
		out, err := TrimPod(p)
		if err != nil {
			t.Fatal(err)
		}
		_, marked := out.(*corev1.Pod).Annotations[cachedCNIValidation]
		return marked
	}
	if !relies(cniAppPod()) {
		t.Error("a pod with istio-validation is not marked as relying on the agent")
	}
	forged := appPod(appLabels())
	forged.Annotations[cachedCNIValidation] = ""
	if relies(forged) {
		t.Error("a pod's own annotation is believed as the cache's mark")
	}
	if p := cniAppPod(); func() bool { out, _ := TrimPod(p); return out.(*corev1.Pod).Spec.NodeName != p.Spec.NodeName }() {
		t.Error("the node is not kept")
	}
}
