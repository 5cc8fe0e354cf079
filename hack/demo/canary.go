package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// canarySteps walk a canary upgrade: a second istiod, workloads moved step
// by step by meshkeeper's own restarts, promotion, and the old revision pruned.
func canarySteps(ctx context.Context, cl func() client.Client, rc func() *rest.Config) []step {
	const name = "default"
	canaryRev := mustRevision(canaryVersion)
	oldRev := render.DefaultRevision // the in-place revision
	stepAt := func(weight int32) step {
		return step{fmt.Sprintf("Canary at %d%%: meshkeeper restarts the workloads hashed under %d%% onto %s; the step waits for them", weight, weight, canaryRev), func() error {
			if err := waitCanary(ctx, cl(), name, canaryRev, weight); err != nil {
				return err
			}
			want := func(app string) string {
				if revision.OnCanary("demo", app, weight) {
					return canaryRev
				}
				return oldRev
			}
			if err := waitOnRevisions(ctx, cl(), want); err != nil {
				return err
			}
			return printPodsByRevision(ctx, cl())
		}}
	}
	return []step{
		{fmt.Sprintf("Switch to canary upgrades (steps 30%%, 70%%, 100%%, every 10s) and set spec.version to %s, with an istiod that asks for more CPU than any node has: the canary waits at 0%%", canaryVersion), func() error {
			err := updateMeshInstall(ctx, cl(), name, func(mi *meshv1alpha1.MeshInstall) {
				mi.Spec.Version = canaryVersion
				mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{
					Type: meshv1alpha1.UpdateStrategyCanary,
					Canary: &meshv1alpha1.CanaryStrategy{
						Steps: []int32{30, 70, 100}, StepInterval: &metav1.Duration{Duration: 10 * time.Second},
					},
					InactiveRevisionDeletionGracePeriod: &metav1.Duration{Duration: 10 * time.Second},
				}
				mi.Spec.Pilot.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64")}}
			})
			if err != nil {
				return err
			}
			if err := waitCanaryWaiting(ctx, cl(), name, canaryRev); err != nil {
				return err
			}
			for _, app := range demoApps {
				if err := restart(ctx, cl(), "demo", app); err != nil {
					return err
				}
			}
			if err := waitOnRevisions(ctx, cl(), func(string) string { return oldRev }); err != nil {
				return err
			}
			fmt.Println("  pods restarted by hand all stayed on", oldRev+": no workload is sent to an istiod that is not serving")
			return printPodsByRevision(ctx, cl())
		}},
		{"Give the canary's istiod requests that fit: once it is available, its first step starts", func() error {
			if err := updateMeshInstall(ctx, cl(), name, func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Pilot.Resources = nil }); err != nil {
				return err
			}
			if err := waitCanary(ctx, cl(), name, canaryRev, 30); err != nil {
				return err
			}
			fmt.Printf("  $ kubectl get deploy -n istio-system   # two istiods side by side\n")
			return printTable(ctx, rc(), "/apis/apps/v1/namespaces/istio-system/deployments")
		}},
		stepAt(30),
		stepAt(70),
		{"At 100% the canary is promoted: meshkeeper moves every remaining workload, and the old revision is pruned", func() error {
			if err := waitActive(ctx, cl(), name, canaryRev); err != nil {
				return err
			}
			if err := waitOnRevisions(ctx, cl(), func(string) string { return canaryRev }); err != nil {
				return err
			}
			if err := printPodsByRevision(ctx, cl()); err != nil {
				return err
			}
			if err := waitGone(ctx, cl(), "istio-system", render.IstiodName(oldRev), time.Minute); err != nil {
				return err
			}
			if err := waitReady(ctx, cl(), name, canaryVersion, time.Minute); err != nil {
				return err
			}
			fmt.Println("  $ kubectl get deploy -n istio-system   # the old istiod is gone")
			if err := printTable(ctx, rc(), "/apis/apps/v1/namespaces/istio-system/deployments"); err != nil {
				return err
			}
			fmt.Println("  $ kubectl get meshinstall")
			return printTable(ctx, rc(), "/apis/mesh.meshkeeper.dev/v1alpha1/meshinstalls")
		}},
	}
}

// updateMeshInstall changes the MeshInstall, retrying on conflict.
func updateMeshInstall(ctx context.Context, c client.Client, name string, change func(*meshv1alpha1.MeshInstall)) error {
	for range 10 {
		mi := &meshv1alpha1.MeshInstall{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, mi); err != nil {
			return err
		}
		change(mi)
		err := c.Update(ctx, mi)
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("updating MeshInstall %s: too many conflicts", name)
}

// waitCanaryWaiting waits until the canary exists at weight 0 and the
// MeshInstall says it waits for its istiod, and prints what it says.
func waitCanaryWaiting(ctx context.Context, c client.Client, name, rev string) error {
	return poll(ctx, 60*time.Second, "canary "+rev+" waiting for its istiod", func() (bool, string, error) {
		mi := &meshv1alpha1.MeshInstall{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, mi); err != nil {
			return false, "", err
		}
		up := meta.FindStatusCondition(mi.Status.Conditions, meshv1alpha1.ConditionUpgradeInProgress)
		if mi.Status.Canary == nil || mi.Status.Canary.Revision != rev || mi.Status.Canary.Weight != 0 || up == nil || !strings.Contains(up.Message, "Insufficient cpu") {
			return false, fmt.Sprintf("canary %+v, UpgradeInProgress %+v", mi.Status.Canary, up), nil
		}
		fmt.Printf("  canary %s receives 0%% of workloads\n  UpgradeInProgress=%s (%s): %s\n", rev, up.Status, up.Reason, up.Message)
		return true, "", nil
	})
}

func mustRevision(v string) string {
	parsed, err := version.Parse(v)
	if err != nil {
		panic(err)
	}
	return parsed.Revision()
}

func waitCanary(ctx context.Context, c client.Client, name, rev string, weight int32) error {
	return poll(ctx, 90*time.Second, fmt.Sprintf("canary %s at %d%%", rev, weight), func() (bool, string, error) {
		mi := &meshv1alpha1.MeshInstall{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, mi); err != nil {
			return false, "", err
		}
		st := mi.Status
		if st.Canary == nil || st.Canary.Revision != rev || st.Canary.Weight != weight {
			return false, fmt.Sprintf("canary %+v", st.Canary), nil
		}
		for _, r := range st.Revisions {
			if r.Name == rev && r.Ready {
				fmt.Printf("  canary %s receives %d%% of workloads; its istiod is ready\n", rev, weight)
				return true, "", nil
			}
		}
		return false, "canary istiod not ready", nil
	})
}

func waitActive(ctx context.Context, c client.Client, name, rev string) error {
	return poll(ctx, 90*time.Second, "promotion of "+rev, func() (bool, string, error) {
		mi := &meshv1alpha1.MeshInstall{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, mi); err != nil {
			return false, "", err
		}
		if mi.Status.ActiveRevision == rev && mi.Status.Canary == nil {
			fmt.Printf("  %s is now the active revision; the tags moved to it\n", rev)
			return true, "", nil
		}
		return false, fmt.Sprintf("active %s, canary %+v", mi.Status.ActiveRevision, mi.Status.Canary), nil
	})
}

// waitOnRevisions waits until each app's pods (2 per app) all run on want(app).
func waitOnRevisions(ctx context.Context, c client.Client, want func(app string) string) error {
	return poll(ctx, 90*time.Second, "pods on their revisions", func() (bool, string, error) {
		for _, app := range demoApps {
			var pods corev1.PodList
			if err := c.List(ctx, &pods, client.InNamespace("demo"), client.MatchingLabels{"app": app}); err != nil {
				return false, "", err
			}
			if len(pods.Items) != 2 {
				return false, fmt.Sprintf("%s has %d pods", app, len(pods.Items)), nil
			}
			for i := range pods.Items {
				p := &pods.Items[i]
				if got := p.Annotations[inject.AnnotationRevision]; got != want(app) || !ready(p) {
					return false, fmt.Sprintf("%s on %q, want %s", p.Name, got, want(app)), nil
				}
			}
		}
		return true, "", nil
	})
}

func printPodsByRevision(ctx context.Context, c client.Client) error {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace("demo")); err != nil {
		return err
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	fmt.Println("  $ kubectl get pods -n demo -L … (revision and proxy version stamped by meshkeeper)")
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(w, "  NAME\tPHASE\tREVISION\tPROXY")
	for _, p := range pods.Items {
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", p.Name, p.Status.Phase, p.Annotations[inject.AnnotationRevision], p.Annotations[inject.AnnotationProxyVersion])
	}
	return w.Flush()
}

func waitGone(ctx context.Context, c client.Client, namespace, name string, timeout time.Duration) error {
	return poll(ctx, timeout, "deployment "+name+" removed", func() (bool, string, error) {
		err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &appsv1.Deployment{})
		if apierrors.IsNotFound(err) {
			fmt.Printf("  %s removed: no running pod uses its revision any more\n", name)
			return true, "", nil
		}
		return false, "still there", err
	})
}

// poll checks every half second until done, an error, or the timeout.
func poll(ctx context.Context, timeout time.Duration, what string, check func() (bool, string, error)) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		done, state, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		last = state
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: not done after %s (%s)", what, timeout, last)
}
