package inject

import (
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Workload is the object a pod belongs to, derived from the pod the way
// Istio's injector derives it (ISTIO_META_WORKLOAD_NAME, ISTIO_META_OWNER,
// the canonical service name).
type Workload struct {
	// Namespace of the pod.
	Namespace string
	// Name of the workload: the Deployment behind a ReplicaSet, the CronJob
	// behind a Job, the controller otherwise, or the pod itself.
	Name string
	// Kind of the workload, e.g. Deployment, StatefulSet, CronJob, Pod.
	Kind string
	// APIVersion of the workload's controller, e.g. apps/v1 or v1 for a pod.
	APIVersion string
}

// cronJobName matches the Jobs a CronJob creates: <cronjob>-<8 to 10 digits>.
var cronJobName = regexp.MustCompile(`^(.+)-\d{8,10}$`)

// WorkloadOf derives the pod's workload. namespace is the admission
// request's namespace, used when the pod does not carry one yet. Only pods
// whose name is generated are attributed to their controller, as in Istio.
func WorkloadOf(pod *corev1.Pod, namespace string) Workload {
	w := Workload{Namespace: pod.Namespace, Name: pod.Name, Kind: "Pod", APIVersion: "v1"}
	if w.Namespace == "" {
		w.Namespace = namespace
	}
	if pod.GenerateName == "" {
		return w
	}
	owner := metav1.GetControllerOfNoCopy(pod)
	if owner == nil {
		return w
	}
	w.APIVersion, w.Kind, w.Name = owner.APIVersion, owner.Kind, owner.Name
	switch {
	case owner.Kind == "ReplicaSet" && hashSuffixed(owner.Name, pod.Labels[labelPodTemplateHash]):
		w.Name = strings.TrimSuffix(owner.Name, "-"+pod.Labels[labelPodTemplateHash])
		w.Kind = "Deployment"
	case owner.Kind == "ReplicaSet" && hashSuffixed(owner.Name, pod.Labels[labelRolloutsTemplateHash]):
		// An Argo Rollout.
		w.Name = strings.TrimSuffix(owner.Name, "-"+pod.Labels[labelRolloutsTemplateHash])
		w.Kind = "Rollout"
		w.APIVersion = "v1alpha1"
	case owner.Kind == "ReplicationController" && pod.Labels[labelDeploymentConfig] != "":
		// An OpenShift DeploymentConfig.
		w.Name = pod.Labels[labelDeploymentConfig]
		w.Kind = "DeploymentConfig"
	case owner.Kind == "Job":
		if m := cronJobName.FindStringSubmatch(owner.Name); m != nil {
			w.Name = m[1]
			w.Kind = "CronJob"
			w.APIVersion = "batch/v1"
		}
	}
	if w.Name == "" {
		w.Name = pod.Name
	}
	return w
}

func hashSuffixed(name, hash string) bool {
	return hash != "" && strings.HasSuffix(name, hash)
}

// owner is ISTIO_META_OWNER, or "" when Istio sets none.
func (w Workload) owner() string {
	if w.APIVersion == "" || w.Name == "" {
		return ""
	}
	ns := w.Namespace
	if ns == "" {
		ns = "default"
	}
	return "kubernetes://apis/" + w.APIVersion + "/namespaces/" + ns + "/" + strings.ToLower(w.Kind) + "s/" + w.Name
}
