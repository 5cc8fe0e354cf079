package meshinstall

import (
	"maps"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

func TestTrimJobKeepsWhatSelectsARevision(t *testing.T) {
	want := map[string]string{"istio.io/rev": "1-32-0"}
	cj, err := TrimJob(appCronJob())
	if err != nil {
		t.Fatal(err)
	}
	if got := cj.(*batchv1.CronJob).Spec.JobTemplate.Spec.Template.Labels; len(got) != 0 {
		// appLabels carries the pod stamp, not istio.io/rev: nothing selects.
		t.Errorf("CronJob template labels kept: %v", got)
	}
	running := appJob()
	running.Spec.Template.Labels = map[string]string{"istio.io/rev": "1-32-0", "app": "report"}
	j, err := TrimJob(running)
	if err != nil {
		t.Fatal(err)
	}
	if got := j.(*batchv1.Job); !maps.Equal(got.Spec.Template.Labels, want) || jobFinished(got) || got.Spec.Template.Spec.Containers != nil {
		t.Errorf("running Job trimmed to %+v", got)
	}
	done := appJob()
	done.Status.Conditions = append(done.Status.Conditions, batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Message: "done"})
	j, err = TrimJob(done)
	if err != nil {
		t.Fatal(err)
	}
	if !jobFinished(j.(*batchv1.Job)) {
		t.Errorf("a completed Job, trimmed, is no longer finished: %+v", j)
	}
}
