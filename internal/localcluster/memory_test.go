package localcluster

import (
	"bytes"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
)

// The operator's live heap is read from Go's own text heap profile, and
// its resident set from /proc: both are read here from this process.
func TestMemoryIsReadFromTheHeapProfileAndProc(t *testing.T) {
	keep := make([]byte, 32<<20) // live across the collection below
	runtime.GC()
	var buf bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&buf, 1); err != nil {
		t.Fatal(err)
	}
	live, err := heapAlloc(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if live < int64(len(keep)) {
		t.Errorf("live heap %d bytes, want at least the %d held", live, len(keep))
	}
	status, err := procStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if status["VmRSS"] <= 0 || status["VmHWM"] < status["VmRSS"] {
		t.Errorf("VmRSS %d, VmHWM %d: want a resident set and a peak at least as large", status["VmRSS"], status["VmHWM"])
	}
	runtime.KeepAlive(keep)
}
