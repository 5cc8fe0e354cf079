package webhookconfig

import (
	"maps"
	"slices"

	"istio.io/api/label"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Revision tags as Istio's tools read them.
//
// istioctl (tag list, tag set's checks, every command's default revision)
// and istiod (its tag watcher: which istio.io/rev=<tag> namespaces, Gateways
// and config are its own; its leader election: which revision is the
// default) learn where a tag points from a MutatingWebhookConfiguration
// labelled istio.io/tag=<tag> and istio.io/rev=<revision>, named
// istio-revision-tag-<tag> (with -<namespace> outside istio-system). Istio's
// chart puts the tag's injection entries in it. meshkeeper keeps every
// injection entry in InjectorName instead (one object, disjoint entries, one
// CA bundle to keep), so its tag configurations carry the labels and no
// entry at all: they route no pod, and the API server never calls anything
// for them.
//
// Nothing of Istio writes to them either: istiod's CA bundle patcher
// updates only the entries named *sidecar-injector.istio.io of a
// configuration labelled with its revision (these have no entry, and the
// injector, whose entries are named *.sidecar-injector.meshkeeper.dev,
// carries no istio.io/rev label), and it runs only when the revision has
// Istio's istio-sidecar-injector ConfigMap, which meshkeeper never renders.

const (
	// tagConfigurationPrefix is the name prefix of Istio's revision tag configurations.
	tagConfigurationPrefix = "istio-revision-tag-"
	// istioSystem is the namespace whose tag configurations carry no namespace suffix.
	istioSystem = "istio-system"
)

// Tags is what the tag configurations depend on.
type Tags struct {
	// Tags are every revision tag: default and spec.revisionTags.
	Tags []string
	// Revision is the revision the tags point at: the routing's active revision.
	Revision string
	// ControlPlaneNamespace names the configurations outside istio-system.
	ControlPlaneNamespace string
	// Labels are added to each configuration's metadata (meshkeeper's ownership).
	Labels map[string]string
}

// TagConfigurationName is the name Istio gives the configuration of a tag
// (istioctl and istiod look the default tag up by it).
func TagConfigurationName(tag, controlPlaneNamespace string) string {
	if controlPlaneNamespace == "" || controlPlaneNamespace == istioSystem {
		return tagConfigurationPrefix + tag
	}
	return tagConfigurationPrefix + tag + "-" + controlPlaneNamespace
}

// TagConfigurations renders one entry-less MutatingWebhookConfiguration
// per tag, sorted by name, labelled with the tag and the revision it points at.
func TagConfigurations(in Tags) []*admissionregistrationv1.MutatingWebhookConfiguration {
	if in.Revision == "" {
		return nil
	}
	tags := slices.Sorted(slices.Values(in.Tags))
	var out []*admissionregistrationv1.MutatingWebhookConfiguration
	for _, tag := range slices.Compact(tags) {
		if tag == "" {
			continue
		}
		labels := maps.Clone(in.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		labels[label.IoIstioTag.Name] = tag
		labels[label.IoIstioRev.Name] = in.Revision
		out = append(out, &admissionregistrationv1.MutatingWebhookConfiguration{
			TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
			ObjectMeta: metav1.ObjectMeta{Name: TagConfigurationName(tag, in.ControlPlaneNamespace), Labels: labels},
		})
	}
	return out
}
