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

// initContainer is istio-init: istio-iptables redirecting the pod's traffic
// through Envoy, configured by the traffic.sidecar.istio.io annotations.
func (in *injection) initContainer() corev1.Container {
	return corev1.Container{
		Name:            InitContainerName,
		Image:           in.initImage(),
		Args:            in.iptablesArgs(),
		Env:             in.initEnv(),
		ImagePullPolicy: in.cfg.ImagePullPolicy,
		Resources:       in.resources(),
		SecurityContext: sharedInitSC,
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

// initEnv is the ProxyConfig's proxyMetadata, which istio-iptables reads too.
func (in *injection) initEnv() []corev1.EnvVar {
	if len(in.proxy.metadata) == 0 {
		return nil
	}
	return append([]corev1.EnvVar(nil), in.proxy.metadata...)
}

// iptablesArgs follow Istio's template: each traffic.sidecar.istio.io
// annotation, else the mesh-wide default of the configuration (Istio's
// values.global.proxy.*), else Istio's default.
func (in *injection) iptablesArgs() []string {
	ann := in.pod.Annotations
	tc := in.cfg.TrafficCapture
	if tc == nil {
		tc = &noTrafficCapture
	}
	excluded := alwaysExcludedInbound
	if ports := excludeInboundPort(in.statusPort, annotationOr(ann, annExcludeInPorts, tc.ExcludeInboundPorts)); ports != "" {
		excluded += "," + ports
	}
	args := make([]string, 0, 24)
	args = append(args,
		"istio-iptables",
		"-p", outboundCapturePort,
		"-z", inboundCapturePort,
		"-u", proxyUID,
		"-m", in.mode,
		"-i", annotationOr(ann, annIncludeOutIPs, ptr.Deref(tc.IncludeOutboundIPRanges, defaultIncludeOutboundIPs)),
		"-x", annotationOr(ann, annExcludeOutIPs, tc.ExcludeOutboundIPRanges),
		"-b", annotationOr(ann, annIncludeInPorts, ptr.Deref(tc.IncludeInboundPorts, defaultIncludeInboundPts)),
		"-d", excluded,
	)
	// -q and -o only when the pod or the mesh names ports.
	if v, ok := ann[annIncludeOutPorts]; ok {
		args = append(args, "-q", v)
	} else if tc.IncludeOutboundPorts != "" {
		args = append(args, "-q", tc.IncludeOutboundPorts)
	}
	if v, ok := ann[annExcludeOutPorts]; ok {
		args = append(args, "-o", v)
	} else if tc.ExcludeOutboundPorts != "" {
		args = append(args, "-o", tc.ExcludeOutboundPorts)
	}
	if v, ok := ann[annRerouteIfaces]; ok {
		args = append(args, "-k", v)
	} else if v, ok := ann[annKubevirtIfaces]; ok {
		args = append(args, "-k", v)
	}
	if v, ok := ann[annExcludeIfaces]; ok {
		args = append(args, "-c", v)
	}
	return append(args, "--log_output_level="+annotationOr(ann, annAgentLogLevel, defaultAgentLogLevel))
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
