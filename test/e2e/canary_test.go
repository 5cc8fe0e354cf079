package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/localcluster"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
)

const (
	appsNS     = "apps"
	workloads  = 20
	stableRev  = "1-31-4"
	canaryRev  = "1-32-0"
	stableVer  = "1.31.4"
	canaryVer  = "1.32.0"
	stepWait   = 8 * time.Second
	pruneGrace = 6 * time.Second
)

func workloadName(i int) string { return fmt.Sprintf("w-%02d", i) }

// TestCanaryUpgrade moves 20 workloads from one minor to the next, step by
// step, after first aborting a canary; pruning waits for the old revision to
// be unused, and a completed Job's pod does not count. istiod carries a
// spec.overlays patch on every revision throughout, and a patch that does
// not apply is refused (see overlays_test.go).
func TestCanaryUpgrade(t *testing.T) {
	runsLong(t, 105*time.Second)
	t.Parallel()
	e := newEnv(t, 3)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Version = stableVer
	mi.Spec.Gateways = nil
	mi.Spec.Profile = meshv1alpha1.ProfileMinimal // no gateway: the control plane only
	mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{
		Type: meshv1alpha1.UpdateStrategyCanary,
		Canary: &meshv1alpha1.CanaryStrategy{
			Steps: []int32{10, 50, 100}, StepInterval: &metav1.Duration{Duration: stepWait}, Paused: true,
		},
		InactiveRevisionDeletionGracePeriod: &metav1.Duration{Duration: pruneGrace},
	}
	mi.Spec.Overlays = istiodOverlay()
	name := mi.Name
	want := proxyWant{trustDomain: "cluster.local", strictMTLS: true}
	// One workload the 10% step moves to the canary and one it leaves,
	// checked with Istio's real agent against real istiod.
	var movedW, stayedW string
	for i := range workloads {
		if w := workloadName(i); revision.OnCanary(appsNS, w, 10) && movedW == "" {
			movedW = w
		} else if !revision.OnCanary(appsNS, w, 10) && stayedW == "" {
			stayedW = w
		}
	}
	var stableIstiod *localcluster.Istiod

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"install names the revision by version", func(t *testing.T) {
			if err := e.k8s.Create(ctx, mi); err != nil {
				t.Fatal(err)
			}
			if got := e.waitReady(t, name, installTimeout); got.Status.ActiveRevision != stableRev {
				t.Fatalf("active revision %q, want %s", got.Status.ActiveRevision, stableRev)
			}
			e.checkOverlaid(t, stableRev)
			stableIstiod = e.startIstiod(t, stableRev)
		}},
		{"an overlay that does not apply is refused with the webhook's message, and nothing changes", func(t *testing.T) {
			e.checkBadOverlayRefused(t, name, stableRev)
		}},
		{"20 workloads and a Job are injected by the stable revision", func(t *testing.T) {
			e.ensureNamespace(t, appsNS, map[string]string{"istio-injection": "enabled"})
			for i := range workloads {
				if err := e.k8s.Create(ctx, app(appsNS, workloadName(i), 1)); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.k8s.Create(ctx, job(appsNS, "batch")); err != nil {
				t.Fatal(err)
			}
			e.waitAssignment(t, func(string) string { return stableRev })
			eventually(t, 60*time.Second, "the Job's pod completed", func() error {
				var pods corev1.PodList
				if err := e.k8s.List(ctx, &pods, client.InNamespace(appsNS), client.MatchingLabels{"job-name": "batch"}); err != nil {
					return err
				}
				if len(pods.Items) != 1 || pods.Items[0].Status.Phase != corev1.PodSucceeded {
					return fmt.Errorf("job pods: %d", len(pods.Items))
				}
				if pods.Items[0].Annotations[inject.AnnotationRevision] != stableRev {
					return fmt.Errorf("job pod injected by %q", pods.Items[0].Annotations[inject.AnnotationRevision])
				}
				return nil
			})
		}},
		{"abort: a canary started and set back drains and is pruned", func(t *testing.T) {
			e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Version = canaryVer })
			e.waitCanary(t, canaryRev, 10)
			e.restartAll(t)
			e.waitAssignment(t, expectedAt(10))
			e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Version = stableVer })
			eventually(t, 30*time.Second, "canary aborted", func() error {
				st := e.getMeshInstall(t, name).Status
				if st.Canary != nil || st.ActiveRevision != stableRev {
					return fmt.Errorf("canary %+v active %s", st.Canary, st.ActiveRevision)
				}
				return nil
			})
			e.restartAll(t)
			e.waitAssignment(t, func(string) string { return stableRev })
			e.waitPruned(t, canaryRev)
		}},
		{"canary at 10%: exactly the workloads hashed under 10 move, and stay on restart", func(t *testing.T) {
			e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Version = canaryVer })
			e.waitCanary(t, canaryRev, 10)
			e.restartAll(t)
			e.waitAssignment(t, expectedAt(10))
			e.restartAll(t) // restarted pods keep their side
			e.waitAssignment(t, expectedAt(10))
			e.checkOverlaid(t, stableRev, canaryRev)
		}},
		{"a canary-assigned pod is served by the canary's real istiod, the others by the stable one", func(t *testing.T) {
			e.startIstiod(t, canaryRev)
			for _, w := range []string{movedW, stayedW} {
				if err := e.k8s.Create(ctx, service(appsNS, w)); err != nil {
					t.Fatal(err)
				}
			}
			moved, stayed := e.podsOf(t, appsNS, movedW), e.podsOf(t, appsNS, stayedW)
			e.checkProxies(t, want, &moved[0], &stayed[0])
		}},
		{"unpaused, the canary steps to 50% and is promoted at 100%", func(t *testing.T) {
			e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) { m.Spec.UpdateStrategy.Canary.Paused = false })
			e.waitCanary(t, canaryRev, 50)
			eventually(t, 3*stepWait, "promoted", func() error {
				st := e.getMeshInstall(t, name).Status
				if st.ActiveRevision != canaryRev || st.Canary != nil {
					return fmt.Errorf("active %s canary %+v", st.ActiveRevision, st.Canary)
				}
				return nil
			})
			st := e.getMeshInstall(t, name).Status
			if len(st.Revisions) != 2 || st.Revisions[1].Name != stableRev || st.Revisions[1].Role != meshv1alpha1.RevisionDraining {
				t.Errorf("revisions after promotion = %+v, want %s draining", st.Revisions, stableRev)
			}
		}},
		{"the old revision is kept while pods use it", func(t *testing.T) {
			time.Sleep(pruneGrace + 4*time.Second) // past the grace period, with pods still on it
			d := &appsv1.Deployment{}
			if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.IstiodName(stableRev)}, d); err != nil {
				t.Fatalf("istiod of %s removed while its pods run: %v", stableRev, err)
			}
		}},
		{"at 100% every new pod lands on the new revision, then the old one is pruned (the completed Job does not hold it)", func(t *testing.T) {
			e.restartAll(t)
			e.waitAssignment(t, func(string) string { return canaryRev })
			e.waitPruned(t, stableRev)
			got := e.waitReady(t, name, 30*time.Second)
			if got.Status.Version != canaryVer || len(got.Status.Revisions) != 1 {
				t.Errorf("status = %+v", got.Status)
			}
			e.checkOverlaid(t, canaryRev)
		}},
		{"after pruning no pod points at the removed revision, and a moved pod works with the new istiod", func(t *testing.T) {
			e.stopIstiod(stableIstiod) // its Deployment is gone
			var pods corev1.PodList
			if err := e.k8s.List(ctx, &pods, client.InNamespace(appsNS)); err != nil {
				t.Fatal(err)
			}
			for i := range pods.Items {
				p := &pods.Items[i]
				if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || p.DeletionTimestamp != nil {
					continue
				}
				if _, err := localcluster.IstiodOf(p, e.runningIstiods()); err != nil {
					t.Error(err)
				}
			}
			stayed := e.podsOf(t, appsNS, stayedW)
			e.checkProxies(t, want, &stayed[0])
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			t.FailNow()
		}
	}
}

// expectedAt says which revision each workload should be on at a canary weight.
func expectedAt(weight int32) func(string) string {
	return func(w string) string {
		if revision.OnCanary(appsNS, w, weight) {
			return canaryRev
		}
		return stableRev
	}
}

func (e *env) waitCanary(t *testing.T, rev string, weight int32) {
	t.Helper()
	eventually(t, 60*time.Second, fmt.Sprintf("canary %s at %d%% with its istiod ready", rev, weight), func() error {
		st := e.getMeshInstall(t, "default").Status
		if st.Canary == nil || st.Canary.Revision != rev || st.Canary.Weight != weight {
			return fmt.Errorf("canary %+v", st.Canary)
		}
		for _, r := range st.Revisions {
			if r.Name == rev && r.Ready {
				return nil
			}
		}
		return fmt.Errorf("canary istiod not ready: %+v", st.Revisions)
	})
}

// waitAssignment waits until every workload has exactly one running pod,
// injected by the revision want says.
//
// A workload counts once its Deployment has rolled out its latest template
// (a restart the Deployment controller has not acted on yet leaves the old
// pod alone, on the old side) and it runs exactly one pod.
func (e *env) waitAssignment(t *testing.T, want func(workload string) string) {
	t.Helper()
	eventually(t, 90*time.Second, "workloads on their expected revisions", func() error {
		for i := range workloads {
			w := workloadName(i)
			d := &appsv1.Deployment{}
			if err := e.k8s.Get(context.Background(), client.ObjectKey{Namespace: appsNS, Name: w}, d); err != nil {
				return err
			}
			if s := d.Status; s.ObservedGeneration != d.Generation || s.UpdatedReplicas != *d.Spec.Replicas || s.Replicas != *d.Spec.Replicas {
				return fmt.Errorf("%s has not rolled out generation %d (observed %d, %d updated of %d)", w, d.Generation, s.ObservedGeneration, s.UpdatedReplicas, s.Replicas)
			}
			var pods corev1.PodList
			if err := e.k8s.List(context.Background(), &pods, client.InNamespace(appsNS), client.MatchingLabels{"app": w}); err != nil {
				return err
			}
			if len(pods.Items) != 1 {
				return fmt.Errorf("%s has %d pods", w, len(pods.Items))
			}
			p := pods.Items[0]
			if got := p.Annotations[inject.AnnotationRevision]; got != want(w) || !podReady(&p) {
				return fmt.Errorf("%s: pod %s on %q (ready %v), want %s", w, p.Name, got, podReady(&p), want(w))
			}
		}
		return nil
	})
}

// restartAll restarts every workload, as kubectl rollout restart does.
func (e *env) restartAll(t *testing.T) {
	t.Helper()
	stamp := time.Now().Format(time.RFC3339Nano)
	for i := range workloads {
		d := &appsv1.Deployment{}
		key := client.ObjectKey{Namespace: appsNS, Name: workloadName(i)}
		if err := e.k8s.Get(context.Background(), key, d); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(d.DeepCopy())
		if d.Spec.Template.Annotations == nil {
			d.Spec.Template.Annotations = map[string]string{}
		}
		d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] = stamp
		if err := e.k8s.Patch(context.Background(), d, patch); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) waitPruned(t *testing.T, rev string) {
	t.Helper()
	eventually(t, 60*time.Second, "revision "+rev+" pruned", func() error {
		d := &appsv1.Deployment{}
		err := e.k8s.Get(context.Background(), client.ObjectKey{Namespace: "istio-system", Name: render.IstiodName(rev)}, d)
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("istiod-%s still there (%v)", rev, err)
		}
		for _, r := range e.getMeshInstall(t, "default").Status.Revisions {
			if r.Name == rev {
				return fmt.Errorf("status still lists %s", rev)
			}
		}
		return nil
	})
}

func job(namespace, name string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To(int32(0)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "batch", Image: "busybox:1.36", Command: []string{"true"}}},
			}},
		},
	}
}
