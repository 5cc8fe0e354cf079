package inject

import (
	"encoding/json"
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

// jsonObject writes the members of one JSON object.
type jsonObject struct {
	b     []byte
	first bool
	err   error
}

func beginObject(b []byte) jsonObject {
	return jsonObject{b: append(b, '{'), first: true}
}

// key starts a member named by a Go field's JSON name, which needs no
// escaping.
func (o *jsonObject) key(k string) {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

// mapKey starts a member named by a map key.
func (o *jsonObject) mapKey(k string) {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = appendJSONString(o.b, k)
	o.b = append(o.b, ':')
}

func (o *jsonObject) str(k, v string) {
	o.key(k)
	o.b = appendJSONString(o.b, v)
}

func (o *jsonObject) strOmit(k, v string) {
	if v != "" {
		o.str(k, v)
	}
}

func (o *jsonObject) int(k string, v int64) {
	o.key(k)
	o.b = strconv.AppendInt(o.b, v, 10)
}

func (o *jsonObject) intOmit(k string, v int64) {
	if v != 0 {
		o.int(k, v)
	}
}

func (o *jsonObject) boolOmit(k string, v bool) {
	if v {
		o.key(k)
		o.b = append(o.b, "true"...)
	}
}

func (o *jsonObject) boolPtr(k string, v *bool) {
	if v != nil {
		o.key(k)
		o.b = strconv.AppendBool(o.b, *v)
	}
}

func (o *jsonObject) int64Ptr(k string, v *int64) {
	if v != nil {
		o.int(k, *v)
	}
}

func (o *jsonObject) int32Ptr(k string, v *int32) {
	if v != nil {
		o.int(k, int64(*v))
	}
}

func (o *jsonObject) strings(k string, v []string) {
	if len(v) == 0 {
		return
	}
	o.key(k)
	o.b = append(o.b, '[')
	for i, s := range v {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = appendJSONString(o.b, s)
	}
	o.b = append(o.b, ']')
}

func (o *jsonObject) capabilities(k string, v []corev1.Capability) {
	if len(v) == 0 {
		return
	}
	o.key(k)
	o.b = append(o.b, '[')
	for i, c := range v {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = appendJSONString(o.b, string(c))
	}
	o.b = append(o.b, ']')
}

// std encodes a member with encoding/json (for what injection never sets).
func (o *jsonObject) std(k string, v any) {
	o.key(k)
	js, err := json.Marshal(v)
	if err != nil && o.err == nil {
		o.err = err
	}
	o.b = append(o.b, js...)
}

func (o *jsonObject) end() ([]byte, error) {
	return append(o.b, '}'), o.err
}

// sub encodes a nested value with one of these encoders.
func (o *jsonObject) sub(k string, enc func([]byte) ([]byte, error)) {
	o.key(k)
	o.value(enc)
}

// value encodes a member's value, after mapKey.
func (o *jsonObject) value(enc func([]byte) ([]byte, error)) {
	var err error
	o.b, err = enc(o.b)
	if err != nil && o.err == nil {
		o.err = err
	}
}

func appendList[T any](b []byte, items []T, enc func([]byte, *T) ([]byte, error)) ([]byte, error) {
	b = append(b, '[')
	for i := range items {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = enc(b, &items[i]); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

// list encodes a slice member, omitted when empty.
func list[T any](o *jsonObject, k string, items []T, enc func([]byte, *T) ([]byte, error)) {
	if len(items) > 0 {
		o.sub(k, func(b []byte) ([]byte, error) { return appendList(b, items, enc) })
	}
}

func appendStringMap(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, m[k])
	}
	return append(b, '}')
}

func appendQuantity(b []byte, q *resource.Quantity) ([]byte, error) {
	js, err := q.MarshalJSON()
	return append(b, js...), err
}

func appendIntOrString(b []byte, v *intstr.IntOrString) []byte {
	if v.Type == intstr.String {
		return appendJSONString(b, v.StrVal)
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
		b = appendJSONString(b, k)
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
	list(&o, "ports", c.Ports, func(b []byte, p *corev1.ContainerPort) ([]byte, error) { return appendPortJSON(b, p), nil })
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
	list(&o, "volumeMounts", c.VolumeMounts, appendVolumeMount)
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
	if s := e.ValueFrom; s != nil {
		o.sub("valueFrom", func(b []byte) ([]byte, error) {
			v := beginObject(b)
			if f := s.FieldRef; f != nil {
				v.sub("fieldRef", func(b []byte) ([]byte, error) {
					r := beginObject(b)
					r.strOmit("apiVersion", f.APIVersion)
					r.str("fieldPath", f.FieldPath)
					return r.end()
				})
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
		})
	}
	return o.end()
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
		o.b = appendJSONString(o.b, *a.Service)
	}
	if a.Mode != nil {
		o.str("mode", string(*a.Mode))
	}
	return o.end()
}

func appendLifecycle(b []byte, l *corev1.Lifecycle) ([]byte, error) {
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

// appendVolume encodes the volume sources injection uses directly and the
// others with encoding/json.
func appendVolume(b []byte, v *corev1.Volume) ([]byte, error) {
	o := beginObject(b)
	o.str("name", v.Name)
	s := &v.VolumeSource
	if s.HostPath != nil {
		o.std("hostPath", s.HostPath)
	}
	if d := s.EmptyDir; d != nil {
		o.sub("emptyDir", func(b []byte) ([]byte, error) {
			e := beginObject(b)
			e.strOmit("medium", string(d.Medium))
			if d.SizeLimit != nil {
				e.sub("sizeLimit", func(b []byte) ([]byte, error) { return appendQuantity(b, d.SizeLimit) })
			}
			e.int32Ptr("mode", d.Mode)
			return e.end()
		})
	}
	stdIf(&o, "gcePersistentDisk", s.GCEPersistentDisk)
	stdIf(&o, "awsElasticBlockStore", s.AWSElasticBlockStore)
	stdIf(&o, "gitRepo", s.GitRepo)
	stdIf(&o, "secret", s.Secret)
	stdIf(&o, "nfs", s.NFS)
	stdIf(&o, "iscsi", s.ISCSI)
	stdIf(&o, "glusterfs", s.Glusterfs)
	stdIf(&o, "persistentVolumeClaim", s.PersistentVolumeClaim)
	stdIf(&o, "rbd", s.RBD)
	stdIf(&o, "flexVolume", s.FlexVolume)
	stdIf(&o, "cinder", s.Cinder)
	stdIf(&o, "cephfs", s.CephFS)
	stdIf(&o, "flocker", s.Flocker)
	if d := s.DownwardAPI; d != nil {
		o.sub("downwardAPI", func(b []byte) ([]byte, error) {
			e := beginObject(b)
			list(&e, "items", d.Items, appendDownwardAPIFile)
			e.int32Ptr("defaultMode", d.DefaultMode)
			e.int64Ptr("defaultUser", d.DefaultUser)
			return e.end()
		})
	}
	stdIf(&o, "fc", s.FC)
	stdIf(&o, "azureFile", s.AzureFile)
	if c := s.ConfigMap; c != nil {
		o.sub("configMap", func(b []byte) ([]byte, error) {
			e := beginObject(b)
			e.strOmit("name", c.Name)
			if len(c.Items) > 0 {
				e.std("items", c.Items)
			}
			e.int32Ptr("defaultMode", c.DefaultMode)
			e.boolPtr("optional", c.Optional)
			e.int64Ptr("defaultUser", c.DefaultUser)
			return e.end()
		})
	}
	stdIf(&o, "vsphereVolume", s.VsphereVolume)
	stdIf(&o, "quobyte", s.Quobyte)
	stdIf(&o, "azureDisk", s.AzureDisk)
	stdIf(&o, "photonPersistentDisk", s.PhotonPersistentDisk)
	if p := s.Projected; p != nil {
		o.sub("projected", func(b []byte) ([]byte, error) { return appendProjected(b, p) })
	}
	stdIf(&o, "portworxVolume", s.PortworxVolume)
	stdIf(&o, "scaleIO", s.ScaleIO)
	stdIf(&o, "storageos", s.StorageOS)
	stdIf(&o, "csi", s.CSI)
	stdIf(&o, "ephemeral", s.Ephemeral)
	stdIf(&o, "image", s.Image)
	return o.end()
}

// stdIf encodes a non-nil pointer member with encoding/json.
func stdIf[T any](o *jsonObject, k string, v *T) {
	if v != nil {
		o.std(k, v)
	}
}

func appendDownwardAPIFile(b []byte, f *corev1.DownwardAPIVolumeFile) ([]byte, error) {
	o := beginObject(b)
	o.str("path", f.Path)
	if f.FieldRef != nil {
		o.sub("fieldRef", func(b []byte) ([]byte, error) {
			r := beginObject(b)
			r.strOmit("apiVersion", f.FieldRef.APIVersion)
			r.str("fieldPath", f.FieldRef.FieldPath)
			return r.end()
		})
	}
	stdIf(&o, "resourceFieldRef", f.ResourceFieldRef)
	o.int32Ptr("mode", f.Mode)
	o.int64Ptr("user", f.User)
	return o.end()
}

func appendProjected(b []byte, p *corev1.ProjectedVolumeSource) ([]byte, error) {
	o := beginObject(b)
	o.key("sources")
	if p.Sources == nil {
		o.b = append(o.b, "null"...)
	} else {
		var err error
		if o.b, err = appendList(o.b, p.Sources, appendProjection); err != nil {
			return o.b, err
		}
	}
	o.int32Ptr("defaultMode", p.DefaultMode)
	o.int64Ptr("defaultUser", p.DefaultUser)
	return o.end()
}

func appendProjection(b []byte, p *corev1.VolumeProjection) ([]byte, error) {
	o := beginObject(b)
	stdIf(&o, "secret", p.Secret)
	stdIf(&o, "downwardAPI", p.DownwardAPI)
	stdIf(&o, "configMap", p.ConfigMap)
	if t := p.ServiceAccountToken; t != nil {
		o.sub("serviceAccountToken", func(b []byte) ([]byte, error) {
			e := beginObject(b)
			e.strOmit("audience", t.Audience)
			e.int64Ptr("expirationSeconds", t.ExpirationSeconds)
			e.str("path", t.Path)
			e.int64Ptr("user", t.User)
			return e.end()
		})
	}
	stdIf(&o, "clusterTrustBundle", p.ClusterTrustBundle)
	stdIf(&o, "podCertificate", p.PodCertificate)
	return o.end()
}
