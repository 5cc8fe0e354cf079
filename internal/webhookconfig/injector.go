// Package webhookconfig renders the admission webhook configurations that
// meshkeeper serves itself: the sidecar injector (one entry per revision and
// per tag, with Istio's selection semantics) and the MeshInstall validator.
package webhookconfig

import (
	"slices"
	"strings"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"istio.io/api/label"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
)

const (
	// InjectorName is the name of the MutatingWebhookConfiguration of the sidecar injector.
	InjectorName = "meshkeeper-sidecar-injector"
	// ValidatorName is the name of the ValidatingWebhookConfiguration of MeshInstalls.
	ValidatorName = "meshkeeper-validator"
	// InjectionLabel is Istio's namespace label; istio-injection=enabled selects the default tag.
	// (istio.io/api has no constant for it.)
	InjectionLabel = "istio-injection"
	// InjectPath is the path prefix of the injector.
	InjectPath = "/inject"
	// ValidatePath is the path of the MeshInstall validator.
	ValidatePath = "/validate-mesh-meshkeeper-dev-v1alpha1-meshinstall"

	// injectionTimeoutSeconds keeps pod creation snappy when the webhook is down.
	injectionTimeoutSeconds = 5
)

// AlwaysExcludedNamespaces are never injected, whatever their labels.
var AlwaysExcludedNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// Endpoint says how the API server reaches meshkeeper's webhook server:
// through a Service in the cluster, or a URL when the operator runs outside it.
type Endpoint struct {
	// Service is the webhook Service (its Path is ignored: each entry sets its own).
	Service *admissionregistrationv1.ServiceReference
	// URL is the server's base URL, e.g. https://127.0.0.1:9443, used when Service is nil.
	URL string
	// CABundle is the PEM CA that signed the serving certificate, written
	// into every entry. Empty when InjectCAFrom is set.
	CABundle []byte
	// InjectCAFrom is the "<namespace>/<name>" of the cert-manager
	// Certificate the webhook server serves. When set, the configurations
	// carry cert-manager.io/inject-ca-from and no caBundle of meshkeeper's:
	// cert-manager's cainjector keeps every entry's caBundle, and
	// meshkeeper's server-side apply never takes it back.
	InjectCAFrom string
	// ServingCA is the CA of the certificate the webhook server serves now,
	// with InjectCAFrom: an entry whose caBundle does not hold it yet (one
	// just added, before cainjector filled it) cannot be called.
	ServingCA []byte
}

// annotations are the configurations' annotations.
func (e Endpoint) annotations() map[string]string {
	if e.InjectCAFrom == "" {
		return nil
	}
	return map[string]string{cmapi.WantInjectAnnotation: e.InjectCAFrom}
}

func (e Endpoint) clientConfig(path string) admissionregistrationv1.WebhookClientConfig {
	cc := admissionregistrationv1.WebhookClientConfig{CABundle: e.CABundle}
	if e.Service != nil {
		svc := *e.Service
		svc.Path = &path
		if svc.Port == nil {
			port := int32(443)
			svc.Port = &port
		}
		cc.Service = &svc
		return cc
	}
	url := e.URL + path
	cc.URL = &url
	return cc
}

// Injector is what the sidecar injector's configuration depends on.
type Injector struct {
	// ControlPlaneNamespace is never injected, except for gateway pods.
	ControlPlaneNamespace string
	// OperatorNamespace is meshkeeper's own namespace, never injected.
	OperatorNamespace string
	// Revisions are the revisions that exist, selectable by istio.io/rev=<revision>.
	// The name "default" always means the default tag and gets no revision entry.
	Revisions []string
	// Tags are the revision tags besides default (spec.revisionTags).
	Tags []string
	// FailurePolicy is spec.injection.failurePolicy.
	FailurePolicy admissionregistrationv1.FailurePolicyType
	// Endpoint reaches the webhook server.
	Endpoint Endpoint
	// Labels are added to the configuration's metadata.
	Labels map[string]string
	// ObjectRequirements are added to the objectSelector of every entry but
	// the gateways' (meshkeeper's own pods): during a migration, only pods
	// labelled as migrated (migration.OnlyMigrated), so that no pod is
	// matched by both meshkeeper's entries and the foreign injector's.
	ObjectRequirements []metav1.LabelSelectorRequirement
}

// TargetPath returns the injector path for a revision or a tag.
func TargetPath(kind, name string) string { return InjectPath + "/" + kind + "/" + name }

// InjectorConfiguration renders the MutatingWebhookConfiguration of the
// sidecar injector. It keeps Istio's precedence rules:
//   - namespace label istio-injection=enabled selects the default tag and beats istio.io/rev;
//   - namespace label istio.io/rev=<revision|tag> selects that target;
//   - in a namespace with neither label, pod label istio.io/rev=<revision|tag>
//     selects that target and pod label sidecar.istio.io/inject=true the default tag;
//   - pod label sidecar.istio.io/inject=false always opts out.
//
// Every entry lives in one object, so moving a tag is a single atomic write
// and a pod never matches two entries or, while a target exists, none.
func InjectorConfiguration(in Injector) *admissionregistrationv1.MutatingWebhookConfiguration {
	excluded := excludedNamespaces(in)
	var hooks []admissionregistrationv1.MutatingWebhook

	revisions := slices.Clone(in.Revisions)
	slices.Sort(revisions)
	for _, rev := range slices.Compact(revisions) {
		if rev == revision.DefaultTag {
			continue
		}
		hooks = append(hooks, targetEntries(in, excluded, "rev", rev)...)
	}
	tags := append([]string{revision.DefaultTag}, in.Tags...)
	slices.Sort(tags[1:])
	for _, tag := range slices.Compact(tags) {
		hooks = append(hooks, targetEntries(in, excluded, "tag", tag)...)
	}
	defaultPath := TargetPath("tag", revision.DefaultTag)
	hooks = append(hooks,
		// Namespace opted in with istio-injection=enabled: the default tag, whatever istio.io/rev says.
		entry(in, "namespace"+entrySuffix, defaultPath,
			selector(excluded, in_(InjectionLabel, "enabled")),
			selector(nil, append(slices.Clone(in.ObjectRequirements), notIn(label.SidecarInject.Name, "false"))...)),
		// Unlabelled namespace, pod opted in with sidecar.istio.io/inject=true and no istio.io/rev.
		entry(in, "object"+entrySuffix, defaultPath,
			selector(excluded, absent(InjectionLabel), absent(label.IoIstioRev.Name)),
			selector(nil, append(slices.Clone(in.ObjectRequirements), in_(label.SidecarInject.Name, "true"), absent(label.IoIstioRev.Name))...)),
	)
	if in.ControlPlaneNamespace != "" {
		// Gateways in the control plane namespace, which is otherwise never injected.
		hooks = append(hooks, entry(in, "gateway"+entrySuffix, defaultPath,
			&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{in_(corev1.LabelMetadataName, in.ControlPlaneNamespace)}},
			selector(nil, exists(render.LabelGateway), notIn(label.SidecarInject.Name, "false"))))
	}

	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: InjectorName, Labels: in.Labels, Annotations: in.Endpoint.annotations()},
		Webhooks:   hooks,
	}
}

// targetEntries are the two entries of one revision or tag: selected by the
// namespace's istio.io/rev label, or by the pod's in an unlabelled namespace.
func targetEntries(in Injector, excluded []string, kind, name string) []admissionregistrationv1.MutatingWebhook {
	path := TargetPath(kind, name)
	return []admissionregistrationv1.MutatingWebhook{
		entry(in, kind+".namespace."+name+entrySuffix, path,
			selector(excluded, in_(label.IoIstioRev.Name, name), absent(InjectionLabel)),
			selector(nil, append(slices.Clone(in.ObjectRequirements), notIn(label.SidecarInject.Name, "false"))...)),
		entry(in, kind+".object."+name+entrySuffix, path,
			selector(excluded, absent(label.IoIstioRev.Name), absent(InjectionLabel)),
			selector(nil, append(slices.Clone(in.ObjectRequirements), notIn(label.SidecarInject.Name, "false"), in_(label.IoIstioRev.Name, name))...)),
	}
}

func entry(in Injector, name, path string, ns, obj *metav1.LabelSelector) admissionregistrationv1.MutatingWebhook {
	failurePolicy := in.FailurePolicy
	if failurePolicy == "" {
		failurePolicy = admissionregistrationv1.Fail
	}
	sideEffects := admissionregistrationv1.SideEffectClassNone
	reinvocation := admissionregistrationv1.NeverReinvocationPolicy
	matchPolicy := admissionregistrationv1.Equivalent
	timeout := int32(injectionTimeoutSeconds)
	return admissionregistrationv1.MutatingWebhook{
		Name:                    name,
		ClientConfig:            in.Endpoint.clientConfig(path),
		Rules:                   podCreateRules(),
		FailurePolicy:           &failurePolicy,
		MatchPolicy:             &matchPolicy,
		NamespaceSelector:       ns,
		ObjectSelector:          obj,
		SideEffects:             &sideEffects,
		TimeoutSeconds:          &timeout,
		AdmissionReviewVersions: []string{"v1"},
		ReinvocationPolicy:      &reinvocation,
		MatchConditions:         matchConditions(),
	}
}

func podCreateRules() []admissionregistrationv1.RuleWithOperations {
	scope := admissionregistrationv1.NamespacedScope
	return []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: &scope,
		},
	}}
}

func excludedNamespaces(in Injector) []string {
	ex := slices.Clone(AlwaysExcludedNamespaces)
	for _, ns := range []string{in.ControlPlaneNamespace, in.OperatorNamespace} {
		if ns != "" && !slices.Contains(ex, ns) {
			ex = append(ex, ns)
		}
	}
	return ex
}

// selector builds a selector from requirements, excluding namespaces by name when given.
func selector(excludedNamespaces []string, reqs ...metav1.LabelSelectorRequirement) *metav1.LabelSelector {
	if len(excludedNamespaces) > 0 {
		reqs = append(reqs, metav1.LabelSelectorRequirement{Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpNotIn, Values: excludedNamespaces})
	}
	return &metav1.LabelSelector{MatchExpressions: reqs}
}

func in_(key string, values ...string) metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{Key: key, Operator: metav1.LabelSelectorOpIn, Values: values}
}

func notIn(key string, values ...string) metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{Key: key, Operator: metav1.LabelSelectorOpNotIn, Values: values}
}

func absent(key string) metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{Key: key, Operator: metav1.LabelSelectorOpDoesNotExist}
}

func exists(key string) metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{Key: key, Operator: metav1.LabelSelectorOpExists}
}

// entrySuffix ends the name of every entry InjectorConfiguration renders.
const entrySuffix = ".sidecar-injector.meshkeeper.dev"

// SelectedBecause says in words what makes an entry InjectorConfiguration
// renders select a pod, from the entry's name; "" for a name it does not
// render. It is the reading of the selectors above, kept beside them.
func SelectedBecause(entry string) string {
	const neither = "in a namespace with neither " + InjectionLabel + " nor istio.io/rev"
	parts := strings.Split(strings.TrimSuffix(entry, entrySuffix), ".")
	switch {
	case !strings.HasSuffix(entry, entrySuffix):
		return ""
	case len(parts) == 1 && parts[0] == "namespace":
		return "its namespace is labelled " + InjectionLabel + "=enabled"
	case len(parts) == 1 && parts[0] == "object":
		return "its label " + label.SidecarInject.Name + "=true, " + neither
	case len(parts) == 1 && parts[0] == "gateway":
		return "it is a gateway pod (label " + render.LabelGateway + ") in the control plane namespace"
	case len(parts) == 3 && parts[1] == "namespace":
		return "its namespace is labelled " + label.IoIstioRev.Name + "=" + parts[2]
	case len(parts) == 3 && parts[1] == "object":
		return "its label " + label.IoIstioRev.Name + "=" + parts[2] + ", " + neither
	}
	return ""
}
