package inject

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/meshkeeper/meshkeeper/internal/inject/podpatch"
)

// prober is one application probe pilot-agent runs on the kubelet's behalf,
// an entry of ISTIO_KUBE_APP_PROBERS.
type prober = podpatch.AppProber

// probeKind is one of the probes and lifecycle hooks Istio rewrites, with the
// agent path it is rewritten to.
type probeKind int

const (
	readiness probeKind = iota
	liveness
	startup
	preStop
	postStart
)

func (k probeKind) url(container string) string {
	switch k {
	case readiness:
		return "/app-health/" + container + "/readyz"
	case liveness:
		return "/app-health/" + container + "/livez"
	case startup:
		return "/app-health/" + container + "/startupz"
	case preStop:
		return "/app-lifecycle/" + container + "/prestopz"
	default:
		return "/app-lifecycle/" + container + "/poststartz"
	}
}

// rewriteProbes sends the application's HTTP, TCP and gRPC probes (and HTTP
// and TCP lifecycle hooks) through pilot-agent's status port, which runs the
// original probe, so they keep working under mTLS: the originals go to
// istio-proxy's ISTIO_KUBE_APP_PROBERS.
func (in *injection) rewriteProbes() {
	proxy := in.proxyContainer()
	if proxy == nil || !in.rewriteEnabled() {
		return
	}
	port := int32(0)
	if p, err := strconv.Atoi(in.statusPort); err == nil {
		port = int32(p)
	}
	probers := map[string]*prober{}
	meshPort := in.d.proxy.pc.GetStatusPort()
	for i := range in.pod.Spec.InitContainers {
		collectProbers(&in.pod.Spec.InitContainers[i], meshPort, port, probers)
	}
	for i := range in.pod.Spec.Containers {
		collectProbers(&in.pod.Spec.Containers[i], meshPort, port, probers)
	}
	if len(probers) > 0 {
		if js, err := podpatch.AppendAppProbers(nil, probers); err == nil {
			proxy.Env = append(proxy.Env, corev1.EnvVar{Name: envAppProbers, Value: string(js)})
		}
	}
	for i := range in.pod.Spec.Containers {
		rewriteContainerProbes(&in.pod.Spec.Containers[i], port)
	}
	for i := range in.pod.Spec.InitContainers {
		rewriteContainerProbes(&in.pod.Spec.InitContainers[i], port)
	}
}

// rewriteEnabled is sidecar.istio.io/rewriteAppHTTPProbers, or the
// configuration's default when it is absent or not a boolean.
func (in *injection) rewriteEnabled() bool {
	if v, ok := in.pod.Annotations[annRewriteProbes]; ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return in.cfg.RewriteAppProbes
}

// collectProbers adds the container's rewritable probes. Named ports are
// resolved against the container's ports. A probe aimed at the mesh's status
// port is taken as rewritten before and skipped, as Istio does; so is, for
// re-injection to change nothing, one aimed at its agent path on the pod's
// status port (port is the one probes are rewritten to).
func collectProbers(c *corev1.Container, meshPort, port int32, out map[string]*prober) {
	if c.Name == ProxyContainerName {
		return
	}
	add := func(k probeKind, p *prober) {
		if p != nil && p.HTTPGet != nil && p.HTTPGet.Port.Type == intstr.Int &&
			p.HTTPGet.Port.IntVal == port && p.HTTPGet.Path == k.url(c.Name) {
			return
		}
		if p = resolveProber(p, c, meshPort); p != nil {
			out[k.url(c.Name)] = p
		}
	}
	add(readiness, proberOf(c.ReadinessProbe))
	add(liveness, proberOf(c.LivenessProbe))
	add(startup, proberOf(c.StartupProbe))
	if c.Lifecycle != nil {
		add(preStop, hookProberOf(c.Lifecycle.PreStop))
		add(postStart, hookProberOf(c.Lifecycle.PostStart))
	}
}

func proberOf(p *corev1.Probe) *prober {
	switch {
	case p == nil:
		return nil
	case p.HTTPGet != nil:
		return &prober{HTTPGet: p.HTTPGet.DeepCopy(), TimeoutSeconds: p.TimeoutSeconds}
	case p.TCPSocket != nil:
		return &prober{TCPSocket: p.TCPSocket.DeepCopy(), TimeoutSeconds: p.TimeoutSeconds}
	case p.GRPC != nil:
		return &prober{GRPC: p.GRPC.DeepCopy(), TimeoutSeconds: p.TimeoutSeconds}
	}
	return nil
}

func hookProberOf(h *corev1.LifecycleHandler) *prober {
	switch {
	case h == nil:
		return nil
	case h.HTTPGet != nil:
		return &prober{HTTPGet: h.HTTPGet.DeepCopy()}
	case h.TCPSocket != nil:
		return &prober{TCPSocket: h.TCPSocket.DeepCopy()}
	}
	return nil
}

func resolveProber(p *prober, c *corev1.Container, meshPort int32) *prober {
	if p == nil || p.GRPC != nil {
		return p
	}
	var port *intstr.IntOrString
	if p.HTTPGet != nil {
		port = &p.HTTPGet.Port
	} else {
		port = &p.TCPSocket.Port
	}
	if port.Type == intstr.String {
		for i := range c.Ports {
			if c.Ports[i].Name != "" && c.Ports[i].Name == port.StrVal {
				*port = intstr.FromInt32(c.Ports[i].ContainerPort)
				return p
			}
		}
		return nil
	}
	if port.IntVal == meshPort {
		return nil
	}
	return p
}

// rewriteContainerProbes aims the container's rewritable probes and hooks at
// pilot-agent.
func rewriteContainerProbes(c *corev1.Container, port int32) {
	if c.Name == ProxyContainerName {
		return
	}
	rewriteProbe(c.ReadinessProbe, readiness.url(c.Name), port)
	rewriteProbe(c.LivenessProbe, liveness.url(c.Name), port)
	rewriteProbe(c.StartupProbe, startup.url(c.Name), port)
	if c.Lifecycle != nil {
		rewriteHook(c.Lifecycle.PreStop, preStop.url(c.Name), port)
		rewriteHook(c.Lifecycle.PostStart, postStart.url(c.Name), port)
	}
}

func rewriteProbe(p *corev1.Probe, url string, port int32) {
	if p == nil {
		return
	}
	switch {
	case p.HTTPGet != nil:
		rewriteHTTPGet(p.HTTPGet, url, port)
	case p.TCPSocket != nil:
		p.TCPSocket = nil
		p.HTTPGet = &corev1.HTTPGetAction{}
		rewriteHTTPGet(p.HTTPGet, url, port)
	case p.GRPC != nil:
		p.GRPC = nil
		p.HTTPGet = &corev1.HTTPGetAction{}
		rewriteHTTPGet(p.HTTPGet, url, port)
	}
}

func rewriteHook(h *corev1.LifecycleHandler, url string, port int32) {
	if h == nil {
		return
	}
	switch {
	case h.HTTPGet != nil:
		rewriteHTTPGet(h.HTTPGet, url, port)
	case h.TCPSocket != nil:
		h.TCPSocket = nil
		h.HTTPGet = &corev1.HTTPGetAction{}
		rewriteHTTPGet(h.HTTPGet, url, port)
	}
}

// rewriteHTTPGet: kubelet → HTTP → pilot-agent → (HTTPS) → application.
func rewriteHTTPGet(a *corev1.HTTPGetAction, url string, port int32) {
	a.Port = intstr.FromInt32(port)
	a.Path = url
	if a.Scheme == corev1.URISchemeHTTPS {
		a.Scheme = corev1.URISchemeHTTP
	}
}
