package translate

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/admission"
)

// The installations below are written by hand, shaped as Istio's 1.31
// charts render them (istioctl's default profile, Helm's istiod chart with
// a value set, a revisioned install with tags). Istio's own renderer
// (istio.io/istio/operator) is not a dependency of this module — the
// istio.io/istio module is built only in hack/tools/istio, for its
// binaries — and pulling it in for a test would add Istio's whole
// dependency tree to go.mod. istiod's Deployment starts from meshkeeper's
// rendering of the same version, which follows the chart (env, args), with
// the changes each value set makes.

const istioVersion = "1.31.4"

// chartMesh is the mesh config Istio's istiod chart renders with default values.
func chartMesh(ns, rev string, extra string) *corev1.ConfigMap {
	addr := "istiod" + suffix(rev) + "." + ns + ".svc:15012"
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "istio" + suffix(rev), Labels: map[string]string{"istio.io/rev": rev}},
		Data: map[string]string{"mesh": "defaultConfig:\n  discoveryAddress: " + addr + "\n" +
			"defaultProviders:\n  metrics:\n  - prometheus\nenablePrometheusMerge: true\nrootNamespace: " + ns + "\ntrustDomain: cluster.local\n" + extra,
			"meshNetworks": "networks: {}"}}
}

// chartInjector is the injector ConfigMap Istio's chart renders: its values
// (JSON) and config (YAML), cut down to what matters here.
func chartInjector(ns, rev, values, config string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "istio-sidecar-injector" + suffix(rev)},
		Data: map[string]string{"values": values, "config": config}}
}

const defaultInjectorValues = `{"global":{"proxy":{"image":"proxyv2","logLevel":"warning","componentLogLevel":"misc:error",
"holdApplicationUntilProxyStarts":false,"includeIPRanges":"*","excludeIPRanges":"","includeInboundPorts":"*","excludeInboundPorts":"",
"excludeOutboundPorts":"","resources":{"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"cpu":"2000m","memory":"1024Mi"}},"tracer":"none"},
"multiCluster":{"clusterName":"Kubernetes"},"network":"","meshID":""},"sidecarInjectorWebhook":{"rewriteAppHTTPProbe":true}}`

const defaultInjectorConfig = "policy: enabled\nalwaysInjectSelector: []\nneverInjectSelector: []\ninjectedAnnotations: {}\n" +
	"defaultTemplates: [sidecar]\ntemplates:\n  sidecar: '...'\n  gateway: '...'\n  grpc-simple: '...'\n  grpc-agent: '...'\n  waypoint: '...'\n  kube-gateway: '...'\n"

// chartIstiod is istiod as the chart renders it for rev in ns, labelled by labels.
func chartIstiod(t *testing.T, ns, rev string, labels map[string]string) *appsv1.Deployment {
	t.Helper()
	mi := &meshv1alpha1.MeshInstall{ObjectMeta: metav1.ObjectMeta{Name: "chart"}, Spec: meshv1alpha1.MeshInstallSpec{Version: istioVersion, Namespace: ns}}
	objs, err := renderRevision(mi)
	if err != nil {
		t.Fatal(err)
	}
	d := renderedIstiod(objs).DeepCopy()
	d.Name = "istiod" + suffix(rev)
	d.Labels = labels
	d.OwnerReferences = nil
	d.Spec.Template.Labels["istio.io/rev"] = rev
	return d
}

func gateway(ns, name string, replicas int32, svcType corev1.ServiceType) Gateway {
	labels := map[string]string{"app": name, "istio": strings.TrimPrefix(name, "istio-"), "sidecar.istio.io/inject": "true", "team": "edge"}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"inject.istio.io/templates": "gateway"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "istio-proxy", Image: "auto"}}}}}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Type: svcType, Ports: []corev1.ServicePort{
		{Name: "status-port", Port: 15021, TargetPort: intstr.FromInt32(15021)},
		{Name: "http2", Port: 80, TargetPort: intstr.FromInt32(8080)},
		{Name: "https", Port: 443, TargetPort: intstr.FromInt32(8443)},
	}}}
	return Gateway{Deployment: d, Service: svc}
}

func istioOperator(spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator",
		"metadata": map[string]any{"name": "installed-state", "namespace": "istio-system"}, "spec": spec}}
}

func TestTranslate(t *testing.T) {
	istioctl := map[string]string{"install.operator.istio.io/owning-resource": "installed-state", "operator.istio.io/component": "Pilot"}
	helm := map[string]string{"app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": "istiod-" + istioVersion}
	for _, tc := range []struct {
		name  string
		in    func(t *testing.T) Installation
		check func(t *testing.T, mi *meshv1alpha1.MeshInstall)
		gaps  []string
		// noGaps: settings that must not be reported (meshkeeper renders them the same).
		noGaps []string
	}{{
		name: "istioctl install, default profile, one ingress gateway",
		in: func(t *testing.T) Installation {
			return Installation{Revision: "default", Istiod: chartIstiod(t, "istio-system", "default", istioctl),
				MeshConfig: chartMesh("istio-system", "default", ""),
				Injector:   chartInjector("istio-system", "default", defaultInjectorValues, defaultInjectorConfig),
				Gateways:   []Gateway{gateway("istio-system", "istio-ingressgateway", 1, corev1.ServiceTypeLoadBalancer)},
				Tags:       map[string]string{"default": "default"},
				IstioOperator: istioOperator(map[string]any{"profile": "default", "components": map[string]any{
					"pilot": map[string]any{"enabled": true}, "ingressGateways": []any{map[string]any{"name": "istio-ingressgateway", "enabled": true}}}})}
		},
		check: func(t *testing.T, mi *meshv1alpha1.MeshInstall) {
			if mi.Spec.Version != istioVersion || mi.Spec.Namespace != "istio-system" || mi.Spec.Hub != "" || mi.Spec.Profile != "" {
				t.Errorf("version %q namespace %q hub %q profile %q", mi.Spec.Version, mi.Spec.Namespace, mi.Spec.Hub, mi.Spec.Profile)
			}
			if len(mi.Spec.Pilot.Env) != 0 || mi.Spec.Pilot.Resources != nil || mi.Spec.Pilot.Replicas != nil {
				t.Errorf("istiod as meshkeeper renders it needs no pilot settings: %+v", mi.Spec.Pilot)
			}
			if len(mi.Spec.Gateways) != 1 {
				t.Fatalf("gateways %+v", mi.Spec.Gateways)
			}
			g := mi.Spec.Gateways[0]
			if g.Name != "istio-ingressgateway" || g.Namespace != "" || g.Type != meshv1alpha1.GatewayIngress || g.ServiceType != corev1.ServiceTypeLoadBalancer ||
				len(g.Ports) != 3 || g.Ports[1].TargetPort != 8080 || !reflect.DeepEqual(g.Labels, map[string]string{"team": "edge"}) {
				t.Errorf("gateway %+v", g)
			}
			if len(mi.Spec.RevisionTags) != 0 {
				t.Errorf("the default tag always exists; tags %v", mi.Spec.RevisionTags)
			}
		},
		noGaps: []string{"meshConfig.", "istiod env", "istiod argument", "injector"},
	}, {
		name: "Helm istiod chart with a value set",
		in: func(t *testing.T) Installation {
			d := chartIstiod(t, "istio-system", "default", helm)
			d.Spec.Template.Spec.Containers[0].Image = "registry.corp.example/mirror/istio/pilot:" + istioVersion + "-distroless"
			d.Spec.Replicas = ptr.To[int32](3)
			c := &d.Spec.Template.Spec.Containers[0]
			c.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("4Gi")}}
			c.Env = append(c.Env, corev1.EnvVar{Name: "PILOT_ENABLE_STATUS", Value: "true"},
				corev1.EnvVar{Name: "LICENSE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "l"}, Key: "k"}}})
			d.Spec.Template.Spec.NodeSelector = map[string]string{"pool": "system"}
			d.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Value: "system", Effect: corev1.TaintEffectNoSchedule}}
			return Installation{Revision: "default", Istiod: d,
				MeshConfig: chartMesh("istio-system", "default", "accessLogFile: /dev/stdout\noutboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"+
					"meshMTLS:\n  minProtocolVersion: TLSV1_3\n"),
				Injector: chartInjector("istio-system", "default",
					strings.Replace(defaultInjectorValues, `"holdApplicationUntilProxyStarts":false`, `"holdApplicationUntilProxyStarts":true`, 1),
					defaultInjectorConfig+"neverInjectSelector:\n- matchLabels: {batch: \"true\"}\n"),
			}
		},
		check: func(t *testing.T, mi *meshv1alpha1.MeshInstall) {
			s := mi.Spec
			if s.Hub != "registry.corp.example/mirror/istio" || s.Pilot.Variant != meshv1alpha1.ImageVariantDistroless {
				t.Errorf("hub %q variant %q", s.Hub, s.Pilot.Variant)
			}
			if *s.Pilot.Replicas != 3 || s.Pilot.Resources.Requests.Memory().String() != "4Gi" {
				t.Errorf("pilot replicas/resources %+v", s.Pilot)
			}
			if !reflect.DeepEqual(s.Pilot.Env, map[string]string{"PILOT_ENABLE_STATUS": "true"}) {
				t.Errorf("pilot env %v", s.Pilot.Env)
			}
			if s.Pilot.NodeSelector["pool"] != "system" || len(s.Pilot.Tolerations) != 1 {
				t.Errorf("placement %+v", s.Pilot.PodPlacement)
			}
			if s.MeshConfig.AccessLogFile == nil || *s.MeshConfig.AccessLogFile != "/dev/stdout" {
				t.Errorf("accessLogFile %v", s.MeshConfig.AccessLogFile)
			}
			if s.MeshConfig.OutboundTrafficPolicy != "REGISTRY_ONLY" {
				t.Errorf("outboundTrafficPolicy %q", s.MeshConfig.OutboundTrafficPolicy)
			}
			if s.Injection.HoldApplicationUntilProxyStarts == nil || !*s.Injection.HoldApplicationUntilProxyStarts {
				t.Errorf("holdApplicationUntilProxyStarts not translated")
			}
		},
		gaps:   []string{"istiod env LICENSE", "injector neverInjectSelector", "meshConfig.meshMTLS"},
		noGaps: []string{"meshConfig.outboundTrafficPolicy", "meshConfig.accessLogFile"},
	}, {
		name: "revisioned install with tags",
		in: func(t *testing.T) Installation {
			return Installation{Revision: "1-31-4", Istiod: chartIstiod(t, "istio-system", "1-31-4", istioctl),
				MeshConfig: chartMesh("istio-system", "1-31-4", ""),
				Injector:   chartInjector("istio-system", "1-31-4", defaultInjectorValues, defaultInjectorConfig),
				Tags:       map[string]string{"default": "1-31-4", "prod": "1-31-4", "canary": "1-32-0"},
			}
		},
		check: func(t *testing.T, mi *meshv1alpha1.MeshInstall) {
			if !reflect.DeepEqual(mi.Spec.RevisionTags, []string{"prod"}) {
				t.Errorf("tags %v", mi.Spec.RevisionTags)
			}
		},
		gaps: []string{"revision name 1-31-4", "revision tag canary", "meshConfig.defaultConfig.discoveryAddress"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in(t)
			got, err := Translate(in)
			if err != nil {
				t.Fatal(err)
			}
			mi := got.MeshInstall
			tc.check(t, mi)
			var settings []string
			t.Logf("gaps: %+v", got.Gaps)
			for _, g := range got.Gaps {
				settings = append(settings, g.Setting)
			}
			for _, want := range tc.gaps {
				if !slices.ContainsFunc(settings, func(s string) bool { return strings.HasPrefix(s, want) }) {
					t.Errorf("gap %q not reported; gaps: %q", want, settings)
				}
			}
			for _, not := range tc.noGaps {
				for _, s := range settings {
					if strings.HasPrefix(s, not) {
						t.Errorf("gap %q reported for what meshkeeper renders the same", s)
					}
				}
			}
			// The MeshInstall is one meshkeeper admits...
			if err := admission.ValidateCreate(mi, nil, admission.Namespaces{}); err != nil {
				t.Fatalf("the translated MeshInstall is refused: %v", err)
			}
			// ...and renders the installation's mesh config, but for what it names as not expressed.
			assertSameMeshConfig(t, in.MeshConfig, mi, settings)
			var out bytes.Buffer
			if err := Print(&out, got, "test"); err != nil {
				t.Fatal(err)
			}
			var back meshv1alpha1.MeshInstall
			if err := yaml.UnmarshalStrict(out.Bytes(), &back); err != nil || !equality.Semantic.DeepEqual(back.Spec, mi.Spec) {
				t.Errorf("printed YAML does not read back as the MeshInstall (%v):\n%s", err, out.String())
			}
		})
	}
}

// assertSameMeshConfig renders mi and compares its mesh config with the
// installation's, key by key, skipping the keys named as gaps.
func assertSameMeshConfig(t *testing.T, theirs *corev1.ConfigMap, mi *meshv1alpha1.MeshInstall, gaps []string) {
	t.Helper()
	want, err := MeshConfigValues(theirs)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := renderRevision(mi)
	if err != nil {
		t.Fatal(err)
	}
	got, err := renderedMeshConfig(objs)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range sortedKeys(want) {
		if slices.Contains(gaps, "meshConfig."+key) {
			continue
		}
		if key == "defaultConfig" {
			w, _ := want[key].(map[string]any)
			g, _ := got[key].(map[string]any)
			for _, sub := range sortedKeys(w) {
				if !slices.Contains(gaps, "meshConfig.defaultConfig."+sub) && !reflect.DeepEqual(w[sub], g[sub]) {
					t.Errorf("meshConfig.defaultConfig.%s renders %v, the installation has %v", sub, g[sub], w[sub])
				}
			}
			continue
		}
		if !reflect.DeepEqual(want[key], got[key]) {
			t.Errorf("meshConfig.%s renders %v, the installation has %v", key, got[key], want[key])
		}
	}
}

func TestTranslateRefuses(t *testing.T) {
	if _, err := Translate(Installation{}); err == nil || !strings.Contains(err.Error(), "no istiod") {
		t.Errorf("no istiod: %v", err)
	}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istiod"},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "discovery", Image: "docker.io/istio/pilot:1.19.0"}}}}}}
	if _, err := Translate(Installation{Istiod: d}); err == nil || !strings.Contains(err.Error(), "1.19.0") {
		t.Errorf("an unsupported version must be named: %v", err)
	}
}

func TestMigrate(t *testing.T) {
	helm := map[string]string{"app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": "istiod-" + istioVersion}
	in := Installation{Revision: "1-31-4", Istiod: chartIstiod(t, "istio-system", "1-31-4", helm),
		MeshConfig: chartMesh("istio-system", "1-31-4", ""), Tags: map[string]string{"prod": "1-31-4"}}
	translated, err := Translate(in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(translated, in, "istio-system"); err == nil {
		t.Error("a migration into the foreign istiod's namespace was printed")
	}
	got, err := Migrate(translated, in, "istio-mesh")
	if err != nil {
		t.Fatal(err)
	}
	s := got.MeshInstall.Spec
	if s.Namespace != "istio-mesh" || s.UpdateStrategy.Type != meshv1alpha1.UpdateStrategyCanary || s.DataPlane.Rollout.Mode != meshv1alpha1.RolloutAutomatic ||
		s.Migration == nil || *s.Migration != (meshv1alpha1.MigrationSpec{Revision: "1-31-4", Namespace: "istio-system", ForeignControlPlane: meshv1alpha1.ForeignControlPlaneKeep}) ||
		!slices.Contains(s.RevisionTags, "prod") {
		t.Errorf("spec %+v, migration %+v", s, s.Migration)
	}
	for _, g := range got.Gaps {
		if strings.HasPrefix(g.Setting, "revision name") {
			t.Errorf("while migrating, istio.io/rev=<revision> namespaces stay injected; reported: %+v", g)
		}
	}
	for _, want := range []string{"mesh CA of istio-system", "meshConfig.rootNamespace istio-system"} {
		if !slices.ContainsFunc(got.Gaps, func(g Gap) bool { return g.Setting == want }) {
			t.Errorf("gap %q not reported: %+v", want, got.Gaps)
		}
	}
	if translated.MeshInstall.Spec.Migration != nil {
		t.Error("Migrate changed the translation it was given")
	}
	if err := admission.ValidateCreate(got.MeshInstall, nil, admission.Namespaces{}); err != nil {
		t.Errorf("the migrating MeshInstall is refused: %v", err)
	}
}
