package meshinstall

import (
	"context"
	"fmt"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/meshca"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
)

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
	// observed one when the plan's could not be written or was held back
	// (routingStage).
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

// applier executes a pass's plan. It holds a client.Writer only: applying
// reads nothing (what it compares with is the observation's) and decides
// nothing (the planner did).
type applier struct{ w client.Writer }

// applier is the reconciler's applier.
func (r *Reconciler) applier() applier { return applier{w: r.Client} }

// applyRevisions applies the first stages of d: Istio's CRDs, the
// namespaces and identities, the mesh CA, each revision's control plane
// and the istio-cni node agent.
// Like every apply stage it reads nothing and decides nothing; one failing
// object stops nothing that does not depend on it: every object is tried,
// and every failure is reported, under its revision.
func (a applier) applyRevisions(ctx context.Context, d *desired, obs *observation, ca meshca.Decision) applyOutcome {
	var out applyOutcome
	a.applyAll(ctx, obs, &out, d.crds)
	a.applyAll(ctx, obs, &out, d.base)
	a.applyCertificateAuthority(ctx, ca, obs, &out)
	for _, objs := range d.revisions {
		a.applyAll(ctx, obs, &out, objs)
	}
	a.applyAll(ctx, obs, &out, d.cni)
	return out
}

// applyRouting applies the last stages, as routingStage decided them: the
// shared objects, the routing, the revision tags of the routing then in
// effect (the plan's once its ConfigMap is written, else the observed
// one), and the injector configuration, entries it leaves out removed first.
func (a applier) applyRouting(ctx context.Context, plan revision.Plan, d *desired, next routingStage, obs *observation, out *applyOutcome) {
	a.applyAll(ctx, obs, out, next.shared)
	out.routing = obs.Routing
	tags := d.tagsObserved
	if next.routing != nil {
		before := len(out.failures)
		a.applyAll(ctx, obs, out, []client.Object{next.routing})
		if len(out.failures) == before {
			out.routing, tags = plan.Routing, d.tagsPlanned
		}
	}
	// istioctl and istiod see the tags where the routing in effect sends them.
	if tags.err != nil {
		out.failures = append(out.failures, applyFailure{err: tags.err})
	} else {
		out.tags = tags.objects
		a.applyAll(ctx, obs, out, tags.objects)
	}

	err := next.injectorErr
	if err == nil {
		err = removeDroppedEntries(ctx, a.w, obs.injector, next.injector)
	}
	if err == nil {
		before := len(out.failures)
		a.applyAll(ctx, obs, out, []client.Object{next.injector})
		out.injectorApplied = len(out.failures) == before
	} else {
		out.failures = append(out.failures, applyFailure{err: err})
	}
}

// applyAll applies objs, each unless the cache (obs.live) holds it as it
// would be applied, recording each failure under its revision.
func (a applier) applyAll(ctx context.Context, obs *observation, out *applyOutcome, objs []client.Object) {
	for _, obj := range objs {
		live, exists := obs.live[apply.KeyOf(obj)]
		if !exists {
			live = nil
		}
		err := a.createFailOpen(ctx, obj, exists)
		if err == nil {
			_, err = apply.IfChanged(ctx, a.w, obj, live)
		}
		if err != nil {
			out.failures = append(out.failures, applyFailure{revision: obj.GetLabels()[render.LabelRevision], err: err})
		}
	}
}

// createFailOpen creates a missing Istio config validator with failurePolicy
// Ignore, as Istio's chart does on a fresh install: Istio config is not
// refused while istiod is not serving yet. istiod itself switches it to Fail
// (and sets caBundle) once it is ready. The renderer leaves both fields out,
// so the server-side apply that follows never takes them back from istiod.
// exists says whether the cache holds it already.
func (a applier) createFailOpen(ctx context.Context, obj client.Object, exists bool) error {
	vwc, ok := obj.(*admissionregistrationv1.ValidatingWebhookConfiguration)
	if !ok || exists {
		return nil
	}
	fresh := vwc.DeepCopy()
	ignore := admissionregistrationv1.Ignore
	for i := range fresh.Webhooks {
		fresh.Webhooks[i].FailurePolicy = &ignore
	}
	if err := a.w.Create(ctx, fresh, apply.FieldOwner); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating %s: %w", apply.KeyOf(vwc), err)
	}
	return nil
}
