package meshinstall

import (
	"context"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// OwnedTypes are the typed kinds the reconciler renders and owns; a change
// to any of them (an edit, a delete) triggers a reconcile that puts it back.
// Namespaces are not among them: the metadata-only namespace watch of the
// inventory already triggers a pass when one is created, relabelled or deleted.
func OwnedTypes() []client.Object {
	return []client.Object{
		&corev1.ServiceAccount{},
		&corev1.ConfigMap{},
		&corev1.Service{},
		&appsv1.Deployment{},
		&appsv1.DaemonSet{},
		&policyv1.PodDisruptionBudget{},
		&autoscalingv2.HorizontalPodAutoscaler{},
		&rbacv1.ClusterRole{},
		&rbacv1.ClusterRoleBinding{},
		&rbacv1.Role{},
		&rbacv1.RoleBinding{},
		&admissionregistrationv1.MutatingWebhookConfiguration{},
		&admissionregistrationv1.ValidatingWebhookConfiguration{},
	}
}

// SetupWithManager registers the reconciler: it watches MeshInstalls, owns
// every typed kind it renders, watches Istio's CRDs (which it installs but
// does not own), and adds watches for kinds whose CRDs it installs itself
// (PeerAuthentication) once they exist. Pods (cached trimmed, see TrimPod)
// and namespaces (metadata only) feed the inventory, users' workloads
// (cached trimmed, see TrimWorkload, TrimJob) the rollout and pruning: their
// events enqueue the MeshInstall's own key too, batched (podEvents).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		// Status writes of our own do not trigger another pass; spec, metadata and deletion do.
		For(&meshv1alpha1.MeshInstall{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{},
			predicate.LabelChangedPredicate{}, deletionStarted, statusLost))).
		Named("meshinstall")
	for _, t := range OwnedTypes() {
		b = b.Owns(t)
	}
	b = b.Watches(&apiextensionsv1.CustomResourceDefinition{}, handler.EnqueueRequestsFromMapFunc(r.allMeshInstalls))
	// spec.injection.nativeSidecars Auto follows the nodes' kubelets (cached trimmed, see TrimNode).
	nodeHandler, nodeChanges := r.nodeEvents()
	b = b.Watches(&corev1.Node{}, nodeHandler, builder.WithPredicates(nodeChanges))
	if r.Retrigger != nil {
		b = b.WatchesRawSource(source.Channel(r.Retrigger, handler.EnqueueRequestsFromMapFunc(r.allMeshInstalls)))
	}
	b = b.Watches(&corev1.Pod{}, r.podEvents()).WatchesMetadata(&corev1.Namespace{}, r.podEvents())
	for _, w := range []client.Object{&appsv1.Deployment{}, &appsv1.StatefulSet{}, &appsv1.DaemonSet{}, &batchv1.CronJob{}, &batchv1.Job{}} {
		b = b.Watches(w, r.workloadEvents())
	}
	c, err := b.Build(r)
	if err != nil {
		return err
	}
	r.watches = &dynamicWatches{ctrl: c, cache: mgr.GetCache(), mapper: r.allMeshInstalls, scheme: mgr.GetScheme(), watched: map[schema.GroupVersionKind]bool{}}
	return nil
}

// DefaultPodEventDelay batches pod churn: a burst of pod events makes one
// pass every DefaultPodEventDelay, and a 1,000-pod rollout a handful of
// status writes (the counts are a report: ten seconds behind is soon
// enough).
const DefaultPodEventDelay = 10 * time.Second

// podEventDelay is Reconciler.PodEventDelay, or its default.
func (r *Reconciler) podEventDelay() time.Duration {
	if r.PodEventDelay > 0 {
		return r.PodEventDelay
	}
	return DefaultPodEventDelay
}

// podEvents enqueues every MeshInstall podEventDelay after a pod or
// namespace changes what the inventory reads; the queue folds a burst into
// one request. The pass finds nothing to apply unless something else
// changed too (nothingToApply).
func (r *Reconciler) podEvents() handler.EventHandler {
	return r.enqueueLaterOn(inventoryChanged)
}

// workloadEvents enqueues every MeshInstall, batched as podEvents, when a
// user's workload changes what the rollout reads (meshkeeper's own
// Deployments are owned: their events enqueue at once).
func (r *Reconciler) workloadEvents() handler.EventHandler {
	return r.enqueueLaterOn(func(a, b client.Object) bool {
		return b.GetLabels()[render.LabelManagedBy] != render.ManagedBy && workloadChanged(a, b)
	})
}

// enqueueLaterOn enqueues every MeshInstall podEventDelay after a creation,
// a deletion, or an update that changed what a pass reads.
func (r *Reconciler) enqueueLaterOn(changed func(a, b client.Object) bool) handler.EventHandler {
	enqueue := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		for _, req := range r.allMeshInstalls(ctx, nil) {
			q.AddAfter(req, r.podEventDelay())
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

// deletionStarted passes the update that sets deletionTimestamp.
var deletionStarted = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
	},
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// statusLost passes an update that took status back (wiped, or restored
// from an older copy): the next pass reports the cluster again at once.
var statusLost = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, okOld := e.ObjectOld.(*meshv1alpha1.MeshInstall)
		n, okNew := e.ObjectNew.(*meshv1alpha1.MeshInstall)
		return okOld && okNew && (n.Status.ObservedGeneration < o.Status.ObservedGeneration ||
			len(n.Status.Conditions) < len(o.Status.Conditions) || (n.Status.ActiveRevision == "" && o.Status.ActiveRevision != ""))
	},
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// allMeshInstalls maps any event to every MeshInstall (there is one per cluster).
func (r *Reconciler) allMeshInstalls(ctx context.Context, _ client.Object) []reconcile.Request {
	var list meshv1alpha1.MeshInstallList
	if err := r.List(ctx, &list); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, mi := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: mi.Name}})
	}
	return reqs
}

// dynamicWatches starts watches on kinds that only exist once meshkeeper has
// installed their CRDs (rendered as unstructured objects; the typed kinds
// are watched from the start).
type dynamicWatches struct {
	mu      sync.Mutex
	ctrl    controller.Controller
	cache   cache.Cache
	mapper  handler.MapFunc
	scheme  *runtime.Scheme
	watched map[schema.GroupVersionKind]bool
}

// ensureKind watches a typed kind whose CRD someone else installs (cert-manager's),
// once a pass has seen the CRD served: a watch started without it would fail.
func (w *dynamicWatches) ensureKind(obj client.Object) error {
	if w == nil {
		return nil
	}
	gvk, err := apiutil.GVKForObject(obj, w.scheme)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watched[gvk] {
		return nil
	}
	if err := w.ctrl.Watch(source.Kind(w.cache, obj, handler.EnqueueRequestsFromMapFunc(w.mapper))); err != nil {
		return err
	}
	w.watched[gvk] = true
	return nil
}

func (w *dynamicWatches) ensure(_ context.Context, objs []client.Object) error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		gvk := u.GroupVersionKind()
		if w.watched[gvk] {
			continue
		}
		watched := &unstructured.Unstructured{}
		watched.SetGroupVersionKind(gvk)
		if err := w.ctrl.Watch(source.Kind(w.cache, client.Object(watched), handler.EnqueueRequestsFromMapFunc(w.mapper))); err != nil {
			return err
		}
		w.watched[gvk] = true
	}
	return nil
}
