package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/localcluster"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

const (
	leaseNamespace = "meshkeeper-system"
	leaseName      = "meshkeeper.mesh.meshkeeper.dev"
	// maxTakeover bounds how long after the leader is killed the other
	// replica holds the lease, with controller-runtime's defaults: the lease
	// duration (15s) counts from when the follower last saw the lease
	// renewed, up to one retry (2s jittered by 1.2, so at most 4.4s) after
	// the kill, and the follower tries again one retry after it expires.
	// 15s + 2 × 4.4s ≈ 24s, and a few seconds for two busy cores (the
	// whole suite runs six clusters at once; measured alone: 14–21s).
	maxTakeover = 28 * time.Second
)

// TestLeaderKilledMidCanaryHandsOver runs two replicas, as the Deployment
// does: both serve the webhooks with the certificate they share, only the
// leader reconciles. The leader is killed mid-canary: the other replica
// takes the lease within its duration and finishes the canary, and pods and
// MeshInstalls are admitted throughout.
func TestLeaderKilledMidCanaryHandsOver(t *testing.T) {
	runsLong(t, 40*time.Second)
	t.Parallel()
	var survivor *localcluster.Operator
	// On the host no Service balances the replicas, so both advertise the
	// one that will survive: the API server reaches a webhook after the
	// leader is killed. The leader's webhook is called directly instead.
	e := newEnvWith(t, 3, func(leader *localcluster.Operator) {
		survivor = newReplica(t, leader)
		leader.AdvertisedURL = survivor.WebhookURL()
	})
	leader := e.operator
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Version = stableVer
	mi.Spec.Gateways = nil
	mi.Spec.Profile = meshv1alpha1.ProfileMinimal // no gateway: the control plane only
	mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{
		Type: meshv1alpha1.UpdateStrategyCanary,
		Canary: &meshv1alpha1.CanaryStrategy{
			// Paused at the first step, so that the leader is killed there.
			Steps: []int32{10, 50, 100}, StepInterval: &metav1.Duration{Duration: stepWait}, Paused: true,
		},
	}
	name := mi.Name
	var leaderID string

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"the replica started first leads, the second waits for the lease", func(t *testing.T) {
			eventually(t, 30*time.Second, "the first replica holds the lease", func() error {
				holder := e.leaseHolder(t)
				if holder == "" || !becameLeader(t, leader, holder) {
					return fmt.Errorf("lease held by %q, not (yet) logged by the first replica", holder)
				}
				leaderID = holder
				return nil
			})
			e.startReplica(t, survivor)
			if holder := e.leaseHolder(t); holder != leaderID {
				t.Fatalf("lease moved from %s to %s when the second replica started", leaderID, holder)
			}
			if logged(t, survivor, becameLeaderEvent) {
				t.Fatal("the second replica became leader while the first holds the lease")
			}
			t.Logf("leader %s (pid %d), waiting replica pid %d", leaderID, leader.PID(), survivor.PID())
		}},
		{"both replicas inject with a certificate the webhook configurations trust", func(t *testing.T) {
			if err := e.k8s.Create(ctx, mi); err != nil {
				t.Fatal(err)
			}
			e.waitReady(t, name, installTimeout)
			e.ensureNamespace(t, "shop", map[string]string{"istio-injection": "enabled"})
			hook := e.injectorEntry(t, "namespace.sidecar-injector.meshkeeper.dev")
			vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
			if err := e.k8s.Get(ctx, client.ObjectKey{Name: webhookconfig.ValidatorName}, vwc); err != nil {
				t.Fatal(err)
			}
			for _, o := range []*localcluster.Operator{leader, survivor} {
				if err := handshake(o, vwc.Webhooks[0].ClientConfig.CABundle); err != nil {
					t.Errorf("replica pid %d against the validator's CA bundle: %v", o.PID(), err)
				}
				pod := injectDirectly(t, o, hook, barePod("shop", "direct-"+strconv.Itoa(o.PID()), nil))
				if !hasSidecar(pod) || pod.Annotations[inject.AnnotationRevision] != stableRev {
					t.Errorf("replica pid %d: patched pod has sidecar %v, revision %q; want istio-proxy from %s",
						o.PID(), hasSidecar(pod), pod.Annotations[inject.AnnotationRevision], stableRev)
				}
			}
		}},
		{"the leader killed mid-canary: the other replica takes over and finishes it, admitting throughout", func(t *testing.T) {
			e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Version = canaryVer })
			e.waitCanary(t, canaryRev, 10)
			creator := e.createPodsUntilStopped(t, "shop", "during")

			if err := leader.Kill(); err != nil {
				t.Fatal(err)
			}
			killed := time.Now()
			// Unpaused while no replica leads (the survivor's validator
			// admits the change): the next steps are the survivor's to take.
			e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) { m.Spec.UpdateStrategy.Canary.Paused = false })
			e.refusesSecondMeshInstall(t, "with no leader")
			var lease *coordinationv1.Lease
			eventually(t, maxTakeover+10*time.Second, "the other replica holding the lease", func() error {
				lease = e.lease(t)
				if h := ptr.Deref(lease.Spec.HolderIdentity, ""); h == "" || h == leaderID {
					return fmt.Errorf("lease held by %q", h)
				}
				return nil
			})
			takeover := time.Since(killed)
			acquired := "unset"
			if lease.Spec.AcquireTime != nil {
				acquired = lease.Spec.AcquireTime.Sub(killed).Round(time.Millisecond).String()
			}
			t.Logf("takeover observed %s after the kill (the lease's acquireTime: %s after), new holder %s",
				takeover.Round(time.Millisecond), acquired, *lease.Spec.HolderIdentity)
			if takeover > maxTakeover {
				t.Errorf("the other replica took the lease %s after the leader was killed, want at most %s", takeover, maxTakeover)
			}
			eventually(t, 5*time.Second, "the surviving replica leading", func() error {
				if !becameLeader(t, survivor, *lease.Spec.HolderIdentity) {
					return fmt.Errorf("the lease is held by %s, which the surviving replica's log does not name", *lease.Spec.HolderIdentity)
				}
				return nil
			})

			e.waitCanary(t, canaryRev, 50)
			eventually(t, 3*stepWait, "promoted", func() error {
				st := e.getMeshInstall(t, name).Status
				if st.ActiveRevision != canaryRev || st.Canary != nil {
					return fmt.Errorf("active %s canary %+v", st.ActiveRevision, st.Canary)
				}
				return nil
			})
			attempts := creator.stop()
			for _, a := range attempts {
				if a.err != nil || !a.injected {
					t.Errorf("pod %s created at %s: error %v, injected %v", a.name, a.start.Format(time.StampMilli), a.err, a.injected)
				}
			}
			t.Logf("%d pods created from the kill to the promotion, every one injected", len(attempts))
			if len(attempts) < 10 {
				t.Errorf("only %d pods were created during the takeover; the check says little", len(attempts))
			}

			tries := 0
			eventually(t, 10*time.Second, "new pods injected by the promoted revision", func() error {
				p := barePod("shop", fmt.Sprintf("after-%d", tries), nil)
				tries++
				if err := e.k8s.Create(ctx, p); err != nil {
					t.Fatalf("a pod created after the promotion: %v", err)
				}
				if got := p.Annotations[inject.AnnotationRevision]; got != canaryRev {
					return fmt.Errorf("pod %s injected by %q", p.Name, got)
				}
				return nil
			})
			e.refusesSecondMeshInstall(t, "after the takeover")
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			t.FailNow()
		}
	}
}

// refusesSecondMeshInstall checks that the validator refuses a second
// MeshInstall (dry run: nothing is created if it does not).
func (e *env) refusesSecondMeshInstall(t *testing.T, when string) {
	t.Helper()
	second := sample(t)
	second.Name = "second"
	err := e.k8s.Create(context.Background(), second, client.DryRunAll)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "only one MeshInstall is supported") {
		t.Errorf("a second MeshInstall %s: %v, want the validator's refusal", when, err)
	}
}

// newReplica prepares another operator process beside o, with its own
// ports, log and certificate directory.
func newReplica(t *testing.T, o *localcluster.Operator) *localcluster.Operator {
	t.Helper()
	taken := map[int]bool{o.WebhookPort: true, o.MetricsPort: true, o.ProbePort: true}
	for {
		r, err := localcluster.NewOperator(o.Binary, o.Kubeconfig, o.Dir+"-replica")
		if err != nil {
			t.Fatal(err)
		}
		if !taken[r.WebhookPort] && !taken[r.MetricsPort] && !taken[r.ProbePort] {
			return r
		}
	}
}

// startReplica starts another replica of the operator, stopped with the env.
func (e *env) startReplica(t *testing.T, r *localcluster.Operator) {
	t.Helper()
	e.replicas = append(e.replicas, r)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// lease is the leader election lease, empty before there is one.
func (e *env) lease(t *testing.T) *coordinationv1.Lease {
	t.Helper()
	lease := &coordinationv1.Lease{}
	err := e.k8s.Get(context.Background(), client.ObjectKey{Namespace: leaseNamespace, Name: leaseName}, lease)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return lease
}

// leaseHolder is the identity holding the leader election lease, "" before there is one.
func (e *env) leaseHolder(t *testing.T) string {
	t.Helper()
	return ptr.Deref(e.lease(t).Spec.HolderIdentity, "")
}

// becameLeaderEvent ends the event the leader election records, and the
// operator logs, when a replica wins the lease: "<identity> became leader".
const becameLeaderEvent = " became leader"

// becameLeader reports whether an operator process won the lease as
// identity. An identity is hostname_uuid, the same hostname for every
// process on the host: only its log tells which process it is.
func becameLeader(t *testing.T, o *localcluster.Operator, identity string) bool {
	t.Helper()
	return logged(t, o, identity+becameLeaderEvent)
}

func logged(t *testing.T, o *localcluster.Operator, text string) bool {
	t.Helper()
	data, err := os.ReadFile(o.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(data, []byte(text))
}

func (e *env) injectorEntry(t *testing.T, name string) admissionregistrationv1.MutatingWebhook {
	t.Helper()
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := e.k8s.Get(context.Background(), client.ObjectKey{Name: webhookconfig.InjectorName}, mwc); err != nil {
		t.Fatal(err)
	}
	for _, w := range mwc.Webhooks {
		if w.Name == name {
			return w
		}
	}
	t.Fatalf("the injector configuration has no entry %s", name)
	return admissionregistrationv1.MutatingWebhook{}
}

// handshake connects to a replica's webhook server trusting only caBundle.
func handshake(o *localcluster.Operator, caBundle []byte) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caBundle) {
		return fmt.Errorf("no certificate in the CA bundle")
	}
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(o.WebhookPort), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	return conn.Close()
}

// injectDirectly sends one replica the AdmissionReview the API server would
// send for pod through the injector entry hook (its path, trusting only its
// CA bundle), and returns the pod with the response's patch applied.
func injectDirectly(t *testing.T, o *localcluster.Operator, hook admissionregistrationv1.MutatingWebhook, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	u, err := url.Parse(ptr.Deref(hook.ClientConfig.URL, ""))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = "127.0.0.1:" + strconv.Itoa(o.WebhookPort)
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	uid := types.UID("direct-" + pod.Name)
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       uid,
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: pod.Namespace,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(hook.ClientConfig.CABundle) {
		t.Fatal("the injector entry has no CA bundle")
	}
	httpClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	defer httpClient.CloseIdleConnections()
	resp, err := httpClient.Post(u.String(), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("replica pid %d: %v", o.PID(), err)
	}
	defer resp.Body.Close()
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&review); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("replica pid %d answered %s: %v", o.PID(), resp.Status, err)
	}
	r := review.Response
	if r == nil || r.UID != uid || !r.Allowed || ptr.Deref(r.PatchType, "") != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("replica pid %d answered %+v, want the pod allowed with a JSON patch", o.PID(), r)
	}
	patch, err := jsonpatch.DecodePatch(r.Patch)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := patch.Apply(raw)
	if err != nil {
		t.Fatal(err)
	}
	out := &corev1.Pod{}
	if err := json.Unmarshal(patched, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// podCreator creates bare pods through the API server, one every 500ms,
// recording how each went.
type podCreator struct {
	halt     chan struct{}
	once     sync.Once
	done     sync.WaitGroup
	mu       sync.Mutex
	attempts []podAttempt
}

type podAttempt struct {
	name     string
	start    time.Time
	err      error
	injected bool
}

// createPodsUntilStopped creates pods until stopped, or the test ends.
func (e *env) createPodsUntilStopped(t *testing.T, namespace, prefix string) *podCreator {
	c := &podCreator{halt: make(chan struct{})}
	c.done.Add(1)
	go func() {
		defer c.done.Done()
		for i := 0; ; i++ {
			p := barePod(namespace, fmt.Sprintf("%s-%d", prefix, i), nil)
			a := podAttempt{name: p.Name, start: time.Now()}
			a.err = e.k8s.Create(context.Background(), p)
			a.injected = a.err == nil && hasSidecar(p)
			c.mu.Lock()
			c.attempts = append(c.attempts, a)
			c.mu.Unlock()
			select {
			case <-c.halt:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { c.stop() })
	return c
}

// stop stops creating pods and returns every attempt.
func (c *podCreator) stop() []podAttempt {
	c.once.Do(func() { close(c.halt) })
	c.done.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.attempts
}
