// Package webhooks holds meshkeeper's admission webhooks: thin HTTP shells over
// pure functions (the sidecar injector and the MeshInstall validator).
package webhooks

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/revision"
)

// MeshInstallValidator refuses MeshInstalls the operator would not carry
// out: unsupported versions, version jumps and downgrades Istio forbids,
// strategy changes during a canary, a second MeshInstall.
type MeshInstallValidator struct {
	Reader client.Reader
}

// SetupWithManager serves the validator at /validate-mesh-meshkeeper-dev-v1alpha1-meshinstall.
func (v *MeshInstallValidator) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &meshv1alpha1.MeshInstall{}).WithValidator(v).Complete()
}

// ValidateCreate refuses a MeshInstall that could not be installed.
func (v *MeshInstallValidator) ValidateCreate(ctx context.Context, mi *meshv1alpha1.MeshInstall) (admission.Warnings, error) {
	var list meshv1alpha1.MeshInstallList
	if err := v.Reader.List(ctx, &list); err != nil {
		return nil, err
	}
	return nil, revision.ValidateCreate(mi, list.Items)
}

// ValidateUpdate refuses a spec change that breaks an upgrade rule.
func (v *MeshInstallValidator) ValidateUpdate(_ context.Context, old, updated *meshv1alpha1.MeshInstall) (admission.Warnings, error) {
	return nil, revision.ValidateUpdate(old, updated)
}

// ValidateDelete allows every delete.
func (v *MeshInstallValidator) ValidateDelete(context.Context, *meshv1alpha1.MeshInstall) (admission.Warnings, error) {
	return nil, nil
}
