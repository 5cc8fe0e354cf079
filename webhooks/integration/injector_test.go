package integration_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/inject"
)

func ensureNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := env.Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func appPod(namespace, name string, labels, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			// envtest runs no ServiceAccount admission, which would set it.
			ServiceAccountName: "default",
			Containers: []corev1.Container{{
				Name: "app", Image: "nginx:1.27", Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
			}},
		},
	}
}

func proxyOf(p *corev1.Pod) *corev1.Container {
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == inject.ProxyContainerName {
				return &cs[i]
			}
		}
	}
	return nil
}

func TestInjectorThroughTheAPIServer(t *testing.T) {
	ctx := context.Background()
	ensureNamespace(t, "enabled", map[string]string{"istio-injection": "enabled"})
	ensureNamespace(t, "on-canary", map[string]string{"istio.io/rev": canaryRev})
	ensureNamespace(t, "on-prod", map[string]string{"istio.io/rev": "prod"})
	ensureNamespace(t, "plain", nil)

	type labels = map[string]string
	cases := []struct {
		name        string
		namespace   string
		labels      labels
		annotations labels
		wantRev     string // "" = not injected
	}{
		{name: "istio-injection=enabled: the default tag's revision", namespace: "enabled", wantRev: stableRev},
		{name: "namespace istio.io/rev names the canary revision", namespace: "on-canary", wantRev: canaryRev},
		{name: "namespace istio.io/rev names a tag", namespace: "on-prod", wantRev: stableRev},
		{name: "pod istio.io/rev in an unlabelled namespace", namespace: "plain", labels: labels{"istio.io/rev": canaryRev}, wantRev: canaryRev},
		{name: "pod sidecar.istio.io/inject=true in an unlabelled namespace", namespace: "plain", labels: labels{"sidecar.istio.io/inject": "true"}, wantRev: stableRev},
		{name: "namespace label beats the pod's istio.io/rev", namespace: "enabled", labels: labels{"istio.io/rev": canaryRev}, wantRev: stableRev},
		{name: "pod label inject=false opts out", namespace: "enabled", labels: labels{"sidecar.istio.io/inject": "false"}},
		{name: "pod annotation inject=false opts out", namespace: "enabled", annotations: labels{"sidecar.istio.io/inject": "false"}},
		{name: "pod annotation inject=off does not opt out, as in Istio", namespace: "enabled", annotations: labels{"sidecar.istio.io/inject": "off"}, wantRev: stableRev},
		{name: "the label beats the annotation", namespace: "enabled", labels: labels{"sidecar.istio.io/inject": "true"}, annotations: labels{"sidecar.istio.io/inject": "false"}, wantRev: stableRev},
		{name: "plain pod in a plain namespace", namespace: "plain"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := appPod(tc.namespace, fmt.Sprintf("pod-%d", i), tc.labels, tc.annotations)
			if err := env.Client.Create(ctx, p); err != nil {
				t.Fatalf("pod refused: %v", err)
			}
			proxy := proxyOf(p)
			switch {
			case tc.wantRev == "" && proxy != nil:
				t.Fatalf("pod was injected by %s", p.Annotations[inject.AnnotationRevision])
			case tc.wantRev == "":
				return
			case proxy == nil:
				t.Fatal("pod was not injected")
			}
			if got := p.Annotations[inject.AnnotationRevision]; got != tc.wantRev {
				t.Errorf("injected by %q, want %q", got, tc.wantRev)
			}
			if want := configs[tc.wantRev]; p.Annotations[inject.AnnotationConfigHash] != want.Hash() ||
				p.Annotations[inject.AnnotationProxyVersion] != want.Version || !strings.HasSuffix(proxy.Image, ":"+want.Version) {
				t.Errorf("stamp/image do not match the revision's configuration: %v image %s", p.Annotations, proxy.Image)
			}
			if p.Annotations["sidecar.istio.io/status"] == "" || p.Labels[inject.LabelInjectedBy] != tc.wantRev {
				t.Errorf("missing Istio's status annotation or meshkeeper's label: %v %v", p.Annotations, p.Labels)
			}
		})
	}

	t.Run("an invalid annotation refuses the pod, naming it", func(t *testing.T) {
		p := appPod("enabled", "bad-cpu", nil, labels{"sidecar.istio.io/proxyCPU": "lots"})
		err := env.Client.Create(ctx, p)
		if err == nil || !strings.Contains(err.Error(), "sidecar.istio.io/proxyCPU") {
			t.Fatalf("got %v, want a refusal naming sidecar.istio.io/proxyCPU", err)
		}
	})

	t.Run("a dry run is sent to the injector (sideEffects None) and gets the injected answer", func(t *testing.T) {
		p := appPod("enabled", "dry", nil, nil)
		if err := env.Client.Create(ctx, p, client.DryRunAll); err != nil {
			t.Fatal(err)
		}
		if proxyOf(p) == nil {
			t.Error("dry-run answer is not injected")
		}
	})
}
