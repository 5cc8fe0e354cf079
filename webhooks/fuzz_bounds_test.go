package webhooks

import (
	"testing"

	"github.com/meshkeeper/meshkeeper/internal/fuzzbudget"
)

// callBounded fails t when one webhook call fn costs more than
// fuzzbudget.Call allows.
func callBounded(t *testing.T, what string, fn func()) {
	t.Helper()
	fuzzbudget.Call(t, what, fn)
}
