package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// moveGatewayBehindLoadBalancer puts a running mesh's ingress gateway
// behind a cloud load balancer as people run it in a cloud: a LoadBalancer
// Service configured by annotations, a fixed node port,
// externalTrafficPolicy Local and an HPA. The Service carries what was
// asked, the HPA targets the gateway Deployment, replicas are the HPA's (and
// anyone else's) to change, and a changed annotation reaches the Service.
// It leaves the gateway scaled to 3 by someone else; it returns the
// Deployment's key, for later steps to check that meshkeeper keeps those
// replicas.
func (e *env) moveGatewayBehindLoadBalancer(t *testing.T, name string) client.ObjectKey {
	t.Helper()
	ctx := context.Background()
	mi := e.getMeshInstall(t, name)
	if len(mi.Spec.Gateways) == 0 {
		t.Fatal("the mesh has no gateway to move")
	}
	const lbType = "service.beta.kubernetes.io/aws-load-balancer-type"
	gw := mi.Spec.Gateways[0]
	gw.ServiceType = corev1.ServiceTypeLoadBalancer
	gw.Ports = []meshv1alpha1.GatewayPort{
		{Name: "status-port", Port: 15021},
		{Name: "https", Port: 443, TargetPort: 8443, NodePort: 30443},
	}
	gw.Service = &meshv1alpha1.GatewayServiceSpec{
		Annotations:           map[string]string{lbType: "external"},
		ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
	}
	gw.Autoscaling = &meshv1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: ptr.To(int32(2)), MaxReplicas: ptr.To(int32(4))}
	gw.PodAnnotations = map[string]string{"example.com/revision": "1"}
	e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Gateways[0] = gw })
	e.waitReady(t, name, installTimeout)
	key := client.ObjectKey{Namespace: mi.Spec.Namespace, Name: gw.Name}

	svc := &corev1.Service{}
	if err := e.k8s.Get(ctx, key, svc); err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Annotations[lbType] != "external" ||
		svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("Service: type %s, annotations %v, externalTrafficPolicy %s; want LoadBalancer, %s=external, Local",
			svc.Spec.Type, svc.Annotations, svc.Spec.ExternalTrafficPolicy, lbType)
	}
	if i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "https" }); i < 0 ||
		svc.Spec.Ports[i].NodePort != 30443 || svc.Spec.Ports[i].TargetPort.IntValue() != 8443 {
		t.Errorf("Service ports = %+v, want https 443 -> 8443 on node port 30443", svc.Spec.Ports)
	}

	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	if err := e.k8s.Get(ctx, key, hpa); err != nil {
		t.Fatalf("the gateway's HPA: %v", err)
	}
	if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != gw.Name ||
		ptr.Deref(hpa.Spec.MinReplicas, 0) != 2 || hpa.Spec.MaxReplicas != 4 {
		t.Errorf("HPA targets %s %s with %v-%d replicas, want Deployment %s with 2-4",
			ref.Kind, ref.Name, hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas, gw.Name)
	}
	// The HPA (kube-controller-manager's) raises the Deployment to its
	// minimum; meshkeeper, which applies no replicas, lets it.
	deployment := &appsv1.Deployment{}
	eventually(t, 60*time.Second, "the HPA scales the gateway to 2 replicas", func() error {
		if err := e.k8s.Get(ctx, key, deployment); err != nil {
			return err
		}
		if r := ptr.Deref(deployment.Spec.Replicas, 0); r != 2 {
			return fmt.Errorf("replicas %d", r)
		}
		return nil
	})
	for _, f := range deployment.ManagedFields {
		if f.Manager == "meshkeeper" && f.FieldsV1 != nil && strings.Contains(string(f.FieldsV1.Raw), `"f:replicas"`) {
			t.Errorf("meshkeeper owns the gateway Deployment's replicas: %s", f.FieldsV1.Raw)
		}
	}

	// Someone else scales the gateway (as the HPA would on load); then a
	// change of the gateway spec makes meshkeeper apply the Deployment and
	// the Service again: the replicas stay, the annotations change.
	scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 3}}
	if err := e.k8s.SubResource("scale").Update(ctx, deployment, client.WithSubResourceBody(scale)); err != nil {
		t.Fatalf("scaling the gateway: %v", err)
	}
	e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) {
		m.Spec.Gateways[0].Service.Annotations[lbType] = "nlb"
		m.Spec.Gateways[0].PodAnnotations["example.com/revision"] = "2"
	})
	eventually(t, 60*time.Second, "the Service and the pod template carry the new annotations", func() error {
		if err := e.k8s.Get(ctx, key, svc); err != nil {
			return err
		}
		if err := e.k8s.Get(ctx, key, deployment); err != nil {
			return err
		}
		if v := svc.Annotations[lbType]; v != "nlb" {
			return fmt.Errorf("Service annotation %s=%q", lbType, v)
		}
		if v := deployment.Spec.Template.Annotations["example.com/revision"]; v != "2" {
			return fmt.Errorf("pod template annotation %q", v)
		}
		return nil
	})
	e.waitReady(t, name, installTimeout)
	if err := e.k8s.Get(ctx, key, deployment); err != nil {
		t.Fatal(err)
	}
	if r := ptr.Deref(deployment.Spec.Replicas, 0); r != 3 {
		t.Errorf("gateway replicas = %d after meshkeeper applied the Deployment again, want the 3 someone else set", r)
	}
	// Two replicas always run: the gateway has a PodDisruptionBudget.
	if err := e.k8s.Get(ctx, key, &policyv1.PodDisruptionBudget{}); err != nil {
		t.Errorf("the gateway's PodDisruptionBudget: %v", err)
	}
	return key
}

// checkGatewayReplicas checks that the gateway Deployment still has the
// replicas someone else set.
func (e *env) checkGatewayReplicas(t *testing.T, key client.ObjectKey, want int32) {
	t.Helper()
	deployment := &appsv1.Deployment{}
	if err := e.k8s.Get(context.Background(), key, deployment); err != nil {
		t.Fatal(err)
	}
	if r := ptr.Deref(deployment.Spec.Replicas, 0); r != want {
		t.Errorf("gateway replicas = %d, want the %d someone else set", r, want)
	}
}
