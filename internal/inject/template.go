package inject

import (
	"cmp"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// rendered is what Istio's injection template yields for a pod: the parts
// merged into it.
type rendered struct {
	labels         []keyValue
	annotations    []keyValue
	initContainers []corev1.Container
	containers     []corev1.Container
	volumes        []corev1.Volume
	// sysctls replace the pod's (the gateway template's pod securityContext).
	sysctls []corev1.Sysctl
	// imagePullSecrets come before the pod's own.
	imagePullSecrets []corev1.LocalObjectReference
	// status is sidecar.istio.io/status: what the template injects.
	status string
}

type keyValue struct{ key, value string }

// render builds the selected templates for the pod. Several templates are
// overlaid in order, each over the previous ones, as Istio's injector
// overlays them.
func (in *injection) render() (*rendered, error) {
	if len(in.templates) == 1 {
		return in.renderTemplate(in.templates[0])
	}
	var out *rendered
	for _, name := range in.templates {
		t, err := in.renderTemplate(name)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = t
			continue
		}
		if out, err = overlay(out, t); err != nil {
			return nil, err
		}
	}
	out.status = statusJSON(out, in.d.revision)
	return out, nil
}

func (in *injection) renderTemplate(name string) (*rendered, error) {
	switch name {
	case TemplateGateway:
		return in.renderGateway()
	case TemplateGRPCAgent:
		return in.renderGRPCAgent()
	case TemplateGRPCSimple:
		return in.renderGRPCSimple(), nil
	}
	return in.renderSidecar()
}

func (in *injection) renderSidecar() (*rendered, error) {
	vols, mounts, err := in.volumes(true)
	if err != nil {
		return nil, err
	}
	t := &rendered{volumes: vols, imagePullSecrets: in.d.pullSecrets}
	t.labels = append(t.labels, keyValue{labelTLSMode, cmp.Or(in.pod.Labels[labelTLSMode], "istio")})
	if in.proxy.pc.GetProxyMetadata()["ISTIO_META_ENABLE_HBONE"] == "true" {
		t.labels = append(t.labels, keyValue{labelTunnel, cmp.Or(in.pod.Labels[labelTunnel], "http")})
	}
	t.labels = append(t.labels,
		keyValue{labelCanonicalName, in.canonicalName(true)},
		keyValue{labelCanonicalRevision, in.canonicalRevision()})
	t.annotations = in.templateAnnotations()
	if in.d.cni {
		t.annotations = append(t.annotations, in.cniAnnotations()...)
	}

	proxy := in.sidecarProxy(mounts)
	hasInit := in.mode != "NONE"
	// Room for the pod's own containers, which merge appends.
	if hasInit || in.native {
		t.initContainers = make([]corev1.Container, 0, 2+len(in.pod.Spec.InitContainers))
	}
	if hasInit {
		t.initContainers = append(t.initContainers, in.initContainer())
	}
	if in.native {
		t.initContainers = append(t.initContainers, proxy)
	} else {
		t.containers = append(make([]corev1.Container, 0, 1+len(in.pod.Spec.Containers)), proxy)
	}
	t.status = in.d.statuses.sidecar(in.native, hasInit, vols)
	if t.status == "" {
		t.status = statusJSON(t, in.d.revision)
	}
	return t, nil
}

func (in *injection) renderGateway() (*rendered, error) {
	vols, mounts, err := in.volumes(false)
	if err != nil {
		return nil, err
	}
	t := &rendered{
		labels: []keyValue{
			{labelCanonicalName, in.canonicalName(false)},
			{labelCanonicalRevision, in.canonicalRevision()},
		},
		annotations:      in.templateAnnotations(),
		containers:       append(make([]corev1.Container, 0, 1+len(in.pod.Spec.Containers)), in.gatewayProxy(mounts)),
		volumes:          vols,
		sysctls:          []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}},
		imagePullSecrets: in.d.pullSecrets,
	}
	t.status = in.d.statuses.gateway(vols)
	if t.status == "" {
		t.status = statusJSON(t, in.d.revision)
	}
	return t, nil
}

// canonicalName is service.istio.io/canonical-name: the pod's own, its
// app.kubernetes.io/name or app label, or the workload name. The sidecar
// template truncates it to a valid label value.
func (in *injection) canonicalName(sidecar bool) string {
	l := in.pod.Labels
	name := cmp.Or(l[labelCanonicalName], l[labelAppName], l[labelApp], in.workload.Name)
	if !sidecar {
		return name
	}
	if len(name) > 63 {
		name = name[:63]
	}
	if in.d.minor >= minorIstio131 {
		return strings.Trim(name, "-_.")
	}
	return strings.TrimSuffix(name, "-")
}

// canonicalRevision is service.istio.io/canonical-revision.
func (in *injection) canonicalRevision() string {
	l := in.pod.Labels
	return cmp.Or(l[labelCanonicalRevision], l[labelAppVersion], l[labelVersion], "latest")
}

// templateAnnotations are istio.io/rev and kubectl's default containers.
func (in *injection) templateAnnotations() []keyValue {
	kvs := []keyValue{{annRev, in.d.revision}}
	for i := range in.pod.Spec.Containers {
		name := in.pod.Spec.Containers[i].Name
		if name == ProxyContainerName {
			continue
		}
		if _, ok := in.pod.Annotations[annDefaultLogsContainer]; !ok {
			kvs = append(kvs, keyValue{annDefaultLogsContainer, name})
		}
		if _, ok := in.pod.Annotations[annDefaultContainer]; !ok {
			kvs = append(kvs, keyValue{annDefaultContainer, name})
		}
		break
	}
	return kvs
}
