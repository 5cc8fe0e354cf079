package render

import (
	"cmp"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
)

// Defaults Istio applies when the MeshInstall leaves a field empty.
const (
	defaultTrustDomain   = "cluster.local"
	defaultClusterDomain = "cluster.local"
	defaultClusterName   = "Kubernetes"
	defaultHub           = "docker.io/istio"
)

// meshConfig is the part of Istio's MeshConfig meshkeeper writes into the
// istio[-<rev>] ConfigMap: what the istiod chart always writes (trust domain,
// root namespace, default providers, discovery address, prometheus merge)
// and what spec.meshConfig and the profile set. JSON names are Istio's.
type meshConfig struct {
	AccessLogEncoding     string                       `json:"accessLogEncoding,omitempty"`
	AccessLogFile         string                       `json:"accessLogFile,omitempty"`
	AccessLogFormat       string                       `json:"accessLogFormat,omitempty"`
	DefaultConfig         meshDefaultConfig            `json:"defaultConfig"`
	DefaultProviders      defaultProviders             `json:"defaultProviders"`
	DiscoverySelectors    []metav1.LabelSelector       `json:"discoverySelectors,omitempty"`
	EnablePrometheusMerge bool                         `json:"enablePrometheusMerge"`
	EnableTracing         bool                         `json:"enableTracing"`
	ExtensionProviders    []extensionProvider          `json:"extensionProviders,omitempty"`
	LocalityLbSetting     *localityLoadBalancerSetting `json:"localityLbSetting,omitempty"`
	OutboundTrafficPolicy *outboundTrafficPolicy       `json:"outboundTrafficPolicy,omitempty"`
	RootNamespace         string                       `json:"rootNamespace"`
	TrustDomain           string                       `json:"trustDomain"`
	TrustDomainAliases    []string                     `json:"trustDomainAliases,omitempty"`
}

// meshDefaultConfig is defaultConfig: the proxy defaults the injector also
// holds, plus the mesh ID the chart writes when one is set.
type meshDefaultConfig struct {
	inject.ProxyConfig
	MeshID string `json:"meshId,omitempty"`
}

// defaultProviders: the chart enables the prometheus metrics provider
// whenever telemetry is on, which it is by default; a user's list replaces
// it (Helm's mergeOverwrite replaces lists), the other kinds are the user's.
type defaultProviders struct {
	Tracing       []string `json:"tracing,omitempty"`
	Metrics       []string `json:"metrics"`
	AccessLogging []string `json:"accessLogging,omitempty"`
}

type outboundTrafficPolicy struct {
	Mode string `json:"mode"`
}

// extensionProvider is one of MeshConfig's extensionProviders: the kinds
// users set (spec.meshConfig.extensionProviders) and the ones the demo
// profile declares.
type extensionProvider struct {
	Name              string           `json:"name"`
	EnvoyOtelAls      *providerAddress `json:"envoyOtelAls,omitempty"`
	Opentelemetry     *otelProvider    `json:"opentelemetry,omitempty"`
	Skywalking        *providerAddress `json:"skywalking,omitempty"`
	EnvoyExtAuthzHTTP *extAuthzHTTP    `json:"envoyExtAuthzHttp,omitempty"`
	EnvoyExtAuthzGRPC *extAuthzGRPC    `json:"envoyExtAuthzGrpc,omitempty"`
}

type providerAddress struct {
	Port    int32  `json:"port"`
	Service string `json:"service"`
}

type otelProvider struct {
	providerAddress
	MaxTagLength int32     `json:"maxTagLength,omitempty"`
	HTTP         *otelHTTP `json:"http,omitempty"`
}

type otelHTTP struct {
	Path    string `json:"path,omitempty"`
	Timeout string `json:"timeout,omitempty"`
}

type extAuthzHTTP struct {
	providerAddress
	Timeout                         string            `json:"timeout,omitempty"`
	PathPrefix                      string            `json:"pathPrefix,omitempty"`
	FailOpen                        bool              `json:"failOpen,omitempty"`
	StatusOnError                   string            `json:"statusOnError,omitempty"`
	IncludeRequestHeadersInCheck    []string          `json:"includeRequestHeadersInCheck,omitempty"`
	IncludeAdditionalHeadersInCheck map[string]string `json:"includeAdditionalHeadersInCheck,omitempty"`
	HeadersToUpstreamOnAllow        []string          `json:"headersToUpstreamOnAllow,omitempty"`
	HeadersToDownstreamOnDeny       []string          `json:"headersToDownstreamOnDeny,omitempty"`
	HeadersToDownstreamOnAllow      []string          `json:"headersToDownstreamOnAllow,omitempty"`
	IncludeRequestBodyInCheck       *requestBody      `json:"includeRequestBodyInCheck,omitempty"`
}

type extAuthzGRPC struct {
	providerAddress
	Timeout                   string       `json:"timeout,omitempty"`
	FailOpen                  bool         `json:"failOpen,omitempty"`
	StatusOnError             string       `json:"statusOnError,omitempty"`
	IncludeRequestBodyInCheck *requestBody `json:"includeRequestBodyInCheck,omitempty"`
}

type requestBody struct {
	MaxRequestBytes     int32 `json:"maxRequestBytes,omitempty"`
	AllowPartialMessage bool  `json:"allowPartialMessage,omitempty"`
	PackAsBytes         bool  `json:"packAsBytes,omitempty"`
}

// localityLoadBalancerSetting is networking v1alpha3's, as MeshConfig holds it.
type localityLoadBalancerSetting struct {
	Distribute       []meshv1alpha1.LocalityDistribute `json:"distribute,omitempty"`
	Failover         []meshv1alpha1.LocalityFailover   `json:"failover,omitempty"`
	FailoverPriority []string                          `json:"failoverPriority,omitempty"`
	Enabled          *bool                             `json:"enabled,omitempty"`
}

func trustDomain(mi *meshv1alpha1.MeshInstall) string {
	if td := mi.Spec.MeshConfig.TrustDomain; td != "" {
		return td
	}
	return defaultTrustDomain
}

// clusterDomain is spec.cluster.domain, Istio's values.global.proxy.clusterDomain.
func clusterDomain(mi *meshv1alpha1.MeshInstall) string {
	return cmp.Or(mi.Spec.Cluster.Domain, defaultClusterDomain)
}

func prometheusMerge(mi *meshv1alpha1.MeshInstall) bool {
	return ptr.Deref(mi.Spec.MeshConfig.EnablePrometheusMerge, true)
}

// holdApplication is the mesh's one holdApplicationUntilProxyStarts:
// spec.meshConfig.defaultConfig's when set, else spec.injection's. It goes
// into defaultConfig, so a pod's proxy.istio.io/config can override it
// either way; nil leaves Istio's default (false).
func holdApplication(mi *meshv1alpha1.MeshInstall) *bool {
	if h := mi.Spec.MeshConfig.DefaultConfig.HoldApplicationUntilProxyStarts; h != nil {
		return ptr.To(*h)
	}
	if h := mi.Spec.Injection.HoldApplicationUntilProxyStarts; h != nil {
		return ptr.To(*h)
	}
	return nil
}

// proxyDefaults is the mesh's defaultConfig, shared by the mesh config and
// the injection config so they cannot disagree.
func proxyDefaults(mi *meshv1alpha1.MeshInstall, rev Revision) inject.ProxyConfig {
	dc := mi.Spec.MeshConfig.DefaultConfig
	pc := inject.ProxyConfig{
		DiscoveryAddress:                DiscoveryAddress(rev.Name, namespace(mi)),
		Concurrency:                     dc.Concurrency,
		HoldApplicationUntilProxyStarts: holdApplication(mi),
	}
	if len(dc.ProxyMetadata) > 0 {
		pc.ProxyMetadata = make(map[string]string, len(dc.ProxyMetadata))
		for k, v := range dc.ProxyMetadata {
			pc.ProxyMetadata[k] = v
		}
	}
	if dc.TerminationDrainDuration != nil {
		pc.TerminationDrainDuration = protoDuration(*dc.TerminationDrainDuration)
	}
	if t := dc.Tracing; t != nil && t.Sampling != "" {
		// The CRD admits only 0-100 with two decimals; a value that
		// escaped it is left out rather than written wrong.
		if f, err := strconv.ParseFloat(t.Sampling, 64); err == nil {
			pc.Tracing = &inject.ProxyTracing{Sampling: &f}
		}
	}
	return pc
}

// protoDuration formats d as protobuf's JSON Duration ("90s", "1.5s"),
// which is what Istio parses; Go's "1m30s" would be rejected.
func protoDuration(d metav1.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

func optionalDuration(d *metav1.Duration) string {
	if d == nil {
		return ""
	}
	return protoDuration(*d)
}

func buildMeshConfig(mi *meshv1alpha1.MeshInstall, rev Revision, p profile) meshConfig {
	spec := mi.Spec.MeshConfig
	mc := meshConfig{
		AccessLogEncoding:     string(spec.AccessLogEncoding),
		AccessLogFile:         ptr.Deref(spec.AccessLogFile, p.accessLogFile),
		AccessLogFormat:       spec.AccessLogFormat,
		DefaultConfig:         meshDefaultConfig{ProxyConfig: proxyDefaults(mi, rev), MeshID: mi.Spec.Cluster.MeshID},
		DefaultProviders:      buildDefaultProviders(spec.DefaultProviders),
		DiscoverySelectors:    spec.DiscoverySelectors,
		EnablePrometheusMerge: prometheusMerge(mi),
		EnableTracing:         ptr.Deref(spec.EnableTracing, true),
		ExtensionProviders:    p.extensionProviders(clusterDomain(mi)),
		RootNamespace:         namespace(mi),
		TrustDomain:           trustDomain(mi),
		TrustDomainAliases:    spec.TrustDomainAliases,
	}
	if len(spec.ExtensionProviders) > 0 {
		// Helm's mergeOverwrite replaces the profile's list with the user's.
		mc.ExtensionProviders = buildExtensionProviders(spec.ExtensionProviders)
	}
	if spec.OutboundTrafficPolicy != "" {
		mc.OutboundTrafficPolicy = &outboundTrafficPolicy{Mode: string(spec.OutboundTrafficPolicy)}
	}
	if l := spec.LocalityLbSetting; l != nil {
		mc.LocalityLbSetting = &localityLoadBalancerSetting{
			Distribute: l.Distribute, Failover: l.Failover, FailoverPriority: l.FailoverPriority, Enabled: l.Enabled,
		}
	}
	return mc
}

func buildDefaultProviders(dp *meshv1alpha1.DefaultProviders) defaultProviders {
	out := defaultProviders{Metrics: []string{"prometheus"}}
	if dp == nil {
		return out
	}
	if dp.Metrics != nil {
		out.Metrics = dp.Metrics
	}
	out.Tracing, out.AccessLogging = dp.Tracing, dp.AccessLogging
	return out
}

func buildExtensionProviders(in []meshv1alpha1.ExtensionProvider) []extensionProvider {
	out := make([]extensionProvider, 0, len(in))
	for _, e := range in {
		p := extensionProvider{Name: e.Name}
		if o := e.Opentelemetry; o != nil {
			p.Opentelemetry = &otelProvider{providerAddress: address(o.ProviderService), MaxTagLength: o.MaxTagLength}
			if h := o.HTTP; h != nil {
				p.Opentelemetry.HTTP = &otelHTTP{Path: h.Path, Timeout: optionalDuration(h.Timeout)}
			}
		}
		if a := e.EnvoyExtAuthzHttp; a != nil {
			p.EnvoyExtAuthzHTTP = &extAuthzHTTP{
				providerAddress:                 address(a.ProviderService),
				Timeout:                         optionalDuration(a.Timeout),
				PathPrefix:                      a.PathPrefix,
				FailOpen:                        a.FailOpen,
				StatusOnError:                   a.StatusOnError,
				IncludeRequestHeadersInCheck:    a.IncludeRequestHeadersInCheck,
				IncludeAdditionalHeadersInCheck: a.IncludeAdditionalHeadersInCheck,
				HeadersToUpstreamOnAllow:        a.HeadersToUpstreamOnAllow,
				HeadersToDownstreamOnDeny:       a.HeadersToDownstreamOnDeny,
				HeadersToDownstreamOnAllow:      a.HeadersToDownstreamOnAllow,
				IncludeRequestBodyInCheck:       body(a.IncludeRequestBodyInCheck),
			}
		}
		if a := e.EnvoyExtAuthzGrpc; a != nil {
			p.EnvoyExtAuthzGRPC = &extAuthzGRPC{
				providerAddress:           address(a.ProviderService),
				Timeout:                   optionalDuration(a.Timeout),
				FailOpen:                  a.FailOpen,
				StatusOnError:             a.StatusOnError,
				IncludeRequestBodyInCheck: body(a.IncludeRequestBodyInCheck),
			}
		}
		out = append(out, p)
	}
	return out
}

func address(s meshv1alpha1.ProviderService) providerAddress {
	return providerAddress{Service: s.Service, Port: s.Port}
}

func body(b *meshv1alpha1.ExternalAuthorizationRequestBody) *requestBody {
	if b == nil {
		return nil
	}
	return &requestBody{MaxRequestBytes: b.MaxRequestBytes, AllowPartialMessage: b.AllowPartialMessage, PackAsBytes: b.PackAsBytes}
}

// meshNetworks is istiod's MeshNetworks (istio.io/api mesh/v1alpha1
// network.proto) for this cluster: on a named network, the endpoints of
// this cluster's registry (named by its cluster ID) are on it. No gateway
// is listed: a single-network mesh needs none, and the east-west gateways
// of a multi-network mesh are found by their topology.istio.io/network label.
type meshNetworks struct {
	Networks map[string]meshNetwork `json:"networks"`
}

type meshNetwork struct {
	Endpoints []networkEndpoints `json:"endpoints"`
	Gateways  []any              `json:"gateways"`
}

type networkEndpoints struct {
	FromRegistry string `json:"fromRegistry"`
}

// buildMeshNetworks is empty on a single unnamed network, as the chart
// writes it. istiod refuses a meshNetworks whose fromRegistry is not a
// DNS-1123 label, which the default cluster ID (Kubernetes) is not: the
// network then reaches istiod from the control plane namespace's
// topology.istio.io/network label alone, which has the same effect here.
func buildMeshNetworks(mi *meshv1alpha1.MeshInstall) meshNetworks {
	out := meshNetworks{Networks: map[string]meshNetwork{}}
	network, cluster := mi.Spec.Cluster.Network, cmp.Or(mi.Spec.Cluster.Name, defaultClusterName)
	if network == "" || len(validation.IsDNS1123Label(cluster)) > 0 {
		return out
	}
	out.Networks[network] = meshNetwork{Endpoints: []networkEndpoints{{FromRegistry: cluster}}, Gateways: []any{}}
	return out
}

// meshConfigMap is istio[-<rev>]: the mesh config istiod watches (key mesh)
// and the mesh networks of split-horizon EDS (key meshNetworks).
func meshConfigMap(mi *meshv1alpha1.MeshInstall, rev Revision, p profile) (*corev1.ConfigMap, error) {
	mesh, err := yaml.Marshal(buildMeshConfig(mi, rev, p))
	if err != nil {
		return nil, fmt.Errorf("encoding mesh config: %w", err)
	}
	networks, err := yaml.Marshal(buildMeshNetworks(mi))
	if err != nil {
		return nil, fmt.Errorf("encoding mesh networks: %w", err)
	}
	return &corev1.ConfigMap{
		TypeMeta: typeMeta(corev1.SchemeGroupVersion, "ConfigMap"),
		ObjectMeta: objectMeta(MeshConfigMapName(rev.Name), namespace(mi),
			with(istiodLabels(mi, rev), labelComponent, componentPilot)),
		Data: map[string]string{
			"mesh":         string(mesh),
			"meshNetworks": string(networks),
		},
	}, nil
}
