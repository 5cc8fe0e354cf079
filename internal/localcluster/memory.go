package localcluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// Memory is what the operator process holds, in bytes.
type Memory struct {
	// LiveHeap is the Go heap still in use right after a collection the
	// reading forced: what the operator keeps, without the garbage that
	// happens to await the next collection.
	LiveHeap int64
	// Resident is the process's resident set now (VmRSS); PeakResident the
	// most it has held since it started (VmHWM), which is what a container
	// memory limit is measured against.
	Resident, PeakResident int64
}

// Memory forces a garbage collection in the operator (through its pprof
// endpoint's heap profile, gc=1) and reads its live heap, then its
// resident set from /proc.
func (o *Operator) Memory(ctx context.Context) (Memory, error) {
	var m Memory
	live, err := o.liveHeap(ctx)
	if err != nil {
		return m, err
	}
	m.LiveHeap = live
	status, err := procStatus(o.PID())
	if err != nil {
		return m, err
	}
	m.Resident, m.PeakResident = status["VmRSS"], status["VmHWM"]
	if m.Resident == 0 || m.PeakResident == 0 {
		return m, fmt.Errorf("no VmRSS or VmHWM in /proc/%d/status", o.PID())
	}
	return m, nil
}

// liveHeap reads HeapAlloc from the runtime.MemStats that the text form
// of the heap profile (debug=1) ends with, after the GC that gc=1 runs.
func (o *Operator) liveHeap(ctx context.Context) (int64, error) {
	url := "http://127.0.0.1:" + strconv.Itoa(o.PprofPort) + "/debug/pprof/heap?gc=1&debug=1"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return heapAlloc(resp.Body)
}

// heapAlloc finds "# HeapAlloc = N" in a text heap profile.
func heapAlloc(r io.Reader) (int64, error) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "# HeapAlloc = "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no HeapAlloc in the heap profile")
}

// procStatus reads the kB figures of /proc/PID/status, in bytes.
func procStatus(pid int) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		key, value, ok := strings.Cut(s.Text(), ":")
		value, isKB := strings.CutSuffix(strings.TrimSpace(value), " kB")
		if !ok || !isKB {
			continue
		}
		if kb, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64); err == nil {
			out[key] = kb << 10
		}
	}
	return out, s.Err()
}
