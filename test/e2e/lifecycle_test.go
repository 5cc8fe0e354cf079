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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/localcluster"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// TestMeshLifecycle is one user's story, step by step; each step builds on
// the previous one, so the first failure stops the story.
func TestMeshLifecycle(t *testing.T) {
	runsLong(t, 85*time.Second)
	t.Parallel()
	// Short-lived serving certificates: they rotate every 20s during the whole story.
	e := newEnv(t, 2, "--webhook-cert-validity=30s")
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.Version = "1.31.0"
	name := mi.Name
	ns := mi.Spec.Namespace
	istiod := render.IstiodName(render.DefaultRevision)
	// The sample's mesh: strict mTLS in the default trust domain.
	want := proxyWant{trustDomain: "cluster.local", strictMTLS: true}
	var realIstiod *localcluster.Istiod
	var gateway client.ObjectKey // the ingress gateway's Deployment

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"install becomes Ready", func(t *testing.T) {
			if err := e.k8s.Create(ctx, mi); err != nil {
				t.Fatal(err)
			}
			got := e.waitReady(t, name, installTimeout)
			if got.Status.ActiveRevision != render.DefaultRevision || got.Status.Version != "1.31.0" {
				t.Errorf("status = %+v", got.Status)
			}
			d := &appsv1.Deployment{}
			if err := e.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: istiod}, d); err != nil {
				t.Fatal(err)
			}
			if d.Status.AvailableReplicas < 1 {
				t.Errorf("istiod has no available replicas: %+v", d.Status)
			}
			eventually(t, 60*time.Second, "the ingress gateway's pod is injected with the gateway template", func() error {
				var pods corev1.PodList
				if err := e.k8s.List(ctx, &pods, client.InNamespace(ns), client.HasLabels{render.LabelGateway}); err != nil {
					return err
				}
				if len(pods.Items) == 0 {
					return fmt.Errorf("no gateway pods")
				}
				for _, p := range pods.Items {
					if img := p.Spec.Containers[0].Image; img == "auto" || p.Annotations[inject.AnnotationRevision] == "" {
						return fmt.Errorf("gateway pod %s not injected (image %s)", p.Name, img)
					}
				}
				return nil
			})
		}},
		{"real istiod runs as the revision's Deployment says and becomes ready", func(t *testing.T) {
			if td := e.getMeshInstall(t, name).Spec.MeshConfig.TrustDomain; td != want.trustDomain {
				t.Fatalf("trust domain %q, want the default %s", td, want.trustDomain)
			}
			realIstiod = e.startIstiod(t, render.DefaultRevision)
		}},
		{"labelled namespace gets Deployment pods injected", func(t *testing.T) {
			e.ensureNamespace(t, "shop", map[string]string{"istio-injection": "enabled"})
			if err := e.k8s.Create(ctx, app("shop", "web", 3)); err != nil {
				t.Fatal(err)
			}
			eventually(t, 60*time.Second, "3 web pods running, injected and ready", func() error {
				pods := e.podsOf(t, "shop", "web")
				if len(pods) != 3 {
					return fmt.Errorf("%d pods", len(pods))
				}
				for i := range pods {
					p := &pods[i]
					if !hasSidecar(p) {
						return fmt.Errorf("pod %s has no istio-proxy", p.Name)
					}
					if p.Annotations[inject.AnnotationRevision] != render.DefaultRevision || p.Annotations[inject.AnnotationConfigHash] == "" {
						return fmt.Errorf("pod %s lacks meshkeeper's stamp: %v", p.Name, p.Annotations)
					}
					if !podReady(p) {
						return fmt.Errorf("pod %s not ready", p.Name)
					}
				}
				return nil
			})
		}},
		{"an injected pod's proxy gets its identity and strict-mTLS config from real istiod", func(t *testing.T) {
			if err := e.k8s.Create(ctx, service("shop", "web")); err != nil {
				t.Fatal(err)
			}
			pods := e.podsOf(t, "shop", "web")
			e.checkProxies(t, want, &pods[0])
		}},
		{"metrics tell what a user would chart", func(t *testing.T) {
			eventually(t, 30*time.Second, "metrics", func() error {
				body, err := e.operator.Metrics()
				if err != nil {
					return err
				}
				for _, want := range []string{
					`meshkeeper_meshinstall_ready{meshinstall="default"} 1`,
					`meshkeeper_revisions{meshinstall="default",ready="true",role="Active"} 1`,
					`meshkeeper_dataplane_pods{meshinstall="default",state="up_to_date"}`,
					`meshkeeper_injection_requests_total{dry_run="false",reason="",result="injected"}`,
					`meshkeeper_injection_duration_seconds_bucket`,
				} {
					if !strings.Contains(body, want) {
						return fmt.Errorf("no %s in the metrics", want)
					}
				}
				return nil
			})
		}},
		{"opted-out pod is untouched", func(t *testing.T) {
			p := barePod("shop", "opted-out", map[string]string{"sidecar.istio.io/inject": "false"})
			if err := e.k8s.Create(ctx, p); err != nil {
				t.Fatal(err)
			}
			if hasSidecar(p) || p.Annotations[inject.AnnotationRevision] != "" {
				t.Errorf("opted-out pod was injected: %+v", p.Spec)
			}
		}},
		{"kube-system is never injected", func(t *testing.T) {
			e.ensureNamespace(t, "kube-system", map[string]string{"istio-injection": "enabled"})
			defer e.ensureNamespace(t, "kube-system", map[string]string{"istio-injection": ""})
			p := barePod("kube-system", "not-injected", nil)
			if err := e.k8s.Create(ctx, p); err != nil {
				t.Fatal(err)
			}
			if hasSidecar(p) {
				t.Errorf("a kube-system pod was injected")
			}
		}},
		{"the ingress gateway moves behind a cloud load balancer with an HPA, which owns its replicas", func(t *testing.T) {
			gateway = e.moveGatewayBehindLoadBalancer(t, name)
		}},
		{"in-place upgrade rolls istiod and returns to Ready, the gateway keeping the replicas someone else set", func(t *testing.T) {
			e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Version = "1.31.4" })
			got := e.waitReady(t, name, installTimeout)
			if got.Status.Version != "1.31.4" {
				t.Errorf("status.version = %s", got.Status.Version)
			}
			e.assertIstiodImage(t, ns, istiod, "1.31.4")
			e.checkGatewayReplicas(t, gateway, 3)
		}},
		{"a pod injected after the in-place upgrade works with the upgraded istiod", func(t *testing.T) {
			// The rolled Deployment's istiod replaces the old one, as its pods would.
			e.stopIstiod(realIstiod)
			realIstiod = e.startIstiod(t, render.DefaultRevision)
			p := barePod("shop", "after-upgrade", map[string]string{"app": "after-upgrade"})
			for _, o := range []client.Object{service("shop", "after-upgrade"), p} {
				if err := e.k8s.Create(ctx, o); err != nil {
					t.Fatal(err)
				}
			}
			if v := p.Annotations[inject.AnnotationProxyVersion]; v != "1.31.4" {
				t.Fatalf("pod injected with proxy %q, want 1.31.4", v)
			}
			eventually(t, 30*time.Second, "the pod scheduled with an IP", func() error {
				if err := e.k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
					return err
				}
				if p.Status.PodIP == "" {
					return fmt.Errorf("no IP yet")
				}
				return nil
			})
			e.checkProxies(t, want, p)
		}},
		{"operator killed mid-upgrade resumes", func(t *testing.T) {
			e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Version = "1.32.0" })
			eventually(t, 30*time.Second, "upgrade started", func() error {
				c := conditionOf(e.getMeshInstall(t, name), meshv1alpha1.ConditionUpgradeInProgress)
				if c == nil || c.Status != metav1.ConditionTrue {
					return fmt.Errorf("UpgradeInProgress %+v", c)
				}
				return nil
			})
			if err := e.operator.Kill(); err != nil {
				t.Fatal(err)
			}
			if err := e.operator.Start(ctx); err != nil {
				t.Fatal(err)
			}
			got := e.waitReady(t, name, 120*time.Second)
			if got.Status.Version != "1.32.0" {
				t.Errorf("status.version = %s after the restart", got.Status.Version)
			}
			e.assertIstiodImage(t, ns, istiod, "1.32.0")
		}},
		{"unreachable webhook with failurePolicy Fail refuses pods", func(t *testing.T) {
			if err := e.operator.Stop(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := e.operator.Start(ctx); err != nil {
					t.Fatal(err)
				}
			}()
			err := e.k8s.Create(ctx, barePod("shop", "refused", nil))
			if err == nil {
				t.Fatal("pod admitted while the injector is down and failurePolicy is Fail")
			}
			if !strings.Contains(err.Error(), "failed calling webhook") || !strings.Contains(err.Error(), "sidecar-injector.meshkeeper.dev") {
				t.Errorf("error does not say which webhook failed: %v", err)
			}
		}},
		{"unreachable webhook with failurePolicy Ignore admits pods uninjected, and they are counted", func(t *testing.T) {
			e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Injection.FailurePolicy = meshv1alpha1.FailurePolicyIgnore })
			e.waitFailurePolicy(t, admissionregistrationv1.Ignore)
			if err := e.operator.Stop(); err != nil {
				t.Fatal(err)
			}
			p := barePod("shop", "admitted-uninjected", nil)
			err := e.k8s.Create(ctx, p)
			if startErr := e.operator.Start(ctx); startErr != nil {
				t.Fatal(startErr)
			}
			if err != nil {
				t.Fatalf("pod refused although failurePolicy is Ignore: %v", err)
			}
			if hasSidecar(p) {
				t.Fatal("pod injected while the injector was down?")
			}
			eventually(t, 60*time.Second, "uninjected pod counted in status", func() error {
				dp := e.getMeshInstall(t, name).Status.DataPlane
				if dp == nil || dp.UninjectedPods < 1 {
					return fmt.Errorf("dataPlane = %+v", dp)
				}
				return nil
			})
			e.updateMeshInstall(t, name, func(m *meshv1alpha1.MeshInstall) { m.Spec.Injection.FailurePolicy = meshv1alpha1.FailurePolicyFail })
			e.waitFailurePolicy(t, admissionregistrationv1.Fail)
		}},
		{"certificate rotation while pods are created loses no injection", func(t *testing.T) {
			serialBefore := e.servingCertificate(t)
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			deadline := time.Now().Add(25 * time.Second) // the serving certificate renews every 20s
			for i := 0; time.Now().Before(deadline); i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					p := barePod("shop", fmt.Sprintf("rotation-%d", i), nil)
					if err := e.k8s.Create(ctx, p); err != nil {
						errs <- fmt.Errorf("pod %d refused: %w", i, err)
						return
					}
					if !hasSidecar(p) {
						errs <- fmt.Errorf("pod %d not injected", i)
					}
				}(i)
				time.Sleep(time.Second)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if e.servingCertificate(t) == serialBefore {
				t.Error("the serving certificate did not rotate during the step; the test proved nothing")
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			t.FailNow()
		}
	}
}

// waitFailurePolicy waits until every injector entry has the policy.
func (e *env) waitFailurePolicy(t *testing.T, want admissionregistrationv1.FailurePolicyType) {
	t.Helper()
	eventually(t, 30*time.Second, "injector failurePolicy "+string(want), func() error {
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := e.k8s.Get(context.Background(), client.ObjectKey{Name: webhookconfig.InjectorName}, mwc); err != nil {
			return err
		}
		for _, w := range mwc.Webhooks {
			if *w.FailurePolicy != want {
				return fmt.Errorf("%s has %s", w.Name, *w.FailurePolicy)
			}
		}
		return nil
	})
}

func conditionOf(mi *meshv1alpha1.MeshInstall, condType string) *metav1.Condition {
	for i := range mi.Status.Conditions {
		if mi.Status.Conditions[i].Type == condType {
			return &mi.Status.Conditions[i]
		}
	}
	return nil
}

func (e *env) assertIstiodImage(t *testing.T, ns, name, version string) {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := e.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		t.Fatal(err)
	}
	img := d.Spec.Template.Spec.Containers[0].Image
	if !strings.HasSuffix(img, ":"+version) {
		t.Errorf("istiod image %s, want version %s", img, version)
	}
	if d.Status.UpdatedReplicas != d.Status.Replicas || d.Status.AvailableReplicas < *d.Spec.Replicas {
		t.Errorf("istiod not fully rolled out: %+v", d.Status)
	}
}

// servingCertificate returns the serving certificate stored in the operator's Secret.
func (e *env) servingCertificate(t *testing.T) string {
	t.Helper()
	s := &corev1.Secret{}
	if err := e.k8s.Get(context.Background(), client.ObjectKey{Namespace: "meshkeeper-system", Name: "meshkeeper-webhook-certs"}, s); err != nil {
		t.Fatal(err)
	}
	return string(s.Data["tls.crt"])
}
