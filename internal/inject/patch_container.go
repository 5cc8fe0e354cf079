package inject

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
	ra, rb := *a, *b
	ra.ReadinessProbe, ra.LivenessProbe, ra.StartupProbe, ra.Lifecycle = nil, nil, nil, nil
	rb.ReadinessProbe, rb.LivenessProbe, rb.StartupProbe, rb.Lifecycle = nil, nil, nil, nil
	if !reflect.DeepEqual(&ra, &rb) {
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
