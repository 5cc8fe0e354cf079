package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// superviseEvery is how often the supervisor looks for exited components.
const superviseEvery = time.Second

// Restart is one component the supervisor found exited and started again.
type Restart struct {
	Component string
	At        time.Time
	// LastLog is the end of its log before the restart: why it exited.
	LastLog string
	// Err is set when starting it again failed.
	Err error
}

func (r Restart) String() string {
	s := fmt.Sprintf("%s exited before %s and was started again", r.Component, r.At.UTC().Format("15:04:05"))
	if r.Err != nil {
		s += fmt.Sprintf(" (failed: %v)", r.Err)
	}
	return s + "; its last lines:\n" + r.LastLog
}

// supervisor restarts the cluster's components when they exit, as the
// kubelet restarts a control plane's static pods: kwokctl's binary runtime
// starts them once and leaves them. A kube-controller-manager that gave up
// waiting for a stalled API server at start, say, would otherwise leave
// the cluster up but inert for the rest of the test.
type supervisor struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	restarts []Restart
}

// supervise starts c's supervisor; Delete stops it.
func (c *Cluster) supervise() {
	ctx, cancel := context.WithCancel(context.Background())
	s := &supervisor{cancel: cancel, done: make(chan struct{})}
	c.supervisor = s
	go func() {
		defer close(s.done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(superviseEvery):
			}
			exited := c.exited()
			if len(exited) == 0 {
				continue
			}
			at := time.Now()
			logs := map[string]string{}
			for _, component := range exited {
				logs[component] = tail(filepath.Join(c.workDir(), "logs", component+".log"), 5)
			}
			// kwokctl starts the components that are not running, in order.
			startCtx, cancelStart := context.WithTimeout(ctx, 2*time.Minute)
			_, err := c.kwokctl(startCtx, "start", "cluster", "--name", c.Name)
			cancelStart()
			if ctx.Err() != nil {
				return // deleted meanwhile
			}
			s.mu.Lock()
			for _, component := range exited {
				s.restarts = append(s.restarts, Restart{Component: component, At: at, LastLog: logs[component], Err: err})
			}
			s.mu.Unlock()
		}
	}()
}

// stop stops the supervisor and waits for it (nil-safe).
func (s *supervisor) stop() {
	if s == nil {
		return
	}
	s.cancel()
	<-s.done
}

// Restarts are the components the supervisor started again after they
// exited, in order.
func (c *Cluster) Restarts() []Restart {
	s := c.supervisor
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Restart(nil), s.restarts...)
}

// workDir is where kwokctl keeps the cluster: its pid files and logs.
func (c *Cluster) workDir() string {
	root := os.Getenv("KWOK_WORKDIR")
	if root == "" {
		home, _ := os.UserHomeDir()
		root = filepath.Join(home, ".kwok")
	}
	return filepath.Join(root, "clusters", c.Name)
}

// exited names the components whose process is gone, from the pid files
// kwokctl writes when it starts them (what `kwokctl get components` reads,
// without a process per look).
func (c *Cluster) exited() []string {
	var out []string
	for _, component := range Components {
		pid, err := c.PID(component)
		if err != nil || syscall.Kill(pid, 0) != nil {
			out = append(out, component)
		}
	}
	return out
}

// PID is a component's process id (tests pause etcd with it).
func (c *Cluster) PID(component string) (int, error) {
	data, err := os.ReadFile(filepath.Join(c.workDir(), "pids", component+".pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}
