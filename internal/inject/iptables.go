package inject

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// Istio's defaults for the traffic annotations (values.global.proxy.*).
const (
	defaultIncludeOutboundIPs = "*"
	defaultIncludeInboundPts  = "*"
	outboundCapturePort       = "15001"
	inboundCapturePort        = "15006"
	alwaysExcludedInbound     = "15090,15021"
)

// noTrafficCapture stands for a Config without mesh-wide capture defaults.
var noTrafficCapture TrafficCapture

// capture is the pod's traffic redirection as the sidecar template computes
// it: each traffic.sidecar.istio.io annotation, else the mesh-wide default
// of the configuration (Istio's values.global.proxy.*), else Istio's
// default. istio-init applies it; with CNI, the node agent reads it from
// the pod's annotations.
type capture struct {
	includeOutboundIPs, excludeOutboundIPs string
	includeInboundPorts                    string
	// excludeInboundPorts has the status port, not Envoy's own ports.
	excludeInboundPorts string
	// includeOutboundPorts and excludeOutboundPorts are set only when the
	// pod or the mesh names ports.
	includeOutboundPorts, excludeOutboundPorts optionalPorts
}

// optionalPorts is a list of ports that may be left out altogether.
type optionalPorts struct {
	ports string
	set   bool
}

func (in *injection) capture() capture {
	ann := in.pod.Annotations
	tc := in.cfg.TrafficCapture
	if tc == nil {
		tc = &noTrafficCapture
	}
	c := capture{
		includeOutboundIPs:  annotationOr(ann, annIncludeOutIPs, ptr.Deref(tc.IncludeOutboundIPRanges, defaultIncludeOutboundIPs)),
		excludeOutboundIPs:  annotationOr(ann, annExcludeOutIPs, tc.ExcludeOutboundIPRanges),
		includeInboundPorts: annotationOr(ann, annIncludeInPorts, ptr.Deref(tc.IncludeInboundPorts, defaultIncludeInboundPts)),
		excludeInboundPorts: excludeInboundPort(in.statusPort, annotationOr(ann, annExcludeInPorts, tc.ExcludeInboundPorts)),
	}
	if v, ok := ann[annIncludeOutPorts]; ok {
		c.includeOutboundPorts = optionalPorts{v, true}
	} else if tc.IncludeOutboundPorts != "" {
		c.includeOutboundPorts = optionalPorts{tc.IncludeOutboundPorts, true}
	}
	if v, ok := ann[annExcludeOutPorts]; ok {
		c.excludeOutboundPorts = optionalPorts{v, true}
	} else if tc.ExcludeOutboundPorts != "" {
		c.excludeOutboundPorts = optionalPorts{tc.ExcludeOutboundPorts, true}
	}
	return c
}

// initContainer is istio-init: istio-iptables redirecting the pod's traffic
// through Envoy, configured by the traffic.sidecar.istio.io annotations.
// With CNI it is istio-validation instead: the same istio-iptables
// arguments, run unprivileged to check (not to apply) the redirection the
// CNI plugin set up, so the pod does not start unmeshed.
func (in *injection) initContainer() corev1.Container {
	return corev1.Container{
		Name:            in.d.initName,
		Image:           in.initImage(),
		Args:            in.iptablesArgs(),
		Env:             in.initEnv(),
		ImagePullPolicy: in.cfg.ImagePullPolicy,
		Resources:       in.resources(),
		SecurityContext: in.d.sc.init,
	}
}

// sharedInitSC is istio-init's security context, shared: it must not be
// modified. istio-iptables needs root and NET_ADMIN, NET_RAW.
var sharedInitSC = &corev1.SecurityContext{
	AllowPrivilegeEscalation: ptr.To(false),
	Privileged:               ptr.To(false),
	Capabilities: &corev1.Capabilities{
		Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
		Drop: []corev1.Capability{"ALL"},
	},
	ReadOnlyRootFilesystem: ptr.To(false),
	RunAsGroup:             ptr.To(int64(0)),
	RunAsNonRoot:           ptr.To(false),
	RunAsUser:              ptr.To(int64(0)),
}

// sharedValidationSC is istio-validation's security context, shared: it
// must not be modified. It only checks the redirection, as the proxy's
// user (also in TPROXY mode), with no capability at all.
var sharedValidationSC = &corev1.SecurityContext{
	AllowPrivilegeEscalation: ptr.To(false),
	Privileged:               ptr.To(false),
	Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	ReadOnlyRootFilesystem:   ptr.To(true),
	RunAsGroup:               ptr.To(proxyUIDInt),
	RunAsNonRoot:             ptr.To(true),
	RunAsUser:                ptr.To(proxyUIDInt),
}

// initEnv is the ProxyConfig's proxyMetadata, which istio-iptables reads too.
func (in *injection) initEnv() []corev1.EnvVar {
	if len(in.proxy.metadata) == 0 {
		return nil
	}
	return append([]corev1.EnvVar(nil), in.proxy.metadata...)
}

// iptablesArgs follow Istio's template: the pod's capture, the interfaces
// its annotations name, and, with CNI, the validation-only flags.
func (in *injection) iptablesArgs() []string {
	ann := in.pod.Annotations
	c := in.capture()
	excluded := alwaysExcludedInbound
	if c.excludeInboundPorts != "" {
		excluded += "," + c.excludeInboundPorts
	}
	args := make([]string, 0, 26)
	args = append(args,
		"istio-iptables",
		"-p", outboundCapturePort,
		"-z", inboundCapturePort,
		"-u", proxyUID,
		"-m", in.mode,
		"-i", c.includeOutboundIPs,
		"-x", c.excludeOutboundIPs,
		"-b", c.includeInboundPorts,
		"-d", excluded,
	)
	if c.includeOutboundPorts.set {
		args = append(args, "-q", c.includeOutboundPorts.ports)
	}
	if c.excludeOutboundPorts.set {
		args = append(args, "-o", c.excludeOutboundPorts.ports)
	}
	if v, ok := ann[annRerouteIfaces]; ok {
		args = append(args, "-k", v)
	} else if v, ok := ann[annKubevirtIfaces]; ok {
		args = append(args, "-k", v)
	}
	if v, ok := ann[annExcludeIfaces]; ok {
		args = append(args, "-c", v)
	}
	args = append(args, "--log_output_level="+annotationOr(ann, annAgentLogLevel, defaultAgentLogLevel))
	if in.d.cni {
		// Check that the CNI plugin redirected the traffic; change nothing.
		args = append(args, "--run-validation", "--skip-rule-apply")
	}
	return args
}

// excludeInboundPort adds the status port to the excluded inbound ports,
// unless it is 0 or already there.
func excludeInboundPort(statusPort, excluded string) string {
	port := strings.TrimSpace(statusPort)
	if port == "" || port == "0" {
		return excluded
	}
	out := make([]string, 0, 4)
	for _, p := range strings.Split(excluded, ",") {
		if p == port {
			return excluded
		}
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(append(out, port), ",")
}
