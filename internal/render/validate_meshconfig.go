package render

import (
	"fmt"
	"maps"
	"slices"

	"istio.io/api/annotation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// builtinAccessLogProvider is Istio's built-in file access log provider
// (configured by accessLogFile).
const builtinAccessLogProvider = "envoy"

// validateMeshConfig refuses what the CRD schema cannot: selectors that are
// not label selectors, default providers that name no provider, locality
// weights that do not add up, capture defaults Istio's injector would
// refuse on every pod.
func validateMeshConfig(mi *meshv1alpha1.MeshInstall, spec *field.Path) field.ErrorList {
	mc := mi.Spec.MeshConfig
	path := spec.Child("meshConfig")
	var errs field.ErrorList
	for i := range mc.DiscoverySelectors {
		errs = append(errs, metav1validation.ValidateLabelSelector(&mc.DiscoverySelectors[i],
			metav1validation.LabelSelectorValidationOptions{}, path.Child("discoverySelectors").Index(i))...)
	}
	if dp := mc.DefaultProviders; dp != nil {
		names := map[string]bool{builtinAccessLogProvider: true}
		for _, e := range mc.ExtensionProviders {
			names[e.Name] = true
		}
		for i, p := range dp.AccessLogging {
			if !names[p] {
				errs = append(errs, field.NotFound(path.Child("defaultProviders", "accessLogging").Index(i),
					p+" (name envoy or a provider of spec.meshConfig.extensionProviders)"))
			}
		}
	}
	if l := mc.LocalityLbSetting; l != nil {
		for i, d := range l.Distribute {
			var sum int64
			for _, w := range d.To {
				sum += int64(w)
			}
			if sum != 100 {
				errs = append(errs, field.Invalid(path.Child("localityLbSetting", "distribute").Index(i).Child("to"), sum,
					fmt.Sprintf("the weights of the localities traffic from %s goes to must add up to 100", d.From)))
			}
		}
	}
	tc := trafficCapture(mi.Spec.Injection.TrafficCapture)
	if tc == nil {
		return errs
	}
	capture := spec.Child("injection", "trafficCapture")
	fields := map[string]string{
		annotation.SidecarTrafficIncludeOutboundIPRanges.Name: "includeOutboundIPRanges",
		annotation.SidecarTrafficExcludeOutboundIPRanges.Name: "excludeOutboundIPRanges",
		annotation.SidecarTrafficIncludeInboundPorts.Name:     "includeInboundPorts",
		annotation.SidecarTrafficExcludeInboundPorts.Name:     "excludeInboundPorts",
		annotation.SidecarTrafficIncludeOutboundPorts.Name:    "includeOutboundPorts",
		annotation.SidecarTrafficExcludeOutboundPorts.Name:    "excludeOutboundPorts",
	}
	found, values := tc.Validate(), tc.Annotations()
	for _, ann := range slices.Sorted(maps.Keys(found)) {
		errs = append(errs, field.Invalid(capture.Child(fields[ann]), values[ann], found[ann].Error()))
	}
	return errs
}
