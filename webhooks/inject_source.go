package webhooks

import (
	"fmt"
	"strings"

	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// Target is what the injector's URL path says: which revision's sidecar to
// inject (by revision or by tag) and Istio's multi-cluster overrides.
type Target struct {
	// Revision is rev/<revision>: inject this revision, canary or not.
	Revision string
	// Tag is tag/<tag>: inject the revision the tag points at, or, during a
	// canary, the revision the workload is assigned to. Empty when Revision
	// is set; ParseInjectPath sets the default tag when the path names neither.
	Tag string
	// ClusterID is Istio's cluster/<id>: overrides the revision's cluster.
	ClusterID string
	// Network is Istio's net/<network>: overrides the revision's network.
	Network string
}

// Workload identifies the workload a pod belongs to (namespace and owning
// workload, derived as Istio derives it), so that every pod of a workload
// is assigned the same revision during a canary.
type Workload = inject.Workload

// ConfigSource finds the injection configuration of a revision.
type ConfigSource interface {
	// Resolve returns the injection config for the webhook target and the
	// pod's workload (namespace + owning workload name, used by canaries to
	// assign all pods of a workload to the same revision). An error means
	// the configuration is not available (yet): the webhook answers with an
	// HTTP error and the API server applies the webhook's failurePolicy.
	Resolve(target Target, workload Workload) (*inject.Config, error)
}

// ParseInjectPath reads the injector's URL path: /inject, optionally
// followed by /<key>/<value> pairs, with keys cluster and net (Istio's) and
// rev or tag (meshkeeper's). As in Istio, "--slash--" in a value stands for
// "/". Without rev or tag the target is the default tag.
func ParseInjectPath(path string) (Target, error) {
	rest, ok := strings.CutPrefix(path, webhookconfig.InjectPath)
	if !ok || (rest != "" && rest[0] != '/') {
		return Target{}, fmt.Errorf("path %q is not under %s", path, webhookconfig.InjectPath)
	}
	rest = strings.Trim(rest, "/")
	var t Target
	for rest != "" {
		var key, value string
		key, rest, _ = strings.Cut(rest, "/")
		value, rest, _ = strings.Cut(rest, "/")
		if value == "" {
			return Target{}, fmt.Errorf("path %q: parameters must be /<key>/<value> pairs with a value", path)
		}
		value = strings.ReplaceAll(value, "--slash--", "/")
		var field *string
		switch key {
		case "rev":
			field = &t.Revision
		case "tag":
			field = &t.Tag
		case "cluster":
			field = &t.ClusterID
		case "net":
			field = &t.Network
		default:
			return Target{}, fmt.Errorf("path %q: unknown parameter %q (want rev, tag, cluster or net)", path, key)
		}
		if *field != "" {
			return Target{}, fmt.Errorf("path %q: %s given twice", path, key)
		}
		*field = value
	}
	switch {
	case t.Revision != "" && t.Tag != "":
		return Target{}, fmt.Errorf("path %q: give rev or tag, not both", path)
	case t.Revision == "" && t.Tag == "":
		t.Tag = revision.DefaultTag
	}
	return t, nil
}
