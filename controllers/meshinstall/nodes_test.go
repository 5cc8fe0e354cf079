package meshinstall

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

func TestSupportsNativeSidecars(t *testing.T) {
	for v, want := range map[string]bool{
		"v1.33.0": true, "v1.34.2-gke.1200": true, "v1.33.1+k3s1": true, "1.35": true,
		"v1.32.9": false, "v1.29.0-eks-1": false, "kwok-v0.8.0": false, "": false,
	} {
		if got := supportsNativeSidecars(v); got != want {
			t.Errorf("supportsNativeSidecars(%q) = %v, want %v", v, got, want)
		}
	}
}

// TestNativeSidecarsAutoFollowsNodes: with spec.injection.nativeSidecars
// Auto (the sample's default), pods get a native sidecar while every node's
// kubelet is 1.33 or later, a classic one from the moment a node with an
// older kubelet joins, and a native one again once it leaves.
func TestNativeSidecarsAutoFollowsNodes(t *testing.T) {
	startManager(t, managerOpts{})
	mi := createSample(t, nil)
	ctx := context.Background()

	// injected says where the revision's current configuration puts istio-proxy.
	injected := func() (string, error) {
		cm := &corev1.ConfigMap{}
		key := client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.InjectionConfigMapName(render.DefaultRevision)}
		if err := env.Client.Get(ctx, key, cm); err != nil {
			return "", err
		}
		cfg := &inject.Config{}
		if err := json.Unmarshal([]byte(cm.Data[render.InjectionConfigKey]), cfg); err != nil {
			return "", err
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "shop"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
		}
		out, err := inject.Inject(pod, cfg, inject.Request{Namespace: "shop"})
		if err != nil {
			return "", err
		}
		for _, c := range out.Spec.InitContainers {
			if c.Name == inject.ProxyContainerName {
				return "native", nil
			}
		}
		for _, c := range out.Spec.Containers {
			if c.Name == inject.ProxyContainerName {
				return "classic", nil
			}
		}
		return "", fmt.Errorf("no istio-proxy injected")
	}
	expect := func(what, want string) {
		t.Helper()
		eventually(t, timeout, what, func() error {
			got, err := injected()
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("pods get a %s sidecar, want %s", got, want)
			}
			return nil
		})
	}

	createNode(t, "node-new", "v1.33.2")
	expect("every kubelet is 1.33+: native sidecars", "native")

	old := createNode(t, "node-old", "v1.32.5")
	expect("a 1.32 kubelet joined: classic sidecars", "classic")

	if err := env.Client.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	expect("the 1.32 kubelet left: native sidecars again", "native")
}

// createNode creates a node whose kubelet reports version, and deletes it
// when the test ends (the API server is shared by the suite's tests).
func createNode(t *testing.T, name, version string) *corev1.Node {
	t.Helper()
	ctx := context.Background()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Client.Delete(context.Background(), n); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting node %s: %v", name, err)
		}
	})
	n.Status.NodeInfo.KubeletVersion = version
	if err := env.Client.Status().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	return n
}
