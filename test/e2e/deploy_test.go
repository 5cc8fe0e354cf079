package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/localcluster"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// deployFieldOwner applies config/default, as `kubectl apply --server-side` would.
const deployFieldOwner = client.FieldOwner("meshkeeper-e2e-deploy")

// Names config/default gives the operator's objects.
const (
	deployNamespace      = "meshkeeper-system"
	deployServiceAccount = "meshkeeper-controller-manager"
)

// TestDeploymentAppliesAndItsPermissionsSuffice applies config/default, as
// `make deploy` does, with server-side apply to a cluster that already has
// the MeshInstall CRD: every object must apply without a conflict, and the
// manager's Deployment must roll out its two replicas. Then the operator
// runs with nothing but the deployed ServiceAccount's permissions (its own
// process, as if from a fresh start) and installs, reports, serves metrics
// to an authorized scraper and uninstalls a mesh without being refused once.
func TestDeploymentAppliesAndItsPermissionsSuffice(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	ctx := context.Background()
	objs := kustomizeBuild(t, "config/default")

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"every object applies with server-side apply", func(t *testing.T) {
			for _, o := range objs {
				gvk := o.GroupVersionKind()
				if _, err := e.k8s.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); meta.IsNoMatchError(err) && gvk.Group == "monitoring.coreos.com" {
					t.Logf("skipping %s %s: the Prometheus Operator's CRDs are not installed", gvk.Kind, o.GetName())
					continue
				}
				if err := e.k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), deployFieldOwner); err != nil {
					t.Errorf("applying %s %s: %v", gvk.Kind, o.GetName(), err)
				}
			}
		}},
		{"the manager's Deployment runs two replicas", func(t *testing.T) {
			eventually(t, time.Minute, "two available replicas", func() error {
				d := &appsv1.Deployment{}
				if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: deployNamespace, Name: "meshkeeper-controller-manager"}, d); err != nil {
					return err
				}
				if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 || d.Status.AvailableReplicas != 2 {
					return fmt.Errorf("replicas %v, status %+v", d.Spec.Replicas, d.Status)
				}
				return nil
			})
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
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			return
		}
	}
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

// kustomizeBuild builds a kustomization of the repository with the
// kustomize of MESHKEEPER_KUSTOMIZE (which the Makefile sets) or of PATH.
func kustomizeBuild(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	kustomize := os.Getenv("MESHKEEPER_KUSTOMIZE")
	if kustomize == "" {
		var err error
		if kustomize, err = exec.LookPath("kustomize"); err != nil {
			t.Fatal("MESHKEEPER_KUSTOMIZE is not set and there is no kustomize on PATH: run through `make test-e2e`, which builds it")
		}
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(kustomize, "build", filepath.Join(testenv.RepoRoot(), dir))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", dir, err, stderr.String())
	}
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(&stdout, 4096)
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("kustomize build %s: %v", dir, err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	if len(objs) == 0 {
		t.Fatalf("kustomize build %s produced nothing", dir)
	}
	return objs
}
