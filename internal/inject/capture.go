package inject

import (
	"errors"
	"maps"
	"slices"
)

// Annotations returns the traffic.sidecar.istio.io annotation each set
// default stands for, with its value: what Validate checks, and what a pod
// annotation of the same name overrides.
func (tc TrafficCapture) Annotations() map[string]string {
	out := map[string]string{}
	if tc.IncludeOutboundIPRanges != nil {
		out[annIncludeOutIPs] = *tc.IncludeOutboundIPRanges
	}
	if tc.ExcludeOutboundIPRanges != "" {
		out[annExcludeOutIPs] = tc.ExcludeOutboundIPRanges
	}
	if tc.IncludeInboundPorts != nil {
		out[annIncludeInPorts] = *tc.IncludeInboundPorts
	}
	if tc.ExcludeInboundPorts != "" {
		out[annExcludeInPorts] = tc.ExcludeInboundPorts
	}
	if tc.IncludeOutboundPorts != "" {
		out[annIncludeOutPorts] = tc.IncludeOutboundPorts
	}
	if tc.ExcludeOutboundPorts != "" {
		out[annExcludeOutPorts] = tc.ExcludeOutboundPorts
	}
	return out
}

// Validate checks each default as Istio's injector checks the annotation it
// stands for, so that a mesh-wide default can never make every pod refused.
func (tc TrafficCapture) Validate() map[string]error {
	errs := map[string]error{}
	for name, v := range tc.Annotations() {
		if check := annotationValidators[name]; check != nil {
			if err := check(v); err != nil {
				errs[name] = err
			}
		}
	}
	return errs
}

// validateTrafficCapture is Validate as one error, for a Config.
func validateTrafficCapture(tc TrafficCapture) error {
	found, values := tc.Validate(), tc.Annotations()
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(found)) {
		errs = append(errs, invalidAnnotation(name+" (trafficCapture default)", values[name], found[name]))
	}
	return errors.Join(errs...)
}
