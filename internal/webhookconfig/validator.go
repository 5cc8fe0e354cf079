package webhookconfig

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ValidatorConfiguration renders the ValidatingWebhookConfiguration that
// sends MeshInstall creates and updates to meshkeeper's validator, which
// enforces what CEL cannot: supported versions, upgrade rules, one MeshInstall
// per cluster.
func ValidatorConfiguration(endpoint Endpoint, labels map[string]string) *admissionregistrationv1.ValidatingWebhookConfiguration {
	failurePolicy := admissionregistrationv1.Fail
	sideEffects := admissionregistrationv1.SideEffectClassNone
	timeout := int32(10)
	scope := admissionregistrationv1.ClusterScope
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: ValidatorName, Labels: labels, Annotations: endpoint.annotations()},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         "vmeshinstall.mesh.meshkeeper.dev",
			ClientConfig: endpoint.clientConfig(ValidatePath),
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{"mesh.meshkeeper.dev"}, APIVersions: []string{"v1alpha1"},
					Resources: []string{"meshinstalls"}, Scope: &scope,
				},
			}},
			FailurePolicy:           &failurePolicy,
			SideEffects:             &sideEffects,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
}
