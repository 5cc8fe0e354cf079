// Package inventory counts the data plane from pod and namespace metadata
// alone: which pods each revision injected, which of those run the
// revision's current injection configuration, and which pods should have a
// sidecar but have none. It evaluates the injector's own webhook entries, so
// "should be injected" means exactly what the API server would send.
package inventory

import (
	"net/url"

	"istio.io/api/annotation"
	"istio.io/api/label"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meshkeeper/meshkeeper/internal/inject"
)

// Pod is the metadata of one pod.
type Pod struct {
	Namespace   string
	Labels      map[string]string
	Annotations map[string]string
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
	Revisions                                map[string]RevisionCount
}

// Matcher decides, like the API server, which injector entry a pod matches.
type Matcher struct {
	entries []entry
}

type entry struct {
	path   string
	ns     labels.Selector
	object labels.Selector
}

// NewMatcher compiles the injector's webhook configuration.
func NewMatcher(mwc *admissionregistrationv1.MutatingWebhookConfiguration) (*Matcher, error) {
	m := &Matcher{}
	for _, w := range mwc.Webhooks {
		ns, err := selector(w.NamespaceSelector)
		if err != nil {
			return nil, err
		}
		obj, err := selector(w.ObjectSelector)
		if err != nil {
			return nil, err
		}
		path := ""
		switch {
		case w.ClientConfig.Service != nil && w.ClientConfig.Service.Path != nil:
			path = *w.ClientConfig.Service.Path
		case w.ClientConfig.URL != nil:
			u, err := url.Parse(*w.ClientConfig.URL)
			if err != nil {
				return nil, err
			}
			path = u.Path
		}
		m.entries = append(m.entries, entry{path: path, ns: ns, object: obj})
	}
	return m, nil
}

func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

// Target returns the injector path a new pod with this metadata would be
// sent to, or "" when it would not be injected. Like the webhook's match
// conditions, already-injected pods and pods opted out by annotation match
// nothing. (Host-network pods cannot be told from metadata.)
func (m *Matcher) Target(nsLabels map[string]string, p Pod) string {
	if _, injected := p.Annotations[annotation.SidecarStatus.Name]; injected {
		return ""
	}
	if _, hasLabel := p.Labels[label.SidecarInject.Name]; !hasLabel && p.Annotations[annotation.SidecarInject.Name] == "false" {
		return "" // as in Istio, only "false" opts out; other values fall back to the default
	}
	for _, e := range m.entries {
		if e.ns.Matches(labels.Set(nsLabels)) && e.object.Matches(labels.Set(p.Labels)) {
			return e.path
		}
	}
	return ""
}

// Count counts pods. namespaces maps a namespace name to its labels;
// currentHash maps each existing revision to the hash of its current
// injection configuration. matcher may be nil when no injector exists yet.
func Count(pods []Pod, namespaces map[string]map[string]string, matcher *Matcher, currentHash map[string]string) Result {
	r := Result{Revisions: map[string]RevisionCount{}}
	for _, p := range pods {
		rev, stamped := p.Annotations[inject.AnnotationRevision]
		if stamped {
			r.Injected++
			c := r.Revisions[rev]
			c.Pods++
			if h, ok := currentHash[rev]; ok && h == p.Annotations[inject.AnnotationConfigHash] {
				c.UpToDate++
				r.UpToDate++
			} else {
				r.Outdated++
			}
			r.Revisions[rev] = c
			continue
		}
		if _, injectedElsewhere := p.Annotations[annotation.SidecarStatus.Name]; injectedElsewhere {
			// Injected by another injector (e.g. Istio's own): outdated from meshkeeper's view.
			r.Injected++
			r.Outdated++
			continue
		}
		if matcher != nil && matcher.Target(namespaces[p.Namespace], p) != "" {
			r.Uninjected++
		}
	}
	return r
}
