package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
	"github.com/meshkeeper/meshkeeper/webhooks"
)

// TestRevisionSourceFollowsTheCluster drives the operator's ConfigSource
// from a real API server: revisions' injection ConfigMaps as the renderer
// makes them, tags from the routing ConfigMap, canary assignment by
// workload, promotion, a revision whose configuration is gone, and a
// MeshInstall status that says otherwise (ignored).
func TestRevisionSourceFollowsTheCluster(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := env.Client

	mi := meshInstall("source", "1.31.4")
	mi.Spec.Namespace = "istio-system"
	mi.Spec.RevisionTags = []string{"prod"}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: mi.Spec.Namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// The MeshInstall owns its ConfigMaps, as the operator makes them.
	if err := c.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), mi) })
	configMaps := map[string]*corev1.ConfigMap{}
	for rev, v := range map[string]string{stableRev: "1.31.4", canaryRev: "1.32.0"} {
		r, err := render.NewRevision(rev, v)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := render.ControlPlane(mi, r)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if cm, ok := o.(*corev1.ConfigMap); ok && cm.Labels[render.LabelInjectionConfig] == "true" {
				configMaps[rev] = cm
			}
		}
		if configMaps[rev] == nil {
			t.Fatalf("revision %s renders no injection ConfigMap", rev)
		}
		owned(t, mi, configMaps[rev])
		if err := c.Create(ctx, configMaps[rev]); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, cm := range configMaps {
			_ = c.Delete(context.Background(), cm)
		}
	})

	informers, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	source, err := webhooks.NewRevisionSource(ctx, informers)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}

	// Two workloads, one on each side of a 50% canary.
	var stay, move webhooks.Workload
	for i := 0; stay.Name == "" || move.Name == ""; i++ {
		w := webhooks.Workload{Namespace: "shop", Name: fmt.Sprintf("app-%d", i)}
		if revision.OnCanary(w.Namespace, w.Name, 50) {
			move = w
		} else {
			stay = w
		}
	}
	resolvesTo := func(target webhooks.Target, w webhooks.Workload, want string) func() error {
		return func() error {
			cfg, err := source.Resolve(target, w)
			if err != nil {
				return err
			}
			if cfg.Revision != want {
				return fmt.Errorf("%+v for %s resolves to %s, want %s", target, w.Name, cfg.Revision, want)
			}
			return nil
		}
	}
	byTag := func(tag string) webhooks.Target { return webhooks.Target{Tag: tag} }

	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, "ready once loaded", func() error { return source.Ready(nil) })
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, "revisions are served by name", resolvesTo(webhooks.Target{Revision: canaryRev}, stay, canaryRev))
	if _, err := source.Resolve(byTag("default"), stay); err == nil {
		t.Error("the default tag resolves with no routing naming an active revision")
	}

	// A status naming an active revision routes nothing: only the routing in the cluster does.
	mi.Status = meshv1alpha1.MeshInstallStatus{ActiveRevision: stableRev, Version: "1.31.4"}
	if err := c.Status().Update(ctx, mi); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := source.Resolve(byTag("default"), stay); err == nil {
		t.Error("the default tag resolves from the MeshInstall's status")
	}

	routing := render.RoutingConfigMap(mi, revision.Routing{Tags: []string{"default", "prod"}, Active: stableRev, Canary: canaryRev, Weight: 50}.Data())
	owned(t, mi, routing)
	if err := c.Create(ctx, routing); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), routing) })
	for _, tag := range []string{"default", "prod"} {
		testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, "tag "+tag+" splits workloads during the canary", func() error {
			if err := resolvesTo(byTag(tag), stay, stableRev)(); err != nil {
				return err
			}
			return resolvesTo(byTag(tag), move, canaryRev)()
		})
	}
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, "a revision pin ignores the canary", resolvesTo(webhooks.Target{Revision: stableRev}, move, stableRev))

	routing.Data = revision.Routing{Tags: []string{"default", "prod"}, Active: canaryRev}.Data()
	if err := c.Update(ctx, routing); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, "after promotion every workload goes to the new revision", func() error {
		if err := resolvesTo(byTag("prod"), stay, canaryRev)(); err != nil {
			return err
		}
		return resolvesTo(byTag("default"), stay, canaryRev)()
	})

	if err := c.Delete(ctx, configMaps[stableRev]); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, "a pruned revision is no longer served", func() error {
		if _, err := source.Resolve(webhooks.Target{Revision: stableRev}, stay); err == nil {
			return fmt.Errorf("revision %s still resolves", stableRev)
		}
		return nil
	})

	if err := c.Delete(ctx, routing); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, "tags go with the routing", func() error {
		if _, err := source.Resolve(byTag("default"), stay); err == nil {
			return fmt.Errorf("the default tag still resolves")
		}
		return nil
	})
}

// owned gives obj mi's controller reference, as the operator does.
func owned(t *testing.T, mi *meshv1alpha1.MeshInstall, obj client.Object) {
	t.Helper()
	if err := controllerutil.SetControllerReference(mi, obj, env.Scheme); err != nil {
		t.Fatal(err)
	}
}

// TestRevisionSourceBelievesOnlyTheMeshInstallsOwn forges what a tenant who
// may only create ConfigMaps in their own namespace can: injection and
// routing ConfigMaps with meshkeeper's labels, even with the MeshInstall's
// controller reference copied, and an unowned one in the control plane
// namespace. None of them changes what is injected.
func TestRevisionSourceBelievesOnlyTheMeshInstallsOwn(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := env.Client
	mi := meshInstall("trusting", "1.31.4")
	mi.Spec.Namespace = "istio-system-trust"
	for _, ns := range []string{mi.Spec.Namespace, "tenant"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	if err := c.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), mi) })
	create := func(cm *corev1.ConfigMap) {
		t.Helper()
		if err := c.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), cm) })
	}
	injection := func(rev, v, ns, image string) *corev1.ConfigMap {
		r, err := render.NewRevision(rev, v)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := render.ControlPlane(mi, r)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if cm, ok := o.(*corev1.ConfigMap); ok && cm.Labels[render.LabelInjectionConfig] == "true" {
				cm.Namespace = ns
				if image != "" {
					cfg := map[string]any{}
					if err := json.Unmarshal([]byte(cm.Data[render.InjectionConfigKey]), &cfg); err != nil {
						t.Fatal(err)
					}
					cfg["proxyImage"] = image
					raw, _ := json.Marshal(cfg)
					cm.Data[render.InjectionConfigKey] = string(raw)
				}
				return cm
			}
		}
		t.Fatalf("revision %s renders no injection ConfigMap", rev)
		return nil
	}
	real := injection(stableRev, "1.31.4", mi.Spec.Namespace, "")
	owned(t, mi, real)
	create(real)
	routing := render.RoutingConfigMap(mi, revision.Routing{Tags: []string{"default"}, Active: stableRev}.Data())
	owned(t, mi, routing)
	create(routing)

	// The tenant's copies: the active revision with their image, another
	// revision, and routing that sends the default tag to it, all with the
	// MeshInstall's controller reference; and an unowned one beside the real ones.
	for _, cm := range []*corev1.ConfigMap{
		injection(stableRev, "1.31.4", "tenant", "evil/proxy:1"),
		injection("1-30-0", "1.30.0", "tenant", "evil/proxy:2"),
	} {
		cm.Name += "-" + cm.Labels[render.LabelRevision] + "-forged"
		owned(t, mi, cm)
		create(cm)
	}
	forgedRouting := render.RoutingConfigMap(mi, revision.Routing{Tags: []string{"default", "evil"}, Active: "1-30-0"}.Data())
	forgedRouting.Namespace = "tenant"
	owned(t, mi, forgedRouting)
	create(forgedRouting)
	unowned := injection("1-30-8", "1.30.8", mi.Spec.Namespace, "evil/proxy:3")
	unowned.Name += "-unowned"
	create(unowned)

	informers, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	source, err := webhooks.NewRevisionSource(ctx, informers)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, "ready once loaded", func() error { return source.Ready(nil) })
	w := webhooks.Workload{Namespace: "shop", Name: "app"}
	testenv.Eventually(t, 10*time.Second, 20*time.Millisecond, "the real routing is served", func() error {
		_, err := source.Resolve(webhooks.Target{Tag: "default"}, w)
		return err
	})
	// Many reads: with two ConfigMaps claiming one revision, map order would decide.
	for i := 0; i < 50; i++ {
		cfg, err := source.Resolve(webhooks.Target{Tag: "default"}, w)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Revision != stableRev || strings.HasPrefix(cfg.ProxyImage, "evil/") {
			t.Fatalf("the default tag resolves to revision %s with image %s, want %s with the real image", cfg.Revision, cfg.ProxyImage, stableRev)
		}
	}
	for _, target := range []webhooks.Target{{Revision: "1-30-0"}, {Revision: "1-30-8"}, {Tag: "evil"}} {
		if cfg, err := source.Resolve(target, w); err == nil {
			t.Errorf("%+v resolves to a forged configuration (image %s)", target, cfg.ProxyImage)
		}
	}
}
