package v1alpha1

// Condition types of a MeshInstall and their reasons. Reasons are public API:
// tools and people match on them, so each is defined once, here, under the
// condition that reports it, and says what a user can do about it. A reason
// that more than one condition carries is defined under the first condition
// that reports it and names the others.
//
// Ready, Reconciling and Stalled follow the kstatus convention so that generic
// tooling (kubectl wait, Flux, Argo CD) understands a MeshInstall without
// knowing it. The order in which their reasons win over each other is one
// table in the controller (controllers/meshinstall/status.go, ladder).

// Ready.
const (
	// ConditionReady is True when the active control plane revision is
	// available and the observed spec has been applied.
	ConditionReady = "Ready"

	// ReasonReconcileSucceeded (Ready True; Reconciling and Stalled False):
	// the control plane matches the spec and nothing waits for a person.
	ReasonReconcileSucceeded = "ReconcileSucceeded"
	// ReasonControlPlaneNotReady (Ready False; Reconciling True): the active
	// istiod is not available yet with its current template.
	ReasonControlPlaneNotReady = "ControlPlaneNotReady"
	// ReasonApplyFailed (Ready False; Reconciling True): an object of the
	// pass could not be written; the message names it and the error. It is
	// retried with backoff.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonProgressing (Ready False; Reconciling True): the pass ended
	// before it could plan (a transient error, retried); the message says
	// which.
	ReasonProgressing = "Progressing"
	// ReasonSuspended (Reconciling False; Ready False on a MeshInstall that
	// never had a Ready condition): spec.suspend is true, nothing is
	// reconciled. Ready otherwise keeps what it last said.
	ReasonSuspended = "Suspended"
)

// Reconciling. Its phase reasons (Installing, UpgradingInPlace, the canary
// ones) also stand in Ready, False, while the active istiod is not available.
const (
	// ConditionReconciling is True while the operator is working towards the
	// desired state (installing, upgrading, moving workloads, pruning).
	ConditionReconciling = "Reconciling"

	// ReasonInstalling (Reconciling True; Ready False): the first control
	// plane revision is being installed.
	ReasonInstalling = "Installing"
	// ReasonUpgradingInPlace (Reconciling, UpgradeInProgress True): the
	// revision's istiod is replaced by the new version in place.
	ReasonUpgradingInPlace = "UpgradingInPlace"
	// ReasonCanaryInProgress (Reconciling, UpgradeInProgress True): a canary
	// revision runs beside the active one and takes part of the traffic.
	ReasonCanaryInProgress = "CanaryInProgress"
	// ReasonCanaryPaused (Reconciling, UpgradeInProgress True): the canary
	// waits at its weight (spec.updateStrategy.canary.paused).
	ReasonCanaryPaused = "CanaryPaused"
	// ReasonCanaryAborting (Reconciling, UpgradeInProgress True): the canary
	// is being rolled back to the active revision.
	ReasonCanaryAborting = "CanaryAborting"
	// ReasonMigrating (UpgradeInProgress True): spec.migration moves
	// workloads off a foreign Istio revision, or an abort moves them back
	// (status.migration says where it stands).
	ReasonMigrating = "Migrating"
	// ReasonPruningRevision (Reconciling True): an old revision drains and is
	// removed once no workload uses it.
	ReasonPruningRevision = "PruningRevision"
)

// Stalled. Its True reasons need a person: a refusal (the spec, or an
// upgrade rule, forbids what it asks; fix the spec) also stands in Ready
// False and Reconciling False, and nothing of the pass is applied.
const (
	// ConditionStalled is True when progress needs a human: the spec is
	// invalid, an upgrade rule forbids the change, or a new istiod missed its
	// progress deadline.
	ConditionStalled = "Stalled"

	// ReasonControlPlaneNotAvailable (Stalled True; Ready False; Reconciling
	// False; UpgradeInProgress False): a new istiod did not become available
	// within spec.updateStrategy.progressDeadline; no workload moves to it.
	ReasonControlPlaneNotAvailable = "ControlPlaneNotAvailable"
	// ReasonInvalidSpec: a field of the spec is invalid; the message names it.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonUnsupportedVersion: spec.version (or a canary's version) is not
	// one this operator can install.
	ReasonUnsupportedVersion = "UnsupportedVersion"
	// ReasonVersionSkewTooLarge: the upgrade skips more minor versions than
	// Istio supports (one in place, two between canary revisions).
	ReasonVersionSkewTooLarge = "VersionSkewTooLarge"
	// ReasonDowngradeNotAllowed: an in-place downgrade; use
	// updateStrategy.type Canary to move to an older version.
	ReasonDowngradeNotAllowed = "DowngradeNotAllowed"
	// ReasonStrategyChangeRejected: spec.updateStrategy.type changed while an
	// upgrade of the other type is in progress; finish or abort it first.
	ReasonStrategyChangeRejected = "StrategyChangeRejected"
	// ReasonNamespaceConflict: another MeshInstall already manages the mesh;
	// the oldest one wins and this one is not reconciled.
	ReasonNamespaceConflict = "NamespaceConflict"
	// ReasonOverlayNotApplicable: an entry of spec.overlays no longer
	// applies to the objects meshkeeper renders (after an upgrade, say);
	// nothing of the pass was applied. The message names the overlay.
	ReasonOverlayNotApplicable = "OverlayNotApplicable"
	// ReasonNamespaceNotManaged: spec.namespace or a gateway's namespace is
	// not one the operator was deployed to manage meshes in
	// (--mesh-namespaces). Meshkeeper reads its objects only where it
	// manages the namespace.
	ReasonNamespaceNotManaged = "NamespaceNotManaged"
	// ReasonObjectNotOwned: an object meshkeeper would create already
	// exists and is not this MeshInstall's; it is never written over.
	ReasonObjectNotOwned = "ObjectNotOwned"
	// ReasonForeignIstioInstallation: an Istio control plane meshkeeper
	// did not make (istioctl, Helm, Sail) runs in the cluster, or holds
	// objects of the names meshkeeper would create; meshkeeper writes over
	// none of it and runs no second injector beside it, so nothing was
	// applied. The message names what was found and how it was installed;
	// `kubectl meshkeeper translate` prints the equivalent MeshInstall.
	ReasonForeignIstioInstallation = "ForeignIstioInstallation"
	// ReasonCertificateAuthorityChangeRefused: the CA of a running mesh may
	// not change without AnnotationAllowCertificateAuthorityChange.
	ReasonCertificateAuthorityChangeRefused = "CertificateAuthorityChangeRefused"
)

// UpgradeInProgress. Its True reasons are the upgrade phases under
// Reconciling (UpgradingInPlace, CanaryInProgress, CanaryPaused,
// CanaryAborting); False is ReasonUpToDate, or ReasonControlPlaneNotAvailable
// when the upgrade stalled.
const (
	// ConditionUpgradeInProgress is True while a new version is rolling out,
	// in place or as a canary revision.
	ConditionUpgradeInProgress = "UpgradeInProgress"

	// ReasonUpToDate (UpgradeInProgress False; DataPlaneUpToDate True): no
	// upgrade is in progress, or every injected pod runs its revision's
	// current configuration.
	ReasonUpToDate = "UpToDate"
)

// DataPlaneUpToDate. True is ReasonUpToDate.
const (
	// ConditionDataPlaneUpToDate is True when every injected pod runs the
	// proxy of its revision's current injection configuration.
	ConditionDataPlaneUpToDate = "DataPlaneUpToDate"

	// ReasonOutdatedPods (False): pods run an older proxy or injection
	// configuration; restarting their workloads updates them.
	ReasonOutdatedPods = "OutdatedPods"
	// ReasonUninjectedPods (False): pods should have a sidecar but have
	// none; restarting their workloads injects them.
	ReasonUninjectedPods = "UninjectedPods"
	// ReasonInventoryUnavailable (Unknown): pods could not be listed.
	ReasonInventoryUnavailable = "InventoryUnavailable"
)

// WorkloadRollout.
const (
	// ConditionWorkloadRollout is True while meshkeeper restarts workloads
	// onto their new proxy; False says why not (complete, paused, failed
	// on a workload, Manual mode).
	ConditionWorkloadRollout = "WorkloadRollout"

	// ReasonRestarting (True): workloads are being restarted; the message
	// names them.
	ReasonRestarting = "Restarting"
	// ReasonRolloutWaiting (True): workloads wait their turn to be
	// restarted, at the rollout's pace.
	ReasonRolloutWaiting = "RolloutWaiting"
	// ReasonRolloutComplete (False): every workload runs the proxy it should.
	ReasonRolloutComplete = "RolloutComplete"
	// ReasonRolloutPaused (False): spec.dataPlane.rollout.paused is true.
	ReasonRolloutPaused = "RolloutPaused"
	// ReasonRolloutFailed (False): a workload's restart failed; the rollout
	// stops there and the message says why.
	ReasonRolloutFailed = "RolloutFailed"
	// ReasonRolloutManual (False): spec.dataPlane.rollout.mode is Manual;
	// the message gives the command that restarts a workload.
	ReasonRolloutManual = "ManualRollout"
)

// CertificateAuthorityReady. Its False reasons also stand in Ready (False)
// and Reconciling, and, when a person must act, in Stalled (True).
const (
	// ConditionCertificateAuthorityReady is True when the mesh CA from
	// cert-manager (spec.security.certificateAuthority type CertManager) is
	// issued for the current spec; False names what is missing. Absent with
	// istiod's own self-signed CA.
	ConditionCertificateAuthorityReady = "CertificateAuthorityReady"

	// ReasonCertificateIssued (True): Secret cacerts holds the mesh CA
	// issued by the spec's issuer.
	ReasonCertificateIssued = "CertificateIssued"
	// ReasonCertManagerNotInstalled (False, needs a person): cert-manager's
	// CRDs are not served.
	ReasonCertManagerNotInstalled = "CertManagerNotInstalled"
	// ReasonIssuerNotFound (False, needs a person):
	// spec.security.certificateAuthority.issuerRef names no issuer.
	ReasonIssuerNotFound = "IssuerNotFound"
	// ReasonIssuerNotReady (False): the issuer exists but is not Ready.
	ReasonIssuerNotReady = "IssuerNotReady"
	// ReasonCertificateIssuing (False): cert-manager is issuing the mesh CA
	// for the current spec.
	ReasonCertificateIssuing = "CertificateIssuing"
)

// CNIReady. Present while spec.cni is on, or while pods still rely on a
// node agent meshkeeper installed; absent otherwise. Its False reasons also
// stand in Ready (False) and Reconciling (True): no workload is routed to a
// revision the agent is not ready for.
const (
	// ConditionCNIReady is True when the istio-cni node agent's DaemonSet
	// runs its current template, updated and available, on every node it
	// is scheduled to and on every node that runs meshed pods.
	ConditionCNIReady = "CNIReady"

	// ReasonCNIAvailable (True): the agent is rolled out and available.
	ReasonCNIAvailable = "CNIAvailable"
	// ReasonCNIRollingOut (False): the DaemonSet is not updated or not
	// available on every node yet (a new version, a new node); the message
	// counts the nodes.
	ReasonCNIRollingOut = "CNIRollingOut"
	// ReasonCNINotOnNodes (False): nodes that run meshed pods run no ready
	// agent (spec.cni's nodeSelector, affinity or tolerations keep it off
	// them, or its pod there fails); the message names them.
	ReasonCNINotOnNodes = "CNINotOnNodes"
	// ReasonCNINetworkMissing (False): with spec.cni.provider multus, the
	// NetworkAttachmentDefinition default/istio-cni that injected pods ask
	// Multus for does not exist (or Multus is not installed).
	ReasonCNINetworkMissing = "CNINetworkMissing"
	// ReasonCNIRetained (False): spec.cni is off but running pods were
	// injected for the agent; it is removed once none is left (restart them).
	ReasonCNIRetained = "CNIRetained"
)

// PodSecurityCompatible. Present while meshed namespaces enforce a Pod
// Security level (pod-security.kubernetes.io/enforce baseline or
// restricted); absent otherwise. It judges the pods the active revision
// injects now (istio-init until the node agent is ready, istio-validation
// after): the injector refuses a pod that would fail its namespace's level,
// naming the setting, so a False condition means such pods are refused.
const (
	// ConditionPodSecurityCompatible is True when the pods the mesh injects
	// can pass the Pod Security level every meshed namespace enforces.
	ConditionPodSecurityCompatible = "PodSecurityCompatible"

	// ReasonPodSecurityMet (True): every enforced level can be met.
	ReasonPodSecurityMet = "PodSecurityMet"
	// ReasonPodSecurityGap (False): the message names the level, the
	// namespaces and the MeshInstall settings that fail it.
	ReasonPodSecurityGap = "PodSecurityGap"
)
