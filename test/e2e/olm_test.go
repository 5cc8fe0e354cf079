package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/localcluster"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

const (
	olmNamespace       = "olm"
	operatorsNamespace = "operators"
	packageName        = "meshkeeper"
	operatorDeployment = "meshkeeper-controller-manager"
	operatorSA         = "meshkeeper-controller-manager"
)

func olmGVK(version, kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: "operators.coreos.com", Version: version, Kind: kind}
}

func olmObject(version, kind, namespace, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(olmGVK(version, kind))
	u.SetNamespace(namespace)
	u.SetName(name)
	return u
}

// TestOLMInstallsUpgradesAndUninstalls installs meshkeeper with real OLM v0
// from its file-based catalog, upgrades it through the channel's edge and
// uninstalls it. OLM's operators and opm run on the host; the operator's own
// pods are kwok's and run nothing, so a host process in OLM's install
// namespace plays them where the operator's behaviour matters.
func TestOLMInstallsUpgradesAndUninstalls(t *testing.T) {
	runsLong(t, 45*time.Second)
	t.Parallel()
	opm, olmBin := os.Getenv("MESHKEEPER_OPM"), os.Getenv("MESHKEEPER_OLM_BIN")
	if opm == "" || olmBin == "" {
		t.Fatal("MESHKEEPER_OPM and MESHKEEPER_OLM_BIN name opm and OLM's binaries (make olm-tools; make test-e2e sets them)")
	}
	ctx := context.Background()
	e := newCluster(t, 1)
	dir := filepath.Join(workDir, t.Name())

	// Two catalogs: the previous release alone, then every version.
	previous, current := releasedVersion(t), bundleVersion(t)
	oldCatalog, newCatalog := filepath.Join(dir, "catalog-old"), filepath.Join(dir, "catalog-new")
	makeCatalog(t, opm, oldCatalog, previous)
	makeCatalog(t, opm, newCatalog, "")

	olm, err := localcluster.StartOLM(ctx, e.k8s, e.cluster.Kubeconfig,
		localcluster.OLMOptions{BinDir: olmBin, CRDDir: olmCRDDir(t)}, filepath.Join(dir, "olm"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			fmt.Fprint(os.Stderr, olm.Logs(40))
		}
		olm.Stop()
	})
	server, err := localcluster.ServeCatalog(ctx, opm, oldCatalog, 0, filepath.Join(dir, "opm-old"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Stop() })

	e.ensureNamespace(t, operatorsNamespace, nil)
	og := olmObject("v1", "OperatorGroup", operatorsNamespace, "global-operators") // no targetNamespaces: AllNamespaces
	cs := olmObject("v1alpha1", "CatalogSource", olmNamespace, "meshkeeper-catalog")
	cs.Object["spec"] = map[string]any{"sourceType": "grpc", "address": server.Address(), "displayName": "meshkeeper"}
	sub := olmObject("v1alpha1", "Subscription", operatorsNamespace, packageName)
	sub.Object["spec"] = map[string]any{"name": packageName, "channel": "alpha", "source": cs.GetName(),
		"sourceNamespace": olmNamespace, "installPlanApproval": "Automatic"}
	for _, o := range []client.Object{og, cs, sub} {
		if err := e.k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("install", func(t *testing.T) {
		eventually(t, 60*time.Second, "CatalogSource READY", func() error {
			got := olmObject("v1alpha1", "CatalogSource", olmNamespace, cs.GetName())
			if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(got), got); err != nil {
				return err
			}
			if s, _, _ := unstructured.NestedString(got.Object, "status", "connectionState", "lastObservedState"); s != "READY" {
				return fmt.Errorf("connection state %q", s)
			}
			return nil
		})
		e.waitInstalled(t, previous)
		e.assertOperatorRBAC(t, previous)
	})

	t.Run("upgrade through the channel", func(t *testing.T) {
		// A new catalog image would be a new registry pod; here the same
		// address starts serving the catalog with the next version.
		port := server.Port
		server.Stop()
		if server, err = localcluster.ServeCatalog(ctx, opm, newCatalog, port, filepath.Join(dir, "opm-new")); err != nil {
			t.Fatal(err)
		}
		e.waitInstalled(t, current)
		eventually(t, 60*time.Second, "the previous CSV removed", func() error {
			old := olmObject("v1alpha1", "ClusterServiceVersion", operatorsNamespace, packageName+".v"+previous)
			if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(old), old); !apierrors.IsNotFound(err) {
				phase, _, _ := unstructured.NestedString(old.Object, "status", "phase")
				return fmt.Errorf("CSV %s still there (phase %s, err %v)", old.GetName(), phase, err)
			}
			return nil
		})
		e.assertOperatorRBAC(t, current)
	})

	// kwok's pods for the operator run nothing: a host process in the
	// install namespace, with the permissions-free client of the suite,
	// plays them from here on.
	mi := sample(t)
	t.Run("the operator in OLM's namespace installs a mesh and never injects its own namespace", func(t *testing.T) {
		op, err := localcluster.NewOperator(binary, e.cluster.Kubeconfig, filepath.Join(dir, "operator"))
		if err != nil {
			t.Fatal(err)
		}
		e.operator = op
		op.ExtraArgs = []string{"--namespace", operatorsNamespace}
		if err := op.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := e.k8s.Create(ctx, mi); err != nil {
			t.Fatal(err)
		}
		e.waitReady(t, mi.Name, installTimeout)

		// Both namespaces ask for injection; only the application's gets it.
		e.ensureNamespace(t, operatorsNamespace, map[string]string{"istio-injection": "enabled"})
		e.ensureNamespace(t, "shop", map[string]string{"istio-injection": "enabled"})
		for _, ns := range []string{operatorsNamespace, "shop"} {
			if err := e.k8s.Create(ctx, barePod(ns, "probe", nil)); err != nil {
				t.Fatal(err)
			}
		}
		for ns, want := range map[string]bool{operatorsNamespace: false, "shop": true} {
			p := &corev1.Pod{}
			if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "probe"}, p); err != nil {
				t.Fatal(err)
			}
			if hasSidecar(p) != want {
				t.Errorf("pod in %s: sidecar %v, want %v", ns, hasSidecar(p), want)
			}
		}
	})

	t.Run("uninstall leaves the mesh running", func(t *testing.T) {
		if err := e.operator.Stop(); err != nil {
			t.Fatal(err)
		}
		csv := olmObject("v1alpha1", "ClusterServiceVersion", operatorsNamespace, packageName+".v"+current)
		for _, o := range []client.Object{sub, csv} {
			if err := e.k8s.Delete(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 60*time.Second, "OLM removed the operator's Deployment", func() error {
			err := e.k8s.Get(ctx, client.ObjectKey{Namespace: operatorsNamespace, Name: operatorDeployment}, &appsv1.Deployment{})
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("deployment still there (%v)", err)
			}
			return nil
		})
		// What OLM removes it removes at once; give a garbage collector
		// that would follow an owner a moment more.
		time.Sleep(5 * time.Second)
		if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(mi), mi); err != nil {
			t.Fatalf("the MeshInstall is gone: %v", err)
		}
		d := &appsv1.Deployment{}
		if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.IstiodName(render.DefaultRevision)}, d); err != nil {
			t.Fatalf("istiod is gone: %v", err)
		}
		if d.Status.AvailableReplicas < 1 {
			t.Errorf("istiod has no available replicas: %+v", d.Status)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := e.k8s.Get(ctx, client.ObjectKey{Name: "meshinstalls.mesh.meshkeeper.dev"}, crd); err != nil {
			t.Errorf("the MeshInstall CRD is gone: %v", err)
		}
		// The injector's configuration stays (so do the pods it injected):
		// the mesh goes on when the operator comes back. Until then a new pod
		// of an injected namespace is refused (failurePolicy Fail, as
		// istiod's own injector would be).
		// (By name: the revision tag configurations are MutatingWebhookConfigurations too.)
		if err := e.k8s.Get(ctx, client.ObjectKey{Name: webhookconfig.InjectorName}, &admissionregistrationv1.MutatingWebhookConfiguration{}); err != nil {
			t.Errorf("the injector's webhook configuration is gone: %v", err)
		}
		if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "probe"}, &corev1.Pod{}); err != nil {
			t.Errorf("the injected pod is gone: %v", err)
		}
	})
}

// waitInstalled waits for OLM to install one version: its CSV Succeeded, the
// InstallPlan that made it Complete, the Deployment available with that
// version's image, and the MeshInstall CRD established.
func (e *env) waitInstalled(t *testing.T, version string) {
	t.Helper()
	ctx := context.Background()
	csvName := packageName + ".v" + version
	eventually(t, 2*time.Minute, "CSV "+csvName+" Succeeded", func() error {
		csv := olmObject("v1alpha1", "ClusterServiceVersion", operatorsNamespace, csvName)
		if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(csv), csv); err != nil {
			return err
		}
		if phase, _, _ := unstructured.NestedString(csv.Object, "status", "phase"); phase != "Succeeded" {
			reason, _, _ := unstructured.NestedString(csv.Object, "status", "message")
			return fmt.Errorf("phase %q: %s", phase, reason)
		}
		return nil
	})
	eventually(t, 30*time.Second, "InstallPlan for "+csvName+" Complete", func() error {
		plans := &unstructured.UnstructuredList{}
		plans.SetGroupVersionKind(olmGVK("v1alpha1", "InstallPlanList"))
		if err := e.k8s.List(ctx, plans, client.InNamespace(operatorsNamespace)); err != nil {
			return err
		}
		for _, p := range plans.Items {
			names, _, _ := unstructured.NestedStringSlice(p.Object, "spec", "clusterServiceVersionNames")
			if !slices.Contains(names, csvName) {
				continue
			}
			if phase, _, _ := unstructured.NestedString(p.Object, "status", "phase"); phase != "Complete" {
				return fmt.Errorf("InstallPlan %s: phase %q", p.GetName(), phase)
			}
			return nil
		}
		return errors.New("no InstallPlan names it")
	})
	eventually(t, 60*time.Second, "the operator Deployment available at "+version, func() error {
		d := &appsv1.Deployment{}
		if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: operatorsNamespace, Name: operatorDeployment}, d); err != nil {
			return err
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(img, ":v"+version) {
			return fmt.Errorf("image %s", img)
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue && d.Status.UpdatedReplicas == *d.Spec.Replicas {
				return nil
			}
		}
		return fmt.Errorf("status %+v", d.Status)
	})
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := e.k8s.Get(ctx, client.ObjectKey{Name: "meshinstalls.mesh.meshkeeper.dev"}, crd); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(crd.Status.Conditions, func(c apiextensionsv1.CustomResourceDefinitionCondition) bool {
		return c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue
	}) {
		t.Errorf("the MeshInstall CRD is not established: %+v", crd.Status.Conditions)
	}
}

// assertOperatorRBAC checks that what the operator's ServiceAccount is bound
// to is exactly what the CSV asks for: its clusterPermissions cluster-wide
// and its permissions in the install namespace (and, the OperatorGroup
// being AllNamespaces, cluster-wide too).
func (e *env) assertOperatorRBAC(t *testing.T, version string) {
	t.Helper()
	ctx := context.Background()
	csv := olmObject("v1alpha1", "ClusterServiceVersion", operatorsNamespace, packageName+".v"+version)
	if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(csv), csv); err != nil {
		t.Fatal(err)
	}
	want := func(field string) []rbacv1.PolicyRule {
		perms, _, _ := unstructured.NestedSlice(csv.Object, "spec", "install", "spec", field)
		var rules []rbacv1.PolicyRule
		for _, p := range perms {
			var perm struct {
				ServiceAccountName string              `json:"serviceAccountName"`
				Rules              []rbacv1.PolicyRule `json:"rules"`
			}
			m, _ := p.(map[string]any)
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &perm); err != nil {
				t.Fatal(err)
			}
			if perm.ServiceAccountName == operatorSA {
				rules = append(rules, perm.Rules...)
			}
		}
		return rules
	}
	subject := func(subjects []rbacv1.Subject) bool {
		return slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
			return s.Kind == rbacv1.ServiceAccountKind && s.Name == operatorSA && s.Namespace == operatorsNamespace
		})
	}
	eventually(t, 30*time.Second, "the ServiceAccount's roles are the CSV's", func() error {
		var got []rbacv1.PolicyRule
		var crbs rbacv1.ClusterRoleBindingList
		if err := e.k8s.List(ctx, &crbs); err != nil {
			return err
		}
		for _, b := range crbs.Items {
			if !subject(b.Subjects) || b.Labels["olm.owner"] != csv.GetName() {
				continue
			}
			cr := &rbacv1.ClusterRole{}
			if err := e.k8s.Get(ctx, client.ObjectKey{Name: b.RoleRef.Name}, cr); err != nil {
				return err
			}
			got = append(got, cr.Rules...)
		}
		// With an AllNamespaces OperatorGroup OLM grants the CSV's namespaced
		// permissions cluster-wide as well.
		if err := sameRules(got, append(want("clusterPermissions"), want("permissions")...)); err != nil {
			return fmt.Errorf("cluster-wide: %w", err)
		}
		got = nil
		var rbs rbacv1.RoleBindingList
		if err := e.k8s.List(ctx, &rbs, client.InNamespace(operatorsNamespace)); err != nil {
			return err
		}
		for _, b := range rbs.Items {
			if !subject(b.Subjects) || b.Labels["olm.owner"] != csv.GetName() {
				continue
			}
			r := &rbacv1.Role{}
			if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: operatorsNamespace, Name: b.RoleRef.Name}, r); err != nil {
				return err
			}
			got = append(got, r.Rules...)
		}
		if err := sameRules(got, want("permissions")); err != nil {
			return fmt.Errorf("in %s: %w", operatorsNamespace, err)
		}
		return nil
	})
}

// sameRules compares two rule lists as sets of (group, resource, verb) grants.
func sameRules(got, want []rbacv1.PolicyRule) error {
	if len(want) == 0 {
		return errors.New("the CSV grants nothing")
	}
	flatten := func(rules []rbacv1.PolicyRule) map[string]bool {
		out := map[string]bool{}
		for _, r := range rules {
			for _, g := range append(r.APIGroups, r.NonResourceURLs...) {
				for _, res := range append(r.Resources, "") {
					if res == "" && len(r.Resources) > 0 {
						continue
					}
					for _, v := range r.Verbs {
						out[g+"/"+res+":"+v+"@"+strings.Join(r.ResourceNames, ",")] = true
					}
				}
			}
		}
		return out
	}
	g, w := flatten(got), flatten(want)
	var missing, extra []string
	for k := range w {
		if !g[k] {
			missing = append(missing, k)
		}
	}
	for k := range g {
		if !w[k] {
			extra = append(extra, k)
		}
	}
	if len(missing)+len(extra) > 0 {
		slices.Sort(missing)
		slices.Sort(extra)
		return fmt.Errorf("missing %v, extra %v", missing, extra)
	}
	return nil
}

// makeCatalog builds a catalog with hack/catalog.sh, up to a version ("" for all).
func makeCatalog(t *testing.T, opm, out, upTo string) {
	t.Helper()
	args := []string{out}
	if upTo != "" {
		args = append(args, upTo)
	}
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "hack", "catalog.sh"), args...)
	cmd.Env = append(os.Environ(), "OPM="+opm)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/catalog.sh: %v\n%s", err, out)
	}
}

// bundleVersion is the version of the checked-in bundle.
func bundleVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "bundle", "manifests", packageName+".clusterserviceversion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "  version: "); ok {
			return v
		}
	}
	t.Fatal("no spec.version in the bundle's CSV")
	return ""
}

// releasedVersion is the newest release before the bundle's version.
func releasedVersion(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "catalog", "releases", packageName+".v*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no released bundles in catalog/releases (%v)", err)
	}
	current := bundleVersion(t)
	var newest string
	for _, f := range files {
		v := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), packageName+".v"), ".yaml")
		if v != current && (newest == "" || semver.MustParse(newest).LessThan(semver.MustParse(v))) {
			newest = v
		}
	}
	if newest == "" {
		t.Fatal("no release before the bundle's version")
	}
	return newest
}

// olmCRDDir is OLM's CRDs in the module hack/tools/olm builds OLM from.
func olmCRDDir(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/operator-framework/operator-lifecycle-manager")
	cmd.Dir = filepath.Join(testenv.RepoRoot(), "hack", "tools", "olm")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("finding OLM's module: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "deploy", "chart", "crds")
}
