package meshinstall

import (
	"context"
	"fmt"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// TestAPodNotReadyIsDatedByItsCreation: the cached (trimmed) pods still
// say when they were created, and the observation keeps the oldest pod of
// a revision that is not Ready, which the canary's health judges against
// revision.PodStartGrace.
func TestAPodNotReadyIsDatedByItsCreation(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	pod := func(name string, age time.Duration, ready corev1.ConditionStatus) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, CreationTimestamp: metav1.NewTime(now.Add(-age)),
				Labels: map[string]string{inject.LabelInjectedBy: "1-32-0"}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}},
		}
		trimmed, err := TrimPod(p)
		if err != nil {
			t.Fatal(err)
		}
		return trimmed.(*corev1.Pod)
	}
	obs := meshedShop(t, now)
	mi := &meshv1alpha1.MeshInstall{Spec: meshv1alpha1.MeshInstallSpec{Namespace: "istio-system"}}
	for _, p := range []*corev1.Pod{
		pod("ready-old", time.Hour, corev1.ConditionTrue),
		pod("starting", 5*time.Second, corev1.ConditionFalse),
		pod("stuck", 2*time.Minute, corev1.ConditionFalse),
		pod("starting-too", 3*time.Second, corev1.ConditionUnknown),
	} {
		obs.pod(mi, p, map[string]string{})
	}
	got := obs.Revisions["1-32-0"]
	if got.Pods != 4 || got.PodsReady {
		t.Errorf("Pods %d, PodsReady %v; want 4 pods, not all Ready", got.Pods, got.PodsReady)
	}
	if want := now.Add(-2 * time.Minute); !got.OldestUnreadyPod.Equal(want) {
		t.Errorf("OldestUnreadyPod = %v, want %v (the stuck pod's creation)", got.OldestUnreadyPod, want)
	}
}

// meshedShop is an observation of revision 1-32-0, all its pods Ready so
// far, with namespace shop selecting it and namespace tenant outside the mesh.
func meshedShop(t *testing.T, now time.Time) *observation {
	t.Helper()
	matcher, err := webhookconfig.NewMatcher(webhookconfig.InjectorConfiguration(webhookconfig.Injector{Revisions: []string{"1-32-0"}}))
	if err != nil {
		t.Fatal(err)
	}
	return &observation{matcher: matcher, cni: cniObservation{readyNodes: map[string]bool{}, meshedNodes: map[string]bool{}},
		namespaces: map[string]map[string]string{"shop": {"istio.io/rev": "1-32-0"}, "tenant": {}},
		Observed:   revision.Observed{Now: now, Revisions: map[string]revision.ObservedRevision{"1-32-0": {PodsReady: true}}}}
}

// TestACopiedStampOutsideTheMeshHoldsNoCanary: a never-Ready pod whose
// stamp names the canary, in a namespace the injector does not serve, keeps
// the revision from being pruned (it is counted) but does not make the
// revision unhealthy, nor its node one the CNI node agent must run on: a
// tenant cannot hold an upgrade with a copied label.
func TestACopiedStampOutsideTheMeshHoldsNoCanary(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	obs := meshedShop(t, now)
	mi := &meshv1alpha1.MeshInstall{Spec: meshv1alpha1.MeshInstallSpec{Namespace: "istio-system"}}
	for _, p := range []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Labels: map[string]string{inject.LabelInjectedBy: "1-32-0"}},
			Spec:   corev1.PodSpec{NodeName: "node-a"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant", Name: "forged", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour)),
			Labels: map[string]string{inject.LabelInjectedBy: "1-32-0"}},
			Spec:   corev1.PodSpec{NodeName: "node-without-agent"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}},
	} {
		obs.pod(mi, p, map[string]string{})
	}
	got := obs.Revisions["1-32-0"]
	if got.Pods != 2 {
		t.Errorf("Pods %d, want 2: a stamped pod anywhere keeps its revision", got.Pods)
	}
	if !got.PodsReady || !got.OldestUnreadyPod.IsZero() {
		t.Errorf("PodsReady %v, OldestUnreadyPod %v: the copied stamp outside the mesh made the revision unhealthy", got.PodsReady, got.OldestUnreadyPod)
	}
	if !obs.cni.meshedNodes["node-a"] || obs.cni.meshedNodes["node-without-agent"] {
		t.Errorf("nodes the CNI node agent must run on: %v, want node-a only", obs.cni.meshedNodes)
	}
}

// TestAnUnreadyPodInTheMeshCountsAgainstItsRevision runs gather's observe
// on the manager's cache: a stamped pod that is not Ready counts against
// its revision's health once its namespace selects the mesh (the injector
// observed is read before the pods), and not while it lies outside.
func TestAnUnreadyPodInTheMeshCountsAgainstItsRevision(t *testing.T) {
	r := startManager(t, managerOpts{})
	ctx := context.Background()
	mi := createSample(t, nil)
	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))
	eventually(t, timeout, "the injector applied", func() error {
		return env.Client.Get(ctx, client.ObjectKey{Name: webhookconfig.InjectorName}, &admissionregistrationv1.MutatingWebhookConfiguration{})
	})
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("health-%d", testNamespaceSeq)}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, ns) })
	// Created before its namespace is labelled: envtest's API server cannot call the injector.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "starting", Labels: map[string]string{inject.LabelInjectedBy: render.DefaultRevision}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, pod, client.GracePeriodSeconds(0)) })
	health := func() (revision.ObservedRevision, error) {
		obs, err := r.observe(ctx, getMI(t, mi.Name))
		if err != nil {
			return revision.ObservedRevision{}, err
		}
		return obs.Revisions[render.DefaultRevision], nil
	}
	eventually(t, timeout, "the pod cached and counted", func() error {
		got, err := health()
		if err != nil || got.Pods == 0 {
			return fmt.Errorf("pods %d (%v)", got.Pods, err)
		}
		if !got.PodsReady {
			return fmt.Errorf("a stamped pod outside the mesh made the revision unhealthy")
		}
		return nil
	})
	patch := client.MergeFrom(ns.DeepCopy())
	ns.Labels = map[string]string{"istio-injection": "enabled"}
	if err := env.Client.Patch(ctx, ns, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "the unready pod in the mesh counted against its revision", func() error {
		got, err := health()
		if err != nil {
			return err
		}
		if got.PodsReady || got.OldestUnreadyPod.IsZero() {
			return fmt.Errorf("PodsReady %v, OldestUnreadyPod %v", got.PodsReady, got.OldestUnreadyPod)
		}
		return nil
	})
}
