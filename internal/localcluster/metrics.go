package localcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/meshkeeper/meshkeeper/internal/certs"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

// The operator serves metrics over HTTPS to clients the API server
// authenticates and authorizes for GET /metrics. Metrics scrapes as the
// ServiceAccount MetricsScraper of the operator's namespace, bound to
// config/rbac's metrics-reader ClusterRole, with a token from the
// TokenRequest API, and trusts only the certificate Start issued.
const (
	// MetricsScraper is the ServiceAccount Metrics scrapes as.
	MetricsScraper = "meshkeeper-metrics-scraper"
	// MetricsReaderRole is config/rbac's metrics-reader ClusterRole, named as config/default names it.
	MetricsReaderRole = "meshkeeper-metrics-reader"
	// operatorNamespace is where Start runs the operator.
	operatorNamespace = "meshkeeper-system"
	// scrapeTokenLifetime is how long a scraping token is requested for; a
	// new one is requested when less than a tenth of it is left.
	scrapeTokenLifetime = time.Hour
)

// metricsAccess is what an Operator scrapes its metrics with.
type metricsAccess struct {
	mu     sync.Mutex
	client *http.Client
	token  string
	expiry time.Time
}

// serve returns the operator's metrics flags: plain HTTP when insecure,
// else HTTPS with a serving certificate for 127.0.0.1 written to certDir,
// whose CA the scrapes trust from now on.
func (m *metricsAccess) serve(insecure bool, certDir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if insecure {
		m.client = &http.Client{Timeout: 10 * time.Second}
		return []string{"--metrics-secure=false"}, nil
	}
	bundle, err := certs.Renew(&certs.Bundle{}, certs.Renewal{CA: true, Serving: true},
		certs.Hosts{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, time.Now(), certs.DefaultLifetimes)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{"tls.crt": bundle.Cert, "tls.key": bundle.Key} {
		if err := os.WriteFile(filepath.Join(certDir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle.CACert) {
		return nil, errors.New("the metrics CA does not parse")
	}
	m.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	return []string{"--metrics-cert-path", certDir}, nil
}

// MetricsURL is its Prometheus endpoint.
func (o *Operator) MetricsURL() string {
	scheme := "https"
	if o.InsecureMetrics {
		scheme = "http"
	}
	return scheme + "://127.0.0.1:" + strconv.Itoa(o.MetricsPort) + "/metrics"
}

// Metrics returns the text of its Prometheus endpoint, scraped as
// MetricsScraper (created and bound to MetricsReaderRole on first use)
// unless InsecureMetrics.
func (o *Operator) Metrics() (string, error) {
	var token string
	if !o.InsecureMetrics {
		var err error
		if token, err = o.scrapeToken(context.Background()); err != nil {
			return "", fmt.Errorf("a token to scrape metrics with: %w", err)
		}
	}
	status, body, err := o.ScrapeMetrics(token)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("GET %s: %d %s", o.MetricsURL(), status, body)
	}
	return body, nil
}

// ScrapeMetrics gets its Prometheus endpoint with a bearer token (none when
// empty) and returns the HTTP status and body.
func (o *Operator) ScrapeMetrics(token string) (int, string, error) {
	o.metrics.mu.Lock()
	c := o.metrics.client
	o.metrics.mu.Unlock()
	if c == nil {
		return 0, "", errors.New("the operator was not started")
	}
	req, err := http.NewRequest(http.MethodGet, o.MetricsURL(), nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// scrapeToken returns a token of MetricsScraper, requesting a new one when
// the last is about to expire.
func (o *Operator) scrapeToken(ctx context.Context) (string, error) {
	m := &o.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.token != "" && time.Until(m.expiry) > scrapeTokenLifetime/10 {
		return m.token, nil
	}
	kubeconfig := o.AdminKubeconfig
	if kubeconfig == "" {
		kubeconfig = o.Kubeconfig
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return "", err
	}
	if err := GrantMetricsReader(ctx, cfg, testenv.RepoRoot(), operatorNamespace, MetricsScraper); err != nil {
		return "", err
	}
	token, expiry, err := ServiceAccountToken(ctx, cfg, operatorNamespace, MetricsScraper, scrapeTokenLifetime)
	if err != nil {
		return "", err
	}
	m.token, m.expiry = token, expiry
	return token, nil
}

// GrantMetricsReader creates config/rbac's metrics-reader ClusterRole (read
// from under repoRoot) as MetricsReaderRole, and a ServiceAccount bound to it.
func GrantMetricsReader(ctx context.Context, cfg *rest.Config, repoRoot, namespace, serviceAccount string) error {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "config", "rbac", "metrics_reader_role.yaml"))
	if err != nil {
		return err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(raw, role); err != nil {
		return err
	}
	role.ObjectMeta = metav1.ObjectMeta{Name: MetricsReaderRole}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: MetricsReaderRole + "-" + namespace + "-" + serviceAccount},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: MetricsReaderRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: serviceAccount}},
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := CreateServiceAccount(ctx, cfg, namespace, serviceAccount); err != nil {
		return err
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}
