package migration_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meshkeeper/meshkeeper/internal/migration"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// istioInjector is the sidecar injector Istio's istiod chart renders (1.31)
// for a revision, its entries' selectors as Istio writes them.
func istioInjector(rev string) *admissionregistrationv1.MutatingWebhookConfiguration {
	sel := func(r ...metav1.LabelSelectorRequirement) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: r}
	}
	req := func(k string, op metav1.LabelSelectorOperator, v ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: k, Operator: op, Values: v}
	}
	hook := func(name string, ns, obj *metav1.LabelSelector) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{Name: name, NamespaceSelector: ns, ObjectSelector: obj}
	}
	in, notIn, absent := metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn, metav1.LabelSelectorOpDoesNotExist
	w := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-injector", Annotations: map[string]string{"someone/else": "x"}},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			hook("rev.namespace.sidecar-injector.istio.io", sel(req("istio.io/rev", in, rev), req("istio-injection", absent)), sel(req("sidecar.istio.io/inject", notIn, "false"))),
			hook("rev.object.sidecar-injector.istio.io", sel(req("istio.io/rev", absent), req("istio-injection", absent)), sel(req("sidecar.istio.io/inject", notIn, "false"), req("istio.io/rev", in, rev))),
		},
	}
	if rev == "default" {
		w.Webhooks = append(w.Webhooks,
			hook("namespace.sidecar-injector.istio.io", sel(req("istio-injection", in, "enabled")), sel(req("sidecar.istio.io/inject", notIn, "false"))),
			hook("object.sidecar-injector.istio.io", sel(req("istio-injection", absent), req("istio.io/rev", absent)),
				sel(req("sidecar.istio.io/inject", in, "true"), req("istio.io/rev", absent))),
		)
	}
	return w
}

func TestNarrowThenRestoreIsExact(t *testing.T) {
	for _, rev := range []string{"default", "1-30-2"} {
		t.Run(rev, func(t *testing.T) {
			before := istioInjector(rev)
			// As the API server stores an entry written without an objectSelector.
			before.Webhooks[0].ObjectSelector = &metav1.LabelSelector{}
			narrowed, err := migration.Narrow(before)
			if err != nil {
				t.Fatal(err)
			}
			if was := istioInjector(rev); !reflect.DeepEqual(before.Webhooks[1:], was.Webhooks[1:]) || !reflect.DeepEqual(before.Annotations, was.Annotations) {
				t.Fatal("Narrow changed its input")
			}
			if !migration.Narrowed(narrowed) || migration.Narrowed(before) {
				t.Fatalf("Narrowed: after %v, before %v", migration.Narrowed(narrowed), migration.Narrowed(before))
			}
			again, err := migration.Narrow(narrowed)
			if err != nil || !reflect.DeepEqual(again, narrowed) {
				t.Fatalf("narrowing twice changed it (%v):\n%+v", err, again.Webhooks)
			}
			restored, err := migration.Restore(again)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(before)
			got, _ := json.Marshal(restored)
			if string(got) != string(want) {
				t.Errorf("restored is not what was there:\nwant %s\ngot  %s", want, got)
			}
		})
	}
}

func TestRestoreRejectsAnUnreadableRecord(t *testing.T) {
	w := istioInjector("default")
	w.Annotations[migration.AnnotationOriginalSelectors] = "{not json"
	if _, err := migration.Restore(w); err == nil {
		t.Error("an unreadable record was restored")
	}
}

// TestExactlyOneInjectorMatchesEveryPod evaluates, for every namespace and
// pod labelling Istio's selection knows and with or without the migrated
// label, the foreign injector narrowed and meshkeeper's injector gated by
// the migration, entry by entry: a pod meant for a sidecar is matched by
// exactly one entry of the two; a pod opted out by none.
func TestExactlyOneInjectorMatchesEveryPod(t *testing.T) {
	for _, rev := range []string{"default", "1-30-2"} {
		t.Run(rev, func(t *testing.T) {
			// A revisioned install has its default tag (istioctl tag set
			// default): the same entries as the default revision's injector.
			theirsBefore := []*admissionregistrationv1.MutatingWebhookConfiguration{istioInjector(rev)}
			if rev != "default" {
				tag := istioInjector("default")
				tag.Name = "istio-revision-tag-default"
				theirsBefore = append(theirsBefore, tag)
			}
			var foreign []*admissionregistrationv1.MutatingWebhookConfiguration
			for _, w := range theirsBefore {
				n, err := migration.Narrow(w)
				if err != nil {
					t.Fatal(err)
				}
				foreign = append(foreign, n)
			}
			tags := []string{}
			if rev != "default" {
				tags = append(tags, rev) // the foreign revision's name, an alias of meshkeeper's tags
			}
			ours := webhookconfig.InjectorConfiguration(webhookconfig.Injector{ControlPlaneNamespace: "istio-system",
				Revisions: []string{"1-31-0"}, Tags: tags, ObjectRequirements: []metav1.LabelSelectorRequirement{migration.OnlyMigrated()}})
			selectsRev := map[string]string{"istio.io/rev": rev}
			if rev == "default" {
				selectsRev = map[string]string{"istio-injection": "enabled"}
			}
			namespaces := []map[string]string{selectsRev, {}, {"istio.io/rev": rev}}
			pods := []map[string]string{{}, {"sidecar.istio.io/inject": "true"}, {"istio.io/rev": rev}, {"sidecar.istio.io/inject": "false"}}
			for _, nsLabels := range namespaces {
				for _, podLabels := range pods {
					for _, migrated := range []bool{false, true} {
						pl := map[string]string{}
						for k, v := range podLabels {
							pl[k] = v
						}
						if migrated {
							pl[migration.LabelMigrated] = "true"
						}
						nl := map[string]string{corev1.LabelMetadataName: "app"}
						for k, v := range nsLabels {
							nl[k] = v
						}
						var theirs []string
						wanted := false
						for i := range foreign {
							theirs = append(theirs, matching(t, foreign[i], nl, pl)...)
							wanted = wanted || len(matching(t, theirsBefore[i], nl, pl)) > 0
						}
						mine := matching(t, ours, nl, pl)
						name := fmt.Sprintf("namespace %v, pod %v", nsLabels, pl)
						switch {
						case !wanted && len(theirs)+len(mine) != 0:
							t.Errorf("%s: Istio would not inject it, yet it matches %v %v", name, theirs, mine)
						case wanted && len(theirs)+len(mine) != 1:
							t.Errorf("%s: matched by %v (Istio's) and %v (meshkeeper's), want exactly one", name, theirs, mine)
						case wanted && migrated && len(mine) != 1:
							t.Errorf("%s: a migrated pod must be meshkeeper's, got %v %v", name, theirs, mine)
						case wanted && !migrated && len(theirs) != 1:
							t.Errorf("%s: a pod not migrated must stay Istio's, got %v %v", name, theirs, mine)
						}
					}
				}
			}
		})
	}
}

func matching(t *testing.T, w *admissionregistrationv1.MutatingWebhookConfiguration, ns, pod map[string]string) []string {
	t.Helper()
	var names []string
	for _, h := range w.Webhooks {
		if selects(t, h.NamespaceSelector, ns) && selects(t, h.ObjectSelector, pod) {
			names = append(names, h.Name)
		}
	}
	return names
}

func selects(t *testing.T, s *metav1.LabelSelector, l map[string]string) bool {
	t.Helper()
	if s == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel.Matches(labels.Set(l))
}
