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
	"sync"
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
	// WebhookPort, MetricsPort, ProbePort and PprofPort are free ports on
	// 127.0.0.1.
	WebhookPort, MetricsPort, ProbePort, PprofPort int
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

	mu   sync.Mutex
	args []string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	// stopping is set by Stop and Kill: the exit is wanted, no restart.
	stopping bool
	// started is set once Start saw it ready: exits before are Start's errors.
	started bool
	exits   []Exit
}

// NewOperator picks free ports for an operator process.
func NewOperator(binary, kubeconfig, dir string) (*Operator, error) {
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	return &Operator{Binary: binary, Kubeconfig: kubeconfig, Dir: dir,
		WebhookPort: ports[0], MetricsPort: ports[1], ProbePort: ports[2], PprofPort: ports[3]}, nil
}

// LogPath is where the operator's output goes.
func (o *Operator) LogPath() string { return filepath.Join(o.Dir, "operator.log") }

// WebhookURL is the base URL of its webhook server.
func (o *Operator) WebhookURL() string { return "https://127.0.0.1:" + strconv.Itoa(o.WebhookPort) }

// Start launches the operator and waits until it reports ready. From then
// on, when the operator exits without being asked to (Stop, Kill), it is
// started again after a second, as the kubelet restarts a pod's container:
// an elected replica exits when a stalled API server makes it miss a lease
// renewal, and a cluster's operator would otherwise be gone for the rest of
// the test. Exits lists those exits.
func (o *Operator) Start(ctx context.Context) error {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return err
	}
	metricsArgs, err := o.metrics.serve(o.InsecureMetrics, filepath.Join(o.Dir, "metrics-certs"))
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
		"--pprof-bind-address", "127.0.0.1:" + strconv.Itoa(o.PprofPort), // Memory reads the live heap there
		"--zap-devel",
	}, metricsArgs...)
	o.mu.Lock()
	o.args = append(args, o.ExtraArgs...)
	o.stopping, o.started = false, false
	err = o.launch()
	o.mu.Unlock()
	if err != nil {
		return err
	}
	// An operator that does not start (it may refuse to, by design) stays
	// down: only an exit after a good start is a pod the kubelet restarts.
	err = o.WaitReady(ctx, 2*time.Minute)
	o.mu.Lock()
	o.started = err == nil
	o.mu.Unlock()
	return err
}

// restartDelay is how long an operator that exited on its own stays down.
const restartDelay = time.Second

// launch starts a process with o.args; o.mu is held.
func (o *Operator) launch() error {
	logFile, err := os.OpenFile(o.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(o.Binary, o.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so a demo's terminal Ctrl-C does not stop it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	done := make(chan struct{})
	o.cmd, o.done = cmd, done
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
		o.restartUnlessStopped(cmd)
	}()
	return nil
}

// restartUnlessStopped records an exit nobody asked for and starts the
// operator again.
func (o *Operator) restartUnlessStopped(cmd *exec.Cmd) {
	o.mu.Lock()
	if o.stopping || !o.started || o.cmd != cmd {
		o.mu.Unlock()
		return
	}
	o.exits = append(o.exits, Exit{At: time.Now(), State: cmd.ProcessState.String(), LastLog: tail(o.LogPath(), 5)})
	o.mu.Unlock()
	time.Sleep(restartDelay)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopping || o.cmd != cmd {
		return
	}
	if err := o.launch(); err != nil {
		o.exits = append(o.exits, Exit{At: time.Now(), State: "not restarted: " + err.Error()})
	}
}

// Exit is an exit of the operator that neither Stop nor Kill asked for.
type Exit struct {
	At time.Time
	// State is how it exited (exit status, signal).
	State string
	// LastLog is the end of its log: why it exited.
	LastLog string
}

func (e Exit) String() string {
	return fmt.Sprintf("exited on its own at %s (%s); its last lines:\n%s", e.At.UTC().Format("15:04:05"), e.State, e.LastLog)
}

// Exits are the exits nobody asked for, each followed by a restart.
func (o *Operator) Exits() []Exit {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Exit(nil), o.exits...)
}

func (o *Operator) advertisedURL() string {
	if o.AdvertisedURL != "" {
		return o.AdvertisedURL
	}
	return o.WebhookURL()
}

// PID is the operator's process id (0 when not started).
func (o *Operator) PID() int {
	o.mu.Lock()
	defer o.mu.Unlock()
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
		if cmd, exited := o.current(); exited {
			return fmt.Errorf("operator exited (%s); see %s", cmd.ProcessState, o.LogPath())
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

// Kill stops the operator abruptly (SIGKILL), as a crash would; it stays
// down until Start.
func (o *Operator) Kill() error {
	cmd, done := o.stop()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Kill()
	<-done
	return nil
}

// Stop stops the operator gracefully (SIGTERM) and reports an unclean exit.
func (o *Operator) Stop() error {
	cmd, done := o.stop()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(45 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("operator did not stop within 45s of SIGTERM; killed")
	}
	if !cmd.ProcessState.Success() {
		return fmt.Errorf("operator exited uncleanly on SIGTERM: %s; see %s", cmd.ProcessState, o.LogPath())
	}
	return nil
}

// stop marks the operator as stopped on purpose (no restart) and returns
// its running process; nil when none runs.
func (o *Operator) stop() (*exec.Cmd, chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stopping = true
	if o.cmd == nil || closed(o.done) {
		return nil, nil
	}
	return o.cmd, o.done
}

// current is the latest process and whether it has exited.
func (o *Operator) current() (*exec.Cmd, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cmd, o.cmd != nil && closed(o.done)
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
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
