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

	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

const (
	memoryPods        = 10000
	memoryDeployments = 2000
	memoryBudget      = 100 << 20 // bytes of resident memory the operator may add for them
)

// TestOperatorMemoryStaysFlatWithPods measures the operator's resident
// memory with no workloads and with 10,000 pods and 2,000 Deployments: it
// caches both trimmed to what it reads, so the difference must stay within
// 100 MiB.
func TestOperatorMemoryStaysFlatWithPods(t *testing.T) {
	runsLong(t, 145*time.Second)
	t.Parallel()
	e := newEnv(t, 1)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Gateways = nil
	mi.Spec.Profile = meshv1alpha1.ProfileMinimal // no gateway: the control plane only
	if err := e.k8s.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	e.waitReady(t, mi.Name, installTimeout)
	time.Sleep(5 * time.Second) // let start-up garbage be collected
	before := e.rss(t)

	// Pods that should have been injected but were not (created before their
	// namespace was labelled), so the operator counts every one of them.
	// They use a scheduler that does not exist, so they stay Pending quietly.
	e.ensureNamespace(t, "crowd", nil)
	start := time.Now()
	e.createObjects(t, memoryPods, func(i int) client.Object {
		p := barePod("crowd", fmt.Sprintf("pod-%05d", i), map[string]string{"app": fmt.Sprintf("app-%d", i%50)})
		p.Spec.SchedulerName = "none"
		p.Annotations = map[string]string{"example.com/owner": "team-" + strconv.Itoa(i%7)}
		return p
	})
	e.ensureNamespace(t, "fleet", nil)
	e.createObjects(t, memoryDeployments, func(i int) client.Object {
		// Paused: their controller creates no ReplicaSets, which would only
		// load the machine the other e2e tests share.
		d := app("fleet", fmt.Sprintf("svc-%04d", i), 0)
		d.Spec.Paused = true
		d.Annotations = map[string]string{"example.com/owner": "team-" + strconv.Itoa(i%7)}
		return d
	})
	t.Logf("created %d pods and %d Deployments in %s", memoryPods, memoryDeployments, time.Since(start).Round(time.Second))
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
	t.Logf("operator resident memory: %.1f MiB with no workloads, %.1f MiB with %d pods and %d Deployments (+%.1f MiB, budget %d MiB)",
		mib(before), mib(after), memoryPods, memoryDeployments, mib(after-before), memoryBudget>>20)
	if after-before > memoryBudget {
		t.Errorf("the operator grew by %.1f MiB for %d pods and %d Deployments; budget %d MiB", mib(after-before), memoryPods, memoryDeployments, memoryBudget>>20)
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
