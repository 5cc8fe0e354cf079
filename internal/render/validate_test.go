package render

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// What the CRD cannot reject is refused by the renderer, naming the field,
// before anything is applied.
func TestInvalidSpecsAreRefusedNamingTheField(t *testing.T) {
	set := func(f func(*meshv1alpha1.MeshInstall)) func(*meshv1alpha1.MeshInstall) { return f }
	tests := []struct {
		name   string
		opt    func(*meshv1alpha1.MeshInstall)
		reason string
		field  string
	}{
		{name: "unsupported version", opt: set(func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Version = "1.29.0" }),
			reason: meshv1alpha1.ReasonUnsupportedVersion, field: "spec.version"},
		{name: "unknown patch", opt: set(func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Version = "1.32.9" }),
			reason: meshv1alpha1.ReasonUnsupportedVersion, field: "spec.version"},
		{name: "reserved pilot env", opt: set(func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Pilot.Env = map[string]string{"REVISION": "x"} }),
			reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.pilot.env[REVISION]"},
		{name: "invalid pilot env name", opt: set(func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Pilot.Env = map[string]string{"1=x": "y"} }),
			reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.pilot.env[1=x]"},
		{name: "invalid proxy metadata name", opt: set(func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.MeshConfig.DefaultConfig.ProxyMetadata = map[string]string{"A B": "x"}
		}), reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.meshConfig.defaultConfig.proxyMetadata[A B]"},
		{name: "pilot request above limit", opt: set(func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Pilot.Resources = &corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
			}
		}), reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.pilot.resources.requests[cpu]"},
		{name: "min replicas above default max", opt: set(func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Pilot.Autoscaling = &meshv1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: ptr.To(int32(7))}
		}), reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.pilot.autoscaling.minReplicas"},
		{name: "gateway named istiod", opt: withGateways(meshv1alpha1.GatewaySpec{Name: "istiod"}),
			reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.gateways[0].name"},
		{name: "gateway named like a canary istiod", opt: withGateways(meshv1alpha1.GatewaySpec{Name: "istiod-1-32-0"}),
			reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.gateways[0].name"},
		{name: "gateway overriding the revision label", opt: withGateways(meshv1alpha1.GatewaySpec{
			Name: "gw", Labels: map[string]string{"istio.io/rev": "canary"}}),
			reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.gateways[0].labels[istio.io/rev]"},
		{name: "gateway invalid label", opt: withGateways(meshv1alpha1.GatewaySpec{
			Name: "gw", Labels: map[string]string{"team": "a b"}}),
			reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.gateways[0].labels"},
		{name: "pilot pod label istiod is selected by", opt: set(func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Pilot.PodLabels = map[string]string{"istio": "custom"}
		}), reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.pilot.podLabels[istio]"},
		{name: "pilot pod label of meshkeeper", opt: set(func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Pilot.PodLabels = map[string]string{"mesh.meshkeeper.dev/revision": "x"}
		}), reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.pilot.podLabels[mesh.meshkeeper.dev/revision]"},
		{name: "pilot pod annotation injecting istiod", opt: set(func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Pilot.PodAnnotations = map[string]string{"sidecar.istio.io/inject": "true"}
		}), reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.pilot.podAnnotations[sidecar.istio.io/inject]"},
		{name: "pilot invalid node selector", opt: set(func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Pilot.NodeSelector = map[string]string{"zone": "a b"}
		}), reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.pilot.nodeSelector"},
		{name: "pilot toleration Exists with a value", opt: set(func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Pilot.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists, Value: "mesh"}}
		}), reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.pilot.tolerations[0].value"},
		{name: "pilot spread without a topology key", opt: set(func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Pilot.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, WhenUnsatisfiable: corev1.DoNotSchedule}}
		}), reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.pilot.topologySpreadConstraints[0].topologyKey"},
		{name: "gateway pod label of its selector", opt: withGateways(meshv1alpha1.GatewaySpec{Name: "gw",
			PodPlacement: meshv1alpha1.PodPlacement{PodLabels: map[string]string{"mesh.meshkeeper.dev/gateway": "other"}}}),
			reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.gateways[0].podLabels[mesh.meshkeeper.dev/gateway]"},
		{name: "gateway pod annotation choosing the template", opt: withGateways(meshv1alpha1.GatewaySpec{Name: "gw",
			PodPlacement: meshv1alpha1.PodPlacement{PodAnnotations: map[string]string{"inject.istio.io/templates": "sidecar"}}}),
			reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.gateways[0].podAnnotations[inject.istio.io/templates]"},
		{name: "gateway service label of meshkeeper", opt: withGateways(meshv1alpha1.GatewaySpec{Name: "gw",
			Service: &meshv1alpha1.GatewayServiceSpec{Labels: map[string]string{"app.kubernetes.io/managed-by": "helm"}}}),
			reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.gateways[0].service.labels[app.kubernetes.io/managed-by]"},
		{name: "gateway load balancer source range not a CIDR", opt: withGateways(meshv1alpha1.GatewaySpec{Name: "gw",
			ServiceType: corev1.ServiceTypeLoadBalancer,
			Service:     &meshv1alpha1.GatewayServiceSpec{LoadBalancerSourceRanges: []string{"10.0.0.0/8", "office"}}}),
			reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.gateways[0].service.loadBalancerSourceRanges[1]"},
		{name: "gateway load balancer IP not an address", opt: withGateways(meshv1alpha1.GatewaySpec{Name: "gw",
			ServiceType: corev1.ServiceTypeLoadBalancer, Service: &meshv1alpha1.GatewayServiceSpec{LoadBalancerIP: "10.0.0"}}),
			reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.gateways[0].service.loadBalancerIP"},
		{name: "gateway duplicate node ports", opt: withGateways(meshv1alpha1.GatewaySpec{Name: "gw", ServiceType: corev1.ServiceTypeNodePort,
			Ports: []meshv1alpha1.GatewayPort{{Name: "http", Port: 80, NodePort: 30080}, {Name: "https", Port: 443, NodePort: 30080}}}),
			reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.gateways[0].ports[1].nodePort"},
		{name: "gateway autoscaling min above max", opt: withGateways(meshv1alpha1.GatewaySpec{Name: "gw",
			Autoscaling: &meshv1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: ptr.To(int32(4)), MaxReplicas: ptr.To(int32(2))}}),
			reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.gateways[0].autoscaling.minReplicas"},
		{name: "gateway duplicate port names", opt: withGateways(meshv1alpha1.GatewaySpec{
			Name: "gw", Ports: []meshv1alpha1.GatewayPort{{Name: "http", Port: 80}, {Name: "http", Port: 8080}}}),
			reason: meshv1alpha1.ReasonInvalidSpec, field: "spec.gateways[0].ports[1].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mi := meshInstall("1.32.0", tt.opt)
			rev := mustRevision(t, DefaultRevision, "1.32.0")
			for fn, err := range map[string]error{"Validate": Validate(mi), "ControlPlane": second(ControlPlane(mi, rev)),
				"Shared": second(Shared(mi, rev))} {
				var invalid *InvalidError
				if !errors.As(err, &invalid) {
					t.Fatalf("%s: error %v is not an *InvalidError", fn, err)
				}
				if invalid.Reason != tt.reason || !strings.Contains(err.Error(), tt.field) {
					t.Errorf("%s: reason %s, error %q; want reason %s naming %s", fn, invalid.Reason, err, tt.reason, tt.field)
				}
			}
		})
	}
}

func TestGatewayMayBeNamedIstiodOutsideTheControlPlaneNamespace(t *testing.T) {
	mi := meshInstall("1.32.0", withGateways(meshv1alpha1.GatewaySpec{Name: "istiod-edge", Namespace: "edge"}))
	if err := Validate(mi); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestRevisionsAreChecked(t *testing.T) {
	mi := meshInstall("1.32.0")
	for name, rev := range map[string]Revision{
		"no version":      {Name: "canary"},
		"not a DNS label": {Name: "Canary_1", Version: mustRevision(t, DefaultRevision, "1.32.0").Version},
		"too long":        {Name: strings.Repeat("a", 57), Version: mustRevision(t, DefaultRevision, "1.32.0").Version},
	} {
		if _, err := ControlPlane(mi, rev); err == nil || !strings.Contains(err.Error(), "revision.") {
			t.Errorf("%s: ControlPlane error = %v, want one naming the revision", name, err)
		}
		if _, err := InjectionConfig(mi, rev); err == nil {
			t.Errorf("%s: InjectionConfig accepted the revision", name)
		}
	}
	if _, err := NewRevision("1-32-0", "1.29.0"); err == nil {
		t.Error("NewRevision accepted an unsupported version")
	}
}

func second[T any](_ T, err error) error { return err }

func TestRootCADirStaysWithACertManagerCA(t *testing.T) {
	env := func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Pilot.Env = map[string]string{"ROOT_CA_DIR": "/tmp/ca"} }
	if err := Validate(meshInstall("1.32.0", env)); err != nil {
		t.Errorf("ROOT_CA_DIR with istiod's own CA refused: %v", err)
	}
	err := Validate(meshInstall("1.32.0", env, withCertManagerCA(meshv1alpha1.IssuerKindClusterIssuer, "root")))
	if err == nil || !strings.Contains(err.Error(), "spec.pilot.env[ROOT_CA_DIR]") {
		t.Errorf("ROOT_CA_DIR with a cert-manager CA: got %v, want it refused naming the field", err)
	}
}
