package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// TestOverlays patches istiod through spec.overlays: a patch that does not
// apply is refused by the API server with the webhook's message and changes
// nothing; one that applies follows istiod onto a canary revision and stays
// after the old revision is pruned.
func TestOverlays(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Version = stableVer
	mi.Spec.Profile = meshv1alpha1.ProfileMinimal
	mi.Spec.Gateways = nil
	mi.Spec.UpdateStrategy.InactiveRevisionDeletionGracePeriod = &metav1.Duration{Duration: pruneGrace}
	mi.Spec.Overlays = []meshv1alpha1.Overlay{{
		Target: meshv1alpha1.OverlayTarget{Kind: "Deployment", Name: "istiod"},
		StrategicMerge: &runtime.RawExtension{Raw: []byte(`{"spec": {"template": {
			"metadata": {"annotations": {"example.com/overlay": "e2e"}},
			"spec": {"containers": [{"name": "discovery", "env": [{"name": "EXAMPLE_OVERLAY", "value": "e2e"}]}]}}}}`)},
	}}
	name := mi.Name
	istiod := func(t *testing.T, rev string) *appsv1.Deployment {
		t.Helper()
		d := &appsv1.Deployment{}
		if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.IstiodName(rev)}, d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	// patched says whether a revision's istiod carries the overlay.
	patched := func(d *appsv1.Deployment) error {
		if got := d.Spec.Template.Annotations["example.com/overlay"]; got != "e2e" {
			return fmt.Errorf("%s: pod annotation example.com/overlay=%q, want e2e", d.Name, got)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, env := range c.Env {
				if c.Name == "discovery" && env.Name == "EXAMPLE_OVERLAY" && env.Value == "e2e" {
					return nil
				}
			}
		}
		return fmt.Errorf("%s: discovery has no EXAMPLE_OVERLAY=e2e", d.Name)
	}

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"installed in place, istiod carries the overlay", func(t *testing.T) {
			if err := e.k8s.Create(ctx, mi); err != nil {
				t.Fatal(err)
			}
			e.waitReady(t, name, installTimeout)
			if err := patched(istiod(t, render.DefaultRevision)); err != nil {
				t.Error(err)
			}
		}},
		{"an overlay that does not apply is refused with the webhook's message, and nothing changes", func(t *testing.T) {
			before := e.getMeshInstall(t, name)
			istiodGeneration := istiod(t, render.DefaultRevision).Generation
			bad := before.DeepCopy()
			bad.Spec.Overlays = append(bad.Spec.Overlays, meshv1alpha1.Overlay{
				Target:         meshv1alpha1.OverlayTarget{Kind: "Deployment", Name: "istiod"},
				StrategicMerge: &runtime.RawExtension{Raw: []byte(`{"metadata": {"labels": {"istio.io/rev": "elsewhere"}}}`)},
			})
			err := e.k8s.Update(ctx, bad)
			for _, want := range []string{"denied the request", `spec.overlays[1]: Invalid value: "Deployment istiod"`,
				"cannot patch Deployment istio-system/istiod", "metadata.labels[istio.io/rev]"} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("got %v, want the update refused saying %q", err, want)
				}
			}
			time.Sleep(2 * time.Second) // a pass the refused spec would have caused
			if after := e.getMeshInstall(t, name); after.Generation != before.Generation || len(after.Spec.Overlays) != 1 {
				t.Errorf("MeshInstall changed: generation %d → %d, %d overlays", before.Generation, after.Generation, len(after.Spec.Overlays))
			}
			if d := istiod(t, render.DefaultRevision); d.Generation != istiodGeneration || d.Labels["istio.io/rev"] != render.DefaultRevision {
				t.Errorf("istiod changed: generation %d → %d, istio.io/rev %q", istiodGeneration, d.Generation, d.Labels["istio.io/rev"])
			}
		}},
		{"a canary revision's istiod carries the overlay too", func(t *testing.T) {
			e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) {
				m.Spec.Version = canaryVer
				m.Spec.UpdateStrategy.Type = meshv1alpha1.UpdateStrategyCanary
				m.Spec.UpdateStrategy.Canary = &meshv1alpha1.CanaryStrategy{
					Steps: []int32{50, 100}, StepInterval: &metav1.Duration{Duration: stepWait}, Paused: true,
				}
			})
			e.waitCanary(t, canaryRev, 50)
			for _, rev := range []string{render.DefaultRevision, canaryRev} {
				if err := patched(istiod(t, rev)); err != nil {
					t.Error(err)
				}
			}
		}},
		{"promoted and the old revision pruned, the remaining istiod still carries it", func(t *testing.T) {
			e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) { m.Spec.UpdateStrategy.Canary.Paused = false })
			e.waitPruned(t, render.DefaultRevision)
			got := e.waitReady(t, name, 60*time.Second)
			if got.Status.ActiveRevision != canaryRev || len(got.Status.Revisions) != 1 {
				t.Fatalf("status %+v, want %s alone", got.Status, canaryRev)
			}
			if err := patched(istiod(t, canaryRev)); err != nil {
				t.Error(err)
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			t.FailNow()
		}
	}
}
