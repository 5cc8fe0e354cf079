package webhookconfig

import (
	"net/url"
	"slices"
	"strings"

	"istio.io/api/annotation"
	"istio.io/api/label"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meshkeeper/meshkeeper/internal/certs"
)

// This file is the one definition of which pods are injected. The webhook
// configuration carries it for the API server (namespace and object
// selectors per entry, and the match conditions below in CEL); the injection
// handler applies Excluded to what reaches it; the inventory evaluates the
// same configuration with Matcher to count pods that should have a sidecar.
// The envtest suite checks that the API server and Matcher agree.

// Pod is what selection reads of a pod.
type Pod struct {
	Namespace   string
	Labels      map[string]string
	Annotations map[string]string
	HostNetwork bool
}

// Why a pod is never injected, whatever the webhook entries select.
const (
	ExcludedSystemNamespace = "system-namespace"
	ExcludedHostNetwork     = "host-network"
	ExcludedAlreadyInjected = "already-injected"
	ExcludedOptedOut        = "disabled"
)

// exclusion is one rule, in Go and as the webhook's CEL match condition.
// (The system namespaces are excluded by the entries' namespace selectors,
// which the API server evaluates before match conditions.)
type exclusion struct {
	reason string
	// condition is the match condition that lets through pods the rule does not exclude.
	condition admissionregistrationv1.MatchCondition
	excludes  func(Pod) bool
}

var exclusions = []exclusion{
	{
		// Already injected (by meshkeeper or Istio): the status annotation is there.
		reason: ExcludedAlreadyInjected,
		condition: admissionregistrationv1.MatchCondition{
			Name:       "not-already-injected",
			Expression: `!has(object.metadata.annotations) || !('` + annotation.SidecarStatus.Name + `' in object.metadata.annotations)`,
		},
		excludes: func(p Pod) bool { _, ok := p.Annotations[annotation.SidecarStatus.Name]; return ok },
	},
	{
		// The deprecated annotation opts out when no label decides. As in
		// Istio only "false" does: any other value falls back to the default.
		// (The label's own opt-out is in every entry's object selector.)
		reason: ExcludedOptedOut,
		condition: admissionregistrationv1.MatchCondition{
			Name: "not-opted-out-by-annotation",
			Expression: `(has(object.metadata.labels) && '` + label.SidecarInject.Name + `' in object.metadata.labels) || ` +
				`!has(object.metadata.annotations) || !('` + annotation.SidecarInject.Name + `' in object.metadata.annotations) || ` +
				`object.metadata.annotations['` + annotation.SidecarInject.Name + `'] != 'false'`,
		},
		excludes: func(p Pod) bool {
			v, ok := p.Labels[label.SidecarInject.Name]
			if !ok {
				v = p.Annotations[annotation.SidecarInject.Name]
			}
			return v == "false"
		},
	},
	{
		// Pods on the host network share the node's network stack; Istio never injects them.
		reason: ExcludedHostNetwork,
		condition: admissionregistrationv1.MatchCondition{
			Name:       "not-host-network",
			Expression: `!has(object.spec.hostNetwork) || !object.spec.hostNetwork`,
		},
		excludes: func(p Pod) bool { return p.HostNetwork },
	},
}

// Excluded says why a pod is never injected, or "" when the webhook
// entries decide.
func Excluded(p Pod) string { return excluded(p, "") }

// excluded is Excluded, disregarding the rule whose reason is ignore.
func excluded(p Pod, ignore string) string {
	if slices.Contains(AlwaysExcludedNamespaces, p.Namespace) {
		return ExcludedSystemNamespace
	}
	for _, e := range exclusions {
		if e.reason != ignore && e.excludes(p) {
			return e.reason
		}
	}
	return ""
}

// matchConditions keep pods that need nothing from ever reaching the webhook.
func matchConditions() []admissionregistrationv1.MatchCondition {
	out := make([]admissionregistrationv1.MatchCondition, len(exclusions))
	for i, e := range exclusions {
		out[i] = e.condition
	}
	return out
}

// Matcher decides, like the API server, which entry of an injector
// configuration a new pod would be sent to.
type Matcher struct {
	entries []compiledEntry
}

type compiledEntry struct {
	name     string
	path     string
	ns       labels.Selector
	object   labels.Selector
	caBundle []byte
}

// NewMatcher compiles an injector configuration.
func NewMatcher(mwc *admissionregistrationv1.MutatingWebhookConfiguration) (*Matcher, error) {
	m := &Matcher{}
	for _, w := range mwc.Webhooks {
		ns, err := compile(w.NamespaceSelector)
		if err != nil {
			return nil, err
		}
		obj, err := compile(w.ObjectSelector)
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
		m.entries = append(m.entries, compiledEntry{name: w.Name, path: path, ns: ns, object: obj, caBundle: w.ClientConfig.CABundle})
	}
	return m, nil
}

func compile(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

// Target returns the injector path a new pod would be sent to, or "" when
// it would not be injected. nsLabels are its namespace's labels.
func (m *Matcher) Target(nsLabels map[string]string, p Pod) string { return m.target(nsLabels, p, "") }

// Route returns the injector path a pod would be sent to were it created
// now, whether or not it carries a sidecar already: where its workload's
// next pods go.
func (m *Matcher) Route(nsLabels map[string]string, p Pod) string {
	return m.target(nsLabels, p, ExcludedAlreadyInjected)
}

func (m *Matcher) target(nsLabels map[string]string, p Pod, ignore string) string {
	return m.match(nsLabels, p, ignore).Path
}

// Match is the answer to "where would this pod go": the entry of the
// injector configuration that selects it and its path, or why it is
// never injected.
type Match struct {
	// Entry is the name of the webhook entry that selects the pod; "" when none does.
	Entry string
	// Path is that entry's injector path (TargetPath).
	Path string
	// Excluded says why the pod is never injected, whatever the entries
	// select (ExcludedSystemNamespace, ExcludedOptedOut, …); "" when the entries decide.
	Excluded string
}

// Explain is Route with its reasons: the entry a pod would be sent to were
// it created now, or the rule that excludes it. (kubectl meshkeeper
// check-inject prints it.)
func (m *Matcher) Explain(nsLabels map[string]string, p Pod) Match {
	return m.match(nsLabels, p, ExcludedAlreadyInjected)
}

func (m *Matcher) match(nsLabels map[string]string, p Pod, ignore string) Match {
	if why := excluded(p, ignore); why != "" {
		return Match{Excluded: why}
	}
	if m == nil {
		return Match{}
	}
	for _, e := range m.entries {
		if e.ns.Matches(labels.Set(nsLabels)) && e.object.Matches(labels.Set(p.Labels)) {
			return Match{Entry: e.name, Path: e.path}
		}
	}
	return Match{}
}

// Paths are the injector paths the configuration's entries call, each once, in order.
func (m *Matcher) Paths() []string {
	if m == nil {
		return nil
	}
	var out []string
	for _, e := range m.entries {
		if !slices.Contains(out, e.path) {
			out = append(out, e.path)
		}
	}
	return out
}

// Serves reports whether an entry of the configuration calls path.
func (m *Matcher) Serves(path string) bool {
	return m != nil && slices.ContainsFunc(m.entries, func(e compiledEntry) bool { return e.path == path })
}

// Trusts reports whether the API server can call path on a server whose
// certificate ca signed: an entry calls path, and the caBundle of every
// entry calling it holds ca (beside others: a bundle being rotated holds the
// old CA and the new).
func (m *Matcher) Trusts(path string, ca []byte) bool {
	if !m.Serves(path) {
		return false
	}
	for _, e := range m.entries {
		if e.path == path && !certs.Trusts(e.caBundle, ca) {
			return false
		}
	}
	return true
}

// ParseTargetPath splits an injector path made by TargetPath into "rev" or
// "tag" and a name.
func ParseTargetPath(path string) (kind, name string, ok bool) {
	rest, found := strings.CutPrefix(path, InjectPath+"/")
	if !found {
		return "", "", false
	}
	kind, name, ok = strings.Cut(rest, "/")
	if !ok || (kind != "rev" && kind != "tag") || name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	return kind, name, true
}
