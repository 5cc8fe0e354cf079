package revision

import (
	"fmt"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// ObservedCNI is the istio-cni node agent as the reconciler observed it.
type ObservedCNI struct {
	// Version is the version its DaemonSet was rendered at; "" without one.
	Version string
	// Available is true when the DaemonSet runs its current template,
	// updated and available, on every node it is scheduled to and on every
	// node that runs meshed pods.
	Available bool
	// Reason says why it is not available, in words a person can act on.
	Reason string
}

// CNIVersion is the version the istio-cni node agent should run while the
// revisions of revisions are kept (every one of them may serve pods: a
// canary from its first step, a draining one until it is pruned). It stays
// within version.MaxCNIMinorSkew of each: the newest of their versions when
// that is close enough to all of them (an in-place upgrade: the agent moves
// with istiod), else the newest patch meshkeeper supports of a minor between
// them (a two-minor canary, 1.30 → 1.32: the agent waits on 1.31 until the
// old revision is pruned). ok is false when no supported version fits,
// which the canary guardrail (version.MaxCanaryMinorSkew) rules out, or when
// there is no revision.
func CNIVersion(revisions []Planned) (v version.Version, ok bool) {
	if len(revisions) == 0 {
		return version.Version{}, false
	}
	newest := revisions[0].Version
	for _, r := range revisions[1:] {
		if r.Version.Compare(newest) > 0 {
			newest = r.Version
		}
	}
	candidates := append([]version.Version{newest}, version.NewestPatches()...)
	for _, c := range candidates {
		if c.Compare(newest) <= 0 && withinCNISkew(c, revisions) {
			return c, true
		}
	}
	return version.Version{}, false
}

// withinCNISkew reports whether a node agent at v may serve every revision.
func withinCNISkew(v version.Version, revisions []Planned) bool {
	for _, r := range revisions {
		if version.MinorDistance(v, r.Version) > version.MaxCNIMinorSkew {
			return false
		}
	}
	return true
}

// cniReadyFor reports whether pods may be routed to a revision running v
// as far as the node agent goes: always without spec.cni (injection then
// expects no agent); with it, only while the agent is available on the
// node set and within one minor of v. why says what is awaited otherwise.
func cniReadyFor(mi *meshv1alpha1.MeshInstall, obs Observed, v version.Version) (ready bool, why string) {
	if !mi.Spec.CNI.Enabled {
		return true, ""
	}
	c := obs.CNI
	switch {
	case c == nil || c.Version == "":
		return false, "the istio-cni node agent is not installed yet"
	case !c.Available:
		return false, fmt.Sprintf("the istio-cni node agent (%s) is not available: %s", c.Version, c.Reason)
	}
	agent, err := version.Parse(c.Version)
	if err != nil {
		return false, fmt.Sprintf("the istio-cni node agent runs %s, which this operator does not support", c.Version)
	}
	if version.MinorDistance(agent, v) > version.MaxCNIMinorSkew {
		return false, fmt.Sprintf("the istio-cni node agent runs %s, more than %d minor from %s", agent, version.MaxCNIMinorSkew, v)
	}
	return true, ""
}

// readyAt reports whether pods may be routed to revision name running v:
// its istiod is available at v and the node agent is ready for v
// (cniReadyFor). why names what is awaited when only the agent is.
func readyAt(mi *meshv1alpha1.MeshInstall, obs Observed, name string, v version.Version) (ready bool, why string) {
	if !obs.Revisions[name].availableAt(v) {
		return false, ""
	}
	return cniReadyFor(mi, obs, v)
}
