package inject

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func podWith(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metaWith("app", annotations),
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
	}
}

// TestInvalidAnnotationsAreRefused: annotations Istio's injector validates
// (and a few it cannot use) make Inject fail with an InvalidError naming them.
func TestInvalidAnnotationsAreRefused(t *testing.T) {
	cases := []struct {
		annotation, value string
	}{
		{"sidecar.istio.io/interceptionMode", "redirect"},
		{"status.sidecar.istio.io/port", "65536"},
		{"status.sidecar.istio.io/port", "port"},
		{"readiness.status.sidecar.istio.io/initialDelaySeconds", "-5"},
		{"readiness.status.sidecar.istio.io/periodSeconds", "3000000000"},
		{"readiness.status.sidecar.istio.io/failureThreshold", "ten"},
		{"traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/8,*"},
		{"traffic.sidecar.istio.io/excludeOutboundIPRanges", "*"},
		{"traffic.sidecar.istio.io/includeInboundPorts", "80-90"},
		{"traffic.sidecar.istio.io/excludeInboundPorts", "99999"},
		{"traffic.sidecar.istio.io/excludeOutboundPorts", "443;80"},
		{"traffic.sidecar.istio.io/includeOutboundPorts", "https"},
		{"traffic.sidecar.istio.io/excludeInterfaces", "a-very-long-interface-name"},
		{"traffic.sidecar.istio.io/kubevirtInterfaces", "0net"},
		{"istio.io/reroute-virtual-interfaces", "net1,,net2"},
		{"prometheus.istio.io/merge-metrics", "maybe"},
		{"proxy.istio.io/config", "concurrency: [1]"},
		{"proxy.istio.io/config", "statusPort: 0"},
		{"proxy.istio.io/config", "discoveryAddress: no-port"},
		{"proxy.istio.io/config", "{"},
		{"sidecar.istio.io/proxyCPU", "1 core"},
		{"sidecar.istio.io/proxyMemory", "1\n"},
		{"sidecar.istio.io/proxyCPULimit", "1.5.5"},
		{"sidecar.istio.io/proxyMemoryLimit", "lots"},
		{"inject.istio.io/templates", "spire"},
		{"inject.istio.io/templates", "sidecar,"},
		{"sidecar.istio.io/userVolume", `{"v": {"secret": "not-an-object"}}`},
		{"sidecar.istio.io/userVolumeMount", "[]"},
		{"proxy.istio.io/overrides", "{"},
		{"prometheus.io/port", "15090"},
		{"prometheus.io/port", "metrics"},
		{"prometheus.istio.io/scrape-targets", "8080:/metrics,15020:/stats"},
	}
	for _, tc := range cases {
		t.Run(tc.annotation+"="+tc.value, func(t *testing.T) {
			_, err := Inject(podWith(map[string]string{tc.annotation: tc.value}), testConfig(), Request{})
			if err == nil {
				t.Fatal("injected")
			}
			if !IsInvalid(err) {
				t.Errorf("error %q is not an InvalidError", err)
			}
			if !strings.Contains(err.Error(), tc.annotation) {
				t.Errorf("error %q does not name %s", err, tc.annotation)
			}
		})
	}
}

func TestSeveralInvalidAnnotationsAreAllNamed(t *testing.T) {
	_, err := Inject(podWith(map[string]string{
		"sidecar.istio.io/proxyCPU":         "x",
		"sidecar.istio.io/interceptionMode": "y",
	}), testConfig(), Request{})
	if !IsInvalid(err) {
		t.Fatalf("error %v is not an InvalidError", err)
	}
	for _, name := range []string{"sidecar.istio.io/proxyCPU", "sidecar.istio.io/interceptionMode"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

// TestValidAnnotationsAreAccepted covers the edges of what the validators
// accept.
func TestValidAnnotationsAreAccepted(t *testing.T) {
	cases := map[string]string{
		"traffic.sidecar.istio.io/includeOutboundIPRanges": "*",
		"traffic.sidecar.istio.io/excludeOutboundIPRanges": "",
		"traffic.sidecar.istio.io/includeInboundPorts":     "*",
		"traffic.sidecar.istio.io/excludeInboundPorts":     " 80, 443 ",
		"traffic.sidecar.istio.io/excludeInterfaces":       "eth0,net1.100",
		"status.sidecar.istio.io/port":                     "0",
		"proxy.istio.io/config":                            "{}",
		"sidecar.istio.io/proxyCPU":                        "1500m",
		"prometheus.istio.io/merge-metrics":                "FALSE",
		"inject.istio.io/templates":                        " sidecar ",
	}
	for name, value := range cases {
		t.Run(name+"="+value, func(t *testing.T) {
			if _, err := Inject(podWith(map[string]string{name: value}), testConfig(), Request{}); err != nil {
				t.Errorf("refused: %v", err)
			}
		})
	}
}

func TestInvalidConfigIsNotAnInvalidPod(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"version":                 func(c *Config) { c.Version = "2.0" },
		"native sidecars":         func(c *Config) { c.NativeSidecars = "Sometimes" },
		"proxy image":             func(c *Config) { c.ProxyImage = "" },
		"default proxy config":    func(c *Config) { c.DefaultProxyConfig.TerminationDrainDuration = "soon" },
		"default proxy config ok": nil,
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			if mutate != nil {
				mutate(cfg)
			}
			_, err := Inject(podWith(nil), cfg, Request{})
			if mutate == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || IsInvalid(err) {
				t.Errorf("error %v: want a configuration error", err)
			}
		})
	}
}
