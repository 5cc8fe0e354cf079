package v1alpha1_test

import (
	"context"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// otel is a valid OpenTelemetry extension provider.
func otel(name string) map[string]any {
	return map[string]any{"name": name, "opentelemetry": map[string]any{"service": "otel.observability.svc.cluster.local", "port": 4317}}
}

func TestMeshConfigIsAcceptedAndDefaulted(t *testing.T) {
	ctx := context.Background()
	u := minimal("mesh-config-accepted")
	spec := u.Object["spec"].(map[string]any)
	spec["meshConfig"] = map[string]any{
		"enableTracing": false,
		"extensionProviders": []any{
			otel("otel"),
			map[string]any{"name": "authz", "envoyExtAuthzGrpc": map[string]any{"service": "authz.auth.svc.cluster.local", "port": 9000, "timeout": "2s"}},
		},
		"defaultProviders":   map[string]any{"tracing": []any{"otel"}, "metrics": []any{}, "accessLogging": []any{"envoy"}},
		"discoverySelectors": []any{map[string]any{"matchLabels": map[string]any{"mesh": "prod"}}},
		"trustDomainAliases": []any{"old.example.com"},
		"localityLbSetting":  map[string]any{"failover": []any{map[string]any{"from": "us-east", "to": "eu-west"}}},
		"defaultConfig":      map[string]any{"tracing": map[string]any{"sampling": "0.5"}, "holdApplicationUntilProxyStarts": false},
	}
	spec["injection"] = map[string]any{"trafficCapture": map[string]any{"includeInboundPorts": "", "excludeOutboundPorts": "3306"}}
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatalf("valid mesh config refused: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, u) })
	got := &meshv1alpha1.MeshInstall{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: u.GetName()}, got); err != nil {
		t.Fatal(err)
	}
	s := got.Spec
	if s.MeshConfig.EnableTracing == nil || *s.MeshConfig.EnableTracing {
		t.Errorf("spec.meshConfig.enableTracing = %v, want the false that was set", s.MeshConfig.EnableTracing)
	}
	if h := s.MeshConfig.DefaultConfig.HoldApplicationUntilProxyStarts; h == nil || *h {
		t.Errorf("spec.meshConfig.defaultConfig.holdApplicationUntilProxyStarts = %v, want the false that was set", h)
	}
	if p := s.Injection.TrafficCapture.IncludeInboundPorts; p == nil || *p != "" {
		t.Errorf("spec.injection.trafficCapture.includeInboundPorts = %v, want the empty value that was set (capture no inbound port)", p)
	}
	if dp := s.MeshConfig.DefaultProviders; dp == nil || dp.Metrics == nil || len(dp.Metrics) != 0 {
		t.Errorf("spec.meshConfig.defaultProviders.metrics = %v, want the empty list that was set", dp)
	}

	d := minimal("mesh-config-defaults")
	if err := env.Client.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, d) })
	if err := env.Client.Get(ctx, client.ObjectKey{Name: d.GetName()}, got); err != nil {
		t.Fatal(err)
	}
	if e := got.Spec.MeshConfig.EnableTracing; e == nil || !*e {
		t.Errorf("spec.meshConfig.enableTracing defaults to %v, want true (Istio's default)", e)
	}
	if got.Spec.Cluster.Domain != "cluster.local" {
		t.Errorf("spec.cluster.domain defaults to %q, want cluster.local", got.Spec.Cluster.Domain)
	}
	if got.Spec.Injection.HoldApplicationUntilProxyStarts != nil {
		t.Errorf("spec.injection.holdApplicationUntilProxyStarts defaults to %v, want unset", *got.Spec.Injection.HoldApplicationUntilProxyStarts)
	}
}

func TestInvalidMeshConfigIsRefusedNamingTheField(t *testing.T) {
	meshConfig := func(mc map[string]any) func(map[string]any) {
		return func(s map[string]any) { s["meshConfig"] = mc }
	}
	cases := []refusal{
		{"provider of no kind", meshConfig(map[string]any{"extensionProviders": []any{map[string]any{"name": "x"}}}),
			[]string{"spec.meshConfig.extensionProviders[0]", "exactly one of opentelemetry, envoyExtAuthzHttp, envoyExtAuthzGrpc"}},
		{"provider of two kinds", meshConfig(map[string]any{"extensionProviders": []any{map[string]any{"name": "x",
			"opentelemetry":     map[string]any{"service": "a.b.svc.cluster.local", "port": 1},
			"envoyExtAuthzHttp": map[string]any{"service": "a.b.svc.cluster.local", "port": 1}}}}),
			[]string{"spec.meshConfig.extensionProviders[0]", "exactly one of"}},
		{"provider port out of range", meshConfig(map[string]any{"extensionProviders": []any{map[string]any{"name": "x",
			"envoyExtAuthzGrpc": map[string]any{"service": "a.b.svc.cluster.local", "port": 70000}}}}),
			[]string{"spec.meshConfig.extensionProviders[0].envoyExtAuthzGrpc.port"}},
		{"provider without a service", meshConfig(map[string]any{"extensionProviders": []any{map[string]any{"name": "x",
			"opentelemetry": map[string]any{"port": 4317}}}}),
			[]string{"spec.meshConfig.extensionProviders[0].opentelemetry.service", "Required"}},
		{"duplicate provider names", meshConfig(map[string]any{"extensionProviders": []any{otel("x"), otel("x")}}),
			[]string{"spec.meshConfig.extensionProviders[1]", "Duplicate value"}},
		{"ext_authz status not an HTTP status", meshConfig(map[string]any{"extensionProviders": []any{map[string]any{"name": "x",
			"envoyExtAuthzHttp": map[string]any{"service": "a.b.svc.cluster.local", "port": 80, "statusOnError": "forbidden"}}}}),
			[]string{"spec.meshConfig.extensionProviders[0].envoyExtAuthzHttp.statusOnError"}},
		{"default tracing provider not declared", meshConfig(map[string]any{"extensionProviders": []any{otel("otel")},
			"defaultProviders": map[string]any{"tracing": []any{"zipkin"}}}),
			[]string{"spec.meshConfig", "defaultProviders.tracing must name opentelemetry providers of spec.meshConfig.extensionProviders"}},
		{"default metrics provider not prometheus", meshConfig(map[string]any{"defaultProviders": map[string]any{"metrics": []any{"stackdriver"}}}),
			[]string{"spec.meshConfig.defaultProviders", "metrics may only name prometheus"}},
		{"trust domain alias not a domain", meshConfig(map[string]any{"trustDomainAliases": []any{"not a domain"}}),
			[]string{"spec.meshConfig.trustDomainAliases[0]"}},
		{"tracing sampling above 100", meshConfig(map[string]any{"defaultConfig": map[string]any{"tracing": map[string]any{"sampling": "150"}}}),
			[]string{"spec.meshConfig.defaultConfig.tracing.sampling", "percentage from 0 to 100"}},
		{"tracing sampling a number", meshConfig(map[string]any{"defaultConfig": map[string]any{"tracing": map[string]any{"sampling": 1.5}}}),
			[]string{"spec.meshConfig.defaultConfig.tracing.sampling"}},
		{"locality distribute and failover", meshConfig(map[string]any{"localityLbSetting": map[string]any{
			"distribute": []any{map[string]any{"from": "a/*", "to": map[string]any{"b/*": 100}}},
			"failover":   []any{map[string]any{"from": "a", "to": "b"}}}}),
			[]string{"spec.meshConfig.localityLbSetting", "set distribute or failover, not both"}},
		{"locality failover to itself", meshConfig(map[string]any{"localityLbSetting": map[string]any{
			"failover": []any{map[string]any{"from": "a", "to": "a"}}}}),
			[]string{"spec.meshConfig.localityLbSetting.failover[0]", "to must differ from from"}},
		{"cluster domain not a DNS name", func(s map[string]any) { s["cluster"] = map[string]any{"domain": "Cluster.Local."} },
			[]string{"spec.cluster.domain"}},
		{"cluster domain empty", func(s map[string]any) { s["cluster"] = map[string]any{"domain": ""} },
			[]string{"spec.cluster.domain"}},
		{"enableTracing not a boolean", meshConfig(map[string]any{"enableTracing": "no"}),
			[]string{"spec.meshConfig.enableTracing"}},
	}
	expectRefused(t, "invalid-mesh-config-", cases)
}
