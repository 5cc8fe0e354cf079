package inject

import (
	"istio.io/api/annotation"
	"istio.io/api/label"
)

// meshkeeper's stamp on every pod it injects.
const (
	// AnnotationRevision is the control plane revision that injected the pod.
	AnnotationRevision = "mesh.meshkeeper.dev/revision"
	// AnnotationProxyVersion is the Istio version of the injected proxy.
	AnnotationProxyVersion = "mesh.meshkeeper.dev/proxy-version"
	// AnnotationConfigHash is Config.Hash of the configuration used: on an
	// injected pod, and on the revision's injection ConfigMap.
	AnnotationConfigHash = "mesh.meshkeeper.dev/config-hash"
	// LabelInjectedBy is the revision that injected the pod, as a label so the
	// operator can ask the API server which running pods use a revision
	// (label and field selectors) before pruning it.
	LabelInjectedBy = "mesh.meshkeeper.dev/injected-by"
)

// Names of the injected containers.
const (
	// ProxyContainerName is the Envoy sidecar (and gateway) container.
	ProxyContainerName = "istio-proxy"
	// InitContainerName is the init container that sets up iptables.
	InitContainerName = "istio-init"
)

// Templates selectable with inject.istio.io/templates.
const (
	// TemplateSidecar is the default: an Envoy sidecar beside the app.
	TemplateSidecar = "sidecar"
	// TemplateGateway turns the pod's istio-proxy into a gateway (router).
	TemplateGateway = "gateway"
	// TemplateGRPCAgent is proxyless gRPC with pilot-agent: the agent
	// (no Envoy) serves the application's gRPC library xDS and certificates.
	TemplateGRPCAgent = "grpc-agent"
	// TemplateGRPCSimple is proxyless gRPC without an agent: an init
	// container writes the gRPC xDS bootstrap, nothing else is injected.
	TemplateGRPCSimple = "grpc-simple"
)

// Annotation and label names Istio's injector uses that istio.io/api does not
// define.
const (
	annCapNetBindService      = "sidecar.istio.io/capNetBindService"
	annDefaultContainer       = "kubectl.kubernetes.io/default-container"
	annDefaultLogsContainer   = "kubectl.kubernetes.io/default-logs-container"
	annPrometheusScrape       = "prometheus.io/scrape"
	annPrometheusPort         = "prometheus.io/port"
	annPrometheusPath         = "prometheus.io/path"
	annPrometheusSecurePort   = "prometheus.istio.io/secure-port"
	annPrometheusTargets      = "prometheus.istio.io/scrape-targets"
	labelTunnel               = "networking.istio.io/tunnel"
	labelAppName              = "app.kubernetes.io/name"
	labelAppVersion           = "app.kubernetes.io/version"
	labelApp                  = "app"
	labelVersion              = "version"
	labelPodTemplateHash      = "pod-template-hash"
	labelRolloutsTemplateHash = "rollouts-pod-template-hash"
	labelDeploymentConfig     = "deploymentconfig"
)

// WorkloadLabels are the pod labels WorkloadOf reads, besides the owner
// reference: whoever caches pods trimmed keeps them.
var WorkloadLabels = []string{labelPodTemplateHash, labelRolloutsTemplateHash, labelDeploymentConfig}

// Names from istio.io/api, shortened for readability.
var (
	annStatus            = annotation.SidecarStatus.Name
	annOverrides         = annotation.ProxyOverrides.Name
	annProxyConfig       = annotation.ProxyConfig.Name
	annTemplates         = annotation.InjectTemplates.Name
	annRev               = annotation.IoIstioRev.Name
	annNativeSidecar     = annotation.SidecarNativeSidecar.Name
	annInterceptionMode  = annotation.SidecarInterceptionMode.Name
	annStatusPort        = annotation.SidecarStatusPort.Name
	annProxyImage        = annotation.SidecarProxyImage.Name
	annProxyImageType    = annotation.SidecarProxyImageType.Name
	annLogLevel          = annotation.SidecarLogLevel.Name
	annComponentLogLevel = annotation.SidecarComponentLogLevel.Name
	annAgentLogLevel     = annotation.SidecarAgentLogLevel.Name
	annProxyCPU          = annotation.SidecarProxyCPU.Name
	annProxyMemory       = annotation.SidecarProxyMemory.Name
	annProxyCPULimit     = annotation.SidecarProxyCPULimit.Name
	annProxyMemoryLimit  = annotation.SidecarProxyMemoryLimit.Name
	annReadinessDelay    = annotation.SidecarStatusReadinessInitialDelaySeconds.Name
	annReadinessPeriod   = annotation.SidecarStatusReadinessPeriodSeconds.Name
	annReadinessFailures = annotation.SidecarStatusReadinessFailureThreshold.Name
	annRewriteProbes     = annotation.SidecarRewriteAppHTTPProbers.Name
	annMergeMetrics      = annotation.PrometheusMergeMetrics.Name
	annBootstrapOverride = annotation.SidecarBootstrapOverride.Name
	annUserVolume        = annotation.SidecarUserVolume.Name
	annUserVolumeMount   = annotation.SidecarUserVolumeMount.Name
	annIncludeOutIPs     = annotation.SidecarTrafficIncludeOutboundIPRanges.Name
	annExcludeOutIPs     = annotation.SidecarTrafficExcludeOutboundIPRanges.Name
	annIncludeInPorts    = annotation.SidecarTrafficIncludeInboundPorts.Name
	annExcludeInPorts    = annotation.SidecarTrafficExcludeInboundPorts.Name
	annIncludeOutPorts   = annotation.SidecarTrafficIncludeOutboundPorts.Name
	annExcludeOutPorts   = annotation.SidecarTrafficExcludeOutboundPorts.Name
	annKubevirtIfaces    = annotation.SidecarTrafficKubevirtInterfaces.Name
	annRerouteIfaces     = annotation.IoIstioRerouteVirtualInterfaces.Name
	annExcludeIfaces     = annotation.SidecarTrafficExcludeInterfaces.Name

	labelTLSMode           = label.SecurityTlsMode.Name
	labelCanonicalName     = label.ServiceCanonicalName.Name
	labelCanonicalRevision = label.ServiceCanonicalRevision.Name
	labelWorkloadName      = label.ServiceWorkloadName.Name
	labelNetwork           = label.TopologyNetwork.Name
)
