package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/localcluster"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// istiodReadyTimeout bounds real istiod's start on a busy machine; it is
// ready within seconds on a quiet one.
const istiodReadyTimeout = 90 * time.Second

// startIstiod runs real istiod (Istio's pilot-discovery) on the host for a
// revision meshkeeper rendered, from that revision's Deployment, and waits
// for its /ready. It is stopped with the cluster, or by stopIstiod.
func (e *env) startIstiod(t *testing.T, rev string) *localcluster.Istiod {
	t.Helper()
	bin, err := localcluster.IstioBinFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKey{Namespace: "istio-system", Name: render.IstiodName(rev)}
	dir := filepath.Join(workDir, strings.ReplaceAll(t.Name(), "/", "_"), "istiod-"+rev+"-"+time.Now().Format("150405.000"))
	i, err := localcluster.StartIstiod(context.Background(), e.k8s, e.cluster.Kubeconfig, bin, key, dir)
	if err != nil {
		t.Fatal(err)
	}
	e.istiodMu.Lock()
	e.istiods = append(e.istiods, i)
	e.istiodMu.Unlock()
	start := time.Now()
	if err := i.WaitReady(context.Background(), istiodReadyTimeout); err != nil {
		t.Fatal(err)
	}
	t.Logf("real istiod of revision %s (pid %d) ready in %s", rev, i.PID(), time.Since(start).Round(time.Millisecond))
	return i
}

// stopIstiod stops a real istiod, as removing its Deployment removes its pods.
func (e *env) stopIstiod(i *localcluster.Istiod) {
	i.Stop()
	e.istiodMu.Lock()
	e.istiods = slices.DeleteFunc(e.istiods, func(x *localcluster.Istiod) bool { return x == i })
	e.istiodMu.Unlock()
}

func (e *env) runningIstiods() []*localcluster.Istiod {
	e.istiodMu.Lock()
	defer e.istiodMu.Unlock()
	return slices.Clone(e.istiods)
}

// proxyWant is what a user expects of an injected pod's proxy.
type proxyWant struct {
	// trustDomain is the mesh's trust domain (spec.meshConfig.trustDomain).
	trustDomain string
	// strictMTLS: the inbound listeners istiod serves accept only mTLS.
	strictMTLS bool
}

// checkProxies runs Istio's agent for each pod (concurrently) from the pod's
// own injected istio-proxy container and checks what a user relies on: the
// workload certificate's SPIFFE identity is the pod's service account in
// the mesh's trust domain; the proxy is served by the istiod of the revision
// that injected it (its certificate and its XDS stream); istiod answers with
// clusters and with inbound listeners for the pod's ports (requiring mTLS
// under Strict).
func (e *env) checkProxies(t *testing.T, want proxyWant, pods ...*corev1.Pod) {
	t.Helper()
	bin, err := localcluster.IstioBinFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	istiods := e.runningIstiods()
	logDir := filepath.Join(workDir, strings.ReplaceAll(t.Name(), "/", "_"))
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([][]error, len(pods))
	for n, pod := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[n] = checkProxy(cs, bin, pod, istiods, logDir, want)
		}()
	}
	wg.Wait()
	for n, pod := range pods {
		for _, err := range errs[n] {
			t.Errorf("pod %s/%s (injected by %s): %v", pod.Namespace, pod.Name, pod.Annotations[inject.AnnotationRevision], err)
		}
	}
	t.Logf("%d proxies checked against real istiod in %s", len(pods), time.Since(start).Round(time.Millisecond))
}

func checkProxy(cs kubernetes.Interface, bin string, pod *corev1.Pod, istiods []*localcluster.Istiod, logDir string, want proxyWant) []error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := localcluster.StartProxy(ctx, cs, bin, pod, istiods, logDir)
	if err != nil {
		return []error{err}
	}
	defer p.Stop()
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	wantID := fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", want.trustDomain, pod.Namespace, sa)
	if id, err := p.Identity(); err != nil || id != wantID {
		fail("workload certificate identity %q (%v), want %s", id, err, wantID)
	}
	if rev := pod.Annotations[inject.AnnotationRevision]; p.Istiod.Revision != rev {
		fail("the proxy dials the istiod of revision %s (%s), but revision %s injected it", p.Istiod.Revision, p.Istiod.Host, rev)
	}

	x, err := p.DialXDS(ctx)
	if err != nil {
		return append(errs, err)
	}
	defer x.Close()
	clusters, err := x.Fetch(localcluster.ClusterType)
	if err != nil {
		return append(errs, fmt.Errorf("%w\n%s", err, p.Logs(10)))
	}
	var names []string
	for _, r := range clusters {
		c := &clusterv3.Cluster{}
		if err := r.UnmarshalTo(c); err != nil {
			return append(errs, err)
		}
		names = append(names, c.Name)
	}
	// Every sidecar gets the passthrough and blackhole clusters and one
	// inbound cluster per port of the pod's Services.
	for _, name := range []string{"PassthroughCluster", "BlackHoleCluster"} {
		if !slices.Contains(names, name) {
			fail("istiod sent no cluster %s (got %v)", name, names)
		}
	}
	listeners, err := x.Fetch(localcluster.ListenerType)
	if err != nil {
		return append(errs, err)
	}
	// The stream is open: the istiod that serves it lists the proxy, no other does.
	for _, i := range istiods {
		ids, err := i.Connections(ctx)
		if err != nil {
			fail("%v", err)
			continue
		}
		if connected := slices.Contains(ids, p.NodeID()); connected != (i == p.Istiod) {
			fail("istiod of revision %s lists the proxy among its XDS connections: %v (want %v)", i.Revision, connected, i == p.Istiod)
		}
	}
	errs = append(errs, checkInbound(pod, listeners, want.strictMTLS)...)
	return errs
}

// checkInbound checks the sidecar's inbound listener: a filter chain for
// each port of the app's containers, each requiring a client certificate
// when mTLS is Strict.
func checkInbound(pod *corev1.Pod, listeners []*anypb.Any, strict bool) []error {
	var inbound *listenerv3.Listener
	var names []string
	for _, r := range listeners {
		l := &listenerv3.Listener{}
		if err := r.UnmarshalTo(l); err != nil {
			return []error{err}
		}
		names = append(names, l.Name)
		if l.Name == "virtualInbound" {
			inbound = l
		}
	}
	if inbound == nil {
		return []error{fmt.Errorf("istiod sent no virtualInbound listener (got %v)", names)}
	}
	var errs []error
	for _, c := range pod.Spec.Containers {
		if c.Name == "istio-proxy" {
			continue
		}
		for _, port := range c.Ports {
			chains := 0
			for _, fc := range inbound.FilterChains {
				if fc.GetFilterChainMatch().GetDestinationPort().GetValue() != uint32(port.ContainerPort) {
					continue
				}
				chains++
				if strict && !requiresClientCert(fc) {
					errs = append(errs, fmt.Errorf("under Strict mTLS the inbound filter chain %s of port %d accepts plaintext (transport %q)",
						fc.Name, port.ContainerPort, fc.GetFilterChainMatch().GetTransportProtocol()))
				}
			}
			if chains == 0 {
				errs = append(errs, fmt.Errorf("istiod sent no inbound filter chain for port %d", port.ContainerPort))
			}
		}
	}
	return errs
}

func requiresClientCert(fc *listenerv3.FilterChain) bool {
	ts := fc.GetTransportSocket()
	if ts == nil || ts.GetTypedConfig() == nil {
		return false
	}
	tls := &tlsv3.DownstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(tls); err != nil {
		return false
	}
	return tls.GetRequireClientCertificate().GetValue()
}

// service is the Service a user puts in front of an app (port 80 to the
// app's http port 8080), so that istiod has the pod's inbound ports.
func service(namespace, app string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: app},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
}

// printIstiodLogs prints the end of each real istiod's log.
func (e *env) printIstiodLogs() {
	for _, i := range e.runningIstiods() {
		fmt.Fprintf(os.Stderr, "--- real istiod of %s ---\n%s\n", i.Deployment, i.Logs(40))
	}
}
