package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Overlay is a patch meshkeeper applies to one object it renders, before it
// applies it: the escape hatch for a setting the MeshInstall API has no field
// for, as IstioOperator's k8s overlays and kustomize patches are. Exactly one
// of strategicMerge and jsonPatch is set. An overlay that does not apply (no
// object matches, a JSON patch operation fails, the result is not a valid
// object, or it would change what meshkeeper tracks its objects by: kind,
// name, namespace, owner references and meshkeeper's labels) is refused
// when the MeshInstall is applied; one that stops applying later (an upgrade
// renders different objects) stops the reconciler, which then applies
// nothing and reports Stalled with reason OverlayNotApplicable.
// +kubebuilder:validation:XValidation:rule="has(self.strategicMerge) != has(self.jsonPatch)",message="spec.overlays[]: set exactly one of strategicMerge and jsonPatch"
type Overlay struct {
	// Target is the rendered object to patch.
	Target OverlayTarget `json:"target"`

	// StrategicMerge is a Kubernetes strategic merge patch (what kubectl
	// patch --type=strategic and kustomize patchesStrategicMerge take): a
	// partial object whose lists merge by their keys, e.g. containers and
	// env by name, so
	// {spec: {template: {spec: {containers: [{name: discovery, env: [{name: X, value: "1"}]}]}}}}
	// adds one variable to istiod. On kinds without a built-in schema
	// (PeerAuthentication) it is a JSON merge patch (RFC 7386): lists are
	// replaced whole.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	// +optional
	StrategicMerge *runtime.RawExtension `json:"strategicMerge,omitempty"`

	// JSONPatch is a list of JSON patch (RFC 6902) operations, applied in
	// order, for what a merge cannot say (removing one list entry, replacing
	// an entry by position). Paths are JSON pointers into the object,
	// e.g. /spec/template/spec/tolerations/- to append a toleration.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	JSONPatch []JSONPatchOperation `json:"jsonPatch,omitempty"`
}

// OverlayTarget names a rendered object. Name is the name the object has in
// the in-place (default) revision, which is Istio's name for it: istiod (its
// Deployment, Service, ServiceAccount, HPA, PodDisruptionBudget), istio (the
// mesh config ConfigMap), a gateway's name. The same component of a
// canary revision <rev> carries the revision after the component's name
// (istiod-<rev>, istio-<rev>), and the
// target matches it too: an overlay follows the control plane through
// in-place and canary upgrades. Set revision to patch one revision only.
type OverlayTarget struct {
	// Kind of the object. RBAC objects and webhook configurations cannot
	// be patched: that would make writing a MeshInstall a way to grant
	// permissions or redirect admission requests.
	// +kubebuilder:validation:Enum=ServiceAccount;ConfigMap;Service;Deployment;HorizontalPodAutoscaler;PodDisruptionBudget;PeerAuthentication
	Kind string `json:"kind"`

	// Name of the object in the in-place revision (see the target's description).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Namespace of the object, when the name alone matches objects in
	// several namespaces (gateways); empty matches every namespace.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// Revision limits the overlay to one control plane revision (default,
	// or e.g. 1-32-0). Empty patches the object in every revision, and the
	// objects that exist once (gateways, the default validator), which have
	// no revision.
	// +kubebuilder:validation:MaxLength=56
	// +optional
	Revision string `json:"revision,omitempty"`
}

// JSONPatchOp is the operation of a JSON patch (RFC 6902) entry.
// +kubebuilder:validation:Enum=add;remove;replace;move;copy;test
type JSONPatchOp string

// The operations of RFC 6902.
const (
	JSONPatchAdd     JSONPatchOp = "add"
	JSONPatchRemove  JSONPatchOp = "remove"
	JSONPatchReplace JSONPatchOp = "replace"
	JSONPatchMove    JSONPatchOp = "move"
	JSONPatchCopy    JSONPatchOp = "copy"
	JSONPatchTest    JSONPatchOp = "test"
)

// JSONPatchOperation is one RFC 6902 operation.
// +kubebuilder:validation:XValidation:rule="self.op in ['move', 'copy'] ? has(self.from) : !has(self.from)",message="spec.overlays[].jsonPatch[]: from is required by move and copy, and allowed only with them"
type JSONPatchOperation struct {
	// Op is the operation.
	Op JSONPatchOp `json:"op"`

	// Path is the JSON pointer (RFC 6901) the operation acts on.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^(/.*)?$`
	Path string `json:"path"`

	// From is the JSON pointer move and copy take the value from.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^(/.*)?$`
	// +optional
	From *string `json:"from,omitempty"`

	// Value is what add and replace set and test compares with: any JSON
	// value. Required by those three operations and allowed only with them
	// (checked by the validating webhook: the CRD's rules cannot see an
	// untyped field).
	// +optional
	Value *apiextensionsv1.JSON `json:"value,omitempty"`
}
