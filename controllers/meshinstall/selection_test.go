package meshinstall

import (
	"slices"
	"testing"

	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/rollout"
)

func TestRevisionSelections(t *testing.T) {
	namespaces := map[string]map[string]string{
		"by-revision":    {"istio.io/rev": "1-31-4"},
		"by-tag":         {"istio.io/rev": "prod"},
		"injection-wins": {"istio-injection": "enabled", "istio.io/rev": "1-31-4"},
		"unlabelled":     {},
		"istio-system":   {"istio.io/rev": "1-31-4"}, // meshkeeper's own
	}
	templates := []templateSelection{
		{workload: rollout.Key{Kind: "Deployment", Namespace: "unlabelled", Name: "scaled-to-zero"}, labels: map[string]string{"istio.io/rev": "1-31-4"}},
		{workload: rollout.Key{Kind: "Deployment", Namespace: "unlabelled", Name: "opted-out"}, labels: map[string]string{"istio.io/rev": "1-31-4", "sidecar.istio.io/inject": "false"}},
		{workload: rollout.Key{Kind: "StatefulSet", Namespace: "by-tag", Name: "namespace-wins"}, labels: map[string]string{"istio.io/rev": "1-31-4"}},
	}
	routing := &revision.Routing{Active: "1-32-0", Tags: []string{"default", "prod"}}
	got := revisionSelections(namespaces, templates, routing, map[string]bool{"istio-system": true})
	want := map[string][]string{
		"1-31-4": {"namespace by-revision selects it (istio.io/rev=1-31-4)", "Deployment unlabelled/scaled-to-zero's pod template selects it (istio.io/rev=1-31-4)"},
		"1-32-0": {"namespace by-tag selects it (istio.io/rev=prod)"},
	}
	for rev, w := range want {
		if !slices.Equal(got[rev], w) {
			t.Errorf("%s selected by %q, want %q", rev, got[rev], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("selections %q, want only %q", got, want)
	}
}
