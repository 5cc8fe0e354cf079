package controllers

import (
	"context"
	"fmt"
	"maps"
	"time"

	"istio.io/api/annotation"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/inventory"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
)

// keptPodAnnotations are the only pod annotations the inventory reads.
var keptPodAnnotations = []string{
	annotation.SidecarStatus.Name, annotation.SidecarInject.Name,
	inject.AnnotationRevision, inject.AnnotationConfigHash,
}

// TrimPodMetadata is the cache transform for pod metadata: it drops managed
// fields and every annotation the inventory does not read (the sidecar
// status annotation alone is hundreds of bytes per pod, so its value goes too).
func TrimPodMetadata(in any) (any, error) {
	m, ok := in.(*metav1.PartialObjectMetadata)
	if !ok {
		return in, nil
	}
	m.ManagedFields = nil
	if len(m.Annotations) > 0 {
		kept := map[string]string{}
		for _, k := range keptPodAnnotations {
			if v, ok := m.Annotations[k]; ok {
				if k == annotation.SidecarStatus.Name {
					v = ""
				}
				kept[k] = v
			}
		}
		m.Annotations = kept
	}
	return m, nil
}

// countDataPlane counts pods from the metadata cache against what this pass
// rendered: the injector's entries and each revision's configuration hash.
func (r *MeshInstallReconciler) countDataPlane(ctx context.Context, mi *meshv1alpha1.MeshInstall, plan revision.Plan,
	injector *admissionregistrationv1.MutatingWebhookConfiguration) (inventory.Result, error) {
	hashes := map[string]string{}
	for _, p := range plan.Revisions {
		cfg, err := render.InjectionConfig(mi, render.Revision{Name: p.Name, Version: p.Version})
		if err != nil {
			return inventory.Result{}, err
		}
		hashes[p.Name] = cfg.Hash()
	}
	matcher, err := inventory.NewMatcher(injector)
	if err != nil {
		return inventory.Result{}, err
	}

	nsList := &metav1.PartialObjectMetadataList{}
	nsList.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	if err := r.List(ctx, nsList); err != nil {
		return inventory.Result{}, fmt.Errorf("listing namespaces: %w", err)
	}
	namespaces := make(map[string]map[string]string, len(nsList.Items))
	for _, ns := range nsList.Items {
		namespaces[ns.Name] = ns.Labels
	}
	podList := &metav1.PartialObjectMetadataList{}
	podList.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := r.List(ctx, podList); err != nil {
		return inventory.Result{}, fmt.Errorf("listing pods: %w", err)
	}
	pods := make([]inventory.Pod, 0, len(podList.Items))
	for _, p := range podList.Items {
		if !p.DeletionTimestamp.IsZero() {
			continue
		}
		pods = append(pods, inventory.Pod{Namespace: p.Namespace, Labels: p.Labels, Annotations: p.Annotations})
	}
	return inventory.Count(pods, namespaces, matcher, hashes), nil
}

// podEventDelay batches pod churn: a burst of pod events makes one pass.
const podEventDelay = 3 * time.Second

// podEvents enqueues every MeshInstall a little after a pod or namespace
// changes; the queue folds the burst into one pass.
func (r *MeshInstallReconciler) podEvents() handler.EventHandler {
	enqueue := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		for _, req := range r.allMeshInstalls(ctx, nil) {
			q.AddAfter(req, podEventDelay)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, _ event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if labelsOrAnnotationsChanged(e.ObjectOld, e.ObjectNew) {
				enqueue(ctx, q)
			}
		},
		DeleteFunc: func(ctx context.Context, _ event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q)
		},
	}
}

func labelsOrAnnotationsChanged(a, b client.Object) bool {
	return !maps.Equal(a.GetLabels(), b.GetLabels()) || !maps.Equal(a.GetAnnotations(), b.GetAnnotations()) ||
		a.GetDeletionTimestamp().IsZero() != b.GetDeletionTimestamp().IsZero()
}
