package meshinstall

import (
	"context"
	"fmt"
	"testing"

	"istio.io/api/label"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// TestRevisionTagConfigurationsFollowTheSpec: once the tags are routed,
// each tag (default and spec.revisionTags) has the configuration Istio's
// tools read, on the active revision; a tag removed from the spec loses
// it, one added gets it, and one deleted by hand (istioctl tag remove) is
// put back.
func TestRevisionTagConfigurationsFollowTheSpec(t *testing.T) {
	startManager(t, managerOpts{})
	mi := createSample(t, func(mi *meshv1alpha1.MeshInstall) { mi.Spec.RevisionTags = []string{"prod"} })
	ctx := context.Background()
	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded)

	tagConfig := func(tag string) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		err := env.Client.Get(ctx, client.ObjectKey{Name: webhookconfig.TagConfigurationName(tag, mi.Spec.Namespace)}, mwc)
		return mwc, err
	}
	onActive := func(tags ...string) func() error {
		return func() error {
			for _, tag := range tags {
				mwc, err := tagConfig(tag)
				if err != nil {
					return fmt.Errorf("tag %s: %w", tag, err)
				}
				if mwc.Labels[label.IoIstioTag.Name] != tag || mwc.Labels[label.IoIstioRev.Name] != render.DefaultRevision {
					return fmt.Errorf("tag %s: labels %v", tag, mwc.Labels)
				}
				if !metav1.IsControlledBy(mwc, getMI(t, mi.Name)) {
					return fmt.Errorf("tag %s: not owned by the MeshInstall", tag)
				}
			}
			return nil
		}
	}
	gone := func(tag string) func() error {
		return func() error {
			if _, err := tagConfig(tag); !apierrors.IsNotFound(err) {
				return fmt.Errorf("tag %s still configured (%v)", tag, err)
			}
			return nil
		}
	}
	eventually(t, timeout, "default and prod configured", onActive(revision.DefaultTag, "prod"))

	updateMI(t, mi.Name, func(got *meshv1alpha1.MeshInstall) {
		got.Spec.RevisionTags = []string{"stable"}
	})
	eventually(t, timeout, "stable configured", onActive(revision.DefaultTag, "stable"))
	eventually(t, timeout, "prod pruned", gone("prod"))

	stable, err := tagConfig("stable")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, stable); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "stable put back after a manual delete", func() error {
		if mwc, err := tagConfig("stable"); err != nil || mwc.UID == stable.UID {
			return fmt.Errorf("not re-created (%v)", err)
		}
		return onActive("stable")()
	})
}
