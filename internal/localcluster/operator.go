package localcluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Operator is the meshkeeper manager running on the host against a
// cluster, its webhooks reached by URL.
type Operator struct {
	Binary     string
	Kubeconfig string
	// Dir holds its log and certificates.
	Dir string
	// WebhookPort, MetricsPort and ProbePort are free ports on 127.0.0.1.
	WebhookPort, MetricsPort, ProbePort int
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
	// AdvertisedURL is the base URL its webhook configurations point at
	// when that is not its own, as for replicas behind one address;
	// WebhookURL when empty.
	AdvertisedURL string
	// AdminKubeconfig may manage RBAC: Metrics sets up the ServiceAccount
	// it scrapes as with it. Kubeconfig when empty.
	AdminKubeconfig string
	// InsecureMetrics serves metrics over plain HTTP to anyone
	// (--metrics-secure=false), for tests that count the operator's API
	// requests: authenticating a scrape costs the operator a TokenReview.
	InsecureMetrics bool

	metrics metricsAccess

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// NewOperator picks free ports for an operator process.
func NewOperator(binary, kubeconfig, dir string) (*Operator, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	return &Operator{Binary: binary, Kubeconfig: kubeconfig, Dir: dir,
		WebhookPort: ports[0], MetricsPort: ports[1], ProbePort: ports[2]}, nil
}

// LogPath is where the operator's output goes.
func (o *Operator) LogPath() string { return filepath.Join(o.Dir, "operator.log") }

// WebhookURL is the base URL of its webhook server.
func (o *Operator) WebhookURL() string { return "https://127.0.0.1:" + strconv.Itoa(o.WebhookPort) }

// Start launches the operator and waits until it reports ready.
func (o *Operator) Start(ctx context.Context) error {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return err
	}
	metricsArgs, err := o.metrics.serve(o.InsecureMetrics, filepath.Join(o.Dir, "metrics-certs"))
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(o.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := append([]string{
		"--kubeconfig", o.Kubeconfig,
		"--leader-elect",
		"--namespace", "meshkeeper-system",
		"--webhook-url", o.advertisedURL(),
		"--webhook-host", "127.0.0.1",
		"--webhook-port", strconv.Itoa(o.WebhookPort),
		"--webhook-cert-dir", filepath.Join(o.Dir, "certs"),
		"--metrics-bind-address", "127.0.0.1:" + strconv.Itoa(o.MetricsPort),
		"--health-probe-bind-address", "127.0.0.1:" + strconv.Itoa(o.ProbePort),
		"--zap-devel",
	}, metricsArgs...)
	args = append(args, o.ExtraArgs...)
	o.cmd = exec.Command(o.Binary, args...)
	o.cmd.Stdout, o.cmd.Stderr = logFile, logFile
	// Its own process group, so a demo's terminal Ctrl-C does not stop it.
	o.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := o.cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	done := make(chan struct{})
	o.done = done
	go func() { _ = o.cmd.Wait(); logFile.Close(); close(done) }()
	return o.WaitReady(ctx, 2*time.Minute)
}

func (o *Operator) advertisedURL() string {
	if o.AdvertisedURL != "" {
		return o.AdvertisedURL
	}
	return o.WebhookURL()
}

// PID is the operator's process id (0 when not started).
func (o *Operator) PID() int {
	if o.cmd == nil || o.cmd.Process == nil {
		return 0
	}
	return o.cmd.Process.Pid
}

// WaitReady polls /readyz until the operator's webhook server is serving.
func (o *Operator) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	url := "http://127.0.0.1:" + strconv.Itoa(o.ProbePort) + "/readyz"
	for time.Now().Before(deadline) {
		if o.exited() {
			return fmt.Errorf("operator exited (%s); see %s", o.cmd.ProcessState, o.LogPath())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && o.webhookServing() {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("operator not ready after %s; see %s", timeout, o.LogPath())
}

func (o *Operator) webhookServing() bool {
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(o.WebhookPort), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a liveness probe, not trust
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// Kill stops the operator abruptly (SIGKILL), as a crash would.
func (o *Operator) Kill() error {
	if o.cmd == nil || o.exited() {
		return nil
	}
	_ = o.cmd.Process.Kill()
	<-o.done
	return nil
}

// Stop stops the operator gracefully (SIGTERM) and reports an unclean exit.
func (o *Operator) Stop() error {
	if o.cmd == nil || o.exited() {
		return nil
	}
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-o.done:
	case <-time.After(45 * time.Second):
		_ = o.cmd.Process.Kill()
		<-o.done
		return fmt.Errorf("operator did not stop within 45s of SIGTERM; killed")
	}
	if !o.cmd.ProcessState.Success() {
		return fmt.Errorf("operator exited uncleanly on SIGTERM: %s; see %s", o.cmd.ProcessState, o.LogPath())
	}
	return nil
}

func (o *Operator) exited() bool {
	select {
	case <-o.done:
		return true
	default:
		return false
	}
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
