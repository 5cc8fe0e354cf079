package render

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
)

// An in-place upgrade must roll istiod, and only that: the same objects,
// the same replicas and strategy, only the version and image changing.
func TestInPlaceUpgradeChangesOnlyTheVersion(t *testing.T) {
	from := mustControlPlane(t, meshInstall("1.31.4", withReplicas(3)), mustRevision(t, DefaultRevision, "1.31.4"))
	to := mustControlPlane(t, meshInstall("1.32.0", withReplicas(3)), mustRevision(t, DefaultRevision, "1.32.0"))

	// The injection configuration's hash covers its version, so it differs too.
	hash := regexp.MustCompile(`(config-hash: )[0-9a-f]+`)
	got := hash.ReplaceAllString(string(toYAML(t, to)), "${1}X")
	want := hash.ReplaceAllString(strings.ReplaceAll(string(toYAML(t, from)), "1.31.4", "1.32.0"), "${1}X")
	if got != want {
		t.Errorf("upgrading 1.31.4 to 1.32.0 in place changes more than the version:\n%s", firstDifference(want, got))
	}

	before, after := find[*appsv1.Deployment](t, from, "istiod"), find[*appsv1.Deployment](t, to, "istiod")
	if img := after.Spec.Template.Spec.Containers[0].Image; img != "docker.io/istio/pilot:1.32.0" {
		t.Errorf("image = %s, want docker.io/istio/pilot:1.32.0", img)
	}
	if *after.Spec.Replicas != 3 || *before.Spec.Replicas != 3 {
		t.Errorf("replicas %d -> %d, want 3 kept", *before.Spec.Replicas, *after.Spec.Replicas)
	}
	if mu := after.Spec.Strategy.RollingUpdate.MaxUnavailable; mu.IntValue() != 0 {
		t.Errorf("maxUnavailable = %s, want 0 so istiod stays available while it rolls", mu.String())
	}
	if !reflect.DeepEqual(before.Spec.Selector, after.Spec.Selector) {
		t.Errorf("selector changed (it is immutable): %v -> %v", before.Spec.Selector, after.Spec.Selector)
	}
}

// During an in-place upgrade istiod runs the new version while new pods
// still get the old proxy: the injection configuration, its label and its
// image stay at ProxyVersion.
func TestProxyVersionTrailsTheControlPlane(t *testing.T) {
	rev := mustRevision(t, DefaultRevision, "1.32.0")
	rev.ProxyVersion = mustRevision(t, DefaultRevision, "1.31.4").Version
	objs := mustControlPlane(t, meshInstall("1.32.0"), rev)

	if img := find[*appsv1.Deployment](t, objs, "istiod").Spec.Template.Spec.Containers[0].Image; img != "docker.io/istio/pilot:1.32.0" {
		t.Errorf("istiod image = %s, want 1.32.0", img)
	}
	cm := find[*corev1.ConfigMap](t, objs, "meshkeeper-injector")
	if v := cm.Labels[LabelVersion]; v != "1.31.4" {
		t.Errorf("injection ConfigMap version label = %s, want 1.31.4", v)
	}
	cfg := &inject.Config{}
	if err := json.Unmarshal([]byte(cm.Data[InjectionConfigKey]), cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Version != "1.31.4" || cfg.ProxyImage != "docker.io/istio/proxyv2:1.31.4" {
		t.Errorf("injection config version %s image %s, want the 1.31.4 proxy", cfg.Version, cfg.ProxyImage)
	}
	if cm.Annotations[inject.AnnotationConfigHash] != cfg.Hash() {
		t.Errorf("config-hash annotation %q, want the configuration's hash %q", cm.Annotations[inject.AnnotationConfigHash], cfg.Hash())
	}
}

func TestRevisionNames(t *testing.T) {
	tests := []struct {
		rev, version                                          string
		istiod, meshConfig, injection, validator, clusterRole string
		selector                                              map[string]string
	}{
		{
			rev: DefaultRevision, version: "1.32.0",
			istiod: "istiod", meshConfig: "istio", injection: "meshkeeper-injector",
			validator: "istio-validator-istio-system", clusterRole: "istiod-clusterrole-istio-system",
			selector: map[string]string{"istio": "pilot"},
		},
		{
			rev: "1-32-0", version: "1.32.0",
			istiod: "istiod-1-32-0", meshConfig: "istio-1-32-0", injection: "meshkeeper-injector-1-32-0",
			validator: "istio-validator-1-32-0-istio-system", clusterRole: "istiod-clusterrole-1-32-0-istio-system",
			selector: map[string]string{"app": "istiod", "istio.io/rev": "1-32-0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.rev, func(t *testing.T) {
			objs := mustControlPlane(t, meshInstall(tt.version), mustRevision(t, tt.rev, tt.version))
			d := find[*appsv1.Deployment](t, objs, tt.istiod)
			if d.Spec.Template.Spec.ServiceAccountName != tt.istiod {
				t.Errorf("serviceAccountName = %s, want %s", d.Spec.Template.Spec.ServiceAccountName, tt.istiod)
			}
			if !reflect.DeepEqual(d.Spec.Selector.MatchLabels, tt.selector) {
				t.Errorf("selector = %v, want %v", d.Spec.Selector.MatchLabels, tt.selector)
			}
			find[*corev1.Service](t, objs, tt.istiod)
			find[*corev1.ServiceAccount](t, objs, tt.istiod)
			find[*rbacv1.Role](t, objs, tt.istiod)
			find[*corev1.ConfigMap](t, objs, tt.meshConfig)
			find[*corev1.ConfigMap](t, objs, tt.injection)
			find[*rbacv1.ClusterRole](t, objs, tt.clusterRole)
			crb := find[*rbacv1.ClusterRoleBinding](t, objs, tt.clusterRole)
			if s := crb.Subjects[0]; s.Name != tt.istiod || s.Namespace != "istio-system" {
				t.Errorf("%s binds %s/%s, want istio-system/%s", tt.clusterRole, s.Namespace, s.Name, tt.istiod)
			}
			vwc := find[*admissionregistrationv1.ValidatingWebhookConfiguration](t, objs, tt.validator)
			if svc := vwc.Webhooks[0].ClientConfig.Service; svc.Name != tt.istiod {
				t.Errorf("validator calls service %s, want %s", svc.Name, tt.istiod)
			}
			for _, o := range objs {
				if o.GetLabels()["istio.io/rev"] != tt.rev || o.GetLabels()[LabelRevision] != tt.rev {
					t.Errorf("%T %s: istio.io/rev=%q %s=%q, want %q", o, o.GetName(),
						o.GetLabels()["istio.io/rev"], LabelRevision, o.GetLabels()[LabelRevision], tt.rev)
				}
			}
			if env := envOf(d)["REVISION"]; env != tt.rev {
				t.Errorf("REVISION = %q, want %q", env, tt.rev)
			}
		})
	}
}

// Proxies must reach their own revision's istiod, through the mesh config
// istiod serves and the injection config the webhook uses alike.
func TestDiscoveryAddressPointsAtTheRevision(t *testing.T) {
	mi := meshInstall("1.32.0", func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Namespace = "mesh-system" })
	rev := mustRevision(t, "1-32-0", "1.32.0")
	const want = "istiod-1-32-0.mesh-system.svc:15012"

	objs := mustControlPlane(t, mi, rev)
	var mesh struct {
		DefaultConfig struct {
			DiscoveryAddress string `json:"discoveryAddress"`
		} `json:"defaultConfig"`
		RootNamespace string `json:"rootNamespace"`
	}
	if err := yaml.Unmarshal([]byte(find[*corev1.ConfigMap](t, objs, "istio-1-32-0").Data["mesh"]), &mesh); err != nil {
		t.Fatal(err)
	}
	if mesh.DefaultConfig.DiscoveryAddress != want || mesh.RootNamespace != "mesh-system" {
		t.Errorf("mesh config discoveryAddress=%q rootNamespace=%q, want %q and mesh-system",
			mesh.DefaultConfig.DiscoveryAddress, mesh.RootNamespace, want)
	}
	cfg, err := InjectionConfig(mi, rev)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DiscoveryAddress != want || cfg.CAAddress != want || cfg.DefaultProxyConfig.DiscoveryAddress != want {
		t.Errorf("injection config addresses = %q, %q, %q; want %q", cfg.DiscoveryAddress, cfg.CAAddress,
			cfg.DefaultProxyConfig.DiscoveryAddress, want)
	}
	if DiscoveryAddress("1-32-0", "mesh-system") != want {
		t.Errorf("DiscoveryAddress = %q, want %q", DiscoveryAddress("1-32-0", "mesh-system"), want)
	}
}

// The webhook reads inject.Config back from the ConfigMap.
func TestInjectionConfigMapRoundTrips(t *testing.T) {
	for _, c := range goldenCases() {
		for _, r := range c.revisions {
			rev := mustRevision(t, r[0], r[1])
			cm := find[*corev1.ConfigMap](t, mustControlPlane(t, c.mi, rev), InjectionConfigMapName(rev.Name))
			if cm.Labels[LabelInjectionConfig] != "true" || cm.Namespace != namespace(c.mi) {
				t.Errorf("%s: %s/%s lacks %s=true or is outside the control plane namespace",
					c.name, cm.Namespace, cm.Name, LabelInjectionConfig)
			}
			var got inject.Config
			if err := json.Unmarshal([]byte(cm.Data[InjectionConfigKey]), &got); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			want, err := InjectionConfig(c.mi, rev)
			if err != nil {
				t.Fatal(err)
			}
			// Quantities compare by value, not by their cached string.
			if a, b := mustJSON(t, &got), mustJSON(t, want); a != b {
				t.Errorf("%s/%s: ConfigMap holds\n%s\nwant\n%s", c.name, rev.Name, a, b)
			}
		}
	}
}

func TestInjectionConfigDefaults(t *testing.T) {
	cfg, err := InjectionConfig(meshInstall("1.31.4", withProfile(meshv1alpha1.ProfileDemo)), mustRevision(t, DefaultRevision, "1.31.4"))
	if err != nil {
		t.Fatal(err)
	}
	want := inject.Config{
		Revision: "default", Version: "1.31.4", Namespace: "istio-system",
		ProxyImage: "docker.io/istio/proxyv2:1.31.4", ClusterID: "Kubernetes",
		MeshID: "cluster.local", TrustDomain: "cluster.local",
		DiscoveryAddress: "istiod.istio-system.svc:15012", CAAddress: "istiod.istio-system.svc:15012",
		NativeSidecars: "Enabled", RewriteAppProbes: true, EnablePrometheusMerge: true,
		ProxyResources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("40Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2000m"), corev1.ResourceMemory: resource.MustParse("1024Mi")},
		},
		LogLevel: "warning", ComponentLogLevel: "misc:error",
		DefaultProxyConfig: inject.ProxyConfig{DiscoveryAddress: "istiod.istio-system.svc:15012"},
	}
	if a, b := mustJSON(t, cfg), mustJSON(t, &want); a != b {
		t.Errorf("InjectionConfig =\n%s\nwant\n%s", a, b)
	}
}

func TestProfiles(t *testing.T) {
	tests := []struct {
		profile                          meshv1alpha1.ProfileName
		cpu, memory, traceSampling       string
		hpa                              bool
		accessLogFile, extensionProvider string
	}{
		{profile: "", cpu: "500m", memory: "2Gi", traceSampling: "1", hpa: true},
		{profile: meshv1alpha1.ProfileDefault, cpu: "500m", memory: "2Gi", traceSampling: "1", hpa: true},
		{profile: meshv1alpha1.ProfileMinimal, cpu: "500m", memory: "2Gi", traceSampling: "1", hpa: true},
		{profile: meshv1alpha1.ProfileDemo, cpu: "10m", memory: "100Mi", traceSampling: "100",
			accessLogFile: "accessLogFile: /dev/stdout", extensionProvider: "jaeger-collector.istio-system.svc.cluster.local"},
	}
	for _, tt := range tests {
		t.Run(string(tt.profile), func(t *testing.T) {
			objs := mustControlPlane(t, meshInstall("1.32.0", withProfile(tt.profile)), mustRevision(t, DefaultRevision, "1.32.0"))
			d := find[*appsv1.Deployment](t, objs, "istiod")
			req := d.Spec.Template.Spec.Containers[0].Resources.Requests
			if req.Cpu().String() != tt.cpu || req.Memory().String() != tt.memory {
				t.Errorf("requests = %s/%s, want %s/%s", req.Cpu(), req.Memory(), tt.cpu, tt.memory)
			}
			if got := envOf(d)["PILOT_TRACE_SAMPLING"]; got != tt.traceSampling {
				t.Errorf("PILOT_TRACE_SAMPLING = %q, want %q", got, tt.traceSampling)
			}
			if got := has[*autoscalingv2.HorizontalPodAutoscaler](objs, "istiod"); got != tt.hpa {
				t.Errorf("HPA rendered = %v, want %v", got, tt.hpa)
			}
			mesh := find[*corev1.ConfigMap](t, objs, "istio").Data["mesh"]
			if tt.accessLogFile != "" && !strings.Contains(mesh, tt.accessLogFile) ||
				tt.accessLogFile == "" && strings.Contains(mesh, "accessLogFile") {
				t.Errorf("mesh config access log: want %q in\n%s", tt.accessLogFile, mesh)
			}
			if !strings.Contains(mesh, tt.extensionProvider) {
				t.Errorf("mesh config lacks %q:\n%s", tt.extensionProvider, mesh)
			}
		})
	}
}

func TestScaling(t *testing.T) {
	tests := []struct {
		name              string
		mi                *meshv1alpha1.MeshInstall
		replicas          *int32 // nil: left to the HPA
		hpaMin, hpaMax    int32  // 0: no HPA
		pdb, antiAffinity bool
	}{
		{name: "default profile autoscales 1-5", mi: meshInstall("1.32.0"), hpaMin: 1, hpaMax: 5, antiAffinity: true},
		{name: "demo runs one replica", mi: meshInstall("1.32.0", withProfile(meshv1alpha1.ProfileDemo)), replicas: ptr.To(int32(1))},
		{name: "explicit replicas turn autoscaling off", mi: meshInstall("1.32.0", withReplicas(3)),
			replicas: ptr.To(int32(3)), pdb: true, antiAffinity: true},
		{name: "explicit autoscaling wins over replicas", mi: meshInstall("1.32.0", withReplicas(3), withAutoscaling(2, 4)),
			hpaMin: 2, hpaMax: 4, pdb: true, antiAffinity: true},
		{name: "autoscaling on in demo", mi: meshInstall("1.32.0", withProfile(meshv1alpha1.ProfileDemo), withAutoscaling(1, 3)),
			hpaMin: 1, hpaMax: 3, antiAffinity: true},
		{name: "autoscaling explicitly off", mi: meshInstall("1.32.0", func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Pilot.Autoscaling = &meshv1alpha1.AutoscalingSpec{Enabled: false}
		}), replicas: ptr.To(int32(1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := mustControlPlane(t, tt.mi, mustRevision(t, DefaultRevision, "1.32.0"))
			d := find[*appsv1.Deployment](t, objs, "istiod")
			if !reflect.DeepEqual(d.Spec.Replicas, tt.replicas) {
				t.Errorf("replicas = %v, want %v", ptrString(d.Spec.Replicas), ptrString(tt.replicas))
			}
			if hpa := has[*autoscalingv2.HorizontalPodAutoscaler](objs, "istiod"); hpa != (tt.hpaMax > 0) {
				t.Fatalf("HPA rendered = %v, want %v", hpa, tt.hpaMax > 0)
			} else if hpa {
				h := find[*autoscalingv2.HorizontalPodAutoscaler](t, objs, "istiod")
				if *h.Spec.MinReplicas != tt.hpaMin || h.Spec.MaxReplicas != tt.hpaMax {
					t.Errorf("HPA %d-%d, want %d-%d", *h.Spec.MinReplicas, h.Spec.MaxReplicas, tt.hpaMin, tt.hpaMax)
				}
			}
			if got := has[*policyv1.PodDisruptionBudget](objs, "istiod"); got != tt.pdb {
				t.Errorf("PDB rendered = %v, want %v", got, tt.pdb)
			}
			if got := d.Spec.Template.Spec.Affinity != nil; got != tt.antiAffinity {
				t.Errorf("anti-affinity = %v, want %v", got, tt.antiAffinity)
			}
		})
	}
}

// spec.pilot.env replaces the chart's variables instead of duplicating them
// (duplicates break server-side apply), and chart conditionals follow it.
func TestPilotEnv(t *testing.T) {
	mi := meshInstall("1.32.0", func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.Pilot.Env = map[string]string{"PILOT_TRACE_SAMPLING": "5", "CLUSTER_ID": "east", "FOO": "bar",
			"PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER": "false", "MCS_API_GROUP": "mcs.example.com"}
	})
	objs := mustControlPlane(t, mi, mustRevision(t, DefaultRevision, "1.32.0"))
	d := find[*appsv1.Deployment](t, objs, "istiod")
	env := envOf(d)
	for k, v := range map[string]string{"PILOT_TRACE_SAMPLING": "5", "CLUSTER_ID": "east", "FOO": "bar", "REVISION": "default"} {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if n := len(d.Spec.Template.Spec.Containers[0].Env); n != len(env) {
		t.Errorf("%d env entries for %d names: duplicates", n, len(env))
	}
	if has[*rbacv1.ClusterRole](objs, "istiod-gateway-controller-istio-system") {
		t.Error("gateway controller role rendered although its controller is disabled")
	}
	rules := find[*rbacv1.ClusterRole](t, objs, "istiod-clusterrole-istio-system").Rules
	if !strings.Contains(mustJSON(t, rules), `"mcs.example.com"`) || strings.Contains(mustJSON(t, rules), "multicluster.x-k8s.io") {
		t.Error("MCS_API_GROUP does not replace multicluster.x-k8s.io in istiod's rules")
	}
}

// The one chart difference between the supported minors that meshkeeper
// renders: FIPS-only Go from 1.31 under COMPLIANCE_POLICY=fips-140-3.
func TestFIPSFromIstio131(t *testing.T) {
	for version, want := range map[string]string{"1.30.8": "", "1.31.0": "fips140=only", "1.32.0": "fips140=only"} {
		mi := meshInstall(version, func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Pilot.Env = map[string]string{"COMPLIANCE_POLICY": "fips-140-3"}
		})
		d := find[*appsv1.Deployment](t, mustControlPlane(t, mi, mustRevision(t, DefaultRevision, version)), "istiod")
		if got := envOf(d)["GODEBUG"]; got != want {
			t.Errorf("%s: GODEBUG = %q, want %q", version, got, want)
		}
	}
}

func TestMeshConfigDurationsAreProtobufJSON(t *testing.T) {
	mi := customMeshInstall() // terminationDrainDuration 1m30s
	cm := find[*corev1.ConfigMap](t, mustControlPlane(t, mi, mustRevision(t, DefaultRevision, "1.32.0")), "istio")
	if !strings.Contains(cm.Data["mesh"], "terminationDrainDuration: 90s") {
		t.Errorf("mesh config does not say 90s (Istio rejects Go's 1m30s):\n%s", cm.Data["mesh"])
	}
}

func envOf(d *appsv1.Deployment) map[string]string {
	env := map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	return env
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ptrString(p *int32) string {
	if p == nil {
		return "nil"
	}
	return strconv.Itoa(int(*p))
}
