package translate

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// Migrate turns a translation into one that adopts the installation's
// revision (spec.migration) instead of installing beside nothing: the
// control plane runs in its own namespace, into, with the Canary strategy
// (so its revision is named for its version, never over the foreign
// istiod's names), and workloads are moved by meshkeeper (Automatic
// rollouts). The foreign control plane is kept (Keep) unless the user says
// otherwise. While the migration runs, namespaces labelled
// istio.io/rev=<revision> stay injected, so that gap is not reported.
func Migrate(r Result, in Installation, into string) (Result, error) {
	if into == "" || into == in.Istiod.Namespace {
		return Result{}, fmt.Errorf("the migration needs a control plane namespace of its own, not %q (the foreign istiod's)", in.Istiod.Namespace)
	}
	mi := r.MeshInstall.DeepCopy()
	mi.Spec.Namespace = into
	mi.Spec.UpdateStrategy.Type = meshv1alpha1.UpdateStrategyCanary
	mi.Spec.DataPlane.Rollout.Mode = meshv1alpha1.RolloutAutomatic
	mi.Spec.Migration = &meshv1alpha1.MigrationSpec{Revision: cmp.Or(in.Revision, "default"), Namespace: in.Istiod.Namespace,
		ForeignControlPlane: meshv1alpha1.ForeignControlPlaneKeep}
	gaps := slices.DeleteFunc(slices.Clone(r.Gaps), func(g Gap) bool { return strings.HasPrefix(g.Setting, "revision name ") })
	foreign := in.Istiod.Namespace
	gaps = append(gaps,
		Gap{Setting: "mesh CA of " + foreign, Why: fmt.Sprintf("meshkeeper's istiod in %s signs with its own CA unless %s holds a cacerts Secret: "+
			"copy the foreign CA there first (istio-ca-secret's or cacerts' PEMs as cacerts: ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem), "+
			"or migrated and unmigrated workloads will not trust each other's certificates", into, into)},
		Gap{Setting: "meshConfig.rootNamespace " + foreign, Why: fmt.Sprintf("meshkeeper's istiod reads mesh-wide policies (PeerAuthentication, "+
			"Sidecar, EnvoyFilter without a workload selector) from %s: copy those of %s there", into, foreign)})
	slices.SortStableFunc(gaps, func(a, b Gap) int { return strings.Compare(a.Setting, b.Setting) })
	return Result{MeshInstall: mi, Gaps: gaps}, nil
}
