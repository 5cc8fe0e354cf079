package inject

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// restrictedPod is an application pod that passes Pod Security restricted
// as created, with its seccomp profile on the pod or on its container.
func restrictedPod(podSeccomp bool, annotations map[string]string) *corev1.Pod {
	runtimeDefault := &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "shop", Annotations: annotations},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)},
			Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1", SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			}}},
		},
	}
	if podSeccomp {
		pod.Spec.SecurityContext.SeccompProfile = runtimeDefault
	} else {
		pod.Spec.Containers[0].SecurityContext.SeccompProfile = runtimeDefault
	}
	return pod
}

// TestPodSecurity: in a namespace that enforces a Pod Security level, a
// pod that passes it is refused when the injection would make it fail,
// with a message naming the setting responsible, and injected when it
// would not; what Pod Security alone must judge is left to it.
func TestPodSecurity(t *testing.T) {
	enforce := func(level string) map[string]string {
		return map[string]string{"pod-security.kubernetes.io/enforce": level}
	}
	restricted, baseline := enforce("restricted"), enforce("baseline")
	cni := func(c *Config) { c.CNI = &CNI{} }
	seccomp := func(c *Config) {
		cni(c)
		c.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	}
	tproxy := map[string]string{"sidecar.istio.io/interceptionMode": "TPROXY"}
	bind := map[string]string{"sidecar.istio.io/capNetBindService": "true"}
	privileged := restrictedPod(true, nil)
	privileged.Spec.Containers[0].SecurityContext.Privileged = ptr.To(true)

	for _, c := range []struct {
		name   string
		config func(*Config)
		pod    *corev1.Pod
		labels map[string]string
		// refusedFor are the settings the refusal names; none: injected.
		refusedFor []string
	}{
		{name: "CNI and RuntimeDefault pass restricted", config: seccomp, pod: restrictedPod(false, nil), labels: restricted},
		{name: "CNI and RuntimeDefault pass restricted, classic sidecar", pod: restrictedPod(false, nil), labels: restricted,
			config: func(c *Config) { seccomp(c); c.NativeSidecars = NativeSidecarsDisabled }},
		{name: "CNI passes restricted when the pod has its seccomp profile", config: cni, pod: restrictedPod(true, nil), labels: restricted},
		{name: "CNI passes baseline", config: cni, pod: restrictedPod(false, nil), labels: baseline},
		{name: "CNI without seccomp profile fails restricted", config: cni, pod: restrictedPod(false, nil), labels: restricted,
			refusedFor: []string{"spec.proxy.seccompProfile is unset"}},
		{name: "istio-init fails restricted", pod: restrictedPod(true, nil), labels: restricted,
			refusedFor: []string{"spec.cni.enabled is false", "NET_ADMIN and NET_RAW"}},
		{name: "istio-init fails baseline", pod: restrictedPod(true, nil), labels: baseline,
			refusedFor: []string{"spec.cni.enabled is false"}},
		{name: "istio-init, nothing enforced", pod: restrictedPod(true, nil)},
		{name: "istio-init, privileged enforced", pod: restrictedPod(true, nil), labels: enforce("privileged")},
		{name: "istio-init, a level Pod Security cannot read is left to it", pod: restrictedPod(true, nil), labels: enforce("strict")},
		{name: "istio-init, only warned", pod: restrictedPod(true, nil), labels: map[string]string{"pod-security.kubernetes.io/warn": "restricted"}},
		{name: "TPROXY fails restricted", config: seccomp, pod: restrictedPod(false, tproxy), labels: restricted,
			refusedFor: []string{"annotation sidecar.istio.io/interceptionMode=TPROXY", "NET_ADMIN"}},
		{name: "TPROXY fails baseline", config: cni, pod: restrictedPod(false, tproxy), labels: baseline,
			refusedFor: []string{"annotation sidecar.istio.io/interceptionMode=TPROXY"}},
		{name: "TPROXY of the proxy config fails baseline", config: cni, labels: baseline,
			pod:        restrictedPod(false, map[string]string{"proxy.istio.io/config": `{"interceptionMode": "TPROXY"}`}),
			refusedFor: []string{"interceptionMode TPROXY of the proxy configuration"}},
		{name: "capNetBindService fails restricted", config: seccomp, pod: restrictedPod(false, bind), labels: restricted,
			refusedFor: []string{"annotation sidecar.istio.io/capNetBindService=true runs istio-proxy as root"}},
		{name: "capNetBindService passes baseline", config: cni, pod: restrictedPod(false, bind), labels: baseline},
		{name: "iptables trace logging fails baseline", pod: restrictedPod(false, nil), labels: baseline,
			config: func(c *Config) {
				cni(c)
				c.DefaultProxyConfig.ProxyMetadata = map[string]string{"IPTABLES_TRACE_LOGGING": "true"}
			},
			refusedFor: []string{"IPTABLES_TRACE_LOGGING=true"}},
		{name: "a pod that fails on its own is left to Pod Security", pod: privileged, labels: restricted},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			if c.config != nil {
				c.config(cfg)
			}
			out, err := Inject(c.pod, cfg, Request{NamespaceLabels: c.labels})
			if len(c.refusedFor) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if out.Annotations[annStatus] == "" {
					t.Fatal("not injected")
				}
				return
			}
			if !IsPodSecurity(err) {
				t.Fatalf("Inject = %v, want a Pod Security refusal naming %q", err, c.refusedFor)
			}
			t.Log(err)
			for _, want := range c.refusedFor {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal %q does not say %q", err, want)
				}
			}
			if !strings.Contains(err.Error(), "namespace shop enforces Pod Security") {
				t.Errorf("refusal %q does not name the namespace and its level", err)
			}
		})
	}
}

// TestPodSecurityGaps: what in a configuration makes every injected pod
// fail a level, named by the MeshInstall field to change.
func TestPodSecurityGaps(t *testing.T) {
	with := func(change func(*Config)) *Config {
		c := testConfig()
		change(c)
		return c
	}
	runtimeDefault := &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	for _, c := range []struct {
		name     string
		cfg      *Config
		level    string
		wantGaps []string
	}{
		{"no CNI, baseline", testConfig(), "baseline", []string{"spec.cni.enabled is false"}},
		{"no CNI, restricted", testConfig(), "restricted", []string{"spec.cni.enabled is false", "spec.proxy.seccompProfile is unset"}},
		{"no CNI, privileged", testConfig(), "privileged", nil},
		{"CNI, baseline", with(func(c *Config) { c.CNI = &CNI{} }), "baseline", nil},
		{"CNI, restricted", with(func(c *Config) { c.CNI = &CNI{} }), "restricted", []string{"spec.proxy.seccompProfile is unset"}},
		{"CNI and RuntimeDefault, restricted", with(func(c *Config) { c.CNI = &CNI{}; c.SeccompProfile = runtimeDefault }), "restricted", nil},
		{"Unconfined, baseline", with(func(c *Config) {
			c.CNI = &CNI{}
			c.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
		}), "baseline", []string{"spec.proxy.seccompProfile.type is Unconfined"}},
		{"iptables trace logging, baseline", with(func(c *Config) {
			c.CNI = &CNI{}
			c.DefaultProxyConfig.ProxyMetadata = map[string]string{"IPTABLES_TRACE_LOGGING": "true"}
		}), "baseline", []string{"IPTABLES_TRACE_LOGGING=true"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			gaps := PodSecurityGaps(c.cfg, c.level)
			if len(gaps) != len(c.wantGaps) {
				t.Fatalf("gaps %q, want %d naming %q", gaps, len(c.wantGaps), c.wantGaps)
			}
			for i, want := range c.wantGaps {
				if !strings.Contains(gaps[i], want) {
					t.Errorf("gap %q does not say %q", gaps[i], want)
				}
			}
		})
	}
}
