package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"istio.io/api/annotation"
	"istio.io/api/label"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/ownership"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

func checkInjectFlags(fs *pflag.FlagSet) func(context.Context, connection, []string, io.Writer) error {
	selector := fs.StringP("selector", "l", "", "Judge the pods of the namespace with these labels; when none runs, a new pod with exactly these labels (key=value,…).")
	return func(ctx context.Context, conn connection, args []string, stdout io.Writer) error {
		if (len(args) == 1) == (*selector != "") || len(args) > 1 {
			return fmt.Errorf("check-inject takes either one pod name or -l SELECTOR, got %d names and selector %q", len(args), *selector)
		}
		namespace, err := conn.namespaceOrContext()
		if err != nil {
			return err
		}
		c, err := conn.client()
		if err != nil {
			return err
		}
		in, err := readInjection(ctx, c, namespace)
		if err != nil {
			return err
		}
		pods, err := podsToJudge(ctx, c, namespace, args, *selector)
		if err != nil {
			return err
		}
		for i, pod := range pods {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			fmt.Fprint(stdout, renderInjectAnswer(explainPod(in, pod)))
		}
		return nil
	}
}

// injection is what the injector decides with: its configuration (the
// one the MeshInstall controls), where the tags point, and the namespace's labels.
type injection struct {
	matcher  *webhookconfig.Matcher
	routing  *revision.Routing
	nsLabels map[string]string
}

// readInjection reads the injector configuration and the routing the
// MeshInstall controls, and the namespace's labels.
func readInjection(ctx context.Context, c client.Reader, namespace string) (injection, error) {
	mi, err := findMeshInstall(ctx, c, "")
	if err != nil {
		return injection{}, err
	}
	var in injection
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	switch err := c.Get(ctx, client.ObjectKey{Name: webhookconfig.InjectorName}, mwc); {
	case apierrors.IsNotFound(err):
		return in, fmt.Errorf("no MutatingWebhookConfiguration %s: meshkeeper injects nothing yet", webhookconfig.InjectorName)
	case err != nil:
		return in, fmt.Errorf("reading the injector configuration: %w", err)
	case !ownership.ControlledBy(mwc, mi.UID):
		return in, fmt.Errorf("MutatingWebhookConfiguration %s is not MeshInstall %s's: it is not meshkeeper's injector", webhookconfig.InjectorName, mi.Name)
	}
	if in.matcher, err = webhookconfig.NewMatcher(mwc); err != nil {
		return in, fmt.Errorf("reading %s: %w", webhookconfig.InjectorName, err)
	}
	cm := &corev1.ConfigMap{}
	switch err := c.Get(ctx, client.ObjectKey{Namespace: render.ControlPlaneNamespace(mi), Name: render.RoutingConfigMapName}, cm); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return in, fmt.Errorf("reading where the tags point: %w", err)
	case ownership.ControlledBy(cm, mi.UID):
		if r, err := revision.RoutingFromData(cm.Data); err == nil {
			in.routing = &r
		}
	}
	ns := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		return in, fmt.Errorf("reading namespace %s: %w", namespace, err)
	}
	in.nsLabels = ns.Labels
	return in, nil
}

// podsToJudge is the pod named, or the pods the selector selects, or, when
// it selects none, a pod to be created with the selector's labels.
func podsToJudge(ctx context.Context, c client.Reader, namespace string, args []string, selector string) ([]*corev1.Pod, error) {
	if len(args) == 1 {
		pod := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: args[0]}, pod); err != nil {
			return nil, fmt.Errorf("reading pod %s/%s: %w", namespace, args[0], err)
		}
		return []*corev1.Pod{pod}, nil
	}
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, fmt.Errorf("-l: %w", err)
	}
	var list corev1.PodList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("listing pods in %s: %w", namespace, err)
	}
	if len(list.Items) > 0 {
		out := make([]*corev1.Pod, len(list.Items))
		for i := range list.Items {
			out[i] = &list.Items[i]
		}
		return out, nil
	}
	set, err := labels.ConvertSelectorToLabelsMap(selector)
	if err != nil {
		return nil, fmt.Errorf("no pod in %s matches -l %s, and it is not key=value pairs a new pod could carry: %w", namespace, selector, err)
	}
	return []*corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Labels: set}}}, nil
}

// injectAnswer is check-inject's answer for one pod.
type injectAnswer struct {
	// Pod names it ("pod ns/name (Deployment ns/name)", or a pod to be created).
	Pod   string
	Match webhookconfig.Match
	// Revision is the revision it would get, and Why how it was chosen.
	Revision, Why string
	// NotInjected explains, when no entry selects it, why not.
	NotInjected string
	// Running is the revision stamped on it now; "" when it has no sidecar.
	Running string
	// Sidecar is true when it carries a sidecar now (meshkeeper's or another injector's).
	Sidecar bool
	// Exists is false for a pod to be created (-l matching no pod).
	Exists bool
}

// explainPod asks the injector's configuration where a pod would go were it
// created now (webhookconfig's Matcher, as the operator's inventory does)
// and, for a tag, which revision the routing sends its workload to.
func explainPod(in injection, pod *corev1.Pod) injectAnswer {
	w := inject.WorkloadOf(pod, pod.Namespace)
	a := injectAnswer{Pod: "a new pod in " + pod.Namespace + " labelled " + labels.Set(pod.Labels).String()}
	if a.Exists = pod.Name != ""; a.Exists {
		a.Pod = "pod " + pod.Namespace + "/" + pod.Name
		if w.Kind != "Pod" {
			a.Pod += " (" + w.Kind + " " + w.Namespace + "/" + w.Name + ")"
		}
	}
	_, a.Sidecar = pod.Annotations[annotation.SidecarStatus.Name]
	a.Running = pod.Annotations[inject.AnnotationRevision]
	a.Match = in.matcher.Explain(in.nsLabels, webhookconfig.Pod{Namespace: pod.Namespace, Labels: pod.Labels, Annotations: pod.Annotations, HostNetwork: pod.Spec.HostNetwork})
	kind, name, ok := webhookconfig.ParseTargetPath(a.Match.Path)
	switch {
	case a.Match.Excluded != "":
		a.NotInjected = excludedWords(a.Match.Excluded, pod.Namespace)
	case !ok:
		a.NotInjected = noEntryWords(in, pod)
	case kind == "rev":
		a.Revision, a.Why = name, "it names the revision itself; canaries and promotions never move it"
	case in.routing == nil:
		a.Why = "tag " + name + " points at no revision yet (the first istiod is not available)"
	default:
		a.Revision, a.Why = tagTarget(in.routing, name, w, pod.Name != "")
	}
	return a
}

// tagTarget is the revision a tag sends a workload to, and why, as the
// routing decides it (revision.Routing.Target).
func tagTarget(r *revision.Routing, tag string, w inject.Workload, known bool) (string, string) {
	if r.Canary == "" {
		return r.Active, "tag " + tag + " points at the stable revision " + r.Active
	}
	if !known {
		return r.Active + " or " + r.Canary, fmt.Sprintf("tag %s: a canary (%s) takes %d%% of workloads, chosen by a hash of the workload's namespace and name", tag, r.Canary, r.Weight)
	}
	bucket := revision.Bucket(w.Namespace, w.Name)
	rev := r.Target(w.Namespace, w.Name)
	side := "at or above"
	if rev == r.Canary {
		side = "under"
	}
	return rev, fmt.Sprintf("tag %s, during the canary of %s at %d%%: %s %s/%s hashes to %d, %s the weight", tag, r.Canary, r.Weight, w.Kind, w.Namespace, w.Name, bucket, side)
}

func excludedWords(reason, namespace string) string {
	switch reason {
	case webhookconfig.ExcludedSystemNamespace:
		return "namespace " + namespace + " is Kubernetes' own; it is never injected"
	case webhookconfig.ExcludedOptedOut:
		return "it opts out with " + label.SidecarInject.Name + "=false"
	case webhookconfig.ExcludedHostNetwork:
		return "it runs on the host network; Istio never injects such pods"
	}
	return reason
}

// noEntryWords says why no entry selects a pod: a label naming a revision
// or tag that does not exist, an opted-out namespace, or nothing asking for
// a sidecar.
func noEntryWords(in injection, pod *corev1.Pod) string {
	targets := map[string]bool{}
	for _, p := range in.matcher.Paths() {
		if _, name, ok := webhookconfig.ParseTargetPath(p); ok {
			targets[name] = true
		}
	}
	known := strings.Join(slices.Sorted(maps.Keys(targets)), ", ")
	rev := label.IoIstioRev.Name
	switch {
	case in.nsLabels[webhookconfig.InjectionLabel] == "disabled":
		return "namespace " + pod.Namespace + " opts out with " + webhookconfig.InjectionLabel + "=disabled"
	case in.nsLabels[rev] != "" && !targets[in.nsLabels[rev]]:
		return fmt.Sprintf("namespace %s is labelled %s=%s, which names no revision or tag of this mesh (it has %s)", pod.Namespace, rev, in.nsLabels[rev], known)
	case pod.Labels[rev] != "" && !targets[pod.Labels[rev]]:
		return fmt.Sprintf("its label %s=%s names no revision or tag of this mesh (it has %s)", rev, pod.Labels[rev], known)
	}
	return fmt.Sprintf("nothing asks for a sidecar: neither its namespace (%s=enabled or %s=<revision|tag>) nor the pod (%s=true or %s=<revision|tag>)",
		webhookconfig.InjectionLabel, rev, label.SidecarInject.Name, rev)
}

func renderInjectAnswer(a injectAnswer) string {
	var b strings.Builder
	fmt.Fprintln(&b, a.Pod)
	if a.NotInjected != "" {
		fmt.Fprintf(&b, "  not injected: %s\n", a.NotInjected)
	} else {
		fmt.Fprintf(&b, "  injector entry: %s (%s)\n", a.Match.Entry, a.Match.Path)
		if why := webhookconfig.SelectedBecause(a.Match.Entry); why != "" {
			fmt.Fprintf(&b, "  because: %s\n", why)
		}
		fmt.Fprintf(&b, "  revision: %s: %s\n", orNone(a.Revision), a.Why)
	}
	switch {
	case a.Running != "" && a.Running != a.Revision && a.Revision != "":
		fmt.Fprintf(&b, "  runs revision %s now; restarted, it would get %s\n", a.Running, a.Revision)
	case a.Running != "":
		fmt.Fprintf(&b, "  runs revision %s now\n", a.Running)
	case a.Sidecar:
		fmt.Fprintln(&b, "  carries a sidecar meshkeeper did not inject")
	case a.Revision != "" && a.Exists:
		fmt.Fprintln(&b, "  runs without a sidecar now; restarted, it would get one")
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
