package localcluster

import (
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
	const low, high = 31900, 31910
	first, err := reservePortsIn(6, low, high)
	if err != nil {
		t.Fatal(err)
	}
	second, err := reservePortsIn(3, low, high)
	if err != nil {
		t.Fatalf("%d ports in a range of %d with 6 reserved: %v", 3, high-low, err)
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
