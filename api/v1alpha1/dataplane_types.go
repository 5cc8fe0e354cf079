package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// RolloutMode says whether meshkeeper restarts workloads onto their new proxy.
// +kubebuilder:validation:Enum=Manual;Automatic
type RolloutMode string

const (
	// RolloutManual reports the workloads to restart and restarts none.
	RolloutManual RolloutMode = "Manual"
	// RolloutAutomatic restarts them, a few at a time, each one's rollout awaited.
	RolloutAutomatic RolloutMode = "Automatic"
)

// DataPlaneSpec configures what meshkeeper does with the injected workloads.
type DataPlaneSpec struct {
	// Rollout moves workloads onto the proxy and revision they should run,
	// after an upgrade or at each canary step, and repairs pods that missed
	// injection.
	// +kubebuilder:default={}
	// +optional
	Rollout DataPlaneRollout `json:"rollout,omitempty"`
}

// DataPlaneRollout says how workloads are restarted. A restart is what
// kubectl rollout restart does. Deployments, StatefulSets and DaemonSets are
// restarted; Jobs and pods without a controller are only reported. A
// workload or its namespace opts out with the annotation
// mesh.meshkeeper.dev/rollout: disabled.
// +kubebuilder:validation:XValidation:rule="!has(self.maxConcurrent) || (type(self.maxConcurrent) == int ? int(self.maxConcurrent) >= 1 : string(self.maxConcurrent).matches('^([1-9][0-9]?|100)%$'))",message="spec.dataPlane.rollout.maxConcurrent must be a number of at least 1 or a percentage from 1% to 100%"
type DataPlaneRollout struct {
	// Mode is Manual (report only, the default) or Automatic.
	// +kubebuilder:default=Manual
	// +optional
	Mode RolloutMode `json:"mode,omitempty"`

	// MaxConcurrent is how many workloads restart at once: a number, or a
	// percentage of the workloads to restart (rounded up).
	// +kubebuilder:default=1
	// +kubebuilder:validation:XIntOrString
	// +optional
	MaxConcurrent *intstr.IntOrString `json:"maxConcurrent,omitempty"`

	// PauseBetween is how long to wait after a workload finished before
	// the next one starts.
	// +kubebuilder:default="0s"
	// +optional
	PauseBetween *metav1.Duration `json:"pauseBetween,omitempty"`

	// ProgressDeadline is how long one workload may take to roll out. A
	// workload that misses it stops the rollout (no further restarts) until
	// it is fixed or opted out; meshkeeper never rolls it back itself.
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5s')",message="spec.dataPlane.rollout.progressDeadline must be at least 5s"
	// +optional
	ProgressDeadline *metav1.Duration `json:"progressDeadline,omitempty"`

	// Paused holds every restart; those already started finish.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// Annotations of the data plane rollout.
const (
	// AnnotationRollout on a workload or a namespace, with value "disabled",
	// keeps meshkeeper from restarting it.
	AnnotationRollout = "mesh.meshkeeper.dev/rollout"
	// RolloutDisabled is AnnotationRollout's opt-out value.
	RolloutDisabled = "disabled"
	// AnnotationRestart on a workload, with value "allow", lets meshkeeper
	// restart a workload whose restart takes all of it down at once (a
	// Recreate Deployment, a single-replica StatefulSet, a rolling update
	// that may stop every replica), which it otherwise only reports.
	AnnotationRestart = "mesh.meshkeeper.dev/restart"
	// RestartAllow is AnnotationRestart's opt-in value.
	RestartAllow = "allow"
	// AnnotationRestartedFor is set on a workload's pod template when
	// meshkeeper restarts it: the target it restarted it for
	// (<revision>/<configuration hash>), so the same restart is never made twice.
	AnnotationRestartedFor = "mesh.meshkeeper.dev/restarted-for"
	// AnnotationRestartedAt is kubectl rollout restart's own annotation,
	// which meshkeeper sets the same way.
	AnnotationRestartedAt = "kubectl.kubernetes.io/restartedAt"
)

// RolloutPhase summarises the data plane rollout.
// +kubebuilder:validation:Enum=Idle;Rolling;Waiting;Paused;Failed;Manual
type RolloutPhase string

// Phases of the data plane rollout.
const (
	// RolloutIdle: every workload runs what it should.
	RolloutIdle RolloutPhase = "Idle"
	// RolloutRolling: workloads are being restarted.
	RolloutRolling RolloutPhase = "Rolling"
	// RolloutWaiting: workloads wait for their target to be available, or for pauseBetween.
	RolloutWaiting RolloutPhase = "Waiting"
	// RolloutPaused: spec.dataPlane.rollout.paused holds the rollout.
	RolloutPaused RolloutPhase = "Paused"
	// RolloutFailed: a workload missed its progress deadline; nothing else is restarted.
	RolloutFailed RolloutPhase = "Failed"
	// RolloutManualPhase: Manual mode, workloads to restart are listed.
	RolloutManualPhase RolloutPhase = "Manual"
)

// RolloutStatus reports the data plane rollout.
type RolloutStatus struct {
	// Phase is Idle, Rolling, Waiting, Paused, Failed or Manual.
	Phase RolloutPhase `json:"phase"`
	// Total is the number of workloads that run, or were restarted to run, another proxy than they should.
	// +optional
	Total int32 `json:"total"`
	// Done restarted workloads run their target.
	// +optional
	Done int32 `json:"done"`
	// InProgress are restarting.
	// +optional
	InProgress int32 `json:"inProgress"`
	// Waiting are still to be restarted.
	// +optional
	Waiting int32 `json:"waiting"`
	// Failed missed their progress deadline.
	// +optional
	Failed int32 `json:"failed"`
	// Skipped are opted out, or cannot be restarted (Jobs, bare pods): they need a manual action.
	// +optional
	Skipped int32 `json:"skipped"`
	// Current are the workloads restarting now (Kind namespace/name).
	// +listType=atomic
	// +optional
	Current []string `json:"current,omitempty"`
	// Pending are the workloads still to restart, first ones first; in
	// Manual mode, the workloads to restart yourself (at most 50 listed).
	// +listType=atomic
	// +optional
	Pending []string `json:"pending,omitempty"`
	// NeedsManualAction are the pods and workloads meshkeeper never
	// restarts (Jobs, bare pods, opted-out workloads, and workloads whose
	// restart would stop all of their pods at once, unless annotated
	// mesh.meshkeeper.dev/restart: allow) that run another proxy than they
	// should (at most 50 listed).
	// +listType=atomic
	// +optional
	NeedsManualAction []string `json:"needsManualAction,omitempty"`
	// LastError names the workload that stopped the rollout and why.
	// +optional
	LastError string `json:"lastError,omitempty"`
	// LastFinishedTime is when a restarted workload last finished; the next
	// starts pauseBetween later.
	// +optional
	LastFinishedTime *metav1.Time `json:"lastFinishedTime,omitempty"`
}
