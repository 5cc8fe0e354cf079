package meshinstall

import (
	"errors"
	"maps"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/inventory"
	"github.com/meshkeeper/meshkeeper/internal/meshca"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/rollout"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// steadyPass is a settled mesh as a pass sees it: one revision, available,
// routed to, its namespace labelled, two objects owned.
func steadyPass(t *testing.T) (*meshv1alpha1.MeshInstall, *observation, meshca.Decision) {
	t.Helper()
	mi := &meshv1alpha1.MeshInstall{
		ObjectMeta: metav1.ObjectMeta{Name: "default", UID: "uid-1", Generation: 3, ResourceVersion: "500"},
		Spec:       meshv1alpha1.MeshInstallSpec{Version: "1.31.4", Namespace: "istio-system"},
	}
	rev := render.DefaultRevision
	obs := &observation{
		Observed: revision.Observed{Now: time.Unix(1_800_000_000, 0), InventoryKnown: true, Revisions: map[string]revision.ObservedRevision{
			rev: {ControlPlaneVersion: "1.31.4", ProxyVersion: "1.31.4", Istiod: &revision.Rollout{Available: true, Serving: true}, Pods: 4, PodsReady: true},
		}},
		live:                 map[apply.Key]client.Object{},
		namespaces:           map[string]map[string]string{"shop": {"istio-injection": "enabled"}},
		controlledNamespaces: map[string]bool{"istio-system": true},
		crdHashes:            map[string]string{"peerauthentications.security.istio.io": "h1"},
		endpoint:             webhookconfig.Endpoint{URL: "https://127.0.0.1:9443", CABundle: []byte("ca-1")},
		retired:              map[string]bool{},
		pods:                 []inventory.Pod{{Controlled: true}},
		workloads:            map[rollout.Key]rollout.Workload{},
	}
	for _, o := range []client.Object{
		&appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: render.IstiodName(rev), ResourceVersion: "10"}},
		&corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: render.MeshConfigMapName(rev), ResourceVersion: "11"}},
	} {
		obs.live[apply.KeyOf(o)] = o
	}
	plan, err := revision.Decide(mi, obs.Observed)
	if err != nil {
		t.Fatal(err)
	}
	obs.Routing = plan.Routing
	for _, ns := range namespacesToApply(mi, obs) {
		obs.namespaces[ns.GetName()] = maps.Clone(ns.GetLabels())
	}
	ca, err := meshca.Decide(mi, meshca.Observed{IstiodExists: true, Running: true})
	if err != nil {
		t.Fatal(err)
	}
	return mi, obs, ca
}

var errUnknownEndpoint = errors.New("the webhook certificate is not issued yet")

// TestNothingToApplyOnlyWhenNothingAppliedFromChanged: a pass stops after
// its plan only when what it would apply from is what the last pass that
// applied saw. Pods, workloads and the clock change nothing of that; any
// input of the render, the apply or the prune does.
func TestNothingToApplyOnlyWhenNothingAppliedFromChanged(t *testing.T) {
	pass := func(t *testing.T, change func(*meshv1alpha1.MeshInstall, *observation)) (string, bool) {
		mi, obs, ca := steadyPass(t)
		last := func() appliedPass {
			plan, _, err := decide(mi, obs)
			if err != nil {
				t.Fatal(err)
			}
			return appliedPass{inputs: applyInputs(mi, plan, obs, ca), resourceVersion: mi.ResourceVersion}
		}()
		change(mi, obs)
		plan, _, err := decide(mi, obs)
		if err != nil {
			t.Fatal(err)
		}
		inputs := applyInputs(mi, plan, obs, ca)
		return inputs, nothingToApply(mi, plan, obs, inputs, last)
	}
	owned := func(obs *observation, name string) client.Object {
		for k, o := range obs.live {
			if k.Name == name {
				return o
			}
		}
		t.Fatalf("no owned %s", name)
		return nil
	}

	for name, change := range map[string]func(*meshv1alpha1.MeshInstall, *observation){
		"nothing":        func(*meshv1alpha1.MeshInstall, *observation) {},
		"a minute later": func(_ *meshv1alpha1.MeshInstall, o *observation) { o.Now = o.Now.Add(time.Minute) },
		"pods come and go": func(_ *meshv1alpha1.MeshInstall, o *observation) {
			r := o.Revisions[render.DefaultRevision]
			r.Pods = 1000
			o.Revisions[render.DefaultRevision] = r
			o.pods = append(o.pods, inventory.Pod{Controlled: true})
		},
		"a user's namespace is labelled": func(_ *meshv1alpha1.MeshInstall, o *observation) {
			o.namespaces["burst"] = map[string]string{"istio-injection": "enabled"}
		},
		"a user's workload changes": func(_ *meshv1alpha1.MeshInstall, o *observation) {
			o.workloads[rollout.Key{Kind: "Deployment", Namespace: "shop", Name: "web"}] = rollout.Workload{}
		},
	} {
		t.Run(name+": nothing to apply", func(t *testing.T) {
			if _, stop := pass(t, change); !stop {
				t.Error("the pass applies, though nothing it applies from changed")
			}
		})
	}

	for name, change := range map[string]func(*meshv1alpha1.MeshInstall, *observation){
		"an owned object edited": func(_ *meshv1alpha1.MeshInstall, o *observation) {
			owned(o, render.MeshConfigMapName(render.DefaultRevision)).SetResourceVersion("12")
		},
		"an owned object deleted": func(_ *meshv1alpha1.MeshInstall, o *observation) {
			delete(o.live, apply.KeyOf(owned(o, render.MeshConfigMapName(render.DefaultRevision))))
		},
		"the spec changed": func(mi *meshv1alpha1.MeshInstall, _ *observation) { mi.Generation++ },
		"someone else wrote the MeshInstall (its status wiped)": func(mi *meshv1alpha1.MeshInstall, _ *observation) {
			mi.ResourceVersion = "501"
		},
		"an annotation of the MeshInstall": func(mi *meshv1alpha1.MeshInstall, _ *observation) { mi.Annotations = map[string]string{"a": "b"} },
		"the webhook CA rotated":           func(_ *meshv1alpha1.MeshInstall, o *observation) { o.endpoint.CABundle = []byte("ca-2") },
		"a node without native sidecars":   func(_ *meshv1alpha1.MeshInstall, o *observation) { o.nodesWithoutNativeSidecars = true },
		"a CRD changed": func(_ *meshv1alpha1.MeshInstall, o *observation) {
			o.crdHashes["peerauthentications.security.istio.io"] = "h2"
		},
		"a revision confirmed retired": func(_ *meshv1alpha1.MeshInstall, o *observation) { o.retired["1-30-8"] = true },
		"the mesh namespace relabelled": func(mi *meshv1alpha1.MeshInstall, o *observation) {
			o.namespaces[mi.Spec.Namespace] = map[string]string{}
		},
		"the routing's tags edited": func(_ *meshv1alpha1.MeshInstall, o *observation) {
			o.Routing = &revision.Routing{Active: o.Routing.Active}
		},
		"istiod no longer available": func(_ *meshv1alpha1.MeshInstall, o *observation) {
			r := o.Revisions[render.DefaultRevision]
			r.Istiod = &revision.Rollout{}
			o.Revisions[render.DefaultRevision] = r
		},
		"the endpoint unknown": func(_ *meshv1alpha1.MeshInstall, o *observation) { o.endpointErr = errUnknownEndpoint },
	} {
		t.Run(name+": the pass applies", func(t *testing.T) {
			if _, stop := pass(t, change); stop {
				t.Error("the pass stops after its plan, though what it applies from changed")
			}
		})
	}

	t.Run("the first pass of a process applies", func(t *testing.T) {
		mi, obs, ca := steadyPass(t)
		plan, _, err := decide(mi, obs)
		if err != nil {
			t.Fatal(err)
		}
		if nothingToApply(mi, plan, obs, applyInputs(mi, plan, obs, ca), appliedPass{}) {
			t.Error("a pass with no pass applied before it stops after its plan")
		}
	})
}
