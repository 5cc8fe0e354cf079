package rollout

import (
	"fmt"
	"strings"
	"testing"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func pdb(name string, selector map[string]string, minAvailable, maxUnavailable *intstr.IntOrString) policyv1.PodDisruptionBudget {
	p := policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Generation: 1},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: minAvailable, MaxUnavailable: maxUnavailable}}
	if selector != nil {
		p.Spec.Selector = &metav1.LabelSelector{MatchLabels: selector}
	}
	return p
}

// counted is a budget as the disruption controller reports it.
func counted(p policyv1.PodDisruptionBudget, expected, desiredHealthy int32) policyv1.PodDisruptionBudget {
	p.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: 1, ExpectedPods: expected, DesiredHealthy: desiredHealthy, CurrentHealthy: expected}
	return p
}

func TestBudgetBreach(t *testing.T) {
	app := map[string]string{"app": "checkout", "team": "payments"}
	n := func(i int) *intstr.IntOrString { return ptr.To(intstr.FromInt32(int32(i))) }
	pct := func(s string) *intstr.IntOrString { return ptr.To(intstr.FromString(s)) }
	for _, c := range []struct {
		name     string
		template map[string]string
		replicas int32
		takes    int
		budgets  []policyv1.PodDisruptionBudget
		breach   string // "" when the restart goes ahead
	}{
		{"no budget", app, 4, 1, nil, ""},
		{"minAvailable equal to the replicas allows none", app, 4, 1, []policyv1.PodDisruptionBudget{pdb("all", map[string]string{"app": "checkout"}, n(4), nil)},
			"below PodDisruptionBudget shop/all: it allows 0 unavailable, the rollout takes up to 1"},
		{"maxUnavailable 0 allows none", app, 4, 1, []policyv1.PodDisruptionBudget{pdb("none", map[string]string{"app": "checkout"}, nil, n(0))},
			"it allows 0 unavailable"},
		{"a surge-first rollout breaches nothing", app, 4, 0, []policyv1.PodDisruptionBudget{pdb("all", map[string]string{"app": "checkout"}, n(4), nil)}, ""},
		{"one at a time within maxUnavailable 1", app, 4, 1, []policyv1.PodDisruptionBudget{pdb("one", map[string]string{"app": "checkout"}, nil, n(1))}, ""},
		{"two at a time beyond maxUnavailable 1", app, 8, 2, []policyv1.PodDisruptionBudget{pdb("one", map[string]string{"app": "checkout"}, nil, n(1))},
			"it allows 1 unavailable, the rollout takes up to 2"},
		{"minAvailable 50% of 4 allows 2", app, 4, 2, []policyv1.PodDisruptionBudget{pdb("half", map[string]string{"app": "checkout"}, pct("50%"), nil)}, ""},
		{"minAvailable 60% of 4 rounds up to 3 and allows 1", app, 4, 2, []policyv1.PodDisruptionBudget{pdb("most", map[string]string{"app": "checkout"}, pct("60%"), nil)},
			"it allows 1 unavailable, the rollout takes up to 2"},
		{"a budget over several workloads, as counted", app, 4, 2, []policyv1.PodDisruptionBudget{counted(pdb("team", map[string]string{"team": "payments"}, n(7), nil), 10, 7)}, ""},
		{"a counted budget that allows fewer than the rollout takes", app, 4, 2, []policyv1.PodDisruptionBudget{counted(pdb("team", map[string]string{"team": "payments"}, n(9), nil), 10, 9)},
			"it allows 1 unavailable"},
		{"a budget that selects other pods", app, 4, 1, []policyv1.PodDisruptionBudget{pdb("other", map[string]string{"app": "cart"}, n(4), nil)}, ""},
		{"a null selector selects no pod", app, 4, 1, []policyv1.PodDisruptionBudget{pdb("null", nil, n(4), nil)}, ""},
		{"an empty selector selects every pod", app, 4, 1, []policyv1.PodDisruptionBudget{pdb("every", map[string]string{}, n(4), nil)}, "shop/every"},
		{"dropped template labels are selected by every budget", map[string]string{TemplateLabelsDropped: "true"}, 4, 1,
			[]policyv1.PodDisruptionBudget{pdb("all", map[string]string{"app": "checkout"}, n(4), nil)}, "shop/all"},
		{"scaled to zero", app, 0, 1, []policyv1.PodDisruptionBudget{pdb("all", map[string]string{"app": "checkout"}, n(4), nil)}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := budgetBreach(c.template, c.replicas, c.takes, c.budgets)
			if (got == "") != (c.breach == "") || !strings.Contains(got, c.breach) {
				t.Errorf("budgetBreach = %q, want %q", got, c.breach)
			}
		})
	}
}

func TestDeploymentTakes(t *testing.T) {
	rolling := func(replicas int32, surge, unavailable *intstr.IntOrString) *appsv1.Deployment {
		return &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Strategy: appsv1.DeploymentStrategy{
			Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: surge, MaxUnavailable: unavailable}}}}
	}
	for _, c := range []struct {
		d    *appsv1.Deployment
		want int
	}{
		{rolling(4, nil, nil), 1},                                                 // 25% of 4
		{rolling(2, nil, nil), 0},                                                 // 25% of 2 rounds down: it surges first
		{rolling(10, nil, ptr.To(intstr.FromString("25%"))), 2},                   // rounded down
		{rolling(3, ptr.To(intstr.FromInt32(0)), ptr.To(intstr.FromInt32(0))), 1}, // as the Deployment controller: never both 0
	} {
		t.Run(fmt.Sprintf("%d replicas", *c.d.Spec.Replicas), func(t *testing.T) {
			if got := deploymentTakes(c.d); got != c.want {
				t.Errorf("deploymentTakes = %d, want %d", got, c.want)
			}
		})
	}
}

func TestDeploymentOutage(t *testing.T) {
	rolling := func(replicas int32, surge, unavailable intstr.IntOrString) *appsv1.Deployment {
		return &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Strategy: appsv1.DeploymentStrategy{
			Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable}}}}
	}
	for _, c := range []struct {
		name    string
		d       *appsv1.Deployment
		outage  bool
		because string
	}{
		{"Recreate", &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](5), Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}}, true, "Recreate strategy"},
		{"the defaults on one replica surge first", rolling(1, intstr.FromString("25%"), intstr.FromString("25%")), false, ""},
		{"one replica, no surge", rolling(1, intstr.FromInt32(0), intstr.FromInt32(1)), true, "maxUnavailable"},
		{"100% unavailable", rolling(4, intstr.FromString("25%"), intstr.FromString("100%")), true, "maxUnavailable"},
		{"half of two rounds down to one", rolling(2, intstr.FromInt32(0), intstr.FromString("50%")), false, ""},
		{"three, one at a time", rolling(3, intstr.FromInt32(0), intstr.FromInt32(1)), false, ""},
		{"scaled to zero", rolling(0, intstr.FromInt32(0), intstr.FromInt32(1)), false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := deploymentOutage(c.d)
			if (got != "") != c.outage || !strings.Contains(got, c.because) {
				t.Errorf("deploymentOutage = %q, want outage %v (%s)", got, c.outage, c.because)
			}
		})
	}
}

// TestUnrestartable: what the reconciler and the plugin's precheck report
// of each kind of workload, the opt-in annotation included.
func TestUnrestartable(t *testing.T) {
	allow := map[string]string{meshv1alpha1.AnnotationRestart: meshv1alpha1.RestartAllow}
	recreate := appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	onDelete := appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	for _, c := range []struct {
		name, got, want string
	}{
		{"a paused Deployment", DeploymentUnrestartable(&appsv1.Deployment{Spec: appsv1.DeploymentSpec{Paused: true}}, nil), "paused"},
		{"a Recreate Deployment", DeploymentUnrestartable(&appsv1.Deployment{Spec: appsv1.DeploymentSpec{Strategy: recreate}}, nil), "Recreate strategy"},
		{"a Recreate Deployment allowed", DeploymentUnrestartable(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Annotations: allow}, Spec: appsv1.DeploymentSpec{Strategy: recreate}}, nil), ""},
		{"a Deployment below its budget", DeploymentUnrestartable(&appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](4),
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "checkout"}}}}},
			[]policyv1.PodDisruptionBudget{pdb("all", map[string]string{"app": "checkout"}, ptr.To(intstr.FromInt32(4)), nil)}), "PodDisruptionBudget shop/all"},
		{"a single-replica StatefulSet", StatefulSetUnrestartable(&appsv1.StatefulSet{}, nil), "a single replica"},
		{"an OnDelete StatefulSet, even allowed", StatefulSetUnrestartable(&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Annotations: allow}, Spec: appsv1.StatefulSetSpec{UpdateStrategy: onDelete}}, nil), "OnDelete"},
		{"a StatefulSet of three", StatefulSetUnrestartable(&appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3)}}, nil), ""},
		{"an OnDelete DaemonSet", DaemonSetUnrestartable(&appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}}}, nil), "OnDelete"},
		{"a rolling DaemonSet", DaemonSetUnrestartable(&appsv1.DaemonSet{}, nil), ""},
	} {
		if (c.got == "") != (c.want == "") || !strings.Contains(c.got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
		}
	}
}
