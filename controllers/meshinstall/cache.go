package meshinstall

import (
	"maps"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// DefaultMeshNamespaces are the namespaces the operator manages meshes in
// unless told otherwise (--mesh-namespaces): Istio's control plane
// namespace and its conventional gateway namespaces.
var DefaultMeshNamespaces = []string{"istio-system", "istio-ingress", "istio-egress"}

// CacheOptions is what the manager caches, and where (main.go and the tests
// use this one function). meshkeeper's own namespaced objects are cached
// only in the namespaces a mesh may live in (meshNamespaces, which the
// cluster administrator who deploys the operator chooses) and in the
// operator's own: a tenant who labels their ConfigMaps like meshkeeper's
// neither steers the operator nor grows its memory. Cluster-scoped objects
// are cached by label (only administrators create them) and believed by
// owner reference (internal/ownership). Pods, users' workloads, namespaces
// and nodes are read cluster-wide, trimmed to what the operator reads.
func CacheOptions(operatorNamespace string, meshNamespaces []string) ctrlcache.Options {
	managed := labels.SelectorFromSet(labels.Set{render.LabelManagedBy: render.ManagedBy})
	scoped := map[string]ctrlcache.Config{operatorNamespace: {}}
	for _, ns := range meshNamespaces {
		scoped[ns] = ctrlcache.Config{}
	}
	everywhere := map[string]ctrlcache.Config{ctrlcache.AllNamespaces: {}}
	workloads, budgets := trimOutside(scoped, TrimWorkload), trimOutside(scoped, TrimBudget)
	// The istio-cni node agent runs in kube-system (or the control plane's
	// namespace, cached already): there only the agent's own ServiceAccount
	// and ConfigMap are cached; its DaemonSet, like every workload, is
	// cached everywhere, and kept whole as meshkeeper's (trimOutside).
	agent := maps.Clone(scoped)
	if _, mesh := scoped[render.DefaultCNINamespace]; !mesh {
		agent[render.DefaultCNINamespace] = ctrlcache.Config{LabelSelector: labels.SelectorFromSet(labels.Set{
			render.LabelManagedBy: render.ManagedBy, render.LabelCNI: "true"})}
	}
	return ctrlcache.Options{
		// Only what meshkeeper created is cached; MeshInstalls are the exception.
		DefaultLabelSelector: managed,
		DefaultNamespaces:    scoped,
		ByObject: map[client.Object]ctrlcache.ByObject{
			&meshv1alpha1.MeshInstall{}: {Label: labels.Everything()},
			// Pods are cached trimmed to what the operator reads (see TrimPod).
			&corev1.Pod{}: {Namespaces: everywhere, Label: labels.Everything(), Transform: TrimPod},
			// Users' workloads too, for the data plane rollout; meshkeeper's own are kept whole.
			&appsv1.Deployment{}:  {Namespaces: everywhere, Label: labels.Everything(), Transform: workloads},
			&appsv1.StatefulSet{}: {Namespaces: everywhere, Label: labels.Everything(), Transform: workloads},
			&appsv1.DaemonSet{}:   {Namespaces: everywhere, Label: labels.Everything(), Transform: workloads},
			// CronJobs and Jobs only for the revision their template names (see TrimJob).
			&batchv1.CronJob{}: {Namespaces: everywhere, Label: labels.Everything(), Transform: TrimJob},
			&batchv1.Job{}:     {Namespaces: everywhere, Label: labels.Everything(), Transform: TrimJob},
			// PodDisruptionBudgets: meshkeeper's own whole, users' for the
			// rollout's restart safety (see TrimBudget).
			&policyv1.PodDisruptionBudget{}: {Namespaces: everywhere, Label: labels.Everything(), Transform: budgets},
			&corev1.Namespace{}:             {Label: labels.Everything()},
			&corev1.ServiceAccount{}:        {Namespaces: agent},
			&corev1.ConfigMap{}:             {Namespaces: agent},
			// Every webhook configuration, to find Istio injectors and
			// validators meshkeeper did not make without a request; those
			// are cached trimmed to their names and labels (see
			// TrimWebhookConfiguration). A cluster holds few.
			&admissionregistrationv1.MutatingWebhookConfiguration{}:   {Label: labels.Everything(), Transform: TrimWebhookConfiguration},
			&admissionregistrationv1.ValidatingWebhookConfiguration{}: {Label: labels.Everything(), Transform: TrimWebhookConfiguration},
			// Nodes are cached trimmed to their kubelet version (see TrimNode).
			&corev1.Node{}: {Label: labels.Everything(), Transform: TrimNode},
			// The webhook certificate is the only Secret read, and the
			// operator may read Secrets in its own namespace only.
			&corev1.Secret{}: {Namespaces: map[string]ctrlcache.Config{operatorNamespace: {}}},
		},
		DefaultTransform: ctrlcache.TransformStripManagedFields(),
	}
}

// trimOutside trims users' workloads (TrimWorkload) or budgets
// (TrimBudget), and takes meshkeeper's labels off any object outside the
// namespaces meshkeeper may own objects in: there they prove nothing, and
// a tenant's Deployment labelled like meshkeeper's is cached, counted and
// rolled as the user workload it is, never kept whole. The node agent's
// objects in kube-system keep theirs: only cluster administrators write
// there, and the reconciler still believes them by controller reference
// (ownership.Scope).
func trimOutside(scoped map[string]ctrlcache.Config, trim cache.TransformFunc) cache.TransformFunc {
	namespaces := slices.Collect(maps.Keys(scoped))
	return func(in any) (any, error) {
		obj, ok := in.(client.Object)
		agent := ok && obj.GetNamespace() == render.DefaultCNINamespace && obj.GetLabels()[render.LabelCNI] == "true"
		if ok && !agent && !slices.Contains(namespaces, obj.GetNamespace()) {
			if l := obj.GetLabels(); l[render.LabelManagedBy] != "" {
				delete(l, render.LabelManagedBy)
			}
		}
		return trim(in)
	}
}
