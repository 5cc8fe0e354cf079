package inject

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// injectionStatus is sidecar.istio.io/status.
type injectionStatus struct {
	InitContainers []string `json:"initContainers"`
	Containers     []string `json:"containers"`
	Volumes        []string `json:"volumes"`
	// ImagePullSecrets are the pull secrets injection added.
	ImagePullSecrets []string `json:"imagePullSecrets"`
}

// uninject prepares a pod for injection. If it was injected before, it
// removes what that injection added (the containers and volumes named in
// sidecar.istio.io/status) and restores what it rewrote (application probes,
// Prometheus annotations), so that injecting again yields the same pod. In
// any case, containers recorded in proxy.istio.io/overrides are put back as
// the user supplied them, as Istio does.
func uninject(pod *corev1.Pod) error {
	if raw, ok := pod.Annotations[annStatus]; ok {
		var st injectionStatus
		if err := json.Unmarshal([]byte(raw), &st); err == nil {
			strip(pod, &st)
		}
		delete(pod.Annotations, annStatus)
		delete(pod.Annotations, AnnotationRevision)
		delete(pod.Annotations, AnnotationProxyVersion)
		delete(pod.Annotations, AnnotationConfigHash)
	}
	raw, ok := pod.Annotations[annOverrides]
	if !ok {
		return nil
	}
	var o podOverrides
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		return invalidAnnotation(annOverrides, raw, err)
	}
	delete(pod.Annotations, annOverrides)
	for _, c := range o.Containers {
		if findContainer(pod.Spec.Containers, c.Name) == nil {
			pod.Spec.Containers = append(pod.Spec.Containers, c)
		}
	}
	for _, c := range o.InitContainers {
		if findContainer(pod.Spec.InitContainers, c.Name) == nil {
			pod.Spec.InitContainers = append(pod.Spec.InitContainers, c)
		}
	}
	return nil
}

func strip(pod *corev1.Pod, st *injectionStatus) {
	proxy := findContainer(pod.Spec.Containers, ProxyContainerName)
	if proxy == nil {
		proxy = findContainer(pod.Spec.InitContainers, ProxyContainerName)
	}
	if proxy != nil && (slices.Contains(st.Containers, ProxyContainerName) || slices.Contains(st.InitContainers, ProxyContainerName)) {
		if v, ok := envValue(proxy.Env, envAppProbers); ok {
			restoreProbes(pod, v)
		}
		restorePrometheus(pod, proxy)
	}
	pod.Spec.Containers = removeContainers(pod.Spec.Containers, st.Containers)
	pod.Spec.InitContainers = removeContainers(pod.Spec.InitContainers, st.InitContainers)
	if len(st.ImagePullSecrets) > 0 {
		var kept []corev1.LocalObjectReference
		for _, s := range pod.Spec.ImagePullSecrets {
			if !slices.Contains(st.ImagePullSecrets, s.Name) {
				kept = append(kept, s)
			}
		}
		pod.Spec.ImagePullSecrets = kept
	}
	if len(st.Volumes) > 0 {
		vols := pod.Spec.Volumes[:0:0]
		for _, v := range pod.Spec.Volumes {
			if !slices.Contains(st.Volumes, v.Name) {
				vols = append(vols, v)
			}
		}
		if len(vols) == 0 {
			vols = nil
		}
		pod.Spec.Volumes = vols
	}
}

func removeContainers(cs []corev1.Container, names []string) []corev1.Container {
	if len(names) == 0 {
		return cs
	}
	out := cs[:0:0]
	for _, c := range cs {
		if !slices.Contains(names, c.Name) {
			out = append(out, c)
		}
	}
	if len(out) == 0 && cs == nil {
		return nil
	}
	return out
}

// restoreProbes puts back the application probes a previous injection sent
// through pilot-agent, from its ISTIO_KUBE_APP_PROBERS.
func restoreProbes(pod *corev1.Pod, probersJSON string) {
	var probers map[string]*prober
	if err := json.Unmarshal([]byte(probersJSON), &probers); err != nil {
		return
	}
	restore := func(c *corev1.Container) {
		if c.Name == ProxyContainerName {
			return
		}
		for _, k := range []probeKind{readiness, liveness, startup} {
			p := probeOf(c, k)
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != k.url(c.Name) {
				continue
			}
			if pr := probers[k.url(c.Name)]; pr != nil {
				p.ProbeHandler = corev1.ProbeHandler{HTTPGet: pr.HTTPGet, TCPSocket: pr.TCPSocket, GRPC: pr.GRPC}
			}
		}
		if c.Lifecycle == nil {
			return
		}
		for _, k := range []probeKind{preStop, postStart} {
			h := c.Lifecycle.PreStop
			if k == postStart {
				h = c.Lifecycle.PostStart
			}
			if h == nil || h.HTTPGet == nil || h.HTTPGet.Path != k.url(c.Name) {
				continue
			}
			if pr := probers[k.url(c.Name)]; pr != nil && pr.GRPC == nil {
				*h = corev1.LifecycleHandler{HTTPGet: pr.HTTPGet, TCPSocket: pr.TCPSocket}
			}
		}
	}
	for i := range pod.Spec.InitContainers {
		restore(&pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		restore(&pod.Spec.Containers[i])
	}
}

func probeOf(c *corev1.Container, k probeKind) *corev1.Probe {
	switch k {
	case readiness:
		return c.ReadinessProbe
	case liveness:
		return c.LivenessProbe
	default:
		return c.StartupProbe
	}
}

// restorePrometheus undoes the metrics merge: the annotations aimed at the
// agent are replaced by the application's own, from the proxy's
// ISTIO_PROMETHEUS_ANNOTATIONS.
func restorePrometheus(pod *corev1.Pod, proxy *corev1.Container) {
	ann := pod.Annotations
	if ann[annPrometheusScrape] != "true" || ann[annPrometheusPath] != mergedMetricsPath ||
		ann[annPrometheusPort] != strconv.Itoa(defaultStatusPort) {
		return
	}
	delete(ann, annPrometheusScrape)
	delete(ann, annPrometheusPath)
	delete(ann, annPrometheusPort)
	raw, ok := envValue(proxy.Env, envPrometheus)
	if !ok {
		return
	}
	var s scrapeConfig
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return
	}
	if s.Scrape != "" {
		ann[annPrometheusScrape] = s.Scrape
	}
	if len(s.Targets) > 0 {
		parts := make([]string, len(s.Targets))
		for i, t := range s.Targets {
			parts[i] = t.Port + ":" + t.Path
		}
		ann[annPrometheusTargets] = strings.Join(parts, ",")
		return
	}
	if s.Path != "" {
		ann[annPrometheusPath] = s.Path
	}
	if s.Port != "" {
		ann[annPrometheusPort] = s.Port
	}
}
