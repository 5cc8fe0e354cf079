package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// restrictedNamespace enforces Pod Security restricted: the API server
// refuses, after injection, any pod that does not pass it.
const restrictedNamespace = "secure"

// cniSteps turns the istio-cni node agent on and shows injected pods
// admitted in a namespace that enforces Pod Security restricted.
func cniSteps(ctx context.Context, cl func() client.Client, rc func() *rest.Config) []step {
	return []step{
		{"Turn on spec.cni (Istio's CNI node agent) with spec.proxy.seccompProfile RuntimeDefault: injected pods are admitted in a namespace that enforces Pod Security restricted", func() error {
			var list meshv1alpha1.MeshInstallList
			if err := cl().List(ctx, &list); err != nil || len(list.Items) != 1 {
				return fmt.Errorf("want the demo's one MeshInstall: %d (%v)", len(list.Items), err)
			}
			mi := &list.Items[0]
			if err := updateMeshInstall(ctx, cl(), mi.Name, func(m *meshv1alpha1.MeshInstall) {
				m.Spec.CNI.Enabled = true
				m.Spec.Proxy.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
			}); err != nil {
				return err
			}
			if err := waitCNIReady(ctx, cl(), mi.Name, 2*time.Minute); err != nil {
				return err
			}
			fmt.Printf("  $ kubectl get daemonset -n %s\n", render.CNINamespace(mi))
			if err := printTable(ctx, rc(), "/apis/apps/v1/namespaces/"+render.CNINamespace(mi)+"/daemonsets"); err != nil {
				return err
			}
			if err := ensureNamespace(ctx, cl(), restrictedNamespace, map[string]string{
				"istio-injection": "enabled", "pod-security.kubernetes.io/enforce": "restricted"}); err != nil {
				return err
			}
			if err := cl().Create(ctx, restrictedDeployment("checkout")); err != nil {
				return err
			}
			if err := waitInjected(ctx, cl(), restrictedNamespace, 2, time.Minute); err != nil {
				return err
			}
			var pods corev1.PodList
			if err := cl().List(ctx, &pods, client.InNamespace(restrictedNamespace)); err != nil {
				return err
			}
			for _, p := range pods.Items {
				var inits []string
				for _, c := range p.Spec.InitContainers {
					inits = append(inits, c.Name)
				}
				if !slices.Contains(inits, "istio-validation") || slices.Contains(inits, "istio-init") {
					return fmt.Errorf("pod %s has init containers %v, want istio-validation and no istio-init", p.Name, inits)
				}
				fmt.Printf("  pod %s (namespace enforces restricted): init containers %v\n", p.Name, inits)
			}
			fmt.Printf("  $ kubectl get pods -n %s\n", restrictedNamespace)
			return printTable(ctx, rc(), "/api/v1/namespaces/"+restrictedNamespace+"/pods")
		}},
	}
}

// waitCNIReady waits for the MeshInstall's CNIReady condition.
func waitCNIReady(ctx context.Context, c client.Client, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		mi := &meshv1alpha1.MeshInstall{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, mi); err != nil {
			return err
		}
		cond := meta.FindStatusCondition(mi.Status.Conditions, meshv1alpha1.ConditionCNIReady)
		if cond != nil && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == mi.Generation {
			fmt.Printf("  CNIReady: %s\n", cond.Message)
			return nil
		}
		if cond != nil {
			last = cond.Reason + ": " + cond.Message
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("the istio-cni node agent not ready after %s (%s)", timeout, last)
}

// restrictedDeployment is an app written for Pod Security restricted.
func restrictedDeployment(name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: restrictedNamespace, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(1000)),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
					Containers: []corev1.Container{{
						Name: name, Image: "ghcr.io/meshkeeper/demo-" + name + ":1.0",
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
					}},
				},
			},
		},
	}
}
