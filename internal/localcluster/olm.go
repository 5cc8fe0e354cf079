package localcluster

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// OLM is OLM v0's olm and catalog operators running on the host against one
// cluster, as OLM's own Deployments would run them in it. They do not create
// registry pods or unpack jobs as long as catalogs are reached by address
// (CatalogSource spec.address) and carry their bundles' manifests (opm render
// of a bundle directory). Both operators bind fixed ports (the catalog
// operator :8080, olm :8443 with TLS), so one OLM runs per machine at a time.
type OLM struct {
	procs []*process
}

// OLMOptions says where OLM's binaries and CRDs are.
type OLMOptions struct {
	// BinDir holds the olm and catalog binaries.
	BinDir string
	// CRDDir holds OLM's CRDs (deploy/chart/crds in its module).
	CRDDir string
	// Namespace OLM runs in (olm when empty).
	Namespace string
}

// StartOLM installs OLM's CRDs into the cluster and starts its operators,
// logging to dir.
func StartOLM(ctx context.Context, c client.Client, kubeconfig string, opts OLMOptions, dir string) (*OLM, error) {
	ns := opts.Namespace
	if ns == "" {
		ns = "olm"
	}
	if err := applyCRDs(ctx, c, opts.CRDDir); err != nil {
		return nil, fmt.Errorf("installing OLM's CRDs: %w", err)
	}
	if err := EnsureNamespace(ctx, c, ns, nil); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	certFile, keyFile, err := selfSignedCert(dir)
	if err != nil {
		return nil, err
	}
	env := []string{"KUBECONFIG=" + kubeconfig, "OPERATOR_NAMESPACE=" + ns}
	o := &OLM{}
	olm, err := startProcess(filepath.Join(opts.BinDir, "olm"), filepath.Join(dir, "olm.log"),
		append(env, "OPERATOR_NAME=olm-operator"),
		"--namespace", ns, "--writeStatusName", "", "--writePackageServerStatusName", "",
		"--tls-cert", certFile, "--tls-key", keyFile)
	if err != nil {
		return nil, err
	}
	o.procs = append(o.procs, olm)
	// The images name pods the catalog operator never creates here.
	catalog, err := startProcess(filepath.Join(opts.BinDir, "catalog"), filepath.Join(dir, "catalog.log"),
		append(env, "OPERATOR_NAME=catalog-operator"),
		"--kubeconfig", kubeconfig, "--namespace", ns, "--writeStatusName", "",
		"--configmapServerImage=unused", "--opmImage=unused", "--util-image=unused")
	if err != nil {
		o.Stop()
		return nil, err
	}
	o.procs = append(o.procs, catalog)
	return o, nil
}

// Stop stops OLM's operators.
func (o *OLM) Stop() {
	for _, p := range o.procs {
		p.stop()
	}
}

// Logs are the last lines of OLM's operators' logs.
func (o *OLM) Logs(lines int) string {
	var b bytes.Buffer
	for _, p := range o.procs {
		fmt.Fprintf(&b, "--- %s ---\n%s\n", filepath.Base(p.log), tail(p.log, lines))
	}
	return b.String()
}

// CatalogServer is `opm serve` of one file-based catalog.
type CatalogServer struct {
	Port int
	proc *process
}

// ServeCatalog serves the file-based catalog in catalogDir over gRPC on
// 127.0.0.1:port (a free port when 0), and waits until it answers.
func ServeCatalog(ctx context.Context, opm, catalogDir string, port int, dir string) (*CatalogServer, error) {
	if port == 0 {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		port = ports[0]
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cache := filepath.Join(dir, "cache")
	if err := os.RemoveAll(cache); err != nil {
		return nil, err
	}
	// The cache is built first, so serving starts at once.
	build := exec.CommandContext(ctx, opm, "serve", catalogDir, "--cache-dir", cache, "--cache-only", "--pprof-addr", "")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("opm serve --cache-only: %w: %s", err, out)
	}
	p, err := startProcess(opm, filepath.Join(dir, "opm.log"), nil,
		"serve", catalogDir, "-p", strconv.Itoa(port), "--cache-dir", cache, "--pprof-addr", "",
		"-t", filepath.Join(dir, "termination.log"))
	if err != nil {
		return nil, err
	}
	s := &CatalogServer{Port: port, proc: p}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if p.exited() {
			return nil, fmt.Errorf("opm serve exited: %s", tail(p.log, 10))
		}
		if conn, err := net.DialTimeout("tcp", s.Address(), time.Second); err == nil {
			conn.Close()
			return s, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.Stop()
	return nil, fmt.Errorf("opm serve did not listen on %s within 30s: %s", s.Address(), tail(p.log, 10))
}

// Address is what a CatalogSource's spec.address names.
func (s *CatalogServer) Address() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Stop stops serving.
func (s *CatalogServer) Stop() { s.proc.stop() }

// selfSignedCert writes a serving certificate for olm's TLS endpoint (health
// and metrics; nothing dials it here).
func selfSignedCert(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "olm-operator"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "olm.crt"), filepath.Join(dir, "olm.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
}
