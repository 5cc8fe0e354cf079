package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProfileName selects a set of defaults for the control plane, as Istio's
// installation profiles do.
// +kubebuilder:validation:Enum=default;minimal;demo
type ProfileName string

const (
	// ProfileDefault is for production: istiod with production resource
	// requests and autoscaling, and Istio's istio-ingressgateway unless
	// spec.gateways lists gateways.
	ProfileDefault ProfileName = "default"
	// ProfileMinimal is default without the ingress gateway: only the control
	// plane (no gateways unless spec.gateways lists them).
	ProfileMinimal ProfileName = "minimal"
	// ProfileDemo lowers resource requests, turns on access logging and full
	// trace sampling, and runs the ingress and egress gateways unless
	// spec.gateways lists gateways.
	ProfileDemo ProfileName = "demo"
)

// MeshInstallSpec is the desired Istio control plane.
// +kubebuilder:validation:XValidation:rule="!has(self.migration) || self.migration.namespace != self.__namespace__",message="spec.namespace must differ from spec.migration.namespace: meshkeeper's control plane runs beside the one it migrates off, never over its objects (istio-reader, gateways, the default validator)"
// +kubebuilder:validation:XValidation:rule="!has(self.migration) || (has(self.updateStrategy.type) && self.updateStrategy.type == 'Canary')",message="spec.migration requires spec.updateStrategy.type Canary: meshkeeper's revision is then named for its version (istiod-1-31-0), never over the names of the istiod it migrates off"
type MeshInstallSpec struct {
	// Version of Istio to run, as X.Y.Z (for example 1.32.0). It must be one
	// of the versions this operator supports; the validating webhook lists them.
	// Changing it upgrades the control plane following spec.updateStrategy.
	// +kubebuilder:validation:Pattern=`^[0-9]+\.[0-9]+\.[0-9]+$`
	// +kubebuilder:validation:MaxLength=32
	// +required
	// +operator-sdk:csv:customresourcedefinitions:type=spec,displayName="Istio Version",xDescriptors={"urn:alm:descriptor:com.tectonic.ui:text"}
	Version string `json:"version"`

	// Namespace the control plane runs in. Immutable.
	// +kubebuilder:default=istio-system
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.namespace is immutable: delete and recreate the MeshInstall to move the control plane"
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=spec,displayName="Control Plane Namespace",xDescriptors={"urn:alm:descriptor:io.kubernetes:Namespace"}
	Namespace string `json:"namespace,omitempty"`

	// Profile picks Istio's defaults for resources and features: default, minimal or demo.
	// +kubebuilder:default=default
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=spec,displayName="Profile",xDescriptors={"urn:alm:descriptor:com.tectonic.ui:select:default","urn:alm:descriptor:com.tectonic.ui:select:minimal","urn:alm:descriptor:com.tectonic.ui:select:demo"}
	Profile ProfileName `json:"profile,omitempty"`

	// Hub is the registry and repository prefix of Istio's images, for
	// example docker.io/istio; images are <hub>/pilot:<version> and <hub>/proxyv2:<version>.
	// +kubebuilder:default="docker.io/istio"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9][a-zA-Z0-9._:/-]*[a-zA-Z0-9]$`
	// +optional
	Hub string `json:"hub,omitempty"`

	// UpdateStrategy says how a change of spec.version is rolled out.
	// +kubebuilder:default={type: InPlace}
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=spec,displayName="Update Strategy"
	UpdateStrategy UpdateStrategy `json:"updateStrategy,omitempty"`

	// RevisionTags are extra stable names that always point at the active
	// revision (for example prod); label a namespace istio.io/rev=<tag> to
	// follow it through upgrades. The default tag (istio-injection=enabled)
	// always exists and is not listed here.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=53
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="!self.exists(t, t == 'default')",message="spec.revisionTags must not contain 'default': the default tag always exists"
	// +listType=set
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=spec,displayName="Revision Tags"
	RevisionTags []string `json:"revisionTags,omitempty"`

	// Injection configures meshkeeper's sidecar injection webhook.
	// +kubebuilder:default={}
	// +optional
	Injection InjectionSpec `json:"injection,omitempty"`

	// MeshConfig is the mesh-wide configuration istiod serves to every proxy.
	// +kubebuilder:default={}
	// +optional
	MeshConfig MeshConfigSpec `json:"meshConfig,omitempty"`

	// Cluster identifies this cluster and its network in a multi-cluster mesh.
	// +kubebuilder:default={}
	// +optional
	Cluster ClusterSpec `json:"cluster,omitempty"`

	// Security configures mesh-wide security.
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=spec,displayName="Security"
	Security SecuritySpec `json:"security,omitempty"`

	// Pilot configures the istiod Deployment.
	// +kubebuilder:default={}
	// +optional
	Pilot PilotSpec `json:"pilot,omitempty"`

	// Proxy configures the injected Envoy sidecars and gateways.
	// +kubebuilder:default={}
	// +optional
	Proxy ProxySpec `json:"proxy,omitempty"`

	// CNI runs Istio's CNI node agent, so injected pods need no privileged
	// init container.
	// +kubebuilder:default={}
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=spec,displayName="CNI"
	CNI CNISpec `json:"cni,omitempty"`

	// Gateways are ingress and egress gateway Deployments and Services to
	// run. When empty, the profile's run: istio-ingressgateway for default,
	// it and istio-egressgateway for demo, none for minimal; listing
	// gateways replaces them.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +optional
	Gateways []GatewaySpec `json:"gateways,omitempty"`

	// DataPlane says what meshkeeper does with the injected workloads
	// (restarting them onto their new proxy).
	// +kubebuilder:default={}
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=spec,displayName="Data Plane"
	DataPlane DataPlaneSpec `json:"dataPlane,omitempty"`

	// Overlays are patches to the objects meshkeeper renders, applied in
	// order before they are applied: the escape hatch for a setting this
	// API has no field for.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Overlays []Overlay `json:"overlays,omitempty"`

	// Migration adopts an Istio control plane meshkeeper did not make as the
	// stable side of a canary and moves workloads off it (see the README,
	// "Migrating from istioctl, Helm or Sail"). Removing it before the
	// migration completes aborts it.
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=spec,displayName="Migration"
	Migration *MigrationSpec `json:"migration,omitempty"`

	// Suspend stops all reconciliation (break-glass) without deleting anything.
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=spec,displayName="Suspend",xDescriptors={"urn:alm:descriptor:com.tectonic.ui:booleanSwitch"}
	Suspend bool `json:"suspend,omitempty"`
}

// UpdateStrategyType is how a version change is rolled out.
// +kubebuilder:validation:Enum=InPlace;Canary
type UpdateStrategyType string

const (
	// UpdateStrategyInPlace rolls the existing istiod to the new version.
	UpdateStrategyInPlace UpdateStrategyType = "InPlace"
	// UpdateStrategyCanary runs the new version as a second revision and moves workloads step by step.
	UpdateStrategyCanary UpdateStrategyType = "Canary"
)

// UpdateStrategy says how a change of spec.version is rolled out.
// +kubebuilder:validation:XValidation:rule="!has(self.canary) || self.type == 'Canary'",message="spec.updateStrategy.canary may only be set when spec.updateStrategy.type is Canary"
type UpdateStrategy struct {
	// Type is InPlace (roll istiod to the new version; at most one minor
	// version up, never down) or Canary (a new revision beside the old one;
	// at most two minor versions apart).
	// +kubebuilder:default=InPlace
	// +optional
	Type UpdateStrategyType `json:"type,omitempty"`

	// Canary tunes a canary upgrade.
	// +optional
	Canary *CanaryStrategy `json:"canary,omitempty"`

	// InactiveRevisionDeletionGracePeriod is how long a revision no running
	// pod uses is kept before it is deleted.
	// +kubebuilder:default="30s"
	// +optional
	InactiveRevisionDeletionGracePeriod *metav1.Duration `json:"inactiveRevisionDeletionGracePeriod,omitempty"`

	// ProgressDeadline is how long a new istiod (an in-place rollout or a
	// canary revision) may take to become available. It is the istiod
	// Deployment's progressDeadlineSeconds: past it, the MeshInstall reports
	// UpgradeInProgress False (ControlPlaneNotAvailable) and Stalled, with the
	// Deployment's own reason. No workload moves to the new version until its
	// istiod is available, whether or not the deadline has passed.
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('24h')",message="spec.updateStrategy.progressDeadline must be between 10s and 24h"
	// +optional
	ProgressDeadline *metav1.Duration `json:"progressDeadline,omitempty"`
}

// CanaryStrategy tunes a canary upgrade.
type CanaryStrategy struct {
	// Steps are the percentages of workloads assigned to the new revision,
	// strictly increasing, each 1 to 100, ending at 100. At 100 the new
	// revision becomes active and the tags move to it.
	// +kubebuilder:default={10,50,100}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=100
	// +kubebuilder:validation:XValidation:rule="self.isSorted()",message="spec.updateStrategy.canary.steps must be strictly increasing"
	// +kubebuilder:validation:XValidation:rule="self[size(self) - 1] == 100",message="spec.updateStrategy.canary.steps must end at 100"
	// +listType=set
	// +optional
	Steps []int32 `json:"steps,omitempty"`

	// StepInterval is the least time spent at each step with the canary
	// istiod available and its pods Ready, uninterrupted, before the next
	// step: an unhealthy spell starts the count again. A pod still starting
	// (created less than 30s ago, or less than stepInterval when that is
	// shorter) does not count against the canary.
	// +kubebuilder:default="5m"
	// +optional
	StepInterval *metav1.Duration `json:"stepInterval,omitempty"`

	// Paused holds the canary at its current step. A canary started while
	// paused still gets its first step (below 100%) once its istiod is
	// available, and is never promoted while paused.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// NativeSidecarMode says whether istio-proxy is injected as a Kubernetes
// native sidecar (an init container with restartPolicy Always).
// +kubebuilder:validation:Enum=Auto;Enabled;Disabled
type NativeSidecarMode string

const (
	// NativeSidecarAuto uses native sidecars when the Istio version does by default.
	NativeSidecarAuto NativeSidecarMode = "Auto"
	// NativeSidecarEnabled always injects a native sidecar.
	NativeSidecarEnabled NativeSidecarMode = "Enabled"
	// NativeSidecarDisabled always injects a classic sidecar container.
	NativeSidecarDisabled NativeSidecarMode = "Disabled"
)

// FailurePolicy is what the API server does when the injection webhook cannot be reached.
// +kubebuilder:validation:Enum=Fail;Ignore
type FailurePolicy string

const (
	// FailurePolicyFail refuses pod creation when the webhook cannot answer.
	FailurePolicyFail FailurePolicy = "Fail"
	// FailurePolicyIgnore admits the pod uninjected when the webhook cannot answer.
	FailurePolicyIgnore FailurePolicy = "Ignore"
)

// InjectionSpec configures sidecar injection.
type InjectionSpec struct {
	// NativeSidecars says whether istio-proxy is injected as a Kubernetes
	// native sidecar (an init container with restartPolicy Always). Auto
	// decides as Istio's injector does (ENABLE_NATIVE_SIDECARS=auto): native
	// when every node of the cluster runs a kubelet of Kubernetes 1.33 or
	// later, classic as soon as one node runs an older kubelet or reports a
	// version that cannot be read; a node joining or leaving changes the
	// answer for pods created from then on. Enabled or Disabled force the
	// mode. A pod's sidecar.istio.io/nativeSidecar annotation overrides it.
	// +kubebuilder:default=Auto
	// +optional
	NativeSidecars NativeSidecarMode `json:"nativeSidecars,omitempty"`

	// HoldApplicationUntilProxyStarts makes application containers wait
	// until istio-proxy is ready. It is the mesh-wide default, written into
	// the mesh config's defaultConfig (as Istio's deprecated
	// values.global.proxy.holdApplicationUntilProxyStarts is replaced by
	// meshConfig.defaultConfig.holdApplicationUntilProxyStarts). One value
	// wins, in this order: a pod's proxy.istio.io/config annotation
	// (holdApplicationUntilProxyStarts: false included), then
	// spec.meshConfig.defaultConfig.holdApplicationUntilProxyStarts, then
	// this field; unset everywhere means false. Unlike Istio's global value,
	// which is OR-ed with the pod's, a false set at a higher level wins.
	// +optional
	HoldApplicationUntilProxyStarts *bool `json:"holdApplicationUntilProxyStarts,omitempty"`

	// TrafficCapture are the mesh-wide defaults of what istio-init redirects
	// through the sidecar (Istio's values.global.proxy.includeIPRanges and
	// related values). A pod's traffic.sidecar.istio.io/* annotations
	// override each of them, as in Istio.
	// +optional
	TrafficCapture TrafficCaptureSpec `json:"trafficCapture,omitempty"`

	// RewriteAppProbes sends application HTTP and gRPC probes through the
	// sidecar agent, so they work under strict mTLS.
	// +kubebuilder:default=true
	// +optional
	RewriteAppProbes *bool `json:"rewriteAppProbes,omitempty"`

	// FailurePolicy is Fail (pods are refused while the webhook is
	// unreachable) or Ignore (pods are admitted uninjected).
	// +kubebuilder:default=Fail
	// +optional
	FailurePolicy FailurePolicy `json:"failurePolicy,omitempty"`
}

// ClusterSpec identifies this cluster in a (possibly multi-cluster) mesh.
type ClusterSpec struct {
	// Name of this cluster in the mesh.
	// +kubebuilder:default=Kubernetes
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$`
	// +optional
	Name string `json:"name,omitempty"`

	// Domain is the cluster's DNS domain (the kubelet's --cluster-domain):
	// istiod's --domain, the sidecars' --domain and the service addresses
	// meshkeeper writes follow it. It is Istio's
	// values.global.proxy.clusterDomain. It is not the trust domain
	// (spec.meshConfig.trustDomain), whose default is also cluster.local.
	// +kubebuilder:default="cluster.local"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	Domain string `json:"domain,omitempty"`

	// Network this cluster's pods are on; empty for a single network. When
	// set, the cluster's endpoints belong to it in istiod's meshNetworks
	// (the istio[-<rev>] ConfigMap's meshNetworks key, from the registry
	// named by spec.cluster.name) and the control plane namespace carries
	// the topology.istio.io/network label.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Network string `json:"network,omitempty"`

	// MeshID identifies the mesh; defaults to the trust domain.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	MeshID string `json:"meshID,omitempty"`
}

// MTLSMode is the mesh-wide mutual TLS mode.
// +kubebuilder:validation:Enum=Strict;Permissive
type MTLSMode string

const (
	// MTLSStrict accepts only mutual TLS traffic.
	MTLSStrict MTLSMode = "Strict"
	// MTLSPermissive accepts mutual TLS and plain text traffic.
	MTLSPermissive MTLSMode = "Permissive"
)

// SecuritySpec configures mesh-wide security.
type SecuritySpec struct {
	// MTLS is the mesh-wide mTLS mode, applied as a PeerAuthentication named
	// default in the control plane namespace. Unset leaves it to the user.
	// +optional
	MTLS MTLSMode `json:"mtls,omitempty"`

	// CertificateAuthority is what signs the workload certificates: istiod's
	// own self-signed CA (unset, or type SelfSigned) or an intermediate CA
	// from the user's cert-manager issuer.
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=spec,displayName="Certificate Authority"
	CertificateAuthority *CertificateAuthoritySpec `json:"certificateAuthority,omitempty"`
}

// PilotSpec configures istiod.
// +kubebuilder:validation:XValidation:rule="!has(self.variant) || !has(self.image)",message="spec.pilot.variant cannot be combined with spec.pilot.image: put the variant in the image's tag"
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || !self.autoscaling.enabled || !has(self.autoscaling.minReplicas) || !has(self.autoscaling.maxReplicas) || self.autoscaling.minReplicas <= self.autoscaling.maxReplicas",message="spec.pilot.autoscaling.minReplicas must not exceed spec.pilot.autoscaling.maxReplicas"
type PilotSpec struct {
	// Replicas of istiod when autoscaling is off.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Resources of the discovery container; the profile sets a default.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// Autoscaling of istiod by CPU.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// Env are extra environment variables of istiod (feature flags).
	// +kubebuilder:validation:MaxProperties=128
	// +optional
	Env map[string]string `json:"env,omitempty"`

	// Image overrides the istiod image (<hub>/pilot:<version>).
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// Variant of the istiod image: distroless or debug, published by Istio
	// as <hub>/pilot:<version>-<variant> (Istio's pilot.variant). Not with image.
	// +optional
	Variant ImageVariant `json:"variant,omitempty"`

	// ImagePullPolicy of the discovery container; unset leaves Kubernetes' default
	// (Always for a :latest image, IfNotPresent otherwise).
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// ImagePullSecrets are the names of Secrets, in spec.namespace, to pull
	// the istiod image with (a private registry in spec.hub).
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +listType=set
	// +optional
	ImagePullSecrets []string `json:"imagePullSecrets,omitempty"`

	// PodPlacement: where istiod's pods are scheduled and their metadata.
	PodPlacement `json:",inline"`
}

// AutoscalingSpec configures a HorizontalPodAutoscaler.
type AutoscalingSpec struct {
	// Enabled turns autoscaling on.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// MinReplicas is the least number of replicas.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`

	// MaxReplicas is the most number of replicas.
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`

	// TargetCPUUtilizationPercentage is the CPU utilization to aim for.
	// +kubebuilder:default=80
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	TargetCPUUtilizationPercentage *int32 `json:"targetCPUUtilizationPercentage,omitempty"`
}

// ProxyLogLevel is Envoy's log level.
// +kubebuilder:validation:Enum=trace;debug;info;warning;error;critical;off
type ProxyLogLevel string

// ProxySpec configures injected sidecars and gateways.
// +kubebuilder:validation:XValidation:rule="!has(self.variant) || !has(self.image)",message="spec.proxy.variant cannot be combined with spec.proxy.image: put the variant in the image's tag"
type ProxySpec struct {
	// Resources of istio-proxy; the profile sets a default. Pods can
	// override them with sidecar.istio.io/proxyCPU and related annotations.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// LogLevel of Envoy.
	// +kubebuilder:default=warning
	// +optional
	LogLevel ProxyLogLevel `json:"logLevel,omitempty"`

	// ComponentLogLevel is Envoy's per-component log level, e.g. misc:error.
	// +kubebuilder:default="misc:error"
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	ComponentLogLevel string `json:"componentLogLevel,omitempty"`

	// Image overrides the proxy image (<hub>/proxyv2:<version>).
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// Variant of the proxy image of injected sidecars, istio-init and
	// gateways: distroless or debug, <hub>/proxyv2:<version>-<variant>
	// (Istio's global.variant). A pod's sidecar.istio.io/proxyImageType
	// annotation overrides it. Not with image.
	// +optional
	Variant ImageVariant `json:"variant,omitempty"`

	// ImagePullPolicy of the injected istio-proxy and istio-init containers and of
	// the gateways' istio-proxy. Unset leaves Kubernetes' default: IfNotPresent
	// for a versioned image, but Always for gateways, whose Deployment names
	// the image "auto" for the injector to fill in (as Istio's gateway chart).
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// ImagePullSecrets are the names of Secrets to pull the proxy image with
	// (a private registry in spec.hub): the injector adds them to every pod
	// it injects, gateways included, as Istio's injector adds
	// global.imagePullSecrets. Each must exist in the pods' namespace.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +listType=set
	// +optional
	ImagePullSecrets []string `json:"imagePullSecrets,omitempty"`

	// SeccompProfile is the seccomp profile of the containers the injector
	// adds (istio-proxy, and istio-validation or istio-init), Istio's
	// global.proxy.seccompProfile. RuntimeDefault, with spec.cni.enabled,
	// lets injected pods pass Pod Security restricted. Unset adds none (the
	// pod's own applies).
	// +kubebuilder:validation:XValidation:rule="self.type != 'Localhost' || has(self.localhostProfile)",message="spec.proxy.seccompProfile.localhostProfile is required with type Localhost"
	// +optional
	SeccompProfile *corev1.SeccompProfile `json:"seccompProfile,omitempty"`
}

// CNIProvider is how the istio-cni plugin joins the node's CNI
// configuration (Istio's cni.provider).
// +kubebuilder:validation:Enum=default;multus
type CNIProvider string

const (
	// CNIProviderDefault chains the plugin into the node's primary CNI
	// configuration file.
	CNIProviderDefault CNIProvider = "default"
	// CNIProviderMultus runs the plugin through Multus (OpenShift): the
	// plugin's configuration is standalone, and injected pods' network
	// annotation k8s.v1.cni.cncf.io/networks names default/istio-cni. The
	// NetworkAttachmentDefinition istio-cni in namespace default is not
	// rendered (meshkeeper does not control that namespace, so it writes
	// nothing there): the cluster's Multus setup provides it. meshkeeper
	// reads it, and routes no workload to the mesh while it is missing
	// (CNIReady False, reason CNINetworkMissing).
	CNIProviderMultus CNIProvider = "multus"
)

// CNIRepairMode is what the node agent does with a pod whose traffic
// redirection was not set up: its istio-validation init container failed
// (Istio's cni.repair).
// +kubebuilder:validation:Enum=RepairPods;LabelPods;DeletePods;None
type CNIRepairMode string

const (
	// CNIRepairPods sets the redirection up in the running pod (Istio's repair.repairPods).
	CNIRepairPods CNIRepairMode = "RepairPods"
	// CNIRepairLabelPods labels the pod cni.istio.io/uninitialized=true (repair.labelPods).
	CNIRepairLabelPods CNIRepairMode = "LabelPods"
	// CNIRepairDeletePods deletes the pod for its controller to re-create (repair.deletePods).
	CNIRepairDeletePods CNIRepairMode = "DeletePods"
	// CNIRepairNone leaves broken pods alone (repair.enabled false).
	CNIRepairNone CNIRepairMode = "None"
)

// CNISpec runs Istio's CNI node agent (istio-cni) and injects pods for it.
// The agent sets up each meshed pod's traffic redirection from the node, so
// an injected pod carries an unprivileged istio-validation init container
// instead of istio-init (root, NET_ADMIN and NET_RAW), and passes Pod
// Security baseline, and restricted with spec.proxy.seccompProfile. The
// agent is upgraded with the control plane, never more than one minor from
// any istiod that serves pods.
type CNISpec struct {
	// Enabled installs the node agent and injects pods for it.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// Namespace the node agent's DaemonSet runs in: kube-system (Istio's
	// default) or the control plane's. It must allow privileged pods.
	// +kubebuilder:default=kube-system
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// Provider is default (the plugin chained into the node's CNI
	// configuration) or multus (OpenShift-style, through Multus).
	// +kubebuilder:default=default
	// +optional
	Provider CNIProvider `json:"provider,omitempty"`

	// BinDir is the host directory of the CNI plugin binaries (Istio's cni.cniBinDir).
	// +kubebuilder:default="/opt/cni/bin"
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^/[^\s]*$`
	// +optional
	BinDir string `json:"binDir,omitempty"`

	// ConfDir is the host directory of the CNI configuration (Istio's cni.cniConfDir).
	// +kubebuilder:default="/etc/cni/net.d"
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^/[^\s]*$`
	// +optional
	ConfDir string `json:"confDir,omitempty"`

	// ExcludeNamespaces are namespaces whose pods the plugin never
	// redirects (Istio's cni.excludeNamespaces).
	// +kubebuilder:default={kube-system}
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +listType=set
	// +optional
	ExcludeNamespaces []string `json:"excludeNamespaces,omitempty"`

	// Repair is what the agent does with a pod whose redirection was not
	// set up: RepairPods (default), LabelPods, DeletePods or None.
	// +kubebuilder:default=RepairPods
	// +optional
	Repair CNIRepairMode `json:"repair,omitempty"`

	// Image overrides the node agent's image (<hub>/install-cni:<version>).
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// Resources of the node agent; Istio's chart requests 100m CPU and 100Mi.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// PodPlacement places the node agent. Unset tolerations tolerate every
	// taint, as Istio's chart: the agent must run wherever meshed pods may.
	// +optional
	PodPlacement `json:",inline"`
}

// GatewayType is the direction of traffic a gateway handles.
// +kubebuilder:validation:Enum=Ingress;Egress
type GatewayType string

const (
	// GatewayIngress receives traffic from outside the mesh.
	GatewayIngress GatewayType = "Ingress"
	// GatewayEgress sends traffic out of the mesh.
	GatewayEgress GatewayType = "Egress"
)

// GatewaySpec is an ingress or egress gateway.
// +kubebuilder:validation:XValidation:rule="!has(self.ports) || !has(self.serviceType) || self.serviceType != 'ClusterIP' || self.ports.all(p, !has(p.nodePort))",message="spec.gateways[].ports[].nodePort may only be set when serviceType is NodePort or LoadBalancer"
// +kubebuilder:validation:XValidation:rule="!has(self.service) || (has(self.serviceType) && self.serviceType == 'LoadBalancer') || (!has(self.service.loadBalancerIP) && !has(self.service.loadBalancerClass) && !has(self.service.loadBalancerSourceRanges))",message="spec.gateways[].service.loadBalancerIP, loadBalancerClass and loadBalancerSourceRanges may only be set when serviceType is LoadBalancer"
// +kubebuilder:validation:XValidation:rule="!has(self.service) || !has(self.service.externalTrafficPolicy) || (has(self.serviceType) && self.serviceType != 'ClusterIP')",message="spec.gateways[].service.externalTrafficPolicy may only be set when serviceType is NodePort or LoadBalancer"
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || !self.autoscaling.enabled || !has(self.autoscaling.minReplicas) || !has(self.autoscaling.maxReplicas) || self.autoscaling.minReplicas <= self.autoscaling.maxReplicas",message="spec.gateways[].autoscaling.minReplicas must not exceed spec.gateways[].autoscaling.maxReplicas"
type GatewaySpec struct {
	// Name of the gateway's Deployment and Service, e.g. istio-ingressgateway.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// Type is Ingress or Egress.
	// +kubebuilder:default=Ingress
	// +optional
	Type GatewayType `json:"type,omitempty"`

	// Namespace the gateway runs in; defaults to spec.namespace.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.namespace is immutable: delete and recreate the MeshInstall to move the control plane"
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// Replicas of the gateway Deployment. Ignored while autoscaling is
	// enabled: the HorizontalPodAutoscaler then owns the replicas.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// ServiceType of the gateway's Service.
	// +kubebuilder:default=ClusterIP
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +optional
	ServiceType corev1.ServiceType `json:"serviceType,omitempty"`

	// Ports of the gateway's Service; Istio's defaults for the gateway type when empty.
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=port
	// +optional
	Ports []GatewayPort `json:"ports,omitempty"`

	// Labels added to the gateway's pods and used by Gateway resources to select it;
	// istio=ingressgateway or istio=egressgateway by default.
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// Resources of the gateway's istio-proxy.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// Service configures the gateway's Service: annotations and labels (how
	// cloud load balancers are configured), load balancer settings and the
	// external traffic policy.
	// +optional
	Service *GatewayServiceSpec `json:"service,omitempty"`

	// Autoscaling runs a HorizontalPodAutoscaler on the gateway Deployment
	// (by CPU, 1 to 5 replicas at 80% by default, as Istio's gateway chart);
	// replicas is then ignored.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// PodDisruptionBudget of the gateway. A PodDisruptionBudget exists
	// whenever at least two replicas always run (replicas, or
	// autoscaling.minReplicas, above 1), as in Istio's charts: with one, any
	// budget would block node drains. It keeps minAvailable 1 unless set here.
	// +optional
	PodDisruptionBudget *PodDisruptionBudgetSpec `json:"podDisruptionBudget,omitempty"`

	// ImagePullSecrets are the names of Secrets, in the gateway's namespace,
	// added to the gateway's pods (besides spec.proxy.imagePullSecrets,
	// which the injector adds).
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +listType=set
	// +optional
	ImagePullSecrets []string `json:"imagePullSecrets,omitempty"`

	// PodPlacement: where the gateway's pods are scheduled and their metadata.
	PodPlacement `json:",inline"`
}

// GatewayPort is one port of a gateway Service.
type GatewayPort struct {
	// Name of the port, e.g. http2.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`
	// Port the Service exposes.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +required
	Port int32 `json:"port"`
	// TargetPort on the gateway pod; defaults to Port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	TargetPort int32 `json:"targetPort,omitempty"`
	// NodePort on every node, for serviceType NodePort or LoadBalancer; it
	// must be free and in the cluster's node port range (30000-32767 by
	// default). Unset lets Kubernetes pick one.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	NodePort int32 `json:"nodePort,omitempty"`
}

// RevisionRole is what a control plane revision is doing.
// +kubebuilder:validation:Enum=Active;Canary;Draining
type RevisionRole string

const (
	// RevisionActive is the revision the tags point at.
	RevisionActive RevisionRole = "Active"
	// RevisionCanary is a new revision receiving a growing share of workloads.
	RevisionCanary RevisionRole = "Canary"
	// RevisionDraining is an old revision waiting for its pods to move before it is pruned.
	RevisionDraining RevisionRole = "Draining"
)

// RevisionStatus is the observed state of one control plane revision.
type RevisionStatus struct {
	// Name of the revision (default, or the version with dashes, e.g. 1-32-0).
	Name string `json:"name"`
	// Version of Istio the revision injects into new pods (its injection
	// configuration and gateways).
	Version string `json:"version"`
	// Role is Active, Canary or Draining.
	Role RevisionRole `json:"role"`
	// Weight is the percentage of tag-selecting workloads assigned to this revision.
	// +optional
	Weight int32 `json:"weight"`
	// Ready is true when the revision's istiod Deployment is available.
	// +optional
	Ready bool `json:"ready"`
	// ControlPlaneVersion is the version its istiod Deployment is set to;
	// during an in-place upgrade it is ahead of Version until istiod has rolled out.
	// +optional
	ControlPlaneVersion string `json:"controlPlaneVersion,omitempty"`
	// Pods is the number of running pods injected by this revision.
	// +optional
	Pods int32 `json:"pods"`
	// UpToDatePods is the number of those pods injected with the revision's current configuration.
	// +optional
	UpToDatePods int32 `json:"upToDatePods"`
	// LastUsedTime is, for a revision no running pod uses, when it was first
	// seen unused; it is pruned inactiveRevisionDeletionGracePeriod later.
	// Unset while pods use it.
	// +optional
	LastUsedTime *metav1.Time `json:"lastUsedTime,omitempty"`
}

// CanaryStatus is the progress of a canary upgrade.
type CanaryStatus struct {
	// Revision being rolled out.
	Revision string `json:"revision"`
	// Version the canary revision runs.
	Version string `json:"version"`
	// Step is the index in spec.updateStrategy.canary.steps currently applied.
	Step int32 `json:"step"`
	// Weight is the percentage of workloads currently assigned to the canary.
	Weight int32 `json:"weight"`
	// StepStartTime is when the current step began (when its weight was set).
	// +optional
	StepStartTime *metav1.Time `json:"stepStartTime,omitempty"`
	// HealthySince is when the canary last turned healthy (istiod available,
	// its pods Ready but for those still starting) at this step; the step advances once it has been
	// healthy for stepInterval. Unset while it is not healthy, and before the
	// first step (the canary's weight is 0 until its istiod is available).
	// +optional
	HealthySince *metav1.Time `json:"healthySince,omitempty"`
}

// DataPlaneStatus counts the pods of the mesh.
type DataPlaneStatus struct {
	// Every count is of running pods: Succeeded and Failed pods are left out.
	// InjectedPods is the number of running pods with an istio-proxy injected by meshkeeper.
	// +optional
	InjectedPods int32 `json:"injectedPods"`
	// UpToDatePods run the current injection configuration of their revision.
	// +optional
	UpToDatePods int32 `json:"upToDatePods"`
	// OutdatedPods were injected with an older configuration or version; restart them to update.
	// +optional
	OutdatedPods int32 `json:"outdatedPods"`
	// UninjectedPods should have a sidecar (their namespace or labels select
	// a revision) but have none, e.g. admitted while the webhook was unreachable.
	// Host-network pods are never counted: Istio does not inject them.
	// +optional
	UninjectedPods int32 `json:"uninjectedPods"`
	// UnmanagedPods are the outdated and uninjected pods that no workload
	// controller owns (bare pods): restarting a workload cannot update them;
	// delete and recreate them. They are included in OutdatedPods and UninjectedPods.
	// +optional
	UnmanagedPods int32 `json:"unmanagedPods"`
	// Rollout reports the restarts of workloads onto their new proxy.
	// +optional
	Rollout *RolloutStatus `json:"rollout,omitempty"`
}

// MeshInstallStatus is the observed state of a MeshInstall.
type MeshInstallStatus struct {
	// ObservedGeneration is the generation the conditions describe: set on
	// every pass that judged the current spec, a refusal included.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Reconciling, Stalled, UpgradeInProgress,
	// DataPlaneUpToDate, WorkloadRollout, CertificateAuthorityReady, CNIReady.
	// +listType=map
	// +listMapKey=type
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=status,displayName="Conditions",xDescriptors={"urn:alm:descriptor:io.kubernetes.conditions"}
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Version of the active revision.
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=status,displayName="Running Version",xDescriptors={"urn:alm:descriptor:text"}
	Version string `json:"version,omitempty"`

	// ActiveRevision is the revision the default tag and spec.revisionTags point at.
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=status,displayName="Active Revision",xDescriptors={"urn:alm:descriptor:text"}
	ActiveRevision string `json:"activeRevision,omitempty"`

	// Revisions are the control plane revisions that exist.
	// +listType=map
	// +listMapKey=name
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=status,displayName="Revisions"
	Revisions []RevisionStatus `json:"revisions,omitempty"`

	// Canary is the progress of a canary upgrade, when one is under way.
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=status,displayName="Canary"
	Canary *CanaryStatus `json:"canary,omitempty"`

	// DataPlane counts the pods of the mesh.
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=status,displayName="Data Plane"
	DataPlane *DataPlaneStatus `json:"dataPlane,omitempty"`
	// CertificateAuthority is the mesh CA issued by cert-manager, when
	// spec.security.certificateAuthority.type is CertManager.
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=status,displayName="Certificate Authority"
	CertificateAuthority *CertificateAuthorityStatus `json:"certificateAuthority,omitempty"`
	// CNI is the istio-cni node agent, while spec.cni is on or pods still rely on it.
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=status,displayName="CNI"
	CNI *CNIStatus `json:"cni,omitempty"`
	// Migration is the progress of spec.migration, kept once complete or aborted.
	// +optional
	// +operator-sdk:csv:customresourcedefinitions:type=status,displayName="Migration"
	Migration *MigrationStatus `json:"migration,omitempty"`
}

// CNIStatus is the istio-cni node agent as last observed.
type CNIStatus struct {
	// Namespace its DaemonSet runs in.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Version the agent's DaemonSet runs; "" before it exists.
	// +optional
	Version string `json:"version,omitempty"`
	// TargetVersion is the version it is moved to: within one minor of
	// every istiod that serves pods (during a two-minor canary, the minor
	// between them).
	// +optional
	TargetVersion string `json:"targetVersion,omitempty"`
	// NodesReady is how many nodes run an updated, available agent, of NodesDesired.
	// +optional
	NodesReady int32 `json:"nodesReady,omitempty"`
	// NodesDesired is how many nodes the agent should run on.
	// +optional
	NodesDesired int32 `json:"nodesDesired,omitempty"`
}

// MeshInstall installs and upgrades an Istio control plane and injects
// Envoy sidecars into the pods of labelled namespaces.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +operator-sdk:csv:customresourcedefinitions:displayName="Mesh Install",resources={{Deployment,v1,istiod},{Service,v1,istiod},{ConfigMap,v1,istio},{MutatingWebhookConfiguration,v1,istio-sidecar-injector},{PeerAuthentication,v1,default}}
// +kubebuilder:resource:scope=Cluster,shortName=mi;mesh,categories=meshkeeper
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.activeRevision`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Up-To-Date",type=integer,JSONPath=`.status.dataPlane.upToDatePods`
// +kubebuilder:printcolumn:name="Injected",type=integer,JSONPath=`.status.dataPlane.injectedPods`,priority=1
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MeshInstall struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec MeshInstallSpec `json:"spec"`
	// +optional
	Status MeshInstallStatus `json:"status,omitempty"`
}

// MeshInstallList is a list of MeshInstall.
// +kubebuilder:object:root=true
type MeshInstallList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MeshInstall `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MeshInstall{}, &MeshInstallList{})
}
