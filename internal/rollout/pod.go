package rollout

import (
	"istio.io/api/annotation"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshkeeper/meshkeeper/internal/inject"
)

// PodOf is a running pod as the rollout reads it, before anyone says what
// it should run (Target, TargetReady): the workload that owns it (a bare
// pod is its own), what it runs from meshkeeper's stamp, and whether it has
// a sidecar at all. The reconciler and kubectl meshkeeper precheck both
// read pods through it.
func PodOf(p *corev1.Pod) Pod {
	w := inject.WorkloadOf(p, p.Namespace)
	out := Pod{Owner: Key{Kind: w.Kind, Namespace: p.Namespace, Name: w.Name}}
	if w.Kind == "Pod" {
		out.Owner.Name = p.Name
	}
	if rev, ok := p.Annotations[inject.AnnotationRevision]; ok {
		out.Current = Target(rev, p.Annotations[inject.AnnotationConfigHash])
	}
	_, injected := p.Annotations[annotation.SidecarStatus.Name]
	out.Uninjected = !injected
	return out
}
