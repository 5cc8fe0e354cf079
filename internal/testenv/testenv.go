// Package testenv starts a real kube-apiserver and etcd (controller-runtime's
// envtest) with meshkeeper's CRDs installed, for tests of controllers and
// webhooks. The binaries come from KUBEBUILDER_ASSETS, which `make test` points
// at the locally built Kubernetes.
package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// Env is a running API server with meshkeeper's CRDs.
type Env struct {
	Environment *envtest.Environment
	Config      *rest.Config
	Scheme      *runtime.Scheme
	// Client talks to the API server directly (no cache), so tests read what is stored.
	Client client.Client
}

// RepoRoot is the root of the meshkeeper checkout.
func RepoRoot() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Scheme returns a scheme with the Kubernetes, meshkeeper and cert-manager types.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := meshv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := cmapi.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Option changes the environment before it starts.
type Option func(*envtest.Environment)

// WithCRDPaths installs CRDs from more directories or files (relative to the repo root).
func WithCRDPaths(paths ...string) Option {
	return func(e *envtest.Environment) {
		for _, p := range paths {
			e.CRDDirectoryPaths = append(e.CRDDirectoryPaths, filepath.Join(RepoRoot(), p))
		}
	}
}

// WithCertManagerCRDs installs cert-manager's CRDs (Certificate, Issuer,
// ClusterIssuer, CertificateRequest, ...) of the version go.mod requires.
func WithCertManagerCRDs() Option {
	return func(e *envtest.Environment) {
		dir, err := CertManagerCRDDir(RepoRoot())
		if err != nil {
			// A path that cannot exist: envtest fails to start (ErrorIfCRDPathMissing), naming why.
			dir = "cert-manager's CRDs: " + err.Error()
		}
		e.CRDDirectoryPaths = append(e.CRDDirectoryPaths, dir)
	}
}

// CertManagerCRDDir is deploy/crds of the cert-manager module the go.mod at
// repoRoot requires (`go list -m`, which downloads it when missing).
func CertManagerCRDDir(repoRoot string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", certManagerModule)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(exitErr.Stderr))
		}
		return "", fmt.Errorf("locating the %s module: %w", certManagerModule, err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "deploy", "crds")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("cert-manager's CRDs: %w", err)
	}
	return dir, nil
}

const certManagerModule = "github.com/cert-manager/cert-manager"

// WithWebhooks registers the webhook configurations in the given directory
// (relative to the repo root); envtest serves them on a local port with its own certificates.
func WithWebhooks(paths ...string) Option {
	return func(e *envtest.Environment) {
		for _, p := range paths {
			e.WebhookInstallOptions.Paths = append(e.WebhookInstallOptions.Paths, filepath.Join(RepoRoot(), p))
		}
	}
}

// Start starts the API server. Stop it with Env.Stop.
func Start(opts ...Option) (*Env, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds kube-apiserver and etcd and points KUBEBUILDER_ASSETS at them")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                Scheme(),
	}
	for _, o := range opts {
		o(env)
	}
	cfg, err := startWithGOGC(env)
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Environment: env, Config: cfg, Scheme: env.Scheme, Client: c}, nil
}

// controlPlaneGOGC is the garbage collector's target for the test API
// server and etcd (as for the e2e clusters' components, see
// localcluster): they live for one package's tests and hold little, and
// they run beside the e2e suite's clusters on a 2-core machine.
const controlPlaneGOGC = "400"

// startWithGOGC starts env with GOGC=controlPlaneGOGC in the environment
// its processes inherit (unless GOGC is set already), and restores it.
// TestMain calls it before any test runs, so nothing else reads it meanwhile.
func startWithGOGC(env *envtest.Environment) (*rest.Config, error) {
	if _, set := os.LookupEnv("GOGC"); !set {
		if err := os.Setenv("GOGC", controlPlaneGOGC); err != nil {
			return nil, err
		}
		defer os.Unsetenv("GOGC")
	}
	return env.Start()
}

// Stop stops the API server.
func (e *Env) Stop() error { return e.Environment.Stop() }

// Sample reads config/samples' MeshInstall, strictly: a field the API does
// not have fails.
func Sample() (*meshv1alpha1.MeshInstall, error) {
	data, err := os.ReadFile(filepath.Join(RepoRoot(), "config", "samples", "mesh_v1alpha1_meshinstall.yaml"))
	if err != nil {
		return nil, err
	}
	mi := &meshv1alpha1.MeshInstall{}
	if err := yaml.UnmarshalStrict(data, mi); err != nil {
		return nil, fmt.Errorf("the sample does not match the API types: %w", err)
	}
	return mi, nil
}

// Eventually retries check every interval until it returns nil, failing
// the test with the last error after timeout.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(interval)
	}
	t.Fatalf("%s: not true after %s: %v", what, timeout, err)
}

// Main is the TestMain of a package tested against the API server: it
// starts it into *env, runs the tests, stops it and exits with their
// result. Controllers log to stderr when MESHKEEPER_TEST_LOG is set.
func Main(m *testing.M, env **Env, opts ...Option) {
	if os.Getenv("MESHKEEPER_TEST_LOG") != "" {
		ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(logr.Discard())
	}
	e, err := Start(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*env = e
	code := m.Run()
	_ = e.Stop()
	os.Exit(code)
}
