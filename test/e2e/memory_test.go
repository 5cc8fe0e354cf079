package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

const (
	memoryPods   = 5000
	memoryBudget = 50 << 20 // bytes of resident memory the operator may add for them
)

// TestOperatorMemoryStaysFlatWithPods measures the operator's resident
// memory with no workload pods and with 5,000: it caches pod metadata only,
// trimmed, so the difference must stay within 50 MiB.
func TestOperatorMemoryStaysFlatWithPods(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Gateways = nil
	if err := e.k8s.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	e.waitReady(t, mi.Name, 90*time.Second)
	time.Sleep(5 * time.Second) // let start-up garbage be collected
	before := e.rss(t)

	// Pods that should have been injected but were not (created before their
	// namespace was labelled), so the operator counts every one of them.
	// They use a scheduler that does not exist, so they stay Pending quietly.
	e.ensureNamespace(t, "crowd", nil)
	start := time.Now()
	e.createPods(t, memoryPods, func(i int) *corev1.Pod {
		p := barePod("crowd", fmt.Sprintf("pod-%04d", i), map[string]string{"app": fmt.Sprintf("app-%d", i%50)})
		p.Spec.SchedulerName = "none"
		p.Annotations = map[string]string{"example.com/owner": "team-" + strconv.Itoa(i%7)}
		return p
	})
	t.Logf("created %d pods in %s", memoryPods, time.Since(start).Round(time.Second))
	e.ensureNamespace(t, "crowd", map[string]string{"istio-injection": "enabled"})
	eventually(t, 2*time.Minute, "every pod counted", func() error {
		dp := e.getMeshInstall(t, mi.Name).Status.DataPlane
		if dp == nil || dp.UninjectedPods != memoryPods {
			return fmt.Errorf("dataPlane = %+v", dp)
		}
		return nil
	})
	time.Sleep(5 * time.Second)
	after := e.rss(t)
	t.Logf("operator resident memory: %.1f MiB with no pods, %.1f MiB with %d pods (+%.1f MiB, budget %d MiB)",
		mib(before), mib(after), memoryPods, mib(after-before), memoryBudget>>20)
	if after-before > memoryBudget {
		t.Errorf("the operator grew by %.1f MiB for %d pods; budget %d MiB", mib(after-before), memoryPods, memoryBudget>>20)
	}
}

// rss reads the operator process's resident set size.
func (e *env) rss(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", e.operator.PID()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
