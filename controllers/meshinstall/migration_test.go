package meshinstall

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/migration"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

func TestMigrationRefusal(t *testing.T) {
	mi := func(mutate func(*meshv1alpha1.MeshInstall)) *meshv1alpha1.MeshInstall {
		m := &meshv1alpha1.MeshInstall{Spec: meshv1alpha1.MeshInstallSpec{Version: "1.31.4",
			Migration: &meshv1alpha1.MigrationSpec{Revision: "1-30-2", Namespace: "istio-system"}}}
		if mutate != nil {
			mutate(m)
		}
		return m
	}
	found := func(version string, tags ...string) *migrationObservation {
		return &migrationObservation{revision: "1-30-2", namespace: "istio-system", tags: tags,
			istiods: []foreignObject{{kind: "Deployment", namespace: "istio-system", name: "istiod-1-30-2", revision: "1-30-2", version: version}}}
	}
	for _, tc := range []struct {
		name   string
		mi     *meshv1alpha1.MeshInstall
		found  *migrationObservation
		reason string
		says   string
	}{
		{name: "a revision nobody serves", mi: mi(nil), found: &migrationObservation{revision: "1-30-2", namespace: "istio-system"},
			reason: meshv1alpha1.ReasonInvalidSpec, says: "spec.migration.revision: no Istio control plane meshkeeper did not make serves revision 1-30-2 in namespace istio-system"},
		{name: "one minor up", mi: mi(nil), found: found("1.30.2")},
		{name: "a distroless image tag", mi: mi(nil), found: found("1.30.2-distroless")},
		{name: "a downgrade", mi: mi(func(m *meshv1alpha1.MeshInstall) { m.Spec.Version = "1.30.2" }), found: found("1.31.4"),
			reason: meshv1alpha1.ReasonDowngradeNotAllowed, says: "spec.migration:"},
		{name: "a foreign version this operator does not know", mi: mi(nil), found: found("1.19.0"),
			reason: meshv1alpha1.ReasonUnsupportedVersion, says: "spec.migration: the foreign istiod istio-system/istiod-1-30-2 runs \"1.19.0\""},
		{name: "a foreign tag meshkeeper would not serve", mi: mi(nil), found: found("1.30.2", "prod"),
			reason: meshv1alpha1.ReasonInvalidSpec, says: "spec.revisionTags: the foreign revision 1-30-2 has the tag prod"},
		{name: "the foreign tag listed", mi: mi(func(m *meshv1alpha1.MeshInstall) { m.Spec.RevisionTags = []string{"prod"} }), found: found("1.30.2", "prod")},
		{name: "complete: the foreign revision may be gone",
			mi: mi(func(m *meshv1alpha1.MeshInstall) {
				m.Status.Migration = &meshv1alpha1.MigrationStatus{Phase: meshv1alpha1.MigrationComplete}
			}),
			found: &migrationObservation{revision: "1-30-2", namespace: "istio-system"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := migrationRefusal(tc.mi, tc.found)
			if tc.says == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			r, ok := err.(*refusal.Error)
			if !ok {
				t.Fatalf("want a refusal, got %v", err)
			}
			if (tc.reason != "" && r.Reason != tc.reason) || !strings.Contains(r.Message, tc.says) {
				t.Errorf("refusal %s: %s; want %s saying %q", r.Reason, r.Message, tc.reason, tc.says)
			}
		})
	}
}

// foreignMesh is an Istio installed by istioctl in its own namespace (its
// istiod, injector, validator and mesh config, as the 1.31 charts render
// them, plus a user's Secret beside them) and n Deployments in a namespace
// labelled istio-injection=enabled, each with one pod its injector
// injected. Everything leaves with the test.
type foreignMesh struct {
	namespace, apps string
	injector        *admissionregistrationv1.MutatingWebhookConfiguration
	// untouchable are the objects meshkeeper must never write: compared
	// whole before and after.
	untouchable []client.Object
	deployments []string
}

func installForeignMesh(t *testing.T, n int) *foreignMesh {
	t.Helper()
	ctx := context.Background()
	f := &foreignMesh{namespace: controlPlaneNamespace() + "-istio", apps: controlPlaneNamespace() + "-apps"}
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: f.namespace}},
		{ObjectMeta: metav1.ObjectMeta{Name: f.apps, Labels: map[string]string{"istio-injection": "enabled"}}},
	} {
		if err := env.Client.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	ignore := admissionregistrationv1.Ignore
	none := admissionregistrationv1.SideEffectClassNone
	path := "/validate"
	validator := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "istio-validator-" + f.namespace, Labels: istioctlLabels(map[string]string{"app": "istiod", "istio": "istiod"})},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "rev.validation.istio.io", FailurePolicy: &ignore, SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
			ClientConfig:   admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Name: "istiod", Namespace: f.namespace, Path: &path}},
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "istio.io/rev", Operator: metav1.LabelSelectorOpIn, Values: []string{"default"}}}}}},
	}
	f.injector = istioctlInjector("default")
	for i := range f.injector.Webhooks {
		f.injector.Webhooks[i].ClientConfig.Service.Namespace = f.namespace
		// The envtest API server cannot reach it: the test's pods must still be admitted.
		f.injector.Webhooks[i].FailurePolicy = &ignore
	}
	// Istio's own "object" entry: an unlabelled namespace's pods opt in.
	f.injector.Webhooks[3].NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "istio-injection", Operator: metav1.LabelSelectorOpDoesNotExist}, {Key: "istio.io/rev", Operator: metav1.LabelSelectorOpDoesNotExist}}}
	meshConfig := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: f.namespace, Name: "istio", Labels: istioctlLabels(nil)},
		Data: map[string]string{"mesh": "rootNamespace: " + f.namespace + "\n"}}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.namespace, Name: "user-secret"}, StringData: map[string]string{"k": "v"}}
	istiod := istioctlIstiod(f.namespace)
	for _, o := range []client.Object{istiod, f.injector, validator, meshConfig, secret} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, o) })
	}
	f.untouchable = []client.Object{meshConfig, secret}
	t.Cleanup(func() {
		for _, kind := range []client.Object{&appsv1.Deployment{}} {
			_ = env.Client.DeleteAllOf(ctx, kind, client.InNamespace(f.apps))
		}
		_ = env.Client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(f.apps), client.GracePeriodSeconds(0))
	})
	for i := range n {
		name := fmt.Sprintf("app-%02d", i)
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: f.apps, Name: name}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}}}}}
		if err := env.Client.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		makeAvailable(t, f.apps, name)
		f.replacePod(t, name, false)
		f.deployments = append(f.deployments, name)
	}
	return f
}

// replacePod plays the Deployment controller after a template changed:
// the workload's pod is replaced by one injected by meshkeeper (migrated)
// or by Istio's injector, and the Deployment is marked rolled out.
func (f *foreignMesh) replacePod(t *testing.T, name string, migrated bool) {
	t.Helper()
	ctx := context.Background()
	_ = env.Client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(f.apps), client.MatchingLabels{"app": name}, client.GracePeriodSeconds(0))
	hash := "5d4f8b7c9"
	podLabels := map[string]string{"app": name, "pod-template-hash": hash}
	annotations := map[string]string{"sidecar.istio.io/status": `{"containers":["istio-proxy"],"revision":"default"}`}
	if migrated {
		hash = "6c5e9a8d1"
		podLabels["pod-template-hash"] = hash
		podLabels[migration.LabelMigrated] = "true"
		podLabels[inject.LabelInjectedBy] = "1-31-4"
		annotations["mesh.meshkeeper.dev/revision"] = "1-31-4"
		annotations["mesh.meshkeeper.dev/config-hash"] = "0000"
		annotations["mesh.meshkeeper.dev/proxy-version"] = "1.31.4"
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.apps, Name: name + "-" + hash + "-x7k2p", GenerateName: name + "-" + hash + "-",
			Labels: podLabels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name + "-" + hash,
				UID: types.UID("uid-" + name + hash), Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}, {Name: "istio-proxy", Image: "proxyv2"}}},
	}
	eventually(t, timeout, "pod of "+name+" replaced", func() error {
		err := env.Client.Create(ctx, pod.DeepCopy())
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
	makeAvailable(t, f.apps, name)
}

// migrated says whether a Deployment's pod template carries the migrated
// label, and whether its template changed since it last rolled out.
func (f *foreignMesh) migrated(t *testing.T, name string) (migrated, changed bool) {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: f.apps, Name: name}, d); err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Labels[migration.LabelMigrated] == "true", d.Status.ObservedGeneration < d.Generation
}

// playDeploymentController rolls out every Deployment whose template
// changed (migrated, returned, or restarted by meshkeeper's rollout), and
// returns how many are migrated.
func (f *foreignMesh) playDeploymentController(t *testing.T, podMigrated map[string]bool) int {
	t.Helper()
	n := 0
	for _, name := range f.deployments {
		m, changed := f.migrated(t, name)
		if changed || m != podMigrated[name] {
			f.replacePod(t, name, m)
			podMigrated[name] = m
		}
		if m {
			n++
		}
	}
	return n
}

func migrationSample(f *foreignMesh, action meshv1alpha1.ForeignControlPlaneAction, stepInterval time.Duration) func(*meshv1alpha1.MeshInstall) {
	return func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{Type: meshv1alpha1.UpdateStrategyCanary,
			Canary:                              &meshv1alpha1.CanaryStrategy{Steps: []int32{50, 100}, StepInterval: &metav1.Duration{Duration: stepInterval}},
			InactiveRevisionDeletionGracePeriod: &metav1.Duration{Duration: time.Second}}
		mi.Spec.Injection.FailurePolicy = meshv1alpha1.FailurePolicyIgnore
		mi.Spec.DataPlane.Rollout.Mode = meshv1alpha1.RolloutAutomatic
		mi.Spec.DataPlane.Rollout.MaxConcurrent = ptr.To(intstr.FromInt32(10))
		mi.Spec.Migration = &meshv1alpha1.MigrationSpec{Revision: "default", Namespace: f.namespace, ForeignControlPlane: action}
	}
}

// liveInjector reads a MutatingWebhookConfiguration whole.
func liveInjector(t *testing.T, name string) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	t.Helper()
	w := &admissionregistrationv1.MutatingWebhookConfiguration{}
	return w, env.Client.Get(context.Background(), client.ObjectKey{Name: name}, w)
}

// handedOver waits for the foreign injector to be narrowed and
// meshkeeper's istiod to be up, then checks, on the configurations in the
// API server, that every pod Istio's injector would inject is matched by
// exactly one entry of the two: Istio's before it is migrated, meshkeeper's after.
func (f *foreignMesh) handedOver(t *testing.T, mi *meshv1alpha1.MeshInstall) {
	t.Helper()
	eventually(t, timeout, "the foreign injector narrowed", func() error {
		w, err := liveInjector(t, f.injector.Name)
		if err != nil {
			return err
		}
		if !migration.Narrowed(w) {
			return fmt.Errorf("not narrowed: %v", w.Annotations)
		}
		return nil
	})
	eventually(t, timeout, "meshkeeper's istiod", func() error {
		return env.Client.Get(context.Background(), client.ObjectKey{Namespace: mi.Spec.Namespace, Name: "istiod-1-31-4"}, &appsv1.Deployment{})
	})
	makeAvailable(t, mi.Spec.Namespace, "istiod-1-31-4")
	eventually(t, timeout, "meshkeeper's injector selects only migrated pods", func() error {
		ours, err := liveInjector(t, webhookconfig.InjectorName)
		if err != nil {
			return err
		}
		if !gatedToMigrated(ours) {
			return fmt.Errorf("not gated")
		}
		return nil
	})
	theirs, _ := liveInjector(t, f.injector.Name)
	ours, _ := liveInjector(t, webhookconfig.InjectorName)
	nsLabels := map[string]string{"istio-injection": "enabled", corev1.LabelMetadataName: f.apps}
	for _, migrated := range []bool{false, true} {
		pod := map[string]string{"app": "x"}
		if migrated {
			pod[migration.LabelMigrated] = "true"
		}
		a, b := matchingEntries(t, theirs, nsLabels, pod), matchingEntries(t, ours, nsLabels, pod)
		switch {
		case len(a)+len(b) != 1:
			t.Errorf("a pod (migrated %v) in %s is matched by Istio's %v and meshkeeper's %v: want exactly one", migrated, f.apps, a, b)
		case migrated != (len(b) == 1):
			t.Errorf("a pod (migrated %v) is injected by the wrong side: Istio's %v, meshkeeper's %v", migrated, a, b)
		}
	}
}

func matchingEntries(t *testing.T, w *admissionregistrationv1.MutatingWebhookConfiguration, ns, pod map[string]string) []string {
	t.Helper()
	sel := func(s *metav1.LabelSelector, l map[string]string) bool {
		if s == nil {
			return true
		}
		ls, err := metav1.LabelSelectorAsSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		return ls.Matches(labels.Set(l))
	}
	var names []string
	for _, h := range w.Webhooks {
		if sel(h.NamespaceSelector, ns) && sel(h.ObjectSelector, pod) {
			names = append(names, h.Name)
		}
	}
	return names
}

// untouched checks that the foreign objects meshkeeper may never write are as they were.
func (f *foreignMesh) untouched(t *testing.T, before map[string]client.Object) {
	t.Helper()
	for key, was := range before {
		now, err := whole(was)
		if err != nil {
			t.Errorf("%s: %v", key, err)
			continue
		}
		if now.GetResourceVersion() != was.GetResourceVersion() {
			t.Errorf("%s was written to", key)
		}
	}
}

func (f *foreignMesh) snapshot(t *testing.T) map[string]client.Object {
	t.Helper()
	out := map[string]client.Object{}
	for _, o := range f.untouchable {
		got, err := whole(withKind(t, o))
		if err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprintf("%T %s", o, o.GetName())] = got
	}
	return out
}

// TestMigrationMovesWorkloadsStepByStepThenRemovesTheForeignControlPlane:
// spec.migration on an istioctl install narrows its injector, brings up
// meshkeeper's revision, labels workloads at 50% then 100%, and once no
// pod uses the foreign revision removes its injector, validator and
// istiod (Remove) or leaves them narrowed (Keep), and nothing else.
func TestMigrationMovesWorkloadsStepByStepThenRemovesTheForeignControlPlane(t *testing.T) {
	for _, action := range []meshv1alpha1.ForeignControlPlaneAction{meshv1alpha1.ForeignControlPlaneRemove, meshv1alpha1.ForeignControlPlaneKeep} {
		t.Run(string(action), func(t *testing.T) { migrateToCompletion(t, action) })
	}
}

func migrateToCompletion(t *testing.T, action meshv1alpha1.ForeignControlPlaneAction) {
	startManager(t, managerOpts{})
	f := installForeignMesh(t, 10)
	before := f.snapshot(t)
	mi := createSample(t, migrationSample(f, action, time.Second))
	f.handedOver(t, mi)
	waitCondition(t, mi.Name, meshv1alpha1.ConditionUpgradeInProgress, metav1.ConditionTrue, meshv1alpha1.ReasonMigrating)

	podMigrated := map[string]bool{}
	// Nothing was migrated before the MeshInstall; the second step needs
	// the first one's workloads rolled out, which only this loop does, so
	// it sees the first step's count.
	seen := []int{0}
	eventually(t, 2*timeout, "the migration complete", func() error {
		n := f.playDeploymentController(t, podMigrated)
		if len(seen) == 0 || seen[len(seen)-1] != n {
			seen = append(seen, n)
		}
		st := getMI(t, mi.Name).Status.Migration
		if st == nil || st.Phase != meshv1alpha1.MigrationComplete {
			return fmt.Errorf("migration %+v", st)
		}
		return nil
	})
	if len(seen) < 3 || seen[len(seen)-1] != len(f.deployments) || !slices.IsSorted(seen) {
		t.Errorf("workloads migrated over the passes %v: want a step between none and all %d, never back", seen, len(f.deployments))
	}
	st := getMI(t, mi.Name).Status.Migration
	says := map[meshv1alpha1.ForeignControlPlaneAction]string{meshv1alpha1.ForeignControlPlaneRemove: "removed",
		meshv1alpha1.ForeignControlPlaneKeep: "istioctl uninstall --revision default"}[action]
	if st.Weight != 100 || st.MigratedWorkloads != int32(len(f.deployments)) || st.ForeignPods != 0 || !strings.Contains(st.Message, says) {
		t.Errorf("status.migration %+v, want its message to say %q", st, says)
	}
	waitCondition(t, mi.Name, meshv1alpha1.ConditionUpgradeInProgress, metav1.ConditionFalse, meshv1alpha1.ReasonUpToDate)
	foreign := []client.Object{
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: f.injector.Name}},
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "istio-validator-" + f.namespace}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: f.namespace, Name: "istiod"}},
	}
	if action == meshv1alpha1.ForeignControlPlaneKeep {
		staysTrue(t, 3*time.Second, "the foreign control plane kept, its injector narrowed, meshkeeper's gated", func() error {
			for _, o := range foreign {
				if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(o), o); err != nil {
					return fmt.Errorf("%T %s: %v", o, o.GetName(), err)
				}
			}
			theirs, err := liveInjector(t, f.injector.Name)
			if err != nil || !migration.Narrowed(theirs) {
				return fmt.Errorf("the kept injector is not narrowed (%v)", err)
			}
			ours, err := liveInjector(t, webhookconfig.InjectorName)
			if err != nil || !gatedToMigrated(ours) {
				return fmt.Errorf("meshkeeper's injector selects pods the kept one does (%v)", err)
			}
			return nil
		})
		f.untouched(t, before)
		return
	}
	eventually(t, timeout, "the foreign control plane removed", func() error {
		for _, o := range foreign {
			if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(o), o); !apierrors.IsNotFound(err) {
				return fmt.Errorf("%T %s still there (%v)", o, o.GetName(), err)
			}
		}
		return nil
	})
	eventually(t, timeout, "meshkeeper's injector selects every pod again", func() error {
		ours, err := liveInjector(t, webhookconfig.InjectorName)
		if err != nil {
			return err
		}
		if gatedToMigrated(ours) {
			return fmt.Errorf("still gated")
		}
		return nil
	})
	f.untouched(t, before)
	if c := condition(t, mi.Name, meshv1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		t.Errorf("stalled: %s", c.Message)
	}
}

// TestMigrationAbortReturnsEveryWorkloadAndRestoresTheInjector: halfway,
// spec.migration removed: every migrated workload returns to Istio's
// injector first, then its entries' selectors are restored exactly.
func TestMigrationAbortReturnsEveryWorkloadAndRestoresTheInjector(t *testing.T) {
	startManager(t, managerOpts{})
	f := installForeignMesh(t, 10)
	original, err := liveInjector(t, f.injector.Name)
	if err != nil {
		t.Fatal(err)
	}
	before := f.snapshot(t)
	mi := createSample(t, migrationSample(f, meshv1alpha1.ForeignControlPlaneRemove, time.Hour))
	f.handedOver(t, mi)

	podMigrated := map[string]bool{}
	eventually(t, timeout, "the first step moved", func() error {
		if n := f.playDeploymentController(t, podMigrated); n == 0 {
			return fmt.Errorf("nothing moved yet (%+v)", getMI(t, mi.Name).Status.Migration)
		}
		return nil
	})
	if n := f.playDeploymentController(t, podMigrated); n == len(f.deployments) {
		t.Fatalf("every workload moved at the first step")
	}

	latest := getMI(t, mi.Name)
	patch := client.MergeFrom(latest.DeepCopy())
	latest.Spec.Migration = nil
	if err := env.Client.Patch(context.Background(), latest, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "aborted", func() error {
		n := f.playDeploymentController(t, podMigrated)
		st := getMI(t, mi.Name).Status.Migration
		if st == nil || st.Phase != meshv1alpha1.MigrationAborted {
			return fmt.Errorf("%d still migrated; migration %+v", n, st)
		}
		return nil
	})
	for _, name := range f.deployments {
		if m, _ := f.migrated(t, name); m {
			t.Errorf("%s still migrated", name)
		}
	}
	restored, err := liveInjector(t, f.injector.Name)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(struct {
		A map[string]string
		W []admissionregistrationv1.MutatingWebhook
	}{original.Annotations, original.Webhooks})
	got, _ := json.Marshal(struct {
		A map[string]string
		W []admissionregistrationv1.MutatingWebhook
	}{restored.Annotations, restored.Webhooks})
	if string(got) != string(want) {
		t.Errorf("the foreign injector is not as it was:\nwant %s\ngot  %s", want, got)
	}
	f.untouched(t, before)
	waitCondition(t, mi.Name, meshv1alpha1.ConditionStalled, metav1.ConditionTrue, meshv1alpha1.ReasonForeignIstioInstallation)
}

// TestDeletingAMigratingMeshInstallRestoresTheInjector: a MeshInstall
// deleted mid-migration gives the foreign injector back its selectors,
// exactly, before its own injector goes: migrated workloads' new pods are
// never left with no injector.
func TestDeletingAMigratingMeshInstallRestoresTheInjector(t *testing.T) {
	startManager(t, managerOpts{})
	f := installForeignMesh(t, 2)
	original, err := liveInjector(t, f.injector.Name)
	if err != nil {
		t.Fatal(err)
	}
	mi := createSample(t, migrationSample(f, meshv1alpha1.ForeignControlPlaneRemove, time.Hour))
	f.handedOver(t, mi)
	if err := env.Client.Delete(context.Background(), getMI(t, mi.Name)); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "meshkeeper's injector deleted", func() error {
		if _, err := liveInjector(t, webhookconfig.InjectorName); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	})
	restored, err := liveInjector(t, f.injector.Name)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal([]any{original.Annotations, original.Webhooks})
	got, _ := json.Marshal([]any{restored.Annotations, restored.Webhooks})
	if string(got) != string(want) {
		t.Errorf("the foreign injector is not as it was:\nwant %s\ngot  %s", want, got)
	}
}
