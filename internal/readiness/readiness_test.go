package readiness

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestChecksAreScrapedAsTheyAreNow runs the checks at each collection: a
// check that fails reads 0, and 1 once it passes.
func TestChecksAreScrapedAsTheyAreNow(t *testing.T) {
	var injectorReady bool
	checks := Checks{
		"webhook-server": func(*http.Request) error { return nil },
		"injector": func(*http.Request) error {
			if !injectorReady {
				return errors.New("no configuration yet")
			}
			return nil
		},
	}
	want := func(injector string) string {
		return `# HELP meshkeeper_ready_check 1 when the readiness check (the check label, as /readyz names it) passes at scrape time, 0 when it fails.
# TYPE meshkeeper_ready_check gauge
meshkeeper_ready_check{check="injector"} ` + injector + `
meshkeeper_ready_check{check="webhook-server"} 1
`
	}
	if err := testutil.CollectAndCompare(checks, strings.NewReader(want("0"))); err != nil {
		t.Errorf("the injector not ready: %v", err)
	}
	injectorReady = true
	if err := testutil.CollectAndCompare(checks, strings.NewReader(want("1"))); err != nil {
		t.Errorf("the injector ready: %v", err)
	}
}
