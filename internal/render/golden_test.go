package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenCase renders ControlPlane for each revision and Shared for active.
type goldenCase struct {
	name      string
	mi        *meshv1alpha1.MeshInstall
	revisions [][2]string // name, version
	active    [2]string
}

func inPlace(name string, mi *meshv1alpha1.MeshInstall) goldenCase {
	r := [2]string{DefaultRevision, mi.Spec.Version}
	return goldenCase{name: name, mi: mi, revisions: [][2]string{r}, active: r}
}

func goldenCases() []goldenCase {
	return []goldenCase{
		inPlace("default-1.32.0", meshInstall("1.32.0")),
		inPlace("minimal-1.32.0", meshInstall("1.32.0", withProfile(meshv1alpha1.ProfileMinimal))),
		inPlace("demo-1.32.0", meshInstall("1.32.0", withProfile(meshv1alpha1.ProfileDemo))),
		inPlace("default-1.31.4", meshInstall("1.31.4")),
		inPlace("default-1.30.8", meshInstall("1.30.8")),
		inPlace("replicas-3", meshInstall("1.32.0", withReplicas(3))),
		inPlace("autoscaling-2-10", meshInstall("1.32.0", withAutoscaling(2, 10))),
		inPlace("mtls-strict", meshInstall("1.32.0", withMTLS(meshv1alpha1.MTLSStrict))),
		inPlace("gateways", meshInstall("1.32.0", withGateways(
			meshv1alpha1.GatewaySpec{Name: "istio-ingressgateway", Type: meshv1alpha1.GatewayIngress},
			meshv1alpha1.GatewaySpec{Name: "istio-egressgateway", Type: meshv1alpha1.GatewayEgress},
			meshv1alpha1.GatewaySpec{
				Name: "public", Namespace: "edge", Replicas: ptr.To(int32(2)),
				ServiceType: corev1.ServiceTypeLoadBalancer,
				Ports:       []meshv1alpha1.GatewayPort{{Name: "https", Port: 443}, {Name: "http", Port: 80, TargetPort: 8080}},
				Labels:      map[string]string{"istio": "public-gateway", "team": "edge"},
				Resources: &corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi"),
				}},
			},
		))),
		{
			name:      "canary-1-32-0",
			mi:        meshInstall("1.32.0", withGateways(meshv1alpha1.GatewaySpec{Name: "istio-ingressgateway"})),
			revisions: [][2]string{{DefaultRevision, "1.31.4"}, {"1-32-0", "1.32.0"}},
			active:    [2]string{DefaultRevision, "1.31.4"},
		},
		inPlace("custom", customMeshInstall()),
		{
			name:      "overlays-canary",
			mi:        overlaysMeshInstall(),
			revisions: [][2]string{{DefaultRevision, "1.31.4"}, {"1-32-0", "1.32.0"}},
			active:    [2]string{DefaultRevision, "1.31.4"},
		},
		inPlace("placement", placementMeshInstall()),
		inPlace("gateway-loadbalancer", meshInstall("1.32.0", withGateways(
			meshv1alpha1.GatewaySpec{
				Name: "public", ServiceType: corev1.ServiceTypeLoadBalancer, Replicas: ptr.To(int32(3)),
				Ports: []meshv1alpha1.GatewayPort{
					{Name: "status-port", Port: 15021},
					{Name: "https", Port: 443, TargetPort: 8443, NodePort: 30443},
				},
				Service: &meshv1alpha1.GatewayServiceSpec{
					Annotations: map[string]string{
						"service.beta.kubernetes.io/aws-load-balancer-type":   "external",
						"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
					},
					Labels:                   map[string]string{"exposure": "public"},
					LoadBalancerIP:           "203.0.113.10",
					LoadBalancerClass:        "service.k8s.aws/nlb",
					LoadBalancerSourceRanges: []string{"203.0.113.0/24", "198.51.100.0/24"},
					ExternalTrafficPolicy:    corev1.ServiceExternalTrafficPolicyLocal,
				},
				Autoscaling: &meshv1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: ptr.To(int32(2)),
					MaxReplicas: ptr.To(int32(10)), TargetCPUUtilizationPercentage: ptr.To(int32(60))},
				PodDisruptionBudget: &meshv1alpha1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromString("50%"))},
			},
			meshv1alpha1.GatewaySpec{
				Name: "nodeport", Namespace: "edge", ServiceType: corev1.ServiceTypeNodePort, Replicas: ptr.To(int32(2)),
				Ports:   []meshv1alpha1.GatewayPort{{Name: "http2", Port: 80, TargetPort: 8080, NodePort: 30080}},
				Service: &meshv1alpha1.GatewayServiceSpec{ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster},
			},
			meshv1alpha1.GatewaySpec{
				Name: "autoscaled-from-one", Type: meshv1alpha1.GatewayEgress,
				Autoscaling: &meshv1alpha1.AutoscalingSpec{Enabled: true},
			},
		))),
	}
}

// placementMeshInstall sets every scheduling and image knob of istiod,
// the proxy and a gateway.
func placementMeshInstall() *meshv1alpha1.MeshInstall {
	placement := func(role string) meshv1alpha1.PodPlacement {
		return meshv1alpha1.PodPlacement{
			NodeSelector: map[string]string{"node-role.example.com/" + role: "true"},
			Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: role,
				Effect: corev1.TaintEffectNoSchedule}},
			Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{
						Key: "kubernetes.io/arch", Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64", "arm64"},
					}},
				}}},
			}},
			TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
				MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway,
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": role}},
			}},
			PriorityClassName: "system-cluster-critical",
			PodAnnotations:    map[string]string{"cluster-autoscaler.kubernetes.io/safe-to-evict": "true", "prometheus.io/scrape": "false"},
			PodLabels:         map[string]string{"team": "platform", "cost-center": role},
		}
	}
	return meshInstall("1.32.0", withGateways(meshv1alpha1.GatewaySpec{
		Name:             "istio-ingressgateway",
		ImagePullSecrets: []string{"gateway-registry"},
		PodPlacement: func() meshv1alpha1.PodPlacement {
			p := placement("gateway")
			p.PodLabels["istio"] = "edge" // the Gateway resources' selector, on the pods only
			p.PodAnnotations["sidecar.istio.io/proxyImageType"] = "debug"
			return p
		}(),
	}), func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.Hub = "registry.example.com/istio"
		mi.Spec.Pilot.PodPlacement = placement("istiod")
		mi.Spec.Pilot.Variant = meshv1alpha1.ImageVariantDistroless
		mi.Spec.Pilot.ImagePullPolicy = corev1.PullAlways
		mi.Spec.Pilot.ImagePullSecrets = []string{"mesh-registry"}
		mi.Spec.Proxy.Variant = meshv1alpha1.ImageVariantDistroless
		mi.Spec.Proxy.ImagePullPolicy = corev1.PullIfNotPresent
		mi.Spec.Proxy.ImagePullSecrets = []string{"mesh-registry"}
	})
}

// customMeshInstall sets every knob a user might.
func customMeshInstall() *meshv1alpha1.MeshInstall {
	return meshInstall("1.32.0", withMTLS(meshv1alpha1.MTLSPermissive), func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.Namespace = "mesh-system"
		mi.Spec.Hub = "registry.example.com/istio"
		mi.Spec.Cluster = meshv1alpha1.ClusterSpec{Name: "east", Network: "net-east", MeshID: "prod-mesh"}
		mi.Spec.MeshConfig = meshv1alpha1.MeshConfigSpec{
			AccessLogFile:         ptr.To("/dev/stdout"),
			AccessLogEncoding:     "JSON",
			AccessLogFormat:       "[%START_TIME%] %REQ(:METHOD)%\n",
			OutboundTrafficPolicy: "REGISTRY_ONLY",
			TrustDomain:           "example.com",
			EnablePrometheusMerge: ptr.To(false),
			EnableTracing:         ptr.To(true),
			DefaultConfig: meshv1alpha1.DefaultProxyConfig{
				ProxyMetadata:                   map[string]string{"ISTIO_META_DNS_CAPTURE": "true", "BOOTSTRAP_XDS_AGENT": "true"},
				Concurrency:                     ptr.To(int32(2)),
				TerminationDrainDuration:        &metav1.Duration{Duration: 90_000_000_000},
				HoldApplicationUntilProxyStarts: ptr.To(true),
			},
		}
		mi.Spec.Injection = meshv1alpha1.InjectionSpec{
			NativeSidecars: meshv1alpha1.NativeSidecarEnabled, HoldApplicationUntilProxyStarts: ptr.To(true),
			RewriteAppProbes: ptr.To(false), FailurePolicy: meshv1alpha1.FailurePolicyIgnore,
		}
		mi.Spec.Pilot.Env = map[string]string{
			"PILOT_TRACE_SAMPLING": "5", "PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER": "false",
			"COMPLIANCE_POLICY": "fips-140-3", "ENABLE_CLUSTER_TRUST_BUNDLE_API": "true",
		}
		mi.Spec.Pilot.Resources = &corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("2Gi")},
		}
		mi.Spec.Proxy = meshv1alpha1.ProxySpec{
			LogLevel: "debug", ComponentLogLevel: "misc:info",
			Resources: &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")}},
		}
	})
}

// overlaysMeshInstall patches istiod (in every revision), the mesh
// ConfigMap and a gateway Service.
func overlaysMeshInstall() *meshv1alpha1.MeshInstall {
	return meshInstall("1.32.0", withGateways(meshv1alpha1.GatewaySpec{Name: "istio-ingressgateway"}), func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.Overlays = []meshv1alpha1.Overlay{
			{
				Target: meshv1alpha1.OverlayTarget{Kind: "Deployment", Name: "istiod"},
				StrategicMerge: &runtime.RawExtension{Raw: []byte(`{"spec": {"template": {
					"metadata": {"annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"}},
					"spec": {"containers": [{"name": "discovery", "env": [{"name": "PILOT_ENABLE_STATUS", "value": "true"}]}]}}}}`)},
			},
			{
				// Tolerations have no merge key: a JSON patch appends one.
				Target: meshv1alpha1.OverlayTarget{Kind: "Deployment", Name: "istiod"},
				JSONPatch: []meshv1alpha1.JSONPatchOperation{{
					Op: meshv1alpha1.JSONPatchAdd, Path: "/spec/template/spec/tolerations/-",
					Value: &apiextensionsv1.JSON{Raw: []byte(`{"key": "dedicated", "operator": "Equal", "value": "mesh", "effect": "NoSchedule"}`)},
				}},
			},
			{
				Target: meshv1alpha1.OverlayTarget{Kind: "ConfigMap", Name: "istio"},
				JSONPatch: []meshv1alpha1.JSONPatchOperation{{
					Op: meshv1alpha1.JSONPatchAdd, Path: "/metadata/annotations",
					Value: &apiextensionsv1.JSON{Raw: []byte(`{"example.com/reviewed": "yes"}`)},
				}},
			},
			{
				Target: meshv1alpha1.OverlayTarget{Kind: "Service", Name: "istio-ingressgateway"},
				StrategicMerge: &runtime.RawExtension{Raw: []byte(
					`{"metadata": {"annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}}}`)},
			},
		}
	})
}

// render renders as a pass does: every revision's objects and the shared
// ones, then spec.overlays over all of them.
func (c goldenCase) render(t testing.TB) []client.Object {
	t.Helper()
	var objs []client.Object
	for _, r := range c.revisions {
		objs = append(objs, mustControlPlane(t, c.mi, mustRevision(t, r[0], r[1]))...)
	}
	objs = append(objs, mustShared(t, c.mi, mustRevision(t, c.active[0], c.active[1]))...)
	objs, err := ApplyOverlays(c.mi.Spec.Overlays, objs)
	if err != nil {
		t.Fatalf("ApplyOverlays: %v", err)
	}
	ApplyOrder(objs)
	return objs
}

// TestGolden compares every case with testdata/<case>.yaml; run
// `go test ./internal/render -update` to rewrite them after a deliberate change.
func TestGolden(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			got := toYAML(t, c.render(t))
			path := filepath.Join("testdata", c.name+".yaml")
			if *update {
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
				t.Errorf("%s is stale; run go test ./internal/render -update and review the diff.\n%s",
					path, firstDifference(string(want), string(got)))
			}
		})
	}
}

// TestNoOrphanGoldens fails on a golden file no case writes any more.
func TestNoOrphanGoldens(t *testing.T) {
	known := map[string]bool{}
	for _, c := range goldenCases() {
		known[c.name+".yaml"] = true
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !known[filepath.Base(f)] {
			if *update {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
				continue
			}
			t.Errorf("%s belongs to no golden case; delete it or run go test ./internal/render -update", f)
		}
	}
}

// toYAML writes objects as a multi-document YAML stream, without the
// fields Kubernetes fills in (creationTimestamp, status).
func toYAML(t testing.TB, objs []client.Object) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, o := range objs {
		var m map[string]any
		if u, ok := o.(*unstructured.Unstructured); ok {
			m = u.DeepCopy().Object
		} else {
			var err error
			if m, err = runtime.DefaultUnstructuredConverter.ToUnstructured(o); err != nil {
				t.Fatal(err)
			}
		}
		delete(m, "status")
		dropNulls(m)
		b, err := yaml.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	return buf.Bytes()
}

func dropNulls(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e == nil {
				delete(v, k)
				continue
			}
			dropNulls(e)
		}
	case []any:
		for _, e := range v {
			dropNulls(e)
		}
	}
}

func firstDifference(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl
		}
	}
	return ""
}
