package v1alpha1

// Condition types of a MeshInstall. Ready, Reconciling and Stalled follow the
// kstatus convention so that generic tooling (kubectl wait, Flux, Argo CD)
// understands a MeshInstall without knowing it.
const (
	// ConditionReady is True when the active control plane revision is
	// available and the observed spec has been applied.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator is working towards the
	// desired state (installing, upgrading, moving workloads, pruning).
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when progress needs a human: the spec is
	// invalid, an upgrade rule forbids the change, or a new istiod missed its
	// progress deadline.
	ConditionStalled = "Stalled"
	// ConditionUpgradeInProgress is True while a new version is rolling out,
	// in place or as a canary revision.
	ConditionUpgradeInProgress = "UpgradeInProgress"
	// ConditionDataPlaneUpToDate is True when every injected pod runs the
	// proxy of its revision's current injection configuration.
	ConditionDataPlaneUpToDate = "DataPlaneUpToDate"
	// ConditionWorkloadRollout is True while meshkeeper restarts workloads
	// onto their new proxy; False says why not (complete, paused, failed
	// on a workload, Manual mode).
	ConditionWorkloadRollout = "WorkloadRollout"
	// ConditionCertificateAuthorityReady is True when the mesh CA from
	// cert-manager (spec.security.certificateAuthority type CertManager) is
	// issued for the current spec; False names what is missing. Absent with
	// istiod's own self-signed CA.
	ConditionCertificateAuthorityReady = "CertificateAuthorityReady"
)

// Condition reasons. Each names the cause a user can act on.
const (
	ReasonReconcileSucceeded     = "ReconcileSucceeded"
	ReasonProgressing            = "Progressing"
	ReasonInstalling             = "Installing"
	ReasonControlPlaneNotReady   = "ControlPlaneNotReady"
	ReasonApplyFailed            = "ApplyFailed"
	ReasonUnsupportedVersion     = "UnsupportedVersion"
	ReasonVersionSkewTooLarge    = "VersionSkewTooLarge"
	ReasonDowngradeNotAllowed    = "DowngradeNotAllowed"
	ReasonInvalidSpec            = "InvalidSpec"
	ReasonNamespaceConflict      = "NamespaceConflict"
	ReasonSuspended              = "Suspended"
	ReasonUpgradingInPlace       = "UpgradingInPlace"
	ReasonCanaryInProgress       = "CanaryInProgress"
	ReasonCanaryPaused           = "CanaryPaused"
	ReasonCanaryAborting         = "CanaryAborting"
	ReasonPruningRevision        = "PruningRevision"
	ReasonUpToDate               = "UpToDate"
	ReasonOutdatedPods           = "OutdatedPods"
	ReasonUninjectedPods         = "UninjectedPods"
	ReasonInventoryUnavailable   = "InventoryUnavailable"
	ReasonStrategyChangeRejected = "StrategyChangeRejected"
	// ReasonControlPlaneNotAvailable: a new istiod did not become available
	// within spec.updateStrategy.progressDeadline; no workload moves to it.
	ReasonControlPlaneNotAvailable = "ControlPlaneNotAvailable"
	// Reasons of ConditionWorkloadRollout.
	ReasonRestarting      = "Restarting"
	ReasonRolloutComplete = "RolloutComplete"
	ReasonRolloutPaused   = "RolloutPaused"
	ReasonRolloutWaiting  = "RolloutWaiting"
	ReasonRolloutFailed   = "RolloutFailed"
	ReasonRolloutManual   = "ManualRollout"
	// Reasons of ConditionCertificateAuthorityReady (the False ones also
	// stand in Ready, and, when a person must act, in Stalled).
	ReasonCertificateIssued = "CertificateIssued"
	// ReasonCertManagerNotInstalled: cert-manager's CRDs are not served.
	ReasonCertManagerNotInstalled = "CertManagerNotInstalled"
	// ReasonIssuerNotFound: spec.security.certificateAuthority.issuerRef names no issuer.
	ReasonIssuerNotFound = "IssuerNotFound"
	// ReasonIssuerNotReady: the issuer exists but is not Ready.
	ReasonIssuerNotReady = "IssuerNotReady"
	// ReasonCertificateIssuing: cert-manager is issuing the mesh CA for the current spec.
	ReasonCertificateIssuing = "CertificateIssuing"
	// ReasonCertificateAuthorityChangeRefused: the CA of a running mesh may
	// not change without AnnotationAllowCertificateAuthorityChange.
	ReasonCertificateAuthorityChangeRefused = "CertificateAuthorityChangeRefused"
)

// Reasons of the trust rule: meshkeeper reads its objects only where it
// manages the namespace, and never writes over an object it did not create.
const (
	// ReasonNamespaceNotManaged: spec.namespace or a gateway's namespace is
	// not one the operator was deployed to manage meshes in (--mesh-namespaces).
	ReasonNamespaceNotManaged = "NamespaceNotManaged"
	// ReasonObjectNotOwned: an object meshkeeper would create already
	// exists and is not this MeshInstall's; it is never written over.
	ReasonObjectNotOwned = "ObjectNotOwned"
)
