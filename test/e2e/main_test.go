// Package e2e runs meshkeeper end to end on simulated clusters: a real
// kube-apiserver, etcd, kube-controller-manager and kube-scheduler with kwok
// nodes, and the operator as a process on the host. Every test gets a fresh
// cluster with a unique name, deleted when the test ends, also on failure or
// Ctrl-C, and runs in parallel with the others (they mostly wait on their
// clusters): E2E_PARALLEL clusters at a time, the longest tests first (see
// clusterSlots), so that the suite's wall time is not their length added to
// everyone else's. A failed test keeps its
// cluster's logs and a dump of the objects involved in a folder it prints,
// under E2E_ARTIFACTS_DIR (see saveArtifacts).
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/localcluster"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

var (
	tools   localcluster.Tools
	binary  string
	workDir string

	liveMu sync.Mutex
	live   = map[*env]bool{}
)

// env is one test's cluster, operator and client.
type env struct {
	cluster  *localcluster.Cluster
	operator *localcluster.Operator
	// replicas are further operator processes (startReplica), stopped with it.
	replicas []*localcluster.Operator
	cfg      *rest.Config
	k8s      client.Client
	// istiods are real istiod processes (startIstiod), stopped with the cluster.
	istiodMu sync.Mutex
	istiods  []*localcluster.Istiod
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// The tests' clients log nothing worth reading; the operator logs to its own file.
	ctrllog.SetLogger(logr.Discard())
	var err error
	if tools, err = localcluster.ToolsFromEnv(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if workDir, err = os.MkdirTemp("", "meshkeeper-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)
	binary = filepath.Join(workDir, "manager")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", binary, ".")
	cmd.Dir = testenv.RepoRoot()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the manager:", err)
		return 1
	}
	fmt.Printf("e2e: built the manager in %s\n", time.Since(start).Round(time.Millisecond))

	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-interrupted
		liveMu.Lock()
		for e := range live {
			e.teardown()
		}
		os.Exit(130)
	}()
	code := m.Run()
	fmt.Print(clusterSlots.summary())
	return code
}

// newEnv starts a cluster with nodes kwok nodes and the operator (with
// extra flags), and tears both down when the test ends. On failure it prints
// the end of the operator's log and keeps the artifacts.
func newEnv(t *testing.T, nodes int, operatorArgs ...string) *env {
	t.Helper()
	return newEnvWith(t, nodes, func(o *localcluster.Operator) { o.ExtraArgs = operatorArgs })
}

// newEnvWith is newEnv with the operator set up by configure before it starts.
func newEnvWith(t *testing.T, nodes int, configure func(*localcluster.Operator)) *env {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(workDir, strings.ReplaceAll(t.Name(), "/", "_"))
	clusterSlots.acquire(t) // before the clock starts: newCluster would wait for it
	start := time.Now()
	e := newCluster(t, nodes)
	cluster := e.cluster
	var err error
	if err := localcluster.InstallCRD(ctx, e.k8s, testenv.RepoRoot()); err != nil {
		t.Fatal(err)
	}
	if err := localcluster.EnsureNamespace(ctx, e.k8s, "meshkeeper-system", nil); err != nil {
		t.Fatal(err)
	}
	if e.operator, err = localcluster.NewOperator(binary, cluster.Kubeconfig, dir); err != nil {
		t.Fatal(err)
	}
	configure(e.operator)
	if err := e.operator.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster %s and operator ready in %s", cluster.Name, time.Since(start).Round(time.Millisecond))
	return e
}

// newCluster starts a cluster with nodes kwok nodes and a client for it,
// without the operator or its CRD, and deletes it when the test ends.
func newCluster(t *testing.T, nodes int) *env {
	t.Helper()
	clusterSlots.acquire(t)
	name := localcluster.UniqueName("mk-e2e")
	cluster, err := localcluster.Create(context.Background(), tools, name, workDir, nodes)
	if err != nil {
		t.Fatalf("%v\nartifacts of the failed test: %s", err, saveFailedClusterLogs(t, localcluster.FailedLogsDir(workDir, name)))
	}
	e := &env{cluster: cluster}
	liveMu.Lock()
	live[e] = true
	liveMu.Unlock()
	t.Cleanup(func() {
		e.reportRestarts(t)
		if t.Failed() {
			e.printOperatorLog()
			e.printIstiodLogs()
			e.printClusterState()
			e.saveArtifacts(t)
		}
		liveMu.Lock()
		delete(live, e)
		liveMu.Unlock()
		e.teardown()
	})
	if e.cfg, err = cluster.RESTConfig(); err != nil {
		t.Fatal(err)
	}
	if e.k8s, err = client.New(e.cfg, client.Options{Scheme: testenv.Scheme()}); err != nil {
		t.Fatal(err)
	}
	return e
}

// reportRestarts logs what the harness started again during the test, as
// a kubelet would have: cluster components that exited, and operators that
// exited on their own. An operator's exit other than a lost leadership
// (which a stalled API server causes, and after which a replica exits by
// design) is a crash, and fails the test.
func (e *env) reportRestarts(t *testing.T) {
	for _, r := range e.cluster.Restarts() {
		t.Logf("cluster %s: %s", e.cluster.Name, r)
	}
	for _, o := range append([]*localcluster.Operator{e.operator}, e.replicas...) {
		if o == nil {
			continue
		}
		for _, exit := range o.Exits() {
			if strings.Contains(exit.LastLog, "leader election lost") {
				t.Logf("operator %s %s", o.Dir, exit)
			} else {
				t.Errorf("operator %s %s", o.Dir, exit)
			}
		}
	}
}

func (e *env) teardown() {
	for _, i := range e.runningIstiods() {
		i.Stop()
	}
	for _, r := range e.replicas {
		_ = r.Stop()
	}
	if e.operator != nil {
		_ = e.operator.Stop()
	}
	if err := e.cluster.Delete(); err != nil {
		fmt.Fprintln(os.Stderr, "deleting the cluster:", err)
	}
}

func (e *env) printOperatorLog() {
	for _, o := range append([]*localcluster.Operator{e.operator}, e.replicas...) {
		if o != nil {
			printLog(o)
		}
	}
}

func printLog(o *localcluster.Operator) {
	data, err := os.ReadFile(o.LogPath())
	if err != nil {
		return
	}
	// The readiness probe's failures before the operator is ready say nothing.
	lines := slices.DeleteFunc(strings.Split(string(data), "\n"), func(l string) bool { return strings.Contains(l, "healthz check failed") })
	if len(lines) > 150 {
		lines = lines[len(lines)-150:]
	}
	fmt.Fprintf(os.Stderr, "--- last lines of %s ---\n%s\n", o.LogPath(), strings.Join(lines, "\n"))
}

// printClusterState prints what a failed test's cluster was doing: the
// mesh's Deployments, ReplicaSets and pods, and the end of its controllers'
// logs (the whole logs are among the artifacts, see saveArtifacts).
func (e *env) printClusterState() {
	var mis meshv1alpha1.MeshInstallList
	_ = e.k8s.List(context.Background(), &mis)
	e.writeClusterState(os.Stderr, meshNamespaces(mis.Items))
	for _, component := range []string{"kube-controller-manager", "kube-scheduler", "kwok-controller"} {
		fmt.Fprintf(os.Stderr, "--- %s ---\n%s\n", component, e.cluster.Logs(component, 15))
	}
}
