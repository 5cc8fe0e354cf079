package render

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// Validate returns an *InvalidError naming each field of mi that its schema
// and CEL rules accept but that cannot be rendered (or would be refused by
// the API server only halfway through applying): an unsupported
// spec.version, names that would collide, invalid environment variable or
// label names, requests above limits. ControlPlane calls it for every revision
// and the MeshInstall validating webhook (through revision) before a spec is stored.
func Validate(mi *meshv1alpha1.MeshInstall) error { return invalid(validateSpec(mi)) }

func validateSpec(mi *meshv1alpha1.MeshInstall) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if _, err := version.Parse(mi.Spec.Version); err != nil {
		errs = append(errs, field.Invalid(spec.Child("version"), mi.Spec.Version, err.Error()))
	}
	errs = append(errs, validatePilot(mi.Spec.Pilot, spec.Child("pilot"))...)
	errs = append(errs, validateResources(mi.Spec.Proxy.Resources, spec.Child("proxy", "resources"))...)
	metadata := spec.Child("meshConfig", "defaultConfig", "proxyMetadata")
	for _, k := range slices.Sorted(maps.Keys(mi.Spec.MeshConfig.DefaultConfig.ProxyMetadata)) {
		for _, msg := range validation.IsEnvVarName(k) {
			errs = append(errs, field.Invalid(metadata.Key(k), k, msg))
		}
	}
	errs = append(errs, validateMeshConfig(mi, spec)...)
	if CNIEnabled(mi) {
		errs = append(errs, validateCNI(mi)...)
	}
	for i, gw := range mi.Spec.Gateways {
		errs = append(errs, validateGateway(mi, gw, spec.Child("gateways").Index(i))...)
	}
	if _, moved := mi.Spec.Pilot.Env[envRootCADir]; moved && CertificateAuthorityOf(mi) != "" {
		errs = append(errs, field.Forbidden(spec.Child("pilot", "env").Key(envRootCADir),
			"istiod must read its plug-in CA from /etc/cacerts, where the cacerts Secret of spec.security.certificateAuthority is mounted"))
	}
	return errs
}

// envRootCADir is where istiod looks for its plug-in CA (default ./etc/cacerts from its working directory /).
const envRootCADir = "ROOT_CA_DIR"

func validatePilot(pilot meshv1alpha1.PilotSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, k := range slices.Sorted(maps.Keys(pilot.Env)) {
		for _, msg := range validation.IsEnvVarName(k) {
			errs = append(errs, field.Invalid(path.Child("env").Key(k), k, msg))
		}
		if slices.Contains(reservedPilotEnv, k) {
			errs = append(errs, field.Forbidden(path.Child("env").Key(k),
				"set by meshkeeper for each revision; it cannot be overridden"))
		}
	}
	errs = append(errs, validateAutoscaling(pilot.Autoscaling, path.Child("autoscaling"))...)
	errs = append(errs, validatePlacement(pilot.PodPlacement, path, reservedPilotPodLabels, reservedPilotPodAnnotations)...)
	return append(errs, validateResources(pilot.Resources, path.Child("resources"))...)
}

// collidesWithControlPlane reports whether a gateway in the control plane
// namespace would take the name of istiod's or the reader's objects.
func collidesWithControlPlane(name string) bool {
	return name == "istiod" || strings.HasPrefix(name, "istiod-") || name == readerServiceAccountName
}

func validateGateway(mi *meshv1alpha1.MeshInstall, gw meshv1alpha1.GatewaySpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if gatewayNamespace(mi, gw) == namespace(mi) && collidesWithControlPlane(gw.Name) {
		errs = append(errs, field.Invalid(path.Child("name"), gw.Name,
			"names istiod, istiod-* and "+readerServiceAccountName+" belong to the control plane in its namespace"))
	}
	errs = append(errs, metav1validation.ValidateLabels(gw.Labels, path.Child("labels"))...)
	for _, k := range slices.Sorted(maps.Keys(gw.Labels)) {
		if slices.Contains(reservedGatewayLabels, k) {
			errs = append(errs, field.Forbidden(path.Child("labels").Key(k), "set by meshkeeper; it cannot be overridden"))
		}
	}
	seen := map[string]bool{}
	for i, p := range gw.Ports {
		if seen[p.Name] {
			errs = append(errs, field.Duplicate(path.Child("ports").Index(i).Child("name"), p.Name))
		}
		seen[p.Name] = true
	}
	errs = append(errs, validateGatewayService(gw, path)...)
	errs = append(errs, validateAutoscaling(gw.Autoscaling, path.Child("autoscaling"))...)
	errs = append(errs, validatePlacement(gw.PodPlacement, path, reservedGatewayLabels, reservedGatewayPodAnnotations)...)
	return append(errs, validateResources(gw.Resources, path.Child("resources"))...)
}

// validateResources refuses a request above its limit, which the API server
// would refuse only when the Deployment is applied.
func validateResources(r *corev1.ResourceRequirements, path *field.Path) field.ErrorList {
	if r == nil {
		return nil
	}
	var errs field.ErrorList
	for _, name := range slices.Sorted(maps.Keys(r.Requests)) {
		req := r.Requests[name]
		if limit, ok := r.Limits[name]; ok && req.Cmp(limit) > 0 {
			errs = append(errs, field.Invalid(path.Child("requests").Key(string(name)), req.String(),
				fmt.Sprintf("must be less than or equal to the %s limit (%s)", name, limit.String())))
		}
	}
	return errs
}
