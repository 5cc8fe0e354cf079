// Command manager runs the meshkeeper operator: the MeshInstall controller,
// the webhook certificate controller, the MeshInstall validating webhook and
// the sidecar injection webhook.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/controllers/meshinstall"
	"github.com/meshkeeper/meshkeeper/controllers/webhookcert"
	"github.com/meshkeeper/meshkeeper/internal/certs"
	"github.com/meshkeeper/meshkeeper/internal/readiness"
	"github.com/meshkeeper/meshkeeper/webhooks"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	utilruntime.Must(meshv1alpha1.AddToScheme(scheme))
	// cert-manager's types, for the mesh CA's Certificate and its issuer.
	// Only registered: nothing reads them on a cluster without cert-manager.
	utilruntime.Must(cmapi.AddToScheme(scheme))
}

type options struct {
	metricsAddr, probeAddr, pprofAddr string
	metricsSecure                     bool
	metricsCertPath                   string
	metricsCertName                   string
	metricsCertKey                    string
	leaderElect                       bool
	shutdownTimeout                   time.Duration
	namespace                         string
	meshNamespaces                    []string
	webhookHost                       string
	webhookPort                       int
	certDir                           string
	certSecret                        string
	webhookService                    string
	webhookURL                        string
	certValidity                      time.Duration
	// The webhook certificate from cert-manager (--webhook-cert-provider=cert-manager).
	certProvider    string
	certificateName string
	certIssuer      cmmeta.IssuerReference
	certWait        time.Duration
}

// Webhook certificate providers (--webhook-cert-provider).
const (
	certProviderSelfManaged = "self-managed"
	certProviderCertManager = "cert-manager"
)

func main() {
	o := options{meshNamespaces: meshinstall.DefaultMeshNamespaces}
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "Address the Prometheus metrics endpoint binds to (:8443 for HTTPS, :8080 with --metrics-secure=false); 0 turns it off.")
	flag.BoolVar(&o.metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS to authenticated and authorized clients only (TokenReview and SubjectAccessReview, e.g. the metrics-reader ClusterRole). --metrics-secure=false serves plain HTTP to anyone.")
	flag.StringVar(&o.metricsCertPath, "metrics-cert-path", "", "Directory holding the metrics server's certificate; a self-signed one is generated when empty.")
	flag.StringVar(&o.metricsCertName, "metrics-cert-name", "tls.crt", "File name of the metrics server's certificate in --metrics-cert-path.")
	flag.StringVar(&o.metricsCertKey, "metrics-cert-key", "tls.key", "File name of the metrics server's key in --metrics-cert-path.")
	flag.StringVar(&o.pprofAddr, "pprof-bind-address", "0", "Address Go's profiling endpoints (/debug/pprof/) bind to, e.g. 127.0.0.1:8082, for diagnosing memory or CPU use; 0 (the default) turns them off. They are unauthenticated: bind them to localhost only.")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address the health (/healthz) and readiness (/readyz) endpoints bind to.")
	flag.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so that only one replica reconciles at a time (every replica serves webhooks).")
	flag.DurationVar(&o.shutdownTimeout, "graceful-shutdown-timeout", 30*time.Second, "How long to wait for running work to finish on SIGTERM.")
	flag.StringVar(&o.namespace, "namespace", envOr("POD_NAMESPACE", "meshkeeper-system"), "Namespace the operator runs in (its Secret and leader election lease live there).")
	flag.Func("mesh-namespaces", fmt.Sprintf("Comma-separated namespaces a MeshInstall may put its control plane (spec.namespace) and gateways in (default %s). meshkeeper reads and trusts its own objects only there, so that no tenant can steer it from another namespace.", strings.Join(meshinstall.DefaultMeshNamespaces, ",")),
		func(v string) error {
			o.meshNamespaces = strings.Split(v, ",")
			return nil
		})
	flag.StringVar(&o.webhookHost, "webhook-host", "", "Address the webhook server binds to (all addresses when empty).")
	flag.IntVar(&o.webhookPort, "webhook-port", 9443, "Port of the webhook server.")
	flag.StringVar(&o.certDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Directory the webhook server's certificate is written to and reloaded from.")
	flag.StringVar(&o.certSecret, "webhook-cert-secret", "meshkeeper-webhook-certs", "Secret holding the webhook CA and serving certificate (self-managed).")
	flag.StringVar(&o.webhookService, "webhook-service", "meshkeeper-webhook-service", "Service in front of the webhook server (in-cluster mode).")
	flag.StringVar(&o.webhookURL, "webhook-url", "", "Base URL the API server uses to reach the webhook server when the operator runs outside the cluster, e.g. https://127.0.0.1:9443. Replaces the Service.")
	flag.DurationVar(&o.certValidity, "webhook-cert-validity", certs.DefaultLifetimes.Serving, "Lifetime of the webhook serving certificate; it is renewed after two thirds of it. The MeshkeeperWebhookCertificateNearExpiry alert (14 days left) assumes at least 21 days.")
	flag.StringVar(&o.certProvider, "webhook-cert-provider", certProviderSelfManaged, "Who issues the webhook serving certificate: self-managed (the operator's own CA, in --webhook-cert-secret) or cert-manager (a Certificate from --webhook-cert-issuer-*, its CA injected into the webhook configurations by cert-manager's cainjector).")
	flag.StringVar(&o.certificateName, "webhook-certificate", "meshkeeper-webhook-cert", "With cert-manager: name of the Certificate (and of its Secret) the operator applies in --namespace.")
	flag.StringVar(&o.certIssuer.Kind, "webhook-cert-issuer-kind", cmapi.IssuerKind, "With cert-manager: kind of the issuer of the webhook certificate, Issuer (in --namespace) or ClusterIssuer.")
	flag.StringVar(&o.certIssuer.Name, "webhook-cert-issuer-name", "", "With cert-manager: name of the issuer of the webhook certificate.")
	flag.StringVar(&o.certIssuer.Group, "webhook-cert-issuer-group", cmapi.SchemeGroupVersion.Group, "With cert-manager: API group of the issuer (an external issuer's; its readiness is then not checked).")
	flag.DurationVar(&o.certWait, "webhook-cert-wait", 2*time.Minute, "With cert-manager: how long to wait at start for the issuer and the issued certificate before exiting with the reason.")
	zopts := zap.Options{}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))

	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		ctrl.Log.WithName("setup").Error(err, "manager exited")
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	log := ctrl.Log.WithName("setup")
	retrigger := make(chan event.GenericEvent, 1)
	onCABundleChange := func() {
		select {
		case retrigger <- event.GenericEvent{Object: &meshv1alpha1.MeshInstall{}}:
		default: // a pass is already pending
		}
	}
	// Flags are checked before anything is read or written.
	certSource, err := newWebhookCertificates(o, onCABundleChange)
	if err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	// The webhook server's certwatcher needs the certificate on disk before it starts.
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	if err := certSource.Bootstrap(ctx, direct); err != nil {
		return fmt.Errorf("issuing the webhook certificate: %w", err)
	}

	metrics, metricsCerts, err := metricsOptions(o)
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metrics,
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "meshkeeper.mesh.meshkeeper.dev",
		LeaderElectionNamespace: o.namespace,
		// The process exits right after the manager stops, so handing the
		// lease over at once is safe and spares the next leader ~15s.
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &o.shutdownTimeout,
		Cache:                         meshinstall.CacheOptions(o.namespace, o.meshNamespaces),
		WebhookServer: webhook.NewServer(webhook.Options{
			Host:    o.webhookHost,
			Port:    o.webhookPort,
			CertDir: o.certDir,
			TLSOpts: webhooks.TLSOptions(),
		}),
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if metricsCerts != nil {
		if err := mgr.Add(metricsCerts); err != nil {
			return err
		}
	}

	if err := certSource.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the webhook certificate controller: %w", err)
	}
	if err := (&meshinstall.Reconciler{
		Client:            mgr.GetClient(),
		APIReader:         mgr.GetAPIReader(),
		Recorder:          mgr.GetEventRecorder("meshkeeper"),
		OperatorNamespace: o.namespace,
		MeshNamespaces:    o.meshNamespaces,
		WebhookEndpoint:   certSource.Endpoint,
		Retrigger:         retrigger,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the MeshInstall controller: %w", err)
	}
	if err := (&webhooks.MeshInstallValidator{MeshNamespaces: o.meshNamespaces, OperatorNamespace: o.namespace}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the MeshInstall validator: %w", err)
	}
	source, err := setupInjector(ctx, mgr)
	if err != nil {
		return fmt.Errorf("setting up the sidecar injector: %w", err)
	}
	// The validator reads MeshInstalls from the cache: its informer is
	// registered here so that readiness waits for it on every replica (the
	// controllers, which would register it too, run on the leader only).
	miInformer, err := mgr.GetCache().GetInformer(ctx, &meshv1alpha1.MeshInstall{})
	if err != nil {
		return err
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	// Ready means every webhook can answer: the server listens, the
	// injector has every revision's configuration and routing, and the
	// validator has the MeshInstalls.
	checks := readiness.Checks{
		"webhook-server": mgr.GetWebhookServer().StartedChecker(),
		"injector":       source.Ready,
		"validator": func(*http.Request) error {
			if !miInformer.HasSynced() {
				return errors.New("MeshInstalls are not loaded yet")
			}
			return nil
		},
	}
	// With cert-manager, ready also means cainjector has given the API server
	// the CA to call us with.
	if injected, ok := certSource.(interface{ CAInjected(*http.Request) error }); ok {
		checks["webhook-ca-injected"] = injected.CAInjected
	}
	for name, check := range checks {
		if err := mgr.AddReadyzCheck(name, check); err != nil {
			return err
		}
	}
	// The same checks as meshkeeper_ready_check, for the alerts.
	if err := ctrlmetrics.Registry.Register(checks); err != nil {
		return err
	}
	// Whether replicas elect a leader: MeshkeeperNoLeader alerts only then
	// (without it no replica reports leader_election_master_status).
	leaderElection := prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshkeeper_leader_election_enabled",
		Help: "1 when the operator elects a leader (--leader-elect), 0 when every replica reconciles on its own."})
	if o.leaderElect {
		leaderElection.Set(1)
	}
	if err := ctrlmetrics.Registry.Register(leaderElection); err != nil {
		return err
	}
	log.Info("starting manager", "namespace", o.namespace, "webhookURL", o.webhookURL, "webhookCertProvider", o.certProvider)
	return mgr.Start(ctx)
}

// metricsOptions serves metrics as kubebuilder does: over HTTPS, to clients
// whose bearer token the API server authenticates (TokenReview) and
// authorizes for GET /metrics (SubjectAccessReview), with the certificate in
// --metrics-cert-path (reloaded when it changes) or a self-signed one.
func metricsOptions(o options) (metricsserver.Options, *certwatcher.CertWatcher, error) {
	opts := metricsserver.Options{BindAddress: o.metricsAddr}
	if !o.metricsSecure {
		return opts, nil, nil
	}
	opts.SecureServing = true
	opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	// The webhook server's hardening: TLS 1.2 or later, no HTTP/2.
	opts.TLSOpts = webhooks.TLSOptions()
	if o.metricsCertPath == "" {
		return opts, nil, nil
	}
	watcher, err := certwatcher.New(filepath.Join(o.metricsCertPath, o.metricsCertName), filepath.Join(o.metricsCertPath, o.metricsCertKey))
	if err != nil {
		return opts, nil, fmt.Errorf("loading the metrics certificate: %w", err)
	}
	opts.TLSOpts = append(opts.TLSOpts, func(c *tls.Config) { c.GetCertificate = watcher.GetCertificate })
	return opts, watcher, nil
}

// setupInjector serves the sidecar injector on every replica, reading each
// revision's configuration from the manager's cache.
func setupInjector(ctx context.Context, mgr ctrl.Manager) (*webhooks.RevisionSource, error) {
	source, err := webhooks.NewRevisionSource(ctx, mgr.GetCache())
	if err != nil {
		return nil, err
	}
	namespaces, err := webhooks.NewPodSecurityNamespaces(ctx, mgr.GetCache())
	if err != nil {
		return nil, err
	}
	injector := webhooks.NewInjectHandler(source, ctrl.Log.WithName("injector")).WithNamespaces(namespaces)
	webhooks.RegisterInjector(mgr.GetWebhookServer(), injector)
	return source, nil
}

// newWebhookCertificates makes the certificate controller of
// --webhook-cert-provider; onCABundleChange asks the MeshInstall controller
// for a pass when the CA to trust changed.
func newWebhookCertificates(o options, onCABundleChange func()) (webhookcert.Provider, error) {
	server, err := webhookAddress(o)
	if err != nil {
		return nil, err
	}
	server.CertDir, server.OnCABundleChange = o.certDir, onCABundleChange
	switch o.certProvider {
	case certProviderSelfManaged:
		return &webhookcert.SelfManagedReconciler{
			Server: server, Namespace: o.namespace, SecretName: o.certSecret,
			Lifetimes: certs.Lifetimes{CA: certs.DefaultLifetimes.CA, Serving: o.certValidity},
		}, nil
	case certProviderCertManager:
		if o.certIssuer.Name == "" {
			return nil, errors.New("--webhook-cert-provider=cert-manager needs --webhook-cert-issuer-name")
		}
		if k := o.certIssuer.Kind; o.certIssuer.Group == cmapi.SchemeGroupVersion.Group && k != cmapi.IssuerKind && k != cmapi.ClusterIssuerKind {
			return nil, fmt.Errorf("--webhook-cert-issuer-kind %q: want %s or %s", k, cmapi.IssuerKind, cmapi.ClusterIssuerKind)
		}
		return &webhookcert.CertManagerReconciler{
			Server: server, Namespace: o.namespace, CertificateName: o.certificateName, IssuerRef: o.certIssuer,
			Duration: o.certValidity, Wait: o.certWait,
		}, nil
	}
	return nil, fmt.Errorf("--webhook-cert-provider %q: want %s or %s", o.certProvider, certProviderSelfManaged, certProviderCertManager)
}

// webhookAddress says where the API server finds the webhook, and the
// hosts its certificate covers: by URL when the operator runs outside the
// cluster, else through its Service.
func webhookAddress(o options) (webhookcert.Server, error) {
	if o.webhookURL != "" {
		u, err := url.Parse(o.webhookURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return webhookcert.Server{}, fmt.Errorf("--webhook-url %q: want https://host:port", o.webhookURL)
		}
		w := webhookcert.Server{URL: "https://" + u.Host}
		if ip := net.ParseIP(u.Hostname()); ip != nil {
			w.Hosts.IPs = append(w.Hosts.IPs, ip)
		} else {
			w.Hosts.DNSNames = append(w.Hosts.DNSNames, u.Hostname())
		}
		return w, nil
	}
	svc, ns := o.webhookService, o.namespace
	return webhookcert.Server{
		Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: svc, Port: ptr.To(int32(443))},
		Hosts: certs.Hosts{DNSNames: []string{
			svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local", svc + "." + ns, svc,
		}},
	}, nil
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}
