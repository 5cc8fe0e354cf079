package meshinstall

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// An overlay written against one version's objects (here, a JSON patch
// that tests istiod's image) stops applying when an upgrade renders
// different ones: the reconciler refuses the whole pass, naming the
// overlay, and applies nothing of the upgrade.
func TestAnOverlayThatStopsApplyingAppliesNothing(t *testing.T) {
	startManager(t, managerOpts{})
	mi := createSample(t, func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.Overlays = []meshv1alpha1.Overlay{{
			Target: meshv1alpha1.OverlayTarget{Kind: "Deployment", Name: "istiod"},
			JSONPatch: []meshv1alpha1.JSONPatchOperation{
				{Op: meshv1alpha1.JSONPatchTest, Path: "/spec/template/spec/containers/0/image",
					Value: &apiextensionsv1.JSON{Raw: []byte(`"docker.io/istio/pilot:1.31.4"`)}},
				{Op: meshv1alpha1.JSONPatchAdd, Path: "/spec/template/metadata/annotations/example.com~1pinned",
					Value: &apiextensionsv1.JSON{Raw: []byte(`"1.31.4"`)}},
			},
		}}
	}) // 1.31.4
	ctx := context.Background()
	eventually(t, timeout, "installed", func() error { return allExist(expectedObjects(t, mi, render.DefaultRevision)) })
	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	d, imageBefore := istiodImage(t, mi)
	if got := d.Spec.Template.Annotations["example.com/pinned"]; got != "1.31.4" {
		t.Fatalf("istiod's pod annotation example.com/pinned = %q, want the overlay's 1.31.4", got)
	}

	updateMI(t, mi.Name, func(got *meshv1alpha1.MeshInstall) {
		got.Spec.Version = "1.32.0"
	})
	waitCondition(t, mi.Name, meshv1alpha1.ConditionStalled, metav1.ConditionTrue, meshv1alpha1.ReasonOverlayNotApplicable)
	c := condition(t, mi.Name, meshv1alpha1.ConditionStalled)
	for _, want := range []string{`spec.overlays[0]: Invalid value: "Deployment istiod"`, "cannot patch Deployment " + mi.Spec.Namespace + "/istiod"} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("Stalled message %q does not say %q", c.Message, want)
		}
	}
	time.Sleep(time.Second) // give a wrong apply the chance to happen
	if _, img := istiodImage(t, mi); img != imageBefore {
		t.Errorf("istiod image changed to %s although the pass was refused", img)
	}
	meshConfig := &corev1.ConfigMap{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.MeshConfigMapName(render.DefaultRevision)}, meshConfig); err != nil {
		t.Fatal(err)
	}
	if v := meshConfig.Labels[render.LabelVersion]; v != "1.31.4" {
		t.Errorf("the mesh ConfigMap was applied for %s although the pass was refused", v)
	}
}
