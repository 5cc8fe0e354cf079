package meshinstall

import (
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psa "k8s.io/pod-security-admission/api"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	meshadmission "github.com/meshkeeper/meshkeeper/internal/admission"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// enforcedLevels are the meshed namespaces that enforce a Pod Security
// level the injection may fail (baseline or restricted), with their labels:
// what PodSecurityCompatible judges, and part of applyInputs (as name →
// level), so that a namespace labelled later is judged by a pass while
// other label changes of such a namespace start none.
func enforcedLevels(obs *observation) map[string]map[string]string {
	out := map[string]map[string]string{}
	for name, labels := range obs.namespaces {
		switch labels[psa.EnforceLevelLabel] {
		case string(psa.LevelBaseline), string(psa.LevelRestricted):
			if meshadmission.Meshed(labels) {
				out[name] = labels
			}
		}
	}
	return out
}

// enforcedLevelInputs is enforcedLevels as applyInputs hashes it.
func enforcedLevelInputs(obs *observation) map[string]string {
	out := map[string]string{}
	for name, labels := range enforcedLevels(obs) {
		out[name] = labels[psa.EnforceLevelLabel]
	}
	return out
}

// recordPodSecurity reports PodSecurityCompatible for the shape the active
// revision injects now, or drops it when no meshed namespace enforces a
// level. A configuration that cannot be rendered is judged by the pass
// that refuses it.
func (s *statusBuilder) recordPodSecurity(mi *meshv1alpha1.MeshInstall) {
	enforced := enforcedLevels(s.obs)
	if len(enforced) == 0 {
		meta.RemoveStatusCondition(&mi.Status.Conditions, meshv1alpha1.ConditionPodSecurityCompatible)
		return
	}
	a := s.plan.Active
	cfg, err := render.InjectionConfig(mi, render.Revision{Name: a.Name, Version: a.Version, ProxyVersion: a.ProxyVersion, InjectCNI: a.InjectCNI})
	if err != nil {
		return
	}
	c := metav1.Condition{Type: meshv1alpha1.ConditionPodSecurityCompatible, Status: metav1.ConditionTrue, ObservedGeneration: s.gen,
		Reason: meshv1alpha1.ReasonPodSecurityMet, Message: "pods injected by this mesh can pass the Pod Security level every meshed namespace enforces"}
	if gaps := meshadmission.PodSecurityGaps(cfg, enforced); len(gaps) > 0 {
		c.Status, c.Reason = metav1.ConditionFalse, meshv1alpha1.ReasonPodSecurityGap
		c.Message = strings.Join(gaps, "; ") + "; the injector refuses such pods"
	}
	meta.SetStatusCondition(&mi.Status.Conditions, c)
}
