package integration_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

func istiodOverlay(patch string) meshv1alpha1.Overlay {
	return meshv1alpha1.Overlay{
		Target:         meshv1alpha1.OverlayTarget{Kind: "Deployment", Name: "istiod"},
		StrategicMerge: &runtime.RawExtension{Raw: []byte(patch)},
	}
}

func TestOverlaysThroughTheAPIServer(t *testing.T) {
	ctx := context.Background()
	refusedCreate := func(t *testing.T, mi *meshv1alpha1.MeshInstall, want ...string) {
		t.Helper()
		err := env.Client.Create(ctx, mi)
		if err == nil {
			_ = env.Client.Delete(ctx, mi)
			t.Fatal("accepted")
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("message %q does not say %q", err, w)
			}
		}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(mi), &meshv1alpha1.MeshInstall{}); !apierrors.IsNotFound(err) {
			t.Errorf("the refused MeshInstall was stored: %v", err)
		}
	}

	t.Run("an overlay that does not apply is refused, naming the overlay and the object", func(t *testing.T) {
		mi := meshInstall("overlays", "1.32.0")
		mi.Spec.Overlays = []meshv1alpha1.Overlay{
			istiodOverlay(`{"metadata": {"annotations": {"example.com/a": "b"}}}`),
			{Target: meshv1alpha1.OverlayTarget{Kind: "ConfigMap", Name: "istio"}, JSONPatch: []meshv1alpha1.JSONPatchOperation{
				{Op: meshv1alpha1.JSONPatchRemove, Path: "/data/nonexistent"},
			}},
		}
		refusedCreate(t, mi, "denied the request", `spec.overlays[1]: Invalid value: "ConfigMap istio"`, "cannot patch ConfigMap istio-system/istio")
	})
	t.Run("an overlay changing meshkeeper's labels is refused", func(t *testing.T) {
		mi := meshInstall("overlays", "1.32.0")
		mi.Spec.Overlays = []meshv1alpha1.Overlay{istiodOverlay(`{"metadata": {"labels": {"mesh.meshkeeper.dev/revision": "other"}}}`)}
		refusedCreate(t, mi, `spec.overlays[0]: Invalid value: "Deployment istiod"`, "Deployment istio-system/istiod",
			"metadata.labels[mesh.meshkeeper.dev/revision]", "meshkeeper tracks its objects by")
	})
	t.Run("an overlay with both patch kinds is refused by the CRD", func(t *testing.T) {
		mi := meshInstall("overlays", "1.32.0")
		ov := istiodOverlay(`{}`)
		ov.JSONPatch = []meshv1alpha1.JSONPatchOperation{{Op: meshv1alpha1.JSONPatchRemove, Path: "/metadata/annotations"}}
		mi.Spec.Overlays = []meshv1alpha1.Overlay{ov}
		refusedCreate(t, mi, "spec.overlays[]: set exactly one of strategicMerge and jsonPatch")
	})
	t.Run("a JSON patch add without a value is refused", func(t *testing.T) {
		mi := meshInstall("overlays", "1.32.0")
		mi.Spec.Overlays = []meshv1alpha1.Overlay{{Target: meshv1alpha1.OverlayTarget{Kind: "Deployment", Name: "istiod"},
			JSONPatch: []meshv1alpha1.JSONPatchOperation{{Op: meshv1alpha1.JSONPatchAdd, Path: "/metadata/annotations"}}}}
		refusedCreate(t, mi, "spec.overlays[0].jsonPatch[0].value: Required value: the add operation needs a value")
	})
	t.Run("a JSON patch move without from is refused by the CRD", func(t *testing.T) {
		mi := meshInstall("overlays", "1.32.0")
		mi.Spec.Overlays = []meshv1alpha1.Overlay{{Target: meshv1alpha1.OverlayTarget{Kind: "Deployment", Name: "istiod"},
			JSONPatch: []meshv1alpha1.JSONPatchOperation{{Op: meshv1alpha1.JSONPatchMove, Path: "/metadata/annotations"}}}}
		refusedCreate(t, mi, "spec.overlays[].jsonPatch[]: from is required by move and copy")
	})

	mi := meshInstall("overlays", "1.32.0")
	mi.Spec.Overlays = []meshv1alpha1.Overlay{istiodOverlay(
		`{"spec": {"template": {"spec": {"containers": [{"name": "discovery", "env": [{"name": "PILOT_EXTRA", "value": "1"}]}]}}}}`)}
	if err := env.Client.Create(ctx, mi); err != nil {
		t.Fatalf("an overlay adding an env var to istiod was refused: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, mi) })
	installedAt(t, mi, "1.32.0")

	t.Run("an update adding an overlay that does not apply is refused and nothing changes", func(t *testing.T) {
		got := &meshv1alpha1.MeshInstall{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(mi), got); err != nil {
			t.Fatal(err)
		}
		got.Spec.Overlays = append(got.Spec.Overlays, meshv1alpha1.Overlay{
			Target:         meshv1alpha1.OverlayTarget{Kind: "Service", Name: "istiod-gateway"},
			StrategicMerge: &runtime.RawExtension{Raw: []byte(`{"spec": {"type": "NodePort"}}`)},
		})
		err := env.Client.Update(ctx, got)
		if err == nil || !strings.Contains(err.Error(), `spec.overlays[1]: Invalid value: "Service istiod-gateway": matches no object meshkeeper renders; its Services are named istio-ingressgateway, istiod`) {
			t.Fatalf("got %v, want spec.overlays[1] refused", err)
		}
		stored := &meshv1alpha1.MeshInstall{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(mi), stored); err != nil {
			t.Fatal(err)
		}
		if len(stored.Spec.Overlays) != 1 {
			t.Errorf("stored overlays %+v after a refused update", stored.Spec.Overlays)
		}
	})
}
