package render

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// Autoscaling defaults of istiod, from the istiod chart's values.
const (
	defaultAutoscaleMin       = 1
	defaultAutoscaleMax       = 5
	defaultAutoscaleTargetCPU = 80
)

// profile holds what Istio's installation profiles change. minimal is
// default without the ingress gateway (manifests/profiles/minimal.yaml);
// demo is Istio's helm-profiles/demo.yaml and profiles/demo.yaml, which
// adds the egress gateway.
type profile struct {
	pilotResources   corev1.ResourceRequirements
	pilotAutoscaling bool
	traceSampling    string // PILOT_TRACE_SAMPLING, as the chart prints values.traceSampling
	proxyResources   corev1.ResourceRequirements
	gatewayResources corev1.ResourceRequirements
	accessLogFile    string
	// gateways run when spec.gateways lists none (see Gateways).
	gateways []meshv1alpha1.GatewaySpec
	// demoProviders: the demo profile declares Istio's sample tracing and
	// access-log providers.
	demoProviders bool
}

func profileFor(name meshv1alpha1.ProfileName) profile {
	p := profile{
		pilotResources:   requirements("500m", "2048Mi", "", ""),
		pilotAutoscaling: true,
		traceSampling:    "1",
		proxyResources:   requirements("100m", "128Mi", "2000m", "1024Mi"),
		gatewayResources: requirements("100m", "128Mi", "2000m", "1024Mi"),
	}
	ingress := meshv1alpha1.GatewaySpec{Name: "istio-ingressgateway", Type: meshv1alpha1.GatewayIngress, ServiceType: corev1.ServiceTypeLoadBalancer}
	egress := meshv1alpha1.GatewaySpec{Name: "istio-egressgateway", Type: meshv1alpha1.GatewayEgress}
	switch name {
	case meshv1alpha1.ProfileMinimal:
	case meshv1alpha1.ProfileDemo:
		p.gateways = []meshv1alpha1.GatewaySpec{ingress, egress}
	default:
		p.gateways = []meshv1alpha1.GatewaySpec{ingress}
	}
	if name == meshv1alpha1.ProfileDemo {
		p.pilotResources = requirements("10m", "100Mi", "", "")
		p.pilotAutoscaling = false
		p.traceSampling = "100"
		// The demo profile lowers only the requests; the limits of the
		// defaults stay, as Helm merges the profile over them.
		p.proxyResources = requirements("10m", "40Mi", "2000m", "1024Mi")
		p.gatewayResources = requirements("10m", "40Mi", "2000m", "1024Mi")
		p.accessLogFile = "/dev/stdout"
		p.demoProviders = true
	}
	return p
}

// extensionProviders are the profile's: for demo, the tracing and
// access-log providers Istio's demo profile declares (the addresses are
// Istio's, including its istio-system, in the cluster's DNS domain).
func (p profile) extensionProviders(domain string) []extensionProvider {
	if !p.demoProviders {
		return nil
	}
	otelCollector := "opentelemetry-collector.observability.svc." + domain
	return []extensionProvider{
		{Name: "otel", EnvoyOtelAls: &providerAddress{Service: otelCollector, Port: 4317}},
		{Name: "skywalking", Skywalking: &providerAddress{Service: "tracing.istio-system.svc." + domain, Port: 11800}},
		{Name: "otel-tracing", Opentelemetry: &otelProvider{providerAddress: providerAddress{Service: otelCollector, Port: 4317}}},
		{Name: "jaeger", Opentelemetry: &otelProvider{providerAddress: providerAddress{Service: "jaeger-collector.istio-system.svc." + domain, Port: 4317}}},
	}
}

// requirements builds resource requirements; empty strings are left out.
func requirements(cpuRequest, memoryRequest, cpuLimit, memoryLimit string) corev1.ResourceRequirements {
	var r corev1.ResourceRequirements
	r.Requests = resourceList(cpuRequest, memoryRequest)
	r.Limits = resourceList(cpuLimit, memoryLimit)
	return r
}

func resourceList(cpu, memory string) corev1.ResourceList {
	if cpu == "" && memory == "" {
		return nil
	}
	l := corev1.ResourceList{}
	if cpu != "" {
		l[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if memory != "" {
		l[corev1.ResourceMemory] = resource.MustParse(memory)
	}
	return l
}

// resourcesOr returns a copy of the user's resources when set, else def.
func resourcesOr(user *corev1.ResourceRequirements, def corev1.ResourceRequirements) corev1.ResourceRequirements {
	if user != nil {
		return *user.DeepCopy()
	}
	return def
}

// scaling is how istiod or a gateway is scaled.
type scaling struct {
	autoscale        bool
	replicas         int32 // when !autoscale
	minReplicas      int32 // when autoscale
	maxReplicas      int32 // when autoscale
	targetCPUPercent int32 // when autoscale
}

// scalingFor decides istiod's scaling. An explicit spec.pilot.autoscaling
// wins; otherwise an explicit spec.pilot.replicas turns autoscaling off
// (a user who asks for N replicas gets N, not an HPA starting at 1);
// otherwise the profile decides: default and minimal autoscale 1-5 at 80%
// CPU, as the istiod chart; demo runs one replica.
func scalingFor(mi *meshv1alpha1.MeshInstall, p profile) scaling {
	pilot := mi.Spec.Pilot
	s := scaling{
		autoscale:        p.pilotAutoscaling,
		replicas:         ptr.Deref(pilot.Replicas, 1),
		minReplicas:      defaultAutoscaleMin,
		maxReplicas:      defaultAutoscaleMax,
		targetCPUPercent: defaultAutoscaleTargetCPU,
	}
	switch a := pilot.Autoscaling; {
	case a != nil:
		s.autoscale = a.Enabled
		s.minReplicas = ptr.Deref(a.MinReplicas, defaultAutoscaleMin)
		s.maxReplicas = ptr.Deref(a.MaxReplicas, defaultAutoscaleMax)
		s.targetCPUPercent = ptr.Deref(a.TargetCPUUtilizationPercentage, defaultAutoscaleTargetCPU)
	case pilot.Replicas != nil:
		s.autoscale = false
	}
	return s
}

// least and most are the fewest and most istiod replicas that may run.
func (s scaling) least() int32 {
	if s.autoscale {
		return s.minReplicas
	}
	return s.replicas
}

func (s scaling) most() int32 {
	if s.autoscale {
		return s.maxReplicas
	}
	return s.replicas
}
