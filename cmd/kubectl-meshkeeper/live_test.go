package main

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"istio.io/api/annotation"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// The mesh the commands are run against: a MeshInstall at Istio 1.30.8 on
// revision 1-30-8 in mesh-system (with the status the operator would have
// written, its istiod, injector configuration and routing, all controlled
// by it), a meshed namespace shop with a rolling Deployment under a
// PodDisruptionBudget that allows no disruption, a Recreate Deployment, an
// opted-out one, a bare pod, an opted-out pod and a host-network pod, and
// a namespace plain naming a revision that does not exist. Two nodes, one
// of them tainted.
const (
	meshNS     = "mesh-system"
	stableRev  = "1-30-8"
	stableHash = "h1"
)

var (
	fixtureOnce sync.Once
	fixtureErr  error
)

func meshFixture(t *testing.T) {
	t.Helper()
	fixtureOnce.Do(func() { fixtureErr = createMesh(context.Background(), env.Client) })
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
}

func createMesh(ctx context.Context, c client.Client) error {
	mi, err := testenv.Sample()
	if err != nil {
		return err
	}
	mi.Spec.Version, mi.Spec.Namespace, mi.Spec.Gateways = "1.30.8", meshNS, nil
	mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{Type: meshv1alpha1.UpdateStrategyCanary}
	mi.Spec.DataPlane.Rollout.Mode = meshv1alpha1.RolloutAutomatic
	if err := c.Create(ctx, mi); err != nil {
		return err
	}
	mi.Status = meshv1alpha1.MeshInstallStatus{ObservedGeneration: mi.Generation, Version: "1.30.8", ActiveRevision: stableRev,
		Revisions: []meshv1alpha1.RevisionStatus{{Name: stableRev, Version: "1.30.8", Role: meshv1alpha1.RevisionActive, Weight: 100, Ready: true, Pods: 5, UpToDatePods: 5}}}
	if err := c.Status().Update(ctx, mi); err != nil {
		return err
	}
	owned := metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(mi, meshv1alpha1.GroupVersion.WithKind("MeshInstall"))}}
	in := func(ns, name string) metav1.ObjectMeta {
		m := *owned.DeepCopy()
		m.Namespace, m.Name = ns, name
		return m
	}
	meshed := func(name string, change func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: map[string]string{"app": name},
			Annotations: map[string]string{annotation.SidecarStatus.Name: "{}", inject.AnnotationRevision: stableRev, inject.AnnotationConfigHash: stableHash}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}, {Name: "istio-proxy", Image: "proxy"}}}}
		if change != nil {
			change(p)
		}
		return p
	}
	// A pod of Deployment name, as its ReplicaSet makes it.
	ofDeployment := func(name, suffix string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Name, p.GenerateName, p.Labels["pod-template-hash"] = name+"-5d8f9-"+suffix, name+"-5d8f9-", "5d8f9"
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name + "-5d8f9", UID: k8stypes.UID("rs-" + name), Controller: ptr.To(true)}}
		}
	}
	deployment := func(name string, replicas int32, change func(*appsv1.Deployment)) *appsv1.Deployment {
		l := map[string]string{"app": name}
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}, Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}}}
		if change != nil {
			change(d)
		}
		return d
	}
	injector := webhookconfig.InjectorConfiguration(webhookconfig.Injector{ControlPlaneNamespace: meshNS, Revisions: []string{stableRev},
		Endpoint: webhookconfig.Endpoint{URL: "https://127.0.0.1:1"}})
	injector.OwnerReferences = owned.OwnerReferences
	istiodLabels := map[string]string{"app": "istiod", "istio.io/rev": stableRev}
	objects := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: meshNS}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"istio-injection": "enabled"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "plain", Labels: map[string]string{"istio.io/rev": "canary"}}},
		&appsv1.Deployment{ObjectMeta: in(meshNS, render.IstiodName(stableRev)), Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: istiodLabels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: istiodLabels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "discovery", Image: "pilot",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("2Gi")}}}}}}}},
		&corev1.ConfigMap{ObjectMeta: in(meshNS, render.RoutingConfigMapName), Data: revision.Routing{Active: stableRev, Tags: []string{revision.DefaultTag}}.Data()},
		deployment("web", 4, nil),
		deployment("api", 3, nil),
		deployment("db", 1, func(d *appsv1.Deployment) { d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType }),
		deployment("quiet", 2, func(d *appsv1.Deployment) {
			d.Annotations = map[string]string{meshv1alpha1.AnnotationRollout: meshv1alpha1.RolloutDisabled}
		}),
		&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(4)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
		meshed("web", ofDeployment("web", "a")), meshed("web", ofDeployment("web", "b")),
		meshed("api", ofDeployment("api", "a")), meshed("db", ofDeployment("db", "a")), meshed("quiet", ofDeployment("quiet", "a")),
		meshed("bare", nil),
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "opted-out", Labels: map[string]string{"sidecar.istio.io/inject": "false"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "node-agent"},
			Spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "app", Image: "app"}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "plain", Name: "lost", Labels: map[string]string{"app": "lost"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}},
		// Last: the API server calls it (and fails, at an address nothing serves) for pods created after it.
		injector,
	}
	for _, o := range objects {
		if err := c.Create(ctx, o); err != nil {
			return err
		}
	}
	return createNodes(ctx, c)
}

// createNodes makes a node with room for four istiod replicas of 500m and
// 2Gi, and a tainted one istiod does not tolerate.
func createNodes(ctx context.Context, c client.Client) error {
	for _, n := range []*corev1.Node{
		{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "node-gpu"}, Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "gpu", Effect: corev1.TaintEffectNoSchedule}}}},
	} {
		if err := c.Create(ctx, n); err != nil {
			return err
		}
		n.Status = corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("16Gi")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		}
		if err := c.Status().Update(ctx, n); err != nil {
			return err
		}
		// The API server taints a new node not-ready until the node
		// lifecycle controller, which envtest does not run, sees it Ready.
		n.Spec.Taints = slices.DeleteFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady })
		if err := c.Update(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// runPlugin runs the plugin as kubectl would, with the fixture's kubeconfig.
func runPlugin(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append(args, "--kubeconfig", writeKubeconfig(t)), &out, &errOut)
	if errOut.Len() > 0 {
		t.Logf("stderr: %s", errOut.String())
	}
	return out.String(), err
}

// checkInjectCases are check-inject's questions about the fixture, each
// answered in testdata/<name>.golden.
var checkInjectCases = []struct {
	name string
	args []string
}{
	{"check-inject-shop", []string{"check-inject", "-n", "shop", "-l", "app in (web,bare)"}},
	{"check-inject-excluded", []string{"check-inject", "-n", "shop", "opted-out"}},
	{"check-inject-host-network", []string{"check-inject", "-n", "shop", "node-agent"}},
	{"check-inject-unknown-tag", []string{"check-inject", "-n", "plain", "lost"}},
	{"check-inject-new-pod", []string{"check-inject", "-n", "shop", "-l", "app=checkout,istio.io/rev=1-30-8"}},
}

// precheckGoldens are the golden files of TestPrecheckAgainstAnAPIServer.
var precheckGoldens = []string{"precheck-canary", "precheck-unsupported", "precheck-in-place-refused", "precheck-in-place"}

// TestCheckInjectAgainstAnAPIServer asks check-inject about the pods of
// the fixture: the entry, the revision and why, or why not.
func TestCheckInjectAgainstAnAPIServer(t *testing.T) {
	meshFixture(t)
	for _, c := range checkInjectCases {
		t.Run(c.name, func(t *testing.T) {
			out, err := runPlugin(t, c.args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			golden(t, c.name, out)
		})
	}
	if _, err := runPlugin(t, "check-inject", "-n", "shop", "web", "-l", "app=web"); err == nil {
		t.Error("a pod name and -l together were accepted")
	}
}

// TestPrecheckAgainstAnAPIServer asks precheck about upgrades of the
// fixture's mesh: a two-minor canary is allowed and names what the rollout
// would leave to a person; in place, the same jump is refused (non-zero
// exit) and a one-minor step lists the istiod defaults that change.
func TestPrecheckAgainstAnAPIServer(t *testing.T) {
	meshFixture(t)
	check := func(t *testing.T, name, version string, refused bool) {
		t.Helper()
		out, err := runPlugin(t, "precheck", version)
		if refused != errors.Is(err, errRefused) || (!refused && err != nil) {
			t.Fatalf("precheck %s: %v, want refused %v\n%s", version, err, refused, out)
		}
		golden(t, name, out)
	}
	t.Run("canary", func(t *testing.T) {
		check(t, "precheck-canary", "1.32.0", false)
		check(t, "precheck-unsupported", "1.33.0", true)
	})
	t.Run("the validator's Pod Security warning", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "locked",
			Labels: map[string]string{"istio-injection": "enabled", "pod-security.kubernetes.io/enforce": "restricted"}}}
		if err := env.Client.Create(context.Background(), ns); err != nil {
			t.Fatal(err)
		}
		// envtest runs no namespace controller: a deleted namespace stays,
		// Terminating, with its labels; the label goes first.
		t.Cleanup(func() {
			delete(ns.Labels, "pod-security.kubernetes.io/enforce")
			_ = env.Client.Update(context.Background(), ns)
			_ = env.Client.Delete(context.Background(), ns)
		})
		out, err := runPlugin(t, "precheck", "1.32.0")
		if err != nil {
			t.Fatalf("precheck: %v\n%s", err, out)
		}
		if want := "meshed namespaces enforce Pod Security restricted (locked)"; !strings.Contains(out, want) {
			t.Errorf("precheck does not warn %q:\n%s", want, out)
		}
	})
	t.Run("in place", func(t *testing.T) {
		mi := &meshv1alpha1.MeshInstall{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Name: "default"}, mi); err != nil {
			t.Fatal(err)
		}
		mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{Type: meshv1alpha1.UpdateStrategyInPlace}
		if err := env.Client.Update(context.Background(), mi); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{Type: meshv1alpha1.UpdateStrategyCanary}
			_ = env.Client.Update(context.Background(), mi)
		})
		check(t, "precheck-in-place-refused", "1.32.0", true)
		check(t, "precheck-in-place", "1.31.4", false)
	})
}

// TestStatusAgainstAnAPIServer: status reads the MeshInstall and, beyond
// its status, the istiod Deployment it controls and, with -n, the pods of
// the namespace by their stamps.
func TestStatusAgainstAnAPIServer(t *testing.T) {
	meshFixture(t)
	out, err := runPlugin(t, "status", "-n", "shop")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"1-30-8    1.30.8   stable  100%    available 0/1", "Namespace shop (pods by the revision stamped on them): 6 on 1-30-8, 2 without a sidecar"} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not say %q:\n%s", want, out)
		}
	}
	if _, err := runPlugin(t, "status", "nonexistent"); err == nil || !strings.Contains(err.Error(), "nonexistent") {
		t.Errorf("status of a MeshInstall that does not exist: %v", err)
	}
}

// syncBuffer is a bytes.Buffer written by the watch and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStatusWatchRedrawsOnAChange: status --watch into a pipe prints the
// status, then, when the operator reports a change, the new status after a
// separator.
func TestStatusWatchRedrawsOnAChange(t *testing.T) {
	meshFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"status", "--watch", "--kubeconfig", writeKubeconfig(t)}, &out, &out)
	}()
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, "the first view", func() error {
		if !strings.Contains(out.String(), "available 0/1") {
			return errors.New(out.String())
		}
		return nil
	})
	mi := &meshv1alpha1.MeshInstall{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "default"}, mi); err != nil {
		t.Fatal(err)
	}
	mi.Status.Revisions[0].Pods = 42
	if err := env.Client.Status().Update(ctx, mi); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 3*time.Second, 50*time.Millisecond, "a redraw with the change", func() error {
		_, after, found := strings.Cut(out.String(), "\n---\n")
		if !found || !strings.Contains(after, "available 0/1  42") {
			return errors.New(out.String())
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("status --watch ended with %v", err)
	}
}

// endingWatches hands out, first, a watch that has already ended, as the
// API server ends every watch after some minutes; later ones are real.
type endingWatches struct {
	client.WithWatch
	calls atomic.Int32
}

func (e *endingWatches) Watch(ctx context.Context, list client.ObjectList, opts ...client.ListOption) (watch.Interface, error) {
	if e.calls.Add(1) == 1 {
		ended := watch.NewFake()
		ended.Stop()
		return ended, nil
	}
	return e.WithWatch.Watch(ctx, list, opts...)
}

// status --watch outlasts a watch the API server ends: it watches again
// and still redraws a change at once (well within its 5 s redraw tick).
func TestStatusWatchOutlastsAnEndedWatch(t *testing.T) {
	meshFixture(t)
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	watches := &endingWatches{WithWatch: c}
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- watchStatus(ctx, watches, "", "", &out, false) }()
	testenv.Eventually(t, 10*time.Second, 50*time.Millisecond, "watching again", func() error {
		if watches.calls.Load() < 2 {
			return errors.New("no second watch")
		}
		return nil
	})
	mi := &meshv1alpha1.MeshInstall{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "default"}, mi); err != nil {
		t.Fatal(err)
	}
	mi.Status.Revisions[0].Pods = 43
	if err := env.Client.Status().Update(ctx, mi); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 3*time.Second, 50*time.Millisecond, "a redraw with the change", func() error {
		if !strings.Contains(out.String(), "available 0/1  43") {
			return errors.New(out.String())
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("status --watch ended with %v", err)
	}
}
