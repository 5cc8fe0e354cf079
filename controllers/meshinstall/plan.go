package meshinstall

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/meshca"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/rollout"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// decide plans a pass from what was observed: the revisions
// (revision.Decide), and, while a canary's step is weighted and the rollout
// is Automatic, the data plane rollout for the routing observed, since the
// step is not healthy while workloads assigned to the canary wait or roll.
// rollout is nil when it was not needed.
func decide(mi *meshv1alpha1.MeshInstall, obs *observation) (plan revision.Plan, roll *rollout.Plan, err error) {
	in := obs.Observed
	if c := obs.Routing; c != nil && c.Canary != "" && c.Weight > 0 && mi.Spec.DataPlane.Rollout.Mode == meshv1alpha1.RolloutAutomatic {
		decided := rollout.Decide(rolloutInput(mi, obs, obs.Routing))
		roll, in.CanaryWorkloadsPending = &decided, decided.CanaryPending
	}
	plan, err = revision.Decide(mi, in)
	return plan, roll, err
}

// rolloutFor is the data plane rollout once the pass has set the routing:
// workloads move onto what the routing in the cluster sends them to. It is
// decided once per pass: decided (for the routing observed) serves when the
// routing did not move.
func rolloutFor(mi *meshv1alpha1.MeshInstall, obs *observation, decided *rollout.Plan, routing *revision.Routing) rollout.Plan {
	if decided != nil && routing.Equal(obs.Routing) {
		return *decided
	}
	return rollout.Decide(rolloutInput(mi, obs, routing))
}

// routingStage is what the last stages of a pass apply, decided from which
// revisions failed in the first ones: the routing is not moved towards a
// revision whose objects failed, or whose injector entries cainjector has
// not filled yet (the shared objects then follow the revision the tags
// still point at), and the injector gets no entry for a revision that
// failed unless it had one already.
type routingStage struct {
	shared []client.Object
	// routing is the routing ConfigMap to apply; nil when it is held back
	// or there is nothing to route.
	routing client.Object
	// injector is the injector configuration, with an entry for each
	// revision it serves; injectorErr says why it could not be rendered.
	injector    *admissionregistrationv1.MutatingWebhookConfiguration
	injectorErr error
}

// routingStage decides the last stages from the revisions that failed.
func (p planner) routingStage(mi *meshv1alpha1.MeshInstall, plan revision.Plan, d *desired, obs *observation, failed map[string]bool) routingStage {
	s := routingStage{shared: d.shared}
	held := routesTowards(plan.Routing, obs.Routing, union(failed, d.untrusted))
	if held && d.sharedHeld != nil {
		s.shared = d.sharedHeld
	}
	if d.routing != nil && !held {
		s.routing = d.routing
	}
	// The injector serves every revision that applied, and keeps the
	// entries of those that failed but were served already.
	var served []string
	for _, rev := range plan.Revisions {
		if !failed[rev.Name] || obs.matcher.Serves(webhookconfig.TargetPath("rev", rev.Name)) {
			served = append(served, rev.Name)
		}
	}
	s.injector, s.injectorErr = p.injectorFor(mi, served, obs)
	return s
}

// routesTowards reports whether moving from the observed routing to the
// planned one sends workloads to a revision that failed: a new active
// revision, a new canary, or a canary whose weight grows.
func routesTowards(planned, observed *revision.Routing, failed map[string]bool) bool {
	if planned == nil {
		return false
	}
	if observed == nil {
		return failed[planned.Active] || failed[planned.Canary]
	}
	if planned.Active != observed.Active && failed[planned.Active] {
		return true
	}
	return planned.Canary != "" && failed[planned.Canary] && (planned.Canary != observed.Canary || planned.Weight > observed.Weight)
}

// pruneSelection is what a pass prunes of what the MeshInstall owns
// (obs.live): what it no longer wants, a removed gateway, a
// PeerAuthentication whose field was unset, and the objects of a revision
// the plan prunes once unused (confirmedUnused) confirms no pod uses it, and the
// istio-cni node agent's once no running pod was injected for it. The objects of a
// revision neither kept nor pruned are never touched, nor namespaces, which
// are kept while the MeshInstall lives: they may hold users' objects.
func pruneSelection(plan revision.Plan, want map[apply.Key]bool, obs *observation, unused map[string]bool) []client.Object {
	kept := revisionNames(plan)
	var out []client.Object
	for _, key := range slices.SortedFunc(maps.Keys(obs.live), compareKeys) {
		o := obs.live[key]
		if want[key] || key.GVK.Kind == "Namespace" || cniRetained(o, obs) {
			continue
		}
		if rev, ok := o.GetLabels()[render.LabelRevision]; ok && !kept[rev] && !unused[rev] {
			continue
		}
		out = append(out, o)
	}
	return out
}

// confirmedUnused are the revisions the plan prunes whose objects go in
// this pass: those gather found retired (observeRetired). The others wait
// for the pass that observes them out of the injector and the routing.
func confirmedUnused(plan revision.Plan, obs *observation) map[string]bool {
	out := map[string]bool{}
	for _, rev := range plan.Prune {
		if obs.retired[rev] {
			out[rev] = true
		}
	}
	return out
}

// retiring are the revisions the plan prunes whose objects stay for now
// (not confirmedUnused): status keeps reporting them, with when they were
// last used, until they are gone.
func retiring(plan revision.Plan, obs *observation) []string {
	var out []string
	for _, rev := range plan.Prune {
		if !obs.retired[rev] {
			out = append(out, rev)
		}
	}
	return out
}

// wanted is every object the pass applied, or would have: what prune keeps.
func wanted(d *desired, tags []client.Object) map[apply.Key]bool {
	want := map[apply.Key]bool{}
	for _, o := range slices.Concat(d.all(), tags) {
		want[apply.KeyOf(o)] = true
	}
	want[apply.Key{GVK: injectorGVK, Name: webhookconfig.InjectorName}] = true
	return want
}

// revisionNames are the revisions the plan keeps.
func revisionNames(p revision.Plan) map[string]bool {
	out := make(map[string]bool, len(p.Revisions))
	for _, r := range p.Revisions {
		out[r.Name] = true
	}
	return out
}

// appliedPass is what the last pass that applied, succeeded and wrote its
// report saw: its applyInputs, and the MeshInstall's resourceVersion once
// that report (or a later pass's counts) was written.
type appliedPass struct{ inputs, resourceVersion string }

// nothingToApply is the pass's early exit: the cluster already is what the
// plan wants of revisions, routing, the canary's clock and the mesh's
// namespaces (settled), nothing the pass renders, applies or prunes from
// has changed since the last pass that applied (its applyInputs), and
// nobody but the operator wrote the MeshInstall since (its
// resourceVersion: a status someone wiped or rolled back is reported
// again). Such a pass would write nothing but the counts: it only counts
// the data plane and carries the rollout on. A pod, namespace or workload
// event changes none of it, whatever else shares its request key; drift of
// an owned object changes its resourceVersion, and so the inputs.
func nothingToApply(mi *meshv1alpha1.MeshInstall, p revision.Plan, obs *observation, inputs string, last appliedPass) bool {
	return last.inputs != "" && inputs == last.inputs && mi.ResourceVersion == last.resourceVersion &&
		obs.endpointErr == nil && obs.retiredErr == nil && settled(mi, p, obs)
}

// applyInputs fingerprints everything a pass renders, applies and prunes
// from: the MeshInstall (UID, generation, labels, annotations), the plan's
// revisions, routing, prunes and phase, the mesh CA decision, every object
// the MeshInstall owns at the resourceVersion observed, the webhook
// endpoint, the nodes' native sidecar support, the CRDs applied, the
// revisions confirmed retired, the namespaces the mesh needs as they
// are, and those that enforce a Pod Security level (PodSecurityCompatible). Pods and users' workloads are not in it: they change what the pass
// counts and what the rollout restarts, which every pass does anyway.
func applyInputs(mi *meshv1alpha1.MeshInstall, p revision.Plan, obs *observation, ca meshca.Decision) string {
	type planned struct {
		Name, Version, ProxyVersion string
		Role                        meshv1alpha1.RevisionRole
		Weight                      int32
		InjectCNI                   bool
	}
	revisions := make([]planned, 0, len(p.Revisions))
	for _, r := range p.Revisions {
		revisions = append(revisions, planned{r.Name, r.Version.String(), r.ProxyVersion.String(), r.Role, r.Weight, r.InjectCNI})
	}
	live := make(map[string]string, len(obs.live))
	for key, o := range obs.live {
		live[key.GVK.String()+" "+key.Namespace+"/"+key.Name] = o.GetResourceVersion()
	}
	namespaces := map[string]map[string]string{}
	for _, ns := range namespacesToApply(mi, obs) {
		namespaces[ns.GetName()] = obs.namespaces[ns.GetName()]
	}
	in := struct {
		UID                        types.UID
		Generation                 int64
		Labels, Annotations        map[string]string
		Revisions                  []planned
		Routing                    *revision.Routing
		Prune                      []string
		Phase                      revision.Phase
		Message                    string
		Waiting, Blocked           bool
		CA                         meshca.Decision
		Live                       map[string]string
		Endpoint                   webhookconfig.Endpoint
		NodesWithoutNativeSidecars bool
		CRDs                       map[string]string
		Retired                    map[string]bool
		Namespaces                 map[string]map[string]string
		ControlledNamespaces       map[string]bool
		CNIVersion                 string
		CNI                        *revision.ObservedCNI
		CNIRelied                  bool
		PodSecurity                map[string]string
		// The foreign webhook configurations a migration holds (the
		// injector's gate, what is not applied under their names).
		MigrationHeld  []string
		MigrationPhase meshv1alpha1.MigrationPhase
	}{
		mi.UID, mi.Generation, mi.Labels, mi.Annotations,
		revisions, p.Routing, p.Prune, p.Phase, p.Message, p.Waiting, p.Blocked,
		ca, live, obs.endpoint, obs.nodesWithoutNativeSidecars, obs.crdHashes, obs.retired, namespaces, obs.controlledNamespaces,
		cniVersion(p), obs.CNI, obs.cni.reliant > 0, enforcedLevelInputs(obs), migrationHeld(obs.migration), obs.migrationPhase,
	}
	raw, err := json.Marshal(in)
	if err != nil {
		return "" // never matches: the pass applies
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// settled reports whether the cluster already is what the plan wants of
// revisions, routing, the canary's clock and the mesh's namespaces.
func settled(mi *meshv1alpha1.MeshInstall, p revision.Plan, obs *observation) bool {
	st := &mi.Status
	if len(p.Prune) > 0 || !p.Routing.Equal(obs.Routing) {
		return false
	}
	if !maps.Equal(revisionNames(p), namesOf(obs.Revisions)) {
		return false
	}
	for _, r := range p.Revisions {
		o := obs.Revisions[r.Name]
		if o.ControlPlaneVersion != r.Version.String() || o.ProxyVersion != r.ProxyVersion.String() {
			return false
		}
	}
	// The node agent runs the version the plan wants.
	if v := cniVersion(p); v != "" && (obs.CNI == nil || obs.CNI.Version != v) {
		return false
	}
	// A canary whose health changed has a clock to record.
	if (p.Canary == nil) != (st.Canary == nil) {
		return false
	}
	if p.Canary != nil && (p.Canary.HealthySince == nil) != (st.Canary.HealthySince == nil) {
		return false
	}
	// The namespaces the mesh needs exist and carry the labels it gives them.
	for _, ns := range namespacesToApply(mi, obs) {
		live, ok := obs.namespaces[ns.GetName()]
		if !ok {
			return false
		}
		for k, v := range ns.GetLabels() {
			if live[k] != v {
				return false
			}
		}
	}
	return true
}

// cniVersion is the node agent's planned version; "" without spec.cni.
func cniVersion(p revision.Plan) string {
	if p.CNIVersion.Release.Minor == "" {
		return ""
	}
	return p.CNIVersion.String()
}

func namesOf(m map[string]revision.ObservedRevision) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}
