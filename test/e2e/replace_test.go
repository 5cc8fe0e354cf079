package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// TestAMeshInstallReplacedWhileWorkloadsRun deletes a MeshInstall at 1.32.0
// while its workloads keep running, and applies another at 1.31.4 with the
// canary strategy right away: it installs at once (the control plane
// namespace is kept, not terminating), 1.31.4 is routed to with no revision
// re-created from the pods' stamps and no canary, and the Automatic rollout
// moves the old pods onto it.
func TestAMeshInstallReplacedWhileWorkloadsRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	ctx := context.Background()
	const apps = 4
	mesh := func(version string, mode meshv1alpha1.RolloutMode) *meshv1alpha1.MeshInstall {
		mi := sample(t)
		mi.Spec.Version = version
		mi.Spec.Gateways = nil
		mi.Spec.Profile = meshv1alpha1.ProfileMinimal // the control plane only
		mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{Type: meshv1alpha1.UpdateStrategyCanary,
			Canary: &meshv1alpha1.CanaryStrategy{Steps: []int32{50, 100}, StepInterval: &metav1.Duration{Duration: time.Hour}}}
		mi.Spec.DataPlane.Rollout.Mode = mode
		return mi
	}
	onRevision := func(rev string) func() error {
		return func() error {
			for i := range apps {
				pods := e.podsOf(t, appsNS, workloadName(i))
				if len(pods) != 1 {
					return fmt.Errorf("%s has %d pods", workloadName(i), len(pods))
				}
				if got := pods[0].Annotations[inject.AnnotationRevision]; got != rev || !podReady(&pods[0]) {
					return fmt.Errorf("pod %s on %q (ready %t), want %s", pods[0].Name, got, podReady(&pods[0]), rev)
				}
			}
			return nil
		}
	}

	old := mesh(canaryVer, meshv1alpha1.RolloutManual)
	if err := e.k8s.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	e.waitReady(t, old.Name, installTimeout)
	e.ensureNamespace(t, appsNS, map[string]string{"istio-injection": "enabled"})
	for i := range apps {
		if err := e.k8s.Create(ctx, app(appsNS, workloadName(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 90*time.Second, "workloads injected by "+canaryRev, onRevision(canaryRev))

	if err := e.k8s.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the MeshInstall deleted", func() error {
		if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(old), &meshv1alpha1.MeshInstall{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	})
	ns := &corev1.Namespace{}
	if err := e.k8s.Get(ctx, client.ObjectKey{Name: old.Spec.Namespace}, ns); err != nil || !ns.DeletionTimestamp.IsZero() {
		t.Fatalf("namespace %s was deleted with the MeshInstall (%v)", old.Spec.Namespace, err)
	}

	mi := mesh(stableVer, meshv1alpha1.RolloutAutomatic)
	if err := e.k8s.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	got := e.waitReady(t, mi.Name, installTimeout)
	if got.Status.ActiveRevision != stableRev || got.Status.Canary != nil || len(got.Status.Revisions) != 1 {
		t.Errorf("active %s, canary %+v, revisions %+v: want only %s, active", got.Status.ActiveRevision, got.Status.Canary, got.Status.Revisions, stableRev)
	}
	if r := e.routing(t, mi.Spec.Namespace); r.Active != stableRev || r.Canary != "" {
		t.Errorf("routing = %+v, want everything on %s", r, stableRev)
	}
	err := e.k8s.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.IstiodName(canaryRev)}, &appsv1.Deployment{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("istiod of the old revision %s exists again (%v)", canaryRev, err)
	}
	eventually(t, 2*time.Minute, "workloads moved to "+stableRev, onRevision(stableRev))
}
