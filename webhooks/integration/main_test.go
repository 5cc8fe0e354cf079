// Package integration tests meshkeeper's webhooks through a real API server:
// the API server decides which entry matches and calls the real handlers.
package integration_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/controllers/meshinstall"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
	"github.com/meshkeeper/meshkeeper/webhooks"
)

// The API server of these tests calls meshkeeper's real webhooks: the
// MeshInstall validator and the sidecar injector, with the injector's
// webhook configuration as the operator renders it.
var (
	env *testenv.Env
	// configs are the injection configurations the injector serves.
	configs = map[string]*inject.Config{}
)

const (
	stableRev = "1-31-4"
	canaryRev = "1-32-0"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	svc := &admissionregistrationv1.ServiceReference{Namespace: "meshkeeper-system", Name: "meshkeeper-webhook-service"}
	endpoint := webhookconfig.Endpoint{Service: svc}
	injector := webhookconfig.InjectorConfiguration(webhookconfig.Injector{
		ControlPlaneNamespace: "istio-system", OperatorNamespace: "meshkeeper-system",
		Revisions: []string{stableRev, canaryRev}, Tags: []string{"prod"},
		FailurePolicy: admissionregistrationv1.Fail, Endpoint: endpoint,
	})
	var err error
	env, err = testenv.Start(func(e *envtest.Environment) {
		// envtest points each entry at its local webhook server, keeping the path.
		e.WebhookInstallOptions.MutatingWebhooks = []*admissionregistrationv1.MutatingWebhookConfiguration{injector}
		e.WebhookInstallOptions.ValidatingWebhooks = []*admissionregistrationv1.ValidatingWebhookConfiguration{
			webhookconfig.ValidatorConfiguration(endpoint, nil),
		}
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()

	for rev, v := range map[string]string{stableRev: "1.31.4", canaryRev: "1.32.0"} {
		r, err := render.NewRevision(rev, v)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		mi := &meshv1alpha1.MeshInstall{Spec: meshv1alpha1.MeshInstallSpec{Version: v, Namespace: "istio-system"}}
		if configs[rev], err = render.InjectionConfig(mi, r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}

	wi := env.Environment.WebhookInstallOptions
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  env.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: wi.LocalServingHost, Port: wi.LocalServingPort, CertDir: wi.LocalServingCertDir,
			TLSOpts: webhooks.TLSOptions(),
		}),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&webhooks.MeshInstallValidator{MeshNamespaces: append([]string{"istio-system-trust"}, meshinstall.DefaultMeshNamespaces...), OperatorNamespace: "meshkeeper-system"}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	source := staticSource{revisions: configs, tags: map[string]string{"default": stableRev, "prod": stableRev}}
	webhooks.RegisterInjector(mgr.GetWebhookServer(), webhooks.NewInjectHandler(source, ctrl.Log.WithName("injector")))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		fmt.Fprintln(os.Stderr, "cache did not sync")
		return 1
	}
	started := mgr.GetWebhookServer().StartedChecker()
	for deadline := time.Now().Add(30 * time.Second); started(nil) != nil; {
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "webhook server did not start")
			return 1
		}
		time.Sleep(50 * time.Millisecond)
	}
	return m.Run()
}

// staticSource is a ConfigSource over fixed configurations.
type staticSource struct {
	// revisions are the configurations by revision name.
	revisions map[string]*inject.Config
	// tags map a tag to a revision name.
	tags map[string]string
}

func (s staticSource) Resolve(target webhooks.Target, _ webhooks.Workload) (*inject.Config, error) {
	rev := target.Revision
	if rev == "" {
		var ok bool
		if rev, ok = s.tags[target.Tag]; !ok {
			return nil, fmt.Errorf("revision tag %q points at no revision", target.Tag)
		}
	}
	cfg, ok := s.revisions[rev]
	if !ok {
		return nil, fmt.Errorf("no injection configuration for revision %q", rev)
	}
	return cfg, nil
}
