package inject

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
)

// Request is what the webhook knows about a pod besides the pod itself.
type Request struct {
	// Namespace is the admission request's namespace: a pod being created
	// by a controller may not carry one yet.
	Namespace string
	// Workload is the pod's workload; the zero value means WorkloadOf(pod).
	Workload Workload
	// ClusterID, from the webhook path's cluster/<id>, overrides
	// Config.ClusterID.
	ClusterID string
	// Network, from the webhook path's net/<network>, overrides
	// Config.Network. A topology.istio.io/network label on the pod overrides
	// both.
	Network string
	// NamespaceLabels are the labels of the pod's namespace: when they
	// enforce a Pod Security level the pod passes and the injected pod
	// would not, Inject refuses it with a *PodSecurityError. Nil checks
	// nothing.
	NamespaceLabels map[string]string
}

// Inject returns a copy of pod with cfg's Envoy sidecar injected, as Istio's
// injector of the same version and settings would inject it, plus
// meshkeeper's stamp (AnnotationRevision, AnnotationProxyVersion,
// AnnotationConfigHash). pod is not modified.
//
// For speed, the result shares memory with pod (what injection leaves as it
// is), with cfg and with other results (the parts every injection writes
// alike: volumes, security contexts, probes, resources): treat it as
// read-only, or DeepCopy it before changing it.
//
// A pod that was already injected (it carries sidecar.istio.io/status) is
// returned as it is: meshkeeper's webhook configuration never sends one
// (webhookconfig's not-already-injected match condition), where Istio's
// injector would inject it again. So injecting Inject's output again
// returns it unchanged.
//
// Errors satisfying IsInvalid name the annotation or field that makes the pod
// impossible to inject, and a *PodSecurityError (IsPodSecurity) the settings
// that make the injected pod fail its namespace's Pod Security level; other
// errors are errors of cfg.
func Inject(pod *corev1.Pod, cfg *Config, req Request) (*corev1.Pod, error) {
	d, err := cfg.prepare()
	if err != nil {
		return nil, fmt.Errorf("injection config of revision %q: %w", cfg.Revision, err)
	}
	if _, injected := pod.Annotations[annStatus]; injected {
		return pod, nil
	}
	if err := validateAnnotations(pod.Annotations); err != nil {
		return nil, err
	}
	out := copyForInjection(pod)
	if err := reinsertOverrides(out); err != nil {
		return nil, err
	}
	in, err := newInjection(out, cfg, d, req)
	if err != nil {
		return nil, err
	}
	if err := in.apply(); err != nil {
		return nil, err
	}
	if err := in.checkPodSecurity(pod, cmp.Or(pod.Namespace, req.Namespace), req.NamespaceLabels); err != nil {
		return nil, err
	}
	return out, nil
}

// copyForInjection copies what injection changes in place (the maps of
// labels and annotations, the lists of containers, the probes and hooks it
// rewrites, the pod's security context) and shares the rest with pod.
// (Injection replaces the list of volumes rather than changing it.)
func copyForInjection(pod *corev1.Pod) *corev1.Pod {
	out := *pod
	out.Labels = copyMap(pod.Labels, 6)
	out.Annotations = copyMap(pod.Annotations, 12)
	out.Spec.InitContainers = copyContainers(pod.Spec.InitContainers)
	out.Spec.Containers = copyContainers(pod.Spec.Containers)
	if pod.Spec.SecurityContext != nil {
		sc := *pod.Spec.SecurityContext
		out.Spec.SecurityContext = &sc
	}
	return &out
}

func copyMap(m map[string]string, extra int) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m)+extra)
	for k, v := range m {
		c[k] = v
	}
	return c
}

func copyContainers(cs []corev1.Container) []corev1.Container {
	if cs == nil {
		return nil
	}
	out := append([]corev1.Container(nil), cs...)
	for i := range out {
		c := &out[i]
		c.ReadinessProbe = c.ReadinessProbe.DeepCopy()
		c.LivenessProbe = c.LivenessProbe.DeepCopy()
		c.StartupProbe = c.StartupProbe.DeepCopy()
		c.Lifecycle = c.Lifecycle.DeepCopy()
	}
	return out
}

// injection is one pod being injected: the settings resolved from the
// configuration, the request and the pod's annotations.
type injection struct {
	pod *corev1.Pod
	cfg *Config
	d   *derived

	// templates are the templates injected, in order.
	templates []string
	native    bool
	proxy     *proxySettings
	// mode is the interception mode: REDIRECT, TPROXY or NONE.
	mode string
	// statusPort is status.sidecar.istio.io/port, or Istio's 15020.
	statusPort string
	hold       bool
	workload   Workload
	// cluster and network are the values that override the template's
	// (Istio's proxyEnvs); "" when none does.
	cluster, network string
}

func newInjection(pod *corev1.Pod, cfg *Config, d *derived, req Request) (*injection, error) {
	ann := pod.Annotations
	in := &injection{pod: pod, cfg: cfg, d: d, proxy: d.proxy, statusPort: strconv.Itoa(defaultStatusPort)}
	var err error
	if in.templates, err = selectTemplates(ann[annTemplates]); err != nil {
		return nil, invalidAnnotation(annTemplates, ann[annTemplates], err)
	}
	in.native = d.native
	if v := ann[annNativeSidecar]; v != "" {
		in.native = v != "false"
	}
	if v, ok := ann[annProxyConfig]; ok {
		overlay, err := parseProxyConfigAnnotation(v)
		if err != nil {
			return nil, invalidAnnotation(annProxyConfig, v, err)
		}
		pc := proto.Clone(d.proxy.pc).(*meshconfig.ProxyConfig)
		mergeProxyConfig(pc, overlay)
		if in.proxy, err = newProxySettings(pc); err != nil {
			return nil, invalidAnnotation(annProxyConfig, v, err)
		}
	}
	in.mode = in.proxy.pc.GetInterceptionMode().String()
	if v, ok := ann[annInterceptionMode]; ok {
		in.mode = v
	}
	if v, ok := ann[annStatusPort]; ok {
		in.statusPort = v
	}
	in.hold = in.proxy.hold()
	in.workload = req.Workload
	if in.workload == (Workload{}) {
		in.workload = WorkloadOf(pod, req.Namespace)
	}
	if cfg.ClusterID != defaultClusterID {
		in.cluster = cfg.ClusterID
	}
	if req.ClusterID != "" {
		in.cluster = req.ClusterID
	}
	in.network = cfg.Network
	if req.Network != "" {
		in.network = req.Network
	}
	if n, ok := pod.Labels[labelNetwork]; ok {
		in.network = n
	}
	return in, nil
}

// selectTemplates resolves inject.istio.io/templates: a comma-separated
// list of the templates meshkeeper implements (Istio's sidecar, gateway,
// grpc-agent and grpc-simple), applied in order as Istio applies them; no
// annotation, or an empty one, is the sidecar alone.
func selectTemplates(value string) ([]string, error) {
	if v := strings.TrimSpace(value); v == "" || v == TemplateSidecar {
		return sidecarOnly, nil
	}
	names := strings.Split(value, ",")
	for i, n := range names {
		names[i] = strings.TrimSpace(n)
		switch names[i] {
		case TemplateSidecar, TemplateGateway, TemplateGRPCAgent, TemplateGRPCSimple:
		default:
			return nil, fmt.Errorf("template %q is not one meshkeeper injects: give a comma-separated list of %s, %s, %s and %s",
				names[i], TemplateSidecar, TemplateGateway, TemplateGRPCAgent, TemplateGRPCSimple)
		}
	}
	return names, nil
}

// sidecarOnly is the default list of templates, shared.
var sidecarOnly = []string{TemplateSidecar}

// hasTemplate says whether the pod gets the named template.
func (in *injection) hasTemplate(name string) bool {
	return slices.Contains(in.templates, name)
}

// apply injects, in the order Istio's injector works: the template merged
// into the pod, the user's container overrides merged over it, then the
// post-processing (cluster environment, Prometheus merge, probe rewriting,
// status, container order).
func (in *injection) apply() error {
	tmpl, err := in.render()
	if err != nil {
		return err
	}
	if err := in.merge(tmpl); err != nil {
		return err
	}
	proxy := in.proxyContainer()
	in.overrideClusterEnv(proxy)
	if err := in.mergePrometheus(proxy); err != nil {
		return err
	}
	in.rewriteProbes()
	in.stamp(tmpl)
	in.reorder()
	return nil
}

// proxyContainer returns the injected istio-proxy in the pod.
func (in *injection) proxyContainer() *corev1.Container {
	if c := findContainer(in.pod.Spec.Containers, ProxyContainerName); c != nil {
		return c
	}
	return findContainer(in.pod.Spec.InitContainers, ProxyContainerName)
}

func findContainer(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// appContainerNames are the pod's containers other than istio-proxy.
func appContainerNames(pod *corev1.Pod) []string {
	names := make([]string, 0, len(pod.Spec.Containers))
	for i := range pod.Spec.Containers {
		if n := pod.Spec.Containers[i].Name; n != ProxyContainerName {
			names = append(names, n)
		}
	}
	return names
}
