// Package ownership holds meshkeeper's one trust rule: which objects in the
// cluster are a MeshInstall's own. Labels prove nothing (anyone who may
// create a ConfigMap in their namespace may put meshkeeper's labels on it),
// so the operator and the injector believe an object only where meshkeeper
// controls the namespace, and only when the object carries the owning
// MeshInstall's controller reference, with its UID. Cluster-scoped objects
// are believed by that reference alone: only cluster administrators create
// them.
package ownership

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// AnnotationCreatedBy is set on a namespace meshkeeper created, to the UID
// of the MeshInstall that created it. A namespace carries no owner
// reference: the garbage collector would delete it, and everything users
// keep in it, with the MeshInstall. Only who may write namespaces (cluster
// administrators) can set it.
const AnnotationCreatedBy = "mesh.meshkeeper.dev/created-by"

// Scope is where one MeshInstall's objects may live, and who owns them.
type Scope struct {
	owner        types.UID
	controlPlane string
	namespaces   map[string]bool
	// cni are where the istio-cni node agent may run (CNINamespaces):
	// there, only the agent's objects (render.LabelCNI) can be the
	// MeshInstall's.
	cni map[string]bool
}

// Of is the scope of mi: its control plane namespace and the namespaces its
// gateways run in (both named by the MeshInstall's author), and the
// namespaces it created (created, e.g. those of gateways since removed,
// whose objects are still its own to remove).
func Of(mi *meshv1alpha1.MeshInstall, created ...string) Scope {
	s := Scope{owner: mi.UID, controlPlane: render.ControlPlaneNamespace(mi), namespaces: map[string]bool{}, cni: map[string]bool{}}
	for _, ns := range append(Namespaces(mi), created...) {
		s.namespaces[ns] = true
	}
	for _, ns := range CNINamespaces(mi) {
		s.cni[ns] = true
	}
	return s
}

// CNINamespaces are where mi's node agent may run: kube-system (the
// default, and where one that moved may still be, for it to be removed)
// and spec.cni.namespace. The manager caches only the agent's objects
// there (meshinstall.CacheOptions).
func CNINamespaces(mi *meshv1alpha1.MeshInstall) []string {
	if ns := render.CNINamespace(mi); ns != render.DefaultCNINamespace {
		return []string{render.DefaultCNINamespace, ns}
	}
	return []string{render.DefaultCNINamespace}
}

// Namespaces are the namespaces mi's spec puts objects in: the control
// plane's first, then its gateways', sorted, without repeats.
func Namespaces(mi *meshv1alpha1.MeshInstall) []string {
	cp := render.ControlPlaneNamespace(mi)
	var gateways []string
	for _, g := range render.Gateways(mi) {
		if g.Namespace != "" && g.Namespace != cp {
			gateways = append(gateways, g.Namespace)
		}
	}
	slices.Sort(gateways)
	return append([]string{cp}, slices.Compact(gateways)...)
}

// Owns reports whether o is the MeshInstall's: a namespaced object in one
// of its namespaces (or one of the node agent's in CNINamespaces), or a
// cluster-scoped one, with its controller reference.
func (s Scope) Owns(o metav1.Object) bool {
	if ns := o.GetNamespace(); ns != "" && !s.namespaces[ns] && !(s.cni[ns] && o.GetLabels()[render.LabelCNI] == "true") {
		return false
	}
	return ControlledBy(o, s.owner)
}

// Holds reports whether namespace is one of the MeshInstall's namespaces.
func (s Scope) Holds(namespace string) bool { return s.namespaces[namespace] }

// ControlPlane is the MeshInstall's control plane namespace.
func (s Scope) ControlPlane() string { return s.controlPlane }

// OwnsControlPlane reports whether o is one of the MeshInstall's control
// plane objects: in its control plane namespace, with its controller
// reference. What decides injection, routing and which revisions exist
// (istiod Deployments, injection and routing ConfigMaps) is believed only
// there: a gateway namespace may be shared with its users.
func (s Scope) OwnsControlPlane(o metav1.Object) bool {
	return o.GetNamespace() == s.controlPlane && ControlledBy(o, s.owner)
}

// ControlledBy reports whether o's controller reference names the object with uid.
func ControlledBy(o metav1.Object, uid types.UID) bool {
	if uid == "" {
		return false
	}
	ref := metav1.GetControllerOfNoCopy(o)
	return ref != nil && ref.UID == uid
}

// CreatedBy reports whether a namespace was created by the MeshInstall with
// uid: its AnnotationCreatedBy, or the controller reference older versions
// of meshkeeper set (removed by the next apply).
func CreatedBy(ns metav1.Object, uid types.UID) bool {
	if uid == "" {
		return false
	}
	return ns.GetAnnotations()[AnnotationCreatedBy] == string(uid) || ControlledBy(ns, uid)
}

// CheckNamespaces refuses a MeshInstall that puts its control plane
// or a gateway in a namespace the operator does not manage meshes in, or
// in the operator's own (removed with the operator by make undeploy). The
// reconciler and the MeshInstall validator both ask it: refused at
// admission, and never carried out by an operator whose flags changed since.
func CheckNamespaces(mi *meshv1alpha1.MeshInstall, managed []string, operatorNamespace string) error {
	for i, ns := range Namespaces(mi) {
		field := "spec.namespace"
		if i > 0 {
			field = "spec.gateways[].namespace"
		}
		switch {
		case ns == operatorNamespace:
			return &refusal.Error{Reason: meshv1alpha1.ReasonNamespaceNotManaged, Message: fmt.Sprintf(
				"%s: namespace %s is the operator's own; the mesh needs a namespace of its own", field, ns)}
		case !slices.Contains(managed, ns):
			return &refusal.Error{Reason: meshv1alpha1.ReasonNamespaceNotManaged, Message: fmt.Sprintf(
				"%s: namespace %s is not one the operator manages meshes in (its --mesh-namespaces flag: %s); "+
					"choose one of those, or add it to the flag", field, ns, strings.Join(managed, ", "))}
		}
	}
	return nil
}
