package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// progressDeadline is short so that a stuck istiod is reported within a test.
const progressDeadline = 12 * time.Second

// unschedulable asks istiod for more CPU than a kwok node has (32).
func unschedulable(mi *meshv1alpha1.MeshInstall) {
	mi.Spec.Pilot.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64")}}
}

// TestCanaryNeverRoutesToAnIstiodThatCannotServe starts a canary whose
// istiod cannot be scheduled: no workload may move to it, the MeshInstall
// must say why, and fixing it lets the canary start. Status is then wiped
// mid-canary, the operator is killed at several points, and a draining
// revision's istiod is deleted by hand: no revision may be pruned while in
// use, and the end state is that of an uninterrupted canary.
func TestCanaryNeverRoutesToAnIstiodThatCannotServe(t *testing.T) {
	runsLong(t, 140*time.Second)
	t.Parallel()
	e := newEnv(t, 3)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Version = stableVer
	mi.Spec.Gateways = nil
	mi.Spec.Profile = meshv1alpha1.ProfileMinimal // no gateway: the control plane only
	mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{
		Type: meshv1alpha1.UpdateStrategyCanary,
		Canary: &meshv1alpha1.CanaryStrategy{
			Steps: []int32{50, 100}, StepInterval: &metav1.Duration{Duration: stepWait},
		},
		InactiveRevisionDeletionGracePeriod: &metav1.Duration{Duration: pruneGrace},
		ProgressDeadline:                    &metav1.Duration{Duration: progressDeadline},
	}
	name := mi.Name
	restartOperator := func(t *testing.T) {
		t.Helper()
		if err := e.operator.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := e.operator.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"install and 20 workloads on the stable revision", func(t *testing.T) {
			if err := e.k8s.Create(ctx, mi); err != nil {
				t.Fatal(err)
			}
			e.waitReady(t, name, installTimeout)
			e.ensureNamespace(t, appsNS, map[string]string{"istio-injection": "enabled"})
			for i := range workloads {
				if err := e.k8s.Create(ctx, app(appsNS, workloadName(i), 1)); err != nil {
					t.Fatal(err)
				}
			}
			e.waitAssignment(t, func(string) string { return stableRev })
		}},
		{"an unschedulable canary istiod gets no workload, and the MeshInstall says why", func(t *testing.T) {
			e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) {
				m.Spec.Version = canaryVer
				unschedulable(m)
			})
			e.waitStalled(t, name, meshv1alpha1.ReasonControlPlaneNotAvailable, "Insufficient cpu")
			st := e.getMeshInstall(t, name).Status
			if st.Canary == nil || st.Canary.Weight != 0 {
				t.Errorf("status.canary = %+v, want the canary at weight 0", st.Canary)
			}
			if c := conditionOf(e.getMeshInstall(t, name), meshv1alpha1.ConditionUpgradeInProgress); c == nil || c.Status != metav1.ConditionFalse {
				t.Errorf("UpgradeInProgress = %+v, want False", c)
			}
			if r := e.routing(t, mi.Spec.Namespace); r.Canary != canaryRev || r.Weight != 0 {
				t.Errorf("routing = %+v, want the canary at weight 0", r)
			}
			e.restartAll(t)
			e.waitAssignment(t, func(string) string { return stableRev })
		}},
		{"the operator killed while the canary waits moves nothing", func(t *testing.T) {
			restartOperator(t)
			time.Sleep(3 * time.Second)
			if r := e.routing(t, mi.Spec.Namespace); r.Weight != 0 || r.Active != stableRev {
				t.Errorf("routing after a restart = %+v", r)
			}
			e.restartAll(t)
			e.waitAssignment(t, func(string) string { return stableRev })
		}},
		{"fixing the canary's resources starts its first step", func(t *testing.T) {
			e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) {
				m.Spec.Pilot.Resources = nil
				m.Spec.UpdateStrategy.Canary.Paused = true // hold the step for the checks below
			})
			e.waitCanary(t, canaryRev, 50)
			e.restartAll(t)
			e.waitAssignment(t, expectedAt(50))
		}},
		{"status wiped mid-canary: nothing is pruned and the canary keeps its step", func(t *testing.T) {
			// The operator writes status too (recounts): retry on conflict.
			eventually(t, 10*time.Second, "status wiped", func() error {
				wiped := e.getMeshInstall(t, name)
				wiped.Status = meshv1alpha1.MeshInstallStatus{}
				return e.k8s.Status().Update(ctx, wiped)
			})
			time.Sleep(pruneGrace + 4*time.Second)
			for _, rev := range []string{stableRev, canaryRev} {
				if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.IstiodName(rev)}, &appsv1.Deployment{}); err != nil {
					t.Errorf("istiod of %s after status was wiped: %v", rev, err)
				}
			}
			e.waitCanary(t, canaryRev, 50)
			if st := e.getMeshInstall(t, name).Status; st.ActiveRevision != stableRev || len(st.Revisions) != 2 {
				t.Errorf("status rebuilt as %+v", st)
			}
		}},
		{"killed mid-canary, the operator keeps every workload where it was", func(t *testing.T) {
			restartOperator(t)
			e.waitCanary(t, canaryRev, 50)
			e.restartAll(t)
			e.waitAssignment(t, expectedAt(50))
		}},
		{"unpaused, the canary is promoted and the old revision drains", func(t *testing.T) {
			e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) { m.Spec.UpdateStrategy.Canary.Paused = false })
			eventually(t, 3*stepWait, "promoted", func() error {
				st := e.getMeshInstall(t, name).Status
				if st.ActiveRevision != canaryRev || st.Canary != nil {
					return fmt.Errorf("active %s canary %+v", st.ActiveRevision, st.Canary)
				}
				return nil
			})
		}},
		{"a draining revision's istiod deleted by hand comes back and stays while pods use it", func(t *testing.T) {
			key := client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.IstiodName(stableRev)}
			d := &appsv1.Deployment{}
			if err := e.k8s.Get(ctx, key, d); err != nil {
				t.Fatal(err)
			}
			if err := e.k8s.Delete(ctx, d); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, "istiod of the draining revision re-created", func() error {
				again := &appsv1.Deployment{}
				if err := e.k8s.Get(ctx, key, again); err != nil {
					return err
				}
				if again.UID == d.UID {
					return fmt.Errorf("not deleted yet")
				}
				return nil
			})
			restartOperator(t)
			time.Sleep(pruneGrace + 4*time.Second)
			for _, o := range []client.Object{&appsv1.Deployment{}, &corev1.ConfigMap{}, &corev1.Service{}} {
				objKey := key
				if _, isCM := o.(*corev1.ConfigMap); isCM {
					objKey.Name = render.InjectionConfigMapName(stableRev)
				}
				if err := e.k8s.Get(ctx, objKey, o); err != nil {
					t.Errorf("%T %s of the draining revision, still in use: %v", o, objKey.Name, err)
				}
			}
		}},
		{"restarted workloads all land on the new revision; the old one is pruned and nothing of it is left", func(t *testing.T) {
			e.restartAll(t)
			e.waitAssignment(t, func(string) string { return canaryRev })
			e.waitPruned(t, stableRev)
			got := e.waitReady(t, name, 30*time.Second)
			if got.Status.Version != canaryVer || len(got.Status.Revisions) != 1 {
				t.Errorf("status = %+v", got.Status)
			}
			for _, o := range []client.Object{
				&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: mi.Spec.Namespace, Name: render.InjectionConfigMapName(stableRev)}},
				&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: mi.Spec.Namespace, Name: render.IstiodName(stableRev)}},
			} {
				if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(o), o); !apierrors.IsNotFound(err) {
					t.Errorf("%T %s of the pruned revision: %v", o, o.GetName(), err)
				}
			}
			mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
			if err := e.k8s.Get(ctx, client.ObjectKey{Name: webhookconfig.InjectorName}, mwc); err != nil {
				t.Fatal(err)
			}
			for _, w := range mwc.Webhooks {
				if strings.Contains(w.Name, stableRev) {
					t.Errorf("the injector still has an entry for the pruned revision: %s", w.Name)
				}
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			t.FailNow()
		}
	}
}

// TestInPlaceUpgradeNeverPutsTheProxyAheadOfIstiod upgrades in place to an
// istiod that cannot be scheduled: pods and gateways created meanwhile keep
// the old proxy, also across an operator crash, until the new istiod is
// available.
func TestInPlaceUpgradeNeverPutsTheProxyAheadOfIstiod(t *testing.T) {
	runsLong(t, 45*time.Second)
	t.Parallel()
	e := newEnv(t, 2)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Version = stableVer
	mi.Spec.UpdateStrategy.ProgressDeadline = &metav1.Duration{Duration: progressDeadline}
	if err := e.k8s.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	e.waitReady(t, mi.Name, installTimeout)
	e.ensureNamespace(t, "shop", map[string]string{"istio-injection": "enabled"})
	proxyOf := func(name string) string {
		t.Helper()
		p := barePod("shop", name, nil)
		if err := e.k8s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		return p.Annotations[inject.AnnotationProxyVersion]
	}
	gatewayVersion := func() string {
		t.Helper()
		d := &appsv1.Deployment{}
		if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: mi.Spec.Gateways[0].Name}, d); err != nil {
			t.Fatal(err)
		}
		return d.Spec.Template.Labels[render.LabelVersion]
	}
	if v := proxyOf("before"); v != stableVer {
		t.Fatalf("proxy before the upgrade: %q", v)
	}

	e.updateMeshInstall(t, mi.Name, func(m *meshv1alpha1.MeshInstall) {
		m.Spec.Version = canaryVer
		unschedulable(m)
	})
	eventually(t, 30*time.Second, "istiod rolling to the new version", func() error {
		d := &appsv1.Deployment{}
		if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: "istiod"}, d); err != nil {
			return err
		}
		if d.Labels[render.LabelVersion] != canaryVer {
			return fmt.Errorf("istiod at %s", d.Labels[render.LabelVersion])
		}
		return nil
	})
	if v := proxyOf("during"); v != stableVer {
		t.Errorf("a pod created while the new istiod rolls out got proxy %s, want %s", v, stableVer)
	}
	e.waitStalled(t, mi.Name, meshv1alpha1.ReasonControlPlaneNotAvailable, "Insufficient cpu")
	if err := e.operator.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := e.operator.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if v := proxyOf("after-a-crash"); v != stableVer {
		t.Errorf("a pod created after the operator restarted got proxy %s, want %s", v, stableVer)
	}
	if v := gatewayVersion(); v != stableVer {
		t.Errorf("the gateway moved to %s before istiod did", v)
	}

	e.updateMeshInstall(t, mi.Name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Pilot.Resources = nil })
	got := e.waitReady(t, mi.Name, 60*time.Second)
	if got.Status.Version != canaryVer {
		t.Errorf("status.version = %s", got.Status.Version)
	}
	if v := proxyOf("after"); v != canaryVer {
		t.Errorf("a pod created after istiod rolled out got proxy %s, want %s", v, canaryVer)
	}
	if v := gatewayVersion(); v != canaryVer {
		t.Errorf("the gateway stayed at %s", v)
	}
}

// TestOneRefusedObjectStopsNothingElse refuses the gateway's Service with a
// ValidatingAdmissionPolicy: istiod, the PeerAuthentication, the routing and
// the injector must still be applied, and the MeshInstall must name the
// Service and the policy's message.
func TestOneRefusedObjectStopsNothingElse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	ctx := context.Background()
	mi := sample(t)
	gateway := mi.Spec.Gateways[0].Name
	const refusal = "no gateway Services in this cluster"
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "no-gateway-services"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"services"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{Expression: "object.metadata.name != '" + gateway + "'", Message: refusal}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "no-gateway-services"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: policy.Name, ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	for _, o := range []client.Object{policy, binding} {
		if err := e.k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "the policy refuses the gateway's Service", func() error {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: gateway},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
		err := e.k8s.Create(ctx, svc, client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), refusal) {
			return fmt.Errorf("dry-run create: %v", err)
		}
		return nil
	})

	if err := e.k8s.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "Ready False naming the refused Service", func() error {
		c := conditionOf(e.getMeshInstall(t, mi.Name), meshv1alpha1.ConditionReady)
		want := "Service " + mi.Spec.Namespace + "/" + gateway
		if c == nil || c.Reason != meshv1alpha1.ReasonApplyFailed || !strings.Contains(c.Message, want) || !strings.Contains(c.Message, refusal) {
			return fmt.Errorf("Ready = %+v, want ApplyFailed naming %s", c, want)
		}
		return nil
	})
	pa := &unstructured.Unstructured{}
	pa.SetGroupVersionKind(render.PeerAuthenticationGVK)
	pa.SetNamespace(mi.Spec.Namespace)
	pa.SetName(render.PeerAuthenticationName)
	eventually(t, 60*time.Second, "everything but the refused Service applied", func() error {
		for _, o := range []client.Object{
			&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: mi.Spec.Namespace, Name: "istiod"}},
			&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: mi.Spec.Namespace, Name: gateway}},
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: mi.Spec.Namespace, Name: render.RoutingConfigMapName}},
			&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhookconfig.InjectorName}},
			pa,
		} {
			if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
				return fmt.Errorf("%T %s: %w", o, o.GetName(), err)
			}
		}
		return nil
	})
	if c := conditionOf(e.getMeshInstall(t, mi.Name), meshv1alpha1.ConditionReady); c.Reason != meshv1alpha1.ReasonApplyFailed {
		t.Errorf("Ready = %+v, want ApplyFailed while the Service is refused", c)
	}
	eventually(t, 10*time.Second, "a Warning event naming the Service", func() error {
		var events eventsv1.EventList
		if err := e.k8s.List(ctx, &events, client.InNamespace("default")); err != nil {
			return err
		}
		for _, ev := range events.Items {
			if ev.Type == corev1.EventTypeWarning && ev.Reason == meshv1alpha1.ReasonApplyFailed && strings.Contains(ev.Note, gateway) {
				return nil
			}
		}
		return fmt.Errorf("no ApplyFailed event among %d", len(events.Items))
	})
	e.ensureNamespace(t, "shop", map[string]string{"istio-injection": "enabled"})
	p := barePod("shop", "served", nil)
	if err := e.k8s.Create(ctx, p); err != nil || !hasSidecar(p) {
		t.Errorf("a pod created while the gateway Service is refused: %v, sidecar %v", err, err == nil && hasSidecar(p))
	}

	if err := e.k8s.Delete(ctx, binding); err != nil {
		t.Fatal(err)
	}
	e.waitReady(t, mi.Name, 60*time.Second)
}

// TestOperatorRestartRefusesNoPod creates pods without pause while the
// operator restarts: once the new process reports ready, every pod is
// admitted with its sidecar.
func TestOperatorRestartRefusesNoPod(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Gateways = nil
	mi.Spec.Profile = meshv1alpha1.ProfileMinimal // no gateway: the control plane only
	if err := e.k8s.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	e.waitReady(t, mi.Name, installTimeout)
	e.ensureNamespace(t, "shop", map[string]string{"istio-injection": "enabled"})

	type attempt struct {
		start, end time.Time
		err        error
		injected   bool
	}
	var (
		mu       sync.Mutex
		attempts []attempt
		stop     = make(chan struct{})
		done     sync.WaitGroup
	)
	for w := range 4 {
		done.Add(1)
		go func() {
			defer done.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := barePod("shop", fmt.Sprintf("p-%d-%d", w, i), nil)
				a := attempt{start: time.Now()}
				a.err = e.k8s.Create(ctx, p)
				a.end = time.Now()
				a.injected = a.err == nil && hasSidecar(p)
				mu.Lock()
				attempts = append(attempts, a)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	// Windows in which a new operator process was up and had reported ready.
	type window struct{ from, to time.Time }
	var served []window
	for range 2 {
		if err := e.operator.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := e.operator.Start(ctx); err != nil {
			t.Fatal(err)
		}
		// The window lasts until enough pods were created in it (at least
		// 3 s): on a busy machine each creation takes longer, and a fixed
		// window held too few to check (16 under load ~40).
		from := time.Now()
		for deadline := from.Add(time.Minute); time.Now().Before(deadline); {
			time.Sleep(500 * time.Millisecond)
			mu.Lock()
			in := 0
			for _, a := range attempts {
				if !a.start.Before(from) {
					in++
				}
			}
			mu.Unlock()
			if in >= 15 && time.Since(from) >= 3*time.Second {
				break
			}
		}
		served = append(served, window{from: from, to: time.Now()})
	}
	close(stop)
	done.Wait()

	checked := 0
	for _, a := range attempts {
		inWindow := false
		for _, w := range served {
			inWindow = inWindow || (!a.start.Before(w.from) && !a.end.After(w.to))
		}
		if !inWindow {
			continue // the operator was down or stopping: the failure policy applies
		}
		checked++
		if a.err != nil || !a.injected {
			t.Errorf("a pod created at %s, after the operator reported ready: error %v, injected %v", a.start.Format(time.StampMilli), a.err, a.injected)
		}
	}
	t.Logf("%d pods created after a new operator reported ready, all injected", checked)
	if checked < 20 {
		t.Errorf("only %d pods were created after a restart; the check says little", checked)
	}
}

// waitStalled waits for Stalled=True with a reason and a message containing text.
func (e *env) waitStalled(t *testing.T, name, reason, text string) {
	t.Helper()
	eventually(t, progressDeadline+60*time.Second, "Stalled "+reason, func() error {
		mi := e.getMeshInstall(t, name)
		c := conditionOf(mi, meshv1alpha1.ConditionStalled)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != reason || !strings.Contains(c.Message, text) {
			return fmt.Errorf("Stalled = %+v", c)
		}
		if mi.Status.ObservedGeneration != mi.Generation {
			return fmt.Errorf("observedGeneration %d of %d", mi.Status.ObservedGeneration, mi.Generation)
		}
		return nil
	})
}

// routing reads where the cluster's routing sends the tags.
func (e *env) routing(t *testing.T, namespace string) revision.Routing {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := e.k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: render.RoutingConfigMapName}, cm); err != nil {
		t.Fatal(err)
	}
	r, err := revision.RoutingFromData(cm.Data)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
