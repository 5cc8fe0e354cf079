package meshinstall

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"istio.io/api/annotation"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// Labels Istio's installers put on what they render: they tell which
// revision an object serves and, as far as labels can, who installed it.
const (
	labelIstioRev          = "istio.io/rev"
	labelIstioTag          = "istio.io/tag"
	labelOwningResource    = "install.operator.istio.io/owning-resource" // istioctl's IstioOperator
	labelOperatorComponent = "operator.istio.io/component"               // istioctl
	labelOperatorVersion   = "operator.istio.io/version"                 // older istioctl
	labelK8sManagedBy      = "app.kubernetes.io/managed-by"              // Helm (and Sail's rendering)
	labelK8sVersion        = "app.kubernetes.io/version"                 // Helm charts
	labelHelmChart         = "helm.sh/chart"                             // Helm charts: <chart>-<version>
	sailGroup              = "sailoperator.io"
)

// keptForeignLabels are the labels kept of a webhook configuration
// meshkeeper did not make (TrimWebhookConfiguration), besides Sail's.
var keptForeignLabels = []string{labelIstioRev, labelIstioTag, "app", labelOwningResource, labelOperatorComponent,
	labelOperatorVersion, labelK8sManagedBy, labelK8sVersion, labelHelmChart}

// maxForeignNamed bounds how many objects of each kind the Stalled message
// names and how many foreign istiod Deployments are read live: a cluster
// may hold many, one is enough to refuse.
const maxForeignNamed = 5

// foreignObject is one object of an Istio installation meshkeeper did not
// make, as far as its labels and image tell.
type foreignObject struct {
	kind, namespace, name string
	revision, tag         string
	version, installedBy  string
}

// foreignControlPlane is what gather found of Istio installations
// meshkeeper did not make: nothing of it is ever written, only reported.
type foreignControlPlane struct {
	istiods, injectors, validators, gateways []foreignObject
	// injectedPods are running pods carrying Istio's sidecar.istio.io/status
	// without meshkeeper's stamp: injected by someone else's webhook.
	injectedPods int
}

// observeForeign finds Istio control planes meshkeeper did not make. It
// reads the manager's cache only: users' Deployments (trimmed, cluster-wide,
// for the rollout), webhook configurations (all of them, trimmed, see
// TrimWebhookConfiguration) and the pods observe already counted. Only when
// a foreign istiod is found is it read live, by name, for what the trimmed
// cache drops (its labels and image): a cluster without one pays no request.
// Istio's `istio`/`istio-<rev>` ConfigMaps are not looked for here: outside
// meshkeeper's namespaces they are not cached, a cluster-wide list each
// pass would cost a request in every quiet cluster, and one of a name
// meshkeeper would create is found by observeExisting, by name.
//
// An istiod counts only in a namespace meshkeeper manages meshes in (or
// the MeshInstall's own): anyone who may create a Deployment can label its
// pods app=istiod, and a tenant's look-alike must neither stall the mesh
// nor cost a live read. A real control plane elsewhere still has its
// injector, which only a cluster administrator can create.
func (r *Reconciler) observeForeign(ctx context.Context, mi *meshv1alpha1.MeshInstall, obs *observation) (foreignControlPlane, error) {
	var f foreignControlPlane
	var deployments appsv1.DeploymentList
	if err := r.List(ctx, &deployments, client.UnsafeDisableDeepCopy); err != nil {
		return f, fmt.Errorf("listing Deployments: %w", err)
	}
	for i := range deployments.Items {
		d := &deployments.Items[i]
		if controlledByAMeshInstall(d) || !d.DeletionTimestamp.IsZero() {
			continue
		}
		switch t := d.Spec.Template.Labels; {
		case t["app"] == "istiod" && (d.Namespace == mi.Spec.Namespace || slices.Contains(r.MeshNamespaces, d.Namespace)):
			f.istiods = append(f.istiods, foreignObject{kind: "Deployment", namespace: d.Namespace, name: d.Name, revision: revisionOf(t)})
		case strings.HasSuffix(t["istio"], "gateway"):
			f.gateways = append(f.gateways, foreignObject{kind: "Deployment", namespace: d.Namespace, name: d.Name, revision: t[labelIstioRev]})
		}
	}
	sortForeign(f.istiods)
	sortForeign(f.gateways)
	for i := range f.istiods[:min(len(f.istiods), maxForeignNamed)] {
		if err := r.describeIstiod(ctx, &f.istiods[i]); err != nil {
			return f, err
		}
	}
	var mutating admissionregistrationv1.MutatingWebhookConfigurationList
	if err := r.List(ctx, &mutating, client.UnsafeDisableDeepCopy); err != nil {
		return f, fmt.Errorf("listing MutatingWebhookConfigurations: %w", err)
	}
	for i := range mutating.Items {
		w := &mutating.Items[i]
		if !controlledByAMeshInstallRef(w) && istioInjector(w) {
			f.injectors = append(f.injectors, webhookObject("MutatingWebhookConfiguration", w))
		}
	}
	var validating admissionregistrationv1.ValidatingWebhookConfigurationList
	if err := r.List(ctx, &validating, client.UnsafeDisableDeepCopy); err != nil {
		return f, fmt.Errorf("listing ValidatingWebhookConfigurations: %w", err)
	}
	for i := range validating.Items {
		w := &validating.Items[i]
		if !controlledByAMeshInstallRef(w) && istioValidator(w) {
			f.validators = append(f.validators, webhookObject("ValidatingWebhookConfiguration", w))
		}
	}
	sortForeign(f.injectors)
	sortForeign(f.validators)
	f.injectedPods = injectedBySomeoneElse(obs)
	return f, nil
}

// describeIstiod reads a foreign istiod live for its version (the image
// tag) and installer (labels, owner references), which the cache trims.
func (r *Reconciler) describeIstiod(ctx context.Context, o *foreignObject) error {
	d := &appsv1.Deployment{}
	switch err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: o.namespace, Name: o.name}, d); {
	case apierrors.IsNotFound(err):
		return nil // gone since the cache saw it; named as found
	case err != nil:
		return fmt.Errorf("reading the istiod Deployment %s/%s meshkeeper did not make: %w", o.namespace, o.name, err)
	}
	o.version = versionOf(d.Labels, imageTag(d))
	o.installedBy = installedBy(d.Labels, d.OwnerReferences)
	return nil
}

// injectedBySomeoneElse counts the running pods with Istio's sidecar status
// and without meshkeeper's stamp. The stamp is a report, so the count is
// too: it is reported, never acted on.
func injectedBySomeoneElse(obs *observation) int {
	n := 0
	for _, p := range obs.pods {
		if _, injected := p.Annotations[annotation.SidecarStatus.Name]; injected && p.Labels[inject.LabelInjectedBy] == "" {
			n++
		}
	}
	return n
}

// foreignRefusal refuses every pass while a foreign Istio control plane
// runs: an istiod or an injector meshkeeper did not make. meshkeeper's
// injector selects pods by the same namespace and pod labels as Istio's
// (istio-injection, istio.io/rev), so beside a foreign injector two
// webhooks would inject one pod; and a foreign istiod reads the same mesh
// config names and Istio resources. Gateways, validators and injected pods
// alone do not refuse (nothing of them is written), but are named.
func foreignRefusal(f foreignControlPlane) *refusal.Error {
	if len(f.istiods) == 0 && len(f.injectors) == 0 {
		return nil
	}
	var found []string
	found = appendNamed(found, "istiod", f.istiods)
	found = appendNamed(found, "injector", f.injectors)
	found = appendNamed(found, "validator", f.validators)
	found = appendNamed(found, "gateway", f.gateways)
	if f.injectedPods > 0 {
		found = append(found, fmt.Sprintf("%d running pod(s) injected by it (sidecar.istio.io/status without meshkeeper's stamp)", f.injectedPods))
	}
	return &refusal.Error{Reason: meshv1alpha1.ReasonForeignIstioInstallation, Message: fmt.Sprintf(
		"found an Istio installation meshkeeper did not make: %s. meshkeeper writes over none of it and runs no second "+
			"injector beside it (two webhooks would inject the same pods), so nothing was applied; print the equivalent "+
			"MeshInstall with `kubectl meshkeeper translate` and see the README section \"Migrating from istioctl, Helm or Sail\"",
		strings.Join(found, "; "))}
}

// appendNamed names up to maxForeignNamed objects of one role.
func appendNamed(found []string, role string, objs []foreignObject) []string {
	for i, o := range objs {
		if i == maxForeignNamed {
			return append(found, fmt.Sprintf("and %d more %s(s)", len(objs)-i, role))
		}
		found = append(found, role+" "+o.String())
	}
	return found
}

func (o foreignObject) String() string {
	name := o.name
	if o.namespace != "" {
		name = o.namespace + "/" + o.name
	}
	var facts []string
	if o.tag != "" {
		facts = append(facts, "tag "+o.tag)
	}
	if o.revision != "" {
		facts = append(facts, "revision "+o.revision)
	}
	if o.version != "" {
		facts = append(facts, "version "+o.version)
	}
	if o.installedBy != "" {
		facts = append(facts, "installed by "+o.installedBy)
	}
	if len(facts) == 0 {
		return o.kind + " " + name
	}
	return fmt.Sprintf("%s %s (%s)", o.kind, name, strings.Join(facts, ", "))
}

// istioInjector says whether a mutating webhook configuration is Istio's
// sidecar injector or one of its revision tags: by Istio's names for the
// object or for its webhooks.
func istioInjector(w *admissionregistrationv1.MutatingWebhookConfiguration) bool {
	if strings.HasPrefix(w.Name, "istio-sidecar-injector") || strings.HasPrefix(w.Name, "istio-revision-tag-") {
		return true
	}
	return slices.ContainsFunc(w.Webhooks, func(h admissionregistrationv1.MutatingWebhook) bool {
		return strings.HasSuffix(h.Name, "sidecar-injector.istio.io")
	})
}

// istioValidator says whether a validating webhook configuration is
// istiod's config validator: by Istio's names for the object or its webhooks.
func istioValidator(w *admissionregistrationv1.ValidatingWebhookConfiguration) bool {
	if strings.HasPrefix(w.Name, "istio-validator") || w.Name == "istiod-default-validator" {
		return true
	}
	return slices.ContainsFunc(w.Webhooks, func(h admissionregistrationv1.ValidatingWebhook) bool {
		return strings.HasSuffix(h.Name, "validation.istio.io")
	})
}

func webhookObject(kind string, w client.Object) foreignObject {
	l := w.GetLabels()
	return foreignObject{kind: kind, name: w.GetName(), revision: l[labelIstioRev], tag: l[labelIstioTag],
		version: versionOf(l, ""), installedBy: installedBy(l, w.GetOwnerReferences())}
}

// revisionOf is the revision an istiod serves: Istio's default revision is
// named "default" when unlabelled.
func revisionOf(templateLabels map[string]string) string {
	return cmp.Or(templateLabels[labelIstioRev], "default")
}

// installedBy tells, as far as labels and owner references can, which tool
// installed an object of Istio's; "" when nothing says. Sail renders Istio's
// Helm charts, so it is asked first.
func installedBy(l map[string]string, owners []metav1.OwnerReference) string {
	for _, ref := range owners {
		if strings.HasPrefix(ref.APIVersion, sailGroup+"/") {
			return fmt.Sprintf("Sail (%s %s)", ref.Kind, ref.Name)
		}
	}
	if l[labelK8sManagedBy] == "sail-operator" || hasLabelFrom(l, sailGroup) {
		return "Sail"
	}
	if owner := l[labelOwningResource]; owner != "" && owner != "unknown" {
		return fmt.Sprintf("istioctl (IstioOperator %s)", owner)
	}
	if l[labelOwningResource] != "" || hasLabelFrom(l, "operator.istio.io") {
		return "istioctl"
	}
	if chart := l[labelHelmChart]; chart != "" {
		return fmt.Sprintf("Helm (chart %s)", chart)
	}
	if l[labelK8sManagedBy] == "Helm" {
		return "Helm"
	}
	return ""
}

// hasLabelFrom says whether any label key is in group's prefix (group/…
// or something.group/…).
func hasLabelFrom(l map[string]string, group string) bool {
	for k := range l {
		prefix, _, ok := strings.Cut(k, "/")
		if ok && (prefix == group || strings.HasSuffix(prefix, "."+group)) {
			return true
		}
	}
	return false
}

// versionOf is the Istio version an object was installed at: its image
// tag when known, else what its labels say.
func versionOf(l map[string]string, tag string) string {
	if tag != "" {
		return tag
	}
	if v := cmp.Or(l[labelOperatorVersion], l[labelK8sVersion]); v != "" {
		return v
	}
	if chart := l[labelHelmChart]; chart != "" {
		if i := strings.LastIndex(chart, "-"); i > 0 {
			return chart[i+1:]
		}
	}
	return ""
}

// imageTag is the tag of istiod's discovery container image (Istio's
// charts name it so), or of its first container.
func imageTag(d *appsv1.Deployment) string {
	cs := d.Spec.Template.Spec.Containers
	if len(cs) == 0 {
		return ""
	}
	image := cs[0].Image
	if i := slices.IndexFunc(cs, func(c corev1.Container) bool { return c.Name == "discovery" }); i >= 0 {
		image = cs[i].Image
	}
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[i+1:]
	}
	return ""
}

func sortForeign(objs []foreignObject) {
	slices.SortFunc(objs, func(a, b foreignObject) int {
		return cmp.Or(cmp.Compare(a.namespace, b.namespace), cmp.Compare(a.name, b.name))
	})
}

// controlledByAMeshInstallRef says whether an object's controller is a
// MeshInstall: a webhook configuration carrying one is meshkeeper's (which
// MeshInstall's is for ownership.Scope to say).
func controlledByAMeshInstallRef(o client.Object) bool {
	ref := metav1.GetControllerOfNoCopy(o)
	return ref != nil && ref.Kind == "MeshInstall" && strings.HasPrefix(ref.APIVersion, meshv1alpha1.GroupVersion.Group+"/")
}

// TrimWebhookConfiguration is the cache transform for webhook
// configurations. Every one is cached, so that a foreign Istio injector or
// validator is found without a request (observeForeign). Those labelled as
// meshkeeper's (what the cache held before it held every one: the
// operator's own MeshInstall validator, whose CA bundle the webhook
// certificate controllers read, is labelled and controlled by no
// MeshInstall) or controlled by a MeshInstall are kept whole, less managed
// fields; only administrators create webhook configurations. Of any other
// only what observeForeign reads is kept: identity, the labels that tell
// Istio's revision and installer, its controller, and its webhooks' names,
// never their CA bundles, rules or selectors.
func TrimWebhookConfiguration(in any) (any, error) {
	obj, ok := in.(client.Object)
	if !ok {
		return in, nil
	}
	obj.SetManagedFields(nil)
	if controlledByAMeshInstallRef(obj) || obj.GetLabels()[render.LabelManagedBy] == render.ManagedBy {
		return obj, nil
	}
	meta := metav1.ObjectMeta{Name: obj.GetName(), UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion(),
		DeletionTimestamp: obj.GetDeletionTimestamp(), Labels: foreignLabels(obj.GetLabels())}
	if ref := metav1.GetControllerOfNoCopy(obj); ref != nil {
		meta.OwnerReferences = []metav1.OwnerReference{{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name, UID: ref.UID, Controller: ref.Controller}}
	}
	switch w := in.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		out := &admissionregistrationv1.MutatingWebhookConfiguration{TypeMeta: w.TypeMeta, ObjectMeta: meta}
		for _, h := range w.Webhooks[:min(len(w.Webhooks), maxCachedWebhooks)] {
			out.Webhooks = append(out.Webhooks, admissionregistrationv1.MutatingWebhook{Name: h.Name})
		}
		return out, nil
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		out := &admissionregistrationv1.ValidatingWebhookConfiguration{TypeMeta: w.TypeMeta, ObjectMeta: meta}
		for _, h := range w.Webhooks[:min(len(w.Webhooks), maxCachedWebhooks)] {
			out.Webhooks = append(out.Webhooks, admissionregistrationv1.ValidatingWebhook{Name: h.Name})
		}
		return out, nil
	}
	return in, nil
}

// maxCachedWebhooks bounds the webhook names kept of a configuration
// meshkeeper did not make (Istio's injector has four, a revision tag two).
const maxCachedWebhooks = 16

// foreignLabels keeps the labels observeForeign reads: Istio's revision and
// installer labels, and up to maxSailLabels of Sail's, each bounded.
func foreignLabels(l map[string]string) map[string]string {
	out := keep(l, keptForeignLabels)
	sail := 0
	for _, k := range slices.Sorted(maps.Keys(l)) {
		if sail == maxSailLabels {
			break
		}
		if hasLabelFrom(map[string]string{k: ""}, sailGroup) && len(k)+len(l[k]) <= maxCachedLabelBytes {
			if out == nil {
				out = map[string]string{}
			}
			out[k], sail = l[k], sail+1
		}
	}
	return out
}

// maxSailLabels: one of Sail's labels tells Sail installed an object.
const maxSailLabels = 2
