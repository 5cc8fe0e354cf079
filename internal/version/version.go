// Package version holds the table of Istio versions meshkeeper supports, what
// differs between them, and Istio's upgrade rules (version skew, downgrades).
package version

import (
	"fmt"
	"maps"
	"strings"

	"github.com/Masterminds/semver/v3"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// Release is one supported Istio minor version and what meshkeeper does
// differently for it.
type Release struct {
	// Minor is the minor version, e.g. "1.31".
	Minor string
	// LatestPatch is the newest patch release of that minor meshkeeper knows.
	// Every patch from 0 to LatestPatch is supported.
	LatestPatch uint64
	// BehaviourChanges are istiod environment variables that keep the
	// behaviour of the previous minor. meshkeeper does not set them (users
	// opt in through spec.pilot.env); the MeshInstall validator names them in
	// a warning when an upgrade reaches this minor.
	//
	// What differs in the injected sidecar between minors (canonical-name
	// trimming, Prometheus scrape targets, istio-init's image, …) is decided
	// by internal/inject from the configuration's version.
	BehaviourChanges map[string]string
}

// releases is the table of supported minors, newest first. The behaviour
// changes come from Istio's compatibility profiles
// (manifests/helm-profiles/compatibility-version-*.yaml).
var releases = []Release{
	{
		Minor: "1.32", LatestPatch: 0,
	},
	{
		Minor: "1.31", LatestPatch: 4,
		BehaviourChanges: map[string]string{
			"PILOT_ENABLE_STRICT_GATEWAY_MERGING":   "false",
			"PILOT_SPAWN_UPSTREAM_SPAN_FOR_GATEWAY": "false",
			"PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS":   "false",
		},
	},
	{
		Minor: "1.30", LatestPatch: 8,
		BehaviourChanges: map[string]string{
			"PILOT_SIDECAR_PICK_BEST_SERVICE_NAMESPACE": "false",
		},
	},
}

// Supported returns a human-readable list of supported versions, e.g.
// "1.32.0, 1.31.0-1.31.4, 1.30.0-1.30.8".
func Supported() string {
	parts := make([]string, 0, len(releases))
	for _, r := range releases {
		if r.LatestPatch == 0 {
			parts = append(parts, r.Minor+".0")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s.0-%s.%d", r.Minor, r.Minor, r.LatestPatch))
	}
	return strings.Join(parts, ", ")
}

// Version is a parsed, supported Istio version.
type Version struct {
	semver  *semver.Version
	Release Release
}

// String returns X.Y.Z.
func (v Version) String() string { return v.semver.String() }

// Minor returns the minor number (31 for 1.31.4).
func (v Version) Minor() uint64 { return v.semver.Minor() }

// Revision returns the revision name of a canary of this version: dots become dashes (1-32-0).
func (v Version) Revision() string { return strings.ReplaceAll(v.semver.String(), ".", "-") }

// Compare returns -1, 0 or 1 as v is older than, the same as, or newer than o.
func (v Version) Compare(o Version) int { return v.semver.Compare(o.semver) }

// AtLeast reports whether v is at least major.minor.
func (v Version) AtLeast(major, minor uint64) bool {
	return v.semver.Major() > major || (v.semver.Major() == major && v.semver.Minor() >= minor)
}

// Parse parses an X.Y.Z version and checks it is supported.
func Parse(s string) (Version, error) {
	sv, err := semver.StrictNewVersion(s)
	if err != nil || sv.Prerelease() != "" || sv.Metadata() != "" {
		return Version{}, fmt.Errorf("version %q is not of the form X.Y.Z", s)
	}
	minor := fmt.Sprintf("%d.%d", sv.Major(), sv.Minor())
	for _, r := range releases {
		if r.Minor == minor && sv.Patch() <= r.LatestPatch {
			return Version{semver: sv, Release: r}, nil
		}
	}
	return Version{}, &UnsupportedError{Version: s}
}

// UnsupportedError says a version is not in the table.
type UnsupportedError struct{ Version string }

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("Istio version %s is not supported; supported versions: %s", e.Version, Supported())
}

// BehaviourChanges returns the istiod environment variables (with the value
// that keeps the older behaviour) of every minor an upgrade from one version
// to another reaches: what a user may pin in spec.pilot.env to upgrade without
// a change of behaviour. Empty for a downgrade or within one minor.
func BehaviourChanges(from, to Version) map[string]string {
	out := map[string]string{}
	for _, r := range releases {
		if m := semver.MustParse(r.Minor + ".0").Minor(); m > from.Minor() && m <= to.Minor() {
			maps.Copy(out, r.BehaviourChanges)
		}
	}
	return out
}

// Upgrade rules, as Istio documents them.
const (
	// MaxInPlaceMinorSkew is how many minors an in-place upgrade may move up.
	MaxInPlaceMinorSkew = 1
	// MaxCanaryMinorSkew is how far apart the two revisions of a canary may be.
	MaxCanaryMinorSkew = 2
)

// SkewError says an upgrade breaks a version rule. Rule names the rule for
// condition reasons.
type SkewError struct {
	Rule    string // meshv1alpha1.ReasonDowngradeNotAllowed or ReasonVersionSkewTooLarge
	Message string
}

func (e *SkewError) Error() string { return e.Message }

// CheckInPlace returns an error when moving from one version to another in
// place is not allowed: a downgrade, or more than one minor up.
func CheckInPlace(from, to Version) error {
	if to.Compare(from) < 0 {
		return &SkewError{Rule: meshv1alpha1.ReasonDowngradeNotAllowed, Message: fmt.Sprintf(
			"spec.version: in-place downgrade from %s to %s is not allowed; use updateStrategy.type Canary to move to an older version", from, to)}
	}
	if from.semver.Major() != to.semver.Major() || to.Minor()-from.Minor() > MaxInPlaceMinorSkew {
		return &SkewError{Rule: meshv1alpha1.ReasonVersionSkewTooLarge, Message: fmt.Sprintf(
			"spec.version: in-place upgrade from %s to %s skips more than %d minor version; upgrade one minor at a time or use updateStrategy.type Canary (at most %d minors)",
			from, to, MaxInPlaceMinorSkew, MaxCanaryMinorSkew)}
	}
	return nil
}

// CheckCanary returns an error when two versions may not run side by side as
// canary revisions: more than two minors apart.
func CheckCanary(from, to Version) error {
	d := int64(to.Minor()) - int64(from.Minor())
	if d < 0 {
		d = -d
	}
	if from.semver.Major() != to.semver.Major() || d > MaxCanaryMinorSkew {
		return &SkewError{Rule: meshv1alpha1.ReasonVersionSkewTooLarge, Message: fmt.Sprintf(
			"spec.version: canary from %s to %s spans more than %d minor versions", from, to, MaxCanaryMinorSkew)}
	}
	return nil
}

// NewestPatches returns the newest patch meshkeeper supports of each
// supported minor, newest first: where a component that must sit between
// two minors (the istio-cni node agent during a two-minor canary) goes.
func NewestPatches() []Version {
	out := make([]Version, 0, len(releases))
	for _, r := range releases {
		v, err := Parse(fmt.Sprintf("%s.%d", r.Minor, r.LatestPatch))
		if err == nil {
			out = append(out, v)
		}
	}
	return out
}

// MinorDistance is how many minors apart two versions are (0 for the same
// minor); a different major is further than any minor.
func MinorDistance(a, b Version) uint64 {
	if a.semver.Major() != b.semver.Major() {
		return ^uint64(0)
	}
	if a.Minor() > b.Minor() {
		return a.Minor() - b.Minor()
	}
	return b.Minor() - a.Minor()
}

// MaxCNIMinorSkew is how far, in minors, the istio-cni node agent may be
// from any istiod that serves pods: Istio supports CNI 1.x with istiod
// 1.x-1 to 1.x+1.
const MaxCNIMinorSkew = 1
