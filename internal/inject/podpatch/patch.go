package podpatch

import (
	"encoding/json"
	"reflect"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// CreatePatch returns the JSON patch (RFC 6902) that turns original into
// injected, Inject's result for it. It is built from what injection changes
// (labels, annotations, containers, init containers, volumes, pull
// secrets, the pod's sysctls), with one operation per changed map entry, list element or probe,
// rather than by diffing whole documents: this is fast, and fields of the
// original pod that this version of the Kubernetes API types does not know
// survive in the containers injection only modifies.
//
// original must be the pod as decoded from the admission request, so that
// every path the patch uses exists in the request's JSON.
func CreatePatch(original, injected *corev1.Pod) ([]byte, error) {
	return AppendPatch(make([]byte, 0, 8192), original, injected)
}

// AppendPatch appends CreatePatch's patch to dst.
func AppendPatch(dst []byte, original, injected *corev1.Pod) ([]byte, error) {
	w := patchWriter{buf: dst}
	w.buf = append(w.buf, '[')
	w.diffMap("/metadata/labels", original.Labels, injected.Labels)
	w.diffMap("/metadata/annotations", original.Annotations, injected.Annotations)
	diffList(&w, "/spec/initContainers", original.Spec.InitContainers, injected.Spec.InitContainers, containerName, diffContainer)
	diffList(&w, "/spec/containers", original.Spec.Containers, injected.Spec.Containers, containerName, diffContainer)
	diffList(&w, "/spec/volumes", original.Spec.Volumes, injected.Spec.Volumes, volumeName, diffWhole[corev1.Volume])
	diffList(&w, "/spec/imagePullSecrets", original.Spec.ImagePullSecrets, injected.Spec.ImagePullSecrets,
		secretName, diffWhole[corev1.LocalObjectReference])
	w.diffPodSecurityContext(original.Spec.SecurityContext, injected.Spec.SecurityContext)
	if w.err != nil {
		return nil, w.err
	}
	return append(w.buf, ']'), nil
}

// patchWriter writes JSON patch operations.
type patchWriter struct {
	buf []byte
	n   int
	err error
}

// begin starts an operation on path (which needs no escaping), leaving the
// path string open for a token or an index.
func (w *patchWriter) begin(op, path string) {
	if w.n > 0 {
		w.buf = append(w.buf, ',')
	}
	w.n++
	w.buf = append(w.buf, `{"op":"`...)
	w.buf = append(w.buf, op...)
	w.buf = append(w.buf, `","path":"`...)
	w.buf = append(w.buf, path...)
}

// token adds a map key to the open path.
func (w *patchWriter) token(key string) { w.buf = appendPointerToken(w.buf, key) }

// index adds a list index to the open path.
func (w *patchWriter) index(i int) {
	w.buf = append(w.buf, '/')
	w.buf = strconv.AppendInt(w.buf, int64(i), 10)
}

// end ends an operation without a value.
func (w *patchWriter) end() { w.buf = append(w.buf, `"}`...) }

// endValue ends an operation with its value.
func (w *patchWriter) endValue(v any) {
	w.buf = append(w.buf, `","value":`...)
	w.appendValue(v)
	w.buf = append(w.buf, '}')
}

func (w *patchWriter) remove(path string) {
	w.begin("remove", path)
	w.end()
}

// add adds, or replaces, the value at path (for list indexes: inserts).
func (w *patchWriter) add(path string, v any) {
	w.begin("add", path)
	w.endValue(v)
}

func (w *patchWriter) replace(path string, v any) {
	w.begin("replace", path)
	w.endValue(v)
}

func (w *patchWriter) appendValue(v any) {
	var err error
	switch v := v.(type) {
	case string:
		w.buf = AppendString(w.buf, v)
	case map[string]string:
		w.buf = appendStringMap(w.buf, v)
	case *corev1.Container:
		w.buf, err = appendContainer(w.buf, v)
	case []corev1.Container:
		w.buf, err = appendList(w.buf, v, appendContainer)
	case *corev1.Volume:
		w.buf, err = appendVolume(w.buf, v)
	case []corev1.Volume:
		w.buf, err = appendList(w.buf, v, appendVolume)
	case *corev1.Probe:
		w.buf, err = appendProbe(w.buf, v)
	case *corev1.HTTPGetAction:
		w.buf, err = appendHTTPGet(w.buf, v)
	case *corev1.TCPSocketAction:
		w.buf, err = appendTCPSocket(w.buf, v)
	case *corev1.GRPCAction:
		w.buf, err = appendGRPC(w.buf, v)
	case *corev1.ExecAction:
		w.buf, err = appendExec(w.buf, v)
	case *corev1.Lifecycle:
		w.buf, err = appendLifecycle(w.buf, v)
	case *corev1.LifecycleHandler:
		w.buf, err = appendLifecycleHandler(w.buf, v)
	default:
		var js []byte
		js, err = json.Marshal(v)
		w.buf = append(w.buf, js...)
	}
	if err != nil && w.err == nil {
		w.err = err
	}
}

// diffMap writes one operation per changed entry, in key order.
func (w *patchWriter) diffMap(path string, a, b map[string]string) {
	if a == nil {
		if b != nil {
			w.add(path, b)
		}
		return
	}
	if b == nil {
		w.remove(path)
		return
	}
	var changed []string
	for k, v := range b {
		if old, ok := a[k]; !ok || old != v {
			changed = append(changed, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			changed = append(changed, k)
		}
	}
	sort.Strings(changed)
	for _, k := range changed {
		if v, ok := b[k]; ok {
			w.begin("add", path)
			w.token(k)
			w.endValue(v)
		} else {
			w.begin("remove", path)
			w.token(k)
			w.end()
		}
	}
}

// maxListDiff bounds the name matching of two lists; longer lists are
// replaced whole.
const maxListDiff = 64 * 64

// diffList writes the operations that turn list a into list b. Elements are
// matched by name, in order (longest common subsequence); unmatched elements
// of a are removed, unmatched elements of b inserted, and matched pairs
// compared with diffElem.
func diffList[T any](w *patchWriter, path string, a, b []T, name func(*T) string, diffElem func(*patchWriter, pointer, *T, *T)) {
	switch {
	case len(a) == 0 && len(b) == 0:
		return
	case a == nil:
		w.add(path, b)
		return
	case b == nil:
		w.remove(path)
		return
	case len(a)*len(b) > maxListDiff:
		w.replace(path, b)
		return
	}
	pairs := matchByName(a, b, name)
	for i := len(a) - 1; i >= 0; i-- {
		if pairs.aToB[i] < 0 {
			w.begin("remove", path)
			w.index(i)
			w.end()
		}
	}
	for j := range b {
		if i := pairs.bToA[j]; i >= 0 {
			diffElem(w, pointer{base: path, index: j}, &a[i], &b[j])
		} else {
			w.begin("add", path)
			w.index(j)
			w.endValue(&b[j])
		}
	}
}

type matching struct{ aToB, bToA []int }

// matchByName pairs the elements of a and b that form the longest common
// subsequence of their names.
func matchByName[T any](a, b []T, name func(*T) string) matching {
	n, m := len(a), len(b)
	// lcs[i][j] is the LCS length of a[i:] and b[j:].
	lcs := make([]int, (n+1)*(m+1))
	at := func(i, j int) *int { return &lcs[i*(m+1)+j] }
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			switch {
			case name(&a[i]) == name(&b[j]):
				*at(i, j) = *at(i+1, j+1) + 1
			case *at(i+1, j) >= *at(i, j+1):
				*at(i, j) = *at(i+1, j)
			default:
				*at(i, j) = *at(i, j+1)
			}
		}
	}
	res := matching{aToB: make([]int, n), bToA: make([]int, m)}
	for i := range res.aToB {
		res.aToB[i] = -1
	}
	for j := range res.bToA {
		res.bToA[j] = -1
	}
	for i, j := 0, 0; i < n && j < m; {
		switch {
		case name(&a[i]) == name(&b[j]):
			res.aToB[i], res.bToA[j] = j, i
			i++
			j++
		case *at(i+1, j) >= *at(i, j+1):
			i++
		default:
			j++
		}
	}
	return res
}

func containerName(c *corev1.Container) string         { return c.Name }
func volumeName(v *corev1.Volume) string               { return v.Name }
func secretName(s *corev1.LocalObjectReference) string { return s.Name }

func (w *patchWriter) diffPodSecurityContext(a, b *corev1.PodSecurityContext) {
	switch {
	case a == nil && b == nil:
	case a == nil:
		w.add("/spec/securityContext", b)
	case b == nil:
		w.remove("/spec/securityContext")
	default:
		ra, rb := *a, *b
		ra.Sysctls, rb.Sysctls = nil, nil
		if !reflect.DeepEqual(&ra, &rb) {
			w.replace("/spec/securityContext", b)
			return
		}
		switch {
		case len(a.Sysctls) == 0 && len(b.Sysctls) == 0:
		case b.Sysctls == nil:
			w.remove("/spec/securityContext/sysctls")
		case !reflect.DeepEqual(a.Sysctls, b.Sysctls):
			w.add("/spec/securityContext/sysctls", b.Sysctls)
		}
	}
}
