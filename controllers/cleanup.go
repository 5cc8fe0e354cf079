package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"istio.io/api/label"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
)

// prunableKinds are the kinds a MeshInstall may own, namespaces last so their
// contents go first. Istio's CRDs are absent on purpose: they are never deleted.
func prunableKinds() []schema.GroupVersionKind {
	var kinds []schema.GroupVersionKind
	for _, k := range render.Kinds() {
		if k.Kind == "CustomResourceDefinition" || k.Kind == "Namespace" {
			continue
		}
		kinds = append(kinds, k)
	}
	return append(kinds,
		schema.GroupVersionKind{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "MutatingWebhookConfiguration"},
		schema.GroupVersionKind{Version: "v1", Kind: "Namespace"},
	)
}

// owned lists every object of the MeshInstall from the manager's cache,
// whose informers already hold each of these kinds. A stale read is safe:
// an object missing from it is pruned on the next pass, one already gone is
// NotFound when deleted.
func (r *MeshInstallReconciler) owned(ctx context.Context, mi *meshv1alpha1.MeshInstall) ([]client.Object, error) {
	var out []client.Object
	for _, gvk := range prunableKinds() {
		list, err := r.listFor(gvk)
		if err != nil {
			return nil, err
		}
		err = r.List(ctx, list, client.MatchingLabels{LabelMeshInstall: mi.Name})
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			continue // e.g. Istio's CRDs are not installed yet, or one was just deleted
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", gvk.Kind, err)
		}
		err = meta.EachListItem(list, func(item runtime.Object) error {
			o := item.(client.Object)
			o.GetObjectKind().SetGroupVersionKind(gvk) // typed list items come without it
			out = append(out, o)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// listFor returns the list type the cache holds a kind as: typed for the
// kinds the reconciler owns, metadata for namespaces (watched metadata-only
// for the inventory), unstructured for the kinds of Istio's CRDs.
func (r *MeshInstallReconciler) listFor(gvk schema.GroupVersionKind) (client.ObjectList, error) {
	listGVK := gvk.GroupVersion().WithKind(gvk.Kind + "List")
	if gvk.Group == "" && gvk.Kind == "Namespace" {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(listGVK)
		return list, nil
	}
	if r.Scheme().Recognizes(listGVK) {
		obj, err := r.Scheme().New(listGVK)
		if err != nil {
			return nil, err
		}
		return obj.(client.ObjectList), nil
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(listGVK)
	return list, nil
}

// prune deletes what the MeshInstall owns but no longer wants: the objects of
// a revision the plan prunes, a removed gateway, a PeerAuthentication whose
// field was unset. A revision's objects go only once the API server itself
// (not the cache) confirms that no running pod uses it; the objects of a
// revision neither kept nor pruned are never touched.
func (r *MeshInstallReconciler) prune(ctx context.Context, plan revision.Plan, want map[objectKey]bool, obs *observation) error {
	kept := revisionNames(plan)
	unused := map[string]bool{}
	var errs []error
	for _, rev := range plan.Prune {
		inUse, err := r.revisionInUse(ctx, rev)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		unused[rev] = !inUse
	}
	for _, key := range slices.SortedFunc(maps.Keys(obs.live), compareKeys) {
		o := obs.live[key]
		if want[key] || key.gvk.Kind == "Namespace" {
			// Namespaces are kept while the MeshInstall lives: they may hold users' objects.
			continue
		}
		if rev, ok := o.GetLabels()[LabelRevision]; ok && !kept[rev] && !unused[rev] {
			continue
		}
		ctrl.LoggerFrom(ctx).Info("pruning", "object", key.String())
		errs = append(errs, deleteIfExists(ctx, r.Client, o))
	}
	return errors.Join(errs...)
}

// revisionInUse asks the API server whether a running pod is stamped with a
// revision, or a namespace selects it.
func (r *MeshInstallReconciler) revisionInUse(ctx context.Context, rev string) (bool, error) {
	var pods metav1.PartialObjectMetadataList
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	err := r.APIReader.List(ctx, &pods, client.MatchingLabels{PodRevisionLabel: rev}, client.Limit(1),
		client.MatchingFieldsSelector{Selector: fields.AndSelectors(
			fields.OneTermNotEqualSelector("status.phase", string(corev1.PodSucceeded)),
			fields.OneTermNotEqualSelector("status.phase", string(corev1.PodFailed)),
		)})
	if err != nil {
		return false, fmt.Errorf("checking that no pod uses revision %s: %w", rev, err)
	}
	if len(pods.Items) > 0 {
		return true, nil
	}
	// Nor a namespace selects it (the plan judged from the cache).
	var namespaces metav1.PartialObjectMetadataList
	namespaces.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	if err := r.APIReader.List(ctx, &namespaces, client.MatchingLabels{label.IoIstioRev.Name: rev}, client.Limit(1)); err != nil {
		return false, fmt.Errorf("checking that no namespace selects revision %s: %w", rev, err)
	}
	return len(namespaces.Items) > 0, nil
}

func compareKeys(a, b objectKey) int { return strings.Compare(a.String(), b.String()) }

// reconcileDelete removes everything the MeshInstall created except Istio's
// CRDs (deleting them would delete every VirtualService in the cluster), then
// lets the MeshInstall go.
func (r *MeshInstallReconciler) reconcileDelete(ctx context.Context, mi *meshv1alpha1.MeshInstall) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(mi, Finalizer) {
		return ctrl.Result{}, nil
	}
	have, err := r.owned(ctx, mi)
	if err != nil {
		return ctrl.Result{}, err
	}
	var errs []error
	for _, o := range have {
		errs = append(errs, deleteIfExists(ctx, r.Client, o))
	}
	errs = append(errs, r.deleteCertificateAuthority(ctx, mi))
	if err := errors.Join(errs...); err != nil {
		return ctrl.Result{}, err
	}
	controllerutil.RemoveFinalizer(mi, Finalizer)
	if err := r.Update(ctx, mi); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.event(mi, corev1.EventTypeNormal, "Deleted", "Delete", "removed the control plane; Istio's CRDs are kept")
	return ctrl.Result{}, nil
}
