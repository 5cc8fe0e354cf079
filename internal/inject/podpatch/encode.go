package podpatch

import (
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The webhook's patch carries whole containers and volumes; encoding/json's
// reflection is most of its cost. These encoders write the same bytes as
// encoding/json (field order, omitempty, escaping) for the types injection
// produces, without reflection; fields injection never sets are handed to
// encoding/json. encode_test.go checks them against encoding/json on
// randomly filled values, so a field added to the Kubernetes types cannot be
// silently dropped.

// appendQuantity writes what Quantity.MarshalJSON writes. String returns
// the same text, without allocating when the Quantity keeps the string it
// was parsed from; it is called on a copy because it caches what it
// computes in the Quantity, which may be shared.
func appendQuantity(b []byte, q *resource.Quantity) ([]byte, error) {
	c := *q
	b = append(b, '"')
	b = append(b, c.String()...)
	return append(b, '"'), nil
}

func appendIntOrString(b []byte, v *intstr.IntOrString) []byte {
	if v.Type == intstr.String {
		return AppendString(b, v.StrVal)
	}
	return strconv.AppendInt(b, int64(v.IntVal), 10)
}

func appendResourceList(b []byte, l corev1.ResourceList) ([]byte, error) {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, k)
		b = append(b, ':')
		q := l[corev1.ResourceName(k)]
		var err error
		if b, err = appendQuantity(b, &q); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

func appendContainer(b []byte, c *corev1.Container) ([]byte, error) {
	o := beginObject(b)
	o.str("name", c.Name)
	o.strOmit("image", c.Image)
	o.strings("command", c.Command)
	o.strings("args", c.Args)
	o.strOmit("workingDir", c.WorkingDir)
	if len(c.Ports) > 0 {
		o.sub("ports", func(b []byte) ([]byte, error) {
			if b, ok := cachedListJSON(b, c.Ports); ok {
				return b, nil
			}
			return appendList(b, c.Ports, func(b []byte, p *corev1.ContainerPort) ([]byte, error) { return AppendContainerPort(b, p), nil })
		})
	}
	if len(c.EnvFrom) > 0 {
		o.std("envFrom", c.EnvFrom)
	}
	list(&o, "env", c.Env, appendEnvVar)
	o.sub("resources", func(b []byte) ([]byte, error) { return appendResources(b, &c.Resources) })
	if len(c.ResizePolicy) > 0 {
		o.std("resizePolicy", c.ResizePolicy)
	}
	if c.RestartPolicy != nil {
		o.str("restartPolicy", string(*c.RestartPolicy))
	}
	if len(c.RestartPolicyRules) > 0 {
		o.std("restartPolicyRules", c.RestartPolicyRules)
	}
	if len(c.VolumeMounts) > 0 {
		o.sub("volumeMounts", func(b []byte) ([]byte, error) {
			if b, ok := cachedListJSON(b, c.VolumeMounts); ok {
				return b, nil
			}
			return appendList(b, c.VolumeMounts, appendVolumeMount)
		})
	}
	if len(c.VolumeDevices) > 0 {
		o.std("volumeDevices", c.VolumeDevices)
	}
	probe := func(k string, p *corev1.Probe) {
		if p != nil {
			o.sub(k, func(b []byte) ([]byte, error) { return appendProbe(b, p) })
		}
	}
	probe("livenessProbe", c.LivenessProbe)
	probe("readinessProbe", c.ReadinessProbe)
	probe("startupProbe", c.StartupProbe)
	if c.Lifecycle != nil {
		o.sub("lifecycle", func(b []byte) ([]byte, error) { return appendLifecycle(b, c.Lifecycle) })
	}
	o.strOmit("terminationMessagePath", c.TerminationMessagePath)
	o.strOmit("terminationMessagePolicy", string(c.TerminationMessagePolicy))
	o.strOmit("imagePullPolicy", string(c.ImagePullPolicy))
	if c.SecurityContext != nil {
		o.sub("securityContext", func(b []byte) ([]byte, error) { return appendSecurityContext(b, c.SecurityContext) })
	}
	o.boolOmit("stdin", c.Stdin)
	o.boolOmit("stdinOnce", c.StdinOnce)
	o.boolOmit("tty", c.TTY)
	return o.end()
}

func appendEnvVar(b []byte, e *corev1.EnvVar) ([]byte, error) {
	o := beginObject(b)
	o.str("name", e.Name)
	o.strOmit("value", e.Value)
	if e.ValueFrom != nil {
		o.sub("valueFrom", func(b []byte) ([]byte, error) { return appendEnvVarSource(b, e.ValueFrom) })
	}
	return o.end()
}

func appendFieldRef(b []byte, f *corev1.ObjectFieldSelector) ([]byte, error) {
	r := beginObject(b)
	r.strOmit("apiVersion", f.APIVersion)
	r.str("fieldPath", f.FieldPath)
	return r.end()
}

func appendEnvVarSource(b []byte, s *corev1.EnvVarSource) ([]byte, error) {
	if b, ok := cachedJSON(b, s); ok {
		return b, nil
	}
	v := beginObject(b)
	if f := s.FieldRef; f != nil {
		v.sub("fieldRef", func(b []byte) ([]byte, error) { return appendFieldRef(b, f) })
	}
	if f := s.ResourceFieldRef; f != nil {
		v.sub("resourceFieldRef", func(b []byte) ([]byte, error) {
			r := beginObject(b)
			r.strOmit("containerName", f.ContainerName)
			r.str("resource", f.Resource)
			r.sub("divisor", func(b []byte) ([]byte, error) { return appendQuantity(b, &f.Divisor) })
			return r.end()
		})
	}
	if s.ConfigMapKeyRef != nil {
		v.std("configMapKeyRef", s.ConfigMapKeyRef)
	}
	if s.SecretKeyRef != nil {
		v.std("secretKeyRef", s.SecretKeyRef)
	}
	if s.FileKeyRef != nil {
		v.std("fileKeyRef", s.FileKeyRef)
	}
	return v.end()
}

func appendResources(b []byte, r *corev1.ResourceRequirements) ([]byte, error) {
	o := beginObject(b)
	if len(r.Limits) > 0 {
		o.sub("limits", func(b []byte) ([]byte, error) { return appendResourceList(b, r.Limits) })
	}
	if len(r.Requests) > 0 {
		o.sub("requests", func(b []byte) ([]byte, error) { return appendResourceList(b, r.Requests) })
	}
	if len(r.Claims) > 0 {
		o.std("claims", r.Claims)
	}
	return o.end()
}

func appendVolumeMount(b []byte, m *corev1.VolumeMount) ([]byte, error) {
	o := beginObject(b)
	o.str("name", m.Name)
	o.boolOmit("readOnly", m.ReadOnly)
	if m.RecursiveReadOnly != nil {
		o.str("recursiveReadOnly", string(*m.RecursiveReadOnly))
	}
	o.str("mountPath", m.MountPath)
	o.strOmit("subPath", m.SubPath)
	if m.MountPropagation != nil {
		o.str("mountPropagation", string(*m.MountPropagation))
	}
	o.strOmit("subPathExpr", m.SubPathExpr)
	if len(m.BindMountOptions) > 0 {
		o.std("bindMountOptions", m.BindMountOptions)
	}
	return o.end()
}

func appendProbe(b []byte, p *corev1.Probe) ([]byte, error) {
	if b, ok := cachedJSON(b, p); ok {
		return b, nil
	}
	o := beginObject(b)
	appendProbeHandler(&o, &p.ProbeHandler)
	o.intOmit("initialDelaySeconds", int64(p.InitialDelaySeconds))
	o.intOmit("timeoutSeconds", int64(p.TimeoutSeconds))
	o.intOmit("periodSeconds", int64(p.PeriodSeconds))
	o.intOmit("successThreshold", int64(p.SuccessThreshold))
	o.intOmit("failureThreshold", int64(p.FailureThreshold))
	o.int64Ptr("terminationGracePeriodSeconds", p.TerminationGracePeriodSeconds)
	return o.end()
}

func appendProbeHandler(o *jsonObject, h *corev1.ProbeHandler) {
	if h.Exec != nil {
		o.sub("exec", func(b []byte) ([]byte, error) { return appendExec(b, h.Exec) })
	}
	if h.HTTPGet != nil {
		o.sub("httpGet", func(b []byte) ([]byte, error) { return appendHTTPGet(b, h.HTTPGet) })
	}
	if h.TCPSocket != nil {
		o.sub("tcpSocket", func(b []byte) ([]byte, error) { return appendTCPSocket(b, h.TCPSocket) })
	}
	if h.GRPC != nil {
		o.sub("grpc", func(b []byte) ([]byte, error) { return appendGRPC(b, h.GRPC) })
	}
}

func appendExec(b []byte, e *corev1.ExecAction) ([]byte, error) {
	o := beginObject(b)
	o.strings("command", e.Command)
	return o.end()
}

func appendHTTPGet(b []byte, a *corev1.HTTPGetAction) ([]byte, error) {
	o := beginObject(b)
	o.strOmit("path", a.Path)
	o.key("port")
	o.b = appendIntOrString(o.b, &a.Port)
	o.strOmit("host", a.Host)
	o.strOmit("scheme", string(a.Scheme))
	list(&o, "httpHeaders", a.HTTPHeaders, func(b []byte, h *corev1.HTTPHeader) ([]byte, error) {
		hdr := beginObject(b)
		hdr.str("name", h.Name)
		hdr.str("value", h.Value)
		return hdr.end()
	})
	if a.Protocol != nil {
		o.str("protocol", string(*a.Protocol))
	}
	return o.end()
}

func appendTCPSocket(b []byte, a *corev1.TCPSocketAction) ([]byte, error) {
	o := beginObject(b)
	o.key("port")
	o.b = appendIntOrString(o.b, &a.Port)
	o.strOmit("host", a.Host)
	return o.end()
}

func appendGRPC(b []byte, a *corev1.GRPCAction) ([]byte, error) {
	o := beginObject(b)
	o.int("port", int64(a.Port))
	o.key("service")
	if a.Service == nil {
		o.b = append(o.b, "null"...)
	} else {
		o.b = AppendString(o.b, *a.Service)
	}
	if a.Mode != nil {
		o.str("mode", string(*a.Mode))
	}
	return o.end()
}

func appendLifecycle(b []byte, l *corev1.Lifecycle) ([]byte, error) {
	if b, ok := cachedJSON(b, l); ok {
		return b, nil
	}
	o := beginObject(b)
	hook := func(k string, h *corev1.LifecycleHandler) {
		if h != nil {
			o.sub(k, func(b []byte) ([]byte, error) { return appendLifecycleHandler(b, h) })
		}
	}
	hook("postStart", l.PostStart)
	hook("preStop", l.PreStop)
	if l.StopSignal != nil {
		o.str("stopSignal", string(*l.StopSignal))
	}
	return o.end()
}

func appendLifecycleHandler(b []byte, h *corev1.LifecycleHandler) ([]byte, error) {
	o := beginObject(b)
	if h.Exec != nil {
		o.sub("exec", func(b []byte) ([]byte, error) { return appendExec(b, h.Exec) })
	}
	if h.HTTPGet != nil {
		o.sub("httpGet", func(b []byte) ([]byte, error) { return appendHTTPGet(b, h.HTTPGet) })
	}
	if h.TCPSocket != nil {
		o.sub("tcpSocket", func(b []byte) ([]byte, error) { return appendTCPSocket(b, h.TCPSocket) })
	}
	if h.Sleep != nil {
		o.std("sleep", h.Sleep)
	}
	return o.end()
}

func appendSecurityContext(b []byte, s *corev1.SecurityContext) ([]byte, error) {
	if b, ok := cachedJSON(b, s); ok {
		return b, nil
	}
	o := beginObject(b)
	if c := s.Capabilities; c != nil {
		o.sub("capabilities", func(b []byte) ([]byte, error) {
			caps := beginObject(b)
			caps.capabilities("add", c.Add)
			caps.capabilities("drop", c.Drop)
			return caps.end()
		})
	}
	o.boolPtr("privileged", s.Privileged)
	if s.SELinuxOptions != nil {
		o.std("seLinuxOptions", s.SELinuxOptions)
	}
	if s.WindowsOptions != nil {
		o.std("windowsOptions", s.WindowsOptions)
	}
	o.int64Ptr("runAsUser", s.RunAsUser)
	o.int64Ptr("runAsGroup", s.RunAsGroup)
	o.boolPtr("runAsNonRoot", s.RunAsNonRoot)
	o.boolPtr("readOnlyRootFilesystem", s.ReadOnlyRootFilesystem)
	o.boolPtr("allowPrivilegeEscalation", s.AllowPrivilegeEscalation)
	if s.ProcMount != nil {
		o.str("procMount", string(*s.ProcMount))
	}
	if s.SeccompProfile != nil {
		o.std("seccompProfile", s.SeccompProfile)
	}
	if s.AppArmorProfile != nil {
		o.std("appArmorProfile", s.AppArmorProfile)
	}
	return o.end()
}

// AppendContainerPort appends p as encoding/json would marshal it.
func AppendContainerPort(b []byte, p *corev1.ContainerPort) []byte {
	b = append(b, '{')
	if p.Name != "" {
		b = append(b, `"name":`...)
		b = AppendString(b, p.Name)
		b = append(b, ',')
	}
	if p.HostPort != 0 {
		b = append(b, `"hostPort":`...)
		b = strconv.AppendInt(b, int64(p.HostPort), 10)
		b = append(b, ',')
	}
	b = append(b, `"containerPort":`...)
	b = strconv.AppendInt(b, int64(p.ContainerPort), 10)
	if p.Protocol != "" {
		b = append(b, `,"protocol":`...)
		b = AppendString(b, string(p.Protocol))
	}
	if p.HostIP != "" {
		b = append(b, `,"hostIP":`...)
		b = AppendString(b, p.HostIP)
	}
	return append(b, '}')
}
