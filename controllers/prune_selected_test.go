package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// TestARevisionANamespaceSelectsIsNotPruned upgrades by canary while an
// empty namespace (a CronJob's between runs, a workload scaled to zero)
// selects the old revision: no pod uses it, yet the pods the namespace
// gets next would match no injector entry without it. It is kept, the
// condition names the namespace, and relabelling lets it go.
func TestARevisionANamespaceSelectsIsNotPruned(t *testing.T) {
	startManager(t, managerOpts{})
	mi := createSample(t, func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{Type: meshv1alpha1.UpdateStrategyCanary,
			Canary:                              &meshv1alpha1.CanaryStrategy{Steps: []int32{100}, StepInterval: &metav1.Duration{Duration: time.Second}},
			InactiveRevisionDeletionGracePeriod: &metav1.Duration{}}
	})
	ctx := context.Background()
	cp := mi.Spec.Namespace
	old, canary := render.IstiodName("1-31-4"), render.IstiodName("1-32-0")
	eventually(t, timeout, "istiod of 1-31-4 applied", func() error {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: cp, Name: old}, &appsv1.Deployment{})
	})
	makeAvailable(t, cp, old)
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded)

	holder := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cronjobs-%d", testNamespaceSeq),
		Labels: map[string]string{"istio.io/rev": "1-31-4"}}}
	if err := env.Client.Create(ctx, holder); err != nil {
		t.Fatal(err)
	}
	updateMI(t, mi.Name, func(got *meshv1alpha1.MeshInstall) {
		got.Spec.Version = "1.32.0"
	})
	eventually(t, timeout, "istiod of 1-32-0 applied", func() error {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: cp, Name: canary}, &appsv1.Deployment{})
	})
	makeAvailable(t, cp, canary)
	eventually(t, 2*timeout, "1-32-0 promoted", func() error {
		if a := getMI(t, mi.Name).Status.ActiveRevision; a != "1-32-0" {
			return fmt.Errorf("active revision %s", a)
		}
		return nil
	})
	want := "revision 1-31-4 kept: namespace " + holder.Name + " selects it (istio.io/rev=1-31-4)"
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReconciling, metav1.ConditionTrue, meshv1alpha1.ReasonPruningRevision)
	eventually(t, timeout, "the condition names the namespace", func() error {
		if c := condition(t, mi.Name, meshv1alpha1.ConditionReconciling); !strings.Contains(c.Message, want) {
			return fmt.Errorf("Reconciling = %+v", c)
		}
		return nil
	})
	for range 3 { // past the (zero) grace period, on every pass
		time.Sleep(time.Second)
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: cp, Name: old}, &appsv1.Deployment{}); err != nil {
			t.Fatalf("istiod of 1-31-4, which namespace %s selects: %v", holder.Name, err)
		}
	}

	holder.Labels["istio.io/rev"] = "1-32-0"
	if err := env.Client.Update(ctx, holder); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "1-31-4 pruned once nothing selects it", func() error {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: cp, Name: old}, &appsv1.Deployment{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("istiod of 1-31-4 still there (%v)", err)
	})
}
