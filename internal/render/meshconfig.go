package render

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
)

// Defaults Istio applies when the MeshInstall leaves a field empty.
const (
	defaultTrustDomain = "cluster.local"
	defaultClusterName = "Kubernetes"
	defaultHub         = "docker.io/istio"
)

// meshConfig is the part of Istio's MeshConfig meshkeeper writes into the
// istio[-<rev>] ConfigMap: what the istiod chart always writes (trust domain,
// root namespace, default providers, discovery address, prometheus merge)
// and what spec.meshConfig and the profile set. JSON names are Istio's.
type meshConfig struct {
	AccessLogEncoding     string                 `json:"accessLogEncoding,omitempty"`
	AccessLogFile         string                 `json:"accessLogFile,omitempty"`
	AccessLogFormat       string                 `json:"accessLogFormat,omitempty"`
	DefaultConfig         meshDefaultConfig      `json:"defaultConfig"`
	DefaultProviders      defaultProviders       `json:"defaultProviders"`
	EnablePrometheusMerge bool                   `json:"enablePrometheusMerge"`
	EnableTracing         *bool                  `json:"enableTracing,omitempty"`
	ExtensionProviders    []extensionProvider    `json:"extensionProviders,omitempty"`
	OutboundTrafficPolicy *outboundTrafficPolicy `json:"outboundTrafficPolicy,omitempty"`
	RootNamespace         string                 `json:"rootNamespace"`
	TrustDomain           string                 `json:"trustDomain"`
}

// meshDefaultConfig is defaultConfig: the proxy defaults the injector also
// holds, plus the mesh ID the chart writes when one is set.
type meshDefaultConfig struct {
	inject.ProxyConfig
	MeshID string `json:"meshId,omitempty"`
}

// defaultProviders: the chart enables the prometheus metrics provider
// whenever telemetry is on, which it is by default.
type defaultProviders struct {
	Metrics []string `json:"metrics"`
}

type outboundTrafficPolicy struct {
	Mode string `json:"mode"`
}

// extensionProvider is one of MeshConfig's extensionProviders; only the
// kinds the demo profile uses are modelled.
type extensionProvider struct {
	Name          string           `json:"name"`
	EnvoyOtelAls  *providerAddress `json:"envoyOtelAls,omitempty"`
	Opentelemetry *providerAddress `json:"opentelemetry,omitempty"`
	Skywalking    *providerAddress `json:"skywalking,omitempty"`
}

type providerAddress struct {
	Port    int32  `json:"port"`
	Service string `json:"service"`
}

func trustDomain(mi *meshv1alpha1.MeshInstall) string {
	if td := mi.Spec.MeshConfig.TrustDomain; td != "" {
		return td
	}
	return defaultTrustDomain
}

func prometheusMerge(mi *meshv1alpha1.MeshInstall) bool {
	return ptr.Deref(mi.Spec.MeshConfig.EnablePrometheusMerge, true)
}

// proxyDefaults is the mesh's defaultConfig, shared by the mesh config and
// the injection config so they cannot disagree.
func proxyDefaults(mi *meshv1alpha1.MeshInstall, rev Revision) inject.ProxyConfig {
	dc := mi.Spec.MeshConfig.DefaultConfig
	pc := inject.ProxyConfig{
		DiscoveryAddress:                DiscoveryAddress(rev.Name, namespace(mi)),
		Concurrency:                     dc.Concurrency,
		HoldApplicationUntilProxyStarts: dc.HoldApplicationUntilProxyStarts,
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
	return pc
}

// protoDuration formats d as protobuf's JSON Duration ("90s", "1.5s"),
// which is what Istio parses; Go's "1m30s" would be rejected.
func protoDuration(d metav1.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

func buildMeshConfig(mi *meshv1alpha1.MeshInstall, rev Revision, p profile) meshConfig {
	spec := mi.Spec.MeshConfig
	mc := meshConfig{
		AccessLogEncoding:     string(spec.AccessLogEncoding),
		AccessLogFile:         ptr.Deref(spec.AccessLogFile, p.accessLogFile),
		AccessLogFormat:       spec.AccessLogFormat,
		DefaultConfig:         meshDefaultConfig{ProxyConfig: proxyDefaults(mi, rev), MeshID: mi.Spec.Cluster.MeshID},
		DefaultProviders:      defaultProviders{Metrics: []string{"prometheus"}},
		EnablePrometheusMerge: prometheusMerge(mi),
		ExtensionProviders:    p.extensionProviders,
		RootNamespace:         namespace(mi),
		TrustDomain:           trustDomain(mi),
	}
	// Istio's default is true and the API's bool cannot say "unset", so only
	// an explicit true is written: leaving it out keeps Istio's default.
	if spec.EnableTracing {
		mc.EnableTracing = ptr.To(true)
	}
	if spec.OutboundTrafficPolicy != "" {
		mc.OutboundTrafficPolicy = &outboundTrafficPolicy{Mode: string(spec.OutboundTrafficPolicy)}
	}
	return mc
}

// meshConfigMap is istio[-<rev>]: the mesh config istiod watches (key mesh)
// and the mesh networks of split-horizon EDS (key meshNetworks, empty on a
// single network, as the chart writes it).
func meshConfigMap(mi *meshv1alpha1.MeshInstall, rev Revision, p profile) (*corev1.ConfigMap, error) {
	mesh, err := yaml.Marshal(buildMeshConfig(mi, rev, p))
	if err != nil {
		return nil, fmt.Errorf("encoding mesh config: %w", err)
	}
	return &corev1.ConfigMap{
		TypeMeta: typeMeta(corev1.SchemeGroupVersion, "ConfigMap"),
		ObjectMeta: objectMeta(MeshConfigMapName(rev.Name), namespace(mi),
			with(istiodLabels(mi, rev), labelComponent, componentPilot)),
		Data: map[string]string{
			"mesh":         string(mesh),
			"meshNetworks": "networks: {}\n",
		},
	}, nil
}
