package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
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
		pods, ready, err := r.revisionPods(ctx, name)
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
// revision in use be pruned.
func (r *MeshInstallReconciler) revisionPods(ctx context.Context, rev string) (int32, bool, error) {
	var pods corev1.PodList
	sel := labels.SelectorFromSet(labels.Set{PodRevisionLabel: rev})
	notFinished := fields.AndSelectors(
		fields.OneTermNotEqualSelector("status.phase", string(corev1.PodSucceeded)),
		fields.OneTermNotEqualSelector("status.phase", string(corev1.PodFailed)),
	)
	if err := r.APIReader.List(ctx, &pods, client.MatchingLabelsSelector{Selector: sel},
		client.MatchingFieldsSelector{Selector: notFinished}); err != nil {
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
