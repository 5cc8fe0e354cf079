package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
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
		if meta.IsNoMatchError(err) {
			continue // e.g. Istio's CRDs are not installed yet
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
// a pruned revision, a removed gateway, a PeerAuthentication whose field was unset.
func (r *MeshInstallReconciler) prune(ctx context.Context, mi *meshv1alpha1.MeshInstall, desired []client.Object) error {
	want := map[objectKey]bool{}
	for _, o := range desired {
		want[keyOf(o)] = true
	}
	have, err := r.owned(ctx, mi)
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range have {
		if want[keyOf(o)] {
			continue
		}
		if keyOf(o).gvk.Kind == "Namespace" {
			// Namespaces are kept while the MeshInstall lives: they may hold users' objects.
			continue
		}
		ctrl.LoggerFrom(ctx).Info("pruning", "object", keyOf(o).String())
		errs = append(errs, deleteIfExists(ctx, r.Client, o))
	}
	return errors.Join(errs...)
}

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
