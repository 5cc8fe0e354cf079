// Package fuzzbudget bounds what one call of a fuzzed webhook function may
// cost, for the fuzzers of the webhooks and of admission.
package fuzzbudget

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// What one webhook call may cost. The handler answers in well under a
// millisecond and the validator renders a control plane in milliseconds; an
// input that takes a second of CPU is a denial of service on the webhook
// (the API server waits for it, and every retry costs as much again).
// CPU time, not wall time, so that a busy machine does not fail the fuzzers;
// the wall limit only stops an input that would never return (or would
// exhaust memory first).
const (
	callCPUBudget = time.Second
	callWallLimit = 30 * time.Second
)

// Call runs fn on a goroutine of its own, and fails t when fn
// panics, uses more than callCPUBudget of CPU, or does not return within
// callWallLimit.
func Call(t *testing.T, what string, fn func()) {
	t.Helper()
	type outcome struct {
		cpu   time.Duration
		panic string
	}
	done := make(chan outcome, 1)
	go func() {
		// Locked to its thread, the thread's CPU time is the call's.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		start := threadCPUTime()
		defer func() {
			if p := recover(); p != nil {
				done <- outcome{panic: fmt.Sprintf("%v\n%s", p, debug.Stack())}
			}
		}()
		fn()
		done <- outcome{cpu: threadCPUTime() - start}
	}()
	select {
	case o := <-done:
		if o.panic != "" {
			t.Fatalf("%s panicked: %s", what, o.panic)
		}
		if o.cpu > callCPUBudget {
			t.Fatalf("%s took %v of CPU (budget %v): a slow input is a denial of service on the webhook", what, o.cpu, callCPUBudget)
		}
	case <-time.After(callWallLimit):
		t.Fatalf("%s did not return in %v: a denial of service on the webhook", what, callWallLimit)
	}
}
