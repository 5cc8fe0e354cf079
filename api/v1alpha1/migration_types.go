package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// ForeignControlPlaneAction is what meshkeeper does with the Istio control
// plane it migrated off once no pod uses it.
// +kubebuilder:validation:Enum=Remove;Keep
type ForeignControlPlaneAction string

const (
	// ForeignControlPlaneRemove deletes the foreign revision's injector and
	// validator webhook configurations and its istiod Deployment, named
	// exactly as detected; nothing else of it (never Istio's CRDs, never
	// users' objects in its namespace).
	ForeignControlPlaneRemove ForeignControlPlaneAction = "Remove"
	// ForeignControlPlaneKeep leaves it for its own tool (`istioctl
	// uninstall --revision`, `helm uninstall`); its injector entries stay
	// narrowed so that it injects no pod.
	ForeignControlPlaneKeep ForeignControlPlaneAction = "Keep"
)

// MigrationSpec adopts an Istio control plane meshkeeper did not make
// (istioctl, Helm, Sail) as the stable side of a canary whose canary is
// meshkeeper's own revision: workloads move to meshkeeper's revision step by
// step, and the foreign one is removed (or left) once no pod uses it.
// Removing spec.migration before it completed aborts it: every workload
// returns to the foreign revision and its injector is restored as it was.
type MigrationSpec struct {
	// Revision is the foreign revision to migrate off: its istio.io/rev
	// label, "default" for an istioctl or Helm install without --revision.
	// It must be one the MeshInstall's Stalled ForeignIstioInstallation
	// condition names.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=53
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Revision string `json:"revision"`

	// Namespace of the foreign istiod (normally istio-system).
	// +kubebuilder:default=istio-system
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// ForeignControlPlane is what happens to the foreign control plane once
	// no pod has used it for spec.updateStrategy.inactiveRevisionDeletionGracePeriod:
	// Remove (its injector and validator entries and istiod are deleted) or
	// Keep (left for `istioctl uninstall --revision` or `helm uninstall`).
	// +kubebuilder:default=Keep
	// +optional
	ForeignControlPlane ForeignControlPlaneAction `json:"foreignControlPlane,omitempty"`
}

// MigrationPhase is where a migration stands.
// +kubebuilder:validation:Enum=HandingOver;Moving;Complete;Aborting;Aborted
type MigrationPhase string

const (
	// MigrationHandingOver: the foreign injector's entries are narrowed to
	// leave out migrated pods, and meshkeeper's revision comes up; no
	// workload has moved yet.
	MigrationHandingOver MigrationPhase = "HandingOver"
	// MigrationMoving: workloads move to meshkeeper's revision step by step.
	MigrationMoving MigrationPhase = "Moving"
	// MigrationComplete: every workload runs on meshkeeper's revision.
	MigrationComplete MigrationPhase = "Complete"
	// MigrationAborting: spec.migration was removed; workloads return to
	// the foreign revision before its injector is restored.
	MigrationAborting MigrationPhase = "Aborting"
	// MigrationAborted: the foreign injector is restored as it was.
	MigrationAborted MigrationPhase = "Aborted"
)

// MigrationStatus is the progress of a migration off a foreign control plane.
type MigrationStatus struct {
	// Revision is the foreign revision being migrated off.
	Revision string `json:"revision"`
	// Namespace is its istiod's namespace.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Phase is HandingOver, Moving, Complete, Aborting or Aborted.
	Phase MigrationPhase `json:"phase"`
	// Weight is the percentage of workloads assigned to meshkeeper's revision.
	// +optional
	Weight int32 `json:"weight"`
	// MigratedWorkloads are the workloads whose pod template carries
	// mesh.meshkeeper.dev/migrated, injected by meshkeeper.
	// +optional
	MigratedWorkloads int32 `json:"migratedWorkloads"`
	// ForeignPods are the running pods still injected by the foreign revision.
	// +optional
	ForeignPods int32 `json:"foreignPods"`
	// NarrowedWebhookConfigurations are the foreign injector's webhook
	// configurations whose entries leave out migrated pods.
	// +optional
	// +listType=atomic
	NarrowedWebhookConfigurations []string `json:"narrowedWebhookConfigurations,omitempty"`
	// StepStartTime is when the current weight was set.
	// +optional
	StepStartTime *metav1.Time `json:"stepStartTime,omitempty"`
	// ForeignUnusedSince is when no running pod was first seen injected by
	// the foreign revision; the migration completes
	// spec.updateStrategy.inactiveRevisionDeletionGracePeriod later.
	// +optional
	ForeignUnusedSince *metav1.Time `json:"foreignUnusedSince,omitempty"`
	// Message says what happens now, or what blocks the next step.
	// +optional
	Message string `json:"message,omitempty"`
}
