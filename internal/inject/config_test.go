package inject

import (
	"encoding/json"
	"regexp"
	"testing"

	"k8s.io/utils/ptr"
)

func TestConfigHash(t *testing.T) {
	a, b := testConfig(), testConfig()
	if a.Hash() != b.Hash() {
		t.Errorf("equal configurations hash differently: %s, %s", a.Hash(), b.Hash())
	}
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(a.Hash()) {
		t.Errorf("hash %q is not 16 hex digits", a.Hash())
	}
	c := testConfig()
	c.DefaultProxyConfig.ProxyMetadata = map[string]string{"A": "1"}
	if c.Hash() == a.Hash() {
		t.Error("a changed configuration keeps its hash")
	}
	// The hash survives the ConfigMap round trip.
	js, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var decoded Config
	if err := json.Unmarshal(js, &decoded); err != nil {
		t.Fatal(err)
	}
	if decoded.Hash() != a.Hash() {
		t.Errorf("hash changed through JSON: %s, %s", decoded.Hash(), a.Hash())
	}
	// A broken configuration still has a hash.
	broken := testConfig()
	broken.Version = "x"
	if broken.Hash() == "" {
		t.Error("no hash for a configuration that does not prepare")
	}
}

func TestConfigHashIsCheap(t *testing.T) {
	cfg := testConfig()
	cfg.Hash()
	if allocs := testing.AllocsPerRun(100, func() { cfg.Hash() }); allocs != 0 {
		t.Errorf("Hash allocates %v times per call after the first", allocs)
	}
}

// TestProxyConfigMerge: a pod's proxy.istio.io/config replaces the mesh
// defaults field by field and merges proxyMetadata entry by entry; what
// equals Istio's defaults stays out of PROXY_CONFIG.
func TestProxyConfigMerge(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultProxyConfig.ProxyMetadata = map[string]string{"A": "mesh", "B": "mesh"}
	cfg.DefaultProxyConfig.Concurrency = ptr.To(int32(2))
	pod := podWith(map[string]string{"proxy.istio.io/config": `{"proxyMetadata":{"B":"pod","C":"pod"},"drainDuration":"45s","terminationDrainDuration":"10s"}`})
	out, err := Inject(pod, cfg, Request{})
	if err != nil {
		t.Fatal(err)
	}
	proxy := findContainer(out.Spec.InitContainers, ProxyContainerName)
	got, _ := envValue(proxy.Env, "PROXY_CONFIG")
	// Fields in the order of Istio's proxy.proto, as Istio writes them.
	want := `{"concurrency":2,"proxyMetadata":{"A":"mesh","B":"pod","C":"pod"},"terminationDrainDuration":"10s"}` + "\n"
	if got != want {
		t.Errorf("PROXY_CONFIG\n got %s\nwant %s", got, want)
	}
	for name, value := range map[string]string{"A": "mesh", "B": "pod", "C": "pod"} {
		if v, _ := envValue(proxy.Env, name); v != value {
			t.Errorf("%s = %q, want %q", name, v, value)
		}
	}
}

func TestImageTypes(t *testing.T) {
	cases := []struct{ image, imageType, want string }{
		{"docker.io/istio/proxyv2:1.32.0", "", "docker.io/istio/proxyv2:1.32.0"},
		{"docker.io/istio/proxyv2:1.32.0", "distroless", "docker.io/istio/proxyv2:1.32.0-distroless"},
		{"docker.io/istio/proxyv2:1.32.0-distroless", "debug", "docker.io/istio/proxyv2:1.32.0-debug"},
		{"docker.io/istio/proxyv2:1.32.0-distroless", "default", "docker.io/istio/proxyv2:1.32.0"},
		{"localhost:5000/proxyv2:dev", "distroless", "localhost:5000/proxyv2:dev-distroless"},
		{"localhost:5000/proxyv2", "distroless", "localhost:5000/proxyv2"},
		{"docker.io/istio/proxyv2@sha256:abc", "distroless", "docker.io/istio/proxyv2@sha256:abc"},
	}
	for _, tc := range cases {
		d := &derived{}
		d.imageRepo, d.imageTag = splitImage(tc.image)
		if got := d.imageWithType(tc.imageType); got != tc.want {
			t.Errorf("%s as %q: got %s, want %s", tc.image, tc.imageType, got, tc.want)
		}
	}
}
