package meshinstall

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/rollout"
)

// RBAC: a revision is kept while a CronJob or an unfinished Job would still
// have new pods injected by it; both are only read (never restarted).
// +kubebuilder:rbac:groups=batch,resources=cronjobs;jobs,verbs=get;list;watch

// Kinds of the workloads that select a revision but are never restarted.
const (
	cronJob = "CronJob"
	job     = "Job"
)

// TrimJob is the cache transform for CronJobs and Jobs: they are read only
// for what their pod template says about injection (istio.io/rev,
// sidecar.istio.io/inject) and, for a Job, whether it has finished and so
// starts no pod any more. Nothing else of them is held.
func TrimJob(in any) (any, error) {
	obj, ok := in.(client.Object)
	if !ok {
		return in, nil
	}
	meta := metav1.ObjectMeta{Name: obj.GetName(), Namespace: obj.GetNamespace(), UID: obj.GetUID(),
		ResourceVersion: obj.GetResourceVersion(), DeletionTimestamp: obj.GetDeletionTimestamp()}
	template := func(t corev1.PodTemplateSpec) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: keep(t.Labels, keptTemplateLabels)}}
	}
	switch o := in.(type) {
	case *batchv1.CronJob:
		return &batchv1.CronJob{TypeMeta: o.TypeMeta, ObjectMeta: meta, Spec: batchv1.CronJobSpec{
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template(o.Spec.JobTemplate.Spec.Template)}}}}, nil
	case *batchv1.Job:
		out := &batchv1.Job{TypeMeta: o.TypeMeta, ObjectMeta: meta, Spec: batchv1.JobSpec{Template: template(o.Spec.Template)}}
		if jobFinished(o) {
			out.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
		}
		return out, nil
	}
	return in, nil
}

// jobFinished says whether a Job has completed or failed: it creates no
// pod any more.
func jobFinished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// jobTemplates reads, from the trimmed cache, the CronJobs and the
// unfinished Jobs whose pod template names a revision: between two runs a
// CronJob has no pod, yet its next run is injected by the revision its
// template names.
func (r *Reconciler) jobTemplates(ctx context.Context) ([]templateSelection, error) {
	var out []templateSelection
	var cronJobs batchv1.CronJobList
	if err := r.List(ctx, &cronJobs, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing CronJobs: %w", err)
	}
	for i := range cronJobs.Items {
		c := &cronJobs.Items[i]
		out = appendSelection(out, rollout.Key{Kind: cronJob, Namespace: c.Namespace, Name: c.Name}, c.Spec.JobTemplate.Spec.Template.Labels)
	}
	var jobs batchv1.JobList
	if err := r.List(ctx, &jobs, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing Jobs: %w", err)
	}
	for i := range jobs.Items {
		if j := &jobs.Items[i]; !jobFinished(j) {
			out = appendSelection(out, rollout.Key{Kind: job, Namespace: j.Namespace, Name: j.Name}, j.Spec.Template.Labels)
		}
	}
	return out, nil
}
