package translate

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// identityEnv are istiod variables that name its pod and revision:
// meshkeeper sets them itself and spec.pilot.env may not.
var identityEnv = []string{"REVISION", "POD_NAME", "POD_NAMESPACE", "SERVICE_ACCOUNT"}

// pilot translates istiod's replicas, resources, environment and placement
// where they differ from what meshkeeper renders.
func (t *translation) pilot(baseline []client.Object) {
	theirs := t.in.Istiod
	ours := renderedIstiod(baseline)
	p := &t.mi.Spec.Pilot
	if theirs.Spec.Replicas != nil && (ours == nil || !reflect.DeepEqual(theirs.Spec.Replicas, ours.Spec.Replicas)) {
		p.Replicas = theirs.Spec.Replicas
	}
	c := discovery(theirs)
	var our *corev1.Container
	if ours != nil {
		our = discovery(ours)
	}
	if our == nil || !equality.Semantic.DeepEqual(c.Resources, our.Resources) {
		p.Resources = c.Resources.DeepCopy()
	}
	t.env(c, our)
	if our != nil {
		for i, a := range c.Args {
			domain := a == "--domain" || strings.HasPrefix(a, "--domain=") || i > 0 && c.Args[i-1] == "--domain"
			if !domain && !slices.Contains(our.Args, a) {
				t.gap("istiod argument "+a, "meshkeeper renders istiod's arguments from the spec; set the matching pilot.env or meshConfig setting if there is one")
			}
		}
	}
	// The API server defaults an unset policy to IfNotPresent for a tagged image: that is no setting of the user's.
	if c.ImagePullPolicy != "" && c.ImagePullPolicy != corev1.PullIfNotPresent && (our == nil || c.ImagePullPolicy != our.ImagePullPolicy) {
		p.ImagePullPolicy = c.ImagePullPolicy
	}
	for _, s := range theirs.Spec.Template.Spec.ImagePullSecrets {
		p.ImagePullSecrets = append(p.ImagePullSecrets, s.Name)
	}
	var ourSpec *corev1.PodSpec
	var ourAnnotations map[string]string
	if ours != nil {
		ourSpec, ourAnnotations = &ours.Spec.Template.Spec, ours.Spec.Template.Annotations
	}
	p.PodPlacement = placement(&theirs.Spec.Template, ourSpec, ourAnnotations)
}

// env puts into spec.pilot.env every variable of istiod's that meshkeeper
// does not render the same, and names the ones it cannot carry.
func (t *translation) env(c, our *corev1.Container) {
	var ourEnv []corev1.EnvVar
	if our != nil {
		ourEnv = our.Env
	}
	for _, e := range c.Env {
		if slices.Contains(identityEnv, e.Name) {
			continue
		}
		if i := slices.IndexFunc(ourEnv, func(o corev1.EnvVar) bool { return o.Name == e.Name }); i >= 0 && equality.Semantic.DeepEqual(ourEnv[i], e) {
			continue
		}
		if e.ValueFrom != nil {
			t.gap("istiod env "+e.Name, "it takes its value from a field, Secret or ConfigMap; spec.pilot.env holds plain values")
			continue
		}
		if t.mi.Spec.Pilot.Env == nil {
			t.mi.Spec.Pilot.Env = map[string]string{}
		}
		t.mi.Spec.Pilot.Env[e.Name] = e.Value
	}
	for _, o := range ourEnv {
		if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == o.Name }) && !slices.Contains(identityEnv, o.Name) {
			t.gap("istiod env "+o.Name, "meshkeeper sets it (%s) and the installation does not; it cannot be unset", envValue(o))
		}
	}
}

func envValue(e corev1.EnvVar) string {
	if e.ValueFrom != nil {
		return "from a field or object"
	}
	return fmt.Sprintf("%q", e.Value)
}

// placement is a pod template's scheduling and extra annotations, where
// they differ from meshkeeper's rendering (ours may be nil).
func placement(theirs *corev1.PodTemplateSpec, ours *corev1.PodSpec, ourAnnotations map[string]string) meshv1alpha1.PodPlacement {
	if ours == nil {
		ours = &corev1.PodSpec{}
	}
	s := theirs.Spec
	var p meshv1alpha1.PodPlacement
	if !reflect.DeepEqual(s.NodeSelector, ours.NodeSelector) {
		p.NodeSelector = s.NodeSelector
	}
	if !equality.Semantic.DeepEqual(s.Tolerations, ours.Tolerations) {
		p.Tolerations = s.Tolerations
	}
	if !equality.Semantic.DeepEqual(s.Affinity, ours.Affinity) {
		p.Affinity = s.Affinity
	}
	if !equality.Semantic.DeepEqual(s.TopologySpreadConstraints, ours.TopologySpreadConstraints) {
		p.TopologySpreadConstraints = s.TopologySpreadConstraints
	}
	if s.PriorityClassName != ours.PriorityClassName {
		p.PriorityClassName = s.PriorityClassName
	}
	for k, v := range theirs.Annotations {
		if ourAnnotations[k] == v || strings.HasSuffix(strings.SplitN(k, "/", 2)[0], "istio.io") || strings.HasPrefix(k, "prometheus.io/") || k == "kubectl.kubernetes.io/restartedAt" {
			continue // Istio's own, meshkeeper's own, or a restart stamp
		}
		if p.PodAnnotations == nil {
			p.PodAnnotations = map[string]string{}
		}
		p.PodAnnotations[k] = v
	}
	return p
}

// renderedIstiod is istiod among meshkeeper's rendered objects; nil if absent.
func renderedIstiod(objs []client.Object) *appsv1.Deployment {
	for _, o := range objs {
		if d, ok := o.(*appsv1.Deployment); ok && d.Name == render.IstiodName(render.DefaultRevision) {
			return d
		}
	}
	return nil
}

// injector translates what the revision's injector ConfigMap holds that
// the MeshInstall has fields for (values), and names the rest of its
// configuration that differs from Istio's defaults (config).
func (t *translation) injector() {
	cm := t.in.Injector
	if cm == nil {
		t.gap("injector configuration", "no istio-sidecar-injector%s ConfigMap was found; meshkeeper's defaults apply", suffix(t.in.Revision))
		return
	}
	values := map[string]any{}
	if err := json.Unmarshal([]byte(cm.Data["values"]), &values); err != nil && cm.Data["values"] != "" {
		t.gap("injector values", "key values of ConfigMap %s/%s is not JSON: %v", cm.Namespace, cm.Name, err)
	}
	t.injectorValues(values)
	config := map[string]any{}
	if err := yaml.Unmarshal([]byte(cm.Data["config"]), &config); err != nil {
		t.gap("injector config", "key config of ConfigMap %s/%s is not YAML: %v", cm.Namespace, cm.Name, err)
		return
	}
	if policy, _ := config["policy"].(string); policy == "disabled" {
		t.gap("injector policy disabled", "meshkeeper's injector injects namespaces labelled for injection; pods opt out with sidecar.istio.io/inject=false")
	}
	for _, key := range []string{"neverInjectSelector", "alwaysInjectSelector", "injectedAnnotations"} {
		if v, ok := config[key]; ok && !empty(v) {
			t.gap("injector "+key, "meshkeeper's injector has no such setting")
		}
	}
	if templates, ok := config["templates"].(map[string]any); ok {
		for _, name := range sortedKeys(templates) {
			if !slices.Contains(istioTemplates, name) {
				t.gap("injector template "+name, "meshkeeper injects its own templates (sidecar, gateway, grpc-agent, grpc-simple); a custom template is not carried over")
			}
		}
	}
	if d, ok := config["defaultTemplates"].([]any); ok && !reflect.DeepEqual(d, []any{"sidecar"}) {
		t.gap("injector defaultTemplates", "meshkeeper injects the sidecar template unless a pod asks for another")
	}
}

// istioTemplates are the injection templates Istio's charts ship.
var istioTemplates = []string{"sidecar", "gateway", "grpc-simple", "grpc-agent", "waypoint", "kube-gateway", "spire"}

func empty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// injectorValues takes the chart values the MeshInstall has fields for.
func (t *translation) injectorValues(values map[string]any) {
	s := &t.mi.Spec
	get := func(path ...string) (any, bool) {
		var v any = values
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = m[p]; !ok {
				return nil, false
			}
		}
		return v, v != nil
	}
	str := func(path ...string) string {
		v, _ := get(path...)
		s, _ := v.(string)
		return s
	}
	if v, ok := get("global", "proxy", "resources"); ok {
		var r corev1.ResourceRequirements
		if decodeStrict(v, &r) == nil {
			s.Proxy.Resources = &r
		} else {
			t.gap("injector values global.proxy.resources", "not resource requirements")
		}
	}
	if l := str("global", "proxy", "logLevel"); l != "" {
		s.Proxy.LogLevel = meshv1alpha1.ProxyLogLevel(l)
	}
	s.Proxy.ComponentLogLevel = str("global", "proxy", "componentLogLevel")
	if v, ok := get("global", "proxy", "holdApplicationUntilProxyStarts"); ok {
		if b, isBool := v.(bool); isBool {
			s.Injection.HoldApplicationUntilProxyStarts = &b
		}
	}
	if v, ok := get("sidecarInjectorWebhook", "rewriteAppHTTPProbe"); ok {
		if b, isBool := v.(bool); isBool {
			s.Injection.RewriteAppProbes = &b
		}
	}
	capture := &s.Injection.TrafficCapture
	if v := str("global", "proxy", "includeIPRanges"); v != "" {
		capture.IncludeOutboundIPRanges = &v
	}
	capture.ExcludeOutboundIPRanges = str("global", "proxy", "excludeIPRanges")
	if v := str("global", "proxy", "includeInboundPorts"); v != "" {
		capture.IncludeInboundPorts = &v
	}
	capture.ExcludeInboundPorts = str("global", "proxy", "excludeInboundPorts")
	capture.IncludeOutboundPorts = str("global", "proxy", "includeOutboundPorts")
	capture.ExcludeOutboundPorts = str("global", "proxy", "excludeOutboundPorts")
	if name := str("global", "multiCluster", "clusterName"); name != "" && name != "Kubernetes" {
		s.Cluster.Name = name
	}
	s.Cluster.Network = str("global", "network")
	s.Cluster.MeshID = str("global", "meshID")
	if v := str("global", "proxy", "image"); v != "" && v != "proxyv2" {
		t.gap("injector values global.proxy.image "+v, "set spec.proxy.image by hand if this image is a rebuild of Istio's proxyv2")
	}
	if v, ok := get("global", "proxy", "tracer"); ok && v != "" && v != "none" {
		t.gap("injector values global.proxy.tracer", "meshkeeper configures tracing through spec.meshConfig extensionProviders")
	}
}
