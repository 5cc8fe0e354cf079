package inject

import (
	"cmp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/meshkeeper/meshkeeper/internal/inject/podpatch"
)

// Environment variables of istio-proxy Istio's injector sets or reads.
const (
	envClusterID        = "ISTIO_META_CLUSTER_ID"
	envNetwork          = "ISTIO_META_NETWORK"
	envAppProbers       = "ISTIO_KUBE_APP_PROBERS"
	envPrometheus       = "ISTIO_PROMETHEUS_ANNOTATIONS"
	envSecureMetricPort = "ENVOY_SECURE_MERGED_METRICS_PORT"
	bootstrapOverride   = "/etc/istio/custom-bootstrap/custom_bootstrap.json"
)

// sidecarEnv is the sidecar template's istio-proxy environment.
func (in *injection) sidecarEnv() []corev1.EnvVar {
	env := make([]corev1.EnvVar, 0, 24+len(in.proxy.metadata))
	env = in.commonEnv(env)
	env = append(env,
		corev1.EnvVar{Name: "ISTIO_META_APP_CONTAINERS", Value: strings.Join(appContainerNames(in.pod), ",")},
		fromEnv("GOMEMLIMIT", srcMemoryLimit),
		fromEnv("GOMAXPROCS", srcCPULimit),
	)
	mode := in.mode
	if v := in.pod.Annotations[annInterceptionMode]; v == "" {
		mode = in.proxy.pc.GetInterceptionMode().String()
	}
	workloadName := cmp.Or(in.pod.Labels[labelWorkloadName], in.workload.Name)
	return in.clusterEnv(env, mode, workloadName)
}

// gatewayEnv is the gateway template's istio-proxy environment.
func (in *injection) gatewayEnv() []corev1.EnvVar {
	env := make([]corev1.EnvVar, 0, 24+len(in.proxy.metadata))
	env = in.commonEnv(env)
	env = append(env,
		fromEnv("GOMEMLIMIT", srcMemoryLimit),
		fromEnv("GOMAXPROCS", srcCPULimit),
		corev1.EnvVar{Name: "ISTIO_META_APP_CONTAINERS", Value: strings.Join(appContainerNames(in.pod), ",")},
	)
	return in.clusterEnv(env, in.proxy.pc.GetInterceptionMode().String(), in.workload.Name)
}

// commonEnv starts both templates' environments: identity, addresses,
// PROXY_CONFIG and the pod's ports.
func (in *injection) commonEnv(env []corev1.EnvVar) []corev1.EnvVar {
	return append(env,
		corev1.EnvVar{Name: "PILOT_CERT_PROVIDER", Value: "istiod"},
		corev1.EnvVar{Name: "CA_ADDR", Value: in.d.caAddress},
		fromEnv("POD_NAME", srcPodName),
		fromEnv("POD_NAMESPACE", srcPodNamespace),
		fromEnv("INSTANCE_IP", srcPodIP),
		fromEnv("SERVICE_ACCOUNT", srcServiceAccount),
		fromEnv("HOST_IP", srcHostIP),
		fromEnv("ISTIO_CPU_LIMIT", srcCPULimit),
		corev1.EnvVar{Name: "PROXY_CONFIG", Value: in.proxy.env},
		corev1.EnvVar{Name: "ISTIO_META_POD_PORTS", Value: in.podPorts()},
	)
}

// clusterEnv ends both templates' environments: cluster, node, interception,
// network, workload, mesh and the ProxyConfig's proxyMetadata.
func (in *injection) clusterEnv(env []corev1.EnvVar, mode, workloadName string) []corev1.EnvVar {
	cluster := in.cfg.ClusterID
	if cluster == "" {
		cluster = defaultClusterID
	}
	env = append(env,
		corev1.EnvVar{Name: envClusterID, Value: cluster},
		fromEnv("ISTIO_META_NODE_NAME", srcNodeName),
		corev1.EnvVar{Name: "ISTIO_META_INTERCEPTION_MODE", Value: mode},
	)
	if in.cfg.Network != "" {
		env = append(env, corev1.EnvVar{Name: envNetwork, Value: in.cfg.Network})
	}
	if workloadName != "" {
		env = append(env, corev1.EnvVar{Name: "ISTIO_META_WORKLOAD_NAME", Value: workloadName})
	}
	if owner := in.workload.owner(); owner != "" {
		env = append(env, corev1.EnvVar{Name: "ISTIO_META_OWNER", Value: owner})
	}
	if _, ok := in.pod.Annotations[annBootstrapOverride]; ok {
		env = append(env, corev1.EnvVar{Name: "ISTIO_BOOTSTRAP_OVERRIDE", Value: bootstrapOverride})
	}
	if in.d.meshID != "" {
		env = append(env, corev1.EnvVar{Name: "ISTIO_META_MESH_ID", Value: in.d.meshID})
	}
	if in.cfg.TrustDomain != "" {
		env = append(env, corev1.EnvVar{Name: "TRUST_DOMAIN", Value: in.cfg.TrustDomain})
	}
	return append(env, in.proxy.metadata...)
}

// overrideClusterEnv moves the cluster and network that override the
// template's (webhook path, pod label, multi-cluster configuration) to the
// end of istio-proxy's environment, as Istio does, and labels the pod with
// its network.
func (in *injection) overrideClusterEnv(proxy *corev1.Container) {
	if in.network != "" {
		in.pod.Labels[labelNetwork] = in.network
	}
	if proxy == nil || (in.cluster == "" && in.network == "") {
		return
	}
	env := proxy.Env[:0]
	for _, e := range proxy.Env {
		if (e.Name == envClusterID && in.cluster != "") || (e.Name == envNetwork && in.network != "") {
			continue
		}
		env = append(env, e)
	}
	if in.cluster != "" {
		env = append(env, corev1.EnvVar{Name: envClusterID, Value: in.cluster})
	}
	if in.network != "" {
		env = append(env, corev1.EnvVar{Name: envNetwork, Value: in.network})
	}
	proxy.Env = env
}

// podPorts is ISTIO_META_POD_PORTS: the ports of the pod's containers, as a
// JSON list laid out as Istio's template lays it out. A user-supplied
// istio-proxy's ports come last, and only when it stays a regular container,
// so that re-injection yields the same value.
func (in *injection) podPorts() string {
	b := make([]byte, 0, 64)
	b = append(b, '[')
	first := true
	add := func(c *corev1.Container) {
		for i := range c.Ports {
			b = append(b, "\n    "...)
			if !first {
				b = append(b, ',')
			}
			first = false
			b = podpatch.AppendContainerPort(b, &c.Ports[i])
		}
	}
	var userProxy *corev1.Container
	for i := range in.pod.Spec.Containers {
		c := &in.pod.Spec.Containers[i]
		if c.Name == ProxyContainerName {
			userProxy = c
			continue
		}
		add(c)
	}
	if userProxy != nil && (!in.native || in.hasTemplate(TemplateGateway)) {
		add(userProxy)
	}
	b = append(b, "\n]"...)
	return string(b)
}

// Sources of the downward API variables, shared by every injected pod: they
// must not be modified.
var (
	srcPodName        = fieldSource("metadata.name")
	srcPodNamespace   = fieldSource("metadata.namespace")
	srcPodIP          = fieldSource("status.podIP")
	srcServiceAccount = fieldSource("spec.serviceAccountName")
	srcHostIP         = fieldSource("status.hostIP")
	srcNodeName       = fieldSource("spec.nodeName")
	srcCPULimit       = resourceSource("limits.cpu")
	srcMemoryLimit    = resourceSource("limits.memory")
)

func fieldSource(path string) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
}

func resourceSource(res string) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: res, Divisor: resource.MustParse("1")}}
}

func fromEnv(name string, src *corev1.EnvVarSource) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: src}
}

// envValue returns the value of the named variable.
func envValue(env []corev1.EnvVar, name string) (string, bool) {
	for i := range env {
		if env[i].Name == name {
			return env[i].Value, true
		}
	}
	return "", false
}
