package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/localcluster"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// Names the chart (as config/default) gives the operator's objects.
const (
	deployNamespace      = "meshkeeper-system"
	deployServiceAccount = "meshkeeper-controller-manager"
	deployManager        = "meshkeeper-controller-manager"
)

// TestHelmChartInstallsUpgradesAndItsPermissionsSuffice installs
// charts/meshkeeper (generated from config/default, what `make deploy`
// applies) with Helm's Go SDK, as `helm install` does, to a cluster that
// already has the MeshInstall CRD: every object must apply, and the
// manager's Deployment must roll out its two replicas. `helm upgrade` to a
// newer chart version with other values changes the Deployment. Then the
// operator runs with nothing but the installed ServiceAccount's
// permissions (its own process, as if from a fresh start) and installs,
// reports, serves metrics to an authorized scraper and uninstalls a mesh
// without being refused once. `helm uninstall` last removes what the
// chart installed, but the CRD and the namespace.
func TestHelmChartInstallsUpgradesAndItsPermissionsSuffice(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	ctx := context.Background()
	ch := loadChart(t)

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"helm install applies every object of the chart", func(t *testing.T) {
			rel := e.helmInstall(t, deployNamespace, ch, nil)
			if rel.Info.Status != "deployed" || rel.Version != 1 {
				t.Errorf("release %s: status %s, revision %d", rel.Name, rel.Info.Status, rel.Version)
			}
		}},
		{"the manager's Deployment runs two replicas", func(t *testing.T) {
			e.waitManager(t, 2, ch.Metadata.Version)
		}},
		{"the operator's ServiceAccount and roles exist", func(t *testing.T) {
			for _, want := range []struct{ kind, namespace, name string }{
				{"ServiceAccount", deployNamespace, deployServiceAccount},
				{"ClusterRole", "", "meshkeeper-manager-role"},
				{"ClusterRoleBinding", "", "meshkeeper-manager-rolebinding"},
				{"Role", deployNamespace, "meshkeeper-manager-role"},
				{"RoleBinding", deployNamespace, "meshkeeper-manager-rolebinding"},
				{"Role", deployNamespace, "meshkeeper-leader-election-role"},
				{"RoleBinding", deployNamespace, "meshkeeper-leader-election-rolebinding"},
				{"ClusterRole", "", "meshkeeper-metrics-auth-role"},
				{"ClusterRoleBinding", "", "meshkeeper-metrics-auth-rolebinding"},
				{"ClusterRole", "", localcluster.MetricsReaderRole},
			} {
				got := &unstructured.Unstructured{}
				got.SetAPIVersion("v1")
				if want.kind != "ServiceAccount" {
					got.SetAPIVersion("rbac.authorization.k8s.io/v1")
				}
				got.SetKind(want.kind)
				if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: want.namespace, Name: want.name}, got); err != nil {
					t.Errorf("%s %s: %v", want.kind, want.name, err)
				}
			}
		}},
		{"helm upgrade to a newer chart version with other values changes the Deployment", func(t *testing.T) {
			newer := *ch
			meta := *ch.Metadata
			meta.Version = semver.MustParse(ch.Metadata.Version).IncPatch().String()
			newer.Metadata = &meta
			memory := resource.MustParse("512Mi")
			rel := e.helmUpgrade(t, deployNamespace, &newer, map[string]any{
				"replicaCount": 3,
				"resources":    map[string]any{"limits": map[string]any{"memory": memory.String()}},
			})
			if rel.Version != 2 || rel.Chart.Metadata.Version != meta.Version {
				t.Errorf("release revision %d of chart %s, want revision 2 of %s", rel.Version, rel.Chart.Metadata.Version, meta.Version)
			}
			d := e.waitManager(t, 3, meta.Version)
			if got := d.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]; !got.Equal(memory) {
				t.Errorf("the manager's memory limit is %s, want %s", &got, &memory)
			}
		}},
		{"the operator installs and removes a mesh with the ServiceAccount's permissions only", func(t *testing.T) {
			e.restartAsDeployedServiceAccount(t)
			mi := sample(t)
			if err := e.k8s.Create(ctx, mi); err != nil {
				t.Fatal(err)
			}
			e.waitReady(t, mi.Name, installTimeout)
			eventually(t, 30*time.Second, "metrics, authorized by the operator's own TokenReviews", func() error {
				body, err := e.operator.Metrics()
				if err != nil {
					return err
				}
				if want := `meshkeeper_meshinstall_ready{meshinstall="default"} 1`; !strings.Contains(body, want) {
					return fmt.Errorf("no %s in the metrics", want)
				}
				return nil
			})
			if err := e.k8s.Delete(ctx, mi); err != nil {
				t.Fatal(err)
			}
			eventually(t, 2*time.Minute, "the MeshInstall's objects removed and its finalizer released", func() error {
				err := e.k8s.Get(ctx, client.ObjectKeyFromObject(mi), &meshv1alpha1.MeshInstall{})
				if apierrors.IsNotFound(err) {
					return nil
				}
				return errors.Join(err, errors.New("the MeshInstall is still there"))
			})
			if refused := forbiddenLines(t, e.operator.LogPath()); len(refused) > 0 {
				t.Errorf("the API server refused the operator %d times, first: %s", len(refused), refused[0])
			}
		}},
		{"helm uninstall removes what the chart installed but the CRD and the namespace", func(t *testing.T) {
			e.helmUninstall(t, deployNamespace)
			eventually(t, time.Minute, "the chart's objects deleted", func() error {
				for _, o := range []client.Object{
					&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: deployNamespace, Name: deployManager}},
					&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: deployNamespace, Name: deployServiceAccount}},
					&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "meshkeeper-manager-role"}},
				} {
					if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(o), o); !apierrors.IsNotFound(err) {
						return fmt.Errorf("%T %s: %v", o, o.GetName(), err)
					}
				}
				return nil
			})
			for _, o := range []client.Object{
				&apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "meshinstalls.mesh.meshkeeper.dev"}},
				&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: deployNamespace}},
			} {
				if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil || o.GetDeletionTimestamp() != nil {
					t.Errorf("%T %s after helm uninstall: %v, deleting %v", o, o.GetName(), err, o.GetDeletionTimestamp())
				}
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			return
		}
	}
}

// waitManager waits for the manager's Deployment to have replicas
// available, of the chart version (its helm.sh/chart label), and returns it.
func (e *env) waitManager(t *testing.T, replicas int32, chartVersion string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	eventually(t, time.Minute, fmt.Sprintf("%d available replicas of chart %s", replicas, chartVersion), func() error {
		if err := e.k8s.Get(context.Background(), client.ObjectKey{Namespace: deployNamespace, Name: deployManager}, d); err != nil {
			return err
		}
		if chart := d.Labels["helm.sh/chart"]; chart != "meshkeeper-"+chartVersion {
			return fmt.Errorf("chart %s", chart)
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != replicas || d.Status.AvailableReplicas != replicas || d.Status.UpdatedReplicas != replicas {
			return fmt.Errorf("replicas %v, status %+v", d.Spec.Replicas, d.Status)
		}
		return nil
	})
	return d
}

// restartAsDeployedServiceAccount replaces the operator, which runs as the
// cluster's admin, with one whose kubeconfig holds a token of the deployed
// ServiceAccount. What the first left behind (the webhook certificate
// Secret, the validator's configuration, the leader election Lease) is
// deleted, so the second creates each of them itself.
func (e *env) restartAsDeployedServiceAccount(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := e.operator.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: deployNamespace, Name: "meshkeeper-webhook-certs"}},
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: deployNamespace, Name: "meshkeeper.mesh.meshkeeper.dev"}},
		&unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
			"metadata": map[string]any{"name": webhookconfig.ValidatorName},
		}},
	} {
		if err := client.IgnoreNotFound(e.k8s.Delete(ctx, o)); err != nil {
			t.Fatal(err)
		}
	}
	token, _, err := localcluster.ServiceAccountToken(ctx, e.cfg, deployNamespace, deployServiceAccount, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.operator.Dir, "as-serviceaccount")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := localcluster.WriteTokenKubeconfig(e.cluster.Kubeconfig, token, kubeconfig); err != nil {
		t.Fatal(err)
	}
	op, err := localcluster.NewOperator(binary, kubeconfig, dir)
	if err != nil {
		t.Fatal(err)
	}
	op.AdminKubeconfig = e.cluster.Kubeconfig // to set up the metrics scraper
	e.operator = op                           // stopped, and its log printed, by the test's cleanup
	if err := op.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// forbiddenLines are the lines of a log where RBAC refused a ServiceAccount a request.
func forbiddenLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `is forbidden: User "system:serviceaccount:`) {
			out = append(out, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
