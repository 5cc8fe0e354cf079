package meshinstall

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
)

// The istio-cni node agent: observed from the DaemonSet the MeshInstall
// owns in spec.cni.namespace and the pods of the cluster (where meshed
// pods run, where the agent is ready, which pods were injected for it),
// rendered at the planner's version (revision.CNIVersion), applied after
// the revisions' control planes, and kept while pods rely on it.
//
// RBAC: the agent's DaemonSet is applied and pruned like istiod's
// Deployment. Its ClusterRoles are created with escalate (controller.go),
// but the operator holds what they grant anyway except the OpenShift SCC:
// reading pods, nodes and namespaces, which it does already.
// +kubebuilder:rbac:groups=apps,resources=daemonsets,verbs=get;list;watch;create;patch;delete

// daemonSetGVK is the kind of the agent's DaemonSet.
var daemonSetGVK = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// cniObservation is what a pass saw of the node agent.
type cniObservation struct {
	// daemonSet is the agent's DaemonSet in spec.cni.namespace, the
	// MeshInstall's own; nil when there is none.
	daemonSet *appsv1.DaemonSet
	// readyNodes are the nodes where a pod of that DaemonSet is Ready.
	readyNodes map[string]bool
	// meshedNodes are the nodes that run pods injected by a revision of the mesh.
	meshedNodes map[string]bool
	// reliant counts the running pods injected for the agent (their
	// istio-validation init container): it stays while there are any.
	reliant int
	// multusNetworkMissing says, with provider multus, why the
	// NetworkAttachmentDefinition injected pods name cannot be used (Multus
	// is not installed, or the object does not exist); "" when it exists or
	// the provider is not multus (observeMultusNetwork).
	multusNetworkMissing string
}

// The NetworkAttachmentDefinition that pods injected for Multus name
// (k8s.v1.cni.cncf.io/networks: default/istio-cni), as Istio's chart
// creates it with provider multus. meshkeeper neither controls nor writes
// namespace default: it reads that one object, to hold workloads off the
// mesh while the network their pods would ask Multus for is not there.
// +kubebuilder:rbac:groups=k8s.cni.cncf.io,resources=network-attachment-definitions,resourceNames=istio-cni,verbs=get

// multusNetwork is that NetworkAttachmentDefinition's kind and name.
var multusNetwork = struct {
	gvk             schema.GroupVersionKind
	namespace, name string
}{schema.GroupVersionKind{Group: "k8s.cni.cncf.io", Version: "v1", Kind: "NetworkAttachmentDefinition"}, "default", "istio-cni"}

// observeMultusNetwork looks for the NetworkAttachmentDefinition of
// multusNetwork, with the API server (one metadata read a pass, only with
// spec.cni.provider multus), and judges the agent again with what it found.
func (r *Reconciler) observeMultusNetwork(ctx context.Context, mi *meshv1alpha1.MeshInstall, obs *observation) error {
	if !render.CNIEnabled(mi) || mi.Spec.CNI.Provider != meshv1alpha1.CNIProviderMultus {
		return nil
	}
	o := &metav1.PartialObjectMetadata{}
	o.SetGroupVersionKind(multusNetwork.gvk)
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: multusNetwork.namespace, Name: multusNetwork.name}, o)
	where := multusNetwork.namespace + "/" + multusNetwork.name
	switch {
	case meta.IsNoMatchError(err) || (apierrors.IsNotFound(err) && noKind(err)):
		obs.cni.multusNetworkMissing = fmt.Sprintf("spec.cni.provider is multus, but the cluster has no NetworkAttachmentDefinition kind (%s): Multus is not installed, so injected pods could not ask for the network %s", multusNetwork.gvk.GroupVersion(), where)
	case apierrors.IsNotFound(err):
		obs.cni.multusNetworkMissing = fmt.Sprintf("injected pods ask Multus for the network %s, and there is no NetworkAttachmentDefinition %s: create it (an empty spec uses the istio-cni configuration the agent installs on each node)", where, where)
	case err != nil:
		return fmt.Errorf("reading the NetworkAttachmentDefinition %s: %w", where, err)
	}
	obs.CNI = obs.cni.observed()
	return nil
}

// noKind reports whether a NotFound error is the API server's answer for a
// resource it does not serve (the kind's CRD is absent), not for a missing
// object of a kind it serves.
func noKind(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	d := status.Status().Details
	return d == nil || d.Name == ""
}

// observeCNIDaemonSet finds the agent's DaemonSet among the owned objects.
func (obs *observation) observeCNIDaemonSet(mi *meshv1alpha1.MeshInstall) {
	obs.cni.readyNodes, obs.cni.meshedNodes = map[string]bool{}, map[string]bool{}
	key := apply.Key{GVK: daemonSetGVK, Namespace: render.CNINamespace(mi), Name: render.CNIDaemonSetName}
	if ds, ok := obs.live[key].(*appsv1.DaemonSet); ok && ds.Labels[render.LabelCNI] == "true" {
		obs.cni.daemonSet = ds
	}
}

// cniPod files one running pod: an agent's pod Ready on its node, or a
// pod stamped by a revision of the mesh: whether it relies on the agent
// (which then stays), and, when the observed injector serves its
// namespace (inMesh), its node as one the agent must run on.
func (obs *observation) cniPod(p *corev1.Pod, stamped, inMesh bool) {
	if ds := obs.cni.daemonSet; ds != nil && p.Namespace == ds.Namespace {
		if ref := metav1.GetControllerOfNoCopy(p); ref != nil && ref.UID == ds.UID && p.Spec.NodeName != "" {
			if c := podCondition(p, corev1.PodReady); c != nil && c.Status == corev1.ConditionTrue {
				obs.cni.readyNodes[p.Spec.NodeName] = true
			}
		}
	}
	if !stamped {
		return
	}
	if p.Spec.NodeName != "" && inMesh {
		obs.cni.meshedNodes[p.Spec.NodeName] = true
	}
	if _, relies := p.Annotations[cachedCNIValidation]; relies {
		obs.cni.reliant++
	}
}

// observedCNI judges the agent for the planner: available when its
// DaemonSet runs its current template, updated and available, on every
// node it is scheduled to, and a Ready agent runs on every node that runs
// meshed pods. nil without a DaemonSet.
func (c cniObservation) observed() *revision.ObservedCNI {
	ds := c.daemonSet
	if ds == nil {
		return nil
	}
	out := &revision.ObservedCNI{Version: render.CNIVersionOf(ds)}
	st := ds.Status
	switch {
	case st.ObservedGeneration < ds.Generation:
		out.Reason = "its DaemonSet's new template is not observed yet"
	case st.UpdatedNumberScheduled < st.DesiredNumberScheduled || st.NumberAvailable < st.DesiredNumberScheduled:
		out.Reason = fmt.Sprintf("%d of %d nodes updated, %d available", st.UpdatedNumberScheduled, st.DesiredNumberScheduled, st.NumberAvailable)
	default:
		if missing := c.nodesWithoutAgent(); len(missing) > 0 {
			out.Reason = "no ready agent on nodes that run meshed pods: " + listedNodes(missing)
			return out
		}
		if c.multusNetworkMissing != "" {
			out.Reason = c.multusNetworkMissing
			return out
		}
		out.Available = true
	}
	return out
}

// nodesWithoutAgent are the nodes that run meshed pods but no Ready agent.
func (c cniObservation) nodesWithoutAgent() []string {
	var out []string
	for _, n := range slices.Sorted(maps.Keys(c.meshedNodes)) {
		if !c.readyNodes[n] {
			out = append(out, n)
		}
	}
	return out
}

// listedNodes names the first few nodes, saying how many more there are.
func listedNodes(nodes []string) string {
	const shown = 5
	if len(nodes) <= shown {
		return strings.Join(nodes, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(nodes[:shown], ", "), len(nodes)-shown)
}

// cniToApply renders the agent at the plan's version, owned by the
// MeshInstall; nothing without spec.cni.
func (p planner) cniToApply(mi *meshv1alpha1.MeshInstall, plan revision.Plan) ([]client.Object, error) {
	if !render.CNIEnabled(mi) || plan.CNIVersion.Release.Minor == "" {
		return nil, nil
	}
	objs, err := render.CNI(mi, plan.CNIVersion)
	if err != nil {
		return nil, renderRefusal(err)
	}
	return objs, p.ownAll(mi, objs)
}

// cniRetained reports whether prune keeps o: an object of the agent while
// running pods were injected for it, whatever spec.cni says now.
func cniRetained(o client.Object, obs *observation) bool {
	return o.GetLabels()[render.LabelCNI] == "true" && obs.cni.reliant > 0
}

// cniReported says whether status reports the agent: spec.cni is on, or
// pods still rely on one the MeshInstall owns.
func (s *statusBuilder) cniReported() bool {
	return s.cni || (s.obs.cni.daemonSet != nil && s.obs.cni.reliant > 0)
}

// recordCNI reports the agent (status.cni and its CNIReady condition), or
// drops both when there is none to report.
func (s *statusBuilder) recordCNI(mi *meshv1alpha1.MeshInstall) {
	if !s.cniReported() {
		mi.Status.CNI = nil
		meta.RemoveStatusCondition(&mi.Status.Conditions, meshv1alpha1.ConditionCNIReady)
		return
	}
	st := &meshv1alpha1.CNIStatus{Namespace: render.CNINamespace(mi)}
	if s.plan.CNIVersion.Release.Minor != "" {
		st.TargetVersion = s.plan.CNIVersion.String()
	}
	if ds := s.obs.cni.daemonSet; ds != nil {
		st.Namespace, st.Version = ds.Namespace, render.CNIVersionOf(ds)
		st.NodesReady = min(ds.Status.UpdatedNumberScheduled, ds.Status.NumberAvailable)
		st.NodesDesired = ds.Status.DesiredNumberScheduled
	}
	mi.Status.CNI = st
	c := s.cniCondition()
	c.ObservedGeneration = s.gen
	meta.SetStatusCondition(&mi.Status.Conditions, c)
}

// cniCondition is CNIReady from the pass's facts.
func (s *statusBuilder) cniCondition() metav1.Condition {
	c := metav1.Condition{Type: meshv1alpha1.ConditionCNIReady, Status: metav1.ConditionFalse}
	o := s.obs.CNI
	switch {
	case !s.cni:
		c.Reason = meshv1alpha1.ReasonCNIRetained
		c.Message = fmt.Sprintf("spec.cni is off, but %d running pods were injected for the istio-cni node agent; it is removed once none is left (restart their workloads)", s.obs.cni.reliant)
	case o == nil:
		c.Reason, c.Message = meshv1alpha1.ReasonCNIRollingOut, "the istio-cni node agent is being installed"
	case o.Available:
		c.Status, c.Reason = metav1.ConditionTrue, meshv1alpha1.ReasonCNIAvailable
		c.Message = fmt.Sprintf("the istio-cni node agent %s is available on every node", o.Version)
	case len(s.obs.cni.nodesWithoutAgent()) > 0 && strings.HasPrefix(o.Reason, "no ready agent"):
		c.Reason, c.Message = meshv1alpha1.ReasonCNINotOnNodes, "the istio-cni node agent: "+o.Reason
	case o.Reason != "" && o.Reason == s.obs.cni.multusNetworkMissing:
		c.Reason, c.Message = meshv1alpha1.ReasonCNINetworkMissing, "the istio-cni node agent: "+o.Reason
	default:
		c.Reason, c.Message = meshv1alpha1.ReasonCNIRollingOut, fmt.Sprintf("the istio-cni node agent %s is rolling out: %s", o.Version, o.Reason)
	}
	return c
}

// cniNotReady is the ladder's fact: spec.cni is on and the agent is not
// available (CNIReady False), so no workload moves to a revision it is
// not ready for.
func (s *statusBuilder) cniNotReady() bool {
	return s.plan != nil && s.cni && (s.obs.CNI == nil || !s.obs.CNI.Available)
}
