// Command demo shows meshkeeper at work on a local simulated cluster (a real
// kube-apiserver, etcd, controller-manager and scheduler with kwok nodes):
// install Istio, inject sidecars, upgrade in place and by canary, then run
// Istio's own istiod for the active revision and one pod's proxy agent. `demo up` leaves the
// cluster and the operator running; `demo down` stops them.
//
// Run it through `make demo` / `make demo-down`, which build the tools first.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshkeeper/meshkeeper/internal/localcluster"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

const clusterName = "meshkeeper-demo"

// state is what `demo down` needs to find what `demo up` started.
type state struct {
	Cluster    string `json:"cluster"`
	Kubeconfig string `json:"kubeconfig"`
	PID        int    `json:"operatorPID"`
	Log        string `json:"operatorLog"`
	// CertManagerPIDs are cert-manager's controller and cainjector, when the demo runs them.
	CertManagerPIDs []int `json:"certManagerPIDs,omitempty"`
	// IstiodPID is real istiod's, run for the active revision.
	IstiodPID int `json:"istiodPID,omitempty"`
}

// webhookCertsEnv set to cert-manager (make demo WEBHOOK_CERTS=cert-manager)
// runs cert-manager beside the operator and has it issue the webhook
// certificate, as config/certmanager does in a cluster.
const webhookCertsEnv = "MESHKEEPER_DEMO_WEBHOOK_CERTS"

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: demo up|down")
		os.Exit(2)
	}
	dir := filepath.Join(testenv.RepoRoot(), ".demo")
	var err error
	if os.Args[1] == "up" {
		err = up(dir)
	} else {
		err = down(dir)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "\n✗ %v\n", err)
		os.Exit(1)
	}
}

// demo runs named steps, timing each, and stops at the first failure.
type demo struct {
	start time.Time
	n     int
}

func (d *demo) step(name string, f func() error) error {
	d.n++
	fmt.Printf("\n▶ %d. %s\n", d.n, name)
	start := time.Now()
	if err := f(); err != nil {
		return fmt.Errorf("step %d (%s) failed after %s: %w", d.n, name, time.Since(start).Round(time.Millisecond), err)
	}
	fmt.Printf("  ✓ verified in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func up(dir string) error {
	tools, err := localcluster.ToolsFromEnv()
	if err != nil {
		return err
	}
	if err := down(dir); err != nil { // a previous demo, if any
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ctx := context.Background()
	d := &demo{start: time.Now()}
	var (
		cluster  *localcluster.Cluster
		operator *localcluster.Operator
		c        client.Client
		cfg      *rest.Config
	)
	binary := filepath.Join(dir, "manager")

	steps := []struct {
		name string
		run  func() error
	}{
		{"Build the operator", func() error {
			cmd := exec.Command("go", "build", "-o", binary, ".")
			cmd.Dir = testenv.RepoRoot()
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			return cmd.Run()
		}},
		{"Start a simulated cluster: kube-apiserver, etcd, controller-manager, scheduler, 3 kwok nodes", func() (err error) {
			if cluster, err = localcluster.Create(ctx, tools, clusterName, dir, 3); err != nil {
				return err
			}
			if cfg, err = cluster.RESTConfig(); err != nil {
				return err
			}
			c, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()})
			if err != nil {
				return err
			}
			if err := waitNodesReady(ctx, c, 3, time.Minute); err != nil {
				return err
			}
			return printTable(ctx, cfg, "/api/v1/nodes")
		}},
		{"Install the MeshInstall CRD and start the operator (on the host, webhooks by URL)", func() (err error) {
			if err := installCRD(ctx, c); err != nil {
				return err
			}
			if err := ensureNamespace(ctx, c, "meshkeeper-system", nil); err != nil {
				return err
			}
			if operator, err = localcluster.NewOperator(binary, cluster.Kubeconfig, filepath.Join(dir, "operator")); err != nil {
				return err
			}
			s := state{Cluster: clusterName, Kubeconfig: cluster.Kubeconfig}
			if os.Getenv(webhookCertsEnv) == "cert-manager" {
				if s.CertManagerPIDs, err = startCertManager(ctx, c, cluster.Kubeconfig, filepath.Join(dir, "cert-manager")); err != nil {
					return err
				}
				operator.ExtraArgs = []string{"--webhook-cert-provider=cert-manager", "--webhook-cert-issuer-kind=Issuer", "--webhook-cert-issuer-name=" + demoWebhookIssuer}
				if err := saveState(dir, s); err != nil {
					return err
				}
			}
			if err := operator.Start(ctx); err != nil {
				return err
			}
			fmt.Printf("  operator pid %d, webhook %s, log %s\n", operator.PID(), operator.WebhookURL(), operator.LogPath())
			s.PID, s.Log = operator.PID(), operator.LogPath()
			return saveState(dir, s)
		}},
	}
	getClient, getConfig := func() client.Client { return c }, func() *rest.Config { return cfg }
	steps = append(steps, meshSteps(ctx, getClient, getConfig)...)
	steps = append(steps, canarySteps(ctx, getClient, getConfig)...)
	steps = append(steps, realIstioStep(ctx, getClient, getConfig, func() string { return cluster.Kubeconfig }, dir, func(pid int) error {
		s, err := loadState(dir)
		if err != nil {
			return err
		}
		s.IstiodPID = pid
		return saveState(dir, s)
	}))
	steps = append(steps, cniSteps(ctx, getClient, getConfig)...)
	for _, s := range steps {
		if err := d.step(s.name, s.run); err != nil {
			if operator != nil {
				fmt.Fprintf(os.Stderr, "operator log: %s\n", operator.LogPath())
			}
			return err
		}
	}
	fmt.Printf("\nAll %d steps verified in %s.\n", d.n, time.Since(d.start).Round(time.Second))
	fmt.Printf(`
The cluster and the operator are still running. Try:

  export KUBECONFIG=%s PATH=%s:$PATH   # kubectl of the same version, built by make kubectl
  kubectl get meshinstall -o wide
  kubectl get pods -n demo
  kubectl label namespace default istio-injection=enabled && kubectl run web --image=nginx
  kubectl get pod web -o jsonpath='{.spec.initContainers[*].name} {.spec.containers[*].name}'
  tail -f %s
%s
Stop everything with: make demo-down
`, cluster.Kubeconfig, tools.K8sBin, operator.LogPath(), istioHints())
	return nil
}

func loadState(dir string) (state, error) {
	var s state
	raw, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(raw, &s)
}

func down(dir string) error {
	s, err := loadState(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if s.PID > 0 {
		if p, err := os.FindProcess(s.PID); err == nil && p.Signal(syscall.Signal(0)) == nil {
			_ = p.Signal(syscall.SIGTERM)
			fmt.Printf("stopped the operator (pid %d)\n", s.PID)
		}
	}
	if s.IstiodPID > 0 {
		if p, err := os.FindProcess(s.IstiodPID); err == nil && p.Signal(syscall.Signal(0)) == nil {
			_ = p.Signal(syscall.SIGTERM)
			fmt.Printf("stopped istiod (pid %d)\n", s.IstiodPID)
		}
	}
	for _, pid := range s.CertManagerPIDs {
		if p, err := os.FindProcess(pid); err == nil && p.Signal(syscall.Signal(0)) == nil {
			_ = p.Signal(syscall.SIGTERM)
			fmt.Printf("stopped cert-manager (pid %d)\n", pid)
		}
	}
	tools, err := localcluster.ToolsFromEnv()
	if err != nil {
		return err
	}
	if err := localcluster.Attach(tools, s.Cluster, s.Kubeconfig).Delete(); err != nil {
		return err
	}
	fmt.Printf("deleted cluster %s\n", s.Cluster)
	return os.Remove(filepath.Join(dir, "state.json"))
}

// demoWebhookIssuer is the CA Issuer of the webhook certificate with cert-manager.
const demoWebhookIssuer = "webhook-ca"

// startCertManager runs cert-manager's controller and cainjector (built by
// make cert-manager) on the host, and a CA Issuer for the webhook
// certificate in the operator's namespace. The processes outlive the demo
// (demo down stops them).
func startCertManager(ctx context.Context, c client.Client, kubeconfig, dir string) ([]int, error) {
	bin := os.Getenv("MESHKEEPER_CERT_MANAGER_BIN")
	if bin == "" {
		return nil, fmt.Errorf("MESHKEEPER_CERT_MANAGER_BIN is not set: run through make demo, which builds cert-manager first")
	}
	crds, err := localcluster.CertManagerCRDDir(testenv.RepoRoot())
	if err != nil {
		return nil, err
	}
	cm, err := localcluster.StartCertManager(ctx, c, kubeconfig, localcluster.CertManagerOptions{BinDir: bin, CRDDir: crds}, dir)
	if err != nil {
		return nil, err
	}
	if err := localcluster.CreateCAIssuer(ctx, c, "meshkeeper-system", demoWebhookIssuer); err != nil {
		cm.Stop()
		return nil, err
	}
	fmt.Printf("  cert-manager pids %v, logs in %s; Issuer meshkeeper-system/%s signs the webhook certificate\n", cm.PIDs(), dir, demoWebhookIssuer)
	return cm.PIDs(), nil
}

func saveState(dir string, s state) error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "state.json"), raw, 0o644)
}

// printTable prints what `kubectl get` would, from the API server's own Table rendering.
func printTable(ctx context.Context, cfg *rest.Config, path string) error {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s %v", path, resp.StatusCode, body, err)
	}
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 3, ' ', 0)
	var cols []int
	var header []string
	for i, c := range table.ColumnDefinitions {
		if c.Priority == 0 {
			cols = append(cols, i)
			header = append(header, strings.ToUpper(c.Name))
		}
	}
	fmt.Fprintln(w, "  "+strings.Join(header, "\t"))
	for _, row := range table.Rows {
		var cells []string
		for _, i := range cols {
			cells = append(cells, fmt.Sprint(row.Cells[i]))
		}
		fmt.Fprintln(w, "  "+strings.Join(cells, "\t"))
	}
	return w.Flush()
}
