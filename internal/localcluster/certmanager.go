package localcluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

// CertManager is cert-manager's controller (SelfSigned and CA issuers) and
// cainjector running on the host against one cluster, built by `make
// cert-manager` from hack/tools/cert-manager. Neither binds a port nor takes a
// lease, so every cluster can have its own; cert-manager's webhook is not run
// (its objects are neither defaulted nor validated).
type CertManager struct {
	procs      []*process
	cainjector *process
}

// CertManagerOptions says where cert-manager's binaries and CRDs are.
type CertManagerOptions struct {
	// BinDir holds cert-manager-controller and cert-manager-cainjector.
	BinDir string
	// CRDDir holds cert-manager's CRDs (deploy/crds of its module; see CertManagerCRDDir).
	CRDDir string
	// ClusterResourceNamespace is where a CA ClusterIssuer reads its Secret
	// ("cert-manager" when empty); it is created.
	ClusterResourceNamespace string
}

// StartCertManager installs cert-manager's CRDs (and waits until they are
// established) and starts its controller and cainjector, logging to dir.
func StartCertManager(ctx context.Context, c client.Client, kubeconfig string, opts CertManagerOptions, dir string) (*CertManager, error) {
	ns := opts.ClusterResourceNamespace
	if ns == "" {
		ns = "cert-manager"
	}
	if err := applyCRDs(ctx, c, opts.CRDDir); err != nil {
		return nil, fmt.Errorf("installing cert-manager's CRDs: %w", err)
	}
	if err := EnsureNamespace(ctx, c, ns, nil); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	m := &CertManager{}
	controller, err := startProcess(filepath.Join(opts.BinDir, "cert-manager-controller"), filepath.Join(dir, "cert-manager-controller.log"), nil,
		"--kubeconfig", kubeconfig, "--cluster-resource-namespace", ns)
	if err != nil {
		return nil, err
	}
	m.procs = append(m.procs, controller)
	cainjector, err := startProcess(filepath.Join(opts.BinDir, "cert-manager-cainjector"), filepath.Join(dir, "cert-manager-cainjector.log"), nil,
		"--kubeconfig", kubeconfig)
	if err != nil {
		m.Stop()
		return nil, err
	}
	m.procs, m.cainjector = append(m.procs, cainjector), cainjector
	return m, nil
}

// PauseCAInjector freezes cainjector (SIGSTOP) until ResumeCAInjector: the
// caBundles it keeps fall behind, as with a cainjector that is slow or
// restarting.
func (m *CertManager) PauseCAInjector() error {
	return m.cainjector.cmd.Process.Signal(syscall.SIGSTOP)
}

// ResumeCAInjector lets a paused cainjector go on.
func (m *CertManager) ResumeCAInjector() error {
	return m.cainjector.cmd.Process.Signal(syscall.SIGCONT)
}

// PIDs are the controller's and cainjector's process ids.
func (m *CertManager) PIDs() []int {
	var out []int
	for _, p := range m.procs {
		out = append(out, p.cmd.Process.Pid)
	}
	return out
}

// CreateCAIssuer makes the issuer chain config/certmanager makes, in
// namespace: a self-signed Issuer (name-selfsigned) signs a CA (Certificate
// and Secret name), which the CA Issuer name signs with. It waits until the
// CA Issuer is Ready.
func CreateCAIssuer(ctx context.Context, c client.Client, namespace, name string) error {
	selfSigned := name + "-selfsigned"
	for _, o := range []client.Object{
		&cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: selfSigned},
			Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}}},
		&cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Spec: cmapi.CertificateSpec{
			IsCA: true, CommonName: name, SecretName: name,
			PrivateKey: &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256, RotationPolicy: cmapi.RotationPolicyAlways},
			IssuerRef:  cmmeta.IssuerReference{Kind: cmapi.IssuerKind, Name: selfSigned},
		}},
		&cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
			Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: name}}}},
	} {
		if err := c.Create(ctx, o); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		issuer := &cmapi.Issuer{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, issuer); err != nil {
			return err
		}
		for _, cond := range issuer.Status.Conditions {
			if cond.Type == cmapi.IssuerConditionReady && cond.Status == cmmeta.ConditionTrue {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the CA Issuer %s/%s is not Ready after 1m: %+v", namespace, name, issuer.Status.Conditions)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop stops the controller and cainjector.
func (m *CertManager) Stop() {
	for _, p := range m.procs {
		p.stop()
	}
}

// Logs are the last lines of the controller's and cainjector's logs.
func (m *CertManager) Logs(lines int) string {
	var b bytes.Buffer
	for _, p := range m.procs {
		fmt.Fprintf(&b, "--- %s ---\n%s\n", filepath.Base(p.log), tail(p.log, lines))
	}
	return b.String()
}

// CertManagerCRDDir is deploy/crds of the cert-manager module the operator's
// go.mod (at repoRoot) requires, so the CRDs always match the API types the
// operator is built with.
func CertManagerCRDDir(repoRoot string) (string, error) {
	return testenv.CertManagerCRDDir(repoRoot)
}
