package localcluster

import (
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
)

// TestAReservedPortIsNotPickedAgain: a port picked for one cluster is not
// picked for another until the first is deleted, although nothing listens
// on it yet (its component binds it seconds later, or is between two
// starts), whichever process asks; a reservation of a process that is gone
// does not hold the port.
func TestAReservedPortIsNotPickedAgain(t *testing.T) {
	portReservations = t.TempDir()
	// Nine ports nothing listens on now (another test's cluster may use
	// any port of [10000, 32000)): six for one cluster, three for another.
	low := freeWindow(t, 9)
	high := low + 9
	first, err := reservePortsIn(6, low, high)
	if err != nil {
		t.Fatal(err)
	}
	second, err := reservePortsIn(3, low, high)
	if err != nil {
		t.Fatalf("3 ports in a range of 9 with 6 reserved: %v", err)
	}
	for _, p := range second {
		if slices.Contains(first, p) {
			t.Errorf("port %d picked twice: %v and %v", p, first, second)
		}
	}
	if got, err := reservePortsIn(2, low, high); err == nil {
		t.Fatalf("picked %v although every port of the range is reserved by a running process", got)
	}

	// Another process's reservation holds the port while it runs.
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill() })
	releasePorts(first)
	if err := os.WriteFile(reservationPath(first[0]), []byte(strconv.Itoa(other.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := reservePortsIn(5, low, high)
	if err != nil {
		t.Fatalf("5 of the 6 released ports: %v", err)
	}
	if slices.Contains(again, first[0]) {
		t.Errorf("port %d picked while a running process holds it", first[0])
	}
	// ... and no longer once that process is gone.
	_ = other.Process.Kill()
	_ = other.Wait()
	releasePorts(second)
	got, err := reservePortsIn(4, low, high)
	if err != nil {
		t.Fatalf("the 3 released ports and the one of a process that is gone: %v", err)
	}
	if !slices.Contains(got, first[0]) {
		t.Errorf("picked %v: the port of a process that is gone stays held", got)
	}
}

// freeWindow returns the first port of n consecutive ports in [31000,
// 32000) that nothing listens on.
func freeWindow(t *testing.T, n int) int {
	t.Helper()
	for low := 31000; low+n <= 32000; low += n {
		free := true
		for p := low; p < low+n && free; p++ {
			l, err := net.Listen("tcp", "0.0.0.0:"+strconv.Itoa(p))
			if err != nil {
				free = false
				continue
			}
			l.Close()
		}
		if free {
			return low
		}
	}
	t.Fatal("no window of free ports in [31000, 32000)")
	return 0
}
