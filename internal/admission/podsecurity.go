package admission

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	psa "k8s.io/pod-security-admission/api"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// Namespace labels that mesh a namespace (Istio's).
const (
	labelInjection = "istio-injection"
	labelRevision  = "istio.io/rev"
)

// maxNamedNamespaces bounds the namespaces a warning lists.
const maxNamedNamespaces = 5

// PodSecurityWarnings warns, for each Pod Security level that meshed
// namespaces enforce (pod-security.kubernetes.io/enforce), when the mesh's
// injection cannot satisfy it: the pods injected there would be refused
// (by the injector, naming the setting). namespaces are the cluster's
// namespaces that carry an enforce label. It judges the shape the mesh
// injects once its node agent is ready.
func PodSecurityWarnings(mi *meshv1alpha1.MeshInstall, namespaces []corev1.Namespace) []string {
	v, err := version.Parse(mi.Spec.Version)
	if err != nil {
		return nil
	}
	cfg, err := render.InjectionConfig(mi, render.Revision{Name: render.DefaultRevision, Version: v, InjectCNI: mi.Spec.CNI.Enabled})
	if err != nil {
		return nil
	}
	labels := make(map[string]map[string]string, len(namespaces))
	for _, ns := range namespaces {
		labels[ns.Name] = ns.Labels
	}
	return PodSecurityGaps(cfg, labels)
}

// PodSecurityGaps says, for each Pod Security level that meshed namespaces
// enforce, what in the injection configuration cfg makes the pods it
// injects fail it, naming the namespaces (the first few) and the settings;
// nil when every meshed namespace's level can be met. namespaces are
// namespace labels by name.
func PodSecurityGaps(cfg *inject.Config, namespaces map[string]map[string]string) []string {
	byLevel := map[string][]string{}
	for name, labels := range namespaces {
		if Meshed(labels) {
			level := labels[psa.EnforceLevelLabel]
			byLevel[level] = append(byLevel[level], name)
		}
	}
	var gaps []string
	for _, level := range []string{string(psa.LevelBaseline), string(psa.LevelRestricted)} {
		names := byLevel[level]
		settings := inject.PodSecurityGaps(cfg, level)
		if len(names) == 0 || len(settings) == 0 {
			continue
		}
		slices.Sort(names)
		listed := strings.Join(names[:min(len(names), maxNamedNamespaces)], ", ")
		if len(names) > maxNamedNamespaces {
			listed += fmt.Sprintf(" and %d more", len(names)-maxNamedNamespaces)
		}
		gaps = append(gaps, fmt.Sprintf("meshed namespaces enforce Pod Security %s (%s), which pods injected by this mesh cannot pass: %s",
			level, listed, strings.Join(settings, "; ")))
	}
	return gaps
}

// Meshed says whether a namespace's labels select a revision for its pods.
func Meshed(labels map[string]string) bool {
	if v, ok := labels[labelInjection]; ok {
		return v == "enabled"
	}
	_, ok := labels[labelRevision]
	return ok
}
