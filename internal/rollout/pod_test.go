package rollout

import (
	"testing"

	"istio.io/api/annotation"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/meshkeeper/meshkeeper/internal/inject"
)

// A pod is read as the workload that owns it (its Deployment through the
// ReplicaSet, or itself when bare), what meshkeeper's stamp says it runs,
// and whether it has a sidecar at all.
func TestPodOf(t *testing.T) {
	owned := func(kind, name string) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, Controller: ptr.To(true)}}
	}
	for _, tc := range []struct {
		name string
		pod  corev1.Pod
		want Pod
	}{
		{"a Deployment's pod, stamped and injected", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-7c9f8d-x2k4p", GenerateName: "web-7c9f8d-",
			Labels:          map[string]string{"pod-template-hash": "7c9f8d"},
			OwnerReferences: owned("ReplicaSet", "web-7c9f8d"),
			Annotations:     map[string]string{inject.AnnotationRevision: "1-32-0", inject.AnnotationConfigHash: "abc", annotation.SidecarStatus.Name: "{}"}}},
			Pod{Owner: Key{Kind: "Deployment", Namespace: "shop", Name: "web"}, Current: "1-32-0/abc"}},
		{"a bare pod without a sidecar", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "debug"}},
			Pod{Owner: Key{Kind: "Pod", Namespace: "shop", Name: "debug"}, Uninjected: true}},
		{"a StatefulSet's pod injected by someone else", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "pay", Name: "ledger-0", GenerateName: "ledger-",
			OwnerReferences: owned("StatefulSet", "ledger"), Annotations: map[string]string{annotation.SidecarStatus.Name: "{}"}}},
			Pod{Owner: Key{Kind: "StatefulSet", Namespace: "pay", Name: "ledger"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PodOf(&tc.pod); got != tc.want {
				t.Errorf("PodOf = %+v, want %+v", got, tc.want)
			}
		})
	}
}
