package render

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// DefaultRevision is the revision installed in place: its objects have no
// revision suffix (istiod, istio, istio-validator-<ns>).
const DefaultRevision = "default"

// maxRevisionNameLength keeps istiod-<rev> a valid Service name (63).
const maxRevisionNameLength = 63 - len("istiod-")

// Revision is one control plane revision: its name ("default", or e.g.
// "1-32-0" for a canary) and the Istio version it runs.
type Revision struct {
	Name    string
	Version version.Version
	// ProxyVersion is the version its injection configuration gives new
	// pods, when it differs from Version: during an in-place upgrade the
	// proxy follows only once the new istiod is available. Zero means Version.
	ProxyVersion version.Version
	// CertificateAuthority is the CA istiod runs with, as
	// CertificateAuthorityOf says: "" for istiod's own. It is what the
	// reconciler knows is issued, which lags the spec while cert-manager
	// issues a new CA. istiod restarts when it changes.
	CertificateAuthority string
	// NodesWithoutNativeSidecars says some node of the cluster cannot run
	// native sidecars (its kubelet is older than Kubernetes 1.33 or reports
	// a version that cannot be read), as the reconciler observed.
	// spec.injection.nativeSidecars Auto then injects classic sidecars, as
	// Istio's injector does; false (every node can, or there are none)
	// injects native ones.
	NodesWithoutNativeSidecars bool
	// InjectCNI makes its injection configuration inject pods for the
	// istio-cni node agent, with spec.cni's provider: the planner sets it
	// once the agent is ready for the revision (revision.planCNI).
	InjectCNI bool
}

// proxy is the version of the sidecars the revision injects.
func (r Revision) proxy() version.Version {
	if r.ProxyVersion.Release.Minor == "" {
		return r.Version
	}
	return r.ProxyVersion
}

// NewRevision parses version and checks name, for callers holding strings.
func NewRevision(name, istioVersion string) (Revision, error) {
	v, err := version.Parse(istioVersion)
	if err != nil {
		return Revision{}, err
	}
	rev := Revision{Name: name, Version: v}
	if errs := validateRevision(rev, field.NewPath("revision")); len(errs) > 0 {
		return Revision{}, errs.ToAggregate()
	}
	return rev, nil
}

// suffix is "" for the default revision and "-<name>" otherwise, as Istio
// names a revision's objects.
func (r Revision) suffix() string {
	if r.Name == DefaultRevision {
		return ""
	}
	return "-" + r.Name
}

// IstiodName is the name of a revision's istiod Deployment, Service,
// ServiceAccount, HPA and PodDisruptionBudget: istiod or istiod-<rev>.
func IstiodName(revision string) string { return "istiod" + Revision{Name: revision}.suffix() }

// MeshConfigMapName is the name of a revision's mesh config ConfigMap: istio or istio-<rev>.
func MeshConfigMapName(revision string) string { return "istio" + Revision{Name: revision}.suffix() }

// RoutingConfigMapName is the ConfigMap, in the control plane namespace,
// that says where the revision tags send new pods; the injector reads it.
const RoutingConfigMapName = "meshkeeper-routing"

// InjectionConfigMapName is the name of the ConfigMap holding a revision's
// inject.Config: meshkeeper-injector or meshkeeper-injector-<rev>.
func InjectionConfigMapName(revision string) string {
	return "meshkeeper-injector" + Revision{Name: revision}.suffix()
}

// ValidatorName is the name of a revision's ValidatingWebhookConfiguration:
// istio-validator[-<rev>]-<namespace>.
func ValidatorName(revision, namespace string) string {
	return "istio-validator" + Revision{Name: revision}.suffix() + "-" + namespace
}

// DefaultValidatorName is the ValidatingWebhookConfiguration that validates
// Istio config without an istio.io/rev label. istiod reads its istio.io/rev
// label to learn which revision is the default one, so it follows the
// active revision.
const DefaultValidatorName = "istiod-default-validator"

// DiscoveryAddress is the xDS and CA address of a revision's istiod.
func DiscoveryAddress(revision, namespace string) string {
	return fmt.Sprintf("%s.%s.svc:15012", IstiodName(revision), namespace)
}

// InvalidError says the MeshInstall (or a revision) cannot be rendered as
// written. It is terminal: retrying cannot help until the spec changes.
type InvalidError struct {
	// Reason is the api/v1alpha1 condition reason: ReasonUnsupportedVersion
	// or ReasonInvalidSpec.
	Reason string
	// Errs name each offending field.
	Errs field.ErrorList
}

func (e *InvalidError) Error() string { return e.Errs.ToAggregate().Error() }

func invalid(errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	reason := meshv1alpha1.ReasonInvalidSpec
	for _, e := range errs {
		if e.Field == "spec.version" {
			reason = meshv1alpha1.ReasonUnsupportedVersion
		}
	}
	return &InvalidError{Reason: reason, Errs: errs}
}

func validateRevision(rev Revision, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(rev.Name) {
		errs = append(errs, field.Invalid(path.Child("name"), rev.Name, msg))
	}
	if len(rev.Name) > maxRevisionNameLength {
		errs = append(errs, field.TooLong(path.Child("name"), rev.Name, maxRevisionNameLength))
	}
	if rev.Version.Release.Minor == "" {
		errs = append(errs, field.Required(path.Child("version"), "a parsed, supported Istio version"))
	}
	return errs
}
