package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/localcluster"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// Pod Security labels of a namespace, which the API server enforces after
// every mutating webhook.
const podSecurityEnforce = "pod-security.kubernetes.io/enforce"

// TestRestrictedNamespacesWithCNI: with spec.cni.enabled and
// spec.proxy.seccompProfile RuntimeDefault, the pods of Deployments in
// meshed namespaces that enforce Pod Security restricted (and baseline)
// are admitted by the API server after injection, each with
// istio-validation and no istio-init; the validation's arguments are
// accepted by Istio's own istio-iptables; the injected proxy gets its
// certificate from real istiod. The same namespaces with the mesh's CNI
// turned off refuse new pods, with the injector's message naming the
// setting. (No CNI node agent runs here: kwok runs no containers, and the
// test needs none.)
func TestRestrictedNamespacesWithCNI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	ctx := context.Background()
	mi := sample(t)
	mi.Spec.CNI.Enabled = true
	mi.Spec.Proxy.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	if err := e.k8s.Create(ctx, mi); err != nil {
		t.Fatal(err)
	}
	e.waitReady(t, mi.Name, installTimeout)

	// 50 pods: 30 in two restricted namespaces, 20 in a baseline one.
	namespaces := map[string]string{"shop": "restricted", "payments": "restricted", "legacy": "baseline"}
	deployments := []struct {
		namespace string
		replicas  int32
	}{{"shop", 5}, {"shop", 5}, {"shop", 5}, {"payments", 5}, {"payments", 5}, {"payments", 5}, {"legacy", 10}, {"legacy", 10}}
	for ns, level := range namespaces {
		e.ensureNamespace(t, ns, map[string]string{"istio-injection": "enabled", podSecurityEnforce: level})
	}
	for i, d := range deployments {
		if err := e.k8s.Create(ctx, restrictedApp(d.namespace, fmt.Sprintf("app-%d", i), d.replicas)); err != nil {
			t.Fatal(err)
		}
	}
	var pods []corev1.Pod
	eventually(t, 2*time.Minute, "50 pods admitted, injected with istio-validation, running", func() error {
		pods = pods[:0]
		for ns := range namespaces {
			var list corev1.PodList
			if err := e.k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return err
			}
			pods = append(pods, list.Items...)
		}
		if len(pods) != 50 {
			return fmt.Errorf("%d pods admitted; %s", len(pods), e.replicaFailures(t, namespaces))
		}
		for i := range pods {
			p := &pods[i]
			if !hasSidecar(p) || !hasContainer(p, inject.ValidationContainerName) || hasContainer(p, inject.InitContainerName) {
				return fmt.Errorf("pod %s/%s: init containers %v, containers %v: want istio-validation and istio-proxy, no istio-init",
					p.Namespace, p.Name, containerNames(p.Spec.InitContainers), containerNames(p.Spec.Containers))
			}
			if p.Status.PodIP == "" {
				return fmt.Errorf("pod %s/%s not scheduled yet", p.Namespace, p.Name)
			}
		}
		return nil
	})
	t.Logf("50 pods admitted with istio-validation under Pod Security restricted and baseline")

	// Istio's own istio-iptables takes the injected arguments (checking,
	// not applying, the redirection) and fails only for want of the rules
	// a CNI plugin would have set up on this host.
	bin, err := localcluster.IstioBinFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	validation := findInit(&pods[0], inject.ValidationContainerName)
	checkValidationArgs(t, bin, validation.Args)

	// The injected proxy still gets its identity from real istiod.
	e.startIstiod(t, render.DefaultRevision)
	shopPod := podIn(pods, "shop")
	if err := e.k8s.Create(ctx, service("shop", shopPod.Labels["app"])); err != nil {
		t.Fatal(err)
	}
	e.checkProxies(t, proxyWant{trustDomain: "cluster.local", strictMTLS: true}, shopPod)

	// Without CNI, the same namespaces refuse new pods: the injector says why.
	e.updateMeshInstall(t, mi.Name, func(m *meshv1alpha1.MeshInstall) { m.Spec.CNI.Enabled = false })
	e.waitReady(t, mi.Name, installTimeout)
	for ns, level := range namespaces {
		eventually(t, 30*time.Second, "a pod in "+ns+" refused without CNI", func() error {
			p := restrictedPod(ns, "after-cni-off")
			err := e.k8s.Create(ctx, p)
			if err == nil {
				_ = e.k8s.Delete(ctx, p)
				return fmt.Errorf("admitted, with init containers %v", containerNames(p.Spec.InitContainers))
			}
			for _, want := range []string{"meshkeeper cannot inject the Istio sidecar", `enforces Pod Security "` + level, "spec.cni.enabled is false"} {
				if !strings.Contains(err.Error(), want) {
					return fmt.Errorf("refused with %q, which does not say %q", err, want)
				}
			}
			return nil
		})
	}
	// A Deployment's pods are refused the same way: its ReplicaSet says so.
	if err := e.k8s.Create(ctx, restrictedApp("shop", "after-cni-off", 2)); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the new Deployment's ReplicaSet reports the injector's refusal", func() error {
		if got := e.replicaFailures(t, map[string]string{"shop": "restricted"}); !strings.Contains(got, "spec.cni.enabled is false") {
			return fmt.Errorf("replica failures: %s", got)
		}
		return nil
	})
	if n := len(e.podsOf(t, "shop", "after-cni-off")); n != 0 {
		t.Errorf("%d pods of the Deployment created after CNI was turned off were admitted", n)
	}
	body, err := e.operator.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if want := `meshkeeper_injection_requests_total{dry_run="false",reason="pod-security",result="refused"}`; !strings.Contains(body, want) {
		t.Errorf("the refusals are not counted: no %s in the metrics", want)
	}
}

// restrictedApp is app with a pod that passes Pod Security restricted as
// written: non-root, RuntimeDefault seccomp, no privilege escalation, no
// capabilities.
func restrictedApp(namespace, name string, replicas int32) *appsv1.Deployment {
	d := app(namespace, name, replicas)
	d.Spec.Template.Spec = restrictedPodSpec()
	return d
}

func restrictedPod(namespace, name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Spec: restrictedPodSpec()}
}

func restrictedPodSpec() corev1.PodSpec {
	spec := podSpec()
	spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(1000)),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	spec.Containers[0].SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	return spec
}

// replicaFailures are the ReplicaFailure conditions of the namespaces'
// ReplicaSets: why a Deployment's pods were not created.
func (e *env) replicaFailures(t *testing.T, namespaces map[string]string) string {
	t.Helper()
	var out []string
	for ns := range namespaces {
		var list appsv1.ReplicaSetList
		if err := e.k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, rs := range list.Items {
			for _, c := range rs.Status.Conditions {
				if c.Type == appsv1.ReplicaSetReplicaFailure && c.Status == corev1.ConditionTrue {
					out = append(out, fmt.Sprintf("%s/%s: %s", ns, rs.Name, c.Message))
				}
			}
		}
	}
	if len(out) == 0 {
		return "no ReplicaSet reports a failure"
	}
	return strings.Join(out, "; ")
}

// checkValidationArgs runs Istio's istio-iptables (pilot-agent) with the
// injected istio-validation arguments, plus --dry-run (touch no iptables)
// and a short probe timeout: it must take them (parse the flags, pass its
// configuration check, which comes first) and start the validation, which
// fails only because no CNI plugin redirected this host's traffic.
// The same with an argument Istio does not know must fail to parse, so the
// check can tell the two apart.
func checkValidationArgs(t *testing.T, bin string, args []string) {
	t.Helper()
	run := func(args []string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "pilot-agent"), append(args, "--dry-run", "--probe-timeout=1s")...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("running pilot-agent %v: %v", args, err)
		}
		return out.String(), cmd.ProcessState.ExitCode()
	}
	if len(args) == 0 || args[0] != "istio-iptables" || !strings.Contains(strings.Join(args, " "), "--run-validation --skip-rule-apply") {
		t.Fatalf("istio-validation args %q: want istio-iptables ... --run-validation --skip-rule-apply", args)
	}
	out, code := run(args)
	const validationFailed = 126 // istio-iptables' exit code for a failed validation
	if !strings.Contains(out, "Starting iptables validation") || !strings.Contains(out, "iptables validation failed") || code != validationFailed {
		t.Errorf("Istio's istio-iptables with the injected args %q exited %d, want it to start the validation and fail it (%d) for want of CNI rules:\n%s",
			args, code, validationFailed, out)
	}
	bad := append(append([]string(nil), args...), "--not-an-istio-flag")
	if out, code := run(bad); !strings.Contains(out, "unknown flag") || strings.Contains(out, "Starting iptables validation") {
		t.Errorf("an unknown argument was not refused (exit %d):\n%s", code, out)
	}
	t.Logf("Istio's istio-iptables took the injected arguments %q", args)
}

func hasContainer(p *corev1.Pod, name string) bool {
	return findInit(p, name) != nil || findIn(p.Spec.Containers, name) != nil
}

func findInit(p *corev1.Pod, name string) *corev1.Container {
	return findIn(p.Spec.InitContainers, name)
}

func findIn(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

func containerNames(cs []corev1.Container) []string {
	names := make([]string, len(cs))
	for i := range cs {
		names[i] = cs[i].Name
	}
	return names
}

// podIn returns a pod of the namespace among pods.
func podIn(pods []corev1.Pod, namespace string) *corev1.Pod {
	for i := range pods {
		if pods[i].Namespace == namespace {
			return &pods[i]
		}
	}
	return nil
}
