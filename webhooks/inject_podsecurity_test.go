package webhooks

import (
	"maps"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// namespaceLabels is a NamespaceSource over fixed labels.
type namespaceLabels map[string]map[string]string

func (n namespaceLabels) NamespaceLabels(name string) map[string]string { return n[name] }

// TestInjectHandlerRefusesWhatPodSecurityWouldRefuse: in a namespace that
// enforces restricted, a pod that passes it is refused with 403 and a
// message naming the setting (the test revision has no CNI), counted as
// refused for pod security; in a namespace that enforces nothing it is
// injected.
func TestInjectHandlerRefusesWhatPodSecurityWouldRefuse(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1", SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			}}},
		},
	}
	h := newTestHandler().WithNamespaces(namespaceLabels{
		"restricted": {"pod-security.kubernetes.io/enforce": "restricted"},
		"open":       {"istio-injection": "enabled"},
	})
	refused := injectionRequests.WithLabelValues(resultRefused, reasonPodSecurity, "false")
	before := counterValue(t, refused)

	pod.Namespace = "restricted"
	resp := admissionResponse(t, serve(h, "/inject", "application/json", reviewOf(t, pod)))
	if resp.Allowed {
		t.Fatal("a pod istio-init would make fail restricted was admitted")
	}
	if resp.Result == nil || resp.Result.Code != http.StatusForbidden || !strings.Contains(resp.Result.Message, "spec.cni.enabled is false") {
		t.Errorf("refusal %+v, want 403 naming spec.cni.enabled", resp.Result)
	}
	if after := counterValue(t, refused); after != before+1 {
		t.Errorf("refused{reason=pod-security} went from %v to %v", before, after)
	}

	pod.Namespace = "open"
	if resp := admissionResponse(t, serve(h, "/inject", "application/json", reviewOf(t, pod))); !resp.Allowed || len(resp.Patch) == 0 {
		t.Errorf("in a namespace enforcing nothing: allowed %v, patch %d bytes, want injected", resp.Allowed, len(resp.Patch))
	}
}

// TestPodSecurityNamespacesFollowTheLabels: the injector knows a
// namespace's enforce labels while it carries them, and only those.
func TestPodSecurityNamespacesFollowTheLabels(t *testing.T) {
	n := &PodSecurityNamespaces{}
	ns := func(labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: labels}}
	}
	n.set(ns(map[string]string{"istio-injection": "enabled", "pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/enforce-version": "v1.30", "pod-security.kubernetes.io/warn": "restricted"}))
	want := map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "v1.30"}
	if got := n.NamespaceLabels("shop"); !maps.Equal(got, want) {
		t.Errorf("labels %v, want %v", got, want)
	}
	n.set(ns(map[string]string{"istio-injection": "enabled"}))
	if got := n.NamespaceLabels("shop"); got != nil {
		t.Errorf("after the enforce label was removed: %v", got)
	}
	n.set(ns(map[string]string{"pod-security.kubernetes.io/enforce": "baseline"}))
	n.forget(toolscache.DeletedFinalStateUnknown{Key: "shop", Obj: ns(nil)})
	if got := n.NamespaceLabels("shop"); got != nil {
		t.Errorf("after the namespace was deleted: %v", got)
	}
}
