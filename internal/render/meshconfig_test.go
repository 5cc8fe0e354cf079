package render

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
)

// meshConfigCase renders one mesh configuration knob; its golden file,
// testdata/meshconfig/<name>.yaml, holds what the knob changes: the
// istio ConfigMap (mesh, meshNetworks), the injection configuration and
// istiod's arguments.
type meshConfigCase struct {
	name string
	opt  func(*meshv1alpha1.MeshInstall)
	rev  func(*Revision)
}

func meshConfigCases() []meshConfigCase {
	spec := func(f func(*meshv1alpha1.MeshInstallSpec)) func(*meshv1alpha1.MeshInstall) {
		return func(mi *meshv1alpha1.MeshInstall) { f(&mi.Spec) }
	}
	return []meshConfigCase{
		{name: "defaults"},
		{name: "extension-providers", opt: spec(func(s *meshv1alpha1.MeshInstallSpec) {
			s.MeshConfig.ExtensionProviders = []meshv1alpha1.ExtensionProvider{
				{Name: "otel", Opentelemetry: &meshv1alpha1.OpenTelemetryTracingProvider{
					ProviderService: meshv1alpha1.ProviderService{Service: "otel-collector.observability.svc.cluster.local", Port: 4317},
					MaxTagLength:    256,
				}},
				{Name: "otel-http", Opentelemetry: &meshv1alpha1.OpenTelemetryTracingProvider{
					ProviderService: meshv1alpha1.ProviderService{Service: "otel-collector.observability.svc.cluster.local", Port: 4318},
					HTTP:            &meshv1alpha1.OpenTelemetryHTTPService{Path: "/v1/traces", Timeout: &metav1.Duration{Duration: 5 * time.Second}},
				}},
				{Name: "authz-http", EnvoyExtAuthzHttp: &meshv1alpha1.EnvoyExternalAuthorizationHTTPProvider{
					ProviderService:                 meshv1alpha1.ProviderService{Service: "authz.auth.svc.cluster.local", Port: 8000},
					Timeout:                         &metav1.Duration{Duration: 1500 * time.Millisecond},
					PathPrefix:                      "/check",
					FailOpen:                        true,
					StatusOnError:                   "503",
					IncludeRequestHeadersInCheck:    []string{"authorization", "cookie"},
					IncludeAdditionalHeadersInCheck: map[string]string{"x-mesh": "prod"},
					HeadersToUpstreamOnAllow:        []string{"x-user"},
					HeadersToDownstreamOnDeny:       []string{"set-cookie"},
					HeadersToDownstreamOnAllow:      []string{"x-trace"},
					IncludeRequestBodyInCheck:       &meshv1alpha1.ExternalAuthorizationRequestBody{MaxRequestBytes: 4096, AllowPartialMessage: true},
				}},
				{Name: "authz-grpc", EnvoyExtAuthzGrpc: &meshv1alpha1.EnvoyExternalAuthorizationGRPCProvider{
					ProviderService:           meshv1alpha1.ProviderService{Service: "authz.auth.svc.cluster.local", Port: 9000},
					Timeout:                   &metav1.Duration{Duration: time.Minute},
					StatusOnError:             "403",
					IncludeRequestBodyInCheck: &meshv1alpha1.ExternalAuthorizationRequestBody{MaxRequestBytes: 1024, PackAsBytes: true},
				}},
			}
			s.MeshConfig.DefaultProviders = &meshv1alpha1.DefaultProviders{Tracing: []string{"otel"}, AccessLogging: []string{"envoy"}}
		})},
		{name: "extension-providers-replace-demo", opt: spec(func(s *meshv1alpha1.MeshInstallSpec) {
			s.Profile = meshv1alpha1.ProfileDemo
			s.MeshConfig.ExtensionProviders = []meshv1alpha1.ExtensionProvider{{Name: "otel", Opentelemetry: &meshv1alpha1.OpenTelemetryTracingProvider{
				ProviderService: meshv1alpha1.ProviderService{Service: "otel.observability.svc.cluster.local", Port: 4317},
			}}}
		})},
		{name: "default-metrics-off", opt: spec(func(s *meshv1alpha1.MeshInstallSpec) {
			s.MeshConfig.DefaultProviders = &meshv1alpha1.DefaultProviders{Metrics: []string{}}
		})},
		{name: "discovery-selectors", opt: spec(func(s *meshv1alpha1.MeshInstallSpec) {
			s.MeshConfig.DiscoverySelectors = []metav1.LabelSelector{
				{MatchLabels: map[string]string{"mesh": "prod"}},
				{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}},
			}
		})},
		{name: "trust-domain-aliases", opt: spec(func(s *meshv1alpha1.MeshInstallSpec) {
			s.MeshConfig.TrustDomain = "new.example.com"
			s.MeshConfig.TrustDomainAliases = []string{"old.example.com", "cluster.local"}
		})},
		{name: "tracing-off", opt: spec(func(s *meshv1alpha1.MeshInstallSpec) { s.MeshConfig.EnableTracing = ptr.To(false) })},
		{name: "tracing-sampling", opt: spec(func(s *meshv1alpha1.MeshInstallSpec) {
			s.MeshConfig.DefaultConfig.Tracing = &meshv1alpha1.ProxyTracing{Sampling: "2.5"}
		})},
		{name: "locality-distribute", opt: spec(func(s *meshv1alpha1.MeshInstallSpec) {
			s.MeshConfig.LocalityLbSetting = &meshv1alpha1.LocalityLoadBalancerSetting{
				Enabled:    ptr.To(true),
				Distribute: []meshv1alpha1.LocalityDistribute{{From: "us-west/zone1/*", To: map[string]int32{"us-west/zone1/*": 80, "us-west/zone2/*": 20}}},
			}
		})},
		{name: "locality-failover", opt: spec(func(s *meshv1alpha1.MeshInstallSpec) {
			s.MeshConfig.LocalityLbSetting = &meshv1alpha1.LocalityLoadBalancerSetting{
				Failover:         []meshv1alpha1.LocalityFailover{{From: "us-east", To: "eu-west"}},
				FailoverPriority: []string{"topology.kubernetes.io/region", "topology.kubernetes.io/zone"},
			}
		})},
		{name: "network", opt: spec(func(s *meshv1alpha1.MeshInstallSpec) {
			s.Cluster = meshv1alpha1.ClusterSpec{Name: "east", Network: "net-east"}
		})},
		{name: "network-default-cluster-name", opt: spec(func(s *meshv1alpha1.MeshInstallSpec) {
			s.Cluster = meshv1alpha1.ClusterSpec{Network: "net-east"}
		})},
		{name: "cluster-domain", opt: spec(func(s *meshv1alpha1.MeshInstallSpec) {
			s.Profile = meshv1alpha1.ProfileDemo // its providers' addresses follow the domain
			s.Cluster.Domain = "corp.example"
		})},
		{name: "traffic-capture", opt: spec(func(s *meshv1alpha1.MeshInstallSpec) {
			s.Injection.TrafficCapture = meshv1alpha1.TrafficCaptureSpec{
				IncludeOutboundIPRanges: ptr.To("10.0.0.0/8,172.16.0.0/12"), ExcludeOutboundIPRanges: "10.96.0.1/32",
				IncludeInboundPorts: ptr.To("8080"), ExcludeInboundPorts: "9000",
				IncludeOutboundPorts: "443", ExcludeOutboundPorts: "3306,5432",
			}
		})},
		{name: "hold-injection", opt: spec(func(s *meshv1alpha1.MeshInstallSpec) {
			s.Injection.HoldApplicationUntilProxyStarts = ptr.To(true)
		})},
		{name: "hold-default-config-false-wins", opt: spec(func(s *meshv1alpha1.MeshInstallSpec) {
			s.Injection.HoldApplicationUntilProxyStarts = ptr.To(true)
			s.MeshConfig.DefaultConfig.HoldApplicationUntilProxyStarts = ptr.To(false)
		})},
		{name: "native-sidecars-auto-old-nodes", rev: func(r *Revision) { r.NodesWithoutNativeSidecars = true }},
		{name: "native-sidecars-enabled-old-nodes", opt: spec(func(s *meshv1alpha1.MeshInstallSpec) {
			s.Injection.NativeSidecars = meshv1alpha1.NativeSidecarEnabled
		}), rev: func(r *Revision) { r.NodesWithoutNativeSidecars = true }},
	}
}

func (c meshConfigCase) render(t *testing.T) []byte {
	t.Helper()
	mi := meshInstall("1.32.0")
	if c.opt != nil {
		c.opt(mi)
	}
	rev := mustRevision(t, DefaultRevision, "1.32.0")
	if c.rev != nil {
		c.rev(&rev)
	}
	objs := mustControlPlane(t, mi, rev)
	mesh := find[*corev1.ConfigMap](t, objs, MeshConfigMapName(rev.Name))
	injection := find[*corev1.ConfigMap](t, objs, InjectionConfigMapName(rev.Name))
	istiod := find[*appsv1.Deployment](t, objs, IstiodName(rev.Name))
	out := map[string]any{
		"mesh":         mesh.Data["mesh"],
		"meshNetworks": mesh.Data["meshNetworks"],
		"injection":    json.RawMessage(injection.Data[InjectionConfigKey]),
		"istiodArgs":   istiod.Spec.Template.Spec.Containers[0].Args,
	}
	b, err := yaml.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMeshConfigGolden compares each knob with testdata/meshconfig/<case>.yaml
// (go test ./internal/render -update rewrites them), and checks that what
// is written parses as Istio's own MeshConfig and MeshNetworks, strictly:
// a field name that is not Istio's fails.
func TestMeshConfigGolden(t *testing.T) {
	dir := filepath.Join("testdata", "meshconfig")
	known := map[string]bool{}
	for _, c := range meshConfigCases() {
		known[c.name+".yaml"] = true
		t.Run(c.name, func(t *testing.T) {
			got := c.render(t)
			var data struct {
				Mesh         string `json:"mesh"`
				MeshNetworks string `json:"meshNetworks"`
			}
			if err := yaml.Unmarshal(got, &data); err != nil {
				t.Fatal(err)
			}
			parseStrict(t, data.Mesh, &meshconfig.MeshConfig{})
			parseStrict(t, data.MeshNetworks, &meshconfig.MeshNetworks{})

			path := filepath.Join(dir, c.name+".yaml")
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/render -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is stale; run go test ./internal/render -update and review the diff.\n%s", path, firstDifference(string(want), string(got)))
			}
		})
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if !known[filepath.Base(f)] && !*update {
			t.Errorf("%s belongs to no case", f)
		}
	}
}

func parseStrict(t *testing.T, y string, into proto.Message) {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(js, into); err != nil {
		t.Errorf("not an Istio %T: %v\n%s", into, err, y)
	}
}

func TestHoldApplicationPrecedence(t *testing.T) {
	tests := []struct {
		name                 string
		injection, defConfig *bool
		want                 *bool
	}{
		{"unset", nil, nil, nil},
		{"injection only", ptr.To(true), nil, ptr.To(true)},
		{"injection false", ptr.To(false), nil, ptr.To(false)},
		{"defaultConfig wins true", ptr.To(false), ptr.To(true), ptr.To(true)},
		{"defaultConfig wins false", ptr.To(true), ptr.To(false), ptr.To(false)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mi := meshInstall("1.32.0", func(mi *meshv1alpha1.MeshInstall) {
				mi.Spec.Injection.HoldApplicationUntilProxyStarts = tt.injection
				mi.Spec.MeshConfig.DefaultConfig.HoldApplicationUntilProxyStarts = tt.defConfig
			})
			cfg, err := InjectionConfig(mi, mustRevision(t, DefaultRevision, "1.32.0"))
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.DefaultProxyConfig.HoldApplicationUntilProxyStarts
			if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
				t.Errorf("holdApplicationUntilProxyStarts = %v, want %v", ptr.Deref(got, false), ptr.Deref(tt.want, false))
			}
			mesh := buildMeshConfig(mi, mustRevision(t, DefaultRevision, "1.32.0"), profileFor(""))
			if !equalBoolPtr(mesh.DefaultConfig.HoldApplicationUntilProxyStarts, tt.want) {
				t.Errorf("mesh config defaultConfig disagrees with the injection config")
			}
		})
	}
}

func equalBoolPtr(a, b *bool) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func TestNativeSidecarsDecision(t *testing.T) {
	tests := []struct {
		mode     meshv1alpha1.NativeSidecarMode
		oldNodes bool
		want     string
	}{
		{"", false, inject.NativeSidecarsEnabled},
		{meshv1alpha1.NativeSidecarAuto, false, inject.NativeSidecarsEnabled},
		{meshv1alpha1.NativeSidecarAuto, true, inject.NativeSidecarsDisabled},
		{meshv1alpha1.NativeSidecarEnabled, true, inject.NativeSidecarsEnabled},
		{meshv1alpha1.NativeSidecarDisabled, false, inject.NativeSidecarsDisabled},
	}
	for _, tt := range tests {
		rev := mustRevision(t, DefaultRevision, "1.32.0")
		rev.NodesWithoutNativeSidecars = tt.oldNodes
		mi := meshInstall("1.32.0", func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Injection.NativeSidecars = tt.mode })
		cfg, err := InjectionConfig(mi, rev)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.NativeSidecars != tt.want {
			t.Errorf("%q with old nodes %v: nativeSidecars %q, want %q", tt.mode, tt.oldNodes, cfg.NativeSidecars, tt.want)
		}
	}
}

// TestProfileGateways: as Istio's profiles, default runs the ingress
// gateway, demo also the egress one, minimal none; listing gateways replaces them.
func TestProfileGateways(t *testing.T) {
	names := func(mi *meshv1alpha1.MeshInstall) []string {
		var out []string
		for _, o := range mustShared(t, mi, mustRevision(t, DefaultRevision, "1.32.0")) {
			if d, ok := o.(*appsv1.Deployment); ok {
				out = append(out, d.Name)
			}
		}
		return out
	}
	tests := []struct {
		name string
		mi   *meshv1alpha1.MeshInstall
		want string
	}{
		{"default", meshInstall("1.32.0"), "istio-ingressgateway"},
		{"demo", meshInstall("1.32.0", withProfile(meshv1alpha1.ProfileDemo)), "istio-egressgateway istio-ingressgateway"}, // in apply order
		{"minimal", meshInstall("1.32.0", withProfile(meshv1alpha1.ProfileMinimal)), ""},
		{"default with gateways listed", meshInstall("1.32.0", withGateways(meshv1alpha1.GatewaySpec{Name: "edge"})), "edge"},
	}
	for _, tt := range tests {
		got := strings.Join(names(tt.mi), " ")
		if got != tt.want {
			t.Errorf("%s: gateway Deployments %q, want %q", tt.name, got, tt.want)
		}
	}
}
