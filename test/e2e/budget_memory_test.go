package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/localcluster"
)

const (
	memoryPods        = 10000
	memoryDeployments = 2000
	// memoryBudget is what the operator's memory may grow by for them
	// (DESIGN.md). Go's collector lets the heap reach twice its live size
	// before it collects (GOGC=100), so the resident set follows the live
	// heap up to twice over, depending on when the last collection ran:
	// the live heap is held to half the budget, which bounds the resident
	// growth by the whole, and is the same figure on every run.
	memoryBudget = 100 << 20
)

// TestOperatorMemoryStaysFlatWithPods measures the operator's memory with
// no workloads and with 10,000 pods and 2,000 Deployments: it caches both
// trimmed to what it reads, so its live heap grows by at most half the
// 100 MiB budget, and its resident set never reaches the memory limit its
// Deployment ships with.
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
	before := e.memory(t)

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
	after := e.memory(t)
	limit := managerMemoryLimit(t)
	t.Logf("operator resident memory: live heap %.1f MiB with no workloads, %.1f MiB with %d pods and %d Deployments (+%.1f MiB, budget %d MiB); resident %.1f → %.1f MiB, peak %.1f MiB (limit %.0f MiB)",
		mib(before.LiveHeap), mib(after.LiveHeap), memoryPods, memoryDeployments, mib(after.LiveHeap-before.LiveHeap), memoryBudget>>21,
		mib(before.Resident), mib(after.Resident), mib(after.PeakResident), mib(limit))
	if grown := after.LiveHeap - before.LiveHeap; grown > memoryBudget/2 {
		t.Errorf("the operator's live heap grew by %.1f MiB for %d pods and %d Deployments; budget %d MiB", mib(grown), memoryPods, memoryDeployments, memoryBudget>>21)
	}
	if after.PeakResident > limit {
		t.Errorf("the operator's resident set peaked at %.1f MiB, over the %.0f MiB memory limit of its Deployment: it would have been killed", mib(after.PeakResident), mib(limit))
	}
}

// memory reads the operator's memory after a collection it forces.
func (e *env) memory(t *testing.T) localcluster.Memory {
	t.Helper()
	m, err := e.operator.Memory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// managerMemoryLimit is the memory limit of the operator's container as
// config/manager ships it.
func managerMemoryLimit(t *testing.T) int64 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "manager", "manager.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for doc := range strings.SplitSeq(string(raw), "\n---") {
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil || d.Kind != "Deployment" {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
				return q.Value()
			}
		}
	}
	t.Fatal("no memory limit in config/manager/manager.yaml")
	return 0
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
