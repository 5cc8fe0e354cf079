package webhookcert

import (
	"testing"
	"time"

	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

var env *testenv.Env

// timeout bounds how long a test waits for a reconciler, as in the
// MeshInstall controller's tests.
const timeout = 20 * time.Second

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// eventually retries check until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, 100*time.Millisecond, what, check)
}
