package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// PodPlacement says where the pods of a Deployment meshkeeper renders
// (istiod, a gateway) are scheduled and what metadata they carry, as the
// nodeSelector, tolerations, affinity, topologySpreadConstraints,
// priorityClassName, podAnnotations and podLabels values of Istio's charts.
type PodPlacement struct {
	// NodeSelector restricts the pods to nodes with these labels.
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// Tolerations let the pods run on nodes with matching taints. They are
	// added to the tolerations meshkeeper always sets (istiod tolerates
	// cni.istio.io/not-ready, as Istio's chart).
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// Affinity of the pods. When set it replaces the pod anti-affinity
	// meshkeeper gives istiod when it may run more than one replica
	// (preferably one istiod per node).
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// TopologySpreadConstraints spread the pods over zones or nodes.
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`

	// PriorityClassName of the pods, e.g. system-cluster-critical, so that
	// the mesh is not evicted before the workloads that depend on it.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// PodAnnotations are added to the pods (not to the Deployment). The
	// annotations meshkeeper needs on the pods (sidecar.istio.io/inject and,
	// on gateways, inject.istio.io/templates) cannot be set here; Istio's
	// sidecar.istio.io/* annotations can (on a gateway, e.g.
	// sidecar.istio.io/proxyImageType: debug).
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	PodAnnotations map[string]string `json:"podAnnotations,omitempty"`

	// PodLabels are added to the pods only (not to the Deployment, nor to
	// the selectors). The labels meshkeeper selects the pods by or stamps
	// them with are refused.
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	PodLabels map[string]string `json:"podLabels,omitempty"`
}

// ImageVariant is a flavour of Istio's images, published under the
// version's tag with a suffix: <version>-distroless (no shell nor package
// manager) or <version>-debug (with debugging tools).
// +kubebuilder:validation:Enum=distroless;debug
type ImageVariant string

const (
	// ImageVariantDistroless is Istio's minimal image, without a shell.
	ImageVariantDistroless ImageVariant = "distroless"
	// ImageVariantDebug is Istio's image with debugging tools.
	ImageVariantDebug ImageVariant = "debug"
)

// GatewayServiceSpec configures a gateway's Service beyond its type and
// ports: what cloud load balancers are configured with.
type GatewayServiceSpec struct {
	// Annotations of the Service. Cloud load balancers are configured this
	// way, e.g. service.beta.kubernetes.io/aws-load-balancer-type: nlb.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`

	// Labels added to the Service (and only to it). meshkeeper's own labels
	// cannot be overridden.
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// LoadBalancerIP asks the load balancer for this address, where the
	// cloud supports it (Kubernetes deprecates the field in favour of
	// provider annotations). Only with serviceType LoadBalancer.
	// +kubebuilder:validation:MaxLength=45
	// +optional
	LoadBalancerIP string `json:"loadBalancerIP,omitempty"`

	// LoadBalancerClass picks the load balancer implementation, e.g.
	// service.k8s.aws/nlb. Only with serviceType LoadBalancer. Immutable
	// once set, as Kubernetes makes it.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$`
	// +optional
	LoadBalancerClass string `json:"loadBalancerClass,omitempty"`

	// LoadBalancerSourceRanges are the CIDRs allowed to reach the load
	// balancer, e.g. 203.0.113.0/24. Only with serviceType LoadBalancer.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=43
	// +listType=set
	// +optional
	LoadBalancerSourceRanges []string `json:"loadBalancerSourceRanges,omitempty"`

	// ExternalTrafficPolicy is Cluster (the default: any node forwards) or
	// Local (only nodes running a gateway pod receive traffic, which keeps
	// the client's source address). Only with serviceType NodePort or
	// LoadBalancer.
	// +kubebuilder:validation:Enum=Cluster;Local
	// +optional
	ExternalTrafficPolicy corev1.ServiceExternalTrafficPolicy `json:"externalTrafficPolicy,omitempty"`
}

// PodDisruptionBudgetSpec is the budget of a gateway's PodDisruptionBudget:
// at most one of minAvailable and maxUnavailable; minAvailable 1 when
// neither is set.
// +kubebuilder:validation:XValidation:rule="!(has(self.minAvailable) && has(self.maxUnavailable))",message="podDisruptionBudget: set minAvailable or maxUnavailable, not both"
type PodDisruptionBudgetSpec struct {
	// MinAvailable is the number or percentage of gateway pods that must
	// stay up during voluntary disruptions (node drains).
	// +kubebuilder:validation:XIntOrString
	// +optional
	MinAvailable *intstr.IntOrString `json:"minAvailable,omitempty"`

	// MaxUnavailable is the number or percentage of gateway pods that may be
	// down during voluntary disruptions.
	// +kubebuilder:validation:XIntOrString
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
}
