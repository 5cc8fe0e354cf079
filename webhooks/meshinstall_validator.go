// Package webhooks holds meshkeeper's admission webhooks: thin HTTP shells over
// pure functions (the sidecar injector and the MeshInstall validator).
package webhooks

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/meshca"
	"github.com/meshkeeper/meshkeeper/internal/ownership"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/version"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// MeshInstallValidator refuses MeshInstalls the operator would not carry
// out: unsupported versions, version jumps and downgrades Istio forbids,
// strategy changes during a canary, a change of CA on a running mesh, a
// second MeshInstall, a control plane or gateway outside the namespaces the
// operator manages meshes in.
type MeshInstallValidator struct {
	Reader client.Reader
	// MeshNamespaces and OperatorNamespace are the operator's
	// --mesh-namespaces and its own namespace (ownership.CheckNamespaces).
	// Without MeshNamespaces the namespaces are not checked at admission;
	// the reconciler still refuses them.
	MeshNamespaces    []string
	OperatorNamespace string
}

// SetupWithManager serves the validator at /validate-mesh-meshkeeper-dev-v1alpha1-meshinstall.
func (v *MeshInstallValidator) SetupWithManager(mgr ctrl.Manager) error {
	mgr.GetWebhookServer().Register(webhookconfig.ValidatePath, v.Handler(mgr.GetScheme()))
	return nil
}

// Handler is the validator's admission webhook, within ValidatorLimits.
func (v *MeshInstallValidator) Handler(scheme *runtime.Scheme) http.Handler {
	return Bounded("validator", admission.WithValidator[*meshv1alpha1.MeshInstall](scheme, v), ValidatorLimits)
}

// ValidateCreate refuses a MeshInstall that could not be installed.
func (v *MeshInstallValidator) ValidateCreate(ctx context.Context, mi *meshv1alpha1.MeshInstall) (admission.Warnings, error) {
	var list meshv1alpha1.MeshInstallList
	if err := v.Reader.List(ctx, &list); err != nil {
		return nil, err
	}
	if err := revision.ValidateCreate(mi, list.Items); err != nil {
		return nil, err
	}
	return nil, v.checkNamespaces(mi)
}

// checkNamespaces refuses a control plane or gateway namespace the
// operator does not manage meshes in (see MeshNamespaces).
func (v *MeshInstallValidator) checkNamespaces(mi *meshv1alpha1.MeshInstall) error {
	if len(v.MeshNamespaces) == 0 {
		return nil
	}
	return ownership.CheckNamespaces(mi, v.MeshNamespaces, v.OperatorNamespace)
}

// ValidateUpdate refuses a spec change that breaks an upgrade rule or
// changes the CA of a running mesh, and warns of the istiod defaults an
// accepted upgrade changes and of what an accepted change of CA leaves.
func (v *MeshInstallValidator) ValidateUpdate(_ context.Context, old, updated *meshv1alpha1.MeshInstall) (admission.Warnings, error) {
	if err := revision.ValidateUpdate(old, updated); err != nil {
		return nil, err
	}
	if err := meshca.ValidateUpdate(old, updated); err != nil {
		return nil, err
	}
	if err := v.checkNamespaces(updated); err != nil {
		return nil, err
	}
	return append(upgradeWarnings(old, updated), meshca.Warnings(old, updated)...), nil
}

// upgradeWarnings names the istiod variables that keep the old minor's
// behaviour, when an upgrade reaches a minor that changes defaults and the
// user has not pinned them in spec.pilot.env.
func upgradeWarnings(old, updated *meshv1alpha1.MeshInstall) admission.Warnings {
	from, errFrom := version.Parse(old.Spec.Version)
	to, errTo := version.Parse(updated.Spec.Version)
	if errFrom != nil || errTo != nil {
		return nil
	}
	changes := version.BehaviourChanges(from, to)
	var unpinned []string
	for _, name := range slices.Sorted(maps.Keys(changes)) {
		if _, pinned := updated.Spec.Pilot.Env[name]; !pinned {
			unpinned = append(unpinned, name+"="+changes[name])
		}
	}
	if len(unpinned) == 0 {
		return nil
	}
	return admission.Warnings{fmt.Sprintf(
		"upgrading from Istio %s to %s changes istiod defaults; to keep %s's behaviour set in spec.pilot.env: %s",
		from.Release.Minor, to.Release.Minor, from.Release.Minor, strings.Join(unpinned, ", "))}
}

// ValidateDelete allows every delete.
func (v *MeshInstallValidator) ValidateDelete(context.Context, *meshv1alpha1.MeshInstall) (admission.Warnings, error) {
	return nil, nil
}
