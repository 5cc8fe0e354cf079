// Package inventory counts the data plane from what the operator caches of
// pods (metadata, phase, host network, controller): which pods each revision
// injected, which of those run the revision's current injection
// configuration, and which pods should have a sidecar but have none. It
// evaluates the injector's own webhook entries (webhookconfig.Matcher), so
// "should be injected" means exactly what the API server would send.
package inventory

import (
	"istio.io/api/annotation"

	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// Pod is what the inventory reads of one running pod (Succeeded and Failed
// pods are never counted: the caller leaves them out).
type Pod struct {
	webhookconfig.Pod
	// Controlled is true when a controller (a ReplicaSet, StatefulSet, Job, …) owns the pod.
	Controlled bool
}

// RevisionCount is the data plane of one revision.
type RevisionCount struct {
	// Pods it injected.
	Pods int32
	// UpToDate carry the hash of the revision's current injection configuration.
	UpToDate int32
}

// Result is the whole data plane.
type Result struct {
	Injected, UpToDate, Outdated, Uninjected int32
	// Unmanaged are the outdated or uninjected pods without a controller:
	// only deleting and recreating them updates them.
	Unmanaged int32
	Revisions map[string]RevisionCount
	// Gone counts, by revision, the pods injected by a revision that no
	// longer exists (outdated too): after a MeshInstall was deleted and
	// another applied, or stamped by hand. They are reported, never a
	// reason to bring the revision back.
	Gone map[string]int32
}

// Count counts pods. namespaces maps a namespace name to its labels;
// currentHash maps each existing revision to the hash of its current
// injection configuration. matcher may be nil when no injector exists yet.
func Count(pods []Pod, namespaces map[string]map[string]string, matcher *webhookconfig.Matcher, currentHash map[string]string) Result {
	r := Result{Revisions: map[string]RevisionCount{}}
	for _, p := range pods {
		rev, stamped := p.Annotations[inject.AnnotationRevision]
		switch {
		case stamped:
			r.Injected++
			c := r.Revisions[rev]
			c.Pods++
			h, exists := currentHash[rev]
			switch {
			case exists && h == p.Annotations[inject.AnnotationConfigHash]:
				c.UpToDate++
				r.UpToDate++
			case !exists:
				if r.Gone == nil {
					r.Gone = map[string]int32{}
				}
				r.Gone[rev]++
				r.outdated(p)
			default:
				r.outdated(p)
			}
			r.Revisions[rev] = c
		case hasKey(p.Annotations, annotation.SidecarStatus.Name):
			// Injected by another injector (e.g. Istio's own): outdated from meshkeeper's view.
			r.Injected++
			r.outdated(p)
		case matcher.Target(namespaces[p.Namespace], p.Pod) != "":
			r.Uninjected++
			if !p.Controlled {
				r.Unmanaged++
			}
		}
	}
	return r
}

func (r *Result) outdated(p Pod) {
	r.Outdated++
	if !p.Controlled {
		r.Unmanaged++
	}
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}
