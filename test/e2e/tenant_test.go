package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

const tenantNS = "tenant"

// tenantClient acts as the ServiceAccount tenant/tenant, bound to a Role
// that allows ConfigMaps, pods and Deployments in namespace tenant only:
// what a team that owns a namespace holds (impersonated, so the API server
// authorizes every request against that Role).
func (e *env) tenantClient(t *testing.T) client.Client {
	t.Helper()
	ctx := context.Background()
	e.ensureNamespace(t, tenantNS, nil)
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "tenant"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps", "pods"}, Verbs: []string{"*"}},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"*"}},
		}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "tenant"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "tenant"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: tenantNS, Name: "tenant"}}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "tenant"}}
	for _, o := range []client.Object{sa, role, binding} {
		if err := e.k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	cfg := rest.CopyConfig(e.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:tenant:tenant",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:tenant", "system:authenticated"}}
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	// The Role is all it holds.
	eventually(t, 10*time.Second, "the tenant's Role in effect", func() error {
		return c.List(ctx, &corev1.ConfigMapList{}, client.InNamespace(tenantNS))
	})
	if err := c.List(ctx, &corev1.ConfigMapList{}, client.InNamespace("istio-system")); !apierrors.IsForbidden(err) {
		t.Fatalf("the tenant may list ConfigMaps in istio-system (%v): the test would prove nothing", err)
	}
	return c
}

// TestATenantCannotSteerTheMesh forges, as a tenant, what meshkeeper once
// believed wherever it found its labels: the active revision's injection
// configuration with the tenant's proxy image, another revision's, routing
// that sends the default tag to it, an istiod Deployment for it, and
// Pending pods stamped by it. Injection stays as it was on 20 pods created
// afterwards, no istiod is created, no workload is restarted (Automatic
// mode), and the MeshInstall stays Ready.
func TestATenantCannotSteerTheMesh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Gateways = nil
	mi.Spec.Profile = meshv1alpha1.ProfileMinimal // the control plane only
	// Automatic: were a forged configuration (another config hash) believed,
	// the operator would restart every workload onto it.
	mi.Spec.DataPlane.Rollout.Mode = meshv1alpha1.RolloutAutomatic
	if err := e.k8s.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	mi = e.waitReady(t, mi.Name, installTimeout)
	active := mi.Status.ActiveRevision
	e.ensureNamespace(t, "shop", map[string]string{"istio-injection": "enabled"})
	web := app("shop", "web", 2)
	if err := e.k8s.Create(ctx, web); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "web's pods injected and ready", func() error {
		pods := e.podsOf(t, "shop", "web")
		if len(pods) != 2 {
			return fmt.Errorf("%d pods", len(pods))
		}
		for _, p := range pods {
			if !hasSidecar(&p) || !podReady(&p) {
				return fmt.Errorf("pod %s: sidecar %t, ready %t", p.Name, hasSidecar(&p), podReady(&p))
			}
		}
		return nil
	})

	var configs corev1.ConfigMapList
	if err := e.k8s.List(ctx, &configs, client.InNamespace(mi.Spec.Namespace), client.MatchingLabels{render.LabelInjectionConfig: "true"}); err != nil || len(configs.Items) != 1 {
		t.Fatalf("the active revision's injection configuration: %d found (%v)", len(configs.Items), err)
	}
	real := configs.Items[0]
	var realCfg inject.Config
	if err := json.Unmarshal([]byte(real.Data[render.InjectionConfigKey]), &realCfg); err != nil {
		t.Fatal(err)
	}

	tenant := e.tenantClient(t)
	// What a tenant can put on its objects: every label, and the MeshInstall's
	// controller reference (as if its UID had leaked).
	forged := func(name, rev, v string, extra map[string]string) metav1.ObjectMeta {
		labels := map[string]string{render.LabelManagedBy: render.ManagedBy, render.LabelMeshInstall: mi.Name,
			render.LabelRevision: rev, render.LabelVersion: v}
		for k, val := range extra {
			labels[k] = val
		}
		return metav1.ObjectMeta{Namespace: tenantNS, Name: name, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: meshv1alpha1.GroupVersion.String(), Kind: "MeshInstall",
				Name: mi.Name, UID: mi.UID, Controller: ptr.To(true)}}}
	}
	withImage := func(rev, image string) map[string]string {
		cfg := map[string]any{}
		if err := json.Unmarshal([]byte(real.Data[render.InjectionConfigKey]), &cfg); err != nil {
			t.Fatal(err)
		}
		cfg["revision"], cfg["proxyImage"] = rev, image
		raw, _ := json.Marshal(cfg)
		return map[string]string{render.InjectionConfigKey: string(raw)}
	}
	injection := map[string]string{render.LabelInjectionConfig: "true"}
	forgedRouting := render.RoutingConfigMap(mi, revision.Routing{Tags: []string{"default", "prod"}, Active: "1-30-0"}.Data())
	forgedRouting.ObjectMeta = forged(render.RoutingConfigMapName, "", "", forgedRouting.Labels)
	delete(forgedRouting.Labels, render.LabelRevision)
	objects := []client.Object{
		&corev1.ConfigMap{ObjectMeta: forged(real.Name+"-1-30-0", "1-30-0", "1.30.0", injection), Data: withImage("1-30-0", "evil/proxy:2")},
		&appsv1.Deployment{ObjectMeta: forged(render.IstiodName("1-30-0"), "1-30-0", "1.30.0", nil),
			Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "forged"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "forged"}}, Spec: podSpec()}}},
	}
	// Several copies each of the active revision's configuration and of the
	// routing: were they believed, the real ones would rarely win. These
	// carry only the labels the injector reads (and meshkeeper's cache
	// selects), not the MeshInstall's (which would have the operator prune
	// them, as its own).
	for i := range 4 {
		objects = append(objects, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: fmt.Sprintf("%s-%d", real.Name, i),
				Labels: map[string]string{render.LabelManagedBy: render.ManagedBy, render.LabelInjectionConfig: "true", render.LabelRevision: active}},
			Data: withImage(active, "evil/proxy:1")})
		objects = append(objects, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: fmt.Sprintf("%s-%d", render.RoutingConfigMapName, i),
				Labels: map[string]string{render.LabelManagedBy: render.ManagedBy, render.LabelRouting: "true"}},
			Data: forgedRouting.Data})
	}
	// Pending for good (no node matches), stamped by a revision that does not exist.
	for i := range 15 {
		p := barePod(tenantNS, fmt.Sprintf("summoner-%d", i), map[string]string{inject.LabelInjectedBy: "1-30-0"})
		p.Annotations = map[string]string{inject.AnnotationRevision: "1-30-0", inject.AnnotationProxyVersion: "1.30.0"}
		p.Spec.NodeSelector = map[string]string{"nowhere": "true"}
		objects = append(objects, p)
	}
	for _, o := range objects {
		if err := tenant.Create(ctx, o); err != nil {
			t.Fatalf("the tenant creating %s: %v", o.GetName(), err)
		}
	}
	// Time for the operator to act on them, were it to believe them.
	time.Sleep(15 * time.Second)

	refused, wrong := 0, 0
	for i := range 20 {
		p := barePod("shop", fmt.Sprintf("after-%d", i), nil)
		if err := e.k8s.Create(ctx, p); err != nil {
			refused++
			t.Logf("pod %s refused: %v", p.Name, err)
			continue
		}
		if image := proxyImage(p); image != realCfg.ProxyImage {
			wrong++
			t.Logf("pod %s got proxy image %q", p.Name, image)
		}
	}
	if refused > 0 || wrong > 0 {
		t.Errorf("of 20 pods created after the forgeries, %d were refused and %d got another proxy image than %s", refused, wrong, realCfg.ProxyImage)
	}

	var deployments appsv1.DeploymentList
	if err := e.k8s.List(ctx, &deployments, client.InNamespace(mi.Spec.Namespace)); err != nil {
		t.Fatal(err)
	}
	for _, d := range deployments.Items {
		if strings.HasPrefix(d.Name, "istiod") && d.Name != render.IstiodName(active) {
			t.Errorf("Deployment %s/%s was created", d.Namespace, d.Name)
		}
	}
	if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(web), web); err != nil {
		t.Fatal(err)
	}
	if rf := web.Spec.Template.Annotations[meshv1alpha1.AnnotationRestartedFor]; rf != "" {
		t.Errorf("Deployment shop/web was restarted (for %s): the forged configuration was believed", rf)
	}
	got := e.getMeshInstall(t, mi.Name)
	if len(got.Status.Revisions) != 1 || got.Status.ActiveRevision != active {
		t.Errorf("status.revisions = %+v, active %s; want only %s", got.Status.Revisions, got.Status.ActiveRevision, active)
	}
	for _, c := range []struct {
		condition string
		want      metav1.ConditionStatus
	}{{meshv1alpha1.ConditionReady, metav1.ConditionTrue}, {meshv1alpha1.ConditionStalled, metav1.ConditionFalse}} {
		if cond := meta.FindStatusCondition(got.Status.Conditions, c.condition); cond == nil || cond.Status != c.want {
			t.Errorf("%s = %+v, want %s", c.condition, cond, c.want)
		}
	}
}

// proxyImage is the image of a pod's istio-proxy, native sidecar or container; "" without one.
func proxyImage(p *corev1.Pod) string {
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.Name == "istio-proxy" {
			return c.Image
		}
	}
	return ""
}

// tenantBulk is how much a tenant labels like meshkeeper's objects in the
// memory test: 48 ConfigMaps of 1000 KiB (under etcd's request limit).
const (
	tenantBulkObjects = 48
	tenantBulkSize    = 1000 << 10
	// tenantBulkBudget is what the operator's live heap may grow by
	// meanwhile (buffers of requests in flight): far less than the 47 MiB
	// a cache holding them would take.
	tenantBulkBudget = 16 << 20
)

// TestATenantsLabelledObjectsAreNotHeldInMemory: ConfigMaps a tenant
// labels like meshkeeper's, 47 MiB of them, do not grow the operator's
// memory: its cache holds meshkeeper's objects only in the namespaces it
// manages meshes in.
func TestATenantsLabelledObjectsAreNotHeldInMemory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Gateways = nil
	mi.Spec.Profile = meshv1alpha1.ProfileMinimal // the control plane only
	if err := e.k8s.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	e.waitReady(t, mi.Name, installTimeout)
	tenant := e.tenantClient(t)
	before := e.memory(t)
	for i := range tenantBulkObjects {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: fmt.Sprintf("bulk-%02d", i),
				Labels: map[string]string{render.LabelManagedBy: render.ManagedBy, render.LabelMeshInstall: mi.Name}},
			Data: map[string]string{"blob": strings.Repeat(string(rune('a'+i%26)), tenantBulkSize)},
		}
		if err := tenant.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(10 * time.Second) // for the watch events, were anything to cache them
	after := e.memory(t)
	grown := after.LiveHeap - before.LiveHeap
	t.Logf("operator live heap: %.1f MiB before, %.1f MiB after a tenant created %d labelled ConfigMaps of %d KiB (+%.1f MiB, budget %d MiB)",
		mib(before.LiveHeap), mib(after.LiveHeap), tenantBulkObjects, tenantBulkSize>>10, mib(grown), tenantBulkBudget>>20)
	if grown > tenantBulkBudget {
		t.Errorf("the operator's live heap grew by %.1f MiB for a tenant's labelled ConfigMaps; budget %d MiB", mib(grown), tenantBulkBudget>>20)
	}
	e.waitReady(t, mi.Name, 10*time.Second)
}
