package e2e

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// clusterSlots bounds how many tests have a cluster at once (E2E_PARALLEL,
// 6 by default: what two cores carry since the clusters' etcd stopped
// syncing and their components' GOGC went up; measured on the same commit
// and a loaded machine, six made the suite 369 s where five made it 451 s,
// the tests together holding their slots about as long, 2092 s and
// 2147 s), and starts the longest tests first.
// go test's own -parallel would bound them too, but hands its slots out in
// no particular order: the longest test (minutes of steady state) started
// last as often as first, and the suite's wall time was its length added
// to everyone else's. So the suite runs with a -parallel above its number
// of tests, every test waits here for a slot, and a free slot goes to the
// waiting test that runs longest (runsLong), as a scheduler of jobs on
// machines does to finish soonest; tests not marked go in the order they ask.
var clusterSlots = newSlots(parallelFromEnv())

func parallelFromEnv() int {
	if n, err := strconv.Atoi(os.Getenv("E2E_PARALLEL")); err == nil && n > 0 {
		return n
	}
	return 6
}

// slotSettle is how long the first request waits for the others: the
// paused parallel tests resume together and ask within milliseconds, and
// the long ones must be among the waiting when the first slots go.
const slotSettle = 300 * time.Millisecond

type slots struct {
	mu       sync.Mutex
	free     int
	settled  bool
	waiting  []*slotWaiter
	typical  map[string]time.Duration
	holdings map[string]bool
	// held is how long each test held its slot, waited how long it waited
	// for it: the suite's summary (summary).
	held, waited map[string]time.Duration
}

type slotWaiter struct {
	test    string
	typical time.Duration
	grant   chan struct{}
}

func newSlots(n int) *slots {
	return &slots{free: n, typical: map[string]time.Duration{}, holdings: map[string]bool{},
		held: map[string]time.Duration{}, waited: map[string]time.Duration{}}
}

// runsLong marks the test as one of the suite's longest, taking typically
// about d on a busy 2-core machine: it gets a slot before shorter ones.
// Call it before t.Parallel.
func runsLong(t *testing.T, d time.Duration) {
	clusterSlots.mu.Lock()
	defer clusterSlots.mu.Unlock()
	clusterSlots.typical[t.Name()] = d
}

// acquire waits for a slot for the test's cluster (one per test, however
// many clusters it makes) and releases it when the test ends, after the
// cluster's teardown (cleanups run last-registered first).
func (s *slots) acquire(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	if s.holdings[t.Name()] {
		s.mu.Unlock()
		return
	}
	w := &slotWaiter{test: t.Name(), typical: s.typical[t.Name()], grant: make(chan struct{})}
	s.waiting = append(s.waiting, w)
	if !s.settled && len(s.waiting) == 1 {
		time.AfterFunc(slotSettle, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.settled = true
			s.grantLocked()
		})
	}
	s.grantLocked()
	s.mu.Unlock()
	start := time.Now()
	<-w.grant
	granted := time.Now()
	waited := granted.Sub(start)
	if waited > time.Second {
		t.Logf("waited %s for a cluster slot (E2E_PARALLEL %d)", waited.Round(time.Second), parallelFromEnv())
	}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.held[t.Name()], s.waited[t.Name()] = time.Since(granted), waited
		delete(s.holdings, t.Name())
		s.free++
		s.grantLocked()
	})
}

// grantLocked hands free slots to the waiting tests, longest first.
func (s *slots) grantLocked() {
	if !s.settled {
		return
	}
	for s.free > 0 && len(s.waiting) > 0 {
		i := 0
		for j, w := range s.waiting {
			if w.typical > s.waiting[i].typical {
				i = j
			}
		}
		w := s.waiting[i]
		s.waiting = slices.Delete(s.waiting, i, i+1)
		s.free--
		s.holdings[w.test] = true
		close(w.grant)
	}
}

// summary is a table of how long each test held its cluster slot (its
// cluster's life: start, the story, teardown) and waited for it, longest
// first, with the total: the suite takes about the total over E2E_PARALLEL,
// so the longest holders are where it can be made shorter.
func (s *slots) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.held) == 0 {
		return ""
	}
	names := slices.Collect(maps.Keys(s.held))
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(s.held[b], s.held[a]) })
	var b strings.Builder
	var total time.Duration
	fmt.Fprintf(&b, "e2e: cluster slots (E2E_PARALLEL %d), held and waited for:\n", parallelFromEnv())
	for _, name := range names {
		total += s.held[name]
		fmt.Fprintf(&b, "  %-58s %6.1fs  waited %6.1fs\n", name, s.held[name].Seconds(), s.waited[name].Seconds())
	}
	fmt.Fprintf(&b, "  total held %.0fs, over %d slots %.0fs\n", total.Seconds(), parallelFromEnv(), total.Seconds()/float64(parallelFromEnv()))
	return b.String()
}
