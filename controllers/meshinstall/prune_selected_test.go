package meshinstall

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// canaryPastSelected installs 1.31.4, lets hold create what selects it,
// upgrades to 1.32.0 by a one-step canary and waits for the promotion:
// 1-31-4 is then inactive with no pod, and pruned unless something holds it.
func canaryPastSelected(t *testing.T, hold func(ctx context.Context)) (mi *meshv1alpha1.MeshInstall, cp, old string) {
	t.Helper()
	startManager(t, managerOpts{})
	mi = createSample(t, func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{Type: meshv1alpha1.UpdateStrategyCanary,
			Canary:                              &meshv1alpha1.CanaryStrategy{Steps: []int32{100}, StepInterval: &metav1.Duration{Duration: time.Second}},
			InactiveRevisionDeletionGracePeriod: &metav1.Duration{}}
	})
	ctx := context.Background()
	cp = mi.Spec.Namespace
	old = render.IstiodName("1-31-4")
	canary := render.IstiodName("1-32-0")
	eventually(t, timeout, "istiod of 1-31-4 applied", func() error {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: cp, Name: old}, &appsv1.Deployment{})
	})
	makeAvailable(t, cp, old)
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded)

	hold(ctx)
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
	return mi, cp, old
}

// TestARevisionANamespaceSelectsIsNotPruned upgrades by canary while an
// empty namespace (a CronJob's between runs, a workload scaled to zero)
// selects the old revision: no pod uses it, yet the pods the namespace
// gets next would match no injector entry without it. It is kept, the
// condition names the namespace, and relabelling lets it go.
func TestARevisionANamespaceSelectsIsNotPruned(t *testing.T) {
	ctx := context.Background()
	holder := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"istio.io/rev": "1-31-4"}}}
	mi, cp, old := canaryPastSelected(t, func(ctx context.Context) {
		holder.Name = fmt.Sprintf("cronjobs-%d", testNamespaceSeq)
		if err := env.Client.Create(ctx, holder); err != nil {
			t.Fatal(err)
		}
	})
	assertKept(t, mi.Name, cp, old, "namespace "+holder.Name+" selects it (istio.io/rev=1-31-4)")

	holder.Labels["istio.io/rev"] = "1-32-0"
	if err := env.Client.Update(ctx, holder); err != nil {
		t.Fatal(err)
	}
	assertPruned(t, cp, old)
}

// TestARevisionACronJobSelectsIsNotPruned: a CronJob whose template is
// labelled istio.io/rev=1-31-4, in a namespace that selects nothing, has
// no pod between runs, yet its next run is injected by 1-31-4. The
// revision is kept, the condition names the CronJob, and deleting the
// CronJob lets it go.
func TestARevisionACronJobSelectsIsNotPruned(t *testing.T) {
	ctx := context.Background()
	cj := &batchv1.CronJob{Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"istio.io/rev": "1-31-4", "app": "report"}},
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "report", Image: "busybox"}}}}}}}}
	mi, cp, old := canaryPastSelected(t, func(ctx context.Context) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("nightly-%d", testNamespaceSeq)}}
		if err := env.Client.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
		cj.Namespace, cj.Name = ns.Name, "report"
		if err := env.Client.Create(ctx, cj); err != nil {
			t.Fatal(err)
		}
	})
	assertKept(t, mi.Name, cp, old, "CronJob "+cj.Namespace+"/report's pod template selects it (istio.io/rev=1-31-4)")

	if err := env.Client.Delete(ctx, cj); err != nil {
		t.Fatal(err)
	}
	assertPruned(t, cp, old)
}

// assertKept waits for the condition that says why the inactive istiod
// old is kept (why), and checks it stays, pass after pass.
func assertKept(t *testing.T, mi, cp, old, why string) {
	t.Helper()
	want := "revision 1-31-4 kept: " + why
	waitCondition(t, mi, meshv1alpha1.ConditionReconciling, metav1.ConditionTrue, meshv1alpha1.ReasonPruningRevision)
	eventually(t, timeout, "the condition names what holds it", func() error {
		if c := condition(t, mi, meshv1alpha1.ConditionReconciling); !strings.Contains(c.Message, want) {
			return fmt.Errorf("Reconciling = %+v", c)
		}
		return nil
	})
	for range 3 { // past the (zero) grace period, on every pass
		time.Sleep(time.Second)
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: cp, Name: old}, &appsv1.Deployment{}); err != nil {
			t.Fatalf("istiod of 1-31-4, which %s: %v", why, err)
		}
	}
}

// assertPruned waits for the istiod old to be pruned.
func assertPruned(t *testing.T, cp, old string) {
	t.Helper()
	eventually(t, timeout, "1-31-4 pruned once nothing selects it", func() error {
		err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: cp, Name: old}, &appsv1.Deployment{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("istiod of 1-31-4 still there (%v)", err)
	})
}
