package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/localcluster"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

// demoApps are the sample app's Deployments in namespace demo. Their
// workload hashes put catalog under 30%, frontend under 70% and the rest
// above, so each canary step moves a visible share.
var demoApps = []string{"frontend", "cart", "checkout", "catalog"}

// The demo's versions: installed, upgraded in place, then by canary.
const (
	installVersion = "1.30.8"
	inPlaceVersion = "1.31.4"
	canaryVersion  = "1.32.0"
)

func installCRD(ctx context.Context, c client.Client) error {
	return localcluster.InstallCRD(ctx, c, testenv.RepoRoot())
}

func ensureNamespace(ctx context.Context, c client.Client, name string, labels map[string]string) error {
	return localcluster.EnsureNamespace(ctx, c, name, labels)
}

type step = struct {
	name string
	run  func() error
}

// meshSteps are the user's story once the operator runs.
func meshSteps(ctx context.Context, cl func() client.Client, rc func() *rest.Config) []step {
	var mi *meshv1alpha1.MeshInstall
	next := inPlaceVersion
	return []step{
		{"Apply config/samples' MeshInstall (pinned to Istio " + installVersion + ") and wait until it is Ready", func() error {
			var err error
			if mi, err = testenv.Sample(); err != nil {
				return err
			}
			mi.Spec.Version = installVersion
			if err := cl().Create(ctx, mi); err != nil {
				return err
			}
			if err := waitReady(ctx, cl(), mi.Name, mi.Spec.Version, 2*time.Minute); err != nil {
				return err
			}
			fmt.Println("  $ kubectl get meshinstall")
			if err := printTable(ctx, rc(), "/apis/mesh.meshkeeper.dev/v1alpha1/meshinstalls"); err != nil {
				return err
			}
			fmt.Printf("  $ kubectl get deploy -n %s\n", mi.Spec.Namespace)
			return printTable(ctx, rc(), "/apis/apps/v1/namespaces/"+mi.Spec.Namespace+"/deployments")
		}},
		{"Label namespace demo istio-injection=enabled and deploy a sample app (4 Deployments x 2 replicas)", func() error {
			if err := ensureNamespace(ctx, cl(), "demo", map[string]string{"istio-injection": "enabled"}); err != nil {
				return err
			}
			for _, name := range demoApps {
				if err := cl().Create(ctx, demoDeployment(name)); err != nil {
					return err
				}
			}
			if err := waitInjected(ctx, cl(), "demo", 2*len(demoApps), time.Minute); err != nil {
				return err
			}
			fmt.Println("  $ kubectl get pods -n demo   # 2/2: the app and istio-proxy")
			if err := printTable(ctx, rc(), "/api/v1/namespaces/demo/pods"); err != nil {
				return err
			}
			if err := waitDataPlane(ctx, cl(), mi.Name, func(dp meshv1alpha1.DataPlaneStatus) bool {
				return dp.UpToDatePods >= int32(2*len(demoApps)) && dp.OutdatedPods == 0
			}); err != nil {
				return err
			}
			fmt.Println("  $ kubectl get meshinstall   # every injected pod carries meshkeeper's stamp")
			return printTable(ctx, rc(), "/apis/mesh.meshkeeper.dev/v1alpha1/meshinstalls")
		}},
		{fmt.Sprintf("Upgrade in place to Istio %s with spec.dataPlane.rollout.mode Automatic (2 workloads at a time): istiod rolls first, then meshkeeper restarts the app itself", next), func() error {
			two := intstr.FromInt32(2)
			if err := updateMeshInstall(ctx, cl(), mi.Name, func(m *meshv1alpha1.MeshInstall) {
				m.Spec.Version = next
				m.Spec.DataPlane.Rollout = meshv1alpha1.DataPlaneRollout{Mode: meshv1alpha1.RolloutAutomatic, MaxConcurrent: &two}
			}); err != nil {
				return err
			}
			if err := waitReady(ctx, cl(), mi.Name, next, 2*time.Minute); err != nil {
				return err
			}
			d := &appsv1.Deployment{}
			if err := cl().Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.IstiodName(render.DefaultRevision)}, d); err != nil {
				return err
			}
			img := d.Spec.Template.Spec.Containers[0].Image
			if !strings.HasSuffix(img, ":"+next) {
				return fmt.Errorf("istiod runs %s, want %s", img, next)
			}
			fmt.Printf("  istiod image: %s (%d/%d replicas available)\n", img, d.Status.AvailableReplicas, *d.Spec.Replicas)
			if err := waitRolledOut(ctx, cl(), mi.Name, int32(len(demoApps))); err != nil {
				return err
			}
			if err := waitInjected(ctx, cl(), "demo", 2*len(demoApps), time.Minute); err != nil {
				return err
			}
			if err := printPodsByRevision(ctx, cl()); err != nil {
				return err
			}
			fmt.Println("  $ kubectl get meshinstall   # no pod was restarted by hand")
			return printTable(ctx, rc(), "/apis/mesh.meshkeeper.dev/v1alpha1/meshinstalls")
		}},
	}
}

// waitRolledOut waits until the data plane rollout has restarted at least
// done workloads and every injected pod is up to date, and prints it.
func waitRolledOut(ctx context.Context, c client.Client, name string, done int32) error {
	return poll(ctx, 2*time.Minute, "the data plane rollout", func() (bool, string, error) {
		mi := &meshv1alpha1.MeshInstall{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, mi); err != nil {
			return false, "", err
		}
		dp := mi.Status.DataPlane
		if dp == nil || dp.Rollout == nil || dp.Rollout.Phase != meshv1alpha1.RolloutIdle || dp.Rollout.Done < done || dp.OutdatedPods > 0 {
			return false, fmt.Sprintf("dataPlane %+v", dp), nil
		}
		c := meta.FindStatusCondition(mi.Status.Conditions, meshv1alpha1.ConditionWorkloadRollout)
		fmt.Printf("  meshkeeper restarted %d workloads onto the new proxy; WorkloadRollout=%s (%s): %s\n", dp.Rollout.Done, c.Status, c.Reason, c.Message)
		return true, "", nil
	})
}

func updateVersion(ctx context.Context, c client.Client, name, v string) error {
	for range 10 {
		mi := &meshv1alpha1.MeshInstall{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, mi); err != nil {
			return err
		}
		mi.Spec.Version = v
		if err := c.Update(ctx, mi); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("could not update spec.version")
}

// waitReady waits for Ready=True at the current generation with status.version v.
func waitReady(ctx context.Context, c client.Client, name, v string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		mi := &meshv1alpha1.MeshInstall{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, mi); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(mi.Status.Conditions, meshv1alpha1.ConditionReady)
		if ready != nil {
			msg := fmt.Sprintf("  … Ready=%s %s: %s", ready.Status, ready.Reason, ready.Message)
			if msg != last {
				fmt.Println(msg)
				last = msg
			}
			if ready.Status == metav1.ConditionTrue && mi.Status.ObservedGeneration == mi.Generation && mi.Status.Version == v {
				return nil
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("MeshInstall %s not Ready with version %s after %s (last: %s)", name, v, timeout, strings.TrimSpace(last))
}

// waitInjected waits for n running, ready pods in namespace, each with istio-proxy.
func waitInjected(ctx context.Context, c client.Client, namespace string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var problem string
	for time.Now().Before(deadline) {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(namespace)); err != nil {
			return err
		}
		problem = ""
		if len(pods.Items) != n {
			problem = fmt.Sprintf("%d pods, want %d", len(pods.Items), n)
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			switch {
			case !hasProxy(p):
				return fmt.Errorf("pod %s was not injected", p.Name)
			case p.Status.Phase != corev1.PodRunning || !ready(p):
				problem = fmt.Sprintf("pod %s is %s", p.Name, p.Status.Phase)
			}
		}
		if problem == "" {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("pods in %s: %s", namespace, problem)
}

func hasProxy(p *corev1.Pod) bool {
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.Name == "istio-proxy" {
			return true
		}
	}
	return false
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func demoDeployment(name string) *appsv1.Deployment {
	labels := map[string]string{"app": name, "version": "v1"}
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: name, Image: "ghcr.io/meshkeeper/demo-" + name + ":1.0",
					Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					ReadinessProbe: probe, LivenessProbe: probe,
				}}},
			},
		},
	}
}

func waitNodesReady(ctx context.Context, c client.Client, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var nodes corev1.NodeList
		if err := c.List(ctx, &nodes); err != nil {
			return err
		}
		readyNodes := 0
		for _, node := range nodes.Items {
			for _, cond := range node.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					readyNodes++
				}
			}
		}
		if readyNodes >= n {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("fewer than %d nodes Ready after %s", n, timeout)
}

// waitDataPlane waits until the MeshInstall's data plane counts satisfy ok.
func waitDataPlane(ctx context.Context, c client.Client, name string, ok func(meshv1alpha1.DataPlaneStatus) bool) error {
	deadline := time.Now().Add(time.Minute)
	var last meshv1alpha1.DataPlaneStatus
	for time.Now().Before(deadline) {
		mi := &meshv1alpha1.MeshInstall{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, mi); err != nil {
			return err
		}
		if mi.Status.DataPlane != nil {
			last = *mi.Status.DataPlane
			if ok(last) {
				return nil
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("data plane counts did not settle: %+v", last)
}

// restart does what kubectl rollout restart does: a new pod template annotation.
func restart(ctx context.Context, c client.Client, namespace, name string) error {
	d := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, d); err != nil {
		return err
	}
	patch := client.MergeFrom(d.DeepCopy())
	if d.Spec.Template.Annotations == nil {
		d.Spec.Template.Annotations = map[string]string{}
	}
	d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] = time.Now().Format(time.RFC3339)
	return c.Patch(ctx, d, patch)
}
