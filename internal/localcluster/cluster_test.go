package localcluster

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// TestClusterOutlivesAStalledAPIServer stalls a cluster's etcd for 20 s, as
// a busy 2-core machine running four clusters stalls it, then kills its
// scheduler, and checks after each that the cluster still does its work: a
// Deployment created afterwards gets a ReplicaSet, its pod is scheduled and
// kwok makes it Ready. A controller manager or scheduler that took part in
// leader election exited after 10 s without renewing its lease (and a
// starting controller manager exits when the API server is not healthy
// soon enough); nothing started them again, and the cluster stopped there
// for good: the e2e suite's "istiod is not available yet" for 3 minutes
// (issue 21).
func TestClusterOutlivesAStalledAPIServer(t *testing.T) {
	tools, err := ToolsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := Create(ctx, tools, UniqueName("mk-stall"), t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete() })
	cfg, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("etcd stalled for 20 s", func(t *testing.T) {
		etcd := componentPID(t, c, "etcd")
		if err := syscall.Kill(etcd, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Second)
		if err := syscall.Kill(etcd, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		deploymentBecomesAvailable(t, c, cs, "after-the-stall")
	})
	t.Run("the scheduler killed", func(t *testing.T) {
		if err := syscall.Kill(componentPID(t, c, "kube-scheduler"), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deploymentBecomesAvailable(t, c, cs, "after-the-kill")
		if !slices.ContainsFunc(c.Restarts(), func(r Restart) bool { return r.Component == "kube-scheduler" && r.Err == nil }) {
			t.Errorf("restarts %v, want kube-scheduler's", c.Restarts())
		}
	})
}

// deploymentBecomesAvailable creates a one-replica Deployment and waits a
// minute for it to be available.
func deploymentBecomesAvailable(t *testing.T, c *Cluster, cs kubernetes.Interface, name string) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
			},
		},
	}
	// The API server itself takes a moment to reconnect to etcd.
	var err error
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		if _, err = cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		got, err := cs.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			continue
		}
		if got.Status.AvailableReplicas == 1 {
			return
		}
		last = fmt.Sprintf("%d of 1 replicas available", got.Status.AvailableReplicas)
	}
	t.Fatalf("Deployment %s: %s after 1m; restarts: %v", name, last, c.Restarts())
}

// componentPID is the process id of a component.
func componentPID(t *testing.T, c *Cluster, component string) int {
	t.Helper()
	pid, err := c.PID(component)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
