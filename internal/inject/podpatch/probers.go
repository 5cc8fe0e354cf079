package podpatch

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// AppProber is one application probe pilot-agent runs on the kubelet's
// behalf: an entry of ISTIO_KUBE_APP_PROBERS.
type AppProber struct {
	HTTPGet        *corev1.HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket      *corev1.TCPSocketAction `json:"tcpSocket,omitempty"`
	GRPC           *corev1.GRPCAction      `json:"grpc,omitempty"`
	TimeoutSeconds int32                   `json:"timeoutSeconds,omitempty"`
}

// AppendAppProbers encodes ISTIO_KUBE_APP_PROBERS as encoding/json would.
func AppendAppProbers(b []byte, probers map[string]*AppProber) ([]byte, error) {
	o := beginObject(b)
	for _, k := range slices.Sorted(maps.Keys(probers)) {
		p := probers[k]
		o.mapKey(k)
		o.value(func(b []byte) ([]byte, error) {
			e := beginObject(b)
			if p.HTTPGet != nil {
				e.sub("httpGet", func(b []byte) ([]byte, error) { return appendHTTPGet(b, p.HTTPGet) })
			}
			if p.TCPSocket != nil {
				e.sub("tcpSocket", func(b []byte) ([]byte, error) { return appendTCPSocket(b, p.TCPSocket) })
			}
			if p.GRPC != nil {
				e.sub("grpc", func(b []byte) ([]byte, error) { return appendGRPC(b, p.GRPC) })
			}
			e.intOmit("timeoutSeconds", int64(p.TimeoutSeconds))
			return e.end()
		})
	}
	return o.end()
}
