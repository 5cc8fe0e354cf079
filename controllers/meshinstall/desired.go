package meshinstall

import (
	"errors"
	"maps"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/meshca"
	"github.com/meshkeeper/meshkeeper/internal/ownership"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// desired is what one pass applies, in stages: Istio's CRDs (only when
// missing or changed); namespaces and every identity and permission; the
// mesh CA's cert-manager Certificate; each
// revision's control plane; the istio-cni node agent; the shared objects (default validator,
// PeerAuthentication, gateways); then the routing, the revision tag
// configurations of the routing in effect, and last the injector
// configuration, which the reconciler builds once it knows which revisions
// applied.
type desired struct {
	crds []client.Object
	base []client.Object
	// certificateAuthority is the mesh CA Certificate, when there is one to apply.
	certificateAuthority []client.Object
	revisions            [][]client.Object
	// cni is the istio-cni node agent, applied after the control planes.
	cni     []client.Object
	shared  []client.Object
	routing client.Object // nil while nothing may be routed

	// sharedHeld are the shared objects following the revision the tags
	// point at now, applied instead of shared when the promotion of another
	// is held back (routingStage); nil when the pass promotes nothing.
	sharedHeld []client.Object
	// untrusted are the revisions whose injector entries the API server
	// cannot call yet (untrustedRevisions): no workload is routed to them.
	untrusted map[string]bool
	// tagsPlanned and tagsObserved are the revision tag configurations of
	// the plan's routing and of the one observed: the tags follow whichever
	// is in effect once the routing stage is done.
	tagsPlanned, tagsObserved tagConfigurations
}

// tagConfigurations are the revision tag configurations of one routing,
// or why they could not be rendered.
type tagConfigurations struct {
	objects []client.Object
	err     error
}

// all is every desired object but the injector configuration.
func (d *desired) all() []client.Object {
	out := slices.Concat(d.crds, d.base, d.certificateAuthority, slices.Concat(d.revisions...), d.cni, d.shared)
	if d.routing != nil {
		out = append(out, d.routing)
	}
	return out
}

// planner renders what a pass applies, and decides its stages. It holds
// no client: planning reads nothing, so a pass's plan is a function of the
// MeshInstall and of the observation alone.
type planner struct {
	scheme *runtime.Scheme
	// operatorNamespace is where meshkeeper runs; the injector never injects it.
	operatorNamespace string
}

// planner is the reconciler's planner.
func (r *Reconciler) planner() planner {
	return planner{scheme: r.Scheme(), operatorNamespace: r.OperatorNamespace}
}

// desiredObjects renders everything the plan needs, istiod with the CA ca
// says it runs with.
func (p planner) desiredObjects(mi *meshv1alpha1.MeshInstall, plan revision.Plan, obs *observation, ca meshca.Decision) (*desired, error) {
	d := &desired{}
	crds, err := crdsToApply(mi, obs)
	if err != nil {
		return nil, err
	}
	d.crds = crds
	d.base = namespacesToApply(mi, obs)

	perRevision, rendered, err := renderPass(mi, plan, plan.Active, ca, obs.nodesWithoutNativeSidecars)
	if err != nil {
		return nil, err
	}
	for _, objs := range perRevision {
		var controlPlane []client.Object
		for _, o := range objs {
			if isIdentity(o) {
				d.base = append(d.base, o)
			} else {
				controlPlane = append(controlPlane, o)
			}
		}
		d.revisions = append(d.revisions, controlPlane)
	}
	identities, shared := sharedObjects(rendered, obs.Routing != nil || plan.Routing != nil)
	d.base, d.shared = append(d.base, identities...), shared
	if ca.Certificate != nil {
		d.certificateAuthority = []client.Object{ca.Certificate}
	}
	if d.cni, err = p.cniToApply(mi, plan); err != nil {
		return nil, err
	}
	if plan.Routing != nil {
		d.routing = render.RoutingConfigMap(mi, plan.Routing.Data())
	}
	if err := p.ownAll(mi, d.all()); err != nil {
		return nil, err
	}
	render.ApplyOrder(d.base)
	for _, objs := range d.revisions {
		render.ApplyOrder(objs)
	}
	d.sharedHeld = p.sharedHeldBack(mi, plan, obs, ca)
	d.untrusted = untrustedRevisions(plan, obs, obs.endpoint)
	d.tagsPlanned.objects, d.tagsPlanned.err = p.tagsFor(mi, plan.Routing)
	d.tagsObserved.objects, d.tagsObserved.err = p.tagsFor(mi, obs.Routing)
	// While a migration runs, what has the name of one of the foreign
	// revision's webhook configurations waits for it to be removed.
	held := func(o client.Object) bool { return heldByForeign(obs.migration, o) }
	d.shared = slices.DeleteFunc(d.shared, held)
	d.tagsPlanned.objects = slices.DeleteFunc(d.tagsPlanned.objects, held)
	d.tagsObserved.objects = slices.DeleteFunc(d.tagsObserved.objects, held)
	return d, nil
}

// sharedHeldBack renders the shared objects following the revision the
// tags point at now, for a pass that promotes another: if the promotion is
// held back (routingStage), the gateways stay with the revision the tags
// still point at. nil when the pass promotes nothing, or when they cannot
// be rendered (the promotion's own are applied then, as before the hold).
func (p planner) sharedHeldBack(mi *meshv1alpha1.MeshInstall, plan revision.Plan, obs *observation, ca meshca.Decision) []client.Object {
	if obs.Routing == nil || obs.Routing.Active == plan.Active.Name {
		return nil
	}
	var held []client.Object
	for _, rev := range plan.Revisions {
		if rev.Name != obs.Routing.Active {
			continue
		}
		if _, rendered, err := renderPass(mi, plan, rev, ca, obs.nodesWithoutNativeSidecars); err == nil {
			if _, shared := sharedObjects(rendered, true); p.ownAll(mi, shared) == nil {
				held = shared
			}
		}
	}
	return held
}

// renderPass renders the plan's revisions, istiod with the CA ca says it
// runs with, and the shared objects following active, with spec.overlays
// applied; an overlay that does not apply refuses the whole pass.
func renderPass(mi *meshv1alpha1.MeshInstall, plan revision.Plan, active revision.Planned, ca meshca.Decision, nodesWithoutNativeSidecars bool) (perRevision [][]client.Object, shared []client.Object, err error) {
	perRevision, shared, err = revision.Render(mi, plan, active, ca.IstiodCA, nodesWithoutNativeSidecars)
	if err != nil {
		return nil, nil, renderRefusal(err)
	}
	return perRevision, shared, nil
}

// sharedObjects splits the rendered shared objects into identities (for
// the RBAC stage) and the rest, in apply order. routed says the tags point
// at an available istiod already.
func sharedObjects(shared []client.Object, routed bool) (identities, rest []client.Object) {
	for _, o := range shared {
		// Gateway pods need the injector: as istioctl does, start them once
		// the tags are routed to an available istiod.
		if _, gateway := o.GetLabels()[render.LabelGateway]; gateway && !routed {
			if _, isDeployment := o.(*appsv1.Deployment); isDeployment {
				continue
			}
		}
		if isIdentity(o) {
			identities = append(identities, o)
		} else {
			rest = append(rest, o)
		}
	}
	render.ApplyOrder(rest)
	return identities, rest
}

// own makes the MeshInstall the controller of an object: it is
// cluster-scoped, so it may own namespaced and cluster-scoped objects alike;
// deleting it garbage-collects them. Istio's CRDs are never owned: deleting
// the MeshInstall must not delete users' Istio resources.
func (p planner) own(mi *meshv1alpha1.MeshInstall, o client.Object) error {
	switch o.(type) {
	case *apiextensionsv1.CustomResourceDefinition:
		return nil
	case *corev1.Namespace:
		// Nor namespaces: the garbage collector would delete them, with
		// users' objects, along with the MeshInstall (see namespacesToApply).
		return nil
	}
	return controllerutil.SetControllerReference(mi, o, p.scheme)
}

func (p planner) ownAll(mi *meshv1alpha1.MeshInstall, objs []client.Object) error {
	for _, o := range objs {
		if err := p.own(mi, o); err != nil {
			return err
		}
	}
	return nil
}

// isIdentity is true for the objects of the namespaces-and-RBAC stage.
func isIdentity(o client.Object) bool {
	switch o.GetObjectKind().GroupVersionKind().Kind {
	case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
		return true
	}
	return false
}

// injectorGVK is the kind of the injector configuration.
var injectorGVK = admissionregistrationv1.SchemeGroupVersion.WithKind("MutatingWebhookConfiguration")

// injectorFor renders the injector configuration with entries for revisions.
func (p planner) injectorFor(mi *meshv1alpha1.MeshInstall, revisions []string, obs *observation) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	injector := webhookconfig.InjectorConfiguration(webhookconfig.Injector{
		ControlPlaneNamespace: mi.Spec.Namespace,
		OperatorNamespace:     p.operatorNamespace,
		Revisions:             revisions,
		Tags:                  revision.ExtraTags(mi),
		FailurePolicy:         admissionregistrationv1.FailurePolicyType(mi.Spec.Injection.FailurePolicy),
		Endpoint:              obs.endpoint,
		Labels:                ownershipLabels(mi),
		ObjectRequirements:    injectorGate(obs.migration),
	})
	return injector, p.own(mi, injector)
}

// tagsFor renders the revision tag configurations of a routing: none
// while nothing is routed.
func (p planner) tagsFor(mi *meshv1alpha1.MeshInstall, routing *revision.Routing) ([]client.Object, error) {
	if routing == nil {
		return nil, nil
	}
	var out []client.Object
	for _, t := range webhookconfig.TagConfigurations(webhookconfig.Tags{
		Tags:                  routing.Tags,
		Revision:              routing.Active,
		ControlPlaneNamespace: mi.Spec.Namespace,
		Labels:                ownershipLabels(mi),
	}) {
		if err := p.own(mi, t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// renderRefusal turns the renderer's validation errors into a refusal with their reason.
func renderRefusal(err error) error {
	var invalid *render.InvalidError
	if errors.As(err, &invalid) {
		return &refusal.Error{Reason: invalid.Reason, Message: invalid.Error()}
	}
	return err
}

// ownershipLabels mark an object as meshkeeper's and the MeshInstall's, for
// the cache, watches and pruning. The renderer puts them on everything it
// renders; the reconciler adds them to what it builds itself.
func ownershipLabels(mi *meshv1alpha1.MeshInstall) map[string]string {
	return map[string]string{render.LabelManagedBy: render.ManagedBy, render.LabelMeshInstall: mi.Name}
}

// crdsToApply returns Istio's CRDs that are missing or differ from the ones
// pinned in this build. Applying ~1 MB of schemas on every pass would load
// the API server for nothing.
func crdsToApply(mi *meshv1alpha1.MeshInstall, obs *observation) ([]client.Object, error) {
	crds, err := render.IstioCRDs(mi)
	if err != nil {
		return nil, err
	}
	var out []client.Object
	for _, crd := range crds {
		hash := apply.SpecHash(crd.Spec)
		if applied, ok := obs.crdHashes[crd.Name]; ok && applied == hash {
			continue
		}
		crd = crd.DeepCopy()
		l := crd.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		l[render.LabelManagedBy] = render.ManagedBy
		crd.SetLabels(l)
		a := crd.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a[AnnotationSpecHash] = hash
		crd.SetAnnotations(a)
		out = append(out, crd)
	}
	return out, nil
}

// namespacesToApply creates the namespaces the mesh needs when they do not
// exist, and keeps the labels of those it created. A namespace someone else
// created is never taken over. None is ever deleted (reconcileDelete): one
// the mesh created is marked with ownership.AnnotationCreatedBy, not an
// owner reference.
func namespacesToApply(mi *meshv1alpha1.MeshInstall, obs *observation) []client.Object {
	names := []string{mi.Spec.Namespace}
	for _, g := range render.Gateways(mi) {
		if g.Namespace != "" {
			names = append(names, g.Namespace)
		}
	}
	slices.Sort(names)
	var out []client.Object
	for _, name := range slices.Compact(names) {
		if l, exists := obs.namespaces[name]; exists && l[render.LabelMeshInstall] != mi.Name && !obs.controlledNamespaces[name] {
			continue
		}
		want := &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: ownershipLabels(mi)},
		}
		if _, exists := obs.namespaces[name]; !exists || obs.controlledNamespaces[name] {
			want.Annotations = map[string]string{ownership.AnnotationCreatedBy: string(mi.UID)}
		}
		if name == mi.Spec.Namespace {
			maps.Copy(want.Labels, render.ControlPlaneNamespaceLabels(mi))
		}
		out = append(out, want)
	}
	return out
}

// AnnotationSpecHash records the hash of the spec meshkeeper last applied to an Istio CRD.
const AnnotationSpecHash = "mesh.meshkeeper.dev/spec-hash"
