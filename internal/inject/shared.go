package inject

import (
	corev1 "k8s.io/api/core/v1"
)

// sharedJSON holds the JSON of the parts every injection shares (the
// shared* values: security contexts, probes, hooks, volumes, mounts,
// environment sources), encoded once: the patch copies it. Shared values
// are never modified, so their encodings cannot go stale.
var sharedJSON = map[any]sharedEncoding{}

type sharedEncoding struct {
	json []byte
	// n is a shared list's length; name a shared volume's name.
	n    int
	name string
}

func init() {
	add := func(key any, enc func([]byte) ([]byte, error), n int, name string) {
		js, err := enc(nil)
		if err != nil {
			panic(err)
		}
		sharedJSON[key] = sharedEncoding{json: js, n: n, name: name}
	}
	for _, sc := range []*corev1.SecurityContext{sharedInitSC, sharedProxySC, sharedTPROXYProxySC, sharedBindProxySC, sharedTPROXYBindProxySC, sharedTraceProxySC, sharedGatewaySC} {
		add(sc, func(b []byte) ([]byte, error) { return appendSecurityContext(b, sc) }, 0, "")
	}
	for _, p := range []*corev1.Probe{sharedStartupProbe, sharedReadinessProbe} {
		add(p, func(b []byte) ([]byte, error) { return appendProbe(b, p) }, 0, "")
	}
	for _, l := range []*corev1.Lifecycle{sharedHoldLifecycle, sharedDrainLifecycle} {
		add(l, func(b []byte) ([]byte, error) { return appendLifecycle(b, l) }, 0, "")
	}
	for _, s := range []*corev1.EnvVarSource{srcPodName, srcPodNamespace, srcPodIP, srcServiceAccount, srcHostIP, srcNodeName, srcCPULimit, srcMemoryLimit} {
		add(s, func(b []byte) ([]byte, error) { return appendEnvVarSource(b, s) }, 0, "")
	}
	for _, ms := range [][]corev1.VolumeMount{sharedSidecarMounts, sharedGatewayMounts} {
		add(&ms[0], func(b []byte) ([]byte, error) { return appendList(b, ms, appendVolumeMount) }, len(ms), "")
	}
	add(&sharedProxyPorts[0], func(b []byte) ([]byte, error) {
		return appendList(b, sharedProxyPorts, func(b []byte, p *corev1.ContainerPort) ([]byte, error) { return appendPortJSON(b, p), nil })
	}, len(sharedProxyPorts), "")
	for _, vs := range [][]corev1.Volume{sharedSidecarVolumes, sharedGatewayVolumes} {
		for i := range vs {
			v := &vs[i]
			if key := volumeSourceKey(v); key != nil {
				add(key, func(b []byte) ([]byte, error) { return appendVolume(b, v) }, 0, v.Name)
			}
		}
	}
}

// cachedJSON appends the shared encoding of key, if it has one.
func cachedJSON(b []byte, key any) ([]byte, bool) {
	if e, ok := sharedJSON[key]; ok {
		return append(b, e.json...), true
	}
	return b, false
}

// cachedListJSON appends the shared encoding of a shared list.
func cachedListJSON[T any](b []byte, list []T) ([]byte, bool) {
	if len(list) == 0 {
		return b, false
	}
	if e, ok := sharedJSON[&list[0]]; ok && e.n == len(list) {
		return append(b, e.json...), true
	}
	return b, false
}

// cachedVolumeJSON appends the shared encoding of a shared volume (a copy
// of one of the shared volumes keeps its source pointer).
func cachedVolumeJSON(b []byte, v *corev1.Volume) ([]byte, bool) {
	key := volumeSourceKey(v)
	if key == nil {
		return b, false
	}
	if e, ok := sharedJSON[key]; ok && e.name == v.Name {
		return append(b, e.json...), true
	}
	return b, false
}

// volumeSourceKey is the source of the kinds the shared volumes use.
func volumeSourceKey(v *corev1.Volume) any {
	switch s := &v.VolumeSource; {
	case s.EmptyDir != nil:
		return s.EmptyDir
	case s.ConfigMap != nil:
		return s.ConfigMap
	case s.DownwardAPI != nil:
		return s.DownwardAPI
	case s.Projected != nil:
		return s.Projected
	}
	return nil
}
