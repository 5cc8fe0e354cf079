package meshinstall

import (
	"context"
	"time"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/requeue"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// The recount: pod, namespace and workload events change only what the
// data plane counts and the rollout read. They trigger a controller of
// their own, "meshinstall-recount", whose requests are the MeshInstall's
// own key, batched by podEventDelay. Its pass (reconcileRecount) writes
// nothing but the counts and the restarts, and asks the full pass's
// controller for a pass (requestFullPass) when what it observes is not
// settled (plan.go). Both controllers' passes take Reconciler.passing, so
// a MeshInstall has one pass at a time.

// recounter is the recount controller's reconciler.
type recounter struct{ r *Reconciler }

// Reconcile recounts one MeshInstall's data plane.
func (c recounter) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return c.r.reconcile(ctx, req.Name, true)
}

// setupRecount registers the recount controller: it follows pods (cached
// trimmed, see TrimPod) and namespaces (metadata only) for the inventory,
// and users' workloads (cached trimmed, see TrimWorkload) for the rollout
// and for pruning what CronJobs and Jobs select (see TrimJob).
func (r *Reconciler) setupRecount(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).Named("meshinstall-recount").
		Watches(&corev1.Pod{}, r.podEvents()).WatchesMetadata(&corev1.Namespace{}, r.podEvents())
	for _, w := range []client.Object{&appsv1.Deployment{}, &appsv1.StatefulSet{}, &appsv1.DaemonSet{}, &batchv1.CronJob{}, &batchv1.Job{}} {
		b = b.Watches(w, r.workloadEvents())
	}
	return b.Complete(recounter{r: r})
}

// reconcileRecount recounts the data plane from one observation, and
// carries the data plane rollout on (restarts of users' workloads). When the
// observation calls for more than that (a revision to prune or to
// re-create, routing to move, a canary's clock to record), it asks for a
// full pass instead and writes nothing itself.
func (r *Reconciler) reconcileRecount(ctx context.Context, mi *meshv1alpha1.MeshInstall, st *statusBuilder) (ctrl.Result, error) {
	obs, err := r.observe(ctx, mi)
	if err != nil {
		r.requestFullPass(mi)
		return ctrl.Result{}, nil
	}
	plan, decidedRollout, err := decide(mi, obs)
	if err != nil || !settled(mi, plan, obs) {
		r.requestFullPass(mi)
		return ctrl.Result{}, nil
	}
	st.observed(plan, obs)
	st.counted(countDataPlane(obs))
	roll, err := r.restartWorkloads(ctx, mi, obs, rolloutFor(mi, obs, decidedRollout, obs.Routing))
	st.rolled(roll)
	return ctrl.Result{RequeueAfter: requeue.Sooner(plan.RequeueAfter, roll.RequeueAfter)}, err
}

// podEventDelay batches pod churn: a burst of pod events makes one recount
// every podEventDelay, and a 1,000-pod rollout a handful of status writes
// (the counts are a report: ten seconds behind is soon enough).
const podEventDelay = 10 * time.Second

// podEvents enqueues a recount of every MeshInstall a little after a pod or
// namespace changes what the inventory reads; the queue folds the burst into
// one pass.
func (r *Reconciler) podEvents() handler.EventHandler {
	return r.recountOn(inventoryChanged)
}

// workloadEvents enqueues a recount when a user's workload changes what the
// rollout reads (meshkeeper's own Deployments trigger full passes instead).
func (r *Reconciler) workloadEvents() handler.EventHandler {
	return r.recountOn(func(a, b client.Object) bool {
		return b.GetLabels()[render.LabelManagedBy] != render.ManagedBy && workloadChanged(a, b)
	})
}

// recountOn enqueues a recount on creations, deletions, and updates that changed passes.
func (r *Reconciler) recountOn(changed func(a, b client.Object) bool) handler.EventHandler {
	enqueue := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		for _, req := range r.allMeshInstalls(ctx, nil) {
			q.AddAfter(req, podEventDelay)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, _ event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if changed(e.ObjectOld, e.ObjectNew) {
				enqueue(ctx, q)
			}
		},
		DeleteFunc: func(ctx context.Context, _ event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q)
		},
	}
}
