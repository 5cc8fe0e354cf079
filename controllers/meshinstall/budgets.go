package meshinstall

import (
	"context"
	"fmt"
	"math"

	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// maxCachedLabelBytes bounds what is cached of a user's label map (a pod
// template's, a PodDisruptionBudget selector's): anyone who may create a
// workload can attach megabytes of labels. Beyond it the map is not kept
// (see templateLabelsDropped and TrimBudget).
const maxCachedLabelBytes = 1 << 10

// templateLabelsDropped marks, in the cache only, a pod template whose
// labels were over maxCachedLabelBytes and not kept: every
// PodDisruptionBudget of its namespace is then taken to select it, so a
// workload whose owner gave it huge labels is reported rather than
// restarted, never the other way round.
const templateLabelsDropped = "mesh.meshkeeper.dev/template-labels-dropped"

// boundedLabels returns l, or, when it holds more than maxCachedLabelBytes,
// only the injection labels and the templateLabelsDropped mark.
func boundedLabels(l map[string]string) map[string]string {
	size := 0
	for k, v := range l {
		size += len(k) + len(v)
	}
	if size <= maxCachedLabelBytes {
		return l
	}
	out := keep(l, keptTemplateLabels)
	if out == nil {
		out = map[string]string{}
	}
	out[templateLabelsDropped] = "true"
	return out
}

// TrimBudget is the cache transform for PodDisruptionBudgets. meshkeeper's
// own (istiod's and the gateways') are kept whole, less their managed
// fields. Users' are kept as the rollout reads them: identity, selector,
// minAvailable/maxUnavailable and the disruption controller's counts. A
// selector over maxCachedLabelBytes is kept as the empty selector, which
// selects every pod of the namespace: its owner can only make their own
// workloads reported rather than restarted.
func TrimBudget(in any) (any, error) {
	p, ok := in.(*policyv1.PodDisruptionBudget)
	if !ok {
		return in, nil
	}
	p.SetManagedFields(nil)
	if controlledByAMeshInstall(p) {
		return p, nil
	}
	out := &policyv1.PodDisruptionBudget{TypeMeta: p.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			Generation: p.Generation, DeletionTimestamp: p.DeletionTimestamp},
		Spec: policyv1.PodDisruptionBudgetSpec{Selector: p.Spec.Selector, MinAvailable: p.Spec.MinAvailable, MaxUnavailable: p.Spec.MaxUnavailable},
		Status: policyv1.PodDisruptionBudgetStatus{ObservedGeneration: p.Status.ObservedGeneration, DisruptionsAllowed: p.Status.DisruptionsAllowed,
			CurrentHealthy: p.Status.CurrentHealthy, DesiredHealthy: p.Status.DesiredHealthy, ExpectedPods: p.Status.ExpectedPods}}
	if s := p.Spec.Selector; s != nil && s.Size() > maxCachedLabelBytes {
		out.Spec.Selector = &metav1.LabelSelector{}
	}
	return out, nil
}

// budgetsByNamespace reads the PodDisruptionBudgets from the trimmed cache.
func (r *Reconciler) budgetsByNamespace(ctx context.Context) (map[string][]policyv1.PodDisruptionBudget, error) {
	var list policyv1.PodDisruptionBudgetList
	if err := r.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing PodDisruptionBudgets: %w", err)
	}
	out := map[string][]policyv1.PodDisruptionBudget{}
	for _, p := range list.Items {
		out[p.Namespace] = append(out[p.Namespace], p)
	}
	return out, nil
}

// budgetBreach says which PodDisruptionBudget a rolling restart of a
// workload may take below, or "". The rule: a PodDisruptionBudget of the
// workload's namespace selects its pod template's labels, and the rollout
// may take more of its pods down at once (takes: its maxUnavailable, as
// its controller computes it) than the budget allows unavailable when
// every pod is healthy. A rollout that surges first (takes 0) never drops
// below its replicas and breaches no budget; one that takes even one pod
// down breaches a budget that allows none (minAvailable equal to the
// replicas, maxUnavailable 0). A budget spanning several workloads is
// judged as a whole, from the disruption controller's status; until the
// controller has counted it, from its spec and this workload's replicas.
func budgetBreach(template map[string]string, replicas int32, takes int, budgets []policyv1.PodDisruptionBudget) string {
	if takes <= 0 || replicas <= 0 {
		return ""
	}
	for i := range budgets {
		b := &budgets[i]
		if !budgetSelects(b, template) {
			continue
		}
		if allows := budgetAllows(b, replicas); takes > allows {
			return fmt.Sprintf("a restart may take it below PodDisruptionBudget %s/%s: it allows %d unavailable, the rollout takes up to %d; annotate %s to allow it",
				b.Namespace, b.Name, allows, takes, optIn)
		}
	}
	return ""
}

// budgetSelects says whether a budget selects the pods of a template (a
// null selector selects no pod, an empty one every pod, as in policy/v1).
func budgetSelects(b *policyv1.PodDisruptionBudget, template map[string]string) bool {
	if b.Spec.Selector == nil {
		return false
	}
	if template[templateLabelsDropped] != "" {
		return true
	}
	s, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
	return err == nil && s.Matches(labels.Set(template))
}

// budgetAllows is how many of a budget's pods may be unavailable when all
// are healthy: expected less desired healthy, both as the disruption
// controller counts them (percentages rounded up).
func budgetAllows(b *policyv1.PodDisruptionBudget, replicas int32) int {
	if st := b.Status; st.ObservedGeneration >= b.Generation && b.Generation > 0 && st.ExpectedPods > 0 {
		return int(max(st.ExpectedPods-st.DesiredHealthy, 0))
	}
	expected := int(replicas)
	switch {
	case b.Spec.MaxUnavailable != nil:
		n, err := intstr.GetScaledValueFromIntOrPercent(b.Spec.MaxUnavailable, expected, true)
		if err != nil {
			return 0
		}
		return max(min(n, expected), 0)
	case b.Spec.MinAvailable != nil:
		n, err := intstr.GetScaledValueFromIntOrPercent(b.Spec.MinAvailable, expected, true)
		if err != nil {
			return 0
		}
		return max(expected-n, 0)
	}
	return math.MaxInt // a budget with neither field constrains nothing
}

// deploymentTakes is how many pods a rolling update of d may take down at
// once: maxUnavailable rounded down, and 1 when maxSurge rounds to 0 too,
// as the Deployment controller does (a Recreate Deployment is reported by
// deploymentOutage already).
func deploymentTakes(d *appsv1.Deployment) int {
	replicas := int(ptr.Deref(d.Spec.Replicas, 1))
	u := d.Spec.Strategy.RollingUpdate
	unavailable, surge := intstr.FromString("25%"), intstr.FromString("25%")
	if u != nil && u.MaxUnavailable != nil {
		unavailable = *u.MaxUnavailable
	}
	if u != nil && u.MaxSurge != nil {
		surge = *u.MaxSurge
	}
	down, err1 := intstr.GetScaledValueFromIntOrPercent(&unavailable, replicas, false)
	up, err2 := intstr.GetScaledValueFromIntOrPercent(&surge, replicas, true)
	if err1 != nil || err2 != nil {
		return 1
	}
	if down == 0 && up == 0 {
		return 1
	}
	return down
}

// statefulSetTakes is how many pods a rolling update of s may take down at
// once: one, or maxUnavailable (rounded up, at least one) where the
// cluster honours it; the larger is assumed.
func statefulSetTakes(s *appsv1.StatefulSet) int {
	if u := s.Spec.UpdateStrategy.RollingUpdate; u != nil && u.MaxUnavailable != nil {
		n, err := intstr.GetScaledValueFromIntOrPercent(u.MaxUnavailable, int(ptr.Deref(s.Spec.Replicas, 1)), true)
		if err == nil {
			return max(n, 1)
		}
	}
	return 1
}

// daemonSetTakes is how many pods a rolling update of d may take down at
// once: maxUnavailable rounded up (default one); 0 when it surges instead.
func daemonSetTakes(d *appsv1.DaemonSet) int {
	u := d.Spec.UpdateStrategy.RollingUpdate
	if u == nil || u.MaxUnavailable == nil {
		return 1
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(u.MaxUnavailable, int(d.Status.DesiredNumberScheduled), true)
	if err != nil {
		return 1
	}
	return n
}
