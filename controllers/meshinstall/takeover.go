package meshinstall

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/ownership"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// takeoverRetry is how often a MeshInstall refused for an object it does
// not own looks again: that object is not watched (it carries none of
// meshkeeper's labels), so its removal triggers no pass.
const takeoverRetry = time.Minute

// observeExisting gathers, by name, the objects a pass would create that
// the cache does not hold as the MeshInstall's: whoever made them, if
// anyone. Server-side apply with force would merge into such an object and
// later prune would delete it, so the plan refuses them (takeoverRefusal).
// Objects the MeshInstall owns are in obs.live and cost no read; one just
// applied and not cached yet is read once and found to be its own.
func (r *Reconciler) observeExisting(ctx context.Context, mi *meshv1alpha1.MeshInstall, d *desired, obs *observation) (map[apply.Key]*metav1.PartialObjectMetadata, error) {
	keys := map[apply.Key]bool{{GVK: injectorGVK, Name: webhookconfig.InjectorName}: true}
	candidates := slices.Concat(d.base, slices.Concat(d.revisions...), d.cni, d.shared)
	if obs.ca.Certificate == nil {
		// The mesh CA's Certificate is observed apart (observeCertificateAuthority): ours when it is there.
		candidates = append(candidates, d.certificateAuthority...)
	}
	for _, o := range candidates {
		switch o.GetObjectKind().GroupVersionKind().Kind {
		case "Namespace", "CustomResourceDefinition":
			// Namespaces: namespacesToApply takes none over. CRDs are Istio's, shared by every install.
			continue
		}
		keys[apply.KeyOf(o)] = true
	}
	if d.routing != nil {
		keys[apply.KeyOf(d.routing)] = true
	}
	existing := map[apply.Key]*metav1.PartialObjectMetadata{}
	for _, key := range slices.SortedFunc(maps.Keys(keys), compareKeys) {
		if _, ours := obs.live[key]; ours {
			continue
		}
		o := &metav1.PartialObjectMetadata{}
		o.SetGroupVersionKind(key.GVK)
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: key.Name}, o)
		switch {
		case apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
			continue // nothing there (or not even its kind yet): created by the apply
		case err != nil:
			return nil, fmt.Errorf("checking whether %s exists: %w", key, err)
		}
		existing[key] = o
	}
	return existing, nil
}

// takeoverRefusal refuses a pass that would write over an object that is
// not the MeshInstall's: it exists, and its controller reference does not
// name this MeshInstall. When Istio's installers labelled one of them
// (installedBy), the reason is ForeignIstioInstallation. Nothing is applied, and since the object is not
// the MeshInstall's, nothing ever deletes it.
func takeoverRefusal(mi *meshv1alpha1.MeshInstall, existing map[apply.Key]*metav1.PartialObjectMetadata) *refusal.Error {
	var theirs, istios []string
	for _, key := range slices.SortedFunc(maps.Keys(existing), compareKeys) {
		o := existing[key]
		if ownership.ControlledBy(o, mi.UID) {
			continue
		}
		if by := installedBy(o.Labels, o.OwnerReferences); by != "" {
			istios = append(istios, fmt.Sprintf("%s (installed by %s)", key, by))
			continue
		}
		why := "created by someone else"
		if ref := metav1.GetControllerOfNoCopy(o); ref != nil {
			why = fmt.Sprintf("controlled by %s %s", ref.Kind, ref.Name)
			if ref.Kind == "MeshInstall" && ref.Name == mi.Name {
				why = "controlled by an earlier MeshInstall of this name"
			}
		}
		theirs = append(theirs, fmt.Sprintf("%s (%s)", key, why))
	}
	if len(istios) > 0 {
		// Istio's own installer made them: the migration, not a rename, is the way on.
		return &refusal.Error{Reason: meshv1alpha1.ReasonForeignIstioInstallation, Message: fmt.Sprintf(
			"%s already exist(s), made by an Istio installation meshkeeper did not make: meshkeeper writes over none of it, "+
				"so nothing was applied; print the equivalent MeshInstall with `kubectl meshkeeper translate` and see the "+
				"README section \"Migrating from istioctl, Helm or Sail\"", strings.Join(slices.Concat(istios, theirs), ", "))}
	}
	if len(theirs) == 0 {
		return nil
	}
	return &refusal.Error{Reason: meshv1alpha1.ReasonObjectNotOwned, Message: fmt.Sprintf(
		"%s already exist(s) and is not this MeshInstall's: meshkeeper never writes over an object it did not create, "+
			"so nothing was applied; remove or rename it (or, for a gateway, choose another name or namespace)",
		strings.Join(theirs, ", "))}
}
