package render

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"istio.io/api/annotation"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// placePod applies spec.pilot's or spec.gateways[]'s placement to a pod
// template: the scheduling fields, and the user's pod labels and
// annotations over meshkeeper's but for the reserved keys (which Validate
// refuses).
func placePod(t *corev1.PodTemplateSpec, p meshv1alpha1.PodPlacement, reservedLabels, reservedAnnotations []string) {
	spec := &t.Spec
	if len(p.NodeSelector) > 0 {
		spec.NodeSelector = maps.Clone(p.NodeSelector)
	}
	spec.Tolerations = append(spec.Tolerations, p.Tolerations...)
	if p.Affinity != nil {
		spec.Affinity = p.Affinity.DeepCopy()
	}
	for i := range p.TopologySpreadConstraints {
		spec.TopologySpreadConstraints = append(spec.TopologySpreadConstraints, *p.TopologySpreadConstraints[i].DeepCopy())
	}
	spec.PriorityClassName = p.PriorityClassName
	t.Labels = overlay(t.Labels, p.PodLabels, reservedLabels)
	t.Annotations = overlay(t.Annotations, p.PodAnnotations, reservedAnnotations)
}

// overlay returns base with the user's entries set, but for the reserved keys.
func overlay(base, user map[string]string, reserved []string) map[string]string {
	for k, v := range user {
		if !slices.Contains(reserved, k) {
			base[k] = v
		}
	}
	return base
}

// pullSecrets are the named Secrets as a pod references them.
func pullSecrets(names []string) []corev1.LocalObjectReference {
	if len(names) == 0 {
		return nil
	}
	refs := make([]corev1.LocalObjectReference, len(names))
	for i, n := range names {
		refs[i] = corev1.LocalObjectReference{Name: n}
	}
	return refs
}

// reservedPilotPodLabels are the keys of istiod's pod labels: what its
// Deployment, Service and PodDisruptionBudget select on, and what
// meshkeeper and Istio stamp on it. spec.pilot.podLabels cannot set them.
var reservedPilotPodLabels = []string{LabelManagedBy, LabelMeshInstall, LabelRevision, LabelVersion,
	labelApp, labelIstio, labelName, labelPartOf, labelInstance, labelRev, labelSidecarInject,
	labelComponent, labelDataplaneMode}

// reservedPilotPodAnnotations keep istiod uninjected and restarting when its CA changes.
var reservedPilotPodAnnotations = []string{annotation.SidecarInject.Name, AnnotationCertificateAuthority}

// reservedGatewayPodAnnotations make the injector complete the gateway's proxy.
var reservedGatewayPodAnnotations = []string{annotation.InjectTemplates.Name, annotation.SidecarInject.Name}

// validatePlacement refuses what the schema lets through but the API server
// would refuse only when the Deployment is applied, and the pod labels and
// annotations meshkeeper owns.
func validatePlacement(p meshv1alpha1.PodPlacement, path *field.Path, reservedLabels, reservedAnnotations []string) field.ErrorList {
	errs := metav1validation.ValidateLabels(p.NodeSelector, path.Child("nodeSelector"))
	errs = append(errs, metav1validation.ValidateLabels(p.PodLabels, path.Child("podLabels"))...)
	for _, k := range slices.Sorted(maps.Keys(p.PodLabels)) {
		if slices.Contains(reservedLabels, k) {
			errs = append(errs, field.Forbidden(path.Child("podLabels").Key(k),
				"meshkeeper selects or stamps the pods with this label; it cannot be set"))
		}
	}
	errs = append(errs, apivalidation.ValidateAnnotations(p.PodAnnotations, path.Child("podAnnotations"))...)
	for _, k := range slices.Sorted(maps.Keys(p.PodAnnotations)) {
		if slices.Contains(reservedAnnotations, k) {
			errs = append(errs, field.Forbidden(path.Child("podAnnotations").Key(k),
				"meshkeeper sets this annotation on the pods; it cannot be overridden"))
		}
	}
	for i, t := range p.Tolerations {
		tp := path.Child("tolerations").Index(i)
		if t.Key != "" {
			for _, msg := range validation.IsQualifiedName(t.Key) {
				errs = append(errs, field.Invalid(tp.Child("key"), t.Key, msg))
			}
		}
		switch t.Operator {
		case corev1.TolerationOpExists:
			if t.Value != "" {
				errs = append(errs, field.Invalid(tp.Child("value"), t.Value, "must be empty when operator is Exists"))
			}
		case "", corev1.TolerationOpEqual:
			if t.Key == "" {
				errs = append(errs, field.Invalid(tp.Child("operator"), t.Operator, "must be Exists when key is empty"))
			}
		default:
			errs = append(errs, field.NotSupported(tp.Child("operator"), t.Operator, []corev1.TolerationOperator{corev1.TolerationOpEqual, corev1.TolerationOpExists}))
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			errs = append(errs, field.Invalid(tp.Child("effect"), t.Effect, "must be NoExecute when tolerationSeconds is set"))
		}
	}
	for i, c := range p.TopologySpreadConstraints {
		cp := path.Child("topologySpreadConstraints").Index(i)
		if c.MaxSkew < 1 {
			errs = append(errs, field.Invalid(cp.Child("maxSkew"), c.MaxSkew, "must be at least 1"))
		}
		if c.TopologyKey == "" {
			errs = append(errs, field.Required(cp.Child("topologyKey"), "e.g. topology.kubernetes.io/zone"))
		}
		if c.WhenUnsatisfiable != corev1.DoNotSchedule && c.WhenUnsatisfiable != corev1.ScheduleAnyway {
			errs = append(errs, field.NotSupported(cp.Child("whenUnsatisfiable"), c.WhenUnsatisfiable,
				[]corev1.UnsatisfiableConstraintAction{corev1.DoNotSchedule, corev1.ScheduleAnyway}))
		}
	}
	return errs
}

// validateGatewayService checks spec.gateways[].service and the node ports.
func validateGatewayService(gw meshv1alpha1.GatewaySpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	nodePorts := map[int32]bool{}
	for i, p := range gw.Ports {
		if p.NodePort == 0 {
			continue
		}
		if nodePorts[p.NodePort] {
			errs = append(errs, field.Duplicate(path.Child("ports").Index(i).Child("nodePort"), p.NodePort))
		}
		nodePorts[p.NodePort] = true
	}
	o := gw.Service
	if o == nil {
		return errs
	}
	sp := path.Child("service")
	errs = append(errs, metav1validation.ValidateLabels(o.Labels, sp.Child("labels"))...)
	for _, k := range slices.Sorted(maps.Keys(o.Labels)) {
		if slices.Contains(reservedGatewayLabels, k) {
			errs = append(errs, field.Forbidden(sp.Child("labels").Key(k), "set by meshkeeper; it cannot be overridden"))
		}
	}
	errs = append(errs, apivalidation.ValidateAnnotations(o.Annotations, sp.Child("annotations"))...)
	if ip := o.LoadBalancerIP; ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			errs = append(errs, field.Invalid(sp.Child("loadBalancerIP"), ip, "must be an IPv4 or IPv6 address"))
		}
	}
	for i, r := range o.LoadBalancerSourceRanges {
		if _, err := netip.ParsePrefix(strings.TrimSpace(r)); err != nil {
			errs = append(errs, field.Invalid(sp.Child("loadBalancerSourceRanges").Index(i), r, "must be a CIDR, e.g. 203.0.113.0/24"))
		}
	}
	return errs
}

// validateAutoscaling refuses a minimum above the maximum (the CRD refuses
// it too, once both are defaulted).
func validateAutoscaling(a *meshv1alpha1.AutoscalingSpec, path *field.Path) field.ErrorList {
	if a == nil || !a.Enabled {
		return nil
	}
	least, most := ptr.Deref(a.MinReplicas, defaultAutoscaleMin), ptr.Deref(a.MaxReplicas, defaultAutoscaleMax)
	if least > most {
		return field.ErrorList{field.Invalid(path.Child("minReplicas"), least, fmt.Sprintf("must not exceed maxReplicas (%d)", most))}
	}
	return nil
}
