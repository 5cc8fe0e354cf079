// Package chart tests the Helm chart charts/meshkeeper with Helm's own Go
// SDK: it lints clean, renders for every values variant what kustomize
// builds from config/ (modulo Helm's labels), into objects the API types
// decode strictly, and the values it takes change what they name. (That
// the chart is what hack/chartgen makes of config/ now is
// hack/verify-generated.sh's check, in make test.)
package chart

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/yaml"

	"github.com/meshkeeper/meshkeeper/internal/chartgen"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

// configNamespace is the namespace config/default installs into.
const configNamespace = "meshkeeper-system"

// variant is a set of chart values and the feature (none for
// config/default) whose variant of config/ kustomize builds the same objects from.
type variant struct {
	name    string
	feature chartgen.Feature
	values  map[string]any
}

// variants are config/default and every feature's variant of it.
func variants() []variant {
	out := []variant{{name: "default", values: map[string]any{}}}
	for _, f := range chartgen.Features {
		out = append(out, variant{name: f.Name, feature: f, values: f.Values})
	}
	return out
}

var (
	buildsOnce sync.Once
	builds     chartgen.Builds
	buildsErr  error
)

// kustomizeBuilds are kustomize's builds of config/default and of every
// feature's variant, made once for the package's tests.
func kustomizeBuilds(t *testing.T) chartgen.Builds {
	t.Helper()
	kustomize := os.Getenv("MESHKEEPER_KUSTOMIZE")
	if kustomize == "" {
		t.Fatal("MESHKEEPER_KUSTOMIZE is not set: run through make test-unit, which builds kustomize and sets it")
	}
	buildsOnce.Do(func() { builds, buildsErr = chartgen.BuildAll(kustomize, testenv.RepoRoot()) })
	if buildsErr != nil {
		t.Fatal(buildsErr)
	}
	return builds
}

// built is kustomize's build of v.
func (v variant) built(b chartgen.Builds) []*unstructured.Unstructured {
	if v.name == "default" {
		return b.Default
	}
	return b.Variants[v.feature.Name]
}

func loadChart(t *testing.T) *chartv2.Chart {
	t.Helper()
	ch, err := loader.LoadDir(filepath.Join(testenv.RepoRoot(), "charts", "meshkeeper"))
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// render renders the chart as `helm template --include-crds` does, with
// the release in namespace.
func render(ch *chartv2.Chart, namespace string, values map[string]any) ([]*unstructured.Unstructured, error) {
	install := action.NewInstall(action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler)))
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = "meshkeeper"
	install.Namespace = namespace
	install.IncludeCRDs = true
	rel, err := install.Run(ch, values)
	if err != nil {
		return nil, err
	}
	r, ok := rel.(*releasev1.Release)
	if !ok {
		return nil, fmt.Errorf("a release of type %T", rel)
	}
	return chartgen.DecodeObjects(strings.NewReader(r.Manifest))
}

func mustRender(t *testing.T, ch *chartv2.Chart, namespace string, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	objs, err := render(ch, namespace, values)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestChartLintsClean runs `helm lint --strict` for every values variant:
// no warning nor error (Helm's INFO, such as "icon is recommended", is logged).
func TestChartLintsClean(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(), "charts", "meshkeeper")
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Strict = true
			lint.Namespace = configNamespace
			result := lint.Run([]string{dir}, v.values)
			for _, m := range result.Messages {
				t.Log(m.Error())
			}
			if result.TotalChartsLinted != 1 || action.HasWarningsOrErrors(result) {
				t.Errorf("helm lint: %d charts linted, errors %v", result.TotalChartsLinted, result.Errors)
			}
		})
	}
}

// TestChartRendersWhatKustomizeBuilds renders the chart for every values
// variant and compares it with kustomize's build of the same variant of
// config/ (less the Namespace, which Helm's release namespace replaces):
// the same objects, field for field, but for Helm's labels.
func TestChartRendersWhatKustomizeBuilds(t *testing.T) {
	b := kustomizeBuilds(t)
	ch := loadChart(t)
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			want, err := v.feature.WithArgs(v.built(b))
			if err != nil {
				t.Fatal(err)
			}
			values := maps.Clone(v.values)
			// config/manager's tag; the chart's default is its appVersion.
			values["image"] = map[string]any{"tag": "dev"}
			got := mustRender(t, ch, configNamespace, values)
			compareObjects(t, byKey(got), byKey(withoutNamespaces(want)))
		})
	}
}

func compareObjects(t *testing.T, got, want map[string]*unstructured.Unstructured) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("the chart does not render %s", k)
			continue
		}
		if !reflect.DeepEqual(withoutHelmLabels(g).Object, withoutHelmLabels(w).Object) {
			t.Errorf("%s differs:\nchart:\n%s\nkustomize:\n%s", k, toYAML(g), toYAML(w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("the chart renders %s, which kustomize does not build", k)
		}
	}
}

func byKey(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		m[fmt.Sprintf("%s %s %s/%s", o.GetAPIVersion(), o.GetKind(), o.GetNamespace(), o.GetName())] = o
	}
	return m
}

func withoutNamespaces(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() != "Namespace" {
			out = append(out, o)
		}
	}
	return out
}

// withoutHelmLabels drops the labels in which Helm's and kustomize's
// objects differ by design: who manages them, the release, the chart.
func withoutHelmLabels(o *unstructured.Unstructured) *unstructured.Unstructured {
	o = o.DeepCopy()
	labels := o.GetLabels()
	for _, l := range []string{"app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version", "helm.sh/chart"} {
		delete(labels, l)
	}
	o.SetLabels(labels)
	return o
}

func toYAML(o *unstructured.Unstructured) string {
	data, _ := yaml.Marshal(o.Object)
	return string(data)
}

// TestChartValuesReachTheManager sets every value the manager's Deployment
// takes, in a namespace of the user's, and reads them back from the
// rendered objects.
func TestChartValuesReachTheManager(t *testing.T) {
	ch := loadChart(t)
	objs := mustRender(t, ch, "ops", map[string]any{
		"replicaCount":     1,
		"image":            map[string]any{"repository": "registry.example/mk", "tag": "v9", "pullPolicy": "Always"},
		"imagePullSecrets": []any{map[string]any{"name": "pull"}},
		"resources":        map[string]any{"limits": map[string]any{"memory": "1Gi"}},
		"leaderElection":   map[string]any{"enabled": false},
		"metrics":          map[string]any{"enabled": false},
		"nodeSelector":     map[string]any{"pool": "ops"},
		"tolerations":      []any{map[string]any{"key": "dedicated", "operator": "Exists"}},
		"affinity":         map[string]any{"nodeAffinity": map[string]any{}},
	})
	var d appsv1.Deployment
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" && ns != "ops" {
			t.Errorf("%s %s is in namespace %s, not the release's", o.GetKind(), o.GetName(), ns)
		}
		if o.GetKind() != "CustomResourceDefinition" && o.GetLabels()["app.kubernetes.io/managed-by"] != "Helm" {
			t.Errorf("%s %s is not labelled as managed by Helm: %v", o.GetKind(), o.GetName(), o.GetLabels())
		}
		if o.GetKind() == "Deployment" {
			decodeStrictly(t, o, &d)
		}
	}
	c := d.Spec.Template.Spec.Containers[0]
	pod := d.Spec.Template.Spec
	for _, check := range []struct {
		what      string
		got, want any
	}{
		{"replicas", *d.Spec.Replicas, int32(1)},
		{"image", c.Image, "registry.example/mk:v9"},
		{"pull policy", c.ImagePullPolicy, corev1.PullAlways},
		{"pull secrets", pod.ImagePullSecrets, []corev1.LocalObjectReference{{Name: "pull"}}},
		// Helm merges a map value into the default: the requests stay.
		{"resources", c.Resources, corev1.ResourceRequirements{
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		}},
		{"node selector", pod.NodeSelector, map[string]string{"pool": "ops"}},
		{"tolerations", pod.Tolerations, []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}},
		{"affinity", pod.Affinity, &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{}}},
		{"arguments", c.Args, []string{"--leader-elect=false", "--health-probe-bind-address=:8081", "--metrics-bind-address=0"}},
	} {
		if !reflect.DeepEqual(check.got, check.want) {
			t.Errorf("%s: got %v, want %v", check.what, check.got, check.want)
		}
	}
}

// TestChartObjectsDecodeStrictly decodes every object the chart renders,
// for every values variant, into its API type, refusing unknown fields
// (the Prometheus Operator's types, ServiceMonitor and PrometheusRule, are
// not among meshkeeper's modules: promtool checks the rule's content).
func TestChartObjectsDecodeStrictly(t *testing.T) {
	ch := loadChart(t)
	scheme := testenv.Scheme()
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			for _, o := range mustRender(t, ch, configNamespace, v.values) {
				if o.GroupVersionKind().Group == "monitoring.coreos.com" {
					continue
				}
				typed, err := scheme.New(o.GroupVersionKind())
				if err != nil {
					t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
					continue
				}
				decodeStrictly(t, o, typed)
			}
		})
	}
}

func decodeStrictly(t *testing.T, o *unstructured.Unstructured, into runtime.Object) {
	t.Helper()
	data, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	scheme := testenv.Scheme()
	s := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Strict: true})
	if _, _, err := s.Decode(data, nil, into); err != nil {
		t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
}

// TestChartRefusesValuesItDoesNotKnow: a misspelt or mistyped value is an
// error naming it (values.schema.json), not a silently ignored setting.
func TestChartRefusesValuesItDoesNotKnow(t *testing.T) {
	ch := loadChart(t)
	for _, c := range []struct {
		name   string
		values map[string]any
		names  string
	}{
		{"a value the chart does not have", map[string]any{"replicas": 3}, "replicas"},
		{"a cert provider that is none of self and cert-manager", map[string]any{"webhook": map[string]any{"certProvider": "vault"}}, "certProvider"},
		{"a switch given a string", map[string]any{"metrics": map[string]any{"enabled": "yes"}}, "enabled"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(ch, configNamespace, c.values)
			if err == nil || !strings.Contains(err.Error(), c.names) {
				t.Errorf("rendering with %v: got error %v, want one naming %s", c.values, err, c.names)
			}
		})
	}
}

// TestGeneratedChartKeepsConfigsText generates a chart from config/ with
// one more object, whose text holds template delimiters (as an alert's
// description in Alertmanager's template language does) and config/'s
// namespace inside a longer string, and renders it with Helm: the text
// comes out as config/ has it, the namespace the release's.
func TestGeneratedChartKeepsConfigsText(t *testing.T) {
	b := kustomizeBuilds(t)
	withText := chartgen.Builds{Default: slices.Clone(b.Default), Variants: map[string][]*unstructured.Unstructured{}}
	extra := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "meshkeeper-text", "namespace": configNamespace},
		"data": map[string]any{
			"description": "{{ $labels.meshinstall }} stalled {{- .x -}}",
			"url":         "https://meshkeeper-webhook-service." + configNamespace + ".svc",
		},
	}}
	withText.Default = append(withText.Default, extra)
	for name, objs := range b.Variants {
		withText.Variants[name] = append(slices.Clone(objs), extra)
	}
	plan, err := chartgen.MakePlan(withText)
	if err != nil {
		t.Fatal(err)
	}
	files, err := chartgen.Generate(plan, chartgen.Meta{Version: "0.0.1", AppVersion: "v0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ch, err := loader.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	objs := mustRender(t, ch, "ops", map[string]any{})
	got := byKey(objs)["v1 ConfigMap ops/meshkeeper-text"]
	if got == nil {
		t.Fatal("the chart does not render the ConfigMap")
	}
	want := map[string]any{
		"description": "{{ $labels.meshinstall }} stalled {{- .x -}}",
		"url":         "https://meshkeeper-webhook-service.ops.svc",
	}
	if !reflect.DeepEqual(got.Object["data"], want) {
		t.Errorf("rendered %v, want %v", got.Object["data"], want)
	}
}
