package controllers

import (
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// Labels meshkeeper puts on what it creates, to find, watch and prune it.
const (
	// LabelManagedBy marks every object meshkeeper applies; the manager's cache
	// only holds objects with it.
	LabelManagedBy = render.LabelManagedBy
	// ManagedByValue is LabelManagedBy's value.
	ManagedByValue = render.ManagedBy
	// LabelMeshInstall names the MeshInstall an object belongs to.
	LabelMeshInstall = render.LabelMeshInstall
	// LabelRevision names the control plane revision of a per-revision object.
	LabelRevision = render.LabelRevision
	// LabelVersion is the Istio version a per-revision object was rendered for.
	LabelVersion = render.LabelVersion
	// PodRevisionLabel is the injector's stamp on a pod: the revision that injected it.
	PodRevisionLabel = inject.LabelInjectedBy
)
