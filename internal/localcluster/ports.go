package localcluster

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// A port picked for a cluster's component is free when it is picked, but
// the component binds it seconds later (when kwokctl starts it, or when the
// supervisor starts it again after an exit). In that window a cluster made
// by another process (make test runs the unit and e2e suites side by side;
// make e2e-stress runs copies of the suite), or another cluster of this
// process whose component is between two starts, could pick the same port:
// one controller manager then never serves ("bind: address already in
// use") and its cluster never becomes ready. So a picked port is reserved,
// from the moment it is picked until its cluster is deleted, in a folder
// every process of this user shares: one file per port holding the
// reserving process's ID. A reservation whose process is gone (killed
// before it deleted its cluster) is free again.
var portReservations = filepath.Join(os.TempDir(), "meshkeeper-ports-"+strconv.Itoa(os.Getuid()))

// reservePorts picks n ports at random below the kernel's ephemeral range
// (32768 up: a port the host handed out and released can be any process's
// next outgoing connection's), each free now and reserved by no live
// process, and reserves them for this process.
func reservePorts(n int) ([]int, error) {
	return reservePortsIn(n, 10000, 32000)
}

// reservePortsIn is reservePorts in [low, high).
func reservePortsIn(n, low, high int) ([]int, error) {
	unlock, err := lockReservations()
	if err != nil {
		return nil, err
	}
	defer unlock()
	seen := map[int]bool{}
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 || len(seen) == high-low {
			releasePorts(ports)
			return nil, fmt.Errorf("no %d free ports in [%d, %d)", n, low, high)
		}
		p := low + rand.IntN(high-low)
		if seen[p] {
			continue
		}
		seen[p] = true
		if reservedByLiveProcess(p) {
			continue
		}
		l, err := net.Listen("tcp", "0.0.0.0:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		if err := os.WriteFile(reservationPath(p), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			releasePorts(ports)
			return nil, err
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// releasePorts removes this process's reservations of ports.
func releasePorts(ports []int) {
	for _, p := range ports {
		if pid, err := os.ReadFile(reservationPath(p)); err == nil && string(pid) == strconv.Itoa(os.Getpid()) {
			_ = os.Remove(reservationPath(p))
		}
	}
}

func reservationPath(port int) string {
	return filepath.Join(portReservations, strconv.Itoa(port))
}

// reservedByLiveProcess says whether a process that still runs holds port.
func reservedByLiveProcess(port int) bool {
	b, err := os.ReadFile(reservationPath(port))
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || perr != nil || pid <= 0 {
		return true // unreadable: leave it alone
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// lockReservations takes the folder's lock (shared by every process), so
// that checking a port and reserving it is one step.
func lockReservations() (unlock func(), err error) {
	if err := os.MkdirAll(portReservations, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(portReservations, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
