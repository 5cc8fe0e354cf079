package meshinstall

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// What a tenant can do in their own namespace, and what meshkeeper must
// not believe, create or delete because of it.

// installReady installs the sample and waits until it is Ready.
func installReady(t *testing.T, mutate func(*meshv1alpha1.MeshInstall)) *meshv1alpha1.MeshInstall {
	t.Helper()
	mi := createSample(t, mutate)
	rev := render.DefaultRevision
	if mi.Spec.UpdateStrategy.Type == meshv1alpha1.UpdateStrategyCanary {
		v, err := version.Parse(mi.Spec.Version)
		if err != nil {
			t.Fatal(err)
		}
		rev = v.Revision()
	}
	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(rev))
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded)
	return getMI(t, mi.Name)
}

// tenantNamespace creates a namespace for a test's tenant.
func tenantNamespace(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("tenant-%d", testNamespaceSeq)
	if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return ns
}

// forgedMeta is what a tenant who read the MeshInstall (its name and UID)
// can put on an object: every meshkeeper label, and a controller reference.
func forgedMeta(mi *meshv1alpha1.MeshInstall, ns, name, rev, v string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name,
		Labels: map[string]string{render.LabelManagedBy: render.ManagedBy, render.LabelMeshInstall: mi.Name, render.LabelRevision: rev, render.LabelVersion: v},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: meshv1alpha1.GroupVersion.String(), Kind: "MeshInstall",
			Name: mi.Name, UID: mi.UID, Controller: ptr.To(true)}},
	}
}

// withKind sets a typed object's kind, which Create leaves empty.
func withKind(t *testing.T, o client.Object) client.Object {
	t.Helper()
	gvk, err := apiutil.GVKForObject(o, env.Scheme)
	if err != nil {
		t.Fatal(err)
	}
	o.GetObjectKind().SetGroupVersionKind(gvk)
	return o
}

// poke makes the MeshInstall's reconciler run a full pass (an annotation changed).
func poke(t *testing.T, mi *meshv1alpha1.MeshInstall) {
	t.Helper()
	eventually(t, timeout, "annotated", func() error {
		got := getMI(t, mi.Name)
		if got.Annotations == nil {
			got.Annotations = map[string]string{}
		}
		got.Annotations["test/poke"] = time.Now().String()
		return env.Client.Update(context.Background(), got)
	})
}

// staysTrue checks, for a while, that check keeps passing.
func staysTrue(t *testing.T, d time.Duration, what string, check func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if err := check(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// onlyRevisions checks that the MeshInstall is Ready with exactly the
// given revisions in status, and that no other istiod Deployment exists in
// its namespace.
func onlyRevisions(t *testing.T, mi *meshv1alpha1.MeshInstall, want ...string) func() error {
	return func() error {
		got := getMI(t, mi.Name)
		var names []string
		for _, r := range got.Status.Revisions {
			names = append(names, r.Name)
		}
		if !slices.Equal(names, want) {
			return fmt.Errorf("status.revisions = %v, want %v", names, want)
		}
		var ds appsv1.DeploymentList
		if err := env.Client.List(context.Background(), &ds, client.InNamespace(mi.Spec.Namespace)); err != nil {
			return err
		}
		for _, d := range ds.Items {
			if strings.HasPrefix(d.Name, "istiod") && !slices.ContainsFunc(want, func(r string) bool { return d.Name == render.IstiodName(r) }) {
				return fmt.Errorf("Deployment %s was created", d.Name)
			}
		}
		if c := condition(t, mi.Name, meshv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready = %+v", c)
		}
		return nil
	}
}

func TestForgedControlPlaneObjectsInATenantNamespaceAreNotBelieved(t *testing.T) {
	startManager(t, managerOpts{})
	mi := installReady(t, nil)
	tenant := tenantNamespace(t)
	ctx := context.Background()

	// An injection configuration for an older revision, and an istiod for
	// it reporting itself available: believed, they would make revision
	// 1-30-0 exist (re-created beside the real one, with a cluster-wide
	// istiod), or an older proxy version look like a downgrade.
	forgedConfig := &corev1.ConfigMap{ObjectMeta: forgedMeta(mi, tenant, "istio-sidecar-injector-1-30-0", "1-30-0", "1.30.0"),
		Data: map[string]string{render.InjectionConfigKey: `{"revision":"1-30-0","proxyImage":"evil/proxy"}`}}
	forgedConfig.Labels[render.LabelInjectionConfig] = "true"
	forgedConfig.Annotations = map[string]string{inject.AnnotationConfigHash: "forged"}
	forgedIstiod := &appsv1.Deployment{ObjectMeta: forgedMeta(mi, tenant, render.IstiodName("1-30-0"), "1-30-0", "1.30.0"),
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "forged"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "forged"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "discovery", Image: "evil/pilot"}}}},
		}}
	// And the real revision's configuration with the tenant's image.
	forgedDefault := &corev1.ConfigMap{ObjectMeta: forgedMeta(mi, tenant, "istio-sidecar-injector", render.DefaultRevision, "1.30.8"),
		Data: map[string]string{render.InjectionConfigKey: `{"revision":"default","proxyImage":"evil/proxy"}`}}
	forgedDefault.Labels[render.LabelInjectionConfig] = "true"
	for _, o := range []client.Object{forgedConfig, forgedIstiod, forgedDefault} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
	}
	makeAvailable(t, tenant, forgedIstiod.Name)
	poke(t, mi)

	staysTrue(t, 5*time.Second, "the forged objects changed nothing", onlyRevisions(t, mi, render.DefaultRevision))
	if c := condition(t, mi.Name, meshv1alpha1.ConditionStalled); c.Status != metav1.ConditionFalse {
		t.Errorf("Stalled = %+v", c)
	}
}

func TestAForgedStampedPodCreatesNoRevision(t *testing.T) {
	startManager(t, managerOpts{})
	mi := installReady(t, nil)
	tenant := tenantNamespace(t)
	ctx := context.Background()

	// Pending (envtest schedules nothing), stamped by a revision that never existed here.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "summoner",
			Labels: map[string]string{inject.LabelInjectedBy: "1-30-1"},
			Annotations: map[string]string{inject.AnnotationRevision: "1-30-1", inject.AnnotationProxyVersion: "1.30.1",
				inject.AnnotationConfigHash: "0000", "sidecar.istio.io/status": "{}"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pod) })
	poke(t, mi)

	staysTrue(t, 5*time.Second, "the stamp created nothing", onlyRevisions(t, mi, render.DefaultRevision))
	// Still counted: as outdated, a pod of a revision that does not exist.
	eventually(t, 2*timeout, "the stamped pod reported as outdated", func() error {
		// (Pods of earlier tests remain: envtest deletes none.)
		if dp := getMI(t, mi.Name).Status.DataPlane; dp == nil || dp.OutdatedPods < 1 {
			return fmt.Errorf("dataPlane = %+v", dp)
		}
		if c := condition(t, mi.Name, meshv1alpha1.ConditionDataPlaneUpToDate); c == nil || !strings.Contains(c.Message, "1 of revision 1-30-1") {
			return fmt.Errorf("DataPlaneUpToDate does not name the revision that is gone: %+v", c)
		}
		return nil
	})
}

func TestDeleteKeepsNamespacesWithUsersObjects(t *testing.T) {
	startManager(t, managerOpts{})
	mi := installReady(t, nil)
	ctx := context.Background()
	ns := mi.Spec.Namespace
	ours := expectedObjects(t, mi, render.DefaultRevision)
	if err := allExist(ours); err != nil {
		t.Fatal(err)
	}

	// What users keep in the control plane namespace: a TLS Secret and
	// mesh-wide Istio configuration (its CRDs are meshkeeper's to install).
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ingress-tls"}, StringData: map[string]string{"tls.crt": "x"}}
	vs := &unstructured.Unstructured{}
	vs.SetAPIVersion("networking.istio.io/v1")
	vs.SetKind("VirtualService")
	vs.SetNamespace(ns)
	vs.SetName("users")
	_ = unstructured.SetNestedStringSlice(vs.Object, []string{"shop.example.com"}, "spec", "hosts")
	for _, o := range []client.Object{secret, vs} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		withKind(t, o)
	}

	if err := env.Client.Delete(ctx, mi); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "the MeshInstall and its objects gone", func() error {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: mi.Name}, &meshv1alpha1.MeshInstall{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("MeshInstall still there (%v)", err)
		}
		for _, o := range ours {
			got, err := live(o)
			if err == nil && got.GetDeletionTimestamp().IsZero() {
				return fmt.Errorf("%s still exists", apply.KeyOf(o))
			}
		}
		return nil
	})
	got := &corev1.Namespace{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: ns}, got); err != nil || !got.DeletionTimestamp.IsZero() {
		t.Fatalf("namespace %s was deleted with the MeshInstall (%v)", ns, err)
	}
	if _, ok := got.Labels[render.LabelMeshInstall]; ok || len(got.OwnerReferences) > 0 {
		t.Errorf("namespace %s still carries meshkeeper's marks: labels %v, owners %v", ns, got.Labels, got.OwnerReferences)
	}
	for _, o := range []client.Object{secret, vs} {
		if _, err := live(o); err != nil {
			t.Errorf("the user's %s is gone: %v", apply.KeyOf(o), err)
		}
	}

	// A MeshInstall applied right after installs at once: nothing waits on a namespace being terminated.
	again := installReady(t, nil)
	if again.Spec.Namespace != ns {
		t.Fatalf("the new MeshInstall runs in %s, want %s", again.Spec.Namespace, ns)
	}
	if err := allExist(expectedObjects(t, again, render.DefaultRevision)); err != nil {
		t.Error(err)
	}
}

func TestObjectsOfSomeoneElseAreNotTakenOver(t *testing.T) {
	startManager(t, managerOpts{})
	ctx := context.Background()
	ns := controlPlaneNamespace()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	// A user's Service and RoleBinding that happen to share the gateway's name.
	gateway := "istio-ingressgateway"
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: gateway, Labels: map[string]string{"owner": "user"}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}, Selector: map[string]string{"app": "users"}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: gateway, Labels: map[string]string{"owner": "user"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "users"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "users", Namespace: ns}}}
	var theirs []client.Object
	for _, o := range []client.Object{svc, binding} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		theirs = append(theirs, withKind(t, o))
	}
	mi := createSample(t, nil)
	waitCondition(t, mi.Name, meshv1alpha1.ConditionStalled, metav1.ConditionTrue, meshv1alpha1.ReasonObjectNotOwned)
	msg := condition(t, mi.Name, meshv1alpha1.ConditionStalled).Message
	for _, kind := range []string{"Service", "RoleBinding"} {
		if !strings.Contains(msg, kind+" "+ns+"/"+gateway) {
			t.Errorf("Stalled does not name the %s: %s", kind, msg)
		}
	}
	// Nothing applied, nothing merged into the user's objects.
	istiod := &appsv1.Deployment{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.IstiodName(render.DefaultRevision)}, istiod); !apierrors.IsNotFound(err) {
		t.Errorf("istiod was applied despite the refusal (%v)", err)
	}
	unchanged := func() error {
		for _, o := range theirs {
			got, err := live(o)
			if err != nil {
				return fmt.Errorf("the user's %s: %w", apply.KeyOf(o), err)
			}
			if got.GetLabels()[render.LabelManagedBy] != "" || len(got.GetOwnerReferences()) > 0 || len(got.GetManagedFields()) != 1 {
				return fmt.Errorf("the user's %s was written to: labels %v, owners %v, managers %d",
					apply.KeyOf(o), got.GetLabels(), got.GetOwnerReferences(), len(got.GetManagedFields()))
			}
		}
		return nil
	}
	if err := unchanged(); err != nil {
		t.Error(err)
	}

	// Deleting the MeshInstall deletes nothing of theirs either.
	if err := env.Client.Delete(ctx, mi); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "MeshInstall deleted", func() error {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: mi.Name}, &meshv1alpha1.MeshInstall{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	})
	if err := unchanged(); err != nil {
		t.Error(err)
	}
}

// TestANewMeshInstallIgnoresTheStampsOfTheOldOne: a MeshInstall is deleted
// while its workloads keep running with 1.32.0 sidecars, and another is
// applied at 1.31.4 with the canary strategy. The version asked for is
// installed and routed to at once: no revision is re-created from the pods'
// stamps and no canary invented; the old pods are reported and, in
// Automatic mode, moved.
func TestANewMeshInstallIgnoresTheStampsOfTheOldOne(t *testing.T) {
	startManager(t, managerOpts{})
	ctx := context.Background()
	canary := func(v string, mode meshv1alpha1.RolloutMode) func(*meshv1alpha1.MeshInstall) {
		return func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.Version = v
			mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{Type: meshv1alpha1.UpdateStrategyCanary,
				Canary: &meshv1alpha1.CanaryStrategy{Steps: []int32{50, 100}, StepInterval: &metav1.Duration{Duration: time.Hour}}}
			mi.Spec.DataPlane.Rollout.Mode = mode
		}
	}
	old := installReady(t, canary("1.32.0", meshv1alpha1.RolloutManual))

	// A workload injected by the old mesh's revision 1-32-0.
	apps := fmt.Sprintf("apps-%d", testNamespaceSeq)
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: apps,
		Labels: map[string]string{"istio-injection": "enabled"}}}); err != nil {
		t.Fatal(err)
	}
	web := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: apps, Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}}},
		}}
	if err := env.Client.Create(ctx, web); err != nil {
		t.Fatal(err)
	}
	makeAvailable(t, apps, web.Name)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: apps, Name: "web-5d8f7-x1", GenerateName: "web-5d8f7-",
			Labels: map[string]string{"app": "web", "pod-template-hash": "5d8f7", inject.LabelInjectedBy: "1-32-0"},
			Annotations: map[string]string{inject.AnnotationRevision: "1-32-0", inject.AnnotationProxyVersion: "1.32.0",
				inject.AnnotationConfigHash: "0000", "sidecar.istio.io/status": "{}"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d8f7", UID: "rs-uid", Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if err := env.Client.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}

	if err := env.Client.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "the old MeshInstall gone", func() error {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: old.Name}, &meshv1alpha1.MeshInstall{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	})

	mi := createSample(t, canary("1.31.4", meshv1alpha1.RolloutAutomatic))
	noOldRevision := func() error {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.IstiodName("1-32-0")}, &appsv1.Deployment{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("istiod of revision 1-32-0 exists again (%v)", err)
		}
		if st := getMI(t, mi.Name).Status; len(st.Revisions) > 1 || st.Canary != nil {
			return fmt.Errorf("status.revisions = %+v, canary %+v", st.Revisions, st.Canary)
		}
		return nil
	}
	staysTrue(t, 3*time.Second, "the stamps re-created nothing", noOldRevision)
	makeAvailable(t, mi.Spec.Namespace, render.IstiodName("1-31-4"))
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded)
	if err := noOldRevision(); err != nil {
		t.Fatal(err)
	}
	if got := getMI(t, mi.Name).Status; got.ActiveRevision != "1-31-4" || got.Version != "1.31.4" {
		t.Errorf("active revision %s at %s, want 1-31-4 at 1.31.4", got.ActiveRevision, got.Version)
	}
	routing := &corev1.ConfigMap{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.RoutingConfigMapName}, routing); err != nil {
		t.Fatal(err)
	}
	if r, err := revision.RoutingFromData(routing.Data); err != nil || r.Active != "1-31-4" || r.Canary != "" {
		t.Errorf("routing = %+v (%v), want everything on 1-31-4", r, err)
	}
	eventually(t, 2*timeout, "the old pod reported and its workload restarted", func() error {
		if c := condition(t, mi.Name, meshv1alpha1.ConditionDataPlaneUpToDate); c == nil || !strings.Contains(c.Message, "of revision 1-32-0") {
			return fmt.Errorf("DataPlaneUpToDate = %+v", c)
		}
		d := &appsv1.Deployment{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(web), d); err != nil {
			return err
		}
		if target := d.Spec.Template.Annotations[meshv1alpha1.AnnotationRestartedFor]; !strings.HasPrefix(target, "1-31-4") {
			return fmt.Errorf("web restarted for %q, want revision 1-31-4; rollout %+v", target, getMI(t, mi.Name).Status.DataPlane.Rollout)
		}
		return nil
	})
}
