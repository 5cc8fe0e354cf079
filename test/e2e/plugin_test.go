package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

var (
	pluginOnce  sync.Once
	pluginBuilt = make(chan struct{}) // closed when the build ended
	pluginBin   string
	pluginErr   error
)

// pluginRunner runs the kubectl-meshkeeper binary against e's cluster, as
// kubectl would (kubectl meshkeeper <args>).
type pluginRunner func(e *env, args ...string) (stdout string, err error)

// kubectlMeshkeeper starts building the plugin (once per run, beside the
// manager) while the test sets its cluster up, and returns its runner,
// which waits for the build.
func kubectlMeshkeeper(t *testing.T) pluginRunner {
	t.Helper()
	pluginOnce.Do(func() {
		go func() {
			defer close(pluginBuilt)
			pluginBin = filepath.Join(workDir, "kubectl-meshkeeper")
			cmd := exec.Command("go", "build", "-o", pluginBin, "./cmd/kubectl-meshkeeper")
			cmd.Dir = testenv.RepoRoot()
			if out, err := cmd.CombinedOutput(); err != nil {
				pluginErr = fmt.Errorf("building the plugin: %v\n%s", err, out)
			}
		}()
	})
	return func(e *env, args ...string) (string, error) {
		<-pluginBuilt
		if pluginErr != nil {
			return "", pluginErr
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, pluginBin, append(args, "--kubeconfig", e.cluster.Kubeconfig)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, errOut.String())
		}
		return out.String(), err
	}
}

// statusRow is one row of the revision table status prints.
type statusRow struct {
	weight, pods int
}

// parseStatusRevisions reads the REVISION … PODS UP-TO-DATE table of
// kubectl meshkeeper status: revision → weight and pods.
func parseStatusRevisions(out string) (map[string]statusRow, error) {
	rows := map[string]statusRow{}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(strings.TrimSpace(l), "REVISION ") {
			continue
		}
		for _, row := range lines[i+1:] {
			f := strings.Fields(row)
			if len(f) < 6 {
				break
			}
			weight, err1 := strconv.Atoi(strings.TrimSuffix(f[3], "%"))
			pods, err2 := strconv.Atoi(f[len(f)-2])
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("row %q", row)
			}
			rows[f[0]] = statusRow{weight: weight, pods: pods}
		}
		return rows, nil
	}
	return nil, fmt.Errorf("no revision table")
}

// clusterRevisions is the truth status must match: each revision's weight
// from the routing the injector reads, and its running pods by their stamps.
func (e *env) clusterRevisions(t *testing.T, meshNamespace string) map[string]statusRow {
	t.Helper()
	ctx := context.Background()
	cm := &corev1.ConfigMap{}
	if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: meshNamespace, Name: render.RoutingConfigMapName}, cm); err != nil {
		t.Fatal(err)
	}
	routing, err := revision.RoutingFromData(cm.Data)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]statusRow{routing.Active: {weight: 100}}
	if routing.Canary != "" {
		out[routing.Active] = statusRow{weight: int(100 - routing.Weight)}
		out[routing.Canary] = statusRow{weight: int(routing.Weight)}
	}
	var pods corev1.PodList
	if err := e.k8s.List(ctx, &pods); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		rev := p.Annotations[inject.AnnotationRevision]
		if rev == "" || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		r := out[rev]
		r.pods++
		out[rev] = r
	}
	return out
}

// checkPluginStatus waits until kubectl meshkeeper status agrees with the
// cluster (weights from the routing, pods by revision from their stamps)
// and its state line says state; it returns that output.
func (e *env) checkPluginStatus(t *testing.T, plugin pluginRunner, meshNamespace, state string) string {
	t.Helper()
	var out string
	eventually(t, 60*time.Second, "kubectl meshkeeper status matching the cluster, "+state, func() error {
		var err error
		if out, err = plugin(e, "status"); err != nil {
			return err
		}
		rows, err := parseStatusRevisions(out)
		if err != nil {
			return fmt.Errorf("%v:\n%s", err, out)
		}
		if want := e.clusterRevisions(t, meshNamespace); fmt.Sprint(rows) != fmt.Sprint(want) {
			return fmt.Errorf("status shows %v, the cluster %v:\n%s", rows, want, out)
		}
		if !strings.Contains(out, "\nState: "+state) {
			return fmt.Errorf("state is not %q:\n%s", state, out)
		}
		return nil
	})
	t.Logf("kubectl meshkeeper status:\n%s", out)
	return out
}

// recreateDeploymentName is a workload name the canary's 10% and 50%
// steps leave on the stable revision: only the last step moves it.
func recreateDeploymentName() string {
	for i := 0; ; i++ {
		name := fmt.Sprintf("recreate-%d", i)
		if !revision.OnCanary(appsNS, name, 50) {
			return name
		}
	}
}

// threeMinorJump is three minors above stableVer: meshkeeper's version
// table holds three minors (1.30 to 1.32), so the jump leaves it.
const threeMinorJump = "1.34.0"

// checkPluginPrecheck runs kubectl meshkeeper precheck before the upgrade:
// the three-minor jump is refused with a non-zero exit, and the API server
// then refuses that spec.version with the same words; the canary to
// canaryVer is allowed and lists the Recreate Deployment among the
// workloads a person must restart. It returns that line.
func (e *env) checkPluginPrecheck(t *testing.T, plugin pluginRunner, name, recreate string) string {
	t.Helper()
	out, err := plugin(e, "precheck", threeMinorJump)
	t.Logf("kubectl meshkeeper precheck %s: %v\n%s", threeMinorJump, err, out)
	_, verdict, found := strings.Cut(out, "Verdict: REFUSED: ")
	verdict, _, _ = strings.Cut(verdict, "\n")
	if err == nil || !found || verdict == "" {
		t.Errorf("precheck %s: exit %v, want a refusal:\n%s", threeMinorJump, err, out)
	}
	mi := e.getMeshInstall(t, name)
	mi.Spec.Version = threeMinorJump
	switch err := e.k8s.Update(context.Background(), mi); {
	case err == nil:
		t.Fatalf("spec.version %s was accepted, precheck said it would be refused", threeMinorJump)
	case !strings.Contains(err.Error(), verdict):
		t.Errorf("the API server refused %s with %q, precheck predicted %q", threeMinorJump, err, verdict)
	}

	out, err = plugin(e, "precheck", canaryVer)
	t.Logf("kubectl meshkeeper precheck %s: %v\n%s", canaryVer, err, out)
	if err != nil || !strings.Contains(out, "Path: canary: revision "+canaryRev) {
		t.Fatalf("precheck %s: %v, want a canary:\n%s", canaryVer, err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if entry := strings.TrimSpace(line); strings.HasPrefix(entry, "Deployment "+appsNS+"/"+recreate+" (Recreate strategy") {
			return entry
		}
	}
	t.Fatalf("precheck does not name the Recreate Deployment %s:\n%s", recreate, out)
	return ""
}

// restartByHand does what kubectl rollout restart does to a Deployment.
func (e *env) restartByHand(t *testing.T, namespace, name string) {
	t.Helper()
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, time.Now().Format(time.RFC3339))
	if err := e.k8s.Patch(context.Background(), d, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

// checkInjectAgainstIstioctl asks istioctl and kubectl meshkeeper about
// the same injected pod. istioctl's x check-inject reads only webhook
// entries named *.istio.io and x injector list only configurations
// labelled app=sidecar-injector, so on a meshkeeper mesh both find no
// injector (the README says why); kubectl meshkeeper check-inject names
// the entry and the revision.
func (e *env) checkInjectAgainstIstioctl(t *testing.T, istioctl istioctlRunner, plugin pluginRunner, rev string) {
	t.Helper()
	pods := e.podsOf(t, appsNS, workloadName(0))
	if len(pods) == 0 {
		t.Fatalf("no pod of %s", workloadName(0))
	}
	pod := pods[0].Name
	out, stderr, err := istioctl(e, "x", "check-inject", "-n", appsNS, pod)
	t.Logf("istioctl x check-inject: %v\n%s%s", err, out, stderr)
	if !strings.Contains(out+stderr, "no Istio injection hooks present") {
		t.Errorf("istioctl x check-inject found an injector on a meshkeeper mesh: what does it read now?\n%s%s", out, stderr)
	}
	out, stderr, err = istioctl(e, "x", "injector", "list")
	t.Logf("istioctl x injector list: %v\n%s%s", err, out, stderr)
	if !strings.Contains(out+stderr, "No Istio injection hooks present") {
		t.Errorf("istioctl x injector list found an injector on a meshkeeper mesh: what does it read now?\n%s%s", out, stderr)
	}
	out, err = plugin(e, "check-inject", "-n", appsNS, pod)
	t.Logf("kubectl meshkeeper check-inject: %v\n%s", err, out)
	for _, want := range []string{"injector entry: namespace.sidecar-injector.meshkeeper.dev (/inject/tag/default)", "revision: " + rev + ":", "runs revision " + rev + " now"} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("kubectl meshkeeper check-inject: %v, does not say %q:\n%s", err, want, out)
		}
	}
}
