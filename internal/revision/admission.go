package revision

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// revisionName matches the names canary revisions get (1-32-0); a tag may
// not look like one, or istio.io/rev=<name> would be ambiguous.
var revisionName = regexp.MustCompile(`^[0-9]+-[0-9]+-[0-9]+$`)

// reservedNamespaces can never hold a mesh component.
var reservedNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// ValidateCreate checks a new MeshInstall against the rules CEL cannot
// express. others are the MeshInstalls that already exist.
func ValidateCreate(mi *meshv1alpha1.MeshInstall, others []meshv1alpha1.MeshInstall) error {
	if err := CheckSingleton(mi, others); err != nil {
		return err
	}
	if err := validateSpec(mi); err != nil {
		return err
	}
	plan, err := Decide(mi, Observed{})
	if err != nil {
		return err
	}
	return validateOverlays(mi, plan)
}

// ValidateUpdate checks a change of spec against the upgrade rules, by asking
// the planner what it would do with the new spec and the current status: a
// change the operator would refuse is refused at admission, and nothing is applied.
func ValidateUpdate(old, updated *meshv1alpha1.MeshInstall) error {
	if equality.Semantic.DeepEqual(old.Spec, updated.Spec) {
		return nil // metadata-only changes (finalizers, labels) are always allowed
	}
	if err := validateSpec(updated); err != nil {
		return err
	}
	candidate := updated.DeepCopy()
	candidate.Status = *old.Status.DeepCopy()
	plan, err := Decide(candidate, observedFromStatus(&candidate.Status))
	if err != nil {
		return err
	}
	return validateOverlays(updated, plan)
}

// validateOverlays renders what the plan's pass would apply, as the
// reconciler does (Render), and refuses spec.overlays unless each one
// applies to it: an overlay that cannot apply is refused here, when the user
// can fix it, rather than later, when it would stop the reconciler.
// Admission does not see the nodes; what they decide (native or classic
// sidecars) lives only in the injection configuration, which no overlay may
// patch, so either answer judges the overlays alike.
func validateOverlays(mi *meshv1alpha1.MeshInstall, plan Plan) error {
	if len(mi.Spec.Overlays) == 0 {
		return nil
	}
	_, _, err := Render(mi, plan, plan.Active, render.CertificateAuthorityOf(mi), false)
	return err
}

// observedFromStatus is the cluster as status last reported it. Admission
// answers without listing the cluster; the reconciler judges the spec again
// against what it observes, so a stale status can only make admission
// accept what the reconciler then refuses (Stalled), never the reverse harm.
func observedFromStatus(st *meshv1alpha1.MeshInstallStatus) Observed {
	obs := Observed{Revisions: map[string]ObservedRevision{}}
	for _, r := range st.Revisions {
		obs.Revisions[r.Name] = ObservedRevision{
			ControlPlaneVersion: cmp.Or(r.ControlPlaneVersion, r.Version), ProxyVersion: r.Version,
			Istiod: &Rollout{Available: r.Ready}, Pods: r.Pods, PodsReady: true,
		}
	}
	if st.ActiveRevision != "" {
		obs.Routing = &Routing{Active: st.ActiveRevision}
		if c := st.Canary; c != nil {
			obs.Routing.Canary, obs.Routing.Weight = c.Revision, c.Weight
		}
	}
	return obs
}

// validateSpec adds to the CRD's rules what the renderer needs (a supported
// version, valid env and label names, requests within limits, …) and what
// the planner needs of tags and namespaces, so that a spec the operator
// could only half apply is refused before it is stored.
func validateSpec(mi *meshv1alpha1.MeshInstall) error {
	if err := render.Validate(mi); err != nil {
		return err
	}
	for i, tag := range mi.Spec.RevisionTags {
		if revisionName.MatchString(tag) {
			return fmt.Errorf("spec.revisionTags[%d]: %q looks like a revision name (X-Y-Z); pick a tag name that cannot be confused with a revision", i, tag)
		}
	}
	if slices.Contains(reservedNamespaces, mi.Spec.Namespace) {
		return fmt.Errorf("spec.namespace: %s is reserved for Kubernetes", mi.Spec.Namespace)
	}
	for i, g := range mi.Spec.Gateways {
		if slices.Contains(reservedNamespaces, g.Namespace) {
			return fmt.Errorf("spec.gateways[%d].namespace: %s is reserved for Kubernetes", i, g.Namespace)
		}
	}
	return nil
}
