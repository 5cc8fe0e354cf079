package inject

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/api/resource"
)

// InvalidError is a pod Istio's injector would also refuse: an annotation
// with a value it cannot use, or a user-supplied container that cannot be
// merged. The webhook refuses such pods with the error's message.
type InvalidError struct {
	// Annotation is the offending annotation, when an annotation is the cause.
	Annotation string
	// Field is the offending field of the pod otherwise (e.g. a container).
	Field string
	// Value is the offending value.
	Value string
	// Reason says what is wrong.
	Reason string
}

// Error names the annotation or field and says what is wrong with it.
func (e *InvalidError) Error() string {
	if e.Annotation != "" {
		return fmt.Sprintf("annotation %s: invalid value %q: %s", e.Annotation, e.Value, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Reason)
}

// IsInvalid reports whether err says the pod cannot be injected as it is
// (as opposed to an error of the configuration).
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}

func invalidAnnotation(name, value string, err error) *InvalidError {
	return &InvalidError{Annotation: name, Value: value, Reason: err.Error()}
}

// annotationValidators are the annotations Istio's injector validates, and how.
var annotationValidators = map[string]func(string) error{
	annInterceptionMode:  validateInterceptionMode,
	annStatusPort:        validatePort,
	annReadinessDelay:    validateInt32,
	annReadinessPeriod:   validateInt32,
	annReadinessFailures: validateInt32,
	annIncludeOutIPs:     validateIncludeCIDRs,
	annExcludeOutIPs:     validateCIDRs,
	annIncludeInPorts:    validateIncludePorts,
	annExcludeInPorts:    validatePorts,
	annExcludeOutPorts:   validatePorts,
	annIncludeOutPorts:   validatePorts,
	annExcludeIfaces:     validateInterfaces,
	annKubevirtIfaces:    validateInterfaces,
	annRerouteIfaces:     validateInterfaces,
	annMergeMetrics:      validateBool,
	annProxyConfig:       validateProxyConfigAnnotation,
	annProxyCPU:          validateQuantity,
	annProxyMemory:       validateQuantity,
	annProxyCPULimit:     validateQuantity,
	annProxyMemoryLimit:  validateQuantity,
	annTemplates:         validateTemplates,
	annUserVolume:        validateUserVolumes,
	annUserVolumeMount:   validateUserVolumeMounts,
}

// validateAnnotations returns one InvalidError per invalid annotation,
// sorted by name.
func validateAnnotations(annotations map[string]string) error {
	var errs []*InvalidError
	for name, value := range annotations {
		if v, ok := annotationValidators[name]; ok {
			if err := v(value); err != nil {
				errs = append(errs, invalidAnnotation(name, value, err))
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Annotation < errs[j].Annotation })
	if len(errs) == 1 {
		return errs[0]
	}
	return invalidErrors(errs)
}

// invalidErrors are several InvalidErrors.
type invalidErrors []*InvalidError

func (e invalidErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e invalidErrors) Unwrap() []error {
	errs := make([]error, len(e))
	for i, err := range e {
		errs[i] = err
	}
	return errs
}

func validateInterceptionMode(mode string) error {
	switch mode {
	case "REDIRECT", "TPROXY", "NONE":
		return nil
	}
	return errors.New("must be REDIRECT, TPROXY or NONE")
}

func validateInt32(value string) error {
	n, err := strconv.ParseUint(value, 10, 32)
	if err != nil || n > math.MaxInt32 {
		return errors.New("must be a non-negative 32-bit integer")
	}
	return nil
}

func validateBool(value string) error {
	if _, err := strconv.ParseBool(value); err != nil {
		return errors.New("must be true or false")
	}
	return nil
}

func validateQuantity(value string) error {
	for _, r := range value {
		if unicode.IsControl(r) {
			return errors.New("contains control characters")
		}
	}
	if _, err := resource.ParseQuantity(value); err != nil {
		return errors.New("must be a Kubernetes quantity such as 100m or 128Mi")
	}
	return nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	return int(p), nil
}

func validatePort(value string) error {
	_, err := parsePort(value)
	return err
}

// validatePorts accepts a comma-separated list of ports (or nothing).
func validatePorts(value string) error {
	if strings.TrimSpace(value) == "" {
		return nil
	}
	for _, p := range strings.Split(strings.TrimSpace(value), ",") {
		if _, err := parsePort(p); err != nil {
			return err
		}
	}
	return nil
}

func validateIncludePorts(value string) error {
	if value == "*" {
		return nil
	}
	return validatePorts(value)
}

// validateCIDRs accepts a comma-separated list of CIDRs (or nothing).
func validateCIDRs(value string) error {
	if value == "" {
		return nil
	}
	for _, c := range strings.Split(value, ",") {
		if _, err := netip.ParsePrefix(c); err != nil {
			return fmt.Errorf("%q is not a CIDR", c)
		}
	}
	return nil
}

func validateIncludeCIDRs(value string) error {
	if value == "*" {
		return nil
	}
	return validateCIDRs(value)
}

var interfaceName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.\-]*$`)

// validateInterfaces accepts a comma-separated list of Linux interface names.
func validateInterfaces(value string) error {
	if value == "" {
		return nil
	}
	for _, iface := range strings.Split(value, ",") {
		iface = strings.TrimSpace(iface)
		switch {
		case iface == "":
			return errors.New("empty interface name")
		case len(iface) > 15:
			return fmt.Errorf("interface name %q is longer than 15 characters", iface)
		case !interfaceName.MatchString(iface):
			return fmt.Errorf("interface name %q has invalid characters", iface)
		}
	}
	return nil
}

// validateTemplates accepts the templates meshkeeper implements.
func validateTemplates(value string) error {
	_, err := selectTemplates(value)
	return err
}

func validateUserVolumes(value string) error {
	_, err := parseUserVolumes(value)
	return err
}

func validateUserVolumeMounts(value string) error {
	_, err := parseUserVolumeMounts(value)
	return err
}
