package render

import (
	"fmt"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

func strategic(kind, name, patch string) meshv1alpha1.Overlay {
	return meshv1alpha1.Overlay{
		Target:         meshv1alpha1.OverlayTarget{Kind: kind, Name: name},
		StrategicMerge: &runtime.RawExtension{Raw: []byte(patch)},
	}
}

func jsonOp(op meshv1alpha1.JSONPatchOp, path, value string) meshv1alpha1.JSONPatchOperation {
	o := meshv1alpha1.JSONPatchOperation{Op: op, Path: path}
	if value != "" {
		o.Value = &apiextensionsv1.JSON{Raw: []byte(value)}
	}
	return o
}

func jsonPatched(kind, name string, ops ...meshv1alpha1.JSONPatchOperation) meshv1alpha1.Overlay {
	return meshv1alpha1.Overlay{Target: meshv1alpha1.OverlayTarget{Kind: kind, Name: name}, JSONPatch: ops}
}

// canaryObjects renders what a pass renders during a canary from 1.31.4
// (in place) to 1.32.0, with one ingress gateway and mTLS.
func canaryObjects(t *testing.T) []client.Object {
	t.Helper()
	mi := meshInstall("1.32.0", withMTLS(meshv1alpha1.MTLSStrict),
		withGateways(meshv1alpha1.GatewaySpec{Name: "istio-ingressgateway"}))
	return slices.Concat(
		mustControlPlane(t, mi, mustRevision(t, DefaultRevision, "1.31.4")),
		mustControlPlane(t, mi, mustRevision(t, "1-32-0", "1.32.0")),
		mustShared(t, mi, mustRevision(t, DefaultRevision, "1.31.4")))
}

func container(t *testing.T, d *appsv1.Deployment, name string) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("%s has no container %s", d.Name, name)
	return corev1.Container{}
}

func envValue(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func TestApplyOverlaysStrategicMergeOnIstiodFollowsEveryRevision(t *testing.T) {
	objs := canaryObjects(t)
	before := find[*appsv1.Deployment](t, objs, "istiod").DeepCopy()
	got, err := ApplyOverlays([]meshv1alpha1.Overlay{strategic("Deployment", "istiod", `{
		"metadata": {"annotations": {"example.com/owner": "platform"}},
		"spec": {"template": {
			"metadata": {"annotations": {"example.com/scrape": "true"}},
			"spec": {
				"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "mesh", "effect": "NoSchedule"}],
				"containers": [{"name": "discovery", "env": [{"name": "PILOT_EXTRA", "value": "on"}]}]
			}}}}`)}, objs)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"istiod", "istiod-1-32-0"} {
		d := find[*appsv1.Deployment](t, got, name)
		if d.Annotations["example.com/owner"] != "platform" || d.Spec.Template.Annotations["example.com/scrape"] != "true" {
			t.Errorf("%s: annotations %v, pod annotations %v; want the overlay's", name, d.Annotations, d.Spec.Template.Annotations)
		}
		// Kubernetes' strategic merge has no key for tolerations: the list is replaced.
		if tol := d.Spec.Template.Spec.Tolerations; len(tol) != 1 || tol[0].Key != "dedicated" {
			t.Errorf("%s: tolerations %+v, want the overlay's only", name, tol)
		}
		discovery := container(t, d, "discovery")
		if v, _ := envValue(discovery, "PILOT_EXTRA"); v != "on" {
			t.Errorf("%s: PILOT_EXTRA=%q, want on", name, v)
		}
		// Merged by name, not replaced: istiod keeps the variables meshkeeper sets.
		if _, ok := envValue(discovery, "REVISION"); !ok || len(discovery.Env) != len(container(t, before, "discovery").Env)+1 {
			t.Errorf("%s: env %v; want meshkeeper's variables and PILOT_EXTRA", name, discovery.Env)
		}
	}
	if !equality.Semantic.DeepEqual(find[*appsv1.Deployment](t, objs, "istiod"), before) {
		t.Error("ApplyOverlays changed its input")
	}
	// What no overlay targets is passed on unchanged.
	if find[*appsv1.Deployment](t, got, "istio-ingressgateway") != find[*appsv1.Deployment](t, objs, "istio-ingressgateway") {
		t.Error("the gateway Deployment was copied or changed, though no overlay targets it")
	}
}

func TestApplyOverlaysJSONPatchOnConfigMap(t *testing.T) {
	objs := canaryObjects(t)
	got, err := ApplyOverlays([]meshv1alpha1.Overlay{jsonPatched("ConfigMap", "istio",
		jsonOp(meshv1alpha1.JSONPatchAdd, "/data/extra", `"value"`),
		jsonOp(meshv1alpha1.JSONPatchTest, "/data/extra", `"value"`),
	)}, objs)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"istio", "istio-1-32-0"} {
		if cm := find[*corev1.ConfigMap](t, got, name); cm.Data["extra"] != "value" || cm.Data["mesh"] == "" {
			t.Errorf("%s: data %v, want mesh and extra=value", name, cm.Data)
		}
	}
}

func TestApplyOverlaysTargets(t *testing.T) {
	objs := canaryObjects(t)
	annotate := `{"metadata": {"annotations": {"example.com/patched": "yes"}}}`
	pinned := strategic("Deployment", "istiod", annotate)
	pinned.Target.Revision = "1-32-0"
	gone := strategic("Deployment", "istiod", `{"metadata": {"annotations": {"example.com/gone": "yes"}}}`)
	gone.Target.Revision = "1-30-8"
	mtls := strategic("PeerAuthentication", "default", `{"spec": {"portLevelMtls": {"8080": {"mode": "PERMISSIVE"}}}}`)
	gateway := strategic("Service", "istio-ingressgateway", `{"spec": {"externalTrafficPolicy": "Local"}}`)
	gateway.Target.Namespace = "istio-system"

	got, err := ApplyOverlays([]meshv1alpha1.Overlay{pinned, gone, mtls, gateway}, objs)
	if err != nil {
		t.Fatal(err)
	}
	patched := func(o client.Object) bool { return o.GetAnnotations()["example.com/patched"] == "yes" }
	if patched(find[*appsv1.Deployment](t, got, "istiod")) || !patched(find[*appsv1.Deployment](t, got, "istiod-1-32-0")) {
		t.Error("an overlay pinned to revision 1-32-0 must patch istiod-1-32-0 only")
	}
	for _, o := range got {
		if _, ok := o.GetAnnotations()["example.com/gone"]; ok {
			t.Errorf("%s: patched by an overlay of a revision that is not rendered", objectString(o))
		}
	}
	pa := find[*unstructured.Unstructured](t, got, PeerAuthenticationName)
	if mode, _, _ := unstructured.NestedString(pa.Object, "spec", "portLevelMtls", "8080", "mode"); mode != "PERMISSIVE" {
		t.Errorf("PeerAuthentication spec %v, want the merged port-level mode", pa.Object["spec"])
	}
	if mode, _, _ := unstructured.NestedString(pa.Object, "spec", "mtls", "mode"); mode != "STRICT" {
		t.Errorf("PeerAuthentication spec %v, want mtls.mode kept", pa.Object["spec"])
	}
	if svc := find[*corev1.Service](t, got, "istio-ingressgateway"); svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("gateway Service externalTrafficPolicy %q, want Local", svc.Spec.ExternalTrafficPolicy)
	}
}

func TestApplyOverlaysRefusals(t *testing.T) {
	objs := canaryObjects(t)
	onlyOneRevision := slices.DeleteFunc(slices.Clone(objs), func(o client.Object) bool {
		return o.GetName() == "istiod-1-32-0" && o.GetObjectKind().GroupVersionKind().Kind == "HorizontalPodAutoscaler"
	})
	for _, c := range []struct {
		name    string
		overlay meshv1alpha1.Overlay
		objs    []client.Object
		want    []string // in the message
	}{{
		name:    "target missing",
		overlay: strategic("Deployment", "istiod-1-32-0", `{}`),
		want:    []string{"spec.overlays[1]", "Deployment istiod-1-32-0", "matches no object", "named istio-ingressgateway, istiod"},
	}, {
		name:    "kind not rendered",
		overlay: strategic("PodDisruptionBudget", "istiod", `{}`),
		want:    []string{"spec.overlays[1]", "renders no PodDisruptionBudget"},
	}, {
		name:    "JSON patch path missing",
		overlay: jsonPatched("Deployment", "istiod", jsonOp(meshv1alpha1.JSONPatchRemove, "/spec/template/spec/nodeSelector/zone", "")),
		want:    []string{"spec.overlays[1]", "Deployment istiod", "cannot patch Deployment istio-system/istiod:"},
	}, {
		name:    "JSON patch test fails",
		overlay: jsonPatched("ConfigMap", "istio", jsonOp(meshv1alpha1.JSONPatchTest, "/data/mesh", `"x"`)),
		want:    []string{"spec.overlays[1]", "cannot patch ConfigMap istio-system/istio:"},
	}, {
		name:    "JSON patch add without a value",
		overlay: jsonPatched("Deployment", "istiod", jsonOp(meshv1alpha1.JSONPatchAdd, "/metadata/annotations", "")),
		want:    []string{"spec.overlays[1].jsonPatch[0].value: Required value: the add operation needs a value"},
	}, {
		name:    "JSON patch remove with a value",
		overlay: jsonPatched("Deployment", "istiod", jsonOp(meshv1alpha1.JSONPatchRemove, "/metadata/annotations", `"x"`)),
		want:    []string{"spec.overlays[1].jsonPatch[0].value: Forbidden: the remove operation takes no value"},
	}, {
		name:    "unknown field",
		overlay: strategic("Deployment", "istiod", `{"spec": {"template": {"spec": {"toleration": []}}}}`),
		want:    []string{"spec.overlays[1]", "not a valid Deployment", "toleration"},
	}, {
		name:    "wrong type",
		overlay: strategic("Deployment", "istiod", `{"spec": {"replicas": "three"}}`),
		want:    []string{"spec.overlays[1]", "not a valid Deployment"},
	}, {
		name:    "protected label",
		overlay: jsonPatched("Deployment", "istiod", jsonOp(meshv1alpha1.JSONPatchReplace, "/metadata/labels/mesh.meshkeeper.dev~1revision", `"other"`)),
		want:    []string{"spec.overlays[1]", "cannot patch Deployment istio-system/istiod:", "metadata.labels[mesh.meshkeeper.dev/revision]"},
	}, {
		name:    "protected label removed",
		overlay: strategic("Service", "istiod", `{"metadata": {"labels": {"app.kubernetes.io/managed-by": null}}}`),
		want:    []string{"metadata.labels[app.kubernetes.io/managed-by]"},
	}, {
		name:    "protected label added to a shared object",
		overlay: strategic("Service", "istio-ingressgateway", `{"metadata": {"labels": {"mesh.meshkeeper.dev/revision": "default"}}}`),
		want:    []string{"metadata.labels[mesh.meshkeeper.dev/revision]"},
	}, {
		name:    "pod template revision label",
		overlay: strategic("Deployment", "istiod", `{"spec": {"template": {"metadata": {"labels": {"istio.io/rev": "x"}}}}}`),
		want:    []string{"spec.template.metadata.labels[istio.io/rev]"},
	}, {
		name:    "name",
		overlay: strategic("Deployment", "istiod", `{"metadata": {"name": "pilot"}}`),
		want:    []string{"metadata.name", "may not change kinds, names"},
	}, {
		name:    "namespace",
		overlay: jsonPatched("ConfigMap", "istio", jsonOp(meshv1alpha1.JSONPatchReplace, "/metadata/namespace", `"elsewhere"`)),
		want:    []string{"metadata.namespace"},
	}, {
		name:    "kind",
		overlay: jsonPatched("ConfigMap", "istio", jsonOp(meshv1alpha1.JSONPatchReplace, "/kind", `"Secret"`)),
		want:    []string{"apiVersion or kind"},
	}, {
		name:    "injection configuration",
		overlay: strategic("ConfigMap", "meshkeeper-injector", `{"data": {"config.json": "{}"}}`),
		want:    []string{"cannot patch ConfigMap istio-system/meshkeeper-injector", "injection configuration"},
	}, {
		name:    "ClusterRole",
		overlay: jsonPatched("ClusterRole", "istiod-clusterrole-istio-system", jsonOp(meshv1alpha1.JSONPatchAdd, "/rules/-", `{"apiGroups":["*"],"resources":["*"],"verbs":["*"]}`)),
		want:    []string{"spec.overlays[1].target.kind: Forbidden: overlays may not patch a ClusterRole"},
	}, {
		name:    "RoleBinding",
		overlay: strategic("RoleBinding", "istiod", `{"subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": "tenant"}]}`),
		want:    []string{"spec.overlays[1].target.kind: Forbidden: overlays may not patch a RoleBinding"},
	}, {
		name:    "validator's URL",
		overlay: jsonPatched("ValidatingWebhookConfiguration", "istio-validator-istio-system", jsonOp(meshv1alpha1.JSONPatchAdd, "/webhooks/0/clientConfig/url", `"https://elsewhere.example.com"`)),
		want:    []string{"spec.overlays[1].target.kind: Forbidden: overlays may not patch a ValidatingWebhookConfiguration"},
	}, {
		name:    "missing in one revision",
		overlay: strategic("HorizontalPodAutoscaler", "istiod", `{"spec": {"maxReplicas": 7}}`),
		objs:    onlyOneRevision,
		want:    []string{"spec.overlays[1]", "HorizontalPodAutoscaler istiod", "matches no object of revision 1-32-0"},
	}} {
		t.Run(c.name, func(t *testing.T) {
			in := c.objs
			if in == nil {
				in = objs
			}
			fine := strategic("Deployment", "istiod", `{"metadata": {"annotations": {"a": "b"}}}`)
			got, err := ApplyOverlays([]meshv1alpha1.Overlay{fine, c.overlay}, in)
			if err == nil {
				t.Fatal("accepted")
			}
			if got != nil {
				t.Error("returned objects with an error: nothing of a refused pass may be applied")
			}
			invalid, ok := err.(*InvalidError)
			if !ok || invalid.Reason != meshv1alpha1.ReasonOverlayNotApplicable {
				t.Fatalf("error %T %v, want an *InvalidError with reason %s", err, err, meshv1alpha1.ReasonOverlayNotApplicable)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestApplyOverlaysPinnedToTheRevisionThatHasTheObject(t *testing.T) {
	objs := canaryObjects(t)
	hpa := strategic("HorizontalPodAutoscaler", "istiod", `{"spec": {"maxReplicas": 7}}`)
	hpa.Target.Revision = DefaultRevision
	objs = slices.DeleteFunc(objs, func(o client.Object) bool {
		return o.GetName() == "istiod-1-32-0" && o.GetObjectKind().GroupVersionKind().Kind == "HorizontalPodAutoscaler"
	})
	if _, err := ApplyOverlays([]meshv1alpha1.Overlay{hpa}, objs); err != nil {
		t.Errorf("an overlay pinned to the revision that has the object was refused: %v", err)
	}
}

func TestApplyOverlaysJSONPatchAppendsAToleration(t *testing.T) {
	objs := canaryObjects(t)
	before := len(find[*appsv1.Deployment](t, objs, "istiod").Spec.Template.Spec.Tolerations)
	got, err := ApplyOverlays([]meshv1alpha1.Overlay{jsonPatched("Deployment", "istiod",
		jsonOp(meshv1alpha1.JSONPatchAdd, "/spec/template/spec/tolerations/-", `{"key": "dedicated", "operator": "Exists"}`))}, objs)
	if err != nil {
		t.Fatal(err)
	}
	tol := find[*appsv1.Deployment](t, got, "istiod-1-32-0").Spec.Template.Spec.Tolerations
	if before == 0 || len(tol) != before+1 || tol[before].Key != "dedicated" {
		t.Errorf("tolerations %+v, want istiod's %d and the overlay's after them", tol, before)
	}
}

func TestApplyOverlaysComposeInOrder(t *testing.T) {
	objs := canaryObjects(t)
	got, err := ApplyOverlays([]meshv1alpha1.Overlay{
		strategic("Deployment", "istiod", `{"spec": {"replicas": 3}}`),
		jsonPatched("Deployment", "istiod", jsonOp(meshv1alpha1.JSONPatchTest, "/spec/replicas", "3"),
			jsonOp(meshv1alpha1.JSONPatchReplace, "/spec/replicas", "4")),
	}, objs)
	if err != nil {
		t.Fatal(err)
	}
	if r := find[*appsv1.Deployment](t, got, "istiod-1-32-0").Spec.Replicas; !equality.Semantic.DeepEqual(r, ptr.To(int32(4))) {
		t.Errorf("replicas %v, want 4: the second overlay sees the first one's result", r)
	}
}

func TestComponentName(t *testing.T) {
	for _, c := range []struct{ name, rev, want string }{
		{"istiod", DefaultRevision, "istiod"},
		{"istiod-1-32-0", "1-32-0", "istiod"},
		{"istio-validator-1-32-0-istio-system", "1-32-0", "istio-validator-istio-system"},
		{"istiod-clusterrole-1-32-0-mesh-1-32-0", "1-32-0", "istiod-clusterrole-mesh-1-32-0"},
		{"istiod-1-32-01", "1-32-0", "istiod-1-32-01"},
		{"istio-ingressgateway", "", "istio-ingressgateway"},
	} {
		if got := ComponentName(c.name, c.rev); got != c.want {
			t.Errorf("ComponentName(%q, %q) = %q, want %q", c.name, c.rev, got, c.want)
		}
	}
}

// overlayBomb is a JSON patch of n copy operations, each copying istiod's
// spec into itself, doubling it: 2^n times its size if nothing stops it.
func overlayBomb(n int) meshv1alpha1.Overlay {
	ops := make([]meshv1alpha1.JSONPatchOperation, n)
	for i := range ops {
		ops[i] = meshv1alpha1.JSONPatchOperation{Op: meshv1alpha1.JSONPatchCopy, From: ptr.To("/spec"), Path: fmt.Sprintf("/spec/bomb%d", i)}
	}
	return jsonPatched("Deployment", "istiod", ops...)
}

// Overlay bomb bounds: refused within these, where the unbounded patch
// (before MaxOverlayCopyBytes) allocated 2.7 GiB in 11.8 s on 16 doublings.
const (
	overlayBombMaxAlloc = 64 << 20
	overlayBombMaxTime  = 2 * time.Second
)

func TestApplyOverlaysRefusesACopyBomb(t *testing.T) {
	objs := canaryObjects(t)
	goruntime.GC()
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	start := time.Now()
	_, err := ApplyOverlays([]meshv1alpha1.Overlay{overlayBomb(16)}, objs)
	took := time.Since(start)
	goruntime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("overlay bomb: refused in %s, %d KiB allocated", took, allocated>>10)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{"spec.overlays[0]", "Deployment istiod", "copy more than"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("message %q does not say %q", err, w)
		}
	}
	if allocated > overlayBombMaxAlloc {
		t.Errorf("refusing the bomb allocated %d MiB, want at most %d", allocated>>20, overlayBombMaxAlloc>>20)
	}
	if took > overlayBombMaxTime {
		t.Errorf("refusing the bomb took %s, want at most %s", took, overlayBombMaxTime)
	}
}

func TestApplyOverlaysRefusesObjectsPastTheirSize(t *testing.T) {
	big := `"` + strings.Repeat("x", 200<<10) + `"`
	grow := func(name string, keys int) meshv1alpha1.Overlay {
		ops := make([]meshv1alpha1.JSONPatchOperation, keys)
		for i := range ops {
			ops[i] = jsonOp(meshv1alpha1.JSONPatchAdd, fmt.Sprintf("/metadata/labels/big%d", i), big)
		}
		return jsonPatched("Deployment", name, ops...)
	}
	for _, c := range []struct {
		name     string
		overlays []meshv1alpha1.Overlay
		want     string
	}{{
		name:     "one object past MaxObjectBytes",
		overlays: []meshv1alpha1.Overlay{grow("istiod", 6)},
		want:     "more than the 1048576 an object may have",
	}, {
		name:     "all objects together past MaxOverlayGrowthBytes",
		overlays: []meshv1alpha1.Overlay{grow("istiod", 4), grow("istio-ingressgateway", 4)},
		want:     "by more than 2097152 bytes in all",
	}} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ApplyOverlays(c.overlays, canaryObjects(t))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "spec.overlays[") {
				t.Errorf("message %q does not name the overlay and say %q", err, c.want)
			}
		})
	}
}
