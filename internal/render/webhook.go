package render

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// Istio's config validation webhooks.
//
// istiod's validation controller watches every ValidatingWebhookConfiguration
// labelled istio.io/rev=<its revision> and updates, with a plain Update,
// caBundle of every webhook (to its CA) and failurePolicy (Ignore→Fail,
// once a dry-run of an invalid Gateway is rejected). Those two fields are
// therefore never rendered: if meshkeeper applied them, each apply would
// take them back and istiod would flip them again, forever. Left out, the
// API server defaults failurePolicy to Fail, the state istiod converges to
// anyway; until istiod has patched caBundle, creating Istio config fails
// closed, so the reconciler should apply Istio config (the PeerAuthentication)
// once the active istiod is ready, or retry it.

// validationPath is where istiod serves config validation.
const validationPath = "/validate"

func validationRules() []admissionregistrationv1.RuleWithOperations {
	return []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups:   []string{"security.istio.io", "networking.istio.io", "telemetry.istio.io", "extensions.istio.io"},
			APIVersions: []string{"*"},
			Resources:   []string{"*"},
		},
	}}
}

func validatingWebhook(mi *meshv1alpha1.MeshInstall, name string, rev Revision) admissionregistrationv1.ValidatingWebhook {
	return admissionregistrationv1.ValidatingWebhook{
		Name: name,
		ClientConfig: admissionregistrationv1.WebhookClientConfig{
			Service: &admissionregistrationv1.ServiceReference{
				Name:      IstiodName(rev.Name),
				Namespace: namespace(mi),
				Path:      ptr.To(validationPath),
			},
		},
		Rules:                   validationRules(),
		SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
		AdmissionReviewVersions: []string{"v1"},
	}
}

// revisionValidator validates the Istio config labelled istio.io/rev=<rev>,
// and lets istiod prove its own webhook rejects bad config before failing
// closed (its dry-run Gateway carries its revision label).
func revisionValidator(mi *meshv1alpha1.MeshInstall, rev Revision) *admissionregistrationv1.ValidatingWebhookConfiguration {
	wh := validatingWebhook(mi, "rev.validation.istio.io", rev)
	wh.ObjectSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: labelRev, Operator: metav1.LabelSelectorOpIn, Values: []string{rev.Name},
	}}}
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta: typeMeta(admissionregistrationv1.SchemeGroupVersion, "ValidatingWebhookConfiguration"),
		ObjectMeta: objectMeta(ValidatorName(rev.Name, namespace(mi)), "",
			with(istiodLabels(mi, rev), labelIstio, "istiod")),
		Webhooks: []admissionregistrationv1.ValidatingWebhook{wh},
	}
}

// defaultValidator validates all Istio config, labelled or not, with the
// active revision, as Istio's base chart does for its default revision.
// Its istio.io/rev label is also how every istiod learns which revision is
// the default one (it then handles config and Gateways in namespaces with
// no revision label), so it must follow the active revision.
func defaultValidator(mi *meshv1alpha1.MeshInstall, active Revision) *admissionregistrationv1.ValidatingWebhookConfiguration {
	labels := with(istioLabels(mi, active.Version.String()),
		labelApp, "istiod", labelName, "istiod", labelIstio, "istiod", labelRev, active.Name)
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   typeMeta(admissionregistrationv1.SchemeGroupVersion, "ValidatingWebhookConfiguration"),
		ObjectMeta: objectMeta(DefaultValidatorName, "", labels),
		Webhooks:   []admissionregistrationv1.ValidatingWebhook{validatingWebhook(mi, "validation.istio.io", active)},
	}
}
