package meshinstall

import (
	"context"
	"fmt"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/meshca"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// injectorGVK is the kind of the injector configuration.
var injectorGVK = admissionregistrationv1.SchemeGroupVersion.WithKind("MutatingWebhookConfiguration")

// applyFailure is one object that could not be applied.
type applyFailure struct {
	// revision is the revision the object belongs to; "" for shared objects.
	revision string
	err      error
}

// applyOutcome is what the staged apply did.
type applyOutcome struct {
	failures []applyFailure
	// injectorApplied is false when the injector configuration could not be applied.
	injectorApplied bool
	// tags are the revision tag configurations of the routing in effect (Istio's tools read them).
	tags []client.Object
	// routing is the routing in effect after the pass: the plan's, or the
	// observed one when the plan's could not be written or would have moved
	// workloads towards a revision that failed.
	routing *revision.Routing
}

// failedRevisions are the revisions with an object that failed.
func (o *applyOutcome) failedRevisions() map[string]bool {
	out := map[string]bool{}
	for _, f := range o.failures {
		if f.revision != "" {
			out[f.revision] = true
		}
	}
	return out
}

// err summarises every failure, naming each object.
func (o *applyOutcome) err() error {
	if len(o.failures) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(o.failures))
	for _, f := range o.failures {
		msgs = append(msgs, f.err.Error())
	}
	return fmt.Errorf("%d object(s) could not be applied: %s", len(o.failures), strings.Join(msgs, "; "))
}

// applyStages applies d stage by stage. One failing object stops nothing
// that does not depend on it: every object of every stage is tried, and
// every failure is reported. What moves pods depends on the revisions: the
// routing is not moved towards a revision whose objects failed, or whose
// injector entries cainjector has not filled yet, and the injector gets no
// entry for a revision that failed unless it had one already. The revision
// tag configurations (what istioctl and istiod read) follow the routing
// that is in effect once the routing stage is done.
func (r *Reconciler) applyStages(ctx context.Context, mi *meshv1alpha1.MeshInstall, plan revision.Plan,
	d *desired, obs *observation, endpoint webhookconfig.Endpoint, ca meshca.Decision) applyOutcome {
	var out applyOutcome
	applyAll := func(objs []client.Object) {
		for _, obj := range objs {
			live, exists := obs.live[apply.KeyOf(obj)]
			if !exists {
				live = nil
			}
			err := r.createFailOpen(ctx, obj, exists)
			if err == nil {
				_, err = apply.IfChanged(ctx, r.Client, obj, live)
			}
			if err != nil {
				out.failures = append(out.failures, applyFailure{revision: obj.GetLabels()[render.LabelRevision], err: err})
			}
		}
	}
	applyAll(d.crds)
	applyAll(d.base)
	r.applyCertificateAuthority(ctx, ca, obs, &out)
	for _, objs := range d.revisions {
		applyAll(objs)
	}
	failed := out.failedRevisions()
	held := routesTowards(plan.Routing, obs.Routing, union(failed, untrustedRevisions(plan, obs, endpoint)))
	if held && obs.Routing != nil && obs.Routing.Active != plan.Active.Name {
		// A promotion held back: the gateways stay with the revision the tags still point at.
		for _, p := range plan.Revisions {
			if p.Name != obs.Routing.Active {
				continue
			}
			if _, rendered, err := renderPass(mi, plan, p, ca, obs.nodesWithoutNativeSidecars); err == nil {
				if _, shared := sharedObjects(rendered, true); r.ownAll(mi, shared) == nil {
					d.shared = shared
				}
			}
		}
	}
	applyAll(d.shared)

	out.routing = obs.Routing
	if d.routing != nil && !held {
		before := len(out.failures)
		applyAll([]client.Object{d.routing})
		if len(out.failures) == before {
			out.routing = plan.Routing
		}
	}
	// istioctl and istiod see the tags where the routing in effect sends them.
	if tags, err := r.tagsFor(mi, out.routing); err != nil {
		out.failures = append(out.failures, applyFailure{err: err})
	} else {
		out.tags = tags
		applyAll(tags)
	}

	// The injector serves every revision that applied, and keeps the
	// entries of those that failed but were served already.
	var served []string
	for _, p := range plan.Revisions {
		if !failed[p.Name] || obs.matcher.Serves(webhookconfig.TargetPath("rev", p.Name)) {
			served = append(served, p.Name)
		}
	}
	injector, err := r.injectorFor(mi, served, endpoint)
	if err == nil {
		err = removeDroppedEntries(ctx, r.Client, obs.injector, injector)
	}
	if err == nil {
		before := len(out.failures)
		applyAll([]client.Object{injector})
		out.injectorApplied = len(out.failures) == before
	} else {
		out.failures = append(out.failures, applyFailure{err: err})
	}
	return out
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
