package localcluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func injectedPod(env ...corev1.EnvVar) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1"},
		Spec: corev1.PodSpec{
			ServiceAccountName: "web",
			InitContainers: []corev1.Container{{Name: "istio-proxy", Env: append([]corev1.EnvVar{
				{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
				{Name: "GOMEMLIMIT", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory"}}},
			}, env...)}},
		},
	}
}

func TestIstiodOfFollowsTheInjectedEnv(t *testing.T) {
	def := &Istiod{Revision: "default", Host: "istiod.istio-system.svc", XDSAddr: "127.0.0.1:1"}
	canary := &Istiod{Revision: "1-32-0", Host: "istiod-1-32-0.istio-system.svc", XDSAddr: "127.0.0.1:2"}
	canaryEnv := []corev1.EnvVar{
		{Name: "CA_ADDR", Value: "istiod-1-32-0.istio-system.svc:15012"},
		{Name: "PROXY_CONFIG", Value: `{"discoveryAddress":"istiod-1-32-0.istio-system.svc:15012"}` + "\n"},
	}
	for _, tc := range []struct {
		name    string
		pod     *corev1.Pod
		running []*Istiod
		want    *Istiod
		wantErr string
	}{
		{"the default revision's env names no address: Istio's default", injectedPod(corev1.EnvVar{Name: "PROXY_CONFIG", Value: "{}\n"}), []*Istiod{def, canary}, def, ""},
		{"a canary pod dials the canary", injectedPod(canaryEnv...), []*Istiod{def, canary}, canary, ""},
		{"a pod of a removed revision dials nothing", injectedPod(canaryEnv...), []*Istiod{def}, nil, "no running istiod serves its discoveryAddress istiod-1-32-0.istio-system.svc:15012"},
		{"certificate and config from two revisions", injectedPod(corev1.EnvVar{Name: "CA_ADDR", Value: "istiod.istio-system.svc:15012"}, canaryEnv[1]), []*Istiod{def, canary}, nil, "gets its certificate from istiod.istio-system.svc:15012 but its config from istiod-1-32-0"},
		{"no proxy", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bare"}}, []*Istiod{def}, nil, "has no istio-proxy container"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := IstiodOf(tc.pod, tc.running)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("IstiodOf = %v, %v; want %s", got, err, tc.want.Host)
			}
		})
	}
}

func TestContainerEnvResolvesAsTheKubelet(t *testing.T) {
	env, err := containerEnv([]corev1.EnvVar{
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "DOMAIN", Value: "$(POD_NAMESPACE).svc.cluster.local"},
		{Name: "KEEP", Value: "$(UNKNOWN)"},
		{Name: "GOMAXPROCS", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
	}, map[string]string{"metadata.namespace": "shop"})
	if err != nil {
		t.Fatal(err)
	}
	if env["DOMAIN"] != "shop.svc.cluster.local" || env["KEEP"] != "$(UNKNOWN)" {
		t.Errorf("env = %v", env)
	}
	if _, set := env["GOMAXPROCS"]; set {
		t.Errorf("a resource field was set: %v", env)
	}
	if _, err := containerEnv([]corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}}}}, nil); err == nil {
		t.Error("an unknown field resolved")
	}
	if got := expandArgs([]string{"--domain", "$(POD_NAMESPACE).svc.cluster.local"}, env); got[1] != "shop.svc.cluster.local" {
		t.Errorf("args = %v", got)
	}
}

// The node read back from the agent's gRPC bootstrap keeps its id and
// metadata of every kind (the shape pilot-agent 1.31 writes).
func TestBootstrapNodeReadsTheAgentsBootstrap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grpc-bootstrap.json")
	const bootstrap = `{"xds_servers":[{"server_uri":"unix:///etc/istio/proxy/XDS"}],
"node":{"id":"sidecar~10.0.0.7~web-1.shop~shop.svc.cluster.local","metadata":{
 "NAMESPACE":"shop","GENERATOR":"grpc","ENVOY_STATUS_PORT":15021,"PILOT_SAN":["istiod.istio-system.svc"],
 "LABELS":{"app":"web"},"PROXY_CONFIG":{"statusPort":15020}},"locality":{}}}`
	if err := os.WriteFile(path, []byte(bootstrap), 0o644); err != nil {
		t.Fatal(err)
	}
	node, err := bootstrapNode(path)
	if err != nil {
		t.Fatal(err)
	}
	f := node.GetMetadata().GetFields()
	if node.Id != "sidecar~10.0.0.7~web-1.shop~shop.svc.cluster.local" || f["NAMESPACE"].GetStringValue() != "shop" ||
		f["LABELS"].GetStructValue().GetFields()["app"].GetStringValue() != "web" ||
		f["PILOT_SAN"].GetListValue().GetValues()[0].GetStringValue() != "istiod.istio-system.svc" || f["ENVOY_STATUS_PORT"].GetNumberValue() != 15021 {
		t.Errorf("node = %v", node)
	}
}

func TestDownwardMapIsTheKubeletsFormat(t *testing.T) {
	got := string(downwardMap(map[string]string{"b": `say "hi"`, "a": "1"}))
	if want := "a=\"1\"\nb=\"say \\\"hi\\\"\"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
