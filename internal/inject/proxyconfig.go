package inject

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Istio's code defaults for ProxyConfig (pkg/config/mesh DefaultProxyConfig):
// the base every mesh defaultConfig and pod proxy.istio.io/config is merged
// over, and what PROXY_CONFIG leaves out because pilot-agent assumes it.
const (
	defaultConfigPath       = "./etc/istio/proxy"
	defaultBinaryPath       = "/usr/local/bin/envoy"
	defaultServiceCluster   = "istio-proxy"
	defaultDiscoveryAddress = "istiod.istio-system.svc:15012"
	defaultProxyAdminPort   = 15000
	defaultStatNameLength   = 189
	defaultStatusPort       = 15020
	defaultDrainDuration    = 45 * time.Second
	defaultTerminationDrain = 5 * time.Second
)

// istioProxyConfigDefaults is Istio's DefaultProxyConfig.
func istioProxyConfigDefaults() *meshconfig.ProxyConfig {
	return &meshconfig.ProxyConfig{
		ConfigPath:               defaultConfigPath,
		BinaryPath:               defaultBinaryPath,
		ClusterName:              &meshconfig.ProxyConfig_ServiceCluster{ServiceCluster: defaultServiceCluster},
		DrainDuration:            durationpb.New(defaultDrainDuration),
		TerminationDrainDuration: durationpb.New(defaultTerminationDrain),
		ProxyAdminPort:           defaultProxyAdminPort,
		ControlPlaneAuthPolicy:   meshconfig.AuthenticationPolicy_MUTUAL_TLS,
		DiscoveryAddress:         defaultDiscoveryAddress,
		StatNameLength:           defaultStatNameLength,
		StatusPort:               defaultStatusPort,
	}
}

// proxySettings is the part of an effective ProxyConfig the injector reads,
// and its PROXY_CONFIG rendering.
type proxySettings struct {
	pc *meshconfig.ProxyConfig
	// env is PROXY_CONFIG's value: the non-default fields as protobuf JSON.
	env string
	// metadata is proxyMetadata as environment variables, sorted by name.
	metadata []corev1.EnvVar
}

func newProxySettings(pc *meshconfig.ProxyConfig) (*proxySettings, error) {
	js, err := proxyConfigJSON(pc)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(pc.GetProxyMetadata()))
	for k := range pc.GetProxyMetadata() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	md := make([]corev1.EnvVar, 0, len(keys))
	for _, k := range keys {
		md = append(md, corev1.EnvVar{Name: k, Value: pc.ProxyMetadata[k]})
	}
	return &proxySettings{pc: pc, env: js + "\n", metadata: md}, nil
}

// hold is the effective holdApplicationUntilProxyStarts of the ProxyConfig.
func (p *proxySettings) hold() bool {
	return p.pc.GetHoldApplicationUntilProxyStarts().GetValue()
}

// meshProxyConfig is Istio's DefaultProxyConfig with the mesh's defaultConfig
// merged over it, as istiod loads its mesh config.
func meshProxyConfig(c *Config) (*meshconfig.ProxyConfig, error) {
	base := istioProxyConfigDefaults()
	dc := c.DefaultProxyConfig
	if dc.DiscoveryAddress == "" && c.DiscoveryAddress != "" {
		// The istiod chart always writes the revision's address here.
		dc.DiscoveryAddress = c.DiscoveryAddress
	}
	js, err := json.Marshal(dc)
	if err != nil {
		return nil, fmt.Errorf("encoding defaultProxyConfig: %w", err)
	}
	overlay := &meshconfig.ProxyConfig{}
	if err := protojson.Unmarshal(js, overlay); err != nil {
		return nil, fmt.Errorf("defaultProxyConfig is not a valid Istio ProxyConfig: %w", err)
	}
	mergeProxyConfig(base, overlay)
	return base, nil
}

// parseProxyConfigAnnotation reads a proxy.istio.io/config value (YAML or
// JSON), ignoring unknown fields as Istio does.
func parseProxyConfigAnnotation(value string) (*meshconfig.ProxyConfig, error) {
	js, err := yaml.YAMLToJSON([]byte(value))
	if err != nil {
		return nil, err
	}
	return proxyConfigFromJSON(js)
}

func proxyConfigFromJSON(js []byte) (*meshconfig.ProxyConfig, error) {
	pc := &meshconfig.ProxyConfig{}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return pc, nil
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(js, pc); err != nil {
		return nil, err
	}
	return pc, nil
}

// mergeProxyConfig applies overlay over dst the way Istio merges a
// ProxyConfig: every field the overlay sets replaces dst's, except
// proxyMetadata, whose entries are merged key by key.
func mergeProxyConfig(dst, overlay *meshconfig.ProxyConfig) {
	metadata := dst.GetProxyMetadata()
	d := dst.ProtoReflect()
	overlay.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		d.Set(fd, v)
		return true
	})
	if len(metadata) > 0 && len(overlay.GetProxyMetadata()) > 0 {
		merged := make(map[string]string, len(metadata)+len(overlay.ProxyMetadata))
		for k, v := range metadata {
			merged[k] = v
		}
		for k, v := range overlay.ProxyMetadata {
			merged[k] = v
		}
		dst.ProxyMetadata = merged
	}
}

// proxyConfigJSON is PROXY_CONFIG: the ProxyConfig without the fields that
// equal Istio's defaults, as compact protobuf JSON in field order.
func proxyConfigJSON(pc *meshconfig.ProxyConfig) (string, error) {
	c := proto.Clone(pc).(*meshconfig.ProxyConfig)
	def := istioProxyConfigDefaults()
	if c.ConfigPath == def.ConfigPath {
		c.ConfigPath = ""
	}
	if c.BinaryPath == def.BinaryPath {
		c.BinaryPath = ""
	}
	if c.ControlPlaneAuthPolicy == def.ControlPlaneAuthPolicy {
		c.ControlPlaneAuthPolicy = 0
	}
	if sc, ok := c.GetClusterName().(*meshconfig.ProxyConfig_ServiceCluster); ok && sc.ServiceCluster == defaultServiceCluster {
		c.ClusterName = nil
	}
	if proto.Equal(c.DrainDuration, def.DrainDuration) {
		c.DrainDuration = nil
	}
	if proto.Equal(c.TerminationDrainDuration, def.TerminationDrainDuration) {
		c.TerminationDrainDuration = nil
	}
	if c.DiscoveryAddress == def.DiscoveryAddress {
		c.DiscoveryAddress = ""
	}
	if c.ProxyAdminPort == def.ProxyAdminPort {
		c.ProxyAdminPort = 0
	}
	if c.StatNameLength == def.StatNameLength {
		c.StatNameLength = 0
	}
	if c.StatusPort == def.StatusPort {
		c.StatusPort = 0
	}
	if len(c.ProxyMetadata) == 0 {
		c.ProxyMetadata = nil
	}
	b, err := protojson.Marshal(c)
	if err != nil {
		return "", err
	}
	// protojson varies its whitespace on purpose; compact it to be stable.
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return "", err
	}
	return out.String(), nil
}

// validateProxyConfigAnnotation checks a proxy.istio.io/config value the way
// Istio's injector does: applied over Istio's defaults, the result must be a
// usable ProxyConfig.
func validateProxyConfigAnnotation(value string) error {
	js, err := yaml.YAMLToJSON([]byte(value))
	if err != nil {
		return err
	}
	overlay, err := proxyConfigFromJSON(js)
	if err != nil {
		return err
	}
	// As Istio validates it, every field the annotation names counts, zero
	// values included.
	var named map[string]json.RawMessage
	_ = json.Unmarshal(js, &named)
	pc := istioProxyConfigDefaults()
	dst, src := pc.ProtoReflect(), overlay.ProtoReflect()
	fields := dst.Descriptor().Fields()
	for k := range named {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(k))
		}
		switch {
		case fd == nil:
		case src.Has(fd):
			dst.Set(fd, src.Get(fd))
		default:
			dst.Clear(fd)
		}
	}
	var errs []error
	if pc.ConfigPath == "" {
		errs = append(errs, errors.New("configPath must be set"))
	}
	if pc.BinaryPath == "" {
		errs = append(errs, errors.New("binaryPath must be set"))
	}
	switch cn := pc.GetClusterName().(type) {
	case *meshconfig.ProxyConfig_ServiceCluster:
		if cn.ServiceCluster == "" {
			errs = append(errs, errors.New("serviceCluster must be set"))
		}
	case *meshconfig.ProxyConfig_TracingServiceName_:
	default:
		errs = append(errs, errors.New("one of serviceCluster or tracingServiceName must be set"))
	}
	if d := pc.GetDrainDuration(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < time.Millisecond {
			errs = append(errs, fmt.Errorf("drainDuration %s must be at least 1ms", d.AsDuration()))
		}
	}
	if pc.DiscoveryAddress == "" {
		errs = append(errs, errors.New("discoveryAddress must be set"))
	} else if err := validateHostPort(pc.DiscoveryAddress); err != nil {
		errs = append(errs, fmt.Errorf("discoveryAddress: %w", err))
	}
	if pc.StatsdUdpAddress != "" {
		if err := validateHostPort(pc.StatsdUdpAddress); err != nil {
			errs = append(errs, fmt.Errorf("statsdUdpAddress: %w", err))
		}
	}
	if pc.ProxyAdminPort < 1 || pc.ProxyAdminPort > 65535 {
		errs = append(errs, fmt.Errorf("proxyAdminPort %d is not a port number", pc.ProxyAdminPort))
	}
	if pc.StatusPort < 1 || pc.StatusPort > 65535 {
		errs = append(errs, fmt.Errorf("statusPort %d is not a port number", pc.StatusPort))
	}
	switch pc.ControlPlaneAuthPolicy {
	case meshconfig.AuthenticationPolicy_NONE, meshconfig.AuthenticationPolicy_MUTUAL_TLS:
	default:
		errs = append(errs, fmt.Errorf("controlPlaneAuthPolicy %s is not supported", pc.ControlPlaneAuthPolicy))
	}
	return errors.Join(errs...)
}

// validateHostPort accepts host:port with a port in 1..65535.
func validateHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("%q has no host", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q has an invalid port", addr)
	}
	return nil
}
