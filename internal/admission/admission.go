// Package admission holds the rules a MeshInstall is judged by when it is
// stored: what CEL cannot express (supported versions, Istio's upgrade
// rules, overlays that apply, one MeshInstall per cluster, a change of CA,
// the namespaces the operator manages). webhooks.MeshInstallValidator is the
// HTTP shell over ValidateCreate and ValidateUpdate.
//
// No rule here is a copy of the reconciler's: the singleton rule is
// revision.CheckSingleton, the planner is revision.Decide, the plan → render
// conversion is revision.Render, the CA rule meshca.ValidateUpdate and the
// namespace rule ownership.CheckNamespaces, each called by both.
package admission

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/meshca"
	"github.com/meshkeeper/meshkeeper/internal/ownership"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// Namespaces are the operator's --mesh-namespaces and its own namespace
// (ownership.CheckNamespaces). With no Mesh namespaces they are not checked
// at admission; the reconciler still refuses them.
type Namespaces struct {
	Mesh     []string
	Operator string
}

// check refuses a control plane or gateway namespace the operator does not
// manage meshes in.
func (n Namespaces) check(mi *meshv1alpha1.MeshInstall) error {
	if len(n.Mesh) == 0 {
		return nil
	}
	return ownership.CheckNamespaces(mi, n.Mesh, n.Operator)
}

// revisionName matches the names canary revisions get (1-32-0); a tag may
// not look like one, or istio.io/rev=<name> would be ambiguous.
var revisionName = regexp.MustCompile(`^[0-9]+-[0-9]+-[0-9]+$`)

// reservedNamespaces can never hold a mesh component.
var reservedNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// ValidateCreate refuses a new MeshInstall that could not be installed.
// others are the MeshInstalls that already exist.
func ValidateCreate(mi *meshv1alpha1.MeshInstall, others []meshv1alpha1.MeshInstall, ns Namespaces) error {
	if err := revision.CheckSingleton(mi, others); err != nil {
		return err
	}
	if err := validateSpec(mi); err != nil {
		return err
	}
	plan, err := revision.Decide(mi, revision.Observed{})
	if err != nil {
		return err
	}
	if err := validateOverlays(mi, plan); err != nil {
		return err
	}
	return ns.check(mi)
}

// ValidateUpdate refuses a spec change that breaks an upgrade rule or
// changes the CA of a running mesh, and warns of the istiod defaults an
// accepted upgrade changes and of what an accepted change of CA leaves.
func ValidateUpdate(old, updated *meshv1alpha1.MeshInstall, ns Namespaces) (warnings []string, err error) {
	if err := validateUpgrade(old, updated); err != nil {
		return nil, err
	}
	if err := meshca.ValidateUpdate(old, updated); err != nil {
		return nil, err
	}
	if err := ns.check(updated); err != nil {
		return nil, err
	}
	return append(upgradeWarnings(old, updated), meshca.Warnings(old, updated)...), nil
}

// validateUpgrade checks a change of spec against the upgrade rules, by
// asking the planner what it would do with the new spec and the current
// status: a change the operator would refuse is refused at admission, and
// nothing is applied.
func validateUpgrade(old, updated *meshv1alpha1.MeshInstall) error {
	if equality.Semantic.DeepEqual(old.Spec, updated.Spec) {
		return nil // metadata-only changes (finalizers, labels) are always allowed
	}
	if err := validateSpec(updated); err != nil {
		return err
	}
	plan, err := PlanUpdate(old, updated)
	if err != nil {
		return err
	}
	return validateOverlays(updated, plan)
}

// PlanUpdate is what the planner would do first with the updated spec,
// judged against old's status (observedFromStatus): an in-place upgrade, a
// canary, or a refusal. kubectl meshkeeper precheck shows it before anyone
// edits the spec.
func PlanUpdate(old, updated *meshv1alpha1.MeshInstall) (revision.Plan, error) {
	candidate := updated.DeepCopy()
	candidate.Status = *old.Status.DeepCopy()
	return revision.Decide(candidate, observedFromStatus(&candidate.Status))
}

// upgradeWarnings names the istiod variables that keep the old minor's
// behaviour, when an upgrade reaches a minor that changes defaults and the
// user has not pinned them in spec.pilot.env.
func upgradeWarnings(old, updated *meshv1alpha1.MeshInstall) []string {
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
	return []string{fmt.Sprintf(
		"upgrading from Istio %s to %s changes istiod defaults; to keep %s's behaviour set in spec.pilot.env: %s",
		from.Release.Minor, to.Release.Minor, from.Release.Minor, strings.Join(unpinned, ", "))}
}

// validateOverlays renders what the plan's pass would apply, as the
// reconciler does (revision.Render), and refuses spec.overlays unless each one
// applies to it: an overlay that cannot apply is refused here, when the user
// can fix it, rather than later, when it would stop the reconciler.
// Admission does not see the nodes; what they decide (native or classic
// sidecars) lives only in the injection configuration, which no overlay may
// patch, so either answer judges the overlays alike.
func validateOverlays(mi *meshv1alpha1.MeshInstall, plan revision.Plan) error {
	if len(mi.Spec.Overlays) == 0 {
		return nil
	}
	_, _, err := revision.Render(mi, plan, plan.Active, render.CertificateAuthorityOf(mi), false)
	return err
}

// observedFromStatus is the cluster as status last reported it. Admission
// answers without listing the cluster; the reconciler judges the spec again
// against what it observes, so a stale status can only make admission
// accept what the reconciler then refuses (Stalled), never the reverse harm.
func observedFromStatus(st *meshv1alpha1.MeshInstallStatus) revision.Observed {
	obs := revision.Observed{Revisions: map[string]revision.ObservedRevision{}}
	for _, r := range st.Revisions {
		obs.Revisions[r.Name] = revision.ObservedRevision{
			ControlPlaneVersion: cmp.Or(r.ControlPlaneVersion, r.Version), ProxyVersion: r.Version,
			Istiod: &revision.Rollout{Available: r.Ready}, Pods: r.Pods, PodsReady: true,
		}
	}
	if st.ActiveRevision != "" {
		obs.Routing = &revision.Routing{Active: st.ActiveRevision}
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
