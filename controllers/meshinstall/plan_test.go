package meshinstall

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

func TestRoutesTowards(t *testing.T) {
	routing := func(active, canary string, weight int32) *revision.Routing {
		return &revision.Routing{Active: active, Canary: canary, Weight: weight}
	}
	failed := map[string]bool{"1-32-0": true}
	cases := []struct {
		name              string
		planned, observed *revision.Routing
		towards           bool
	}{
		{name: "nothing to route", planned: nil, observed: routing("1-31-0", "", 0)},
		{name: "first routing, to a revision that failed", planned: routing("1-32-0", "", 0), towards: true},
		{name: "first routing, to one that applied", planned: routing("1-31-0", "", 0)},
		{name: "a promotion to a revision that failed", planned: routing("1-32-0", "", 0), observed: routing("1-31-0", "1-32-0", 100), towards: true},
		{name: "a new canary that failed", planned: routing("1-31-0", "1-32-0", 10), observed: routing("1-31-0", "", 0), towards: true},
		{name: "a failed canary's weight grows", planned: routing("1-31-0", "1-32-0", 50), observed: routing("1-31-0", "1-32-0", 10), towards: true},
		{name: "a failed canary's weight stays", planned: routing("1-31-0", "1-32-0", 10), observed: routing("1-31-0", "1-32-0", 10)},
		{name: "a failed canary's weight shrinks", planned: routing("1-31-0", "1-32-0", 0), observed: routing("1-31-0", "1-32-0", 10)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := routesTowards(tc.planned, tc.observed, failed); got != tc.towards {
				t.Errorf("routesTowards = %t, want %t", got, tc.towards)
			}
		})
	}
}

// The last stages follow which revisions applied: a failed canary gets
// neither workloads nor injector entries; a promotion held back keeps the
// shared objects with the revision the tags still point at.
func TestRoutingStage(t *testing.T) {
	r := planner{scheme: testenv.Scheme(), operatorNamespace: "meshkeeper-system"}
	mi := &meshv1alpha1.MeshInstall{ObjectMeta: metav1.ObjectMeta{Name: "mesh", UID: "uid"}, Spec: meshv1alpha1.MeshInstallSpec{Namespace: "istio-system"}}
	plan := revision.Plan{
		Revisions: []revision.Planned{{Name: "1-31-0"}, {Name: "1-32-0"}},
		Routing:   &revision.Routing{Active: "1-32-0"},
	}
	obs := &observation{Observed: revision.Observed{Routing: &revision.Routing{Active: "1-31-0", Canary: "1-32-0", Weight: 100}}}
	shared, held := []client.Object{configMap("gateway-1-32-0")}, []client.Object{configMap("gateway-1-31-0")}
	routingConfigMap := configMap("routing")
	d := &desired{shared: shared, sharedHeld: held, routing: routingConfigMap}
	servedBy := func(s routingStage) []string {
		m, err := webhookconfig.NewMatcher(s.injector)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, rev := range []string{"1-31-0", "1-32-0"} {
			if m.Serves(webhookconfig.TargetPath("rev", rev)) {
				out = append(out, rev)
			}
		}
		return out
	}
	obs.endpoint = webhookconfig.Endpoint{URL: "https://127.0.0.1:1", CABundle: []byte("ca")}

	s := r.routingStage(mi, plan, d, obs, nil)
	if s.injectorErr != nil {
		t.Fatal(s.injectorErr)
	}
	if s.routing != routingConfigMap || !slices.Equal(s.shared, shared) || !slices.Equal(servedBy(s), []string{"1-31-0", "1-32-0"}) {
		t.Errorf("nothing failed: routing %v, shared %v, injector serves %v; want the promotion, its shared objects, both revisions", s.routing, s.shared, servedBy(s))
	}

	s = r.routingStage(mi, plan, d, obs, map[string]bool{"1-32-0": true})
	if s.routing != nil || !slices.Equal(s.shared, held) || !slices.Equal(servedBy(s), []string{"1-31-0"}) {
		t.Errorf("the promoted revision failed: routing %v, shared %v, injector serves %v; want no routing, the held-back shared objects, 1-31-0 alone", s.routing, s.shared, servedBy(s))
	}

	d.untrusted = map[string]bool{"1-32-0": true}
	s = r.routingStage(mi, plan, d, obs, nil)
	if s.routing != nil || !slices.Equal(servedBy(s), []string{"1-31-0", "1-32-0"}) {
		t.Errorf("cainjector has not filled 1-32-0's entries: routing %v, injector serves %v; want no routing, and entries for both to fill", s.routing, servedBy(s))
	}
}

func configMap(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: name}}
}

func TestPruneSelection(t *testing.T) {
	revisionObject := func(name, rev string) *corev1.ConfigMap {
		cm := configMap(name)
		cm.Labels = map[string]string{render.LabelRevision: rev}
		return cm
	}
	namespace := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}
	wantedObject, removedGateway := configMap("istio"), configMap("gateway")
	kept, keptStale := revisionObject("istio-1-32-0", "1-32-0"), revisionObject("old-1-32-0", "1-32-0")
	pruned, stillUsed, untouched := revisionObject("istio-1-30-0", "1-30-0"), revisionObject("istio-1-29-0", "1-29-0"), revisionObject("istio-1-28-0", "1-28-0")
	obs := &observation{live: map[apply.Key]client.Object{}}
	for _, o := range []client.Object{namespace, wantedObject, removedGateway, kept, keptStale, pruned, stillUsed, untouched} {
		obs.live[apply.KeyOf(o)] = o
	}
	plan := revision.Plan{Revisions: []revision.Planned{{Name: "1-32-0"}}, Prune: []string{"1-30-0", "1-29-0"}}
	want := map[apply.Key]bool{apply.KeyOf(wantedObject): true, apply.KeyOf(kept): true}
	got := pruneSelection(plan, want, obs, map[string]bool{"1-30-0": true, "1-29-0": false})
	var names []string
	for _, o := range got {
		names = append(names, o.GetName())
	}
	if wantNames := []string{"gateway", "istio-1-30-0", "old-1-32-0"}; !slices.Equal(names, wantNames) {
		t.Errorf("pruned %v, want %v: what is no longer wanted, and the objects of a pruned revision no pod uses; never the namespace, a used revision or one neither kept nor pruned", names, wantNames)
	}
}
