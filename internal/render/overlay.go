package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	strictjson "sigs.k8s.io/json"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// overlaysPath is where overlays live in the MeshInstall, for messages.
var overlaysPath = field.NewPath("spec", "overlays")

// Bounds on what overlays may make of the rendered objects. A MeshInstall
// is at most ~1.5 MiB (etcd's request limit), so "add" values are bounded
// by it; "copy" operations are not (each can double a document), and the
// objects are rendered by the reconciler and, at admission, by the webhook
// on every replica, so an unbounded patch would take both down.
const (
	// MaxOverlayCopyBytes bounds the bytes one overlay's JSON patch may
	// copy into one object: a few container specs, far more than any
	// setting needs.
	MaxOverlayCopyBytes = 256 << 10
	// MaxObjectBytes caps the JSON size of an object after an overlay: the
	// API server would refuse a larger one anyway (a ConfigMap holds at
	// most 1 MiB; etcd stores at most 1.5 MiB).
	MaxObjectBytes = 1 << 20
	// MaxOverlayGrowthBytes caps what all overlays together may add to
	// the objects of one pass, so that many overlays of one MeshInstall
	// cannot multiply MaxObjectBytes.
	MaxOverlayGrowthBytes = 2 << 20
)

// ApplyOverlays returns objs with the overlays applied, in order: patched
// copies of the objects they target, the others as they are (objs itself
// is not changed). objs are all the objects of one pass, every revision's
// (ControlPlane) and the shared ones (Shared), because an overlay must be
// judged against all of them:
//
//   - an overlay matches the objects of its target's kind whose name, with
//     their revision's "-<rev>" taken out, is the target's name (see
//     OverlayTarget), in the target's namespace and revision when set;
//   - it must match some object, and when it matches a revision's objects
//     it must match in every revision rendered (an upgrade that drops the
//     object it patches is refused rather than half-patched);
//   - an overlay pinned to a revision that is not rendered (not created
//     yet, or pruned) does nothing;
//   - a patch must apply and leave a valid object of the same kind, name
//     and namespace, with the same owner references and meshkeeper labels
//     and annotations (see protectedKey); the injection ConfigMaps, which
//     every injected pod is stamped with the hash of, cannot be patched.
//
// It fails with an *InvalidError of reason ReasonOverlayNotApplicable whose
// errors name the overlay and the object.
func ApplyOverlays(overlays []meshv1alpha1.Overlay, objs []client.Object) ([]client.Object, error) {
	if len(overlays) == 0 {
		return objs, nil
	}
	out := slices.Clone(objs)
	rendered := map[string]bool{}
	for _, o := range objs {
		if rev := o.GetLabels()[LabelRevision]; rev != "" {
			rendered[rev] = true
		}
	}
	var errs field.ErrorList
	budget := &growthBudget{left: MaxOverlayGrowthBytes}
	for i, ov := range overlays {
		if err := applyOverlay(overlaysPath.Index(i), ov, out, rendered, budget); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, &InvalidError{Reason: meshv1alpha1.ReasonOverlayNotApplicable, Errs: errs}
	}
	return out, nil
}

// privilegedKinds are the kinds overlays may not patch: RBAC objects, whose
// patch would grant istiod (and whoever holds its token) more than
// meshkeeper renders, and webhook configurations, whose patch would send
// the API server's admission requests elsewhere. Writing a MeshInstall
// should not amount to cluster-admin.
var privilegedKinds = map[string]bool{
	"ClusterRole": true, "ClusterRoleBinding": true, "Role": true, "RoleBinding": true,
	"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true,
}

// applyOverlay patches, in objs, every object ov targets.
func applyOverlay(path *field.Path, ov meshv1alpha1.Overlay, objs []client.Object, rendered map[string]bool, budget *growthBudget) *field.Error {
	t := ov.Target
	fail := func(format string, args ...any) *field.Error {
		return field.Invalid(path, targetString(t), fmt.Sprintf(format, args...))
	}
	if privilegedKinds[t.Kind] {
		return field.Forbidden(path.Child("target", "kind"), fmt.Sprintf("overlays may not patch a %s: RBAC objects and webhook "+
			"configurations would let a MeshInstall grant permissions or redirect admission requests; "+
			"grant istiod more with a Role and binding of your own for its ServiceAccount", t.Kind))
	}
	if err := validateJSONPatch(path.Child("jsonPatch"), ov.JSONPatch); err != nil {
		return err
	}
	if t.Revision != "" && !rendered[t.Revision] {
		return nil
	}
	matchedIn := map[string]bool{} // revisions ("" for shared objects) with a match
	for j, o := range objs {
		if !targets(t, o) {
			continue
		}
		rev := o.GetLabels()[LabelRevision]
		matchedIn[rev] = true
		patched, err := patchObject(ov, o, budget)
		if err != nil {
			return fail("cannot patch %s: %v", objectString(o), err)
		}
		objs[j] = patched
	}
	if len(matchedIn) == 0 {
		return fail("matches no object meshkeeper renders; %s", candidates(t.Kind, objs))
	}
	if matchedIn[""] || t.Revision != "" {
		return nil
	}
	for _, rev := range slices.Sorted(maps.Keys(rendered)) {
		if !matchedIn[rev] {
			return fail("matches no object of revision %s, whose version renders no such object; remove the overlay, or pin it with target.revision to the revisions that have it", rev)
		}
	}
	return nil
}

// targets reports whether t names o.
func targets(t meshv1alpha1.OverlayTarget, o client.Object) bool {
	rev := o.GetLabels()[LabelRevision]
	return o.GetObjectKind().GroupVersionKind().Kind == t.Kind &&
		(t.Namespace == "" || t.Namespace == o.GetNamespace()) &&
		(t.Revision == "" || t.Revision == rev) &&
		ComponentName(o.GetName(), rev) == t.Name
}

// ComponentName is the name an object of revision rev has in the in-place
// revision, as overlays target it: its name without the "-<rev>" the
// revision's objects carry after the component's name (istiod-1-32-0 →
// istiod, istio-validator-1-32-0-istio-system → istio-validator-istio-system).
// Shared and in-place objects keep their name.
func ComponentName(name, rev string) string {
	if rev == "" || rev == DefaultRevision {
		return name
	}
	suffix := "-" + rev
	for from := 0; ; {
		i := strings.Index(name[from:], suffix)
		if i < 0 {
			return name
		}
		end := from + i + len(suffix)
		if end == len(name) || name[end] == '-' {
			return name[:from+i] + name[end:]
		}
		from = end
	}
}

// growthBudget is what the overlays of one pass may still add, in bytes.
type growthBudget struct{ left int }

// spend charges the growth from before to after bytes, refusing it past
// the budget.
func (b *growthBudget) spend(before, after int) error {
	if grown := after - before; grown > b.left {
		return fmt.Errorf("the overlays grow the objects meshkeeper renders by more than %d bytes in all", MaxOverlayGrowthBytes)
	} else if grown > 0 {
		b.left -= grown
	}
	return nil
}

// patchObject returns a patched copy of o.
func patchObject(ov meshv1alpha1.Overlay, o client.Object, budget *growthBudget) (client.Object, error) {
	if o.GetLabels()[LabelInjectionConfig] == "true" {
		return nil, errors.New("it is meshkeeper's injection configuration, whose hash every injected pod carries; " +
			"set spec.injection or spec.proxy instead")
	}
	doc, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	size := len(doc)
	_, typed := o.(*unstructured.Unstructured)
	typed = !typed
	switch {
	case ov.StrategicMerge != nil && typed:
		doc, err = strategicpatch.StrategicMergePatch(doc, ov.StrategicMerge.Raw, reflect.New(reflect.TypeOf(o).Elem()).Interface())
	case ov.StrategicMerge != nil:
		doc, err = jsonpatch.MergePatch(doc, ov.StrategicMerge.Raw)
	default:
		doc, err = applyJSONPatch(ov.JSONPatch, doc)
	}
	if err != nil {
		return nil, err
	}
	if len(doc) > MaxObjectBytes {
		return nil, fmt.Errorf("the result is %d bytes, more than the %d an object may have", len(doc), MaxObjectBytes)
	}
	if err := budget.spend(size, len(doc)); err != nil {
		return nil, err
	}
	patched := reflect.New(reflect.TypeOf(o).Elem()).Interface().(client.Object)
	if typed {
		strict, err := strictjson.UnmarshalStrict(doc, patched)
		if err != nil {
			return nil, fmt.Errorf("the result is not a valid %s: %w", o.GetObjectKind().GroupVersionKind().Kind, err)
		}
		if len(strict) > 0 {
			return nil, fmt.Errorf("the result is not a valid %s: %w", o.GetObjectKind().GroupVersionKind().Kind, errors.Join(strict...))
		}
	} else if err := json.Unmarshal(doc, patched); err != nil {
		return nil, fmt.Errorf("the result is not a valid object: %w", err)
	}
	if err := checkProtected(o, patched); err != nil {
		return nil, err
	}
	return patched, nil
}

// jsonPatchOperation is an RFC 6902 operation as the library reads it.
type jsonPatchOperation struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	From  *string         `json:"from,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// validateJSONPatch requires a value of add, replace and test, and refuses
// one elsewhere, which the CRD cannot check on an untyped field.
func validateJSONPatch(path *field.Path, ops []meshv1alpha1.JSONPatchOperation) *field.Error {
	for j, op := range ops {
		needsValue := op.Op == meshv1alpha1.JSONPatchAdd || op.Op == meshv1alpha1.JSONPatchReplace || op.Op == meshv1alpha1.JSONPatchTest
		switch hasValue := op.Value != nil && len(op.Value.Raw) > 0; {
		case needsValue && !hasValue:
			return field.Required(path.Index(j).Child("value"), "the "+string(op.Op)+" operation needs a value")
		case !needsValue && hasValue:
			return field.Forbidden(path.Index(j).Child("value"), "the "+string(op.Op)+" operation takes no value")
		}
	}
	return nil
}

func applyJSONPatch(ops []meshv1alpha1.JSONPatchOperation, doc []byte) ([]byte, error) {
	list := make([]jsonPatchOperation, len(ops))
	for i, op := range ops {
		list[i] = jsonPatchOperation{Op: string(op.Op), Path: op.Path, From: op.From}
		if op.Value != nil {
			list[i].Value = op.Value.Raw
		}
	}
	raw, err := json.Marshal(list)
	if err != nil {
		return nil, err
	}
	patch, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		return nil, err
	}
	opts := jsonpatch.NewApplyOptions()
	opts.AccumulatedCopySizeLimit = MaxOverlayCopyBytes
	out, err := patch.ApplyWithOptions(doc, opts)
	var tooMuch *jsonpatch.AccumulatedCopySizeError
	if errors.As(err, &tooMuch) {
		return nil, fmt.Errorf("its copy operations copy more than %d bytes", MaxOverlayCopyBytes)
	}
	return out, err
}

// protectedKey reports whether a label or annotation is one meshkeeper
// finds, prunes and compares its objects by, or istiod reads its revision
// from: mesh.meshkeeper.dev/*, app.kubernetes.io/managed-by,
// app.kubernetes.io/version (the version a revision runs) and istio.io/rev.
func protectedKey(k string) bool {
	return strings.HasPrefix(k, meshv1alpha1.GroupVersion.Group+"/") ||
		k == LabelManagedBy || k == LabelVersion || k == labelRev
}

// checkProtected refuses a patch that changes what meshkeeper's
// bookkeeping relies on.
func checkProtected(before, after client.Object) error {
	refuse := func(what string) error {
		return fmt.Errorf("the patch changes %s, which meshkeeper tracks its objects by; "+
			"overlays may not change kinds, names, namespaces, owner references, nor meshkeeper's labels and annotations "+
			"(mesh.meshkeeper.dev/*, %s, %s, %s)", what, LabelManagedBy, LabelVersion, labelRev)
	}
	switch {
	case before.GetObjectKind().GroupVersionKind() != after.GetObjectKind().GroupVersionKind():
		return refuse("apiVersion or kind")
	case before.GetName() != after.GetName() || before.GetGenerateName() != after.GetGenerateName():
		return refuse("metadata.name")
	case before.GetNamespace() != after.GetNamespace():
		return refuse("metadata.namespace")
	case !equality.Semantic.DeepEqual(before.GetOwnerReferences(), after.GetOwnerReferences()):
		return refuse("metadata.ownerReferences")
	}
	if k := changedKey(before.GetLabels(), after.GetLabels()); k != "" {
		return refuse("metadata.labels[" + k + "]")
	}
	if k := changedKey(before.GetAnnotations(), after.GetAnnotations()); k != "" {
		return refuse("metadata.annotations[" + k + "]")
	}
	// A Deployment's pods are found and counted by its selector and their labels.
	if b, ok := before.(*appsv1.Deployment); ok {
		a := after.(*appsv1.Deployment)
		if !equality.Semantic.DeepEqual(b.Spec.Selector, a.Spec.Selector) {
			return refuse("spec.selector")
		}
		if k := changedKey(b.Spec.Template.Labels, a.Spec.Template.Labels); k != "" {
			return refuse("spec.template.metadata.labels[" + k + "]")
		}
	}
	return nil
}

// changedKey is a protected key whose presence or value differs, or "".
func changedKey(before, after map[string]string) string {
	keys := slices.Sorted(maps.Keys(before))
	keys = append(keys, slices.Sorted(maps.Keys(after))...)
	for _, k := range keys {
		if !protectedKey(k) {
			continue
		}
		b, inBefore := before[k]
		a, inAfter := after[k]
		if inBefore != inAfter || a != b {
			return k
		}
	}
	return ""
}

// candidates lists the names a target of kind could use, for a message.
func candidates(kind string, objs []client.Object) string {
	var names []string
	for _, o := range objs {
		if o.GetObjectKind().GroupVersionKind().Kind == kind {
			names = append(names, ComponentName(o.GetName(), o.GetLabels()[LabelRevision]))
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) == 0 {
		return "it renders no " + kind
	}
	return fmt.Sprintf("its %ss are named %s (name objects as the in-place revision does: istiod, not istiod-<revision>)",
		kind, strings.Join(names, ", "))
}

func targetString(t meshv1alpha1.OverlayTarget) string {
	s := t.Kind + " " + t.Name
	if t.Namespace != "" {
		s += " in namespace " + t.Namespace
	}
	if t.Revision != "" {
		s += " of revision " + t.Revision
	}
	return s
}

func objectString(o client.Object) string {
	name := o.GetName()
	if ns := o.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return o.GetObjectKind().GroupVersionKind().Kind + " " + name
}

// Pass renders what one reconcile pass applies: ControlPlane for each
// revision and Shared for active, with spec.overlays applied over all of
// them (ApplyOverlays). The reconciler and the admission webhook both
// render through it, so what admission accepts is what is applied.
func Pass(mi *meshv1alpha1.MeshInstall, revisions []Revision, active Revision) (perRevision [][]client.Object, shared []client.Object, err error) {
	var all []client.Object
	counts := make([]int, len(revisions))
	for i, rev := range revisions {
		objs, err := ControlPlane(mi, rev)
		if err != nil {
			return nil, nil, err
		}
		counts[i] = len(objs)
		all = append(all, objs...)
	}
	shared, err = Shared(mi, active)
	if err != nil {
		return nil, nil, err
	}
	all = append(all, shared...)
	if all, err = ApplyOverlays(mi.Spec.Overlays, all); err != nil {
		return nil, nil, err
	}
	perRevision = make([][]client.Object, len(revisions))
	for i, n := range counts {
		perRevision[i], all = all[:n:n], all[n:]
	}
	return perRevision, all, nil
}
