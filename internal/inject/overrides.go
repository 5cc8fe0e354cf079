package inject

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
)

// reinsertOverrides puts back the containers recorded in a pod's
// proxy.istio.io/overrides that it lacks, as the user supplied them, as
// Istio's injector does before injecting.
func reinsertOverrides(pod *corev1.Pod) error {
	raw, ok := pod.Annotations[annOverrides]
	if !ok {
		return nil
	}
	var o podOverrides
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		return invalidAnnotation(annOverrides, raw, err)
	}
	delete(pod.Annotations, annOverrides)
	for _, c := range o.Containers {
		if findContainer(pod.Spec.Containers, c.Name) == nil {
			pod.Spec.Containers = append(pod.Spec.Containers, c)
		}
	}
	for _, c := range o.InitContainers {
		if findContainer(pod.Spec.InitContainers, c.Name) == nil {
			pod.Spec.InitContainers = append(pod.Spec.InitContainers, c)
		}
	}
	return nil
}
