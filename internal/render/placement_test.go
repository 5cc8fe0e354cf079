package render

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// With autoscaling the gateway's replicas are the HPA's: the Deployment
// applied carries none (server-side apply then leaves them alone), and the
// PodDisruptionBudget follows the HPA's minimum.
func TestGatewayReplicasBelongToTheHPA(t *testing.T) {
	for _, tt := range []struct {
		name        string
		gw          meshv1alpha1.GatewaySpec
		hpa, pdb    bool
		replicasSet bool
	}{
		{"fixed replicas", meshv1alpha1.GatewaySpec{Name: "gw", Replicas: ptr.To(int32(3))}, false, true, true},
		{"one replica", meshv1alpha1.GatewaySpec{Name: "gw"}, false, false, true},
		{"autoscaling from one", meshv1alpha1.GatewaySpec{Name: "gw", Replicas: ptr.To(int32(3)),
			Autoscaling: &meshv1alpha1.AutoscalingSpec{Enabled: true}}, true, false, false},
		{"autoscaling from two", meshv1alpha1.GatewaySpec{Name: "gw",
			Autoscaling: &meshv1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: ptr.To(int32(2))}}, true, true, false},
		{"autoscaling disabled", meshv1alpha1.GatewaySpec{Name: "gw", Replicas: ptr.To(int32(2)),
			Autoscaling: &meshv1alpha1.AutoscalingSpec{Enabled: false, MinReplicas: ptr.To(int32(4))}}, false, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mi := meshInstall("1.32.0", withGateways(tt.gw))
			objs := mustShared(t, mi, mustRevision(t, DefaultRevision, "1.32.0"))
			d := find[*appsv1.Deployment](t, objs, "gw")
			if (d.Spec.Replicas != nil) != tt.replicasSet {
				t.Errorf("Deployment replicas = %v, want set: %v", d.Spec.Replicas, tt.replicasSet)
			}
			if got := has[*autoscalingv2.HorizontalPodAutoscaler](objs, "gw"); got != tt.hpa {
				t.Errorf("HPA rendered: %v, want %v", got, tt.hpa)
			}
			if got := has[*policyv1.PodDisruptionBudget](objs, "gw"); got != tt.pdb {
				t.Errorf("PodDisruptionBudget rendered: %v, want %v", got, tt.pdb)
			}
		})
	}
}

// The image variant is the tag's suffix of every image of its component:
// istiod's, and the proxy's the injector gives sidecars, istio-init and gateways.
func TestVariantSuffixesTheImageTag(t *testing.T) {
	mi := meshInstall("1.32.0", func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.Pilot.Variant = meshv1alpha1.ImageVariantDebug
		mi.Spec.Proxy.Variant = meshv1alpha1.ImageVariantDistroless
	})
	rev := mustRevision(t, DefaultRevision, "1.32.0")
	d := find[*appsv1.Deployment](t, mustControlPlane(t, mi, rev), IstiodName(DefaultRevision))
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "docker.io/istio/pilot:1.32.0-debug" {
		t.Errorf("istiod image = %s", img)
	}
	cfg, err := InjectionConfig(mi, rev)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ProxyImage != "docker.io/istio/proxyv2:1.32.0-distroless" {
		t.Errorf("proxy image = %s", cfg.ProxyImage)
	}
}

// Pod labels never reach a selector, and every selector still selects the
// pods it selected, whatever labels the user adds.
func TestPodLabelsLeaveSelectorsAlone(t *testing.T) {
	extra := map[string]string{"team": "platform", "version": "v2", "istio": "edge"}
	mi := meshInstall("1.32.0", withGateways(meshv1alpha1.GatewaySpec{Name: "gw",
		PodPlacement: meshv1alpha1.PodPlacement{PodLabels: extra}}), func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.Pilot.PodLabels = map[string]string{"team": "platform"}
	})
	rev := mustRevision(t, DefaultRevision, "1.32.0")
	objs := append(mustControlPlane(t, mi, rev), mustShared(t, mi, rev)...)
	for _, name := range []string{IstiodName(DefaultRevision), "gw"} {
		d := find[*appsv1.Deployment](t, objs, name)
		pod := labels.Set(d.Spec.Template.Labels)
		if pod["team"] != "platform" {
			t.Errorf("%s: pod labels %v lack the user's", name, pod)
		}
		if strings.Contains(labels.Set(d.Spec.Selector.MatchLabels).String(), "team") {
			t.Errorf("%s: selector %v carries a user label", name, d.Spec.Selector.MatchLabels)
		}
		if !labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(pod) {
			t.Errorf("%s: Deployment selector %v does not match its pods %v", name, d.Spec.Selector.MatchLabels, pod)
		}
		svc := find[*corev1.Service](t, objs, name)
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(pod) {
			t.Errorf("%s: Service selector %v does not match the pods %v", name, svc.Spec.Selector, pod)
		}
	}
}
