package meshinstall

import (
	"maps"

	"istio.io/api/annotation"
	"istio.io/api/label"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/inventory"
	"github.com/meshkeeper/meshkeeper/internal/migration"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// keptPodAnnotations are the only pod annotations the operator reads.
var keptPodAnnotations = []string{
	annotation.SidecarStatus.Name, annotation.SidecarInject.Name,
	inject.AnnotationRevision, inject.AnnotationConfigHash, inject.AnnotationProxyVersion,
}

// keptPodLabels are the only pod labels the operator reads: those the
// injector's object selectors select by (TestTrimPodKeepsWhatInjectionSelects
// checks it), the workload's identity (inject.WorkloadOf), and
// meshkeeper's own stamps.
var keptPodLabels = append([]string{
	label.SidecarInject.Name, label.IoIstioRev.Name, render.LabelGateway,
	inject.LabelInjectedBy, render.LabelRevision, render.LabelMeshInstall, migration.LabelMigrated,
}, inject.WorkloadLabels...)

// TrimPod is the cache transform for pods: the operator keeps of a pod only
// what observe reads (identity and generated name, the labels and
// annotations above, its controller, host network, phase, and its Ready and
// PodScheduled conditions), never its containers, volumes, other labels or
// the hundreds of bytes of the sidecar status annotation. Anyone who may
// create a pod decides its size; what is kept of it is bounded.
func TrimPod(in any) (any, error) {
	p, ok := in.(*corev1.Pod)
	if !ok {
		return in, nil
	}
	out := &corev1.Pod{
		TypeMeta: p.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, GenerateName: p.GenerateName, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			Labels: keep(p.Labels, keptPodLabels), DeletionTimestamp: p.DeletionTimestamp,
			// A canary's pods that are not Ready are judged by their age (revision.PodStartGrace).
			CreationTimestamp: p.CreationTimestamp,
		},
		// The node: the istio-cni node agent must run where meshed pods do.
		Spec:   corev1.PodSpec{HostNetwork: p.Spec.HostNetwork, NodeName: p.Spec.NodeName},
		Status: corev1.PodStatus{Phase: p.Status.Phase},
	}
	if ref := metav1.GetControllerOfNoCopy(p); ref != nil {
		out.OwnerReferences = []metav1.OwnerReference{{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name, UID: ref.UID, Controller: ref.Controller}}
	}
	if out.Annotations = keep(p.Annotations, keptPodAnnotations); out.Annotations != nil {
		if _, ok := out.Annotations[annotation.SidecarStatus.Name]; ok {
			out.Annotations[annotation.SidecarStatus.Name] = ""
		}
	}
	if hasCNIValidation(p) {
		// Whether the pod was injected for the agent, which stays while
		// pods rely on it: a mark of the cache's own (keep drops any the
		// pod carried), cheaper than the init container.
		if out.Annotations == nil {
			out.Annotations = map[string]string{}
		}
		out.Annotations[cachedCNIValidation] = ""
	}
	for _, c := range p.Status.Conditions {
		switch {
		case c.Type == corev1.PodReady:
			out.Status.Conditions = append(out.Status.Conditions, corev1.PodCondition{Type: c.Type, Status: c.Status})
		case c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse:
			out.Status.Conditions = append(out.Status.Conditions, corev1.PodCondition{Type: c.Type, Status: c.Status, Reason: c.Reason, Message: c.Message})
		}
	}
	return out, nil
}

// cachedCNIValidation marks, in the cache only, a pod that has the
// istio-validation init container (hasCNIValidation).
const cachedCNIValidation = "cache.mesh.meshkeeper.dev/istio-validation"

// hasCNIValidation reports whether a pod was injected for the istio-cni
// node agent: its istio-validation init container.
func hasCNIValidation(p *corev1.Pod) bool {
	for _, c := range p.Spec.InitContainers {
		if c.Name == inject.ValidationContainerName {
			return true
		}
	}
	return false
}

// keep is the entries of m under keys, nil when there are none.
func keep(m map[string]string, keys []string) map[string]string {
	var out map[string]string
	for _, k := range keys {
		if v, ok := m[k]; ok {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// countDataPlane counts the observed pods against the injector configuration
// and each revision's current configuration hash.
func countDataPlane(obs *observation) inventory.Result {
	return inventory.Count(obs.pods, obs.namespaces, obs.matcher, obs.configHash)
}

// inventoryChanged reports whether an update changed what observe reads.
func inventoryChanged(a, b client.Object) bool {
	if !maps.Equal(a.GetLabels(), b.GetLabels()) || !maps.Equal(a.GetAnnotations(), b.GetAnnotations()) ||
		a.GetDeletionTimestamp().IsZero() != b.GetDeletionTimestamp().IsZero() {
		return true
	}
	pa, okA := a.(*corev1.Pod)
	pb, okB := b.(*corev1.Pod)
	if !okA || !okB {
		return false
	}
	if pa.Status.Phase != pb.Status.Phase {
		return true
	}
	for _, t := range []corev1.PodConditionType{corev1.PodReady, corev1.PodScheduled} {
		ca, cb := podCondition(pa, t), podCondition(pb, t)
		if (ca == nil) != (cb == nil) || (ca != nil && (ca.Status != cb.Status || ca.Message != cb.Message)) {
			return true
		}
	}
	return false
}
