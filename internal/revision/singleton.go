package revision

import (
	"fmt"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
)

// CheckSingleton refuses mi unless it is the MeshInstall that manages the
// cluster's mesh: one control plane, one injector per cluster. stored are
// the MeshInstalls the API server holds. Admission and the reconciler ask
// the same question: at admission mi is not stored yet, so any live
// MeshInstall refuses it; in the reconciler the oldest one wins.
func CheckSingleton(mi *meshv1alpha1.MeshInstall, stored []meshv1alpha1.MeshInstall) error {
	m := meshManager(stored)
	if m == nil || m.Name == mi.Name {
		return nil
	}
	return &refusal.Error{Reason: meshv1alpha1.ReasonNamespaceConflict, Message: fmt.Sprintf(
		"MeshInstall %s already manages the mesh of this cluster; only one MeshInstall is supported", m.Name)}
}

// meshManager is the oldest of stored not being deleted (creation time,
// then name), nil when there is none.
func meshManager(stored []meshv1alpha1.MeshInstall) *meshv1alpha1.MeshInstall {
	var oldest *meshv1alpha1.MeshInstall
	for i := range stored {
		o := &stored[i]
		if !o.DeletionTimestamp.IsZero() {
			continue
		}
		if oldest == nil || o.CreationTimestamp.Before(&oldest.CreationTimestamp) ||
			(o.CreationTimestamp.Equal(&oldest.CreationTimestamp) && o.Name < oldest.Name) {
			oldest = o
		}
	}
	return oldest
}
