package inject

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/meshkeeper/meshkeeper/internal/inject/podpatch"
)

// stamp records the injection on the pod: Istio's sidecar.istio.io/status
// (what was injected, so it can be found again) and meshkeeper's stamp.
func (in *injection) stamp(t *rendered) {
	in.pod.Annotations[annStatus] = t.status
	in.pod.Annotations[AnnotationRevision] = in.d.revision
	in.pod.Annotations[AnnotationProxyVersion] = in.cfg.Version
	in.pod.Annotations[AnnotationConfigHash] = in.d.hash
	if in.pod.Labels == nil {
		in.pod.Labels = map[string]string{}
	}
	in.pod.Labels[LabelInjectedBy] = in.d.revision
}

// statusJSON is sidecar.istio.io/status as Istio's injector writes it.
func statusJSON(t *rendered, revision string) string {
	b := make([]byte, 0, 256)
	names := func(key string, n int, name func(int) string) {
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, `":`...)
		if n == 0 {
			b = append(b, "null"...)
			return
		}
		b = append(b, '[')
		for i := 0; i < n; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = podpatch.AppendString(b, name(i))
		}
		b = append(b, ']')
	}
	b = append(b, '{')
	names("initContainers", len(t.initContainers), func(i int) string { return t.initContainers[i].Name })
	b = append(b, ',')
	names("containers", len(t.containers), func(i int) string { return t.containers[i].Name })
	b = append(b, ',')
	names("volumes", len(t.volumes), func(i int) string { return t.volumes[i].Name })
	b = append(b, ',')
	names("imagePullSecrets", len(t.imagePullSecrets), func(i int) string { return t.imagePullSecrets[i].Name })
	b = append(b, `,"revision":`...)
	b = podpatch.AppendString(b, revision)
	b = append(b, '}')
	return string(b)
}

// statusCache holds sidecar.istio.io/status for the templates with the
// shared volumes, which every pod of a configuration without bootstrap
// override or user volumes gets: [native][with istio-init] for the sidecar.
type statusCache struct {
	sidecars    [2][2]string
	gatewayOnly string
}

func newStatusCache(revision, initName string, pullSecrets []corev1.LocalObjectReference) statusCache {
	named := func(names ...string) []corev1.Container {
		cs := make([]corev1.Container, len(names))
		for i, n := range names {
			cs[i].Name = n
		}
		return cs
	}
	var c statusCache
	for native := 0; native < 2; native++ {
		for init := 0; init < 2; init++ {
			t := &rendered{volumes: sharedSidecarVolumes, imagePullSecrets: pullSecrets}
			if init == 1 {
				t.initContainers = named(initName)
			}
			if native == 1 {
				t.initContainers = append(t.initContainers, named(ProxyContainerName)...)
			} else {
				t.containers = named(ProxyContainerName)
			}
			c.sidecars[native][init] = statusJSON(t, revision)
		}
	}
	c.gatewayOnly = statusJSON(&rendered{containers: named(ProxyContainerName), volumes: sharedGatewayVolumes,
		imagePullSecrets: pullSecrets}, revision)
	return c
}

// sidecar returns the cached status, or "" when the volumes are not the
// shared ones.
func (c *statusCache) sidecar(native, init bool, vols []corev1.Volume) string {
	if !sameSlice(vols, sharedSidecarVolumes) {
		return ""
	}
	return c.sidecars[b2i(native)][b2i(init)]
}

func (c *statusCache) gateway(vols []corev1.Volume) string {
	if !sameSlice(vols, sharedGatewayVolumes) {
		return ""
	}
	return c.gatewayOnly
}

func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// reorder puts the containers where Istio's injector puts them: istio-proxy
// last among the containers (first when the application waits for it), so
// kubectl defaults to the application; a native istio-proxy right after
// istio-init (or istio-validation), before the application's init
// containers, so they are in the mesh; a classic istio-init last, so the
// other init containers are not, and a classic istio-validation first, so
// that none runs before the redirection is checked.
func (in *injection) reorder() {
	spec := &in.pod.Spec
	if in.hold {
		moveFirst(spec.Containers, ProxyContainerName)
	} else {
		moveLast(spec.Containers, ProxyContainerName)
	}
	if findContainer(spec.InitContainers, ProxyContainerName) != nil {
		moveFirst(spec.InitContainers, ProxyContainerName)
		moveFirst(spec.InitContainers, ValidationContainerName)
		moveFirst(spec.InitContainers, InitContainerName)
	} else {
		moveFirst(spec.InitContainers, ValidationContainerName)
		moveLast(spec.InitContainers, InitContainerName)
	}
}

// moveFirst moves the named container to the front, keeping the others'
// order.
func moveFirst(cs []corev1.Container, name string) {
	for i := range cs {
		if cs[i].Name == name {
			c := cs[i]
			copy(cs[1:i+1], cs[:i])
			cs[0] = c
			return
		}
	}
}

// moveLast moves the named container to the end, keeping the others' order.
func moveLast(cs []corev1.Container, name string) {
	for i := range cs {
		if cs[i].Name == name {
			c := cs[i]
			copy(cs[i:], cs[i+1:])
			cs[len(cs)-1] = c
			return
		}
	}
}
