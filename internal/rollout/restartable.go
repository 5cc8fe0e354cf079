package rollout

import (
	"fmt"
	"math"

	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// Why a workload's restart would not be a rolling one: the reconciler
// reports such a workload instead of restarting it (Workload.Unrestartable),
// and kubectl meshkeeper precheck names it before an upgrade, from the same
// functions.

// TemplateLabelsDropped marks, in the reconciler's cache only, a pod
// template whose labels were over the cache's bound and not kept: every
// PodDisruptionBudget of its namespace is then taken to select it, so a
// workload whose owner gave it huge labels is reported rather than
// restarted, never the other way round.
const TemplateLabelsDropped = "mesh.meshkeeper.dev/template-labels-dropped"

// DeploymentUnrestartable says why restarting d would not move its pods
// one at a time (paused, a restart that stops every pod, or one below a
// PodDisruptionBudget of budgets, those of its namespace), or "" when
// meshkeeper restarts it.
func DeploymentUnrestartable(d *appsv1.Deployment, budgets []policyv1.PodDisruptionBudget) string {
	switch {
	case d.Spec.Paused:
		return "paused"
	case restartAllowed(d):
		return ""
	}
	if outage := deploymentOutage(d); outage != "" {
		return outage
	}
	return budgetBreach(d.Spec.Template.Labels, ptr.Deref(d.Spec.Replicas, 1), deploymentTakes(d), budgets)
}

// StatefulSetUnrestartable is DeploymentUnrestartable for a StatefulSet:
// an update strategy a restart does not roll (OnDelete, a partition), a
// single replica, or a breached budget.
func StatefulSetUnrestartable(s *appsv1.StatefulSet, budgets []policyv1.PodDisruptionBudget) string {
	replicas := ptr.Deref(s.Spec.Replicas, 1)
	switch u := s.Spec.UpdateStrategy; {
	case u.Type == appsv1.OnDeleteStatefulSetStrategyType:
		return "OnDelete update strategy"
	case u.RollingUpdate != nil && ptr.Deref(u.RollingUpdate.Partition, 0) > 0:
		return "partitioned update"
	case restartAllowed(s):
		return ""
	case replicas == 1:
		return "a single replica: a restart stops it; annotate " + optIn + " to allow it"
	}
	return budgetBreach(s.Spec.Template.Labels, replicas, statefulSetTakes(s), budgets)
}

// DaemonSetUnrestartable is DeploymentUnrestartable for a DaemonSet: the
// OnDelete update strategy, or a breached budget.
func DaemonSetUnrestartable(d *appsv1.DaemonSet, budgets []policyv1.PodDisruptionBudget) string {
	switch {
	case d.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType:
		return "OnDelete update strategy"
	case restartAllowed(d):
		return ""
	}
	return budgetBreach(d.Spec.Template.Labels, d.Status.DesiredNumberScheduled, daemonSetTakes(d), budgets)
}

// optIn is how a user lets meshkeeper restart a workload whose restart
// stops all of its pods at once.
const optIn = meshv1alpha1.AnnotationRestart + "=" + meshv1alpha1.RestartAllow

// restartAllowed says whether the user opted a workload in to restarts that
// stop all of its pods at once.
func restartAllowed(o metav1.Object) bool {
	return o.GetAnnotations()[meshv1alpha1.AnnotationRestart] == meshv1alpha1.RestartAllow
}

// deploymentOutage says why restarting d would stop every one of its pods
// at once, or "": a broken new proxy would then be an outage until the
// progress deadline, not a rollout that stalls with the old pods serving.
func deploymentOutage(d *appsv1.Deployment) string {
	replicas := ptr.Deref(d.Spec.Replicas, 1)
	switch s := d.Spec.Strategy; {
	case s.Type == appsv1.RecreateDeploymentStrategyType:
		return "Recreate strategy: a restart stops every pod first; annotate " + optIn + " to allow it"
	case replicas > 0 && s.RollingUpdate != nil && s.RollingUpdate.MaxUnavailable != nil:
		// The Deployment controller rounds maxUnavailable down.
		unavailable, err := intstr.GetScaledValueFromIntOrPercent(s.RollingUpdate.MaxUnavailable, int(replicas), false)
		if err == nil && unavailable >= int(replicas) {
			return "its rolling update may stop every replica (maxUnavailable); annotate " + optIn + " to allow it"
		}
	}
	return ""
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
	if template[TemplateLabelsDropped] != "" {
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
