package render

import (
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// ControlPlane renders the objects of one control plane revision, in apply
// order: istiod's ServiceAccount, ClusterRoles (istiod, gateway controller,
// reader) and Role with their bindings, the mesh config ConfigMap
// istio[-<rev>], the injection ConfigMap meshkeeper-injector[-<rev>], the
// istiod Service and Deployment, an HPA when istiod autoscales, a
// PodDisruptionBudget when at least two replicas always run, and the
// revision's validation webhook istio-validator[-<rev>]-<ns>. Every object
// carries LabelRevision. It fails with an *InvalidError when mi or rev
// cannot be rendered.
func ControlPlane(mi *meshv1alpha1.MeshInstall, rev Revision) ([]client.Object, error) {
	if err := validateFor(mi, rev); err != nil {
		return nil, err
	}
	p := profileFor(mi.Spec.Profile)
	s := scalingFor(mi, p)

	objs := istiodRBAC(mi, rev)
	mesh, err := meshConfigMap(mi, rev, p)
	if err != nil {
		return nil, err
	}
	injection, err := injectionConfigMap(mi, rev, p)
	if err != nil {
		return nil, err
	}
	objs = append(objs, mesh, injection, istiodService(mi, rev), istiodDeployment(mi, rev, p, s))
	if s.autoscale {
		objs = append(objs, istiodHPA(mi, rev, s))
	}
	if s.least() > 1 {
		objs = append(objs, istiodPDB(mi, rev))
	}
	objs = append(objs, revisionValidator(mi, rev))
	return finish(objs), nil
}

// validateFor validates the spec and the revision to render.
func validateFor(mi *meshv1alpha1.MeshInstall, rev Revision) error {
	errs := validateSpec(mi)
	errs = append(errs, validateRevision(rev, field.NewPath("revision"))...)
	return invalid(errs)
}
