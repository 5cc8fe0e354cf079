package webhooks

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	psaapi "k8s.io/pod-security-admission/api"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// PodSecurityNamespaces is the injector's NamespaceSource in the operator:
// the Pod Security labels of the namespaces that carry an enforce label,
// kept up to date from the manager's namespace informer (which the
// MeshInstall controller watches anyway), so that a request reads a map
// and copies nothing.
type PodSecurityNamespaces struct {
	// labels maps a namespace name to its pod-security.kubernetes.io/enforce
	// and enforce-version labels.
	labels sync.Map
}

// NewPodSecurityNamespaces follows the namespaces of the manager's cache.
func NewPodSecurityNamespaces(ctx context.Context, c cache.Cache) (*PodSecurityNamespaces, error) {
	n := &PodSecurityNamespaces{}
	inf, err := c.GetInformer(ctx, &corev1.Namespace{})
	if err != nil {
		return nil, err
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    n.set,
		UpdateFunc: func(_, obj any) { n.set(obj) },
		DeleteFunc: n.forget,
	})
	return n, err
}

func (n *PodSecurityNamespaces) forget(obj any) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if ns, ok := obj.(*corev1.Namespace); ok {
		n.labels.Delete(ns.Name)
	}
}

func (n *PodSecurityNamespaces) set(obj any) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return
	}
	level, enforced := ns.Labels[psaapi.EnforceLevelLabel]
	if !enforced {
		n.labels.Delete(ns.Name)
		return
	}
	labels := map[string]string{psaapi.EnforceLevelLabel: level}
	if v, ok := ns.Labels[psaapi.EnforceVersionLabel]; ok {
		labels[psaapi.EnforceVersionLabel] = v
	}
	n.labels.Store(ns.Name, labels)
}

// NamespaceLabels returns the namespace's Pod Security enforce labels, nil
// when it carries none or is not known yet (the pod is then not checked;
// the API server's Pod Security admission still is).
func (n *PodSecurityNamespaces) NamespaceLabels(name string) map[string]string {
	if v, ok := n.labels.Load(name); ok {
		return v.(map[string]string)
	}
	return nil
}
