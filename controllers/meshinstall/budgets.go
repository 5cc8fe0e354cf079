package meshinstall

import (
	"context"
	"fmt"

	"github.com/meshkeeper/meshkeeper/internal/rollout"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// maxCachedLabelBytes bounds what is cached of a user's label map (a pod
// template's, a PodDisruptionBudget selector's): anyone who may create a
// workload can attach megabytes of labels. Beyond it the map is not kept
// (see rollout.TemplateLabelsDropped and TrimBudget).
const maxCachedLabelBytes = 1 << 10

// boundedLabels returns l, or, when it holds more than maxCachedLabelBytes,
// only the injection labels and the rollout.TemplateLabelsDropped mark.
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
	out[rollout.TemplateLabelsDropped] = "true"
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
