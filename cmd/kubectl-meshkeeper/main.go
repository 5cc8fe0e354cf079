// Command kubectl-meshkeeper is meshkeeper's kubectl plugin: on the PATH,
// `kubectl meshkeeper <command>` runs it. It only reads the cluster, and
// answers from the same packages the operator decides with:
//
//	status [NAME] [-n NS] [--watch]   the upgrade as the operator reports it
//	precheck VERSION                  what spec.version: VERSION would do, before anyone edits it
//	check-inject POD | -l SELECTOR    which injector entry and revision a pod gets, and why
//	translate [-n istio-system]       the MeshInstall equivalent to an Istio meshkeeper did not make
//
//	go install github.com/meshkeeper/meshkeeper/cmd/kubectl-meshkeeper@latest
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

const usage = `Usage: kubectl meshkeeper <command> [flags]

Commands:
  status [NAME] [-n NS] [--watch]
        The MeshInstall's revisions, canary, data-plane rollout, pods that
        need a person and its conditions, as the operator reports them.
        -n NS adds the pods of one namespace by revision and lists only
        its workloads. --watch redraws on every change.
  precheck VERSION
        What setting spec.version to VERSION would do on this cluster: the
        upgrade path or why it is refused, istiod defaults that change,
        workloads that would need a manual restart, room for a second
        istiod. Exits non-zero when the change would be refused.
  check-inject POD [-n NS] | -n NS -l SELECTOR
        Which entry of meshkeeper's injector would inject the pod and which
        revision it gets, and why; or why it would not be injected.
  translate [-n istio-system] [--revision REV] [--migrate-into NAMESPACE]
        Reads an Istio control plane meshkeeper did not make and prints the
        MeshInstall that installs the same, with a comment listing every
        setting it cannot express and why.

Nothing in the cluster is changed. Every command takes kubectl's connection
flags (--kubeconfig, --context, -n, …).
`

// errRefused is returned, after the report, when precheck finds the change
// would be refused; the exit code says so to scripts.
var errRefused = errors.New("the change would be refused")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// command is one subcommand: its flags, bound to fs, and what it does
// with its arguments once connected.
type command struct {
	flags func(fs *pflag.FlagSet) func(ctx context.Context, conn connection, args []string, stdout io.Writer) error
}

var commands = map[string]command{
	"status":       {statusFlags},
	"precheck":     {precheckFlags},
	"check-inject": {checkInjectFlags},
	"translate":    {translateFlags},
}

// run parses the command line as kubectl passes it to a plugin: the
// subcommand, then kubectl's connection flags and the subcommand's own.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || commands[args[0]].flags == nil {
		fmt.Fprint(stderr, usage)
		names := make([]string, 0, len(commands))
		for n := range commands {
			names = append(names, n)
		}
		slices.Sort(names)
		return fmt.Errorf("name a command: %s", strings.Join(names, ", "))
	}
	name := args[0]
	fs := pflag.NewFlagSet("kubectl meshkeeper "+name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage, "\nFlags of ", name, ":\n"); fs.PrintDefaults() }
	loading := clientcmd.NewDefaultClientConfigLoadingRules()
	fs.StringVar(&loading.ExplicitPath, "kubeconfig", "", "Path to the kubeconfig file to use.")
	overrides := &clientcmd.ConfigOverrides{}
	clientcmd.BindOverrideFlags(overrides, fs, clientcmd.RecommendedConfigOverrideFlags(""))
	do := commands[name].flags(fs)
	switch err := fs.Parse(args[1:]); {
	case errors.Is(err, pflag.ErrHelp):
		return nil
	case err != nil:
		return err
	}
	conn := connection{config: clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, overrides), namespace: overrides.Context.Namespace}
	return do(ctx, conn, fs.Args(), stdout)
}

// connection is the cluster the flags name, loaded only by the commands
// that need it.
type connection struct {
	config clientcmd.ClientConfig
	// namespace is -n as given; "" when not.
	namespace string
}

func (c connection) restConfig() (*rest.Config, error) {
	cfg, err := c.config.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	return cfg, nil
}

// namespaceOrContext is -n, or the context's namespace, as kubectl uses for pods.
func (c connection) namespaceOrContext() (string, error) {
	if c.namespace != "" {
		return c.namespace, nil
	}
	ns, _, err := c.config.Namespace()
	return ns, err
}

// client reads MeshInstalls and Kubernetes' own kinds.
func (c connection) client() (client.WithWatch, error) {
	cfg, err := c.restConfig()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := meshv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.NewWithWatch(cfg, client.Options{Scheme: scheme})
}

func translateFlags(fs *pflag.FlagSet) func(context.Context, connection, []string, io.Writer) error {
	rev := fs.String("revision", "", "The Istio revision to translate (the istio.io/rev of its istiod); needed when the namespace runs more than one.")
	into := fs.String("migrate-into", "", "Print a MeshInstall that migrates this revision (spec.migration), its control plane in this namespace of its own.")
	return func(ctx context.Context, conn connection, args []string, stdout io.Writer) error {
		if len(args) > 0 {
			return fmt.Errorf("translate takes no arguments, got %q", args)
		}
		// Istio's control plane namespace, not the context's default namespace, unless -n says so.
		namespace := conn.namespace
		if namespace == "" {
			namespace = "istio-system"
		}
		cfg, err := conn.restConfig()
		if err != nil {
			return err
		}
		return translateCluster(ctx, cfg, namespace, *rev, *into, stdout)
	}
}
