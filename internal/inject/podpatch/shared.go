package podpatch

import (
	corev1 "k8s.io/api/core/v1"
)

// Shared lists, by identity, the values every injection shares (inject's
// shared* values: security contexts, probes, hooks, environment sources,
// mounts, ports, volumes). Share encodes each once; the patch then copies
// the encoding wherever the injected pod holds that very value (the same
// pointer, or a copy of a shared volume, which keeps its source's pointer).
// A value the registry does not hold is encoded as any other; registering
// is a matter of speed, never of what the patch says.
type Shared struct {
	SecurityContexts []*corev1.SecurityContext
	Probes           []*corev1.Probe
	Lifecycles       []*corev1.Lifecycle
	EnvVarSources    []*corev1.EnvVarSource
	// VolumeMounts and ContainerPorts are whole shared lists, known by
	// their first element and their length.
	VolumeMounts   [][]corev1.VolumeMount
	ContainerPorts [][]corev1.ContainerPort
	// Volumes are known by their source and their name.
	Volumes [][]corev1.Volume
}

// sharedJSON is the registry: the encodings of the values registered with
// Share. Shared values are never modified, so their encodings cannot go
// stale. It is written only by Share, at initialization.
var sharedJSON = map[any]sharedEncoding{}

type sharedEncoding struct {
	json []byte
	// n is a shared list's length; name a shared volume's name.
	n    int
	name string
}

// Share registers the values every injection shares. It is meant for
// package initialization (inject's init): the registry is not guarded for
// concurrent writes.
func Share(s Shared) {
	add := func(key any, enc func([]byte) ([]byte, error), n int, name string) {
		js, err := enc(nil)
		if err != nil {
			panic(err)
		}
		sharedJSON[key] = sharedEncoding{json: js, n: n, name: name}
	}
	for _, sc := range s.SecurityContexts {
		add(sc, func(b []byte) ([]byte, error) { return appendSecurityContext(b, sc) }, 0, "")
	}
	for _, p := range s.Probes {
		add(p, func(b []byte) ([]byte, error) { return appendProbe(b, p) }, 0, "")
	}
	for _, l := range s.Lifecycles {
		add(l, func(b []byte) ([]byte, error) { return appendLifecycle(b, l) }, 0, "")
	}
	for _, src := range s.EnvVarSources {
		add(src, func(b []byte) ([]byte, error) { return appendEnvVarSource(b, src) }, 0, "")
	}
	for _, ms := range s.VolumeMounts {
		add(&ms[0], func(b []byte) ([]byte, error) { return appendList(b, ms, appendVolumeMount) }, len(ms), "")
	}
	for _, ps := range s.ContainerPorts {
		add(&ps[0], func(b []byte) ([]byte, error) {
			return appendList(b, ps, func(b []byte, p *corev1.ContainerPort) ([]byte, error) { return AppendContainerPort(b, p), nil })
		}, len(ps), "")
	}
	for _, vs := range s.Volumes {
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
