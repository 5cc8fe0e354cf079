package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/admission"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

// env is the API server the commands run against (TestMain).
var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// writeKubeconfig writes a kubeconfig of env, as kubectl passes one to a plugin.
func writeKubeconfig(t *testing.T) string {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.Environment.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), nil, &out, &errOut); err == nil || !strings.Contains(err.Error(), "check-inject, precheck, status, translate") {
		t.Errorf("no subcommand: %v, %q", err, errOut.String())
	}
	errOut.Reset()
	if err := run(context.Background(), []string{"translate", "--help"}, &out, &errOut); err != nil || !strings.Contains(errOut.String(), "--revision") {
		t.Errorf("--help: %v, %q", err, errOut.String())
	}
}

// TestTranslateLiveCluster runs the plugin as kubectl would, against a real
// API server holding a revisioned Istio installed by istioctl (written by
// hand as Istio's 1.31 charts render it): the printed MeshInstall reads
// back, meshkeeper admits it, and it carries what was read.
func TestTranslateLiveCluster(t *testing.T) {
	kubeconfig := writeKubeconfig(t)
	ctx := context.Background()
	const ns, rev = "istio-system", "1-31-4"
	labels := map[string]string{"install.operator.istio.io/owning-resource": "installed-state", "operator.istio.io/component": "Pilot", "istio.io/rev": rev}
	pod := map[string]string{"app": "istiod", "istio.io/rev": rev, "istio": "pilot"}
	gw := map[string]string{"app": "istio-ingressgateway", "istio": "ingressgateway", "istio.io/rev": rev}
	none := admissionregistrationv1.SideEffectClassNone
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "istiod-" + rev, Labels: map[string]string{"app": "istiod", "istio.io/rev": rev, "operator.istio.io/component": "Pilot"}},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: pod},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: pod}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "discovery", Image: "docker.io/istio/pilot:1.31.4",
					Args: []string{"discovery", "--monitoringAddr=:15014", "--log_output_level=default:info", "--domain", "cluster.local", "--keepaliveMaxServerConnectionAge", "30m"},
					Env:  []corev1.EnvVar{{Name: "REVISION", Value: rev}, {Name: "PILOT_TRACE_SAMPLING", Value: "5"}}}}}}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "istio-" + rev, Labels: labels}, Data: map[string]string{
			"mesh": "accessLogFile: /dev/stdout\ndefaultConfig:\n  discoveryAddress: istiod-" + rev + ".istio-system.svc:15012\nenablePrometheusMerge: true\nrootNamespace: istio-system\ntrustDomain: cluster.local\n"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "istio-sidecar-injector-" + rev, Labels: labels}, Data: map[string]string{
			"values": `{"global":{"proxy":{"logLevel":"warning","holdApplicationUntilProxyStarts":true}}}`, "config": "policy: enabled\ndefaultTemplates: [sidecar]\n"}},
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "istio-revision-tag-prod",
			Labels: map[string]string{"istio.io/tag": "prod", "istio.io/rev": rev, "app": "sidecar-injector"}},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "rev.namespace.sidecar-injector.istio.io", SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
				ClientConfig:      admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: "istiod-" + rev, Path: ptr.To("/inject")}},
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"istio.io/rev": "prod"}}}}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "istio-ingressgateway", Labels: gw},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: gw},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: gw}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "istio-proxy", Image: "auto"}}}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "istio-ingressgateway"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: gw,
			Ports: []corev1.ServicePort{{Name: "http2", Port: 80, TargetPort: intstr.FromInt32(8080)}}}},
	}
	for _, o := range objs {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"translate", "--kubeconfig", kubeconfig, "-n", ns}, &out, &errOut); err != nil {
		t.Fatalf("translate: %v (%s)", err, errOut.String())
	}
	var mi meshv1alpha1.MeshInstall
	if err := yaml.UnmarshalStrict(out.Bytes(), &mi); err != nil {
		t.Fatalf("the output is not a MeshInstall: %v\n%s", err, out.String())
	}
	if err := admission.ValidateCreate(&mi, nil, admission.Namespaces{}); err != nil {
		t.Errorf("meshkeeper refuses the translation: %v\n%s", err, out.String())
	}
	s := mi.Spec
	if s.Version != "1.31.4" || s.Namespace != ns || *s.Pilot.Replicas != 2 || s.Pilot.Env["PILOT_TRACE_SAMPLING"] != "5" ||
		s.MeshConfig.AccessLogFile == nil || *s.MeshConfig.AccessLogFile != "/dev/stdout" || len(s.RevisionTags) != 1 || s.RevisionTags[0] != "prod" ||
		s.Injection.HoldApplicationUntilProxyStarts == nil || !*s.Injection.HoldApplicationUntilProxyStarts ||
		len(s.Gateways) != 1 || *s.Gateways[0].Replicas != 3 || s.Gateways[0].Ports[0].TargetPort != 8080 {
		t.Errorf("the translation misses what was read:\n%s", out.String())
	}
	for _, want := range []string{"# Not expressed", "revision name 1-31-4"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q:\n%s", want, out.String())
		}
	}

	// --migrate-into prints the MeshInstall that adopts the revision.
	out.Reset()
	if err := run(ctx, []string{"translate", "--kubeconfig", kubeconfig, "-n", ns, "--migrate-into", "istio-mesh"}, &out, &errOut); err != nil {
		t.Fatalf("translate --migrate-into: %v (%s)", err, errOut.String())
	}
	var migrating meshv1alpha1.MeshInstall
	if err := yaml.UnmarshalStrict(out.Bytes(), &migrating); err != nil {
		t.Fatalf("the output is not a MeshInstall: %v\n%s", err, out.String())
	}
	if m := migrating.Spec.Migration; m == nil || m.Revision != rev || m.Namespace != ns || migrating.Spec.Namespace != "istio-mesh" ||
		migrating.Spec.UpdateStrategy.Type != meshv1alpha1.UpdateStrategyCanary {
		t.Errorf("translate --migrate-into does not migrate revision %s:\n%s", rev, out.String())
	}

	// A namespace with no istiod is a clear error, not an empty MeshInstall.
	err := run(ctx, []string{"translate", "--kubeconfig", kubeconfig, "-n", "default"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no istiod Deployment") {
		t.Errorf("no istiod: %v", err)
	}
}
