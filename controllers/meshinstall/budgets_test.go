package meshinstall

import (
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
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
		{"dropped template labels are selected by every budget", map[string]string{templateLabelsDropped: "true"}, 4, 1,
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
