package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// desiredObjects renders everything the plan needs, in apply order: Istio's
// CRDs (only when missing or changed), namespaces, each revision's control
// plane, the shared objects, and last the injector configuration, so that a
// revision's injection config exists before any pod is sent to it.
func (r *MeshInstallReconciler) desiredObjects(ctx context.Context, mi *meshv1alpha1.MeshInstall, plan revision.Plan, obs revision.Observed) ([]client.Object, error) {
	var out []client.Object

	crds, err := r.crdsToApply(ctx, mi)
	if err != nil {
		return nil, err
	}
	out = append(out, crds...)

	nss, err := r.namespacesToApply(ctx, mi)
	if err != nil {
		return nil, err
	}
	out = append(out, nss...)

	var revisions []string
	for _, p := range plan.Revisions {
		objs, err := render.ControlPlane(mi, render.Revision{Name: p.Name, Version: p.Version})
		if err != nil {
			return nil, renderRefusal(err)
		}
		out = append(out, objs...)
		revisions = append(revisions, p.Name)
	}
	shared, err := render.Shared(mi, render.Revision{Name: plan.Active.Name, Version: plan.Active.Version})
	if err != nil {
		return nil, renderRefusal(err)
	}
	for _, o := range shared {
		// Gateway pods need the injector: as istioctl does, start them once
		// istiod has been available (its injection entries exist by then).
		if _, gateway := o.GetLabels()[render.LabelGateway]; gateway && !controlPlaneWasReady(mi, plan, obs) {
			if _, isDeployment := o.(*appsv1.Deployment); isDeployment {
				continue
			}
		}
		out = append(out, o)
	}

	endpoint, err := r.WebhookEndpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("webhook endpoint: %w", err)
	}
	injector := webhookconfig.InjectorConfiguration(webhookconfig.Injector{
		ControlPlaneNamespace: mi.Spec.Namespace,
		OperatorNamespace:     r.OperatorNamespace,
		Revisions:             revisions,
		Tags:                  mi.Spec.RevisionTags,
		FailurePolicy:         admissionregistrationv1.FailurePolicyType(mi.Spec.Injection.FailurePolicy),
		Endpoint:              endpoint,
		Labels:                ownershipLabels(mi),
	})
	out = append(out, injector)
	for _, o := range out {
		if _, isCRD := o.(*apiextensionsv1.CustomResourceDefinition); !isCRD {
			// The MeshInstall is cluster-scoped, so it may own namespaced and
			// cluster-scoped objects alike; deleting it garbage-collects them.
			if err := controllerutil.SetControllerReference(mi, o, r.Scheme()); err != nil {
				return nil, err
			}
		}
	}
	render.ApplyOrder(out)
	return out, nil
}

// controlPlaneWasReady is true once the active revision has rolled out at least once.
func controlPlaneWasReady(mi *meshv1alpha1.MeshInstall, plan revision.Plan, obs revision.Observed) bool {
	if mi.Status.Version != "" {
		return true
	}
	o, ok := obs.Revisions[plan.Active.Name]
	return ok && o.Ready
}

// renderRefusal turns the renderer's validation errors into a refusal with their reason.
func renderRefusal(err error) error {
	var invalid *render.InvalidError
	if errors.As(err, &invalid) {
		return &revision.Refusal{Reason: invalid.Reason, Message: invalid.Error()}
	}
	return err
}

// ownershipLabels mark an object as meshkeeper's and the MeshInstall's, for
// the cache, watches and pruning. The renderer puts them on everything it
// renders; the reconciler adds them to what it builds itself.
func ownershipLabels(mi *meshv1alpha1.MeshInstall) map[string]string {
	return map[string]string{LabelManagedBy: ManagedByValue, LabelMeshInstall: mi.Name}
}

// crdsToApply returns Istio's CRDs that are missing or differ from the ones
// pinned in this build. Applying ~1 MB of schemas on every pass would load
// the API server for nothing. CRDs are never owned by the MeshInstall:
// deleting it must not delete users' Istio resources.
func (r *MeshInstallReconciler) crdsToApply(ctx context.Context, mi *meshv1alpha1.MeshInstall) ([]client.Object, error) {
	crds, err := render.IstioCRDs(mi)
	if err != nil {
		return nil, err
	}
	var out []client.Object
	for _, crd := range crds {
		crd = crd.DeepCopy()
		hash := specHash(crd.Spec)
		l := crd.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		l[LabelManagedBy] = ManagedByValue
		crd.SetLabels(l)
		a := crd.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a[AnnotationSpecHash] = hash
		crd.SetAnnotations(a)

		current := &apiextensionsv1.CustomResourceDefinition{}
		err := r.Get(ctx, client.ObjectKey{Name: crd.Name}, current)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, err
		case current.Annotations[AnnotationSpecHash] == hash:
			continue
		}
		out = append(out, crd)
	}
	return out, nil
}

// namespacesToApply creates the namespaces the mesh needs when they do not
// exist. A namespace someone else created is never taken over (nor deleted later).
func (r *MeshInstallReconciler) namespacesToApply(ctx context.Context, mi *meshv1alpha1.MeshInstall) ([]client.Object, error) {
	names := []string{mi.Spec.Namespace}
	for _, g := range mi.Spec.Gateways {
		if g.Namespace != "" {
			names = append(names, g.Namespace)
		}
	}
	slices.Sort(names)
	var out []client.Object
	for _, name := range slices.Compact(names) {
		ns := &corev1.Namespace{}
		err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, ns)
		if err == nil && ns.Labels[LabelMeshInstall] != mi.Name {
			continue
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		want := &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: ownershipLabels(mi)},
		}
		if name == mi.Spec.Namespace {
			maps.Copy(want.Labels, render.ControlPlaneNamespaceLabels(mi))
		}
		out = append(out, want)
	}
	return out, nil
}

func specHash(v any) string {
	raw, _ := json.Marshal(v)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

// AnnotationSpecHash records the hash of the spec meshkeeper last applied to an Istio CRD.
const AnnotationSpecHash = "mesh.meshkeeper.dev/spec-hash"

// injectorOf finds the injector configuration among the desired objects.
func injectorOf(objs []client.Object) *admissionregistrationv1.MutatingWebhookConfiguration {
	for _, o := range objs {
		if m, ok := o.(*admissionregistrationv1.MutatingWebhookConfiguration); ok {
			return m
		}
	}
	return &admissionregistrationv1.MutatingWebhookConfiguration{}
}
