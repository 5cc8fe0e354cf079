package render

import (
	"istio.io/api/label"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// Labels meshkeeper puts on the objects it renders.
const (
	// LabelManagedBy is on every rendered object, with value ManagedBy.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is the value of LabelManagedBy.
	ManagedBy = "meshkeeper"
	// LabelMeshInstall is on every rendered object and names its MeshInstall.
	LabelMeshInstall = "mesh.meshkeeper.dev/meshinstall"
	// LabelRevision is on every per-revision object (ControlPlane) and names
	// its revision; shared objects never carry it, so the reconciler can
	// prune a revision by this label alone. (istio.io/rev is not enough:
	// shared objects such as the default validator carry it too.)
	LabelRevision = "mesh.meshkeeper.dev/revision"
	// LabelInjectionConfig marks, with value "true", the ConfigMaps that hold
	// a revision's inject.Config; the injection webhook caches them.
	LabelInjectionConfig = "mesh.meshkeeper.dev/injection-config"
	// LabelRouting marks, with value "true", the ConfigMap that says where
	// the revision tags point (RoutingConfigMapName); the injection webhook caches it.
	LabelRouting = "mesh.meshkeeper.dev/routing"
	// LabelGateway names the spec.gateways entry a gateway object belongs to.
	// It is the gateway Deployment's and Service's selector.
	LabelGateway = "mesh.meshkeeper.dev/gateway"
	// LabelVersion carries the Istio version of istiod, its configuration
	// and gateways (the chart's app.kubernetes.io/version).
	LabelVersion = "app.kubernetes.io/version"
)

// InjectionConfigKey is the key of the injection ConfigMap holding
// inject.Config as JSON.
const InjectionConfigKey = "config.json"

// Istio's own labels, as its charts set them. Those Istio defines in
// istio.io/api are taken from there.
const (
	labelApp       = "app"
	labelIstio     = "istio"
	labelName      = "app.kubernetes.io/name"
	labelPartOf    = "app.kubernetes.io/part-of"
	labelInstance  = "app.kubernetes.io/instance"
	partOfIstio    = "istio"
	componentPilot = "Pilot"
)

var (
	labelRev           = label.IoIstioRev.Name
	labelSidecarInject = label.SidecarInject.Name
	labelDataplaneMode = label.IoIstioDataplaneMode.Name
	labelComponent     = label.OperatorComponent.Name
	labelNetwork       = label.TopologyNetwork.Name
)

// baseLabels are on every rendered object.
func baseLabels(mi *meshv1alpha1.MeshInstall) map[string]string {
	return map[string]string{
		LabelManagedBy:   ManagedBy,
		LabelMeshInstall: mi.Name,
	}
}

// istioLabels are the chart's common labels (its "istio.labels" helper,
// without the Helm-specific ones) plus meshkeeper's base labels.
func istioLabels(mi *meshv1alpha1.MeshInstall, istioVersion string) map[string]string {
	l := baseLabels(mi)
	l[labelPartOf] = partOfIstio
	l[labelInstance] = mi.Name
	if istioVersion != "" {
		l[LabelVersion] = istioVersion
	}
	return l
}

// istiodLabels are on every object of a revision: Istio's labels for
// istiod's objects plus the revision labels.
func istiodLabels(mi *meshv1alpha1.MeshInstall, rev Revision) map[string]string {
	l := istioLabels(mi, rev.Version.String())
	l[labelApp] = "istiod"
	l[labelName] = "istiod"
	l[labelRev] = rev.Name
	l[LabelRevision] = rev.Name
	return l
}

// with returns l with the extra key/value pairs set (l is modified).
func with(l map[string]string, kv ...string) map[string]string {
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}
