package meshinstall

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

func (r *Reconciler) event(mi *meshv1alpha1.MeshInstall, eventType, reason, action, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(mi, nil, eventType, reason, action, "%s", note)
	}
}

// recordTransitions emits Events when a condition or the active revision
// changes; a pass that changes nothing emits nothing.
func (r *Reconciler) recordTransitions(before, after *meshv1alpha1.MeshInstall) {
	for _, t := range []string{meshv1alpha1.ConditionReady, meshv1alpha1.ConditionStalled, meshv1alpha1.ConditionUpgradeInProgress, meshv1alpha1.ConditionCertificateAuthorityReady} {
		old := meta.FindStatusCondition(before.Status.Conditions, t)
		cur := meta.FindStatusCondition(after.Status.Conditions, t)
		if cur == nil || (old != nil && old.Status == cur.Status && old.Reason == cur.Reason &&
			// A new set of objects failing is news too.
			(cur.Reason != meshv1alpha1.ReasonApplyFailed || old.Message == cur.Message)) {
			continue
		}
		eventType := corev1.EventTypeNormal
		if (t == meshv1alpha1.ConditionStalled && cur.Status == "True") || (t == meshv1alpha1.ConditionReady && cur.Status == "False" && old != nil && old.Status == "True") ||
			cur.Reason == meshv1alpha1.ReasonApplyFailed {
			eventType = corev1.EventTypeWarning
		}
		r.event(after, eventType, cur.Reason, t, cur.Message)
	}
	if before.Status.ActiveRevision != "" && before.Status.ActiveRevision != after.Status.ActiveRevision {
		r.event(after, corev1.EventTypeNormal, "RevisionPromoted", "Promote",
			"revision "+after.Status.ActiveRevision+" is now active; tags moved from "+before.Status.ActiveRevision)
	}
	if b, a := before.Status.CertificateAuthority, after.Status.CertificateAuthority; b != nil && a != nil && b.Revision != nil && a.Revision != nil && *a.Revision > *b.Revision {
		r.event(after, corev1.EventTypeNormal, "CertificateAuthorityRenewed", "Renew",
			"cert-manager renewed the mesh CA (revision "+itoa(int32(*a.Revision))+"); istiod reloads it")
	}
	if before.Status.Canary != nil && after.Status.Canary != nil && before.Status.Canary.Weight != after.Status.Canary.Weight {
		r.event(after, corev1.EventTypeNormal, "CanaryStepAdvanced", "Advance",
			"canary "+after.Status.Canary.Revision+" now receives "+itoa(after.Status.Canary.Weight)+"% of workloads")
	}
}
