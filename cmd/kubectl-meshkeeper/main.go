// Command kubectl-meshkeeper is meshkeeper's kubectl plugin: on the PATH,
// `kubectl meshkeeper translate` runs it. translate reads an Istio
// installation meshkeeper did not make (istioctl, Helm, Sail) and prints
// the equivalent MeshInstall, with a comment listing every setting it
// cannot express and why. It only reads.
//
//	go install github.com/meshkeeper/meshkeeper/cmd/kubectl-meshkeeper@latest
//	kubectl meshkeeper translate [-n istio-system] [--revision <rev>] [--context …]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"
)

const usage = `Usage: kubectl meshkeeper translate [flags]

Reads the Istio control plane in a namespace (istiod, its mesh config and
injector configuration, gateways, revision tags, istioctl's IstioOperator)
and prints the MeshInstall that installs the same, with a comment listing
every setting it cannot express and why. Nothing in the cluster is changed.

Flags:
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// run parses the command line as kubectl would pass it to a plugin: the
// subcommand, then kubectl's connection flags and translate's own.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "translate" {
		fmt.Fprint(stderr, usage)
		return errors.New("the only subcommand is translate")
	}
	fs := pflag.NewFlagSet("kubectl meshkeeper translate", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	loading := clientcmd.NewDefaultClientConfigLoadingRules()
	fs.StringVar(&loading.ExplicitPath, "kubeconfig", "", "Path to the kubeconfig file to use.")
	overrides := &clientcmd.ConfigOverrides{}
	clientcmd.BindOverrideFlags(overrides, fs, clientcmd.RecommendedConfigOverrideFlags(""))
	rev := fs.String("revision", "", "The Istio revision to translate (the istio.io/rev of its istiod); needed when the namespace runs more than one.")
	switch err := fs.Parse(args[1:]); {
	case errors.Is(err, pflag.ErrHelp):
		return nil
	case err != nil:
		return err
	}
	// Istio's control plane namespace, not the context's default namespace, unless -n says so.
	namespace := overrides.Context.Namespace
	if namespace == "" {
		namespace = "istio-system"
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, overrides).ClientConfig()
	if err != nil {
		return fmt.Errorf("loading the kubeconfig: %w", err)
	}
	return translateCluster(ctx, cfg, namespace, *rev, stdout)
}
