package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/localcluster"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

const (
	operatorNS = "meshkeeper-system"
	// webhookCertificate is the operator's Certificate (and Secret), its default name.
	webhookCertificate = "meshkeeper-webhook-cert"
	webhookIssuer      = "webhook-ca"
	certShopNS         = "shop"
)

// TestWebhookCertificatesFromCertManager runs the operator with
// --webhook-cert-provider=cert-manager against real cert-manager (its
// controller and cainjector on the host): a self-signed CA issues the
// webhook certificate, cainjector fills every caBundle, and the API server
// calls the validator and the injector through them. Pods are created
// continuously through a canary upgrade and its pruning, a manual renewal
// (what `cmctl renew` does) and a CA renewal, and none may be refused or
// left uninjected. Each step builds on the previous one.
func TestWebhookCertificatesFromCertManager(t *testing.T) {
	runsLong(t, 60*time.Second)
	t.Parallel()
	binDir := os.Getenv("MESHKEEPER_CERT_MANAGER_BIN")
	if binDir == "" {
		t.Fatal("MESHKEEPER_CERT_MANAGER_BIN names cert-manager's controller and cainjector (make cert-manager; make test-e2e sets it)")
	}
	ctx := context.Background()
	dir := filepath.Join(workDir, t.Name())
	e := newCluster(t, 3)
	if err := localcluster.InstallCRD(ctx, e.k8s, testenv.RepoRoot()); err != nil {
		t.Fatal(err)
	}
	e.ensureNamespace(t, operatorNS, nil)
	var err error
	if e.operator, err = localcluster.NewOperator(binary, e.cluster.Kubeconfig, dir); err != nil {
		t.Fatal(err)
	}
	certManagerArgs := []string{"--webhook-cert-provider=cert-manager", "--webhook-cert-issuer-kind=Issuer", "--webhook-cert-issuer-name=" + webhookIssuer}
	var cm *localcluster.CertManager
	t.Cleanup(func() {
		if cm != nil {
			if t.Failed() {
				fmt.Fprintln(os.Stderr, cm.Logs(30))
			}
			cm.Stop()
		}
	})
	mi := sample(t)
	mi.Spec.Version = stableVer
	mi.Spec.Gateways = nil
	mi.Spec.Profile = meshv1alpha1.ProfileMinimal // no gateway: the control plane only
	mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{
		Type:                                meshv1alpha1.UpdateStrategyCanary,
		Canary:                              &meshv1alpha1.CanaryStrategy{Steps: []int32{50, 100}, StepInterval: &metav1.Duration{Duration: 5 * time.Second}},
		InactiveRevisionDeletionGracePeriod: &metav1.Duration{Duration: 3 * time.Second},
	}
	var served *x509.Certificate // what the webhook server serves, as last checked

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"without cert-manager the operator names it, and writes nothing", func(t *testing.T) {
			e.operator.ExtraArgs = append(slices.Clone(certManagerArgs), "--webhook-cert-wait=3s")
			if err := e.operator.Start(ctx); err == nil {
				t.Fatal("the operator started without cert-manager")
			}
			if !logged(t, e.operator, "cert-manager is not installed") {
				t.Error("the operator's log does not say cert-manager is not installed")
			}
			e.noWebhookConfigurations(t)
		}},
		{"with cert-manager and a CA issuer, the operator serves cert-manager's certificate", func(t *testing.T) {
			start := time.Now()
			if cm, err = localcluster.StartCertManager(ctx, e.k8s, e.cluster.Kubeconfig, localcluster.CertManagerOptions{
				BinDir: binDir, CRDDir: certManagerCRDs(t)}, filepath.Join(dir, "cert-manager")); err != nil {
				t.Fatal(err)
			}
			if err := localcluster.CreateCAIssuer(ctx, e.k8s, operatorNS, webhookIssuer); err != nil {
				t.Fatal(err)
			}
			e.operator.ExtraArgs = certManagerArgs
			if err := e.operator.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Logf("cert-manager, the CA issuer and the operator ready in %s", time.Since(start).Round(time.Millisecond))
			crt := &cmapi.Certificate{}
			if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: webhookCertificate}, crt); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(crt.Spec.IPAddresses, []string{"127.0.0.1"}) || len(crt.Spec.DNSNames) != 0 ||
				!slices.Equal(crt.Spec.Usages, []cmapi.KeyUsage{cmapi.UsageServerAuth, cmapi.UsageDigitalSignature, cmapi.UsageKeyEncipherment}) {
				t.Errorf("Certificate covers %v %v for %v, want 127.0.0.1 (the --webhook-url host) for server auth", crt.Spec.IPAddresses, crt.Spec.DNSNames, crt.Spec.Usages)
			}
			secret := e.webhookSecret(t)
			served = e.servedCertificate(t, secret.Data[cmmeta.TLSCAKey])
			if !bytes.Equal(served.Raw, leafOf(t, secret.Data[corev1.TLSCertKey]).Raw) {
				t.Error("the webhook server does not serve the certificate of cert-manager's Secret")
			}
		}},
		{"the API server calls the validator through the injected bundle", func(t *testing.T) {
			ca := e.webhookSecret(t).Data[cmmeta.TLSCAKey]
			eventually(t, 30*time.Second, "the validator's caBundle injected", func() error {
				vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
				if err := e.k8s.Get(ctx, client.ObjectKey{Name: webhookconfig.ValidatorName}, vwc); err != nil {
					return err
				}
				return injectedConfiguration(vwc.ObjectMeta, ca, bundlesOf(vwc))
			})
			if err := e.k8s.Create(ctx, mi); err != nil {
				t.Fatal(err)
			}
			e.refusesSecondMeshInstall(t, "with cert-manager's certificate")
			if got := e.waitReady(t, mi.Name, installTimeout); got.Status.ActiveRevision != stableRev {
				t.Fatalf("active revision %q, want %s", got.Status.ActiveRevision, stableRev)
			}
		}},
		{"the injector carries inject-ca-from, cainjector's bundles, and pods are injected", func(t *testing.T) {
			ca := e.webhookSecret(t).Data[cmmeta.TLSCAKey]
			eventually(t, 30*time.Second, "every injector entry's caBundle injected", func() error {
				return e.injectorInjected(ca)
			})
			e.ensureNamespace(t, certShopNS, map[string]string{"istio-injection": "enabled"})
			p := barePod(certShopNS, "first", nil)
			if err := e.k8s.Create(ctx, p); err != nil {
				t.Fatal(err)
			}
			if !hasSidecar(p) || p.Annotations[inject.AnnotationRevision] != stableRev {
				t.Fatalf("pod not injected by %s: annotations %v", stableRev, p.Annotations)
			}
		}},
		{"a canary's entries are filled before any pod is routed to it, and no pod is refused", func(t *testing.T) {
			ca := e.webhookSecret(t).Data[cmmeta.TLSCAKey]
			rec := e.recordInjectorAndRouting(t)
			pods := e.createPodsWhile(t, "canary", 2)
			// With cainjector paused the canary's entries get no bundle: its
			// istiod becomes ready, and still no pod is routed to it.
			if err := cm.PauseCAInjector(); err != nil {
				t.Fatal(err)
			}
			e.updateMeshInstall(t, mi.Name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Version = canaryVer })
			eventually(t, 2*time.Minute, "the canary's istiod ready and its injector entries written", func() error {
				if !slices.ContainsFunc(e.getMeshInstall(t, mi.Name).Status.Revisions, func(r meshv1alpha1.RevisionStatus) bool {
					return r.Name == canaryRev && r.Ready
				}) {
					return fmt.Errorf("the canary's istiod is not ready")
				}
				if !slices.ContainsFunc(e.injector(t).Webhooks, func(w admissionregistrationv1.MutatingWebhook) bool {
					return strings.Contains(w.Name, "."+canaryRev+".")
				}) {
					return fmt.Errorf("no injector entry for %s", canaryRev)
				}
				return nil
			})
			time.Sleep(5 * time.Second) // longer than a step, with the canary's istiod ready
			rec.notRoutedTo(t, canaryRev)
			if err := cm.ResumeCAInjector(); err != nil {
				t.Fatal(err)
			}
			eventually(t, 3*time.Minute, "the canary promoted", func() error {
				st := e.getMeshInstall(t, mi.Name).Status
				if st.ActiveRevision != canaryRev || st.Canary != nil {
					return fmt.Errorf("active %s canary %+v", st.ActiveRevision, st.Canary)
				}
				return nil
			})
			pods.stopAndCheck(t, "during the canary")
			rec.stop()
			rec.canaryFilledBeforeRouted(t, canaryRev, ca)
		}},
		{"the old revision is pruned, and its entries leave the injector", func(t *testing.T) {
			if err := e.k8s.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(certShopNS), client.GracePeriodSeconds(0)); err != nil {
				t.Fatal(err)
			}
			e.waitPruned(t, stableRev)
			ca := e.webhookSecret(t).Data[cmmeta.TLSCAKey]
			eventually(t, 30*time.Second, "the injector without the pruned revision", func() error {
				mwc := e.injector(t)
				for _, w := range mwc.Webhooks {
					if strings.Contains(w.Name, "."+stableRev+".") {
						return fmt.Errorf("entry %s of the pruned revision is still there", w.Name)
					}
				}
				return e.injectorInjected(ca)
			})
			e.waitReady(t, mi.Name, 30*time.Second)
		}},
		{"a manual renewal is served without a restart, and no pod is refused", func(t *testing.T) {
			pods := e.createPodsWhile(t, "renewal", 4)
			time.Sleep(time.Second)
			before := served
			requested := time.Now()
			e.renew(t, operatorNS, webhookCertificate)
			ca := e.webhookSecret(t).Data[cmmeta.TLSCAKey]
			eventually(t, 30*time.Second, "the renewed certificate served", func() error {
				var err error
				if served, err = e.servedBy(ca); err != nil {
					return err
				}
				if served.SerialNumber.Cmp(before.SerialNumber) == 0 {
					return fmt.Errorf("still serial %s", served.SerialNumber)
				}
				return nil
			})
			t.Logf("the renewed certificate served %s after the renewal was requested", time.Since(requested).Round(10*time.Millisecond))
			time.Sleep(2 * time.Second)
			pods.stopAndCheck(t, "during a manual renewal")
		}},
		{"a CA renewal: the new CA joins every bundle before it signs what is served, and no pod is refused", func(t *testing.T) {
			oldCA := e.webhookSecret(t).Data[cmmeta.TLSCAKey]
			pods := e.createPodsWhile(t, "ca-renewal", 4)
			time.Sleep(time.Second)
			caSecret := &corev1.Secret{}
			if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: webhookIssuer}, caSecret); err != nil {
				t.Fatal(err)
			}
			e.renew(t, operatorNS, webhookIssuer)
			eventually(t, 30*time.Second, "the CA renewed", func() error {
				now := &corev1.Secret{}
				if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(caSecret), now); err != nil {
					return err
				}
				if bytes.Equal(now.Data[corev1.TLSCertKey], caSecret.Data[corev1.TLSCertKey]) {
					return fmt.Errorf("the CA Secret is unchanged")
				}
				return nil
			})
			// cert-manager does not re-issue what the old CA signed; the
			// next renewal comes from the new one. cainjector is paused
			// meanwhile: the bundles keep only the old CA, and the operator
			// must keep serving what the old CA signed.
			if err := cm.PauseCAInjector(); err != nil {
				t.Fatal(err)
			}
			requested := time.Now()
			e.renew(t, operatorNS, webhookCertificate)
			var newCA []byte
			eventually(t, 30*time.Second, "a certificate of the new CA issued", func() error {
				if newCA = e.webhookSecret(t).Data[cmmeta.TLSCAKey]; bytes.Equal(newCA, oldCA) {
					return fmt.Errorf("the webhook certificate's ca.crt is still the old CA")
				}
				return nil
			})
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
				if _, err := e.servedBy(oldCA); err != nil {
					t.Errorf("with the bundles holding the old CA only, the operator serves another's certificate: %v", err)
					break
				}
			}
			if err := cm.ResumeCAInjector(); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, "a certificate of the new CA served", func() error {
				var err error
				served, err = e.servedBy(newCA)
				return err
			})
			t.Logf("a certificate of the new CA served %s after its renewal was requested (cainjector paused for 3s of it)", time.Since(requested).Round(10*time.Millisecond))
			if err := e.injectorInjected(oldCA); err != nil {
				t.Errorf("the old CA left a bundle while what it signed may still be cached: %v", err)
			}
			if err := e.injectorInjected(newCA); err != nil {
				t.Error(err)
			}
			time.Sleep(2 * time.Second)
			pods.stopAndCheck(t, "during a CA renewal")
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			t.FailNow()
		}
	}
}

func certManagerCRDs(t *testing.T) string {
	t.Helper()
	dir, err := localcluster.CertManagerCRDDir(testenv.RepoRoot())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func (e *env) webhookSecret(t *testing.T) *corev1.Secret {
	t.Helper()
	secret := &corev1.Secret{}
	if err := e.k8s.Get(context.Background(), client.ObjectKey{Namespace: operatorNS, Name: webhookCertificate}, secret); err != nil {
		t.Fatal(err)
	}
	return secret
}

// servedCertificate is the webhook server's certificate, which must verify
// against ca for 127.0.0.1 (as the API server verifies it).
func (e *env) servedCertificate(t *testing.T, ca []byte) *x509.Certificate {
	t.Helper()
	c, err := e.servedBy(ca)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) servedBy(ca []byte) (*x509.Certificate, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no CA certificate")
	}
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(e.operator.WebhookPort), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, fmt.Errorf("the webhook server's certificate does not verify against the CA: %w", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func leafOf(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("no certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) injector(t *testing.T) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := e.k8s.Get(context.Background(), client.ObjectKey{Name: webhookconfig.InjectorName}, mwc); err != nil {
		t.Fatal(err)
	}
	return mwc
}

// injectorInjected checks the injector as the validator: annotated, every
// entry's bundle holding ca, none of it meshkeeper's.
func (e *env) injectorInjected(ca []byte) error {
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := e.k8s.Get(context.Background(), client.ObjectKey{Name: webhookconfig.InjectorName}, mwc); err != nil {
		return err
	}
	var bundles [][]byte
	for _, w := range mwc.Webhooks {
		bundles = append(bundles, w.ClientConfig.CABundle)
	}
	return injectedConfiguration(mwc.ObjectMeta, ca, bundles)
}

func bundlesOf(vwc *admissionregistrationv1.ValidatingWebhookConfiguration) [][]byte {
	var out [][]byte
	for _, w := range vwc.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	return out
}

// injectedConfiguration: the configuration asks cainjector for the webhook
// Certificate's CA, every bundle holds ca (beside others: cainjector
// appends a renewed CA), and meshkeeper owns no caBundle, so its passes
// never take cainjector's away.
func injectedConfiguration(m metav1.ObjectMeta, ca []byte, bundles [][]byte) error {
	if got := m.Annotations[cmapi.WantInjectAnnotation]; got != operatorNS+"/"+webhookCertificate {
		return fmt.Errorf("%s: %s = %q", m.Name, cmapi.WantInjectAnnotation, got)
	}
	want, _ := pem.Decode(ca)
	if want == nil {
		return fmt.Errorf("no CA")
	}
	for i, b := range bundles {
		if !bundleHolds(b, want.Bytes) {
			return fmt.Errorf("%s: entry %d's caBundle does not hold the CA", m.Name, i)
		}
	}
	for _, f := range m.ManagedFields {
		if f.Manager == string(apply.FieldOwner) && f.FieldsV1 != nil && bytes.Contains(f.FieldsV1.Raw, []byte("caBundle")) {
			return fmt.Errorf("%s: meshkeeper owns a caBundle (%s)", m.Name, f.Operation)
		}
	}
	return nil
}

func bundleHolds(bundle, der []byte) bool {
	for rest := bundle; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return false
		}
		if bytes.Equal(block.Bytes, der) {
			return true
		}
	}
}

func (e *env) noWebhookConfigurations(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, o := range []client.Object{
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhookconfig.ValidatorName}},
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhookconfig.InjectorName}},
	} {
		if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(o), o); !apierrors.IsNotFound(err) {
			t.Errorf("%s: %v, want none written", o.GetName(), err)
		}
	}
}

// podsWhile are pod creators running during one step, n of them staggered
// (each creates a pod every 500ms), so that a moment when the API server
// cannot call the webhook is caught.
type podsWhile []*podCreator

func (e *env) createPodsWhile(t *testing.T, prefix string, n int) podsWhile {
	var out podsWhile
	for i := range n {
		out = append(out, e.createPodsUntilStopped(t, certShopNS, fmt.Sprintf("%s-%d", prefix, i)))
		time.Sleep(500 * time.Millisecond / time.Duration(n))
	}
	return out
}

// stopAndCheck fails the test for every pod refused or not injected.
func (p podsWhile) stopAndCheck(t *testing.T, when string) {
	t.Helper()
	var all []podAttempt
	for _, c := range p {
		all = append(all, c.stop()...)
	}
	failed := 0
	for _, a := range all {
		switch {
		case a.err != nil:
			failed++
			t.Errorf("%s: pod %s refused at %s: %v", when, a.name, a.start.Format("15:04:05.000"), a.err)
		case !a.injected:
			failed++
			t.Errorf("%s: pod %s created at %s without a sidecar", when, a.name, a.start.Format("15:04:05.000"))
		}
	}
	if len(all) < 10 {
		t.Errorf("%s: only %d pods created", when, len(all))
	}
	t.Logf("%s: %d pods created, %d refused or not injected", when, len(all), failed)
}

// injectorAndRouting records, in the API server's order (etcd revisions,
// which a test may compare), every version of the injector configuration
// and of the routing.
type injectorAndRouting struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
	mu     sync.Mutex
	// events are in resourceVersion order within each kind.
	injectors []recorded[*admissionregistrationv1.MutatingWebhookConfiguration]
	routings  []recorded[revision.Routing]
}

type recorded[T any] struct {
	rv    int64
	value T
}

func (e *env) recordInjectorAndRouting(t *testing.T) *injectorAndRouting {
	t.Helper()
	w, err := client.NewWithWatch(e.cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &injectorAndRouting{cancel: cancel}
	mwcs, err := w.Watch(ctx, &admissionregistrationv1.MutatingWebhookConfigurationList{})
	if err != nil {
		t.Fatal(err)
	}
	cms, err := w.Watch(ctx, &corev1.ConfigMapList{}, client.InNamespace("istio-system"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range []watch.Interface{mwcs, cms} {
		r.done.Add(1)
		go func() {
			defer r.done.Done()
			defer ch.Stop()
			for ev := range ch.ResultChan() {
				if ev.Type != watch.Added && ev.Type != watch.Modified {
					continue
				}
				r.mu.Lock()
				switch o := ev.Object.(type) {
				case *admissionregistrationv1.MutatingWebhookConfiguration:
					if o.Name == webhookconfig.InjectorName {
						r.injectors = append(r.injectors, recorded[*admissionregistrationv1.MutatingWebhookConfiguration]{rv(t, o), o})
					}
				case *corev1.ConfigMap:
					if o.Name == render.RoutingConfigMapName {
						if routing, err := revision.RoutingFromData(o.Data); err == nil {
							r.routings = append(r.routings, recorded[revision.Routing]{rv(t, o), routing})
						}
					}
				}
				r.mu.Unlock()
			}
		}()
	}
	t.Cleanup(r.stop)
	return r
}

func rv(t *testing.T, o client.Object) int64 {
	n, err := strconv.ParseInt(o.GetResourceVersion(), 10, 64)
	if err != nil {
		t.Errorf("resourceVersion %q: %v", o.GetResourceVersion(), err)
	}
	return n
}

func (r *injectorAndRouting) stop() {
	r.cancel()
	r.done.Wait()
}

// notRoutedTo checks that no routing recorded so far sends pods to rev.
func (r *injectorAndRouting) notRoutedTo(t *testing.T, rev string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.routings {
		if (x.value.Canary == rev && x.value.Weight > 0) || x.value.Active == rev {
			t.Fatalf("pods were routed to %s (rv %d: %+v) while its injector entries had no bundle", rev, x.rv, x.value)
		}
	}
}

// canaryFilledBeforeRouted checks that when the routing first sent pods to
// rev, the injector configuration the API server held then had rev's
// entries, each with a caBundle holding ca.
func (r *injectorAndRouting) canaryFilledBeforeRouted(t *testing.T, rev string, ca []byte) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.IndexFunc(r.routings, func(x recorded[revision.Routing]) bool {
		return (x.value.Canary == rev && x.value.Weight > 0) || x.value.Active == rev
	})
	if i < 0 {
		t.Fatalf("the routing never sent pods to %s: %+v", rev, r.routings)
	}
	routed := r.routings[i]
	var before *admissionregistrationv1.MutatingWebhookConfiguration
	for _, m := range r.injectors {
		if m.rv < routed.rv {
			before = m.value
		}
	}
	if before == nil {
		t.Fatalf("no injector configuration recorded before the routing to %s (rv %d)", rev, routed.rv)
	}
	m, err := webhookconfig.NewMatcher(before)
	if err != nil {
		t.Fatal(err)
	}
	path := webhookconfig.TargetPath("rev", rev)
	if !m.Serves(path) {
		t.Fatalf("pods were routed to %s (rv %d) before the injector had its entries (rv %s)", rev, routed.rv, before.ResourceVersion)
	}
	if !m.Trusts(path, ca) {
		t.Fatalf("pods were routed to %s (rv %d) before cainjector filled its entries (rv %s)", rev, routed.rv, before.ResourceVersion)
	}
	t.Logf("%s routed at rv %d; its entries filled at rv %s; %d injector and %d routing versions recorded",
		rev, routed.rv, before.ResourceVersion, len(r.injectors), len(r.routings))
}
