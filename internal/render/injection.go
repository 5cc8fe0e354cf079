package render

import (
	"cmp"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// Defaults of spec.proxy and spec.injection, as the CRD declares them, for
// MeshInstalls that were not defaulted by the API server (tests, dry runs).
const (
	defaultProxyLogLevel          = "warning"
	defaultProxyComponentLogLevel = "misc:error"
)

// InjectionConfig returns what meshkeeper's injector needs to inject a
// sidecar of the revision. ControlPlane embeds the same value, as JSON, in
// the revision's injection ConfigMap.
func InjectionConfig(mi *meshv1alpha1.MeshInstall, rev Revision) (*inject.Config, error) {
	if errs := validateRevision(rev, field.NewPath("revision")); len(errs) > 0 {
		return nil, invalid(errs)
	}
	return injectionConfig(mi, rev, profileFor(mi.Spec.Profile)), nil
}

func injectionConfig(mi *meshv1alpha1.MeshInstall, rev Revision, p profile) *inject.Config {
	spec := mi.Spec
	discovery := DiscoveryAddress(rev.Name, namespace(mi))
	cfg := &inject.Config{
		Revision:              rev.Name,
		Version:               rev.proxy().String(),
		Namespace:             namespace(mi),
		ProxyImage:            proxyImage(mi, rev),
		ImagePullPolicy:       spec.Proxy.ImagePullPolicy,
		ImagePullSecrets:      spec.Proxy.ImagePullSecrets,
		ClusterID:             cmp.Or(spec.Cluster.Name, defaultClusterName),
		Network:               spec.Cluster.Network,
		MeshID:                cmp.Or(spec.Cluster.MeshID, trustDomain(mi)),
		TrustDomain:           trustDomain(mi),
		DiscoveryAddress:      discovery,
		CAAddress:             discovery,
		NativeSidecars:        nativeSidecars(spec.Injection.NativeSidecars, rev),
		RewriteAppProbes:      ptr.Deref(spec.Injection.RewriteAppProbes, true),
		EnablePrometheusMerge: prometheusMerge(mi),
		ProxyResources:        resourcesOr(spec.Proxy.Resources, p.proxyResources),
		LogLevel:              string(cmp.Or(spec.Proxy.LogLevel, defaultProxyLogLevel)),
		ComponentLogLevel:     cmp.Or(spec.Proxy.ComponentLogLevel, defaultProxyComponentLogLevel),
		DefaultProxyConfig:    proxyDefaults(mi, rev),
		TrafficCapture:        trafficCapture(spec.Injection.TrafficCapture),
	}
	if spec.CNI.Enabled && rev.InjectCNI {
		cfg.CNI = &inject.CNI{Provider: string(cmp.Or(spec.CNI.Provider, meshv1alpha1.CNIProviderDefault))}
	}
	cfg.SeccompProfile = spec.Proxy.SeccompProfile.DeepCopy()
	if d := clusterDomain(mi); d != defaultClusterDomain {
		// Left out when it is the injector's default, so that a
		// configuration's hash (and its pods' up-to-date state) does not
		// change for nothing.
		cfg.ClusterDomain = d
	}
	return cfg
}

// nativeSidecars decides spec.injection.nativeSidecars: Auto is decided
// here, from the nodes the reconciler observed, so that the webhook reads
// a plain answer (Enabled or Disabled) and stays a pure function.
func nativeSidecars(mode meshv1alpha1.NativeSidecarMode, rev Revision) string {
	switch mode {
	case meshv1alpha1.NativeSidecarEnabled:
		return inject.NativeSidecarsEnabled
	case meshv1alpha1.NativeSidecarDisabled:
		return inject.NativeSidecarsDisabled
	}
	if rev.NodesWithoutNativeSidecars {
		return inject.NativeSidecarsDisabled
	}
	return inject.NativeSidecarsEnabled
}

// trafficCapture is nil when the mesh sets no default, for the same reason.
func trafficCapture(tc meshv1alpha1.TrafficCaptureSpec) *inject.TrafficCapture {
	if tc == (meshv1alpha1.TrafficCaptureSpec{}) {
		return nil
	}
	return &inject.TrafficCapture{
		IncludeOutboundIPRanges: tc.IncludeOutboundIPRanges,
		ExcludeOutboundIPRanges: tc.ExcludeOutboundIPRanges,
		IncludeInboundPorts:     tc.IncludeInboundPorts,
		ExcludeInboundPorts:     tc.ExcludeInboundPorts,
		IncludeOutboundPorts:    tc.IncludeOutboundPorts,
		ExcludeOutboundPorts:    tc.ExcludeOutboundPorts,
	}
}

// AnnotationInjectsCNI marks an injection ConfigMap whose configuration
// injects pods for the istio-cni node agent: the planner keeps a revision
// on that shape once it switched (revision.ObservedRevision.InjectsCNI).
const AnnotationInjectsCNI = "mesh.meshkeeper.dev/injects-for-cni"

// injectionConfigMap is meshkeeper-injector[-<rev>]. It replaces Istio's
// istio-sidecar-injector[-<rev>] ConfigMap, which holds Istio's injection
// templates: meshkeeper injects with typed Go instead and does not ship
// Istio's templates. (Without that ConfigMap istiod disables its own
// injector, which is what meshkeeper wants.)
func injectionConfigMap(mi *meshv1alpha1.MeshInstall, rev Revision, p profile) (*corev1.ConfigMap, error) {
	data, err := json.MarshalIndent(injectionConfig(mi, rev, p), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding injection config: %w", err)
	}
	cfg := injectionConfig(mi, rev, p)
	meta := objectMeta(InjectionConfigMapName(rev.Name), namespace(mi),
		with(istiodLabels(mi, rev), LabelInjectionConfig, "true", LabelVersion, rev.proxy().String()))
	meta.Annotations = map[string]string{inject.AnnotationConfigHash: cfg.Hash()}
	if cfg.CNI != nil {
		meta.Annotations[AnnotationInjectsCNI] = "true"
	}
	return &corev1.ConfigMap{
		TypeMeta:   typeMeta(corev1.SchemeGroupVersion, "ConfigMap"),
		ObjectMeta: meta,
		Data:       map[string]string{InjectionConfigKey: string(data)},
	}, nil
}

// RoutingConfigMap is where the revision tags point, as the reconciler
// decided; data is revision.Routing's. It is shared (no LabelRevision) and
// applied after the revisions it names.
func RoutingConfigMap(mi *meshv1alpha1.MeshInstall, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   typeMeta(corev1.SchemeGroupVersion, "ConfigMap"),
		ObjectMeta: objectMeta(RoutingConfigMapName, namespace(mi), with(baseLabels(mi), LabelRouting, "true")),
		Data:       data,
	}
}

func proxyImage(mi *meshv1alpha1.MeshInstall, rev Revision) string {
	if img := mi.Spec.Proxy.Image; img != "" {
		return img
	}
	return image(mi, "proxyv2", rev.proxy(), mi.Spec.Proxy.Variant)
}

func pilotImage(mi *meshv1alpha1.MeshInstall, rev Revision) string {
	if img := mi.Spec.Pilot.Image; img != "" {
		return img
	}
	return image(mi, "pilot", rev.Version, mi.Spec.Pilot.Variant)
}

// image is <hub>/<name>:<version>[-<variant>], as Istio's charts and
// injector build image references.
func image(mi *meshv1alpha1.MeshInstall, name string, v version.Version, variant meshv1alpha1.ImageVariant) string {
	ref := fmt.Sprintf("%s/%s:%s", cmp.Or(mi.Spec.Hub, defaultHub), name, v)
	if variant != "" {
		ref += "-" + string(variant)
	}
	return ref
}
