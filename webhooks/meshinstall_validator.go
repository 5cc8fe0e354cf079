// Package webhooks holds meshkeeper's admission webhooks: thin HTTP shells over
// pure functions (the sidecar injector and the MeshInstall validator).
package webhooks

import (
	"context"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	psaapi "k8s.io/pod-security-admission/api"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	meshadmission "github.com/meshkeeper/meshkeeper/internal/admission"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// MeshInstallValidator refuses MeshInstalls the operator would not carry
// out: unsupported versions, version jumps and downgrades Istio forbids,
// strategy changes during a canary, a change of CA on a running mesh, a
// second MeshInstall, a control plane or gateway outside the namespaces the
// operator manages meshes in. It is the HTTP shell over internal/admission,
// which holds those rules.
type MeshInstallValidator struct {
	// APIReader reads the MeshInstalls stored, from the API server itself:
	// a MeshInstall created a moment ago may not be in the manager's cache
	// yet, and the singleton rule must see it. SetupWithManager sets it.
	APIReader client.Reader
	// MeshNamespaces and OperatorNamespace are the operator's
	// --mesh-namespaces and its own namespace (meshadmission.Namespaces).
	MeshNamespaces    []string
	OperatorNamespace string
}

// SetupWithManager serves the validator at /validate-mesh-meshkeeper-dev-v1alpha1-meshinstall.
// It reads the stored MeshInstalls with the manager's API reader.
func (v *MeshInstallValidator) SetupWithManager(mgr ctrl.Manager) error {
	v.APIReader = mgr.GetAPIReader()
	mgr.GetWebhookServer().Register(webhookconfig.ValidatePath, v.Handler(mgr.GetScheme()))
	return nil
}

// Handler is the validator's admission webhook, within ValidatorLimits.
func (v *MeshInstallValidator) Handler(scheme *runtime.Scheme) http.Handler {
	return Bounded("validator", admission.WithValidator[*meshv1alpha1.MeshInstall](scheme, v), ValidatorLimits)
}

// ValidateCreate refuses a MeshInstall that could not be installed
// (meshadmission.ValidateCreate), judged against the MeshInstalls stored.
func (v *MeshInstallValidator) ValidateCreate(ctx context.Context, mi *meshv1alpha1.MeshInstall) (admission.Warnings, error) {
	var list meshv1alpha1.MeshInstallList
	if err := v.APIReader.List(ctx, &list); err != nil {
		return nil, err
	}
	if err := meshadmission.ValidateCreate(mi, list.Items, v.namespaces()); err != nil {
		return nil, err
	}
	return v.podSecurityWarnings(ctx, mi), nil
}

// ValidateUpdate refuses a spec change that breaks an upgrade rule or
// changes the CA of a running mesh, and warns of what an accepted one
// changes (meshadmission.ValidateUpdate).
func (v *MeshInstallValidator) ValidateUpdate(ctx context.Context, old, updated *meshv1alpha1.MeshInstall) (admission.Warnings, error) {
	warnings, err := meshadmission.ValidateUpdate(old, updated, v.namespaces())
	if err != nil {
		return nil, err
	}
	return append(warnings, v.podSecurityWarnings(ctx, updated)...), nil
}

// podSecurityWarnings warns when meshed namespaces enforce a Pod Security
// level the mesh's injected pods cannot pass
// (meshadmission.PodSecurityWarnings). It reads the namespaces that carry an
// enforce label from the API server; when it cannot, it warns of nothing
// rather than refuse the MeshInstall.
func (v *MeshInstallValidator) podSecurityWarnings(ctx context.Context, mi *meshv1alpha1.MeshInstall) []string {
	if v.APIReader == nil {
		return nil
	}
	var namespaces corev1.NamespaceList
	if err := v.APIReader.List(ctx, &namespaces, client.HasLabels{psaapi.EnforceLevelLabel}); err != nil {
		return nil
	}
	return meshadmission.PodSecurityWarnings(mi, namespaces.Items)
}

func (v *MeshInstallValidator) namespaces() meshadmission.Namespaces {
	return meshadmission.Namespaces{Mesh: v.MeshNamespaces, Operator: v.OperatorNamespace}
}

// ValidateDelete allows every delete.
func (v *MeshInstallValidator) ValidateDelete(context.Context, *meshv1alpha1.MeshInstall) (admission.Warnings, error) {
	return nil, nil
}
