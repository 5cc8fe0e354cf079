package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// The overlay checks ride on TestCanaryUpgrade's story (a cluster of their
// own cost the suite a cluster start and an install): a spec.overlays
// patch of istiod is on every revision's istiod, follows it onto the
// canary and stays after the old revision is pruned; a patch that does not
// apply is refused with the webhook's message and changes nothing.

// istiodOverlay patches every revision's istiod Deployment: a pod
// annotation and an env var of the discovery container.
func istiodOverlay() []meshv1alpha1.Overlay {
	return []meshv1alpha1.Overlay{{
		Target: meshv1alpha1.OverlayTarget{Kind: "Deployment", Name: "istiod"},
		StrategicMerge: &runtime.RawExtension{Raw: []byte(`{"spec": {"template": {
			"metadata": {"annotations": {"example.com/overlay": "e2e"}},
			"spec": {"containers": [{"name": "discovery", "env": [{"name": "EXAMPLE_OVERLAY", "value": "e2e"}]}]}}}}`)},
	}}
}

func (e *env) istiodOf(t *testing.T, rev string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := e.k8s.Get(context.Background(), client.ObjectKey{Namespace: "istio-system", Name: render.IstiodName(rev)}, d); err != nil {
		t.Fatal(err)
	}
	return d
}

// checkOverlaid fails unless each revision's istiod carries istiodOverlay.
func (e *env) checkOverlaid(t *testing.T, revs ...string) {
	t.Helper()
	for _, rev := range revs {
		if err := overlaid(e.istiodOf(t, rev)); err != nil {
			t.Error(err)
		}
	}
}

func overlaid(d *appsv1.Deployment) error {
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

// checkBadOverlayRefused adds an overlay that cannot apply (it would move
// istiod's revision label): the API server refuses the update with the
// validating webhook's message, and neither the MeshInstall nor istiod of
// rev changes.
func (e *env) checkBadOverlayRefused(t *testing.T, name, rev string) {
	t.Helper()
	before := e.getMeshInstall(t, name)
	istiodGeneration := e.istiodOf(t, rev).Generation
	bad := before.DeepCopy()
	bad.Spec.Overlays = append(bad.Spec.Overlays, meshv1alpha1.Overlay{
		Target:         meshv1alpha1.OverlayTarget{Kind: "Deployment", Name: "istiod"},
		StrategicMerge: &runtime.RawExtension{Raw: []byte(`{"metadata": {"labels": {"istio.io/rev": "elsewhere"}}}`)},
	})
	err := e.k8s.Update(context.Background(), bad)
	for _, want := range []string{"denied the request", `spec.overlays[1]: Invalid value: "Deployment istiod"`,
		"cannot patch Deployment istio-system/istiod", "metadata.labels[istio.io/rev]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want the update refused saying %q", err, want)
		}
	}
	time.Sleep(2 * time.Second) // a pass the refused spec would have caused
	if after := e.getMeshInstall(t, name); after.Generation != before.Generation || len(after.Spec.Overlays) != len(before.Spec.Overlays) {
		t.Errorf("MeshInstall changed: generation %d → %d, %d overlays", before.Generation, after.Generation, len(after.Spec.Overlays))
	}
	if d := e.istiodOf(t, rev); d.Generation != istiodGeneration || d.Labels["istio.io/rev"] != rev {
		t.Errorf("istiod changed: generation %d → %d, istio.io/rev %q", istiodGeneration, d.Generation, d.Labels["istio.io/rev"])
	}
}
