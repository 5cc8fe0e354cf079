package e2e

import (
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

// scrapeMarker heads each scrape in a samples file (test/dashboard's
// ScrapeMarker: that module is not imported here, see its doc).
const scrapeMarker = "# meshkeeper-scrape "

// updateDashboardSamples, set to 1, makes checkDashboard also keep the
// samples as test/dashboard's recording (testdata/), which its tests read
// when run on their own (make test-dashboard).
const updateDashboardSamples = "MESHKEEPER_UPDATE_DASHBOARD_SAMPLES"

// metricsRecorder scrapes the operator's metrics endpoint at a fixed
// interval, as Prometheus would, into a samples file.
type metricsRecorder struct {
	path    string
	stop    chan struct{}
	done    sync.WaitGroup
	mu      sync.Mutex
	scrapes int
	failed  []error
	checker *dashboardChecker
}

// recordMetrics starts scraping e's operator every interval until stop.
func (e *env) recordMetrics(t *testing.T, interval time.Duration) *metricsRecorder {
	t.Helper()
	r := &metricsRecorder{path: filepath.Join(t.TempDir(), "upgrade.metrics"), stop: make(chan struct{}),
		checker: buildDashboardChecker(t)}
	f, err := os.Create(r.path)
	if err != nil {
		t.Fatal(err)
	}
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		defer f.Close()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			r.scrapeInto(f, e)
			select {
			case <-r.stop:
				r.scrapeInto(f, e) // the state the upgrade ended in
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(r.halt)
	return r
}

func (r *metricsRecorder) scrapeInto(f *os.File, e *env) {
	at := time.Now()
	body, err := e.operator.Metrics()
	if err == nil {
		_, err = fmt.Fprintf(f, "%s%d\n%s", scrapeMarker, at.UnixMilli(), body)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed = append(r.failed, err)
		return
	}
	r.scrapes++
}

func (r *metricsRecorder) halt() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.done.Wait()
}

// checkDashboard stops the recording and runs test/dashboard's tests on it:
// every query of config/grafana's dashboard parses and returns data from
// what the operator served during the upgrade, and the alerts (and their
// promtool tests) read only metrics and labels it serves. test/dashboard is a module
// of its own (github.com/prometheus/prometheus stays out of meshkeeper's
// go.mod), so it runs as its own go test.
func (r *metricsRecorder) checkDashboard(t *testing.T) {
	t.Helper()
	r.halt()
	r.mu.Lock()
	scrapes, failed := r.scrapes, r.failed
	r.mu.Unlock()
	if len(failed) > 0 {
		t.Errorf("%d scrapes failed, the first: %v", len(failed), failed[0])
	}
	if scrapes < 10 {
		t.Fatalf("%d scrapes recorded, too few to draw a dashboard", scrapes)
	}
	out, err := r.checker.run(r.path)
	if err != nil {
		t.Fatalf("the dashboard and the alerts on %d scrapes of the upgrade: %v\n%s", scrapes, err, out)
	}
	t.Logf("the dashboard and the alerts on %d scrapes of the upgrade:\n%s", scrapes, indent(string(out)))
	if os.Getenv(updateDashboardSamples) == "1" {
		if err := keepRecording(r.path, filepath.Join(dashboardDir(), "testdata", "canary-upgrade.metrics.gz")); err != nil {
			t.Error(err)
		}
	}
}

func dashboardDir() string { return filepath.Join(testenv.RepoRoot(), "test", "dashboard") }

// dashboardChecker is test/dashboard's test binary, compiled while the
// upgrade runs (go test -c) so that the check after it only runs it.
type dashboardChecker struct {
	binary string
	built  chan struct{} // closed once the compilation ends, with err
	err    error
}

// buildDashboardChecker starts compiling the test binary into a temporary
// directory, which the test removes only once the compilation has ended.
func buildDashboardChecker(t *testing.T) *dashboardChecker {
	c := &dashboardChecker{binary: filepath.Join(t.TempDir(), "dashboard.test"), built: make(chan struct{})}
	go func() {
		defer close(c.built)
		cmd := exec.Command("go", "test", "-c", "-o", c.binary, ".")
		cmd.Dir = dashboardDir()
		if out, err := cmd.CombinedOutput(); err != nil {
			c.err = fmt.Errorf("compiling test/dashboard's tests: %w\n%s", err, out)
		}
	}()
	t.Cleanup(func() { <-c.built })
	return c
}

// run runs the dashboard's and the alerts' tests on a samples file, in
// test/dashboard (their paths are relative to it).
func (c *dashboardChecker) run(samples string) ([]byte, error) {
	if <-c.built; c.err != nil {
		return nil, c.err
	}
	cmd := exec.Command(c.binary, "-test.v", "-test.run", "^(TestDashboardQueries|TestAlertsReadMetricsTheOperatorServes)")
	cmd.Dir = dashboardDir()
	cmd.Env = append(os.Environ(), "MESHKEEPER_DASHBOARD_SAMPLES="+samples)
	return cmd.CombinedOutput()
}

// recordedFamilies are the metric families the recording keeps: those the
// dashboard and the alerts read (the Go runtime's and the client's, nine
// tenths of a scrape, are left out to keep it small).
var recordedFamilies = []string{"meshkeeper_", "controller_runtime_", "workqueue_", "leader_election_", "process_"}

// keptInRecording reports whether a line of a samples file stays in the recording:
// the scrape markers, and the TYPE lines and samples of recordedFamilies.
func keptInRecording(line string) bool {
	if strings.HasPrefix(line, scrapeMarker) {
		return true
	}
	name := strings.TrimPrefix(line, "# TYPE ")
	if strings.HasPrefix(line, "#") && name == line {
		return false // HELP and other comments
	}
	for _, f := range recordedFamilies {
		if strings.HasPrefix(name, f) {
			return true
		}
	}
	return false
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// keepRecording writes the recorded lines of a samples file, gzipped.
func keepRecording(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	var kept strings.Builder
	for line := range strings.Lines(string(data)) {
		if keptInRecording(line) {
			kept.WriteString(line)
		}
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	f, err := os.Create(to)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	_, err = zw.Write([]byte(kept.String()))
	return errors.Join(err, zw.Close(), f.Close())
}
