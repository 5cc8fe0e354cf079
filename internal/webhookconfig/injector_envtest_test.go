package webhookconfig_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

const markerAnnotation = "test.meshkeeper.dev/injected-by"

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// recordingWebhook admits every pod and marks it with the path the API server called,
// so a test can see which entry of the configuration matched.
func recordingWebhook(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var pod corev1.Pod
		_ = json.Unmarshal(review.Request.Object.Raw, &pod)
		var patch []map[string]any
		if pod.Annotations == nil {
			patch = []map[string]any{{"op": "add", "path": "/metadata/annotations", "value": map[string]string{markerAnnotation: r.URL.Path}}}
		} else {
			patch = []map[string]any{{"op": "add", "path": "/metadata/annotations/test.meshkeeper.dev~1injected-by", "value": r.URL.Path}}
		}
		raw, _ := json.Marshal(patch)
		pt := admissionv1.PatchTypeJSONPatch
		review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true, Patch: raw, PatchType: &pt}
		review.Request = nil
		_ = json.NewEncoder(w).Encode(review)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestInjectorSelectionThroughTheAPIServer(t *testing.T) {
	ctx := context.Background()
	srv := recordingWebhook(t)
	caBundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	cfg := webhookconfig.InjectorConfiguration(webhookconfig.Injector{
		ControlPlaneNamespace: "istio-system",
		OperatorNamespace:     "meshkeeper-system",
		Revisions:             []string{"1-31-4", "1-32-0"},
		Tags:                  []string{"prod"},
		FailurePolicy:         admissionregistrationv1.Fail,
		Endpoint:              webhookconfig.Endpoint{URL: srv.URL, CABundle: caBundle},
	})
	if err := env.Client.Create(ctx, cfg); err != nil {
		t.Fatalf("the API server refused the injector configuration: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, cfg) })

	matcher, err := webhookconfig.NewMatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}

	type labels = map[string]string
	cases := []struct {
		name        string
		namespace   string // an existing namespace to use instead of a fresh one
		nsLabels    labels
		podLabels   labels
		podAnnots   labels
		hostNetwork bool
		want        string // path called, "" for none
	}{
		{name: "istio-injection=enabled selects the default tag", nsLabels: labels{"istio-injection": "enabled"}, want: "/inject/tag/default"},
		{name: "istio-injection beats istio.io/rev on the namespace", nsLabels: labels{"istio-injection": "enabled", "istio.io/rev": "1-32-0"}, want: "/inject/tag/default"},
		{name: "namespace istio.io/rev names a revision", nsLabels: labels{"istio.io/rev": "1-32-0"}, want: "/inject/rev/1-32-0"},
		{name: "namespace istio.io/rev names a tag", nsLabels: labels{"istio.io/rev": "prod"}, want: "/inject/tag/prod"},
		{name: "namespace istio.io/rev=default is the default tag", nsLabels: labels{"istio.io/rev": "default"}, want: "/inject/tag/default"},
		{name: "namespace label beats pod istio.io/rev", nsLabels: labels{"istio-injection": "enabled"}, podLabels: labels{"istio.io/rev": "1-32-0"}, want: "/inject/tag/default"},
		{name: "namespace istio.io/rev beats pod istio.io/rev", nsLabels: labels{"istio.io/rev": "prod"}, podLabels: labels{"istio.io/rev": "1-31-4"}, want: "/inject/tag/prod"},
		{name: "unlabelled namespace, pod sidecar.istio.io/inject=true", podLabels: labels{"sidecar.istio.io/inject": "true"}, want: "/inject/tag/default"},
		{name: "unlabelled namespace, pod istio.io/rev revision", podLabels: labels{"istio.io/rev": "1-31-4"}, want: "/inject/rev/1-31-4"},
		{name: "unlabelled namespace, pod istio.io/rev tag with inject=true", podLabels: labels{"istio.io/rev": "prod", "sidecar.istio.io/inject": "true"}, want: "/inject/tag/prod"},
		{name: "unlabelled namespace, plain pod", want: ""},
		{name: "unknown revision selects nothing", nsLabels: labels{"istio.io/rev": "nope"}, want: ""},
		{name: "istio-injection=disabled opts the namespace out", nsLabels: labels{"istio-injection": "disabled"}, podLabels: labels{"sidecar.istio.io/inject": "true"}, want: ""},
		{name: "pod label inject=false opts out", nsLabels: labels{"istio-injection": "enabled"}, podLabels: labels{"sidecar.istio.io/inject": "false"}, want: ""},
		{name: "pod annotation inject=false opts out", nsLabels: labels{"istio-injection": "enabled"}, podAnnots: labels{"sidecar.istio.io/inject": "false"}, want: ""},
		{name: "pod annotation other than false is sent (Istio falls back to the default)", nsLabels: labels{"istio-injection": "enabled"}, podAnnots: labels{"sidecar.istio.io/inject": "No"}, want: "/inject/tag/default"},
		{name: "pod label beats pod annotation", nsLabels: labels{"istio-injection": "enabled"}, podLabels: labels{"sidecar.istio.io/inject": "true"}, podAnnots: labels{"sidecar.istio.io/inject": "false"}, want: "/inject/tag/default"},
		{name: "already injected pod is not sent", nsLabels: labels{"istio-injection": "enabled"}, podAnnots: labels{"sidecar.istio.io/status": `{"containers":["istio-proxy"]}`}, want: ""},
		{name: "host network pod is not sent", nsLabels: labels{"istio-injection": "enabled"}, hostNetwork: true, want: ""},
		{name: "kube-system is never injected", namespace: "kube-system", nsLabels: labels{"istio-injection": "enabled"}, want: ""},
		{name: "control plane namespace is never injected", namespace: "istio-system", nsLabels: labels{"istio-injection": "enabled"}, want: ""},
		{name: "operator namespace is never injected", namespace: "meshkeeper-system", nsLabels: labels{"istio.io/rev": "prod"}, want: ""},
		{name: "gateway in the control plane namespace is injected", namespace: "istio-system", podLabels: labels{render.LabelGateway: "ingress", "sidecar.istio.io/inject": "true"}, want: "/inject/tag/default"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := tc.namespace
			if ns == "" {
				ns = fmt.Sprintf("selection-%d", i)
			}
			ensureNamespace(t, ns, tc.nsLabels)
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%d", i), Namespace: ns, Labels: tc.podLabels, Annotations: tc.podAnnots},
				Spec: corev1.PodSpec{
					Containers:  []corev1.Container{{Name: "app", Image: "nginx"}},
					HostNetwork: tc.hostNetwork,
				},
			}
			if err := env.Client.Create(ctx, pod); err != nil {
				t.Fatalf("creating pod: %v", err)
			}
			t.Cleanup(func() { _ = env.Client.Delete(ctx, pod) })
			if got := pod.Annotations[markerAnnotation]; got != tc.want {
				t.Errorf("webhook path = %q, want %q", got, tc.want)
			}
			// The inventory's reading of the same configuration agrees with the API server.
			stored := &corev1.Namespace{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: ns}, stored); err != nil {
				t.Fatal(err)
			}
			sent := webhookconfig.Pod{Namespace: ns, Labels: tc.podLabels, Annotations: tc.podAnnots, HostNetwork: tc.hostNetwork}
			if got := matcher.Target(stored.Labels, sent); got != tc.want {
				t.Errorf("Matcher.Target = %q, the API server called %q", got, tc.want)
			}
		})
	}
}

func ensureNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{}
	err := env.Client.Get(ctx, client.ObjectKey{Name: name}, ns)
	if err != nil {
		ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		if err := env.Client.Create(ctx, ns); err != nil {
			t.Fatalf("creating namespace: %v", err)
		}
		return
	}
	ns.Labels = map[string]string{"kubernetes.io/metadata.name": name}
	for k, v := range labels {
		ns.Labels[k] = v
	}
	if err := env.Client.Update(ctx, ns); err != nil {
		t.Fatalf("labelling namespace: %v", err)
	}
}

func TestRouteIgnoresAnExistingSidecar(t *testing.T) {
	m, err := webhookconfig.NewMatcher(webhookconfig.InjectorConfiguration(webhookconfig.Injector{
		ControlPlaneNamespace: "istio-system", Revisions: []string{"1-32-0"}, Endpoint: webhookconfig.Endpoint{URL: "https://127.0.0.1:9443"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	ns := map[string]string{"kubernetes.io/metadata.name": "shop", "istio-injection": "enabled"}
	injected := webhookconfig.Pod{Namespace: "shop", Annotations: map[string]string{"sidecar.istio.io/status": "{}"}}
	if got := m.Target(ns, injected); got != "" {
		t.Errorf("Target of an injected pod = %q, want none", got)
	}
	if got := m.Route(ns, injected); got != "/inject/tag/default" {
		t.Errorf("Route of an injected pod = %q, want its workload's next pods' path", got)
	}
	if injected.Annotations["sidecar.istio.io/status"] != "{}" {
		t.Error("Route changed the pod it was given")
	}
	for path, want := range map[string][2]string{
		"/inject/tag/prod": {"tag", "prod"}, "/inject/rev/1-32-0": {"rev", "1-32-0"},
		"/inject": {}, "/inject/rev/": {}, "/inject/other/x": {}, "/inject/rev/a/b": {},
	} {
		kind, name, ok := webhookconfig.ParseTargetPath(path)
		if [2]string{kind, name} != want || ok != (want[0] != "") {
			t.Errorf("ParseTargetPath(%q) = %q %q %v, want %v", path, kind, name, ok, want)
		}
	}
}
