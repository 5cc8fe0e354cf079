package e2e

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/kube"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

// helmRelease is the release name the e2e installs charts/meshkeeper as.
const helmRelease = "meshkeeper"

// helmTimeout bounds one Helm action: it applies objects and waits for nothing.
const helmTimeout = time.Minute

// helm is Helm's action configuration for the test's cluster, as the helm
// CLI makes it from a kubeconfig and a namespace (releases in Secrets).
func (e *env) helm(t *testing.T, namespace string) *action.Configuration {
	t.Helper()
	getter := genericclioptions.NewConfigFlags(false)
	getter.KubeConfig = &e.cluster.Kubeconfig
	getter.Namespace = &namespace
	// The discovery cache goes with the suite's files, not to ~/.kube/cache.
	cacheDir := filepath.Join(workDir, "kube-cache", e.cluster.Name)
	getter.CacheDir = &cacheDir
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	if err := cfg.Init(getter, namespace, "secret"); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// loadChart loads the checked-in chart (make chart generates it from config/).
func loadChart(t *testing.T) *chartv2.Chart {
	t.Helper()
	ch, err := loader.LoadDir(filepath.Join(testenv.RepoRoot(), "charts", "meshkeeper"))
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// helmInstall installs the chart as `helm install` does, CRDs first, and
// waits for no object to become ready.
func (e *env) helmInstall(t *testing.T, namespace string, ch *chartv2.Chart, values map[string]any) *releasev1.Release {
	t.Helper()
	install := action.NewInstall(e.helm(t, namespace))
	install.ReleaseName = helmRelease
	install.Namespace = namespace
	install.WaitStrategy = kube.HookOnlyStrategy
	install.Timeout = helmTimeout
	rel, err := install.Run(ch, values)
	return asRelease(t, rel, err)
}

// helmUpgrade upgrades the release to the chart with values, as `helm upgrade` does.
func (e *env) helmUpgrade(t *testing.T, namespace string, ch *chartv2.Chart, values map[string]any) *releasev1.Release {
	t.Helper()
	upgrade := action.NewUpgrade(e.helm(t, namespace))
	upgrade.Namespace = namespace
	upgrade.WaitStrategy = kube.HookOnlyStrategy
	upgrade.Timeout = helmTimeout
	rel, err := upgrade.Run(helmRelease, ch, values)
	return asRelease(t, rel, err)
}

// helmUninstall uninstalls the release, as `helm uninstall` does.
func (e *env) helmUninstall(t *testing.T, namespace string) {
	t.Helper()
	uninstall := action.NewUninstall(e.helm(t, namespace))
	uninstall.WaitStrategy = kube.HookOnlyStrategy
	uninstall.Timeout = helmTimeout
	if _, err := uninstall.Run(helmRelease); err != nil {
		t.Fatal(err)
	}
}

func asRelease(t *testing.T, rel any, err error) *releasev1.Release {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	r, ok := rel.(*releasev1.Release)
	if !ok {
		t.Fatalf("a release of type %T", rel)
	}
	return r
}
