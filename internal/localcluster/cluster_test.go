package localcluster

import (
	"context"
	"fmt"
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
// a busy 2-core machine running four clusters stalls it, and checks that the
// cluster then still does its work: a Deployment created afterwards gets a
// ReplicaSet, its pod is scheduled and kwok makes it Ready. A controller
// manager or scheduler that took part in leader election exited after 10 s
// without renewing its lease, and the cluster stopped there for good: the
// e2e suite's "istiod is not available yet" for 3 minutes (issue 21).
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

	etcd := componentPID(t, c, "etcd")
	if err := syscall.Kill(etcd, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Second)
	if err := syscall.Kill(etcd, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}

	labels := map[string]string{"app": "after-the-stall"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "after-the-stall"},
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
	deadline := time.Now().Add(time.Minute)
	for {
		_, err = cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for deadline = time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		got, err := cs.AppsV1().Deployments("default").Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			continue
		}
		if got.Status.AvailableReplicas == 1 {
			t.Logf("after the stall: %v", c.Restarts())
			return
		}
		last = fmt.Sprintf("%d of 1 replicas available", got.Status.AvailableReplicas)
	}
	t.Fatalf("the Deployment created after the stall: %s after 1m; restarts: %v", last, c.Restarts())
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
