package meshinstall

import (
	"context"
	"testing"
	"time"

	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/meshkeeper/meshkeeper/internal/testenv"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// testEndpoint stands in for the operator's webhook server; these tests
// create no pods in injected namespaces, so it is never called.
func testEndpoint(context.Context) (webhookconfig.Endpoint, error) {
	return webhookconfig.Endpoint{URL: "https://127.0.0.1:1", CABundle: []byte("test-ca")}, nil
}

type managerOpts struct {
	funcs *interceptor.Funcs
}

// startManager runs the MeshInstall reconciler against the test API server
// until the test ends, configured like main.go (CacheOptions). It reserves
// the control plane namespace of the test's MeshInstall (createSample), the
// one namespace, with meshkeeper-system, it manages meshes in.
func startManager(t *testing.T, o managerOpts) *Reconciler {
	t.Helper()
	testNamespaceSeq++
	meshNamespaces := []string{controlPlaneNamespace()}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:     env.Scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Cache:      CacheOptions("meshkeeper-system", meshNamespaces),
		Controller: ctrlConfigForTests(),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := mgr.GetClient()
	if o.funcs != nil {
		// Error paths: a direct client whose calls the test can make fail.
		wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
		if err != nil {
			t.Fatal(err)
		}
		c = interceptor.NewClient(wc, *o.funcs)
	}
	r := &Reconciler{
		Client:            c,
		APIReader:         mgr.GetAPIReader(),
		Recorder:          events.EventRecorder(mgr.GetEventRecorder("meshkeeper-test")),
		OperatorNamespace: "meshkeeper-system",
		MeshNamespaces:    meshNamespaces,
		WebhookEndpoint:   testEndpoint,
		// What is not watched of the mesh CA is polled; tests need not wait 30s.
		CertificateAuthorityPoll: time.Second,
		// Pod events batched as in production, on a shorter clock: tests wait
		// for the pass after a pod changes, not for ten seconds.
		PodEventDelay: envtestPodEventDelay,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return r
}

// envtestPodEventDelay is the managers' PodEventDelay here.
const envtestPodEventDelay = 2 * time.Second

// eventually retries check until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, 100*time.Millisecond, what, check)
}

func ctrlConfigForTests() ctrlconfig.Controller {
	// Each test starts its own manager with the same controller names.
	return ctrlconfig.Controller{SkipNameValidation: ptr.To(true)}
}
