package inject

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"istio.io/api/annotation"
	"istio.io/api/label"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// istioSourceEnv names the directory of the istio.io/istio module whose
// injector golden cases TestIstioGoldenCases reads.
const istioSourceEnv = "MESHKEEPER_ISTIO_SRC"

// istioGoldenDir is where Istio keeps its injector's golden cases.
const istioGoldenDir = "pkg/kube/inject/testdata/inject"

// istioSource finds the istio.io/istio module: $MESHKEEPER_ISTIO_SRC, or
// what `go list -m` says in the repository's hack/tools/istio module (the
// Istio meshkeeper's tests build). It fails rather than skips: a comparison
// that silently does not run proves nothing.
func istioSource(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(istioSourceEnv)
	if dir == "" {
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/istio")
		cmd.Dir = filepath.Join(root, "hack", "tools", "istio")
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("cannot find Istio's source to compare with: set %s to the istio.io/istio module directory, "+
				"or download it with `cd hack/tools/istio && go mod download istio.io/istio` "+
				"(go list -m in %s: %v %s)", istioSourceEnv, cmd.Dir, err, stderr)
		}
		dir = strings.TrimSpace(string(out))
	}
	if _, err := os.Stat(filepath.Join(dir, istioGoldenDir)); err != nil {
		t.Fatalf("%s: no Istio injector golden cases there (%v); set %s to the istio.io/istio module directory, "+
			"e.g. $(cd hack/tools/istio && go list -m -f '{{.Dir}}' istio.io/istio) after "+
			"`cd hack/tools/istio && go mod download istio.io/istio`", dir, err, istioSourceEnv)
	}
	return dir
}

// Results of an Istio golden case.
const (
	// identical: meshkeeper's default configuration injects Istio's expected
	// pod (after normalisation).
	identical = "identical"
	// withSettings: meshkeeper injects Istio's expected pod with the Config
	// settings a MeshInstall sets for Istio's non-default settings.
	withSettings = "supported-with-settings"
	// notExpressible: the case needs a setting meshkeeper does not offer, or
	// a path its webhook never takes; why says which.
	notExpressible = "not expressible"
)

// istioCase is how meshkeeper fares on one of Istio's golden outputs.
type istioCase struct {
	// want is the .injected file; in is the input (want without .injected).
	want, in string
	result   string
	// config changes the default Config to Istio's settings of the case.
	config func(*Config)
	// why explains the settings, or why the case is not expressible.
	why string
	// proxyConfig, when set, is the PROXY_CONFIG Istio's expected pod
	// would carry had the case's setting been made where meshkeeper makes
	// it: in the mesh's defaultConfig rather than in Istio's values.
	proxyConfig string
}

func (c istioCase) input() string {
	if c.in != "" {
		return c.in
	}
	return strings.TrimSuffix(c.want, ".injected")
}

// TestIstioGoldenCases injects the inputs of Istio's own injector golden
// cases (read from the istio.io/istio module, none copied here) with
// meshkeeper and compares each result with Istio's expected pod, after
// normalising what legitimately differs (istioNormalisations). Every
// expected output in Istio's directory must be classified in istioCases, so
// a new Istio case is noticed, and a case listed as supported that stops
// matching fails.
func TestIstioGoldenCases(t *testing.T) {
	dir := filepath.Join(istioSource(t), istioGoldenDir)
	files, err := filepath.Glob(filepath.Join(dir, "*.injected"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]istioCase{}
	for _, c := range istioCases() {
		if _, dup := cases[c.want]; dup {
			t.Fatalf("%s is listed twice", c.want)
		}
		cases[c.want] = c
	}
	var unlisted []string
	for _, f := range files {
		if _, ok := cases[filepath.Base(f)]; !ok {
			unlisted = append(unlisted, filepath.Base(f))
		}
	}
	if len(unlisted) > 0 {
		t.Errorf("Istio golden cases istioCases does not classify (add them): %s", strings.Join(unlisted, ", "))
	}
	var table []string
	for _, c := range istioCases() {
		t.Run(c.want, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(dir, c.want)); err != nil {
				t.Fatalf("Istio has no %s any more: remove or rename the case (%v)", c.want, err)
			}
			table = append(table, fmt.Sprintf("| %s | %s | %s |", c.want, c.result, c.why))
			// Istio's tests run its chart's defaults, revision default, on
			// nodes of Kubernetes 1.33+: testConfig, native sidecars on.
			cfg := testConfig()
			if c.config != nil {
				c.config(cfg)
			}
			ins := istioPods(t, filepath.Join(dir, c.input()))
			wants := istioPods(t, filepath.Join(dir, c.want))
			if c.proxyConfig != "" {
				for _, w := range wants {
					setProxyConfig(t, w, c.proxyConfig)
				}
			}
			if len(ins) != len(wants) {
				t.Fatalf("%d pods in the input, %d in the output", len(ins), len(wants))
			}
			var diffs []string
			for i := range ins {
				got, err := injectAsWebhook(ins[i], cfg)
				if err != nil {
					diffs = append(diffs, fmt.Sprintf("pod %d: refused: %v", i, err))
					continue
				}
				if d := semanticDiff(got, wants[i]); d != "" {
					diffs = append(diffs, fmt.Sprintf("pod %d differs from Istio's %s:\n%s", i, c.want, d))
				}
			}
			switch {
			case c.result != notExpressible && len(diffs) > 0:
				t.Error(strings.Join(diffs, "\n"))
			case c.result == notExpressible && c.why == "":
				t.Error("a case that is not expressible must say why")
			case c.result == notExpressible && len(diffs) == 0 && len(ins) > 0:
				// A case that starts matching is support gained: say so.
				t.Error("meshkeeper's defaults now inject what Istio expects: classify the case as identical")
			}
		})
	}
	counts := map[string]int{}
	for _, c := range istioCases() {
		counts[c.result]++
	}
	t.Logf("%d Istio golden cases: %d %s, %d %s, %d %s", len(files), counts[identical], identical,
		counts[withSettings], withSettings, counts[notExpressible], notExpressible)
	if testing.Verbose() {
		t.Logf("support table:\n| Istio golden case | result | why |\n| --- | --- | --- |\n%s", strings.Join(table, "\n"))
	}
}

// injectAsWebhook injects pod as meshkeeper's webhook would: a pod it skips
// as Istio's injector does (host network, opted out) is left unchanged.
func injectAsWebhook(pod *corev1.Pod, cfg *Config) (*corev1.Pod, error) {
	if pod.Spec.HostNetwork {
		return pod, nil
	}
	v, ok := pod.Labels[label.SidecarInject.Name]
	if !ok {
		v = pod.Annotations[annotation.SidecarInject.Name]
	}
	if v == "false" {
		return pod, nil
	}
	return Inject(pod, cfg, Request{Namespace: pod.Namespace})
}

// istioPods reads the pods of an Istio golden file: the pod templates of
// its workloads, each given the owner its controller would give the pod
// (as Istio's webhook test does), so both sides derive the same workload.
func istioPods(t *testing.T, path string) []*corev1.Pod {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pods []*corev1.Pod
	for _, doc := range bytes.Split(raw, []byte("\n---")) {
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		pods = append(pods, podsOf(t, obj)...)
	}
	return pods
}

// podsOf returns the pods a workload object of Istio's golden files creates.
func podsOf(t *testing.T, obj map[string]any) []*corev1.Pod {
	kind, _ := obj["kind"].(string)
	apiVersion, _ := obj["apiVersion"].(string)
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	spec, _ := obj["spec"].(map[string]any)
	owned := func(template any, ownerAPIVersion, ownerKind, ownerName string, podTemplateHash bool) *corev1.Pod {
		var tmpl corev1.PodTemplateSpec
		convert(t, template, &tmpl)
		pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
		if pod.Namespace == "" {
			// The controller creates its pods in its own namespace.
			pod.Namespace, _ = meta["namespace"].(string)
		}
		pod.GenerateName = ownerName + "-"
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: ownerAPIVersion, Kind: ownerKind, Name: ownerName, Controller: ptrTrue()}}
		if podTemplateHash {
			if pod.Labels == nil {
				pod.Labels = map[string]string{}
			}
			pod.Labels[labelPodTemplateHash] = "fake"
		}
		return pod
	}
	switch kind {
	case "Pod":
		var pod corev1.Pod
		convert(t, obj, &pod)
		pod.TypeMeta = metav1.TypeMeta{}
		return []*corev1.Pod{&pod}
	case "List":
		items, _ := obj["items"].([]any)
		var pods []*corev1.Pod
		for _, it := range items {
			m, _ := it.(map[string]any)
			pods = append(pods, podsOf(t, m)...)
		}
		return pods
	case "Deployment":
		return []*corev1.Pod{owned(spec["template"], "apps/v1", "ReplicaSet", name+"-fake", true)}
	case "DaemonSet", "ReplicaSet", "StatefulSet", "Job", "ReplicationController", "DeploymentConfig":
		return []*corev1.Pod{owned(spec["template"], apiVersion, kind, name, false)}
	case "CronJob":
		job, _ := spec["jobTemplate"].(map[string]any)
		jobSpec, _ := job["spec"].(map[string]any)
		tmpl, _ := jobSpec["template"].(map[string]any)
		if m, _ := tmpl["metadata"].(map[string]any); len(m) == 0 && job["metadata"] != nil {
			// Istio's kube-inject writes the injected pod's metadata on
			// the job template (its webhook test skips CronJobs for it).
			tmpl["metadata"] = job["metadata"]
		}
		return []*corev1.Pod{owned(tmpl, apiVersion, kind, name, false)}
	}
	return nil
}

func ptrTrue() *bool { b := true; return &b }

func convert(t *testing.T, from, to any) {
	t.Helper()
	b, err := json.Marshal(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, to); err != nil {
		t.Fatal(err)
	}
}

// istioNormalisations are the differences between meshkeeper's and Istio's
// injected pods that no user notices. Each one is applied to both pods, as
// generic JSON; keep the list short, and say why for each.
var istioNormalisations = []struct {
	why string
	fn  func(pod map[string]any)
}{
	{
		// Istio's tests use a test hub and tag (registry.istio.io/testing,
		// latest); meshkeeper's Config names the revision's real image. The
		// image's name stays: proxyv2, or another one a setting asks for.
		why: "images name another hub and tag",
		fn: func(pod map[string]any) {
			forContainers(pod, func(c map[string]any) {
				if img, ok := c["image"].(string); ok {
					c["image"] = imageName(img)
				}
			})
		},
	},
	{
		// meshkeeper's own stamp: the revision, proxy version and
		// configuration hash it injected, for its upgrade bookkeeping.
		why: "meshkeeper's stamp annotations and label are meshkeeper's own additions",
		fn: func(pod map[string]any) {
			meta := pod["metadata"].(map[string]any)
			for _, key := range []string{"annotations", "labels"} {
				m, _ := meta[key].(map[string]any)
				for k := range m {
					if strings.HasPrefix(k, "mesh.meshkeeper.dev/") {
						delete(m, k)
					}
				}
				if len(m) == 0 {
					delete(meta, key)
				}
			}
		},
	},
	{
		// The API server defaults a volume without a source to an emptyDir
		// (Istio's templates write the sidecar's emptyDirs without a body).
		why: "a volume without a source is an emptyDir",
		fn: func(pod map[string]any) {
			spec, _ := pod["spec"].(map[string]any)
			vols, _ := spec["volumes"].([]any)
			for _, v := range vols {
				if m, ok := v.(map[string]any); ok && len(m) == 1 {
					m["emptyDir"] = map[string]any{}
				}
			}
		},
	},
	{
		// The API server defaults fieldRef.apiVersion to v1; Istio's
		// expected files sometimes carry it and sometimes not.
		why: "fieldRef.apiVersion: v1 is the API server's default",
		fn: func(pod map[string]any) {
			forContainers(pod, func(c map[string]any) {
				env, _ := c["env"].([]any)
				for _, e := range env {
					if vf, _ := e.(map[string]any)["valueFrom"].(map[string]any); vf != nil {
						if fr, _ := vf["fieldRef"].(map[string]any); fr != nil && fr["apiVersion"] == "v1" {
							delete(fr, "apiVersion")
						}
					}
				}
			})
		},
	},
}

// imageName is an image reference without its registry, repository path,
// tag and digest: docker.io/istio/proxyv2:1.32.0 is proxyv2.
func imageName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, "/"); i >= 0 {
		ref = ref[i+1:]
	}
	ref, _, _ = strings.Cut(ref, ":")
	return ref
}

func forContainers(pod map[string]any, fn func(map[string]any)) {
	spec, _ := pod["spec"].(map[string]any)
	for _, key := range []string{"initContainers", "containers"} {
		cs, _ := spec[key].([]any)
		for _, c := range cs {
			if m, ok := c.(map[string]any); ok {
				fn(m)
			}
		}
	}
}

// semanticDiff compares two pods after istioNormalisations: "" when they
// are the same.
func semanticDiff(got, want *corev1.Pod) string {
	normal := func(p *corev1.Pod) map[string]any {
		b, err := json.Marshal(p)
		if err != nil {
			panic(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			panic(err)
		}
		for _, n := range istioNormalisations {
			n.fn(m)
		}
		return m
	}
	g, w := normal(got), normal(want)
	if reflect.DeepEqual(g, w) {
		return ""
	}
	var diffs []string
	diffValues("", g, w, &diffs)
	sort.Strings(diffs)
	if len(diffs) > 30 {
		diffs = append(diffs[:30], "...")
	}
	return strings.Join(diffs, "\n")
}

// diffValues lists the paths where got and want differ.
func diffValues(path string, got, want any, out *[]string) {
	gm, gok := got.(map[string]any)
	wm, wok := want.(map[string]any)
	if gok && wok {
		keys := map[string]bool{}
		for k := range gm {
			keys[k] = true
		}
		for k := range wm {
			keys[k] = true
		}
		for k := range keys {
			diffValues(path+"."+k, gm[k], wm[k], out)
		}
		return
	}
	gl, gok := got.([]any)
	wl, wok := want.([]any)
	if gok && wok && len(gl) == len(wl) {
		for i := range gl {
			diffValues(fmt.Sprintf("%s[%d]", path, i), gl[i], wl[i], out)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		*out = append(*out, fmt.Sprintf("%s:\n  meshkeeper: %s\n  istio:      %s", path, gj, wj))
	}
}

// istioCases classifies every golden output of Istio's injector tests
// (Istio's pkg/kube/inject/inject_test.go says which settings each needs;
// the files it does not list use its defaults).
func istioCases() []istioCase {
	// Istio's cases with its default settings: meshkeeper injects the same.
	defaults := []string{
		"auth.non-default-service-account.yaml.injected",
		"auth.yaml.injected",
		"cronjob.yaml.injected",
		"daemonset.yaml.injected",
		"deploymentconfig-multi.yaml.injected",
		"deploymentconfig-with-canonical-service-label.yaml.injected",
		"deploymentconfig.yaml.injected",
		"enable-core-dump.yaml.injected",
		"explicit-security-context.yaml.injected",
		"frontend.yaml.injected",
		"gateway-with-default-container.yaml.injected",
		"gateway.yaml.injected",
		"grpc-agent.yaml.injected",
		"grpc-simple.yaml.injected",
		"hello-host-network-with-ns.yaml.injected",
		"hello-host-network.yaml.injected",
		"hello-ignore.yaml.injected",
		"hello-image-pull-secret.yaml.injected",
		"hello-mtls-not-ready.yaml.injected",
		"hello-multi.yaml.injected",
		"hello-multiport-metrics.yaml.injected",
		"hello-namespace.yaml.injected",
		"hello-probes-proxyHoldApplication-ProxyConfig.yaml.injected",
		"hello-probes-with-flag-set-in-annotation.yaml.injected",
		"hello-probes-with-flag-unset-in-annotation.yaml.injected",
		"hello-probes.yaml.injected",
		"hello-proxy-override.yaml.injected",
		"hello-readiness.yaml.injected",
		"hello.yaml.injected",
		"https-probes.yaml.injected",
		"init-no-intercept-no-native-sidecar.yaml.injected",
		"job.yaml.injected",
		"kubevirtInterfaces_list.yaml.injected",
		"list-frontend.yaml.injected",
		"list.yaml.injected",
		"multi-container.yaml.injected",
		"multi-init.yaml.injected",
		"multiple-templates.yaml.injected",
		"named_port.yaml.injected",
		"native-sidecar-opt-in.yaml.injected",
		"native-sidecar-opt-out.yaml.injected",
		"native-sidecar.yaml.injected",
		"one_container.yaml.injected",
		"only-proxy-container.yaml.injected",
		"pod.yaml.injected",
		"prometheus-scrape.yaml.injected",
		"prometheus-scrape2.yaml.injected",
		"proxy-override-args.yaml.injected",
		"proxy-override-runas.yaml.injected",
		"proxy-override.yaml.injected",
		"ready_live.yaml.injected",
		"ready_only.yaml.injected",
		"replicaset.yaml.injected",
		"replicationcontroller.yaml.injected",
		"reroute-virtual-interfaces_list.yaml.injected",
		"resource_annotations.yaml.injected",
		"startup_live.yaml.injected",
		"startup_only.yaml.injected",
		"startup_ready_live.yaml.injected",
		"statefulset.yaml.injected",
		"status_annotations.yaml.injected",
		"status_annotations_zeroport.yaml.injected",
		"tcp-probes.yaml.injected",
		"traffic-annotations-empty-includes.yaml.injected",
		"traffic-annotations-wildcards.yaml.injected",
		"traffic-params-empty-includes.yaml.injected",
		"truncate-canonical-name-custom-controller-pod.yaml.injected",
		"truncate-canonical-name-pod.yaml.injected",
		"two_container.yaml.injected",
		"user-volume.yaml.injected",
	}
	var cases []istioCase
	for _, want := range defaults {
		cases = append(cases, istioCase{want: want, result: identical})
	}
	cases = append(cases,
		istioCase{want: "proxy-override-args-native.yaml.injected", in: "proxy-override-args.yaml", result: identical},
		istioCase{want: "hello-template-in-values.yaml.injected", in: "hello.yaml", result: identical,
			why: "its setting, values.global.podDNSSearchNamespaces, no longer changes the injected pod"},
	)

	classic := func(c *Config) { c.NativeSidecars = NativeSidecarsDisabled }
	const classicWhy = "spec.injection.nativeSidecars: Disabled (Istio: native sidecars off)"
	for _, in := range []string{"hello", "cronjob", "daemonset", "job", "pod", "replicaset", "statefulset", "native-sidecar"} {
		cases = append(cases, istioCase{want: in + "-old-version.yaml.injected", in: in + ".yaml", result: withSettings, config: classic, why: classicWhy})
	}
	// Istio's meshConfig.defaultConfig.holdApplicationUntilProxyStarts, the
	// equivalent of the value these cases set, reaches the proxy in PROXY_CONFIG.
	const holdProxyConfig = "{\"holdApplicationUntilProxyStarts\":true}\n"
	hold := func(c *Config) { on := true; c.DefaultProxyConfig.HoldApplicationUntilProxyStarts = &on }
	const holdWhy = "spec.injection.holdApplicationUntilProxyStarts: true, which meshkeeper writes into the mesh's defaultConfig (Istio: values.global.proxy.holdApplicationUntilProxyStarts)"
	resources := func(requests, limits corev1.ResourceList) func(*Config) {
		return func(c *Config) { c.ProxyResources = corev1.ResourceRequirements{Requests: requests, Limits: limits} }
	}
	const resourcesWhy = "spec.proxy.resources without the values Istio's IstioOperator sets to null"
	cases = append(cases,
		istioCase{want: "hello.proxyHoldsApplication.yaml.injected", in: "hello.yaml", result: withSettings, config: hold, why: holdWhy, proxyConfig: holdProxyConfig},
		istioCase{want: "hello-probes.proxyHoldsApplication.yaml.injected", in: "hello-probes.yaml", result: withSettings, config: hold, why: holdWhy, proxyConfig: holdProxyConfig},
		istioCase{want: "hello-probes-noProxyHoldApplication-ProxyConfig.yaml.injected", result: withSettings, config: hold, why: holdWhy},
		istioCase{want: "hello-always.yaml.injected", in: "hello.yaml", result: withSettings,
			config: func(c *Config) { c.ImagePullPolicy = corev1.PullAlways }, why: "spec.proxy.imagePullPolicy: Always (Istio: values.global.imagePullPolicy)"},
		istioCase{want: "hello-never.yaml.injected", in: "hello.yaml", result: withSettings,
			config: func(c *Config) { c.ImagePullPolicy = corev1.PullNever }, why: "spec.proxy.imagePullPolicy: Never (Istio: values.global.imagePullPolicy)"},
		istioCase{want: "traffic-annotations.yaml.injected", result: withSettings,
			config: func(c *Config) {
				c.DefaultProxyConfig.ProxyMetadata = map[string]string{"ISTIO_META_TLS_CLIENT_KEY": "/etc/identity/client/keys/client-key.pem"}
			}, why: "spec.meshConfig.defaultConfig.proxyMetadata"},
		istioCase{want: "proxy-resources-memory-null.yaml.injected", result: withSettings, why: resourcesWhy,
			config: resources(cpu("50m"), cpu("100m"))},
		istioCase{want: "proxy-resources-mixed-null.yaml.injected", result: withSettings, why: resourcesWhy,
			config: resources(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceEphemeralStorage: resource.MustParse("1Gi")}, memory("500Mi"))},
		istioCase{want: "proxy-resources-null.yaml.injected", result: withSettings, why: resourcesWhy,
			config: resources(memory("150Mi"), memory("500Mi"))},
		istioCase{want: "proxy-resources-null-no-init.yaml.injected", result: withSettings, why: resourcesWhy,
			config: resources(memory("150Mi"), memory("500Mi"))},
		istioCase{want: "proxy-resources-zero.yaml.injected", result: withSettings, why: "spec.proxy.resources",
			config: resources(
				corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0"), corev1.ResourceMemory: resource.MustParse("150Mi")},
				corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0"), corev1.ResourceMemory: resource.MustParse("500Mi")})},
	)

	pullSecrets := func(c *Config) { c.ImagePullSecrets = []string{"barSecret"} }
	const pullSecretsWhy = "spec.proxy.imagePullSecrets: [barSecret] (Istio: values.global.imagePullSecrets)"
	cases = append(cases,
		istioCase{want: "hello-image-secrets-in-values.yaml.injected", in: "hello.yaml", result: withSettings, config: pullSecrets, why: pullSecretsWhy},
		istioCase{want: "hello-multiple-image-secrets.yaml.injected", in: "hello-image-pull-secret.yaml", result: withSettings, config: pullSecrets, why: pullSecretsWhy},
	)

	notYet := func(want, why string) istioCase {
		c := istioCase{want: want, result: notExpressible, why: why}
		// Istio names some outputs <input>.<variant>.injected.
		if in, _, ok := strings.Cut(want, ".yaml."); ok && !strings.HasPrefix(want[len(in):], ".yaml.injected") {
			c.in = in + ".yaml"
		}
		return c
	}
	// Istio's CNI cases (components.cni.enabled, values.cni.provider).
	cniWith := func(provider string) func(*Config) {
		return func(c *Config) { c.CNI = &CNI{Provider: provider} }
	}
	const cniWhy = "spec.cni.enabled (Istio: components.cni.enabled)"
	const multusWhy = "spec.cni.enabled, spec.cni.provider: multus (Istio: values.cni.provider=multus)"
	cases = append(cases,
		istioCase{want: "hello.yaml.cni.injected", in: "hello.yaml", result: withSettings,
			config: func(c *Config) { cniWith(CNIProviderDefault)(c); c.Network = "network1" },
			why:    cniWhy + ", spec.cluster.network: network1 (Istio: values.global.network)"},
		istioCase{want: "proxy-override-runas.yaml.cni.injected", in: "proxy-override-runas.yaml", result: withSettings,
			config: cniWith(""), why: cniWhy},
		istioCase{want: "hello-cncf-networks.yaml.injected", in: "hello.yaml", result: withSettings,
			config: cniWith(CNIProviderMultus), why: multusWhy},
		istioCase{want: "hello-existing-cncf-networks.yaml.injected", result: withSettings,
			config: cniWith(CNIProviderMultus), why: multusWhy},
		istioCase{want: "hello-existing-cncf-networks-json.yaml.injected", result: withSettings,
			config: cniWith(CNIProviderMultus), why: multusWhy},
	)

	const values = "a chart value MeshInstall does not offer: "
	const openshift = "OpenShift's UID ranges (the proxy's user from the namespace's openshift.io/sa.scc.uid-range), with Istio CNI"
	cases = append(cases,
		notYet("hello-openshift.yaml.injected", openshift),
		notYet("hello-openshift-tproxy.yaml.injected", openshift),
		notYet("hello-openshift-custom-injection.yaml.injected", openshift),
		withInput("hello.yaml", notYet("hello-tproxy.yaml.injected", "mesh-wide interceptionMode TPROXY (meshConfig.defaultConfig.interceptionMode); per pod, sidecar.istio.io/interceptionMode works")),
		notYet("proxy-override-runas.yaml.tproxy.injected", "mesh-wide interceptionMode TPROXY (meshConfig.defaultConfig.interceptionMode)"),
		notYet("format-duration.yaml.injected", "meshConfig.defaultConfig.drainDuration"),
		notYet("hello-tracing-disabled.yaml.injected", "meshConfig.defaultConfig.tracing"),
		notYet("hello-probes-localhost.yaml.injected", "meshConfig.inboundTrafficPolicy LOCALHOST"),
		notYet("hello-otel-semconv.yaml.injected", "an OpenTelemetry provider's serviceAttributeEnrichment (OTel semantic conventions), which spec.meshConfig.extensionProviders does not offer"),
		withInput("hello.yaml", notYet("hello-fips-140-3.yaml.injected", "Istio's COMPLIANCE_POLICY fips-140-3")),
		notYet("hello.yaml.proxyImageName.injected", "values.global.proxy.image alone: spec.proxy.image sets istio-init's image too, Istio's value only istio-proxy's"),
		notYet("hello.yaml.proxyInitImageName.injected", values+"a separate istio-init image (values.global.proxy_init.image)"),
		notYet("traffic-params.yaml.injected", values+"mesh-wide capture ranges and ports, status port 0 (values.global.proxy.includeIPRanges, ...)"),
		notYet("status_params.yaml.injected", values+"status port and readiness timings (values.global.proxy.statusPort, readiness*)"),
		notYet("kubevirtInterfaces.yaml.injected", values+"status port and readiness timings (values.global.proxy.statusPort, readiness*)"),
		notYet("reroute-virtual-interfaces.yaml.injected", values+"status port and readiness timings (values.global.proxy.statusPort, readiness*)"),
		withInput("hello.yaml", notYet("hello-mount-mtls-certs.yaml.injected", values+"values.global.mountMtlsCerts")),
		notYet("custom-template.yaml.injected", "custom injection templates (values.sidecarInjectorWebhook.templates)"),
		notYet("sidecar-spire.yaml.injected", "custom injection templates (the spire template of Istio's SPIRE integration)"),
		notYet("gateway-spire.yaml.injected", "custom injection templates (the spire template of Istio's SPIRE integration)"),
		notYet("merge-probers.yaml.injected", "an already-injected pod: meshkeeper's webhook configuration never sends it (match condition not-already-injected); Istio re-injects it"),
		notYet("hello-service.yaml.injected", "no pod in it (a Service): nothing to inject"),
	)
	return cases
}

// withInput sets the input of an Istio case whose name does not say it.
func withInput(in string, c istioCase) istioCase {
	c.in = in
	return c
}

func cpu(q string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(q)}
}

func memory(q string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(q)}
}

// setProxyConfig sets PROXY_CONFIG of the pod's istio-proxy container.
func setProxyConfig(t *testing.T, pod *corev1.Pod, value string) {
	t.Helper()
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name != ProxyContainerName {
				continue
			}
			for j := range list[i].Env {
				if list[i].Env[j].Name == "PROXY_CONFIG" {
					list[i].Env[j].Value = value
					return
				}
			}
		}
	}
	t.Fatal("Istio's expected pod has no istio-proxy with PROXY_CONFIG")
}

// TestIstioCNIGoldenCasesForEachVersion injects Istio's CNI cases with
// each supported minor's configuration: nothing of the CNI injection
// differs between them (Istio's injection template and release notes
// change none of it from 1.30 to 1.32), and what does differ between
// minors (canonical-name trimming, istio-init's image type) does not show
// in these pods.
func TestIstioCNIGoldenCasesForEachVersion(t *testing.T) {
	dir := filepath.Join(istioSource(t), istioGoldenDir)
	var cases []istioCase
	for _, c := range istioCases() {
		if c.config != nil && (strings.Contains(c.want, ".cni.") || strings.Contains(c.want, "cncf-networks")) {
			cases = append(cases, c)
		}
	}
	if len(cases) != 5 {
		t.Fatalf("%d CNI cases among Istio's golden cases, want 5", len(cases))
	}
	for _, v := range []string{"1.30.8", "1.31.4", "1.32.0"} {
		for _, c := range cases {
			t.Run(v+"/"+c.want, func(t *testing.T) {
				cfg := testConfig()
				cfg.Version = v
				cfg.ProxyImage = "docker.io/istio/proxyv2:" + v
				c.config(cfg)
				ins := istioPods(t, filepath.Join(dir, c.input()))
				wants := istioPods(t, filepath.Join(dir, c.want))
				for i := range ins {
					got, err := injectAsWebhook(ins[i], cfg)
					if err != nil {
						t.Fatalf("pod %d refused: %v", i, err)
					}
					if d := semanticDiff(got, wants[i]); d != "" {
						t.Errorf("pod %d differs from Istio's %s:\n%s", i, c.want, d)
					}
				}
			})
		}
	}
}
