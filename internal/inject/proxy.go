package inject

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Ports of istio-proxy.
const (
	envoyPrometheusPort = 15090
	envoyHealthPort     = 15021
	readinessPath       = "/healthz/ready"
)

// sidecarProxy is the sidecar template's istio-proxy container.
func (in *injection) sidecarProxy(mounts []corev1.VolumeMount) corev1.Container {
	ann := in.pod.Annotations
	c := corev1.Container{
		Name:            ProxyContainerName,
		Image:           in.proxyImage(),
		Ports:           sharedProxyPorts,
		Args:            in.proxyArgs("sidecar"),
		Env:             in.sidecarEnv(),
		ImagePullPolicy: in.cfg.ImagePullPolicy,
		Resources:       in.resources(),
		SecurityContext: in.proxySecurityContext(),
		VolumeMounts:    mounts,
	}
	if in.native {
		c.RestartPolicy = sharedRestartAlways
	}
	switch {
	case in.hold && !in.native:
		c.Lifecycle = sharedHoldLifecycle
	case in.native && in.statusPort == sharedDrainPort:
		c.Lifecycle = sharedDrainLifecycle
	case in.native:
		c.Lifecycle = drainLifecycle(in.statusPort)
	}
	if in.statusPort != "0" {
		c.StartupProbe = sharedStartupProbe
		c.ReadinessProbe = sharedReadinessProbe
		_, delay := ann[annReadinessDelay]
		_, period := ann[annReadinessPeriod]
		_, failures := ann[annReadinessFailures]
		if delay || period || failures {
			c.ReadinessProbe = readinessProbe(
				annotationInt32(ann, annReadinessDelay, 0),
				annotationInt32(ann, annReadinessPeriod, 15),
				annotationInt32(ann, annReadinessFailures, 4))
		}
	}
	return c
}

// Parts of istio-proxy shared by every injected pod: they must not be
// modified.
var (
	sharedRestartAlways  = ptr.To(corev1.ContainerRestartPolicyAlways)
	sharedHoldLifecycle  = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"pilot-agent", "wait"}}}}
	sharedDrainPort      = strconv.Itoa(defaultStatusPort)
	sharedDrainLifecycle = drainLifecycle(sharedDrainPort)
	sharedStartupProbe   = &corev1.Probe{ProbeHandler: readinessHandler(), PeriodSeconds: 1, TimeoutSeconds: 3, FailureThreshold: 600}
	sharedReadinessProbe = readinessProbe(0, 15, 4)
	sharedProxyPorts     = []corev1.ContainerPort{{ContainerPort: envoyPrometheusPort, Protocol: corev1.ProtocolTCP, Name: "http-envoy-prom"}}
	sharedGatewaySC      = &corev1.SecurityContext{RunAsUser: ptr.To(proxyUIDInt), RunAsGroup: ptr.To(proxyUIDInt)}
)

// drainLifecycle drains Envoy when the pod starts shutting down; SIGTERM
// comes once the applications are gone.
func drainLifecycle(statusPort string) *corev1.Lifecycle {
	return &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{
		"pilot-agent", "request", "--debug-port=" + statusPort, "POST", "drain",
	}}}}
}

func readinessProbe(delay, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:        readinessHandler(),
		InitialDelaySeconds: delay,
		PeriodSeconds:       period,
		TimeoutSeconds:      3,
		FailureThreshold:    failures,
	}
}

// gatewayProxy is the gateway template's istio-proxy container.
func (in *injection) gatewayProxy(mounts []corev1.VolumeMount) corev1.Container {
	return corev1.Container{
		Name:            ProxyContainerName,
		Image:           in.proxyImage(),
		Ports:           sharedProxyPorts,
		Args:            in.proxyArgs("router"),
		Env:             in.gatewayEnv(),
		ImagePullPolicy: in.cfg.ImagePullPolicy,
		SecurityContext: sharedGatewaySC,
		ReadinessProbe:  sharedReadinessProbe,
		VolumeMounts:    mounts,
	}
}

func readinessHandler() corev1.ProbeHandler {
	return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: readinessPath, Port: intstr.FromInt32(envoyHealthPort)}}
}

func (in *injection) proxyArgs(role string) []string {
	ann := in.pod.Annotations
	return []string{
		"proxy", role,
		"--domain", "$(POD_NAMESPACE).svc." + in.d.clusterDomain,
		"--proxyLogLevel=" + annotationOr(ann, annLogLevel, in.cfg.LogLevel),
		"--proxyComponentLogLevel=" + annotationOr(ann, annComponentLogLevel, in.cfg.ComponentLogLevel),
		"--log_output_level=" + annotationOr(ann, annAgentLogLevel, defaultAgentLogLevel),
	}
}

// proxyImage is istio-proxy's image: sidecar.istio.io/proxyImage when it
// names a repository, else the configured image in the variant the pod's
// ProxyConfig or sidecar.istio.io/proxyImageType asks for.
func (in *injection) proxyImage() string {
	if img := in.pod.Annotations[annProxyImage]; strings.Contains(img, "/") {
		return img
	}
	imageType := in.proxy.pc.GetImage().GetImageType()
	if t, ok := in.pod.Annotations[annProxyImageType]; ok {
		imageType = t
	}
	return in.d.imageWithType(imageType)
}

// initImage is istio-init's image. Since 1.31 it ignores the ProxyConfig's
// image type.
func (in *injection) initImage() string {
	if in.d.minor < minorIstio131 {
		return in.proxyImage()
	}
	if img := in.pod.Annotations[annProxyImage]; strings.Contains(img, "/") {
		return img
	}
	return in.d.imageWithType(in.pod.Annotations[annProxyImageType])
}

// resources are the proxy's (and istio-init's) resources: from the
// sidecar.istio.io/proxy* annotations when any is set, else the configured.
func (in *injection) resources() corev1.ResourceRequirements {
	ann := in.pod.Annotations
	cpu, hasCPU := ann[annProxyCPU]
	mem, hasMem := ann[annProxyMemory]
	cpuLimit, hasCPULimit := ann[annProxyCPULimit]
	memLimit, hasMemLimit := ann[annProxyMemoryLimit]
	if !hasCPU && !hasMem && !hasCPULimit && !hasMemLimit {
		return in.cfg.ProxyResources // shared, not copied: read-only
	}
	var r corev1.ResourceRequirements
	if hasCPU || hasMem {
		r.Requests = corev1.ResourceList{}
		if hasCPU {
			r.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if hasMem {
			r.Requests[corev1.ResourceMemory] = resource.MustParse(mem)
		}
	}
	if hasCPULimit || hasMemLimit {
		r.Limits = corev1.ResourceList{}
		if hasCPULimit {
			r.Limits[corev1.ResourceCPU] = resource.MustParse(cpuLimit)
		}
		if hasMemLimit {
			r.Limits[corev1.ResourceMemory] = resource.MustParse(memLimit)
		}
	}
	return r
}

// proxySecurityContext is the sidecar's: non-root 1337, unless TPROXY or
// NET_BIND_SERVICE need root, or iptables trace logging needs privileges.
func (in *injection) proxySecurityContext() *corev1.SecurityContext {
	if in.proxy.pc.GetProxyMetadata()["IPTABLES_TRACE_LOGGING"] == "true" {
		return in.d.sc.trace
	}
	tproxy := in.mode == "TPROXY"
	bind := in.pod.Annotations[annCapNetBindService] == "true"
	switch {
	case tproxy && bind:
		return in.d.sc.tproxyBind
	case tproxy:
		return in.d.sc.tproxy
	case bind:
		return in.d.sc.bind
	}
	return in.d.sc.proxy
}

// istio-proxy's security contexts, shared: they must not be modified.
var (
	sharedProxySC           = proxySecurityContext()
	sharedTPROXYProxySC     = proxySecurityContext("NET_ADMIN")
	sharedBindProxySC       = proxySecurityContext("NET_BIND_SERVICE")
	sharedTPROXYBindProxySC = proxySecurityContext("NET_ADMIN", "NET_BIND_SERVICE")
	sharedTraceProxySC      = &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(true),
		Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}},
		Privileged:               ptr.To(true),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsGroup:               ptr.To(proxyUIDInt),
		RunAsNonRoot:             ptr.To(false),
		RunAsUser:                ptr.To(int64(0)),
	}
)

// proxySecurityContext: with added capabilities, the proxy runs as root.
func proxySecurityContext(add ...corev1.Capability) *corev1.SecurityContext {
	sc := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Add: add, Drop: []corev1.Capability{"ALL"}},
		Privileged:               ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsGroup:               ptr.To(proxyUIDInt),
		RunAsNonRoot:             ptr.To(true),
		RunAsUser:                ptr.To(proxyUIDInt),
	}
	if len(add) > 0 {
		sc.RunAsNonRoot = ptr.To(false)
		sc.RunAsUser = ptr.To(int64(0))
	}
	return sc
}

func annotationOr(ann map[string]string, name, def string) string {
	if v, ok := ann[name]; ok {
		return v
	}
	return def
}

// annotationInt32 reads a validated integer annotation.
func annotationInt32(ann map[string]string, name string, def int32) int32 {
	v, ok := ann[name]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return def
	}
	return int32(n)
}
