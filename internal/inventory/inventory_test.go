package inventory

import (
	"maps"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

func injectorFor(revisions ...string) *admissionregistrationv1.MutatingWebhookConfiguration {
	return webhookconfig.InjectorConfiguration(webhookconfig.Injector{
		ControlPlaneNamespace: "istio-system", Revisions: revisions, Tags: []string{"prod"},
		Endpoint: webhookconfig.Endpoint{URL: "https://127.0.0.1:9443"},
	})
}

func ns(name string, labels map[string]string) map[string]string {
	out := map[string]string{"kubernetes.io/metadata.name": name}
	for k, v := range labels {
		out[k] = v
	}
	return out
}

type podOpt func(*Pod)

func pod(namespace string, opts ...podOpt) Pod {
	p := Pod{Pod: webhookconfig.Pod{Namespace: namespace}, Controlled: true}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func stamped(rev, hash string) podOpt {
	return func(p *Pod) {
		p.Annotations = map[string]string{inject.AnnotationRevision: rev, inject.AnnotationConfigHash: hash, "sidecar.istio.io/status": "{}"}
	}
}

func label(k, v string) podOpt {
	return func(p *Pod) {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		p.Labels[k] = v
	}
}

func bare(p *Pod)        { p.Controlled = false }
func hostNetwork(p *Pod) { p.HostNetwork = true }

func TestCount(t *testing.T) {
	m, err := webhookconfig.NewMatcher(injectorFor("default"))
	if err != nil {
		t.Fatal(err)
	}
	namespaces := map[string]map[string]string{
		"shop":  ns("shop", map[string]string{"istio-injection": "enabled"}),
		"plain": ns("plain", nil),
	}
	cases := []struct {
		name string
		pods []Pod
		want Result
	}{
		{
			name: "current and outdated pods of a revision",
			pods: []Pod{pod("shop", stamped("default", "h1")), pod("shop", stamped("default", "h1")), pod("shop", stamped("default", "old"))},
			want: Result{Injected: 3, UpToDate: 2, Outdated: 1, Revisions: map[string]RevisionCount{"default": {Pods: 3, UpToDate: 2}}},
		},
		{
			name: "a pod of a revision that no longer exists is outdated",
			pods: []Pod{pod("shop", stamped("gone", "h9"))},
			want: Result{Injected: 1, Outdated: 1, Revisions: map[string]RevisionCount{"gone": {Pods: 1}}, Gone: map[string]int32{"gone": 1}},
		},
		{
			name: "a pod the webhook would inject but that has no sidecar",
			pods: []Pod{pod("shop")},
			want: Result{Uninjected: 1},
		},
		{
			name: "opted-out, plain-namespace and host-network pods are not missing a sidecar",
			pods: []Pod{pod("shop", label("sidecar.istio.io/inject", "false")), pod("plain"), pod("shop", hostNetwork)},
			want: Result{},
		},
		{
			name: "a pod injected by Istio's own injector is outdated",
			pods: []Pod{pod("shop", func(p *Pod) { p.Annotations = map[string]string{"sidecar.istio.io/status": "{}"} })},
			want: Result{Injected: 1, Outdated: 1},
		},
		{
			name: "bare pods are counted apart: no workload restart can update them",
			pods: []Pod{pod("shop", bare), pod("shop", bare, stamped("default", "old")), pod("shop", bare, stamped("default", "h1"))},
			want: Result{Injected: 2, UpToDate: 1, Outdated: 1, Uninjected: 1, Unmanaged: 2,
				Revisions: map[string]RevisionCount{"default": {Pods: 2, UpToDate: 1}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Count(tc.pods, namespaces, m, map[string]string{"default": "h1"})
			if got.Injected != tc.want.Injected || got.UpToDate != tc.want.UpToDate || got.Outdated != tc.want.Outdated ||
				got.Uninjected != tc.want.Uninjected || got.Unmanaged != tc.want.Unmanaged || len(got.Revisions) != len(tc.want.Revisions) {
				t.Errorf("counts = %+v, want %+v", got, tc.want)
			}
			if !maps.Equal(got.Gone, tc.want.Gone) {
				t.Errorf("gone = %v, want %v", got.Gone, tc.want.Gone)
			}
			for rev, want := range tc.want.Revisions {
				if got.Revisions[rev] != want {
					t.Errorf("revision %s = %+v, want %+v", rev, got.Revisions[rev], want)
				}
			}
		})
	}
}

func TestCountWithoutAnInjector(t *testing.T) {
	got := Count([]Pod{pod("shop")}, map[string]map[string]string{"shop": ns("shop", map[string]string{"istio-injection": "enabled"})}, nil, nil)
	if got.Uninjected != 0 {
		t.Errorf("with no injector configuration, nothing can be missing a sidecar: %+v", got)
	}
}
