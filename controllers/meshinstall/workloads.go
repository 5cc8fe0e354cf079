package meshinstall

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"istio.io/api/label"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/migration"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/rollout"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

// RBAC: the data plane rollout reads users' Deployments, StatefulSets and
// DaemonSets and restarts them with a merge patch of their pod template's
// annotations (Deployments are in controller.go's rules already).
// +kubebuilder:rbac:groups=apps,resources=statefulsets;daemonsets,verbs=get;list;watch;patch

// keptWorkloadAnnotations are the only workload and template annotations the rollout reads.
var keptWorkloadAnnotations = []string{meshv1alpha1.AnnotationRollout, meshv1alpha1.AnnotationRestart, meshv1alpha1.AnnotationRestartedFor, meshv1alpha1.AnnotationRestartedAt}

// keptTemplateLabels are the pod template labels that say which revision
// the workload's new pods get (see revisionSelections). Users' workloads
// keep all their template labels, up to maxCachedLabelBytes, for the
// PodDisruptionBudgets that select them (see rollout.DeploymentUnrestartable).
var keptTemplateLabels = []string{label.IoIstioRev.Name, label.SidecarInject.Name}

// TrimWorkload is the cache transform for Deployments, StatefulSets and
// DaemonSets. meshkeeper's own (istiod, gateways: labelled and controlled
// by a MeshInstall) are kept whole, less their managed fields: the
// reconciler compares them with what it applies. Every other workload,
// labelled or not, is kept as the rollout reads it: identity, the rollout
// annotations, replicas, update strategy, rollout status and its pod
// template's labels (bounded, see boundedLabels); never its own labels or
// pod spec.
func TrimWorkload(in any) (any, error) {
	obj, ok := in.(client.Object)
	if !ok {
		return in, nil
	}
	obj.SetManagedFields(nil)
	if controlledByAMeshInstall(obj) {
		return obj, nil
	}
	meta := metav1.ObjectMeta{
		Name: obj.GetName(), Namespace: obj.GetNamespace(), UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion(),
		Generation: obj.GetGeneration(), DeletionTimestamp: obj.GetDeletionTimestamp(),
		Annotations: keepAnnotations(obj.GetAnnotations()),
	}
	template := func(t corev1.PodTemplateSpec) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{
			Labels: boundedLabels(t.Labels), Annotations: keepAnnotations(t.Annotations)}}
	}
	switch o := in.(type) {
	case *appsv1.Deployment:
		out := &appsv1.Deployment{TypeMeta: o.TypeMeta, ObjectMeta: meta,
			Spec: appsv1.DeploymentSpec{Replicas: o.Spec.Replicas, Paused: o.Spec.Paused, Strategy: o.Spec.Strategy, Template: template(o.Spec.Template)}, Status: o.Status}
		out.Status.Conditions = slices.DeleteFunc(slices.Clone(o.Status.Conditions), func(c appsv1.DeploymentCondition) bool {
			return c.Type != appsv1.DeploymentProgressing && c.Type != appsv1.DeploymentAvailable && c.Type != appsv1.DeploymentReplicaFailure
		})
		return out, nil
	case *appsv1.StatefulSet:
		return &appsv1.StatefulSet{TypeMeta: o.TypeMeta, ObjectMeta: meta,
			Spec:   appsv1.StatefulSetSpec{Replicas: o.Spec.Replicas, UpdateStrategy: o.Spec.UpdateStrategy, Template: template(o.Spec.Template)},
			Status: appsv1.StatefulSetStatus{ObservedGeneration: o.Status.ObservedGeneration, Replicas: o.Status.Replicas, ReadyReplicas: o.Status.ReadyReplicas, UpdatedReplicas: o.Status.UpdatedReplicas, AvailableReplicas: o.Status.AvailableReplicas, CurrentRevision: o.Status.CurrentRevision, UpdateRevision: o.Status.UpdateRevision}}, nil
	case *appsv1.DaemonSet:
		return &appsv1.DaemonSet{TypeMeta: o.TypeMeta, ObjectMeta: meta,
			Spec:   appsv1.DaemonSetSpec{UpdateStrategy: o.Spec.UpdateStrategy, Template: template(o.Spec.Template)},
			Status: appsv1.DaemonSetStatus{ObservedGeneration: o.Status.ObservedGeneration, DesiredNumberScheduled: o.Status.DesiredNumberScheduled, UpdatedNumberScheduled: o.Status.UpdatedNumberScheduled, NumberAvailable: o.Status.NumberAvailable, NumberReady: o.Status.NumberReady}}, nil
	}
	return in, nil
}

func keepAnnotations(a map[string]string) map[string]string { return keep(a, keptWorkloadAnnotations) }

// controlledByAMeshInstall says whether a workload is meshkeeper's: its
// label, and a MeshInstall as its controller (the label alone anyone who
// may create a Deployment can write).
func controlledByAMeshInstall(o client.Object) bool {
	ref := metav1.GetControllerOfNoCopy(o)
	return o.GetLabels()[render.LabelManagedBy] == render.ManagedBy && ref != nil &&
		ref.Kind == "MeshInstall" && strings.HasPrefix(ref.APIVersion, meshv1alpha1.GroupVersion.Group+"/")
}

// workloadPod is what observe keeps of a running pod for the rollout.
type workloadPod struct {
	pod   webhookconfig.Pod
	owner rollout.Key
	// current is what it runs (<revision>/<hash>), "" without meshkeeper's stamp.
	current string
	// uninjected is true when it has no sidecar at all.
	uninjected bool
}

func workloadPodOf(p *corev1.Pod) workloadPod {
	rp := rollout.PodOf(p)
	return workloadPod{
		pod:   webhookconfig.Pod{Namespace: p.Namespace, Labels: p.Labels, Annotations: p.Annotations, HostNetwork: p.Spec.HostNetwork},
		owner: rp.Owner, current: rp.Current, uninjected: rp.Uninjected,
	}
}

// observeWorkloads reads the users' Deployments, StatefulSets and DaemonSets
// from the trimmed cache, and what CronJobs and Jobs select.
func (r *Reconciler) observeWorkloads(ctx context.Context, obs *observation) error {
	obs.workloads = map[rollout.Key]rollout.Workload{}
	obs.migratedTemplates = map[rollout.Key]bool{}
	var templates []templateSelection
	defer func() {
		// What still selects each revision, so that none is pruned under it.
		selections := revisionSelections(obs.namespaces, templates, obs.Routing, obs.controlledNamespaces)
		for name, rev := range obs.Revisions {
			rev.SelectedBy = selections[name]
			obs.Revisions[name] = rev
		}
	}()
	optedOut := func(ns string, a map[string]string) bool {
		return a[meshv1alpha1.AnnotationRollout] == meshv1alpha1.RolloutDisabled || obs.namespacesOptedOut[ns]
	}
	add := func(kind string, o client.Object, t corev1.PodTemplateSpec, rolledOut bool, reason, unrestartable string) {
		w := rollout.Workload{
			Key:           rollout.Key{Kind: kind, Namespace: o.GetNamespace(), Name: o.GetName()},
			OptedOut:      optedOut(o.GetNamespace(), o.GetAnnotations()),
			RestartedFor:  t.Annotations[meshv1alpha1.AnnotationRestartedFor],
			RolledOut:     rolledOut,
			Reason:        reason,
			Unrestartable: unrestartable,
		}
		if at, err := time.Parse(time.RFC3339, t.Annotations[meshv1alpha1.AnnotationRestartedAt]); err == nil {
			w.RestartedAt = at
		}
		// A restart this process made may not be in the cache yet: it is not made twice.
		if rs, ok := r.recentRestart(w.Key, w.RestartedFor, w.RestartedAt); ok {
			w.RestartedFor, w.RestartedAt, w.RolledOut = rs.target, rs.at, false
		}
		obs.workloads[w.Key] = w
		if t.Labels[migration.LabelMigrated] == "true" {
			obs.migratedTemplates[w.Key] = true
		}
		if !controlledByAMeshInstall(o) {
			templates = appendSelection(templates, w.Key, t.Labels)
		}
	}
	budgets, err := r.budgetsByNamespace(ctx)
	if err != nil {
		return err
	}
	var deployments appsv1.DeploymentList
	if err := r.List(ctx, &deployments, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing Deployments: %w", err)
	}
	for i := range deployments.Items {
		d := &deployments.Items[i]
		reason := ""
		if !rolledOut(d) {
			reason = rolloutOf(d).Reason
			for _, c := range d.Status.Conditions {
				if c.Type == appsv1.DeploymentProgressing && c.Message != "" {
					reason += "; " + c.Message
				}
			}
		}
		add(rollout.Deployment, d, d.Spec.Template, rolledOut(d), reason, rollout.DeploymentUnrestartable(d, budgets[d.Namespace]))
	}
	var statefulSets appsv1.StatefulSetList
	if err := r.List(ctx, &statefulSets, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing StatefulSets: %w", err)
	}
	for i := range statefulSets.Items {
		s := &statefulSets.Items[i]
		want := int32(1)
		if s.Spec.Replicas != nil {
			want = *s.Spec.Replicas
		}
		st := s.Status
		done := st.ObservedGeneration >= s.Generation && st.UpdatedReplicas >= want && st.ReadyReplicas >= want &&
			(st.UpdateRevision == "" || st.CurrentRevision == st.UpdateRevision)
		add(rollout.StatefulSet, s, s.Spec.Template, done, fmt.Sprintf("%d of %d replicas updated, %d ready", st.UpdatedReplicas, want, st.ReadyReplicas), rollout.StatefulSetUnrestartable(s, budgets[s.Namespace]))
	}
	var daemonSets appsv1.DaemonSetList
	if err := r.List(ctx, &daemonSets, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing DaemonSets: %w", err)
	}
	for i := range daemonSets.Items {
		d := &daemonSets.Items[i]
		st := d.Status
		done := st.ObservedGeneration >= d.Generation && st.UpdatedNumberScheduled >= st.DesiredNumberScheduled && st.NumberAvailable >= st.DesiredNumberScheduled
		add(rollout.DaemonSet, d, d.Spec.Template, done, fmt.Sprintf("%d of %d pods updated, %d available", st.UpdatedNumberScheduled, st.DesiredNumberScheduled, st.NumberAvailable), rollout.DaemonSetUnrestartable(d, budgets[d.Namespace]))
	}
	jobs, err := r.jobTemplates(ctx)
	templates = append(templates, jobs...)
	return err
}

// rolloutInput says, for each running pod, what it runs and what it
// should run given where the tags point (routing) and each revision's
// current configuration.
func rolloutInput(mi *meshv1alpha1.MeshInstall, obs *observation, routing *revision.Routing) rollout.Input {
	in := rollout.Input{Now: obs.Now, Settings: mi.Spec.DataPlane.Rollout, Workloads: obs.workloads}
	if mi.Status.DataPlane != nil {
		in.Previous = mi.Status.DataPlane.Rollout
	}
	if routing != nil && routing.Canary != "" && routing.Weight > 0 {
		in.Canary = routing.Canary
	}
	// A routing other than the one observed is this pass's own write.
	in.RoutingJustWritten = !routing.Equal(obs.Routing)
	for _, wp := range obs.workloadPods {
		p := rollout.Pod{Owner: wp.owner, Current: wp.current, Uninjected: wp.uninjected}
		if kind, name, ok := webhookconfig.ParseTargetPath(obs.matcher.Route(obs.namespaces[wp.pod.Namespace], wp.pod)); ok {
			rev := name
			if kind == "tag" {
				if routing == nil {
					continue // nothing is routed yet
				}
				// As the injector assigns a workload: by its namespace and name.
				rev = routing.Target(wp.owner.Namespace, wp.owner.Name)
			}
			if hash, ok := obs.configHash[rev]; ok && hash != "" {
				p.Target = rollout.Target(rev, hash)
				o := obs.Revisions[rev]
				p.TargetReady = o.Istiod != nil && o.Istiod.Serving
			}
		}
		in.Pods = append(in.Pods, p)
	}
	return in
}

// workloadObject is an empty object of a workload's kind, named as it is,
// for a patch of its pod template; false for a kind no patch restarts.
func workloadObject(k rollout.Key) (client.Object, bool) {
	var obj client.Object
	switch k.Kind {
	case rollout.Deployment:
		obj = &appsv1.Deployment{}
	case rollout.StatefulSet:
		obj = &appsv1.StatefulSet{}
	case rollout.DaemonSet:
		obj = &appsv1.DaemonSet{}
	default:
		return nil, false
	}
	obj.SetNamespace(k.Namespace)
	obj.SetName(k.Name)
	return obj, true
}

// restart does what kubectl rollout restart does, recording the target.
func (r *Reconciler) restart(ctx context.Context, rs rollout.Restart, now time.Time) error {
	obj, ok := workloadObject(rs.Key)
	if !ok {
		return fmt.Errorf("%s cannot be restarted", rs.Key)
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{
			meshv1alpha1.AnnotationRestartedAt:  now.Format(time.RFC3339),
			meshv1alpha1.AnnotationRestartedFor: rs.Target,
		}}}}})
	if err != nil {
		return err
	}
	if err := r.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("restarting %s: %w", rs.Key, err)
	}
	r.restarts.Store(rs.Key, recentRestart{target: rs.Target, at: now.Truncate(time.Second)})
	log.FromContext(ctx).Info("restarted workload", "workload", rs.Key.String(), "target", rs.Target)
	return nil
}

// recentRestart is a restart this process made, kept until the cache shows it.
type recentRestart struct {
	target string
	at     time.Time
}

// recentRestartTTL bounds how long a restart is remembered for a cache that lags.
const recentRestartTTL = time.Minute

// recentRestart returns the restart made for a workload when the cache does
// not show it yet (cachedFor and cachedAt are what its template carries).
func (r *Reconciler) recentRestart(key rollout.Key, cachedFor string, cachedAt time.Time) (recentRestart, bool) {
	v, ok := r.restarts.Load(key)
	if !ok {
		return recentRestart{}, false
	}
	rs := v.(recentRestart)
	if (rs.target == cachedFor && !cachedAt.Before(rs.at)) || time.Since(rs.at) > recentRestartTTL {
		r.restarts.Delete(key)
		return recentRestart{}, false
	}
	return rs, true
}

// restartWorkloads starts the restarts plan decided (rolloutFor),
// emitting an event per workload started, finished or failed.
func (r *Reconciler) restartWorkloads(ctx context.Context, mi *meshv1alpha1.MeshInstall, obs *observation, plan rollout.Plan) (rollout.Plan, error) {
	var errs []string
	for _, rs := range plan.Restart {
		if err := r.restart(ctx, rs, obs.Now); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		r.event(mi, corev1.EventTypeNormal, "WorkloadRestarted", "Restart",
			fmt.Sprintf("restarted %s onto revision %s", rs.Key, rollout.RevisionOf(rs.Target)))
	}
	for key, took := range plan.Finished {
		rolloutDuration.Observe(took.Seconds())
		r.event(mi, corev1.EventTypeNormal, "WorkloadRolledOut", "Restart", fmt.Sprintf("%s runs its new proxy (%s)", key, took.Round(time.Second)))
	}
	var previous string
	if mi.Status.DataPlane != nil && mi.Status.DataPlane.Rollout != nil {
		previous = mi.Status.DataPlane.Rollout.LastError
	}
	if e := plan.Status.LastError; e != "" && e != previous {
		r.event(mi, corev1.EventTypeWarning, meshv1alpha1.ReasonRolloutFailed, "Restart", e+"; no further workload is restarted until it is fixed or opted out")
	}
	if len(errs) > 0 {
		plan.Status.LastError = strings.Join(errs, "; ")
		return plan, fmt.Errorf("%s", plan.Status.LastError)
	}
	return plan, nil
}

// workloadChanged reports whether an update changed what the rollout reads
// of a workload (trimmed in the cache, so the objects hold only that).
func workloadChanged(a, b client.Object) bool {
	ca, cb := a.DeepCopyObject().(client.Object), b.DeepCopyObject().(client.Object)
	ca.SetResourceVersion("")
	cb.SetResourceVersion("")
	ca.SetManagedFields(nil)
	cb.SetManagedFields(nil)
	return !reflect.DeepEqual(ca, cb)
}
