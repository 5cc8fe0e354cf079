package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/admission"
	"github.com/meshkeeper/meshkeeper/internal/ownership"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/rollout"
	"github.com/meshkeeper/meshkeeper/internal/version"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

func precheckFlags(fs *pflag.FlagSet) func(context.Context, connection, []string, io.Writer) error {
	name := fs.String("name", "", "The MeshInstall to judge; needed only when the cluster has more than one.")
	return func(ctx context.Context, conn connection, args []string, stdout io.Writer) error {
		if len(args) != 1 {
			return fmt.Errorf("precheck takes the version to check, e.g. precheck 1.32.0")
		}
		c, err := conn.client()
		if err != nil {
			return err
		}
		report, err := precheck(ctx, c, *name, args[0])
		if err != nil {
			return err
		}
		if _, err := io.WriteString(stdout, renderPrecheck(report)); err != nil {
			return err
		}
		if report.Refused != nil {
			return errRefused
		}
		return nil
	}
}

// precheckReport is what setting spec.version would do.
type precheckReport struct {
	MeshInstall string
	From, To    string
	// Refused is the refusal the validator (and the reconciler) would answer; nil when accepted.
	Refused error
	// Plan is the planner's first pass with the new version.
	Plan revision.Plan
	// Warnings are the validator's warnings of an accepted change.
	Warnings []string
	// Defaults are the istiod defaults that change, and whether spec.pilot.env pins each already.
	Defaults []defaultChange
	// Rollout is the data-plane rollout the new version would need, as
	// internal/rollout decides it with every meshed pod stale.
	Rollout meshv1alpha1.RolloutStatus
	// Mode is spec.dataPlane.rollout.mode.
	Mode meshv1alpha1.RolloutMode
	// Room is, for a canary, whether the nodes have room for a second istiod; nil otherwise.
	Room *room
}

type defaultChange struct {
	Env, Keeps string
	Pinned     bool
}

// precheck judges spec.version: to on the MeshInstall named (or the only
// one) with the operator's own rules: the validator's verdict and
// warnings, the planner's path, the rollout's classification of the
// workloads that would have to restart.
func precheck(ctx context.Context, c client.Reader, name, to string) (precheckReport, error) {
	mi, err := findMeshInstall(ctx, c, name)
	if err != nil {
		return precheckReport{}, err
	}
	updated := mi.DeepCopy()
	updated.Spec.Version = to
	r := precheckReport{MeshInstall: mi.Name, From: mi.Spec.Version, To: to, Mode: mi.Spec.DataPlane.Rollout.Mode}
	if r.Warnings, r.Refused = admission.ValidateUpdate(mi, updated, admission.Namespaces{}); r.Refused != nil {
		return r, nil
	}
	// The validator's other warning: meshed namespaces whose Pod Security
	// level the new version's injected pods cannot pass.
	var enforcing corev1.NamespaceList
	if err := c.List(ctx, &enforcing, client.HasLabels{psaapi.EnforceLevelLabel}); err != nil {
		return r, fmt.Errorf("listing namespaces that enforce Pod Security: %w", err)
	}
	r.Warnings = append(r.Warnings, admission.PodSecurityWarnings(updated, enforcing.Items)...)
	if r.Plan, r.Refused = admission.PlanUpdate(mi, updated); r.Refused != nil {
		return r, nil
	}
	r.Defaults = defaultChanges(mi, to)
	target, moved := upgradedRevision(r.Plan, to)
	if !moved {
		return r, nil
	}
	if r.Rollout, err = rolloutNeeded(ctx, c, mi, target); err != nil {
		return r, err
	}
	if r.Plan.Phase == revision.PhaseCanary {
		r.Room, err = roomForIstiod(ctx, c, mi)
	}
	return r, err
}

// defaultChanges are the istiod defaults an upgrade to `to` changes
// (version.BehaviourChanges, the table the validator warns from).
func defaultChanges(mi *meshv1alpha1.MeshInstall, to string) []defaultChange {
	from, errFrom := version.Parse(mi.Spec.Version)
	next, errTo := version.Parse(to)
	if errFrom != nil || errTo != nil {
		return nil
	}
	changes := version.BehaviourChanges(from, next)
	out := make([]defaultChange, 0, len(changes))
	for env, keeps := range changes {
		_, pinned := mi.Spec.Pilot.Env[env]
		out = append(out, defaultChange{Env: env, Keeps: keeps, Pinned: pinned})
	}
	slices.SortFunc(out, func(a, b defaultChange) int { return strings.Compare(a.Env, b.Env) })
	return out
}

// upgradedRevision is the revision that gets the new version: the canary,
// or the active revision upgraded in place; false when nothing changes.
func upgradedRevision(p revision.Plan, to string) (string, bool) {
	for _, r := range p.Revisions {
		if r.Version.String() == to && (r.Role == meshv1alpha1.RevisionCanary || p.Phase == revision.PhaseUpgradingInPlace) {
			return r.Name, true
		}
	}
	return "", false
}

// precheckHash stands for the injection configuration of the new version:
// no pod runs it yet, so every pod that moves to it is stale.
const precheckHash = "precheck"

// rolloutNeeded asks internal/rollout what it would do once every meshed
// pod must move to target: which workloads it would restart, and which it
// leaves to a person (Jobs, bare pods, opted out, a restart that would stop
// every pod, a PodDisruptionBudget it would breach). The pods that name
// another revision directly stay where they are.
func rolloutNeeded(ctx context.Context, c client.Reader, mi *meshv1alpha1.MeshInstall, target string) (meshv1alpha1.RolloutStatus, error) {
	in := rollout.Input{Now: time.Now(), Settings: mi.Spec.DataPlane.Rollout, Workloads: map[rollout.Key]rollout.Workload{}}
	cluster, err := readCluster(ctx, c, mi)
	if err != nil {
		return meshv1alpha1.RolloutStatus{}, err
	}
	optedOut := func(ns string, a map[string]string) bool {
		return a[meshv1alpha1.AnnotationRollout] == meshv1alpha1.RolloutDisabled || cluster.namespaces[ns].Annotations[meshv1alpha1.AnnotationRollout] == meshv1alpha1.RolloutDisabled
	}
	add := func(kind, ns, name string, a map[string]string, unrestartable string) {
		key := rollout.Key{Kind: kind, Namespace: ns, Name: name}
		in.Workloads[key] = rollout.Workload{Key: key, OptedOut: optedOut(ns, a), RolledOut: true, Unrestartable: unrestartable}
	}
	for i := range cluster.deployments {
		d := &cluster.deployments[i]
		add(rollout.Deployment, d.Namespace, d.Name, d.Annotations, rollout.DeploymentUnrestartable(d, cluster.budgets[d.Namespace]))
	}
	for i := range cluster.statefulSets {
		s := &cluster.statefulSets[i]
		add(rollout.StatefulSet, s.Namespace, s.Name, s.Annotations, rollout.StatefulSetUnrestartable(s, cluster.budgets[s.Namespace]))
	}
	for i := range cluster.daemonSets {
		d := &cluster.daemonSets[i]
		add(rollout.DaemonSet, d.Namespace, d.Name, d.Annotations, rollout.DaemonSetUnrestartable(d, cluster.budgets[d.Namespace]))
	}
	for i := range cluster.pods {
		if p, ok := podMovingTo(&cluster.pods[i], cluster, target); ok {
			in.Pods = append(in.Pods, p)
		}
	}
	return rollout.Decide(in).Status, nil
}

// podMovingTo is a running pod as the rollout reads it, with target as
// what it should run when the injector sends it there; false when it is
// not in the mesh.
func podMovingTo(pod *corev1.Pod, cluster clusterFacts, target string) (rollout.Pod, bool) {
	p := rollout.PodOf(pod)
	p.TargetReady = true
	path := cluster.matcher.Route(cluster.namespaces[pod.Namespace].Labels, webhookconfig.Pod{Namespace: pod.Namespace, Labels: pod.Labels, Annotations: pod.Annotations, HostNetwork: pod.Spec.HostNetwork})
	kind, name, ok := webhookconfig.ParseTargetPath(path)
	switch {
	case !ok:
		return p, false
	case kind == "rev" && name != target:
		p.Target = p.Current // pinned to a revision the upgrade does not change
	default:
		p.Target = rollout.Target(target, precheckHash)
	}
	return p, true
}

// clusterFacts are what precheck reads of the cluster.
type clusterFacts struct {
	matcher      *webhookconfig.Matcher
	namespaces   map[string]corev1.Namespace
	pods         []corev1.Pod
	deployments  []appsv1.Deployment
	statefulSets []appsv1.StatefulSet
	daemonSets   []appsv1.DaemonSet
	budgets      map[string][]policyv1.PodDisruptionBudget
}

// readCluster reads, once, what the rollout's judgement needs: the
// injector configuration the MeshInstall controls, namespaces, running
// pods, workloads and PodDisruptionBudgets.
func readCluster(ctx context.Context, c client.Reader, mi *meshv1alpha1.MeshInstall) (clusterFacts, error) {
	f := clusterFacts{namespaces: map[string]corev1.Namespace{}, budgets: map[string][]policyv1.PodDisruptionBudget{}}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := c.Get(ctx, client.ObjectKey{Name: webhookconfig.InjectorName}, mwc); client.IgnoreNotFound(err) != nil {
		return f, fmt.Errorf("reading the injector configuration: %w", err)
	} else if err == nil && ownership.ControlledBy(mwc, mi.UID) {
		m, err := webhookconfig.NewMatcher(mwc)
		if err != nil {
			return f, err
		}
		f.matcher = m
	}
	var namespaces corev1.NamespaceList
	var pods corev1.PodList
	var deployments appsv1.DeploymentList
	var statefulSets appsv1.StatefulSetList
	var daemonSets appsv1.DaemonSetList
	var budgets policyv1.PodDisruptionBudgetList
	for _, l := range []client.ObjectList{&namespaces, &pods, &deployments, &statefulSets, &daemonSets, &budgets} {
		if err := c.List(ctx, l); err != nil {
			return f, fmt.Errorf("listing %T: %w", l, err)
		}
	}
	for _, ns := range namespaces.Items {
		f.namespaces[ns.Name] = ns
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil {
			f.pods = append(f.pods, p)
		}
	}
	for _, b := range budgets.Items {
		f.budgets[b.Namespace] = append(f.budgets[b.Namespace], b)
	}
	f.deployments, f.statefulSets, f.daemonSets = deployments.Items, statefulSets.Items, daemonSets.Items
	return f, nil
}

// room is whether the nodes can take a second istiod of the same size.
type room struct {
	Replicas        int32
	CPU, Memory     resource.Quantity
	Fits            int32
	Nodes, Excluded int
}

// roomForIstiod estimates whether a canary istiod of the active one's size
// (the same spec.pilot renders both) fits on the nodes: per schedulable
// node whose taints its pods tolerate, what is allocatable less what the
// running pods request, in whole replicas. A rough answer (no affinity,
// no ports, no priorities), enough to warn before the canary waits on a
// Pending istiod.
func roomForIstiod(ctx context.Context, c client.Reader, mi *meshv1alpha1.MeshInstall) (*room, error) {
	active := mi.Status.ActiveRevision
	d := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: render.ControlPlaneNamespace(mi), Name: render.IstiodName(active)}, d); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if !ownership.ControlledBy(d, mi.UID) {
		return nil, nil
	}
	r := &room{Replicas: ptr.Deref(d.Spec.Replicas, 1)}
	for _, ctr := range d.Spec.Template.Spec.Containers {
		r.CPU.Add(ctr.Resources.Requests[corev1.ResourceCPU])
		r.Memory.Add(ctr.Resources.Requests[corev1.ResourceMemory])
	}
	var nodes corev1.NodeList
	var pods corev1.PodList
	if err := c.List(ctx, &nodes); err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	if err := c.List(ctx, &pods); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	requested := map[string]corev1.ResourceList{}
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, ctr := range p.Spec.Containers {
			addTo(requested, p.Spec.NodeName, ctr.Resources.Requests)
		}
	}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if !schedulable(n, d.Spec.Template.Spec.Tolerations) {
			r.Excluded++
			continue
		}
		r.Nodes++
		r.Fits += fitsOn(n.Status.Allocatable, requested[n.Name], r.CPU, r.Memory)
	}
	return r, nil
}

func addTo(m map[string]corev1.ResourceList, node string, req corev1.ResourceList) {
	if m[node] == nil {
		m[node] = corev1.ResourceList{}
	}
	for name, q := range req {
		sum := m[node][name]
		sum.Add(q)
		m[node][name] = sum
	}
}

// fitsOn is how many replicas asking cpu and memory fit in what is
// allocatable less what is requested (a replica asking nothing: one).
func fitsOn(allocatable, requested corev1.ResourceList, cpu, memory resource.Quantity) int32 {
	fits := int64(-1)
	for name, want := range map[corev1.ResourceName]resource.Quantity{corev1.ResourceCPU: cpu, corev1.ResourceMemory: memory} {
		if want.IsZero() {
			continue
		}
		free := allocatable[name]
		free.Sub(requested[name])
		n := max(free.MilliValue()/want.MilliValue(), 0)
		if fits < 0 || n < fits {
			fits = n
		}
	}
	if fits < 0 {
		return 1
	}
	return int32(min(fits, 1000))
}

// schedulable says whether a node takes new pods with these tolerations:
// not cordoned, Ready, and no NoSchedule or NoExecute taint left untolerated.
func schedulable(n *corev1.Node, tolerations []corev1.Toleration) bool {
	if n.Spec.Unschedulable {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
			return false
		}
	}
	for i := range n.Spec.Taints {
		t := &n.Spec.Taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		tolerated := false
		for j := range tolerations {
			if tolerations[j].ToleratesTaint(klog.Background(), t, false) {
				tolerated = true
			}
		}
		if !tolerated {
			return false
		}
	}
	return true
}

// refusalReason is the condition reason a refusal carries, when it has one.
func refusalReason(err error) string {
	var r *refusal.Error
	if errors.As(err, &r) {
		return r.Reason
	}
	var s *version.SkewError
	if errors.As(err, &s) {
		return s.Rule
	}
	return ""
}
