// Package e2e runs meshkeeper end to end on a simulated cluster: a real
// kube-apiserver, etcd, kube-controller-manager and kube-scheduler with kwok
// nodes, and the operator as a process on the host. Every run uses a fresh
// cluster with a unique name and deletes it, also on failure.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/localcluster"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

var (
	cluster  *localcluster.Cluster
	operator *localcluster.Operator
	cfg      *rest.Config
	k8s      client.Client
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	tools, err := localcluster.ToolsFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "meshkeeper-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)

	step := func(name string, f func() error) error {
		start := time.Now()
		err := f()
		fmt.Printf("e2e setup: %s (%s)\n", name, time.Since(start).Round(time.Millisecond))
		return err
	}
	binary := filepath.Join(dir, "manager")
	if err := step("build the manager", func() error {
		cmd := exec.Command("go", "build", "-o", binary, ".")
		cmd.Dir = testenv.RepoRoot()
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return cmd.Run()
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	ctx := context.Background()
	name := localcluster.UniqueName("mk-e2e")
	if err := step("create cluster "+name, func() (err error) {
		cluster, err = localcluster.Create(ctx, tools, name, dir, 2)
		return err
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Always delete the cluster: on return, and on Ctrl-C.
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-interrupted
		cleanup()
		os.Exit(130)
	}()
	defer cleanup()

	if err := step("install the CRD and start the operator", func() error { return setup(ctx, binary, dir) }); err != nil {
		fmt.Fprintln(os.Stderr, err)
		printOperatorLog()
		return 1
	}
	code = m.Run()
	if code != 0 {
		printOperatorLog()
	}
	return code
}

func cleanup() {
	if operator != nil {
		_ = operator.Stop()
	}
	if cluster != nil {
		if err := cluster.Delete(); err != nil {
			fmt.Fprintln(os.Stderr, "deleting the cluster:", err)
		}
	}
}

func printOperatorLog() {
	if operator == nil {
		return
	}
	data, err := os.ReadFile(operator.LogPath())
	if err != nil {
		return
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) > 200 {
		lines = lines[len(lines)-200:]
	}
	fmt.Fprintf(os.Stderr, "--- last operator log lines ---\n%s\n", strings.Join(lines, "\n"))
}

func setup(ctx context.Context, binary, dir string) error {
	var err error
	if cfg, err = cluster.RESTConfig(); err != nil {
		return err
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()}); err != nil {
		return err
	}
	if err := localcluster.InstallCRD(ctx, k8s, testenv.RepoRoot()); err != nil {
		return err
	}
	if err := localcluster.EnsureNamespace(ctx, k8s, "meshkeeper-system", nil); err != nil {
		return err
	}
	operator, err = localcluster.NewOperator(binary, cluster.Kubeconfig, filepath.Join(dir, "operator"))
	if err != nil {
		return err
	}
	// Short-lived serving certificates: they rotate every 30s during the whole suite.
	operator.ExtraArgs = []string{"--webhook-cert-validity=45s"}
	return operator.Start(ctx)
}
