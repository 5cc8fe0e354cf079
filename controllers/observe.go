package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/revision"
)

// observe reads what the plan depends on: the istiod Deployment of each
// revision and which revisions running pods use.
func (r *MeshInstallReconciler) observe(ctx context.Context, mi *meshv1alpha1.MeshInstall) (revision.Observed, error) {
	obs := revision.Observed{Now: time.Now(), Revisions: map[string]revision.ObservedRevision{}, InventoryKnown: true}

	var deployments appsv1.DeploymentList
	// Per-revision Deployments are istiod's (gateways are shared).
	if err := r.List(ctx, &deployments, client.InNamespace(mi.Spec.Namespace),
		client.MatchingLabels{LabelMeshInstall: mi.Name}, client.HasLabels{LabelRevision}); err != nil {
		return obs, fmt.Errorf("listing istiod deployments: %w", err)
	}
	for i := range deployments.Items {
		d := &deployments.Items[i]
		name := d.Labels[LabelRevision]
		if name == "" {
			continue
		}
		obs.Revisions[name] = revision.ObservedRevision{Version: d.Labels[LabelVersion], Ready: rolledOut(d), PodsReady: true}
	}

	for name, o := range obs.Revisions {
		// Only a canary's step waits for its pods to be Ready; for the other
		// revisions the count is enough, and pod metadata carries it.
		canary := mi.Status.Canary != nil && mi.Status.Canary.Revision == name
		pods, ready, err := r.revisionPods(ctx, name, canary)
		if err != nil {
			// Unknown usage never prunes; the rest of the plan can go on.
			obs.InventoryKnown = false
			continue
		}
		o.Pods, o.PodsReady = pods, ready
		obs.Revisions[name] = o
	}
	return obs, nil
}

// revisionPods counts running (not Succeeded, not Failed) pods injected by a
// revision, read live from the API server so a stale cache can never let a
// revision in use be pruned. Whether they are all Ready needs their status,
// so whole pods are listed only when withReadiness is set; otherwise their
// metadata (and ready is true).
func (r *MeshInstallReconciler) revisionPods(ctx context.Context, rev string, withReadiness bool) (int32, bool, error) {
	opts := []client.ListOption{
		client.MatchingLabels{PodRevisionLabel: rev},
		client.MatchingFieldsSelector{Selector: fields.AndSelectors(
			fields.OneTermNotEqualSelector("status.phase", string(corev1.PodSucceeded)),
			fields.OneTermNotEqualSelector("status.phase", string(corev1.PodFailed)),
		)},
	}
	if !withReadiness {
		var pods metav1.PartialObjectMetadataList
		pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
		if err := r.APIReader.List(ctx, &pods, opts...); err != nil {
			return 0, false, fmt.Errorf("listing pods of revision %s: %w", rev, err)
		}
		return int32(len(pods.Items)), true, nil
	}
	var pods corev1.PodList
	if err := r.APIReader.List(ctx, &pods, opts...); err != nil {
		return 0, false, fmt.Errorf("listing pods of revision %s: %w", rev, err)
	}
	ready := true
	for i := range pods.Items {
		if !podReady(&pods.Items[i]) {
			ready = false
		}
	}
	return int32(len(pods.Items)), ready, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// rolledOut is true when a Deployment runs its current template on every
// replica and all of them are available.
func rolledOut(d *appsv1.Deployment) bool {
	if d.Status.ObservedGeneration < d.Generation {
		return false
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	if s.UpdatedReplicas < want || s.Replicas > s.UpdatedReplicas || s.AvailableReplicas < want {
		return false
	}
	for _, c := range s.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return want == 0
}
