package meshinstall

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"istio.io/api/label"

	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/rollout"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// templateSelection is what a user's workload template says about injection.
type templateSelection struct {
	workload rollout.Key
	labels   map[string]string
}

// appendSelection adds a workload whose pod template names a revision.
func appendSelection(s []templateSelection, w rollout.Key, labels map[string]string) []templateSelection {
	if _, ok := labels[label.IoIstioRev.Name]; !ok {
		return s
	}
	return append(s, templateSelection{workload: w, labels: labels})
}

// revisionSelections says, by revision, what would still have new pods
// injected by it, as the injector selects (namespace labels first, a pod's
// own istio.io/rev only in a namespace with neither istio-injection nor
// istio.io/rev): namespaces labelled istio.io/rev=<revision>, or a tag
// that routes to it, and workload templates (CronJobs' and unfinished
// Jobs' too) labelled so. The control
// plane's own namespace is never injected but for gateways, which follow
// the active revision: the namespaces meshkeeper controls are left out.
func revisionSelections(namespaces map[string]map[string]string, templates []templateSelection, routing *revision.Routing, controlled map[string]bool) map[string][]string {
	resolve := func(name string) string {
		if routing != nil && slices.Contains(routing.Tags, name) {
			return routing.Active
		}
		return name
	}
	out := map[string][]string{}
	for _, ns := range slices.Sorted(maps.Keys(namespaces)) {
		l := namespaces[ns]
		rev, ok := l[label.IoIstioRev.Name]
		if !ok || controlled[ns] || l[webhookconfig.InjectionLabel] == "enabled" {
			continue
		}
		target := resolve(rev)
		out[target] = append(out[target], fmt.Sprintf("namespace %s selects it (%s=%s)", ns, label.IoIstioRev.Name, rev))
	}
	slices.SortFunc(templates, func(a, b templateSelection) int { return strings.Compare(a.workload.String(), b.workload.String()) })
	for _, t := range templates {
		rev, ok := t.labels[label.IoIstioRev.Name]
		nsLabels := namespaces[t.workload.Namespace]
		_, nsRev := nsLabels[label.IoIstioRev.Name]
		_, nsInjection := nsLabels[webhookconfig.InjectionLabel]
		if !ok || nsRev || nsInjection || controlled[t.workload.Namespace] || t.labels[label.SidecarInject.Name] == "false" {
			continue
		}
		target := resolve(rev)
		out[target] = append(out[target], fmt.Sprintf("%s's pod template selects it (%s=%s)", t.workload, label.IoIstioRev.Name, rev))
	}
	return out
}
