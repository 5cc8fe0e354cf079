// Package localcluster runs the simulated cluster meshkeeper's demo and
// end-to-end tests use: a real kube-apiserver, etcd, kube-controller-manager
// and kube-scheduler (built from Go modules by `make k8s-tools`) with kwok
// nodes that mark pods Running and Ready without containers, plus the
// operator itself as a process on the host.
package localcluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Tools locates the binaries the cluster is made of.
type Tools struct {
	// K8sBin holds kube-apiserver, kube-controller-manager, kube-scheduler and etcd.
	K8sBin string
	// KwokBin holds kwok and kwokctl.
	KwokBin string
}

// ToolsFromEnv reads MESHKEEPER_K8S_BIN and MESHKEEPER_KWOK_BIN, which the
// Makefile sets after building the tools.
func ToolsFromEnv() (Tools, error) {
	t := Tools{K8sBin: os.Getenv("MESHKEEPER_K8S_BIN"), KwokBin: os.Getenv("MESHKEEPER_KWOK_BIN")}
	if t.K8sBin == "" || t.KwokBin == "" {
		return t, fmt.Errorf("MESHKEEPER_K8S_BIN and MESHKEEPER_KWOK_BIN are not set: run through `make test-e2e` or `make demo`, which build the local Kubernetes and kwok first")
	}
	for _, p := range []string{
		filepath.Join(t.K8sBin, "kube-apiserver"), filepath.Join(t.K8sBin, "etcd"),
		filepath.Join(t.K8sBin, "kube-controller-manager"), filepath.Join(t.K8sBin, "kube-scheduler"),
		filepath.Join(t.KwokBin, "kwok"), filepath.Join(t.KwokBin, "kwokctl"),
	} {
		if _, err := os.Stat(p); err != nil {
			return t, fmt.Errorf("missing tool: %w", err)
		}
	}
	return t, nil
}

// Cluster is a running simulated cluster.
type Cluster struct {
	Name string
	// Kubeconfig is the path of a kubeconfig for the cluster (admin).
	Kubeconfig string
	tools      Tools
	// ports are its components' ports, reserved until it is deleted
	// (reservePorts); controllerManagerPort and schedulerPort are their
	// secure ports.
	ports                                []int
	controllerManagerPort, schedulerPort int
	// supervisor restarts exited components (nil for an attached cluster).
	supervisor *supervisor
}

// UniqueName returns a cluster name no other run on this machine uses.
func UniqueName(prefix string) string {
	return prefix + "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano()%100000, 10)
}

// creating serialises cluster creation on this process, so that clusters
// do not all boot at once.
var creating sync.Mutex

// Create starts a cluster with the given number of kwok nodes; the
// kubeconfig is written to dir (the user's ~/.kube/config is left alone).
// Clusters may be created from several goroutines; they are made one at a time.
//
// Every component listens on a port picked at random and reserved until
// the cluster is deleted (reservePorts): kwokctl's own choice is the
// highest port free at that moment, which two creations at once (two test
// processes: `make test` runs the unit and e2e suites side by side) pick
// alike.
//
// When the cluster does not come up, its components' logs are kept in
// FailedLogsDir(dir, name) before it is deleted.
//
// The controller manager and the scheduler exit when the API server stalls
// for 10 s (as on a busy 2-core machine running four clusters): an elected
// one when it misses a lease renewal, a starting one when the API server is
// not healthy in time. Nothing restarted them (no kubelet here), and the
// cluster silently stopped creating ReplicaSets and scheduling pods for the
// rest of the test. So they run without leader election (each is the
// cluster's only instance: there is nothing to elect), and a supervisor
// starts any component that exits again, as the kubelet would (Restarts
// lists them).
func Create(ctx context.Context, tools Tools, name, dir string, nodes int) (*Cluster, error) {
	creating.Lock()
	defer creating.Unlock()
	c := &Cluster{Name: name, Kubeconfig: filepath.Join(dir, name+".kubeconfig"), tools: tools}
	config, err := c.writeConfig(filepath.Join(dir, name+".kwokctl.yaml"))
	if err != nil {
		return nil, err
	}
	failed := func(err error) (*Cluster, error) {
		logs := FailedLogsDir(dir, name)
		if serr := c.SaveLogs(logs); serr != nil {
			err = fmt.Errorf("%w (and its logs: %v)", err, serr)
		}
		_ = c.Delete()
		return nil, fmt.Errorf("%w; its components' logs: %s", err, logs)
	}
	bin := func(n string) string { return filepath.Join(tools.K8sBin, n) }
	_, err = c.kwokctl(ctx, "create", "cluster", "--name", name, "--runtime", "binary", "--config", config,
		"--kubeconfig", c.Kubeconfig, "--timeout", "2m",
		"--etcd-binary", bin("etcd"),
		"--kube-apiserver-binary", bin("kube-apiserver"),
		"--kube-controller-manager-binary", bin("kube-controller-manager"),
		"--kube-scheduler-binary", bin("kube-scheduler"),
		"--kwok-controller-binary", filepath.Join(tools.KwokBin, "kwok"),
	)
	if err != nil {
		return failed(err)
	}
	// From now on: the controller manager may exit while it starts.
	c.supervise()
	if _, err := c.kwokctl(ctx, "scale", "node", "--replicas", strconv.Itoa(nodes), "--name", name); err != nil {
		return failed(err)
	}
	// kwokctl returns once the API server answers; the other components may
	// still be starting.
	if err := c.waitComponents(ctx, nodes); err != nil {
		return failed(err)
	}
	return c, nil
}

// FailedLogsDir is where Create keeps the logs of a cluster that did not
// come up.
func FailedLogsDir(dir, name string) string {
	return filepath.Join(dir, name+"-failed-logs")
}

// writeConfig writes the cluster's kwokctl configuration to path: host
// ports for every component, no leader election (see Create), and the
// settings of a throwaway test cluster (componentPatches).
func (c *Cluster) writeConfig(path string) (string, error) {
	ports, err := reservePorts(6)
	if err != nil {
		return "", err
	}
	c.ports = ports
	c.controllerManagerPort, c.schedulerPort = ports[4], ports[5]
	config := fmt.Sprintf(`apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  etcdPeerPort: %d
  etcdPort: %d
  kubeApiserverPort: %d
  kwokControllerPort: %d
  kubeControllerManagerPort: %d
  kubeSchedulerPort: %d
componentsPatches:
%s`, ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], componentPatches())
	return path, os.WriteFile(path, []byte(config), 0o644)
}

// componentGOGC is the Go garbage collector's target for every component:
// a test cluster lives for a minute or two and holds little (the demo's is
// as throwaway), and on a 2-core machine running four of them the API
// servers' garbage collection
// was 16 % of their CPU (a profile of TestMeshLifecycle's); memory is
// what this machine has plenty of.
const componentGOGC = "400"

// componentPatches are kwokctl's componentsPatches: for each component its
// GOGC, etcd without fsync, and the controller manager and scheduler
// without leader election.
func componentPatches() string {
	args := map[string][][2]string{
		// A cluster that lives for one test (or the demo) needs no durability: etcd's
		// fsync on every write was the kernel's block I/O work (13 s of
		// CPU in one e2e run) and every write's latency.
		"etcd":                    {{"unsafe-no-fsync", "true"}},
		"kube-controller-manager": {{"leader-elect", "false"}},
		"kube-scheduler":          {{"leader-elect", "false"}},
	}
	var b strings.Builder
	for _, component := range Components {
		fmt.Fprintf(&b, "- name: %s\n  extraEnvs:\n  - name: GOGC\n    value: %q\n", component, componentGOGC)
		if len(args[component]) > 0 {
			b.WriteString("  extraArgs:\n")
			for _, a := range args[component] {
				fmt.Fprintf(&b, "  - key: %s\n    value: %q\n", a[0], a[1])
			}
		}
	}
	return b.String()
}

// waitComponents waits until the controller manager and the scheduler
// serve their health endpoints, the controller manager runs its
// controllers, and kwok has made every node Ready.
func (c *Cluster) waitComponents(ctx context.Context, nodes int) error {
	cfg, err := c.RESTConfig()
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	last := ""
	for time.Now().Before(deadline) {
		last = c.componentsNotUp(ctx, cs, nodes)
		if last == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("cluster %s: %s after 2m; restarts: %v", c.Name, last, c.Restarts())
}

func (c *Cluster) componentsNotUp(ctx context.Context, cs kubernetes.Interface, nodes int) string {
	for component, port := range map[string]int{"kube-controller-manager": c.controllerManagerPort, "kube-scheduler": c.schedulerPort} {
		if err := healthy(ctx, port); err != nil {
			return component + " not healthy yet: " + err.Error()
		}
	}
	// The controller manager serves before it runs its controllers, and
	// exits if the API server is not healthy soon enough to start them (a
	// fresh one bootstrapping its roles on a busy machine): the ConfigMap
	// its root CA publisher writes says they run.
	if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{}); err != nil {
		return "kube-controller-manager's controllers not running yet: " + err.Error()
	}
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	ready := 0
	for _, n := range list.Items {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	if ready < nodes {
		return fmt.Sprintf("%d of %d nodes Ready", ready, nodes)
	}
	return ""
}

// healthy asks a component's /healthz on its secure port (kwokctl lets
// anyone read it; the serving certificate is self-signed).
func healthy(ctx context.Context, port int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://127.0.0.1:"+strconv.Itoa(port)+"/healthz", nil)
	if err != nil {
		return err
	}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a health probe, not trust
	resp, err := insecure.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz: %s", resp.Status)
	}
	return nil
}

// Attach returns a handle on a cluster created earlier (by the demo).
func Attach(tools Tools, name, kubeconfig string) *Cluster {
	return &Cluster{Name: name, Kubeconfig: kubeconfig, tools: tools}
}

// Delete stops the cluster and removes its state.
func (c *Cluster) Delete() error {
	c.supervisor.stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.kwokctl(ctx, "delete", "cluster", "--name", c.Name, "--kubeconfig", c.Kubeconfig)
	releasePorts(c.ports)
	return err
}

// Logs returns the last lines of a component's log (kube-controller-manager,
// kube-scheduler, kwok-controller, …), for diagnosing a failed test.
func (c *Cluster) Logs(component string, lines int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := c.kwokctl(ctx, "logs", component, "--name", c.Name)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// Components are the processes a cluster is made of, as `kwokctl logs` names them.
var Components = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller"}

// SaveLogs writes each component's whole log to dir as <component>.log,
// for a failed test's artifacts; it goes on past a component whose log
// cannot be read and returns every error.
func (c *Cluster) SaveLogs(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	for _, component := range Components {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := c.kwokctl(ctx, "logs", component, "--name", c.Name)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, component+".log"), out, 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RESTConfig is a client configuration for the cluster.
func (c *Cluster) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 200, 400
	return cfg, nil
}

func (c *Cluster) kwokctl(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.tools.KwokBin, "kwokctl"), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("kwokctl %v: %w\n%s", args[:2], err, out.String())
	}
	return out.Bytes(), nil
}
