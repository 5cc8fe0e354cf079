package meshinstall

import (
	"context"
	"fmt"

	"github.com/Masterminds/semver/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// nativeSidecarsMinKubeletMinor is the kubelet minor version from which
// Istio's injector, in its auto mode, injects native sidecars: Kubernetes
// 1.33, where sidecar containers became stable (pkg/kube/inject
// DetectNativeSidecar).
const nativeSidecarsMinKubeletMinor = 33

// TrimNode is the cache transform for nodes: the operator keeps of a node
// only its identity and its kubelet version (for spec.injection.nativeSidecars
// Auto), never its images, conditions, addresses or capacity.
func TrimNode(in any) (any, error) {
	n, ok := in.(*corev1.Node)
	if !ok {
		return in, nil
	}
	return &corev1.Node{
		TypeMeta:   n.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion},
		Status:     corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: n.Status.NodeInfo.KubeletVersion}},
	}, nil
}

// supportsNativeSidecars judges a kubelet version as Istio does: its minor
// version must be at least 33; a version that cannot be read does not
// support them (kwok's nodes, which report kwok-<version>, among them).
func supportsNativeSidecars(kubeletVersion string) bool {
	v, err := semver.NewVersion(kubeletVersion)
	if err != nil {
		return false
	}
	return v.Minor() >= nativeSidecarsMinKubeletMinor
}

// observeNodes says whether any node cannot run native sidecars. As in
// Istio, one such node makes every new pod get a classic sidecar: pods are
// not yet scheduled when they are injected, so any node may run them.
func (r *Reconciler) observeNodes(ctx context.Context, obs *observation) error {
	var nodes corev1.NodeList
	if err := r.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	for i := range nodes.Items {
		if !supportsNativeSidecars(nodes.Items[i].Status.NodeInfo.KubeletVersion) {
			obs.nodesWithoutNativeSidecars = true
			return nil
		}
	}
	return nil
}

// nodeEvents asks for a pass when a node joins or leaves, or its
// kubelet changes version; a node's frequent status updates do not (the
// cache keeps nothing else of it, see TrimNode).
func (r *Reconciler) nodeEvents() (handler.EventHandler, predicate.Predicate) {
	return handler.EnqueueRequestsFromMapFunc(r.allMeshInstalls), predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, okOld := e.ObjectOld.(*corev1.Node)
			n, okNew := e.ObjectNew.(*corev1.Node)
			return !okOld || !okNew || o.Status.NodeInfo.KubeletVersion != n.Status.NodeInfo.KubeletVersion
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}
