package inject

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenCase injects testdata/<in>.in.yaml (in defaults to name) with the
// test configuration as changed by config, and compares the result with
// testdata/<name>.golden.yaml.
type goldenCase struct {
	name   string
	in     string
	config func(*Config)
	req    Request
}

func goldenCases() []goldenCase {
	canary := func(c *Config) {
		c.Revision = "1-32-0"
		c.DiscoveryAddress = "istiod-1-32-0.istio-system.svc:15012"
		c.CAAddress = c.DiscoveryAddress
		c.DefaultProxyConfig.DiscoveryAddress = c.DiscoveryAddress
	}
	classic := func(c *Config) { c.NativeSidecars = NativeSidecarsDisabled }
	istio130 := func(c *Config) {
		c.Version = "1.30.2"
		c.ProxyImage = "docker.io/istio/proxyv2:1.30.2"
	}
	// As render makes it of spec.proxy's imagePullSecrets, imagePullPolicy and variant.
	privateRegistry := func(c *Config) {
		c.ProxyImage = "registry.example.com/istio/proxyv2:1.32.0-distroless"
		c.ImagePullPolicy = corev1.PullAlways
		c.ImagePullSecrets = []string{"mesh-registry", "mesh-registry-backup"}
	}
	// spec.cni.enabled, as render makes it; restricted adds
	// spec.proxy.seccompProfile RuntimeDefault.
	cni := func(c *Config) { c.CNI = &CNI{Provider: CNIProviderDefault} }
	restricted := func(c *Config) {
		cni(c)
		c.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	}
	multus := func(c *Config) { c.CNI = &CNI{Provider: CNIProviderMultus} }
	return []goldenCase{
		{name: "cni-restricted", in: "deployment", config: restricted},
		{name: "cni-restricted-classic", in: "deployment", config: func(c *Config) { restricted(c); classic(c) }},
		{name: "cni-istio-1.30", in: "deployment", config: func(c *Config) { cni(c); istio130(c) }},
		// istio-validation's image follows istio-init's rule of each version
		// (the ProxyConfig's image type since 1.31 only for istio-proxy).
		{name: "cni-proxy-config-annotation", in: "proxy-config-annotation", config: cni},
		{name: "cni-proxy-config-annotation-istio-1.30", in: "proxy-config-annotation", config: func(c *Config) { cni(c); istio130(c) }},
		{name: "cni-tproxy", in: "interception-tproxy", config: restricted},
		{name: "cni-traffic-annotations", config: func(c *Config) {
			cni(c)
			c.TrafficCapture = &TrafficCapture{IncludeOutboundIPRanges: ptr.To("10.0.0.0/8"), IncludeOutboundPorts: "443"}
		}},
		{name: "cni-multus-json-empty", config: multus},
		{name: "seccomp-without-cni", in: "deployment", config: func(c *Config) {
			c.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("profiles/istio.json")}
		}},
		{name: "deployment"},
		{name: "deployment-classic", in: "deployment", config: classic},
		{name: "deployment-canary", in: "deployment", config: canary},
		{name: "deployment-istio-1.30", in: "deployment", config: istio130},
		{name: "proxy-config-annotation-istio-1.30", in: "proxy-config-annotation", config: istio130},
		{name: "deployment-multicluster", in: "deployment", req: Request{ClusterID: "east", Network: "net-east"},
			config: func(c *Config) { c.ClusterID = "cluster-a"; c.Network = "net-a"; c.MeshID = "mesh1" }},
		{name: "native-opt-out"},
		{name: "native-opt-in", config: classic},
		{name: "probes"},
		{name: "probes-classic", in: "probes", config: classic},
		{name: "probes-rewrite-off"},
		{name: "probes-status-port"},
		{name: "prometheus-merge"},
		{name: "prometheus-scrape-false"},
		{name: "prometheus-targets"},
		{name: "prometheus-targets-istio-1.30", in: "prometheus-targets", config: istio130},
		{name: "prometheus-merge-off"},
		{name: "hold-application", config: func(c *Config) { holdApplication(c); classic(c) }},
		{name: "hold-application-native", in: "hold-application", config: holdApplication},
		{name: "hold-application-annotation-false", config: func(c *Config) { holdApplication(c); classic(c) }},
		{name: "traffic-capture-defaults", config: func(c *Config) {
			c.TrafficCapture = &TrafficCapture{
				IncludeOutboundIPRanges: ptr.To("10.0.0.0/8"), ExcludeOutboundIPRanges: "10.96.0.1/32",
				IncludeInboundPorts: ptr.To("8080"), ExcludeInboundPorts: "9000",
				IncludeOutboundPorts: "443", ExcludeOutboundPorts: "3306",
			}
		}},
		{name: "traffic-capture-defaults-overridden", in: "traffic-annotations", config: func(c *Config) {
			c.TrafficCapture = &TrafficCapture{
				IncludeOutboundIPRanges: ptr.To("192.168.0.0/16"), ExcludeOutboundIPRanges: "192.168.1.1/32",
				IncludeInboundPorts: ptr.To(""), ExcludeInboundPorts: "1",
				IncludeOutboundPorts: "1", ExcludeOutboundPorts: "2",
			}
		}},
		{name: "cluster-domain", in: "deployment", config: func(c *Config) { c.ClusterDomain = "corp.example" }},
		{name: "hold-application-annotation", config: classic},
		{name: "proxy-config-annotation"},
		{name: "proxy-config-mesh-defaults", in: "deployment", config: func(c *Config) {
			c.DefaultProxyConfig.Concurrency = ptr.To(int32(2))
			c.DefaultProxyConfig.ProxyMetadata = map[string]string{"ISTIO_META_DNS_CAPTURE": "true", "BOOTSTRAP_XDS_AGENT": "true"}
			c.DefaultProxyConfig.TerminationDrainDuration = "30s"
		}},
		{name: "resources-annotations"},
		{name: "resources-limits-only"},
		{name: "interception-tproxy"},
		{name: "interception-none-classic", config: classic},
		{name: "interception-none-native", in: "interception-none-classic"},
		{name: "traffic-annotations"},
		{name: "status-port-zero"},
		{name: "logging-and-image"},
		{name: "gateway"},
		{name: "gateway-with-app"},
		{name: "override-proxy"},
		{name: "override-proxy-classic", in: "override-proxy", config: classic},
		{name: "override-proxy-tproxy"},
		{name: "user-volumes"},
		{name: "cap-net-bind-service"},
		{name: "bare-pod", config: func(c *Config) {
			c.ImagePullPolicy = corev1.PullIfNotPresent
			c.ClusterDomain = "corp.example"
		}},
		{name: "pull-secrets", config: privateRegistry},
		{name: "gateway-pull-secrets", in: "gateway", config: privateRegistry},
		{name: "cronjob-pod", req: Request{Namespace: "batch"}},
		{name: "statefulset-pod"},
		{name: "canonical-labels"},
		{name: "canonical-labels-istio-1.30", in: "canonical-labels", config: istio130},
		{name: "grpc-agent"},
		{name: "grpc-simple"},
		{name: "multi-template"},
		{name: "proxy-metadata-features", config: func(c *Config) {
			c.DefaultProxyConfig.ProxyMetadata = map[string]string{
				"ISTIO_META_ENABLE_HBONE":          "true",
				"IPTABLES_TRACE_LOGGING":           "true",
				"ENVOY_SECURE_MERGED_METRICS_PORT": "15091",
			}
		}},
	}
}

// holdApplication sets the mesh's holdApplicationUntilProxyStarts, as the
// renderer writes it (into defaultConfig).
func holdApplication(c *Config) { c.DefaultProxyConfig.HoldApplicationUntilProxyStarts = ptr.To(true) }

// testConfig is a default revision of Istio 1.32 as meshkeeper renders it.
func testConfig() *Config {
	return &Config{
		Revision:         "default",
		Version:          "1.32.0",
		Namespace:        "istio-system",
		ProxyImage:       "docker.io/istio/proxyv2:1.32.0",
		ClusterID:        "Kubernetes",
		MeshID:           "cluster.local",
		TrustDomain:      "cluster.local",
		DiscoveryAddress: "istiod.istio-system.svc:15012",
		CAAddress:        "istiod.istio-system.svc:15012",
		NativeSidecars:   NativeSidecarsAuto,
		RewriteAppProbes: true,
		ProxyResources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")},
		},
		EnablePrometheusMerge: true,
		LogLevel:              "warning",
		ComponentLogLevel:     "misc:error",
		DefaultProxyConfig:    ProxyConfig{DiscoveryAddress: "istiod.istio-system.svc:15012"},
	}
}

func (gc goldenCase) configFor() *Config {
	c := testConfig()
	if gc.config != nil {
		gc.config(c)
	}
	return c
}

func (gc goldenCase) inputFile() string {
	in := gc.in
	if in == "" {
		in = gc.name
	}
	return filepath.Join("testdata", in+".in.yaml")
}

func (gc goldenCase) goldenFile() string {
	return filepath.Join("testdata", gc.name+".golden.yaml")
}

func readPod(t testing.TB, path string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{}
	if err := yaml.UnmarshalStrict(b, pod); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return pod
}

func podYAML(t testing.TB, pod *corev1.Pod) []byte {
	t.Helper()
	b, err := yaml.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGolden(t *testing.T) {
	for _, gc := range goldenCases() {
		t.Run(gc.name, func(t *testing.T) {
			in := readPod(t, gc.inputFile())
			before := podYAML(t, in)
			out, err := Inject(in, gc.configFor(), gc.req)
			if err != nil {
				t.Fatalf("Inject: %v", err)
			}
			if !bytes.Equal(before, podYAML(t, in)) {
				t.Error("Inject modified its input pod")
			}
			got := podYAML(t, out)
			if *update {
				if err := os.WriteFile(gc.goldenFile(), got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(gc.goldenFile())
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("injected pod differs from %s (run go test -update to accept):\n%s", gc.goldenFile(), lineDiff(string(want), string(got)))
			}
		})
	}
}

// TestGoldenInjectedPodsAreLeftAlone injects every golden output again,
// with another revision's configuration: an injected pod (it carries
// sidecar.istio.io/status) is returned as it is, as meshkeeper's webhook
// configuration never sends one.
func TestGoldenInjectedPodsAreLeftAlone(t *testing.T) {
	other := testConfig()
	other.Revision = "1-33-0"
	other.Version = "1.33.0"
	other.ProxyImage = "docker.io/istio/proxyv2:1.33.0"
	other.NativeSidecars = NativeSidecarsDisabled
	for _, gc := range goldenCases() {
		t.Run(gc.name, func(t *testing.T) {
			first := readPod(t, gc.goldenFile())
			again, err := Inject(first, other, gc.req)
			if err != nil {
				t.Fatalf("re-injecting: %v", err)
			}
			if want, got := podYAML(t, first), podYAML(t, again); !bytes.Equal(want, got) {
				t.Errorf("re-injection changed the pod:\n%s", lineDiff(string(want), string(got)))
			}
		})
	}
}

// TestInjectIsRepeatableAndConcurrent injects every golden case many times,
// concurrently: every result must equal the golden, so no injection changes
// what injected pods share, and (under -race) injection is safe to run
// concurrently with one Config.
func TestInjectIsRepeatableAndConcurrent(t *testing.T) {
	for _, gc := range goldenCases() {
		cfg := gc.configFor()
		in := readPod(t, gc.inputFile())
		want, err := os.ReadFile(gc.goldenFile())
		if err != nil {
			t.Fatal(err)
		}
		t.Run(gc.name, func(t *testing.T) {
			t.Parallel()
			for i := 0; i < 5; i++ {
				out, err := Inject(in, cfg, gc.req)
				if err != nil {
					t.Fatal(err)
				}
				if got := podYAML(t, out); !bytes.Equal(got, want) {
					t.Fatalf("injection %d differs from the golden:\n%s", i, lineDiff(string(want), string(got)))
				}
			}
		})
	}
}

// TestGoldenFilesAreUsed fails on input or golden files no case uses, so a
// renamed or removed case cannot leave a stale golden behind.
func TestGoldenFilesAreUsed(t *testing.T) {
	used := map[string]bool{}
	for _, gc := range goldenCases() {
		used[gc.inputFile()] = true
		used[gc.goldenFile()] = true
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var orphans []string
	for _, f := range files {
		if !used[f] {
			orphans = append(orphans, f)
		}
	}
	sort.Strings(orphans)
	if len(orphans) > 0 {
		t.Errorf("files no golden case uses (remove them): %s", strings.Join(orphans, ", "))
	}
}

// lineDiff is a minimal line diff for failure messages.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	n := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n- " + wl + "\n+ " + gl + "\n")
			if n++; n == 20 {
				b.WriteString("...\n")
				break
			}
		}
	}
	return b.String()
}
