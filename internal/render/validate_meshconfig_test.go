package render

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// What the CRD cannot check of the mesh configuration is refused by
// Validate (the validating webhook's check), naming the field.
func TestInvalidMeshConfigIsRefusedNamingTheField(t *testing.T) {
	tests := []struct {
		name  string
		opt   func(*meshv1alpha1.MeshInstall)
		field string
	}{
		{"discovery selector with a bad operator", func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.MeshConfig.DiscoverySelectors = []metav1.LabelSelector{{}, {MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Near"}}}}
		}, "spec.meshConfig.discoverySelectors[1].matchExpressions[0].operator"},
		{"default access log provider not declared", func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.MeshConfig.DefaultProviders = &meshv1alpha1.DefaultProviders{AccessLogging: []string{"envoy", "otel-als"}}
		}, "spec.meshConfig.defaultProviders.accessLogging[1]"},
		{"locality weights not adding up to 100", func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.MeshConfig.LocalityLbSetting = &meshv1alpha1.LocalityLoadBalancerSetting{Distribute: []meshv1alpha1.LocalityDistribute{
				{From: "a/*", To: map[string]int32{"a/*": 100}}, {From: "b/*", To: map[string]int32{"a/*": 50, "b/*": 40}}}}
		}, "spec.meshConfig.localityLbSetting.distribute[1].to"},
		{"capture of an IP range that is not a CIDR", func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Injection.TrafficCapture.IncludeOutboundIPRanges = ptr.To("10.0.0.0/8,10.1.2.3")
		}, "spec.injection.trafficCapture.includeOutboundIPRanges"},
		{"capture of a port that is not one", func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Injection.TrafficCapture.ExcludeOutboundPorts = "3306,99999"
		}, "spec.injection.trafficCapture.excludeOutboundPorts"},
		{"capture of inbound ports that are not ports", func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Injection.TrafficCapture.IncludeInboundPorts = ptr.To("http")
		}, "spec.injection.trafficCapture.includeInboundPorts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(meshInstall("1.32.0", tt.opt))
			var invalid *InvalidError
			if !errors.As(err, &invalid) {
				t.Fatalf("Validate = %v, want an *InvalidError", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
		})
	}
	// The same settings, valid, pass.
	ok := meshInstall("1.32.0", func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.MeshConfig.DiscoverySelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"mesh": "on"}}}
		mi.Spec.MeshConfig.DefaultProviders = &meshv1alpha1.DefaultProviders{AccessLogging: []string{"envoy"}}
		mi.Spec.MeshConfig.LocalityLbSetting = &meshv1alpha1.LocalityLoadBalancerSetting{Distribute: []meshv1alpha1.LocalityDistribute{
			{From: "b/*", To: map[string]int32{"a/*": 60, "b/*": 40}}}}
		mi.Spec.Injection.TrafficCapture = meshv1alpha1.TrafficCaptureSpec{
			IncludeOutboundIPRanges: ptr.To("10.0.0.0/8"), IncludeInboundPorts: ptr.To(""), ExcludeOutboundPorts: "3306",
		}
	})
	if err := Validate(ok); err != nil {
		t.Errorf("valid mesh config refused: %v", err)
	}
}
