// Command controller runs cert-manager's certificate controllers and its
// SelfSigned and CA issuers outside a cluster, against the cluster of
// --kubeconfig. It is the part of cert-manager's controller the tests and the
// demo need, built from cert-manager's public packages: cert-manager publishes
// its binaries as untagged nested modules that `go install` cannot fetch.
//
// No ACME, Vault or Venafi issuer, ingress or gateway shim, leader election,
// metrics or health ports: several copies run side by side, one per cluster.
//
// Usage: controller --kubeconfig FILE [--cluster-resource-namespace NS] [-v N]
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// Each of these registers its controller (or issuer) in init().
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// controllers are the controllers this command runs, by their registered names.
var controllers = []string{
	issuers.ControllerName,
	clusterissuers.ControllerName,
	approver.ControllerName,
	crca.CRControllerName,
	crselfsigned.CRControllerName,
	trigger.ControllerName,
	keymanager.ControllerName,
	requestmanager.ControllerName,
	issuing.ControllerName,
	readiness.ControllerName,
	revisionmanager.ControllerName,
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	clusterResourceNamespace := flag.String("cluster-resource-namespace", "cert-manager", "namespace where ClusterIssuers read their Secrets")
	workers := flag.Int("workers", 5, "workers per controller")
	backoff := flag.Duration("certificate-request-minimum-backoff", time.Minute, "first delay before a failed CertificateRequest is retried")
	klog.InitFlags(flag.CommandLine)
	flag.Parse()
	logf.InitLogs()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log, "controller")
	if err := run(ctx, *kubeconfig, *clusterResourceNamespace, *workers, *backoff); err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager controller:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig, clusterResourceNamespace string, workers int, backoff time.Duration) error {
	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig:       kubeconfig,
		KubernetesAPIQPS: 50, KubernetesAPIBurst: 100,
		IssuerOptions: controllerpkg.IssuerOptions{ClusterResourceNamespace: clusterResourceNamespace},
		CertificateOptions: controllerpkg.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: backoff,
			CertificateRequestMaximumBackoffDuration: 32 * backoff,
		},
	})
	if err != nil {
		return err
	}
	known := controllerpkg.Known()
	var run []controllerpkg.Interface
	for _, name := range controllers {
		newController, ok := known[name]
		if !ok {
			return fmt.Errorf("controller %q is not registered (registered: %v)", name, slices.Sorted(maps.Keys(known)))
		}
		c, err := newController(factory)
		if err != nil {
			return fmt.Errorf("controller %s: %w", name, err)
		}
		run = append(run, c)
	}

	// The controllers share the factory's informers: they registered theirs
	// above, so the informers start only now.
	shared, err := factory.Build()
	if err != nil {
		return err
	}
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.SharedInformerFactory.Start(ctx.Done())

	var wg sync.WaitGroup
	errs := make(chan error, len(run))
	for i, c := range run {
		wg.Go(func() {
			if err := c.Run(workers, ctx); err != nil {
				errs <- fmt.Errorf("controller %s: %w", controllers[i], err)
			}
		})
	}
	logf.Log.Info("cert-manager controllers started", "controllers", controllers, "clusterResourceNamespace", clusterResourceNamespace)
	wg.Wait()
	shared.KubeSharedInformerFactory.Shutdown()
	shared.SharedInformerFactory.Shutdown()
	close(errs)
	return <-errs
}
