package podpatch

import (
	"reflect"

	corev1 "k8s.io/api/core/v1"
)

// pointer is the path of a member of a list element, built without
// allocating: base, the element's index, then up to three members
// ("/readinessProbe", "/httpGet", ...).
type pointer struct {
	base    string
	index   int
	members [3]string
}

func (p pointer) member(m string) pointer {
	for i := range p.members {
		if p.members[i] == "" {
			p.members[i] = m
			return p
		}
	}
	panic("pointer too deep")
}

func (w *patchWriter) beginAt(op string, p pointer) {
	w.begin(op, p.base)
	w.index(p.index)
	for _, m := range p.members {
		w.buf = append(w.buf, m...)
	}
}

func (w *patchWriter) addAt(p pointer, v any) {
	w.beginAt("add", p)
	w.endValue(v)
}

func (w *patchWriter) replaceAt(p pointer, v any) {
	w.beginAt("replace", p)
	w.endValue(v)
}

func (w *patchWriter) removeAt(p pointer) {
	w.beginAt("remove", p)
	w.end()
}

// diffWhole replaces an element that changed.
func diffWhole[T any](w *patchWriter, p pointer, a, b *T) {
	if !reflect.DeepEqual(a, b) {
		w.replaceAt(p, b)
	}
}

// diffContainer patches the probes and lifecycle hooks injection rewrites,
// and replaces a container that changed otherwise.
func diffContainer(w *patchWriter, p pointer, a, b *corev1.Container) {
	if !equalBesidesProbes(a, b) {
		w.replaceAt(p, b)
		return
	}
	w.diffProbe(p.member("/readinessProbe"), a.ReadinessProbe, b.ReadinessProbe)
	w.diffProbe(p.member("/livenessProbe"), a.LivenessProbe, b.LivenessProbe)
	w.diffProbe(p.member("/startupProbe"), a.StartupProbe, b.StartupProbe)
	w.diffLifecycle(p.member("/lifecycle"), a.Lifecycle, b.Lifecycle)
}

func (w *patchWriter) diffProbe(p pointer, a, b *corev1.Probe) {
	switch {
	case a == b:
	case a == nil:
		w.addAt(p, b)
	case b == nil:
		w.removeAt(p)
	default:
		ra, rb := *a, *b
		ra.ProbeHandler, rb.ProbeHandler = corev1.ProbeHandler{}, corev1.ProbeHandler{}
		if !reflect.DeepEqual(&ra, &rb) {
			w.replaceAt(p, b)
			return
		}
		w.diffAction(p.member("/exec"), a.Exec, b.Exec)
		w.diffAction(p.member("/httpGet"), a.HTTPGet, b.HTTPGet)
		w.diffAction(p.member("/tcpSocket"), a.TCPSocket, b.TCPSocket)
		w.diffAction(p.member("/grpc"), a.GRPC, b.GRPC)
	}
}

func (w *patchWriter) diffLifecycle(p pointer, a, b *corev1.Lifecycle) {
	switch {
	case a == b:
	case a == nil:
		w.addAt(p, b)
	case b == nil:
		w.removeAt(p)
	case !reflect.DeepEqual(a.StopSignal, b.StopSignal):
		w.replaceAt(p, b)
	default:
		w.diffHook(p.member("/preStop"), a.PreStop, b.PreStop)
		w.diffHook(p.member("/postStart"), a.PostStart, b.PostStart)
	}
}

func (w *patchWriter) diffHook(p pointer, a, b *corev1.LifecycleHandler) {
	switch {
	case a == b:
	case a == nil:
		w.addAt(p, b)
	case b == nil:
		w.removeAt(p)
	default:
		w.diffAction(p.member("/exec"), a.Exec, b.Exec)
		w.diffAction(p.member("/httpGet"), a.HTTPGet, b.HTTPGet)
		w.diffAction(p.member("/tcpSocket"), a.TCPSocket, b.TCPSocket)
		w.diffAction(p.member("/sleep"), a.Sleep, b.Sleep)
	}
}

// diffAction patches one handler member (exec, httpGet, tcpSocket, ...).
func (w *patchWriter) diffAction(p pointer, a, b any) {
	av, bv := reflect.ValueOf(a), reflect.ValueOf(b)
	switch {
	case av.IsNil() && bv.IsNil():
	case av.IsNil():
		w.addAt(p, b)
	case bv.IsNil():
		w.removeAt(p)
	case !reflect.DeepEqual(a, b):
		w.replaceAt(p, b)
	}
}

// equalBesidesProbes is reflect.DeepEqual of the containers without their
// probes and lifecycle hooks, fast when (as after injection) they share
// their lists and pointers. TestEqualBesidesProbes keeps it in step with
// corev1.Container.
func equalBesidesProbes(a, b *corev1.Container) bool {
	return a.Name == b.Name && a.Image == b.Image && a.WorkingDir == b.WorkingDir &&
		a.TerminationMessagePath == b.TerminationMessagePath &&
		a.TerminationMessagePolicy == b.TerminationMessagePolicy &&
		a.ImagePullPolicy == b.ImagePullPolicy &&
		a.Stdin == b.Stdin && a.StdinOnce == b.StdinOnce && a.TTY == b.TTY &&
		sameOrEqual(a.Command, b.Command) && sameOrEqual(a.Args, b.Args) &&
		sameOrEqual(a.Ports, b.Ports) && sameOrEqual(a.EnvFrom, b.EnvFrom) &&
		sameOrEqual(a.Env, b.Env) && sameOrEqual(a.ResizePolicy, b.ResizePolicy) &&
		sameOrEqual(a.RestartPolicyRules, b.RestartPolicyRules) &&
		sameOrEqual(a.VolumeMounts, b.VolumeMounts) && sameOrEqual(a.VolumeDevices, b.VolumeDevices) &&
		samePtrOrEqual(a.RestartPolicy, b.RestartPolicy) &&
		samePtrOrEqual(a.SecurityContext, b.SecurityContext) &&
		sameResources(&a.Resources, &b.Resources)
}

func sameOrEqual[T any](a, b []T) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	return len(a) == 0 || &a[0] == &b[0] || reflect.DeepEqual(a, b)
}

func samePtrOrEqual[T any](a, b *T) bool {
	return a == b || (a != nil && b != nil && reflect.DeepEqual(a, b))
}

func sameResources(a, b *corev1.ResourceRequirements) bool {
	sameMap := func(x, y corev1.ResourceList) bool {
		if len(x) != len(y) || (x == nil) != (y == nil) {
			return false
		}
		return len(x) == 0 || reflect.ValueOf(x).UnsafePointer() == reflect.ValueOf(y).UnsafePointer() || reflect.DeepEqual(x, y)
	}
	return sameMap(a.Limits, b.Limits) && sameMap(a.Requests, b.Requests) && sameOrEqual(a.Claims, b.Claims)
}
