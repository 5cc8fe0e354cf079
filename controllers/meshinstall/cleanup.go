package meshinstall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/ownership"
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
// NotFound when deleted. The label only finds candidates: an object is the
// MeshInstall's when scope says so (its namespaces, its controller
// reference); a namespace, when it is one of scope's and carries the label.
func (r *Reconciler) owned(ctx context.Context, mi *meshv1alpha1.MeshInstall, scope ownership.Scope) ([]client.Object, error) {
	var out []client.Object
	for _, gvk := range prunableKinds() {
		list, err := r.listFor(gvk)
		if err != nil {
			return nil, err
		}
		err = r.List(ctx, list, client.MatchingLabels{render.LabelMeshInstall: mi.Name})
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			continue // e.g. Istio's CRDs are not installed yet, or one was just deleted
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", gvk.Kind, err)
		}
		err = meta.EachListItem(list, func(item runtime.Object) error {
			o := item.(client.Object)
			if gvk.Kind == "Namespace" && gvk.Group == "" {
				if !scope.Holds(o.GetName()) {
					return nil
				}
			} else if !scope.Owns(o) {
				return nil
			}
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
func (r *Reconciler) listFor(gvk schema.GroupVersionKind) (client.ObjectList, error) {
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

// prune deletes what the pass selected (pruneSelection). It reads nothing
// and decides nothing: that a revision is unused was read in gather
// (observeRetired) and decided in the plan (confirmedUnused).
func (a applier) prune(ctx context.Context, selection []client.Object) error {
	var errs []error
	for _, o := range selection {
		ctrl.LoggerFrom(ctx).Info("pruning", "object", apply.KeyOf(o).String())
		errs = append(errs, apply.DeleteIfExists(ctx, a.w, o))
	}
	return errors.Join(errs...)
}

// revisionInUse asks the API server whether a running pod is stamped with a
// revision, or a namespace selects it (for observeRetired).
func (r *Reconciler) revisionInUse(ctx context.Context, rev string) (bool, error) {
	var pods metav1.PartialObjectMetadataList
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	err := r.APIReader.List(ctx, &pods, client.MatchingLabels{inject.LabelInjectedBy: rev}, client.Limit(1),
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

func compareKeys(a, b apply.Key) int { return strings.Compare(a.String(), b.String()) }

// reconcileDelete removes everything the MeshInstall created except Istio's
// CRDs (deleting them would delete every VirtualService in the cluster), then
// lets the MeshInstall go.
//
// Namespaces are never deleted, even those it created: users keep their
// own objects there (ingress TLS Secrets, mesh-wide policies in the root
// namespace, the cacerts mesh CA), and a namespace being terminated would
// also refuse the next MeshInstall's objects for a while. Each keeps
// everything but meshkeeper's labels and annotations, and an event says so.
func (r *Reconciler) reconcileDelete(ctx context.Context, mi *meshv1alpha1.MeshInstall) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(mi, Finalizer) {
		return ctrl.Result{}, nil
	}
	scope, err := r.scopeOf(ctx, mi)
	if err != nil {
		return ctrl.Result{}, err
	}
	have, err := r.owned(ctx, mi, scope)
	if err != nil {
		return ctrl.Result{}, err
	}
	// A migration's narrowed foreign injectors first: never a moment with
	// no injector for the migrated workloads.
	if err := r.restoreNarrowedInjectors(ctx); err != nil {
		return ctrl.Result{}, err
	}
	var errs []error
	var kept []string
	for _, o := range have {
		if o.GetObjectKind().GroupVersionKind().Kind == "Namespace" {
			kept = append(kept, o.GetName())
			errs = append(errs, releaseNamespace(ctx, r.Client, mi, o))
			continue
		}
		errs = append(errs, apply.DeleteIfExists(ctx, r.Client, o))
	}
	errs = append(errs, r.deleteCertificateAuthority(ctx, mi))
	if err := errors.Join(errs...); err != nil {
		return ctrl.Result{}, err
	}
	controllerutil.RemoveFinalizer(mi, Finalizer)
	if err := r.Update(ctx, mi); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	msg := "removed the control plane; Istio's CRDs are kept"
	if len(kept) > 0 {
		slices.Sort(kept)
		msg += fmt.Sprintf("; namespace(s) %s kept, without meshkeeper's labels (meshkeeper never deletes a namespace: it may hold users' objects)",
			strings.Join(kept, ", "))
	}
	r.event(mi, corev1.EventTypeNormal, "Deleted", "Delete", msg)
	return ctrl.Result{}, nil
}

// scopeOf is mi's ownership scope, with the namespaces it created.
func (r *Reconciler) scopeOf(ctx context.Context, mi *meshv1alpha1.MeshInstall) (ownership.Scope, error) {
	list, err := r.listNamespaces(ctx)
	if err != nil {
		return ownership.Scope{}, err
	}
	var created []string
	for i := range list.Items {
		if ownership.CreatedBy(&list.Items[i], mi.UID) {
			created = append(created, list.Items[i].Name)
		}
	}
	return ownership.Of(mi, created...), nil
}

// listNamespaces lists every namespace's metadata from the cache, read-only.
func (r *Reconciler) listNamespaces(ctx context.Context) (*metav1.PartialObjectMetadataList, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	if err := r.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	return list, nil
}

// releaseNamespace takes back what meshkeeper set on a namespace (its
// labels, its created-by annotation and, from older versions, its owner
// reference, which would let the garbage collector delete the namespace
// with the MeshInstall) and nothing else. A merge patch, not an apply: it
// never creates a namespace that is gone already.
func releaseNamespace(ctx context.Context, c client.Client, mi *meshv1alpha1.MeshInstall, ns client.Object) error {
	labels := map[string]any{}
	for k, v := range ownershipLabels(mi) {
		if ns.GetLabels()[k] == v {
			labels[k] = nil
		}
	}
	if ns.GetName() == mi.Spec.Namespace {
		for k, v := range render.ControlPlaneNamespaceLabels(mi) {
			if ns.GetLabels()[k] == v {
				labels[k] = nil
			}
		}
	}
	meta := map[string]any{"labels": labels, "annotations": map[string]any{ownership.AnnotationCreatedBy: nil}}
	refs := slices.DeleteFunc(slices.Clone(ns.GetOwnerReferences()), func(ref metav1.OwnerReference) bool { return ref.UID == mi.UID })
	if len(refs) != len(ns.GetOwnerReferences()) {
		meta["ownerReferences"] = refs
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return err
	}
	if err := c.Patch(ctx, ns, client.RawPatch(types.MergePatchType, patch)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("releasing namespace %s: %w", ns.GetName(), err)
	}
	return nil
}
