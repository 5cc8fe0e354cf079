package meshinstall

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/meshca"
	"github.com/meshkeeper/meshkeeper/internal/migration"
	"github.com/meshkeeper/meshkeeper/internal/ownership"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
	"github.com/meshkeeper/meshkeeper/internal/requeue"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// Finalizer lets the operator remove the cluster-scoped objects of a MeshInstall.
const Finalizer = "mesh.meshkeeper.dev/finalizer"

// Reconciler reconciles a MeshInstall: it renders each revision's
// control plane, applies it with server-side apply, and reports status.
type Reconciler struct {
	client.Client
	// APIReader reads from the API server directly (whether a revision is
	// still used, in gather, before the plan prunes it).
	APIReader client.Reader
	// Recorder emits Events on transitions.
	Recorder events.EventRecorder
	// OperatorNamespace is where meshkeeper runs; never injected.
	OperatorNamespace string
	// MeshNamespaces are the namespaces the manager caches meshkeeper's
	// objects in (CacheOptions): a MeshInstall whose control plane or
	// gateways would live elsewhere is refused, since nothing there could
	// be read back or trusted.
	MeshNamespaces []string
	// WebhookEndpoint says how the API server reaches the injector (and its CA bundle).
	WebhookEndpoint func(context.Context) (webhookconfig.Endpoint, error)
	// Retrigger asks for a pass over every MeshInstall (e.g. when the webhook CA changed).
	Retrigger <-chan event.GenericEvent
	// CertificateAuthorityPoll is how often a pass looks again for
	// cert-manager or the mesh CA's issuer while it waits on them (neither
	// is watched); DefaultCertificateAuthorityPoll when zero.
	CertificateAuthorityPoll time.Duration
	// PodEventDelay is how long pod, namespace and workload events are
	// batched into one pass; DefaultPodEventDelay when zero.
	PodEventDelay time.Duration

	watches *dynamicWatches
	// applied maps a MeshInstall's name to its last pass that applied,
	// succeeded and wrote its report (appliedPass): a pass from the same
	// inputs has nothing to apply (nothingToApply). A restarted operator
	// applies once.
	applied sync.Map
	// restarts are the workload restarts this process made, by rollout.Key,
	// until the cache shows them (see recentRestart).
	restarts sync.Map
}

// RBAC: what the MeshInstall reconciler does, verb by verb. Reads go
// through the manager's cache (get, list, watch). Rendered objects are
// applied with server-side apply (patch, and create when the object is new)
// and pruned (delete); nothing rendered is ever written with update.
// controllers/webhookcert and workloads.go hold the rest; test/rbac lists
// the result with the reason for each permission.
//
// MeshInstalls: the finalizer is added and removed with update, status is a merge patch.
// +kubebuilder:rbac:groups=mesh.meshkeeper.dev,resources=meshinstalls,verbs=get;list;watch;update
// +kubebuilder:rbac:groups=mesh.meshkeeper.dev,resources=meshinstalls/status,verbs=patch
// Owner references with blockOwnerDeletion need update on the owner's
// finalizers where the OwnerReferencesPermissionEnforcement admission plugin runs (OpenShift).
// +kubebuilder:rbac:groups=mesh.meshkeeper.dev,resources=meshinstalls/finalizers,verbs=update
// Namespaces: the control plane's and gateways' are created, and labelled
// (patch); never deleted, since they may hold users' objects. Every
// namespace's labels select injection.
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch;create;patch
// The control plane and gateways: istiod's mesh and injection ConfigMaps,
// Services, ServiceAccounts, Deployments, PodDisruptionBudgets and HPAs.
// +kubebuilder:rbac:groups="",resources=configmaps;services;serviceaccounts,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;patch;delete
// Every pod is counted for the data plane inventory (and a revision is
// pruned only when no running pod uses it, read from the API server).
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// Events on MeshInstalls (cluster-scoped, so they land in "default").
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// istiod's, the gateways' and the reader's roles and bindings. RBAC lets
// nobody grant what they do not hold, and istiod's rules (Istio's chart)
// hold wildcards: every resource of Istio's API groups and of the Gateway
// API, every verb on ingresses/status. The operator would need those
// wildcards, and read access to every Secret, to hold them; escalate (create
// and update roles granting more than it holds) and bind (bind them) replace
// them. They cannot be narrowed by name: role names follow the revisions.
// Both amount to the power to grant any permission, as installing Istio does.
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles;roles,verbs=get;list;watch;create;patch;delete;escalate;bind
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterrolebindings;rolebindings,verbs=get;list;watch;create;patch;delete
// The injector (MutatingWebhookConfiguration) and istiod's config validator
// (ValidatingWebhookConfiguration, created failing open before it is applied).
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=get;list;watch;create;patch;delete
// Istio's CRDs, installed and upgraded; never deleted (that would delete every Istio resource).
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch;create;patch
// Nodes' kubelet versions decide spec.injection.nativeSidecars Auto, as Istio's injector decides it; read only.
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// The mesh-wide mTLS policy (spec.security.mtls).
// +kubebuilder:rbac:groups=security.istio.io,resources=peerauthentications,verbs=get;list;watch;create;patch;delete

// Reconcile is one pass over a MeshInstall: get, delete, finalizer,
// suspend, the deferred status report, then the pass. Every event that
// concerns the MeshInstall (its own, its objects', and, batched by
// podEventDelay, pods', namespaces' and workloads') enqueues its key.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	mi := &meshv1alpha1.MeshInstall{}
	if err := r.Get(ctx, req.NamespacedName, mi); err != nil {
		r.applied.Delete(req.Name)
		if apierrors.IsNotFound(err) {
			forgetMetrics(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	if !mi.DeletionTimestamp.IsZero() {
		r.applied.Delete(mi.Name)
		forgetMetrics(mi.Name)
		return r.reconcileDelete(ctx, mi)
	}
	if !controllerutil.ContainsFinalizer(mi, Finalizer) {
		controllerutil.AddFinalizer(mi, Finalizer)
		if err := r.Update(ctx, mi); err != nil {
			return ctrl.Result{}, err
		}
	}

	before := mi.DeepCopy()
	st := newStatusBuilder(mi, time.Now())
	defer func() {
		st.finish(mi, retErr)
		if err := r.patchStatus(ctx, before, mi); err != nil {
			retErr = errors.Join(retErr, err)
		}
		r.recordTransitions(before, mi)
		recordMetrics(mi, retErr)
		// A pass that stops early leaves the last report standing: only a
		// pass that applied, succeeded and wrote its report may be that one.
		switch last := r.lastApplied(mi.Name); {
		case retErr != nil || st.refusal != nil || st.suspend:
			r.applied.Delete(mi.Name)
		case st.appliedInputs != "":
			r.applied.Store(mi.Name, appliedPass{inputs: st.appliedInputs, resourceVersion: mi.ResourceVersion})
		case st.countOnly:
			r.applied.Store(mi.Name, appliedPass{inputs: last.inputs, resourceVersion: mi.ResourceVersion})
		}
	}()

	if mi.Spec.Suspend {
		st.suspended()
		return ctrl.Result{}, nil
	}
	return r.reconcileNormal(ctx, mi, st)
}

// reconcileNormal gathers, plans, and either exits early (nothingToApply:
// it counts the data plane and carries the rollout on) or applies in
// stages, prunes, counts and rolls; the deferred report follows.
func (r *Reconciler) reconcileNormal(ctx context.Context, mi *meshv1alpha1.MeshInstall, st *statusBuilder) (ctrl.Result, error) {
	if err := r.checkSingleton(ctx, mi); err != nil {
		return ctrl.Result{}, classify(st, err)
	}
	if err := ownership.CheckNamespaces(mi, r.MeshNamespaces, r.OperatorNamespace); err != nil {
		return ctrl.Result{}, classify(st, err)
	}
	obs, err := r.gather(ctx, mi)
	if err != nil {
		return ctrl.Result{}, err
	}
	if refused := foreignRefusal(withoutMigrated(obs.foreign, obs.migration)); refused != nil {
		// Its objects are not watched: their removal triggers no pass.
		st.refused(refused)
		return ctrl.Result{RequeueAfter: takeoverRetry}, nil
	}
	var migrating migration.Plan
	if obs.migration != nil {
		if err := migrationRefusal(mi, obs.migration); err != nil {
			return ctrl.Result{}, classify(st, err)
		}
		if migrating, err = r.migrationStep(ctx, mi, obs, st); err != nil {
			return ctrl.Result{}, err
		}
		obs.migrationPhase = migrating.Status.Phase
		if len(migrating.Narrow) > 0 || migrating.RemoveForeign || len(migrating.Restore) > 0 {
			// The next pass reads the foreign injectors as they now are.
			return ctrl.Result{RequeueAfter: migrationReread}, nil
		}
	}
	plan, decidedRollout, err := decide(mi, obs)
	if err != nil {
		return ctrl.Result{}, classify(st, err)
	}
	ca, err := meshca.Decide(mi, obs.ca)
	if err != nil {
		return ctrl.Result{}, classify(st, err)
	}
	inputs := applyInputs(mi, plan, obs, ca)
	if nothingToApply(mi, plan, obs, inputs, r.lastApplied(mi.Name)) {
		passes.WithLabelValues(mi.Name, passCount).Inc()
		st.countOnly = true
		st.observed(plan, obs)
		st.counted(countDataPlane(obs))
		roll, err := r.restartWorkloads(ctx, mi, obs, rolloutFor(mi, obs, decidedRollout, obs.Routing))
		st.rolled(roll)
		return ctrl.Result{RequeueAfter: requeue.Sooner(plan.RequeueAfter, roll.RequeueAfter, r.caPoll(ca), migrating.RequeueAfter)}, err
	}
	passes.WithLabelValues(mi.Name, passApply).Inc()
	st.certificateAuthority(ca)
	if ca.Hold {
		return r.reconcileCertificateAuthorityFirst(ctx, mi, ca, obs, st)
	}
	d, err := r.planner().desiredObjects(mi, plan, obs, ca)
	if err != nil {
		return ctrl.Result{}, classify(st, err)
	}
	existing, err := r.observeExisting(ctx, mi, d, obs)
	if err != nil {
		return ctrl.Result{}, err
	}
	if refused := takeoverRefusal(mi, existing); refused != nil {
		st.refused(refused)
		return ctrl.Result{RequeueAfter: takeoverRetry}, nil
	}
	if obs.endpointErr != nil {
		return ctrl.Result{}, fmt.Errorf("webhook endpoint: %w", obs.endpointErr)
	}
	st.observed(plan, obs)
	applier := r.applier()
	outcome := applier.applyRevisions(ctx, d, obs, ca)
	applier.applyRouting(ctx, plan, d, r.planner().routingStage(mi, plan, d, obs, outcome.failedRevisions()), obs, &outcome)
	st.applied(outcome)
	if err := r.watches.ensure(ctx, d.all()); err != nil {
		log.FromContext(ctx).Error(err, "watching rendered kinds; drift of them is corrected on the next resync")
	}
	var pruneErr error
	if outcome.injectorApplied && outcome.routing.Equal(plan.Routing) {
		// Only once neither the injector nor the routing sends pods to what is pruned.
		pruneErr = applier.prune(ctx, pruneSelection(plan, wanted(d, outcome.tags), obs, confirmedUnused(plan, obs)))
	}
	st.counted(countDataPlane(obs))
	// Workloads move onto what the routing now in the cluster sends them to.
	roll, rollErr := r.restartWorkloads(ctx, mi, obs, rolloutFor(mi, obs, decidedRollout, outcome.routing))
	st.rolled(roll)
	if err := errors.Join(outcome.err(), obs.retiredErr, pruneErr, rollErr); err != nil {
		return ctrl.Result{}, err
	}
	st.appliedInputs = inputs
	return ctrl.Result{RequeueAfter: requeue.Sooner(plan.RequeueAfter, roll.RequeueAfter, r.caPoll(ca), migrating.RequeueAfter)}, nil
}

// migrationReread is how soon a pass follows one that rewrote or removed
// foreign webhook configurations: they are not watched.
const migrationReread = time.Second

// lastApplied is the last pass of name that applied (nothingToApply); the
// zero appliedPass when there was none in this process.
func (r *Reconciler) lastApplied(name string) appliedPass {
	last, _ := r.applied.Load(name)
	p, _ := last.(appliedPass)
	return p
}

// classify sorts an error once: a refusal (the spec or an upgrade rule needs
// a person) stalls the MeshInstall without hot retries; anything else is
// transient and retried with backoff.
func classify(st *statusBuilder, err error) error {
	var refused *refusal.Error
	if errors.As(err, &refused) {
		st.refused(refused)
		return reconcile.TerminalError(refused)
	}
	return err
}

// checkSingleton refuses a second MeshInstall (revision.CheckSingleton).
func (r *Reconciler) checkSingleton(ctx context.Context, mi *meshv1alpha1.MeshInstall) error {
	var all meshv1alpha1.MeshInstallList
	if err := r.List(ctx, &all); err != nil {
		return err
	}
	return revision.CheckSingleton(mi, all.Items)
}

// patchStatus writes status when it changed, with optimistic locking.
func (r *Reconciler) patchStatus(ctx context.Context, before, after *meshv1alpha1.MeshInstall) error {
	if equality.Semantic.DeepEqual(before.Status, after.Status) {
		return nil
	}
	err := r.Status().Patch(ctx, after, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
