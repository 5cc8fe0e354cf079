package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The mesh configuration users set: a typed subset of Istio's MeshConfig
// (istio.io/api mesh/v1alpha1), with the same field names as its protobuf
// JSON, rendered into the revision's istio[-<rev>] ConfigMap (key mesh).
// Istio's own Go types are protobuf messages, which cannot give a structural
// CRD schema; these mirror the fields and keep Kubernetes' validation.

// AccessLogEncoding is the format of Envoy access logs.
// +kubebuilder:validation:Enum=TEXT;JSON
type AccessLogEncoding string

// OutboundTrafficPolicyMode says what sidecars do with traffic to unknown destinations.
// +kubebuilder:validation:Enum=ALLOW_ANY;REGISTRY_ONLY
type OutboundTrafficPolicyMode string

// MeshConfigSpec is the subset of Istio's MeshConfig users set most.
// +kubebuilder:validation:XValidation:rule="!has(self.defaultProviders) || !has(self.defaultProviders.tracing) || self.defaultProviders.tracing.all(p, has(self.extensionProviders) && self.extensionProviders.exists(e, e.name == p && has(e.opentelemetry)))",message="spec.meshConfig.defaultProviders.tracing must name opentelemetry providers of spec.meshConfig.extensionProviders"
type MeshConfigSpec struct {
	// AccessLogFile is where Envoy writes access logs, e.g. /dev/stdout; empty turns them off.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	AccessLogFile *string `json:"accessLogFile,omitempty"`

	// AccessLogEncoding is TEXT or JSON.
	// +optional
	AccessLogEncoding AccessLogEncoding `json:"accessLogEncoding,omitempty"`

	// AccessLogFormat is Envoy's access log format string.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	AccessLogFormat string `json:"accessLogFormat,omitempty"`

	// OutboundTrafficPolicy is ALLOW_ANY (default) or REGISTRY_ONLY.
	// +optional
	OutboundTrafficPolicy OutboundTrafficPolicyMode `json:"outboundTrafficPolicy,omitempty"`

	// TrustDomain is the SPIFFE trust domain of workload identities.
	// +kubebuilder:default="cluster.local"
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?$`
	// +optional
	TrustDomain string `json:"trustDomain,omitempty"`

	// TrustDomainAliases are other trust domains whose workload identities
	// this mesh trusts as its own (for example the old one, while migrating
	// to a new trust domain): authorization policies naming a principal of
	// the trust domain also match it in each alias.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?$`
	// +listType=set
	// +optional
	TrustDomainAliases []string `json:"trustDomainAliases,omitempty"`

	// EnablePrometheusMerge merges application and Envoy metrics on the sidecar's port 15020.
	// +kubebuilder:default=true
	// +optional
	EnablePrometheusMerge *bool `json:"enablePrometheusMerge,omitempty"`

	// EnableTracing turns Envoy tracing on (true, Istio's default) or off
	// for every proxy. Tracing through the Telemetry API's providers
	// (extensionProviders, defaultProviders.tracing) is configured there.
	// +kubebuilder:default=true
	// +optional
	EnableTracing *bool `json:"enableTracing,omitempty"`

	// ExtensionProviders are the tracing and external authorization
	// back ends that Telemetry resources, AuthorizationPolicies with action
	// CUSTOM and defaultProviders refer to by name. Setting them replaces
	// the demo profile's providers.
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=name
	// +optional
	ExtensionProviders []ExtensionProvider `json:"extensionProviders,omitempty"`

	// DefaultProviders are the providers used by workloads that no Telemetry
	// resource configures. Unset lists keep Istio's defaults (metrics:
	// prometheus).
	// +optional
	DefaultProviders *DefaultProviders `json:"defaultProviders,omitempty"`

	// DiscoverySelectors restrict the namespaces istiod watches (services,
	// endpoints, configuration) to those matching any of the selectors; the
	// control plane namespace is always watched. Empty watches every
	// namespace. Pods in other namespaces can still be injected.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	DiscoverySelectors []metav1.LabelSelector `json:"discoverySelectors,omitempty"`

	// LocalityLbSetting is the mesh-wide locality load balancing; a
	// DestinationRule's trafficPolicy.loadBalancer.localityLbSetting overrides it.
	// +optional
	LocalityLbSetting *LocalityLoadBalancerSetting `json:"localityLbSetting,omitempty"`

	// DefaultConfig is the default proxy configuration; pods can override it
	// with the proxy.istio.io/config annotation.
	// +optional
	DefaultConfig DefaultProxyConfig `json:"defaultConfig,omitempty"`
}

// DefaultProxyConfig is the subset of Istio's ProxyConfig users set most.
type DefaultProxyConfig struct {
	// ProxyMetadata are extra environment variables of every istio-proxy.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	ProxyMetadata map[string]string `json:"proxyMetadata,omitempty"`

	// Concurrency is the number of Envoy worker threads; 0 means one per CPU.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=256
	// +optional
	Concurrency *int32 `json:"concurrency,omitempty"`

	// TerminationDrainDuration is how long Envoy drains connections on shutdown.
	// +optional
	TerminationDrainDuration *metav1.Duration `json:"terminationDrainDuration,omitempty"`

	// HoldApplicationUntilProxyStarts delays application containers until
	// the proxy is ready. When set it wins over
	// spec.injection.holdApplicationUntilProxyStarts; a pod's
	// proxy.istio.io/config annotation wins over both.
	// +optional
	HoldApplicationUntilProxyStarts *bool `json:"holdApplicationUntilProxyStarts,omitempty"`

	// Tracing is the proxies' default tracing configuration.
	// +optional
	Tracing *ProxyTracing `json:"tracing,omitempty"`
}

// ProxyTracing is the subset of Istio's ProxyConfig tracing users set.
type ProxyTracing struct {
	// Sampling is the percentage of requests traced, 0 to 100 with up to two
	// decimals (e.g. "1" or "0.5"), by every tracing provider that does not
	// set its own (a Telemetry resource's randomSamplingPercentage wins).
	// Unset leaves istiod's PILOT_TRACE_SAMPLING (the profile's: 1, demo 100).
	// It is a string because Kubernetes APIs carry no floating point numbers.
	// +kubebuilder:validation:MaxLength=6
	// +kubebuilder:validation:XValidation:rule="self.matches('^(100([.]0{1,2})?|[0-9]{1,2}([.][0-9]{1,2})?)$')",message="spec.meshConfig.defaultConfig.tracing.sampling must be a percentage from 0 to 100 with at most two decimals, e.g. \"1\" or \"0.5\""
	// +optional
	Sampling string `json:"sampling,omitempty"`
}

// ExtensionProvider is one of Istio's MeshConfig extensionProviders: a name
// and exactly one kind.
// +kubebuilder:validation:XValidation:rule="[has(self.opentelemetry), has(self.envoyExtAuthzHttp), has(self.envoyExtAuthzGrpc)].filter(x, x).size() == 1",message="spec.meshConfig.extensionProviders[] must set exactly one of opentelemetry, envoyExtAuthzHttp, envoyExtAuthzGrpc"
type ExtensionProvider struct {
	// Name other resources use to refer to the provider.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$`
	// +required
	Name string `json:"name"`

	// Opentelemetry sends traces to an OpenTelemetry collector (OTLP).
	// +optional
	Opentelemetry *OpenTelemetryTracingProvider `json:"opentelemetry,omitempty"`

	// EnvoyExtAuthzHttp is an external authorizer called over HTTP
	// (AuthorizationPolicy action CUSTOM).
	// +optional
	EnvoyExtAuthzHttp *EnvoyExternalAuthorizationHTTPProvider `json:"envoyExtAuthzHttp,omitempty"`

	// EnvoyExtAuthzGrpc is an external authorizer called over gRPC
	// (Envoy's ext_authz service; AuthorizationPolicy action CUSTOM).
	// +optional
	EnvoyExtAuthzGrpc *EnvoyExternalAuthorizationGRPCProvider `json:"envoyExtAuthzGrpc,omitempty"`
}

// ProviderService is where a provider listens.
type ProviderService struct {
	// Service is the provider's address: a fully qualified host name such as
	// otel-collector.observability.svc.cluster.local, or
	// <namespace>/<host> to pick the namespace of a ServiceEntry.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Service string `json:"service"`

	// Port of the service.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +required
	Port int32 `json:"port"`
}

// OpenTelemetryTracingProvider sends traces over OTLP.
type OpenTelemetryTracingProvider struct {
	ProviderService `json:",inline"`

	// MaxTagLength is the longest a tag value may be; longer ones are truncated. 0 keeps Envoy's default.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +optional
	MaxTagLength int32 `json:"maxTagLength,omitempty"`

	// HTTP sends the traces over OTLP/HTTP instead of OTLP/gRPC.
	// +optional
	HTTP *OpenTelemetryHTTPService `json:"http,omitempty"`
}

// OpenTelemetryHTTPService is OTLP over HTTP.
type OpenTelemetryHTTPService struct {
	// Path of the OTLP endpoint, e.g. /v1/traces.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	// +optional
	Path string `json:"path,omitempty"`

	// Timeout of each export request.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// EnvoyExternalAuthorizationHTTPProvider is an ext_authz server called over HTTP.
type EnvoyExternalAuthorizationHTTPProvider struct {
	ProviderService `json:",inline"`

	// Timeout of each check; Istio's default is 600s.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// PathPrefix is prepended to the path of the check request.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	// +optional
	PathPrefix string `json:"pathPrefix,omitempty"`

	// FailOpen lets requests through when the authorizer cannot be reached
	// or answers 5xx; false (the default) refuses them.
	// +optional
	FailOpen bool `json:"failOpen,omitempty"`

	// StatusOnError is the HTTP status returned when the authorizer fails
	// and FailOpen is false; Istio's default is 403.
	// +kubebuilder:validation:Pattern=`^[1-5][0-9][0-9]$`
	// +optional
	StatusOnError string `json:"statusOnError,omitempty"`

	// IncludeRequestHeadersInCheck are the request headers sent to the authorizer.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=atomic
	// +optional
	IncludeRequestHeadersInCheck []string `json:"includeRequestHeadersInCheck,omitempty"`

	// IncludeAdditionalHeadersInCheck are headers added to the check request.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	IncludeAdditionalHeadersInCheck map[string]string `json:"includeAdditionalHeadersInCheck,omitempty"`

	// HeadersToUpstreamOnAllow are the authorizer's response headers added
	// to the request sent to the application when it allows it.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=atomic
	// +optional
	HeadersToUpstreamOnAllow []string `json:"headersToUpstreamOnAllow,omitempty"`

	// HeadersToDownstreamOnDeny are the authorizer's response headers sent
	// to the client when it denies the request.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=atomic
	// +optional
	HeadersToDownstreamOnDeny []string `json:"headersToDownstreamOnDeny,omitempty"`

	// HeadersToDownstreamOnAllow are the authorizer's response headers sent
	// to the client when it allows the request.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=atomic
	// +optional
	HeadersToDownstreamOnAllow []string `json:"headersToDownstreamOnAllow,omitempty"`

	// IncludeRequestBodyInCheck sends (part of) the request body to the authorizer.
	// +optional
	IncludeRequestBodyInCheck *ExternalAuthorizationRequestBody `json:"includeRequestBodyInCheck,omitempty"`
}

// EnvoyExternalAuthorizationGRPCProvider is an ext_authz server called over gRPC.
type EnvoyExternalAuthorizationGRPCProvider struct {
	ProviderService `json:",inline"`

	// Timeout of each check; Istio's default is 600s.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// FailOpen lets requests through when the authorizer cannot be reached;
	// false (the default) refuses them.
	// +optional
	FailOpen bool `json:"failOpen,omitempty"`

	// StatusOnError is the HTTP status returned when the authorizer fails
	// and FailOpen is false; Istio's default is 403.
	// +kubebuilder:validation:Pattern=`^[1-5][0-9][0-9]$`
	// +optional
	StatusOnError string `json:"statusOnError,omitempty"`

	// IncludeRequestBodyInCheck sends (part of) the request body to the authorizer.
	// +optional
	IncludeRequestBodyInCheck *ExternalAuthorizationRequestBody `json:"includeRequestBodyInCheck,omitempty"`
}

// ExternalAuthorizationRequestBody says how much of the body a check carries.
type ExternalAuthorizationRequestBody struct {
	// MaxRequestBytes is the most body bytes buffered and sent.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxRequestBytes int32 `json:"maxRequestBytes,omitempty"`

	// AllowPartialMessage sends the first MaxRequestBytes of a longer body
	// instead of answering 413.
	// +optional
	AllowPartialMessage bool `json:"allowPartialMessage,omitempty"`

	// PackAsBytes sends the body as raw bytes (gRPC only) instead of UTF-8.
	// +optional
	PackAsBytes bool `json:"packAsBytes,omitempty"`
}

// DefaultProviders name the providers of workloads no Telemetry resource configures.
// +kubebuilder:validation:XValidation:rule="!has(self.metrics) || self.metrics.all(m, m == 'prometheus')",message="spec.meshConfig.defaultProviders.metrics may only name prometheus"
type DefaultProviders struct {
	// Tracing providers, by name in extensionProviders (opentelemetry kind).
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=63
	// +listType=set
	// +optional
	Tracing []string `json:"tracing,omitempty"`

	// Metrics providers: prometheus (Istio's built-in, the default), or
	// empty to turn the default metrics off.
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=63
	// +listType=set
	// +optional
	Metrics []string `json:"metrics,omitempty"`

	// AccessLogging providers: envoy (Istio's built-in file access log,
	// configured by accessLogFile), or providers of extensionProviders.
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=63
	// +listType=set
	// +optional
	AccessLogging []string `json:"accessLogging,omitempty"`
}

// LocalityLoadBalancerSetting is Istio's locality load balancing
// (networking v1alpha3 LocalityLoadBalancerSetting). Localities are
// region/zone/subzone; * matches any.
// +kubebuilder:validation:XValidation:rule="!has(self.distribute) || !has(self.failover)",message="spec.meshConfig.localityLbSetting: set distribute or failover, not both"
type LocalityLoadBalancerSetting struct {
	// Enabled turns locality load balancing on or off; unset leaves it on
	// when outlier detection is configured (Istio's behaviour).
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// Distribute sends the traffic from a locality to others by weight.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Distribute []LocalityDistribute `json:"distribute,omitempty"`

	// Failover says which region takes the traffic when a region's
	// endpoints are unhealthy.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Failover []LocalityFailover `json:"failover,omitempty"`

	// FailoverPriority are pod labels ordering the failover: endpoints
	// matching more of the client's labels, in order, are preferred.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=317
	// +listType=atomic
	// +optional
	FailoverPriority []string `json:"failoverPriority,omitempty"`
}

// LocalityDistribute is the weighted spread of one locality's traffic.
type LocalityDistribute struct {
	// From is the originating locality, e.g. us-west/zone1/*.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	From string `json:"from"`

	// To maps destination localities to weights, which must add up to 100.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=64
	// +required
	To map[string]int32 `json:"to"`
}

// LocalityFailover is the region that takes a region's traffic.
// +kubebuilder:validation:XValidation:rule="self.from != self.to",message="spec.meshConfig.localityLbSetting.failover[].to must differ from from"
type LocalityFailover struct {
	// From is the region whose endpoints failed.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	From string `json:"from"`

	// To is the region that takes the traffic.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	To string `json:"to"`
}

// TrafficCaptureSpec are the mesh-wide defaults of istio-init's redirection.
// Each is the value of the pod annotation named beside it, which overrides it.
type TrafficCaptureSpec struct {
	// IncludeOutboundIPRanges are the CIDRs whose outbound traffic goes
	// through the sidecar, comma separated; * (Istio's default) is all
	// (traffic.sidecar.istio.io/includeOutboundIPRanges).
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	IncludeOutboundIPRanges *string `json:"includeOutboundIPRanges,omitempty"`

	// ExcludeOutboundIPRanges are CIDRs whose outbound traffic bypasses the
	// sidecar, comma separated (traffic.sidecar.istio.io/excludeOutboundIPRanges).
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	ExcludeOutboundIPRanges string `json:"excludeOutboundIPRanges,omitempty"`

	// IncludeInboundPorts are the inbound ports redirected to the sidecar,
	// comma separated; * (Istio's default) is all, empty is none
	// (traffic.sidecar.istio.io/includeInboundPorts).
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	IncludeInboundPorts *string `json:"includeInboundPorts,omitempty"`

	// ExcludeInboundPorts are inbound ports that bypass the sidecar, comma
	// separated (traffic.sidecar.istio.io/excludeInboundPorts); 15090,
	// 15021 and the status port always do.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	ExcludeInboundPorts string `json:"excludeInboundPorts,omitempty"`

	// IncludeOutboundPorts are outbound ports redirected to the sidecar
	// whatever their destination address, comma separated
	// (traffic.sidecar.istio.io/includeOutboundPorts).
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	IncludeOutboundPorts string `json:"includeOutboundPorts,omitempty"`

	// ExcludeOutboundPorts are outbound ports that bypass the sidecar,
	// comma separated (traffic.sidecar.istio.io/excludeOutboundPorts).
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	ExcludeOutboundPorts string `json:"excludeOutboundPorts,omitempty"`
}
