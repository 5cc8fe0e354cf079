package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
)

// FuzzRevisionSource loads, as the injector does from its cache, a fuzzed
// injection configuration ConfigMap for revision default beside a rendered
// one for revision 1-32-0, and a fuzzed routing ConfigMap (active, canary,
// canaryWeight, tags). Loading must stay within callBounded's budget and
// never panic, and
//   - a broken ConfigMap never hides another: 1-32-0 always resolves;
//   - a configuration that loads re-parses from its own JSON to the same
//     configuration hash (the one injected pods are stamped with), and
//     injects a plain pod without an internal error;
//   - a routing that is refused names the data key at fault, and routes no tag;
//   - a routing that is read back from its own Data is the same routing, and
//     each of its tags resolves only to its active or canary revision: all
//     workloads to the canary at weight 100, none at weight 0.
func FuzzRevisionSource(f *testing.F) {
	good := renderedInjectionConfigMap(f, "1-32-0", "1.32.0")
	seedConfig := []byte(renderedInjectionConfigMap(f, render.DefaultRevision, "1.31.4").Data[render.InjectionConfigKey])
	f.Add(seedConfig, "default", "", "", "default,prod")
	f.Add(seedConfig, "default", "1-32-0", "10", "default")
	f.Add(seedConfig, "default", "1-32-0", "100", "default,prod")
	f.Add(seedConfig, "1-32-0", "default", "0", "prod")
	f.Add(seedConfig, "", "1-32-0", "50", "default")
	f.Add(seedConfig, "default", "1-32-0", "101", "default")
	f.Add(seedConfig, "default", "1-32-0", "-1", "default")
	f.Add(seedConfig, "default", "1-32-0", "x", "default")
	f.Add([]byte(`{"version":"1.31.4","proxyImage":"docker.io/istio/proxyv2:1.31.4","nativeSidecars":"Sometimes"}`), "default", "", "", "default")
	f.Add([]byte(`{"version":"1.31.4","proxyImage":"p","defaultProxyConfig":{"discoveryAddress":"istiod:15012","drainDuration":"0s"}}`), "default", "", "", "default")
	f.Add([]byte(`{"version":"2.0.0"`), "default", "", "", "default")
	f.Add([]byte(`null`), "default", "", "", "default")
	workloads := []Workload{{Namespace: "default", Name: "reviews"}, {Namespace: "shop", Name: "cart"}, {Namespace: "a", Name: "b"}}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, config []byte, active, canary, weight, tags string) {
		injection := good.DeepCopy()
		injection.Name = "meshkeeper-injector"
		injection.Labels[render.LabelRevision] = render.DefaultRevision
		injection.Data = map[string]string{render.InjectionConfigKey: string(config)}
		routingData := map[string]string{"active": active, "canary": canary, "canaryWeight": weight, "tags": tags}
		routing := render.RoutingConfigMap(&meshv1alpha1.MeshInstall{}, routingData)

		s := &RevisionSource{reader: ownedConfigMaps(good, injection, routing)}
		s.snapshot.Store(&snapshot{})
		var loaded bool
		callBounded(t, "loading the ConfigMaps", func() { loaded = s.rebuild(ctx) })
		if !loaded {
			t.Fatal("the ConfigMaps were not loaded")
		}
		snap := s.snapshot.Load()
		if _, err := s.Resolve(Target{Revision: "1-32-0"}, workloads[0]); err != nil {
			t.Fatalf("a broken ConfigMap hid revision 1-32-0: %v", err)
		}
		if p, ok := snap.revisions[render.DefaultRevision]; ok {
			requireUsableConfig(t, p.cfg)
		}

		r, err := revision.RoutingFromData(routingData)
		if err != nil {
			if !strings.Contains(err.Error(), "data.active") && !strings.Contains(err.Error(), "data.canaryWeight") {
				t.Fatalf("the routing refusal names no data key: %v", err)
			}
			if len(snap.tags) > 0 {
				t.Fatalf("a refused routing routes tags: %v", snap.tags)
			}
			return
		}
		back, err := revision.RoutingFromData(r.Data())
		if err != nil || !back.Equal(&r) {
			t.Fatalf("routing %+v read back from its data as %+v (%v)", r, back, err)
		}
		for _, tag := range r.Tags {
			for _, w := range workloads {
				requireRoutedWithin(t, s, snap, r, tag, w)
			}
		}
	})
}

// requireUsableConfig re-reads a loaded configuration from its JSON, and
// injects a plain pod with it.
func requireUsableConfig(t *testing.T, cfg *inject.Config) {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("a loaded configuration does not encode: %v", err)
	}
	again := &inject.Config{}
	if err := json.Unmarshal(b, again); err != nil {
		t.Fatalf("a loaded configuration does not re-parse: %v\n%s", err, b)
	}
	if err := again.Prepare(); err != nil {
		t.Fatalf("a loaded configuration, re-parsed, is refused: %v\n%s", err, b)
	}
	if again.Hash() != cfg.Hash() {
		t.Fatalf("a loaded configuration, re-parsed, has hash %s, not %s:\n%s", again.Hash(), cfg.Hash(), b)
	}
	pod := &corev1.Pod{}
	pod.Name, pod.Namespace = "reviews-1", "default"
	pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "reviews:1"}}
	callBounded(t, "injecting", func() { _, err = inject.Inject(pod, cfg, inject.Request{Namespace: "default"}) })
	if err != nil {
		t.Fatalf("a loaded configuration cannot inject a plain pod: %v\n%s", err, b)
	}
}

// requireRoutedWithin resolves a tag for a workload: to the routing's
// active or canary revision (all workloads to the active one at weight 0,
// to the canary at 100), and to that revision's configuration exactly when
// it is loaded.
func requireRoutedWithin(t *testing.T, s *RevisionSource, snap *snapshot, r revision.Routing, tag string, w Workload) {
	t.Helper()
	target := r.Target(w.Namespace, w.Name)
	switch {
	case target != r.Active && target != r.Canary:
		t.Fatalf("routing %+v sends %s/%s to %q", r, w.Namespace, w.Name, target)
	case r.Canary != "" && r.Weight == 0 && target != r.Active:
		t.Fatalf("routing %+v sends %s/%s to the canary at weight 0", r, w.Namespace, w.Name)
	case r.Canary != "" && r.Weight == 100 && target != r.Canary:
		t.Fatalf("routing %+v keeps %s/%s off the canary at weight 100", r, w.Namespace, w.Name)
	}
	cfg, err := s.Resolve(Target{Tag: tag}, w)
	loaded, ok := snap.revisions[target]
	switch {
	case ok && err != nil:
		t.Fatalf("tag %q for %s/%s: %v, though revision %s is loaded", tag, w.Namespace, w.Name, err, target)
	case ok && cfg != loaded.cfg:
		t.Fatalf("tag %q for %s/%s went to %s, want %s", tag, w.Namespace, w.Name, cfg.Revision, target)
	case !ok && err == nil:
		t.Fatalf("tag %q for %s/%s resolved to %s, though its revision %s is not loaded", tag, w.Namespace, w.Name, cfg.Revision, target)
	}
}

// renderedInjectionConfigMap is the injection ConfigMap the operator renders
// for a revision.
func renderedInjectionConfigMap(t testing.TB, name, v string) *corev1.ConfigMap {
	t.Helper()
	rev, err := render.NewRevision(name, v)
	if err != nil {
		t.Fatal(err)
	}
	mi := &meshv1alpha1.MeshInstall{Spec: meshv1alpha1.MeshInstallSpec{Version: v, Namespace: "istio-system"}}
	objs, err := render.ControlPlane(mi, rev)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if cm, ok := o.(*corev1.ConfigMap); ok && cm.Labels[render.LabelInjectionConfig] == "true" {
			return cm
		}
	}
	t.Fatalf("revision %s renders no injection ConfigMap", name)
	return nil
}

// fuzzMeshInstall owns the ConfigMaps the fuzzer loads: the injector
// believes only a MeshInstall's own ConfigMaps, in its namespace.
var fuzzMeshInstall = &meshv1alpha1.MeshInstall{
	ObjectMeta: metav1.ObjectMeta{Name: "mesh", UID: "fuzz-mesh-uid"},
	Spec:       meshv1alpha1.MeshInstallSpec{Namespace: "istio-system"},
}

// ownedConfigMaps is a cache holding fuzzMeshInstall and these ConfigMaps,
// moved to its namespace with its controller reference.
func ownedConfigMaps(cms ...*corev1.ConfigMap) configMaps {
	owner := true
	for _, cm := range cms {
		cm.Namespace = "istio-system"
		cm.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: meshv1alpha1.GroupVersion.String(), Kind: "MeshInstall",
			Name: fuzzMeshInstall.Name, UID: fuzzMeshInstall.UID, Controller: &owner,
		}}
	}
	return configMaps(cms)
}

// configMaps is a cache holding fuzzMeshInstall and these ConfigMaps.
type configMaps []*corev1.ConfigMap

func (c configMaps) Get(_ context.Context, key client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
	return apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, key.Name)
}

func (c configMaps) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if mis, ok := list.(*meshv1alpha1.MeshInstallList); ok {
		mis.Items = []meshv1alpha1.MeshInstall{*fuzzMeshInstall.DeepCopy()}
		return nil
	}
	out, ok := list.(*corev1.ConfigMapList)
	if !ok {
		return fmt.Errorf("configMaps lists ConfigMaps, not %T", list)
	}
	lo := (&client.ListOptions{}).ApplyOptions(opts)
	for _, cm := range c {
		if lo.LabelSelector == nil || lo.LabelSelector.Matches(labels.Set(cm.Labels)) {
			out.Items = append(out.Items, *cm.DeepCopy())
		}
	}
	return nil
}
