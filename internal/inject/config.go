// Package inject builds the Envoy sidecar of an Istio revision into a pod, the
// way Istio's own injector does for the same version and settings, with typed
// Go instead of text templates. The patch the webhook answers with, and the
// JSON written into the pod, are podpatch's; shared.go registers the values
// every injection shares with it.
package inject

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// Config is everything the injector needs to know about one control plane
// revision. The operator renders it (internal/render) into a ConfigMap of the
// revision as JSON; the webhook reads it from its cache. It holds no secrets.
type Config struct {
	// Revision is the control plane revision: "default" or e.g. "1-32-0".
	Revision string `json:"revision"`
	// Version is the Istio version of the revision, X.Y.Z.
	Version string `json:"version"`
	// Namespace is the control plane namespace (istio-system).
	Namespace string `json:"namespace"`
	// ProxyImage is the istio-proxy (and istio-init) image, <hub>/proxyv2:<version>.
	ProxyImage string `json:"proxyImage"`
	// ImagePullPolicy of the injected containers; empty leaves it to Kubernetes.
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	// ImagePullSecrets are added, before the pod's own, to every pod
	// injected (Istio's values.global.imagePullSecrets).
	ImagePullSecrets []string `json:"imagePullSecrets,omitempty"`

	// ClusterID is ISTIO_META_CLUSTER_ID (Istio's default: Kubernetes).
	ClusterID string `json:"clusterID"`
	// Network is ISTIO_META_NETWORK; empty for a single network.
	Network string `json:"network,omitempty"`
	// MeshID is ISTIO_META_MESH_ID; Istio defaults it to the trust domain.
	MeshID string `json:"meshID"`
	// TrustDomain is the SPIFFE trust domain (cluster.local).
	TrustDomain string `json:"trustDomain"`
	// DiscoveryAddress is istiod's xDS address, istiod[-<rev>].<ns>.svc:15012.
	DiscoveryAddress string `json:"discoveryAddress"`
	// CAAddress is the CA's address; Istio uses the discovery address.
	CAAddress string `json:"caAddress"`

	// NativeSidecars is Enabled or Disabled: the operator decides
	// spec.injection.nativeSidecars Auto from the cluster's nodes and writes
	// the answer. Auto (from an older operator) injects a native sidecar.
	NativeSidecars string `json:"nativeSidecars"`
	// RewriteAppProbes sends HTTP/gRPC probes through the pilot-agent.
	RewriteAppProbes bool `json:"rewriteAppProbes"`
	// EnablePrometheusMerge merges app metrics into the agent's :15020/stats/prometheus.
	EnablePrometheusMerge bool `json:"enablePrometheusMerge"`

	// ProxyResources are istio-proxy's default resources.
	ProxyResources corev1.ResourceRequirements `json:"proxyResources,omitempty"`
	// LogLevel is Envoy's log level (--proxyLogLevel).
	LogLevel string `json:"logLevel"`
	// ComponentLogLevel is Envoy's per-component log level (--proxyComponentLogLevel).
	ComponentLogLevel string `json:"componentLogLevel"`

	// DefaultProxyConfig is the mesh's defaultConfig (Istio's ProxyConfig, as
	// its protobuf JSON), over which a pod's proxy.istio.io/config is merged.
	DefaultProxyConfig ProxyConfig `json:"defaultProxyConfig"`

	// TrafficCapture are the defaults of the traffic.sidecar.istio.io
	// annotations (Istio's values.global.proxy.includeIPRanges and related
	// values); a pod's annotations override them.
	TrafficCapture *TrafficCapture `json:"trafficCapture,omitempty"`

	// ClusterDomain is the cluster's DNS domain (Istio's
	// values.global.proxy.clusterDomain); empty means cluster.local.
	ClusterDomain string `json:"clusterDomain,omitempty"`

	// CNI is set when Istio's CNI node agent sets up the pods' traffic
	// redirection (spec.cni.enabled, Istio's pilot.cni): pods then get the
	// unprivileged istio-validation instead of istio-init, and the traffic
	// annotations the CNI plugin reads. Nil (left out of the JSON, so the
	// hash of a configuration without CNI is what it always was) injects
	// istio-init.
	CNI *CNI `json:"cni,omitempty"`

	// SeccompProfile is the seccomp profile of the containers the sidecar
	// template adds (istio-proxy, and istio-validation or istio-init):
	// spec.proxy.seccompProfile, Istio's values.global.proxy.seccompProfile.
	// Nil adds none.
	SeccompProfile *corev1.SeccompProfile `json:"seccompProfile,omitempty"`

	// memo holds what is derived from the fields above on first use. A Config
	// must therefore not be modified, nor copied, once it has been used.
	memo memo
}

// NativeSidecars modes of Config.NativeSidecars.
const (
	// NativeSidecarsAuto is what spec.injection.nativeSidecars Auto meant
	// before the operator decided it (a native sidecar); the operator now
	// writes Enabled or Disabled.
	NativeSidecarsAuto = "Auto"
	// NativeSidecarsEnabled always injects istio-proxy as a native sidecar
	// (an init container with restartPolicy Always).
	NativeSidecarsEnabled = "Enabled"
	// NativeSidecarsDisabled always injects istio-proxy as a regular container.
	NativeSidecarsDisabled = "Disabled"
)

// CNI is how injected pods rely on Istio's CNI node agent.
type CNI struct {
	// Provider is how the CNI plugin is called (Istio's pilot.cni.provider):
	// CNIProviderDefault (chained into the node's CNI configuration; the
	// empty value means it) or CNIProviderMultus.
	Provider string `json:"provider,omitempty"`
}

// CNI providers of CNI.Provider.
const (
	// CNIProviderDefault is the plugin chained into the node's primary CNI
	// configuration: pods need nothing more.
	CNIProviderDefault = "default"
	// CNIProviderMultus is the plugin called by Multus: pods ask for it
	// with the k8s.v1.cni.cncf.io/networks annotation.
	CNIProviderMultus = "multus"
)

// memo is the lazily derived state of a Config.
type memo struct {
	once    sync.Once
	derived *derived
	err     error
}

// Hash is a short, stable digest of the configuration: the first 16 hex
// digits of the SHA-256 of its JSON encoding (map keys sorted). Injected pods
// carry it in the mesh.meshkeeper.dev/config-hash annotation, so a pod
// injected with an older configuration of the same revision can be told
// apart. It is computed once per Config.
func (c *Config) Hash() string {
	d, _ := c.prepare()
	return d.hash
}

// Prepare derives, once, what injection needs from the configuration (its
// hash, parsed proxy config, …) and says whether it is usable. Inject calls
// it too; calling it when a configuration is loaded keeps that work off the
// first request's path.
func (c *Config) Prepare() error {
	_, err := c.prepare()
	return err
}

// prepare derives, once, what injection needs from the configuration.
func (c *Config) prepare() (*derived, error) {
	c.memo.once.Do(func() {
		c.memo.derived, c.memo.err = derive(c)
	})
	return c.memo.derived, c.memo.err
}

// configHash is Hash's digest; it cannot fail for a Config, which only holds
// strings, booleans, maps and resource quantities.
func configHash(c *Config) string {
	b, err := json.Marshal(c)
	if err != nil {
		b = []byte(err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// ProxyConfig is the subset of Istio's ProxyConfig the operator sets as mesh
// defaults. JSON names follow Istio's protobuf JSON names.
type ProxyConfig struct {
	DiscoveryAddress                string            `json:"discoveryAddress,omitempty"`
	ProxyMetadata                   map[string]string `json:"proxyMetadata,omitempty"`
	Concurrency                     *int32            `json:"concurrency,omitempty"`
	TerminationDrainDuration        string            `json:"terminationDrainDuration,omitempty"`
	HoldApplicationUntilProxyStarts *bool             `json:"holdApplicationUntilProxyStarts,omitempty"`
	Tracing                         *ProxyTracing     `json:"tracing,omitempty"`
}

// ProxyTracing is the subset of ProxyConfig's tracing the operator sets.
type ProxyTracing struct {
	// Sampling is the percentage of requests traced, 0 to 100.
	Sampling *float64 `json:"sampling,omitempty"`
}

// TrafficCapture are the mesh-wide defaults of istio-init's redirection, by
// the annotation that overrides each. Nil or empty values keep Istio's
// defaults (include every outbound IP and every inbound port, exclude none).
type TrafficCapture struct {
	IncludeOutboundIPRanges *string `json:"includeOutboundIPRanges,omitempty"`
	ExcludeOutboundIPRanges string  `json:"excludeOutboundIPRanges,omitempty"`
	IncludeInboundPorts     *string `json:"includeInboundPorts,omitempty"`
	ExcludeInboundPorts     string  `json:"excludeInboundPorts,omitempty"`
	IncludeOutboundPorts    string  `json:"includeOutboundPorts,omitempty"`
	ExcludeOutboundPorts    string  `json:"excludeOutboundPorts,omitempty"`
}
