package inject

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	psa "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// Why the injector checks Pod Security at all: the API server enforces a
// namespace's Pod Security level after every mutating webhook, so a pod the
// injection makes fail the level is refused anyway, with a message about
// containers the user never wrote (istio-init's NET_ADMIN, istio-proxy's
// missing seccomp profile). The injector refuses it first, naming the
// MeshInstall or pod setting that makes it fail and what to change.
//
// It refuses only what the injection breaks: a pod that fails the level as
// it was created is left to Pod Security, whose message then is about the
// user's own containers. It reads only the namespace's enforce labels;
// exemptions and cluster-wide defaults of the API server's PodSecurity
// configuration are not visible to it, so a namespace without an enforce
// label is never checked, and an exempted pod in a labelled namespace is
// refused (label its namespace only with what is enforced on it).

// PodSecurityError says that the namespace enforces a Pod Security level
// that the pod passes as created and fails once injected, and which
// settings make it fail.
type PodSecurityError struct {
	// Namespace is the pod's namespace; Level what it enforces, e.g.
	// "restricted:latest".
	Namespace, Level string
	// Causes name each setting that makes the injected pod fail the level,
	// and what to change.
	Causes []string
	// Violations are Pod Security's own words for the injected pod.
	Violations string
}

// Error names the namespace, its level, the settings and Pod Security's
// findings.
func (e *PodSecurityError) Error() string {
	return fmt.Sprintf("namespace %s enforces Pod Security %q (label %s) and the injected pod would violate it: %s (Pod Security: %s)",
		e.Namespace, e.Level, psa.EnforceLevelLabel, strings.Join(e.Causes, "; "), e.Violations)
}

// IsPodSecurity reports whether err is a *PodSecurityError.
func IsPodSecurity(err error) bool {
	var pe *PodSecurityError
	return errors.As(err, &pe)
}

// podSecurityEvaluator is Kubernetes' own Pod Security evaluator, the one
// the API server enforces with.
var podSecurityEvaluator = sync.OnceValues(func() (policy.Evaluator, error) {
	return policy.NewEvaluator(policy.DefaultChecks(), nil)
})

// checkPodSecurity refuses the injected pod (in.pod) when the namespace's
// labels enforce a level that the pod as created (orig) passes and the
// injected pod fails.
func (in *injection) checkPodSecurity(orig *corev1.Pod, namespace string, labels map[string]string) error {
	if _, ok := labels[psa.EnforceLevelLabel]; !ok {
		return nil
	}
	p, errs := psa.PolicyToEvaluate(labels, psa.Policy{Enforce: psa.LevelVersion{Level: psa.LevelPrivileged, Version: psa.LatestVersion()}})
	if len(errs) > 0 || p.Enforce.Level == psa.LevelPrivileged {
		// Labels Pod Security cannot read are its own to report.
		return nil
	}
	ev, err := podSecurityEvaluator()
	if err != nil {
		return fmt.Errorf("pod security evaluator: %w", err)
	}
	injected := policy.AggregateCheckResults(ev.EvaluatePod(p.Enforce, &in.pod.ObjectMeta, &in.pod.Spec))
	if injected.Allowed {
		return nil
	}
	if own := policy.AggregateCheckResults(ev.EvaluatePod(p.Enforce, &orig.ObjectMeta, &orig.Spec)); !own.Allowed {
		return nil
	}
	return &PodSecurityError{
		Namespace:  namespace,
		Level:      p.Enforce.String(),
		Causes:     in.podSecurityCauses(p.Enforce.Level, orig),
		Violations: injected.ForbiddenDetail(),
	}
}

// podSecurityCauses names the settings that make the injected containers
// fail the level: those of Istio's sidecar template that need root,
// capabilities or privileges (baseline forbids the capabilities and
// privileges; restricted also root and a missing seccomp profile).
func (in *injection) podSecurityCauses(level psa.Level, orig *corev1.Pod) []string {
	restricted := level == psa.LevelRestricted
	var causes []string
	if !in.d.cni && findContainer(in.pod.Spec.InitContainers, InitContainerName) != nil {
		causes = append(causes, "spec.cni.enabled is false on the MeshInstall, so the pod gets istio-init, "+
			"which runs as root with NET_ADMIN and NET_RAW: enable spec.cni (pods then get the unprivileged istio-validation)")
	}
	trace := in.proxy.pc.GetProxyMetadata()["IPTABLES_TRACE_LOGGING"] == "true"
	if trace {
		causes = append(causes, "proxyMetadata IPTABLES_TRACE_LOGGING=true (proxy.istio.io/config or the mesh's defaultConfig) "+
			"runs istio-proxy privileged, as root, with NET_ADMIN: remove it")
	}
	if in.mode == "TPROXY" && !trace {
		source := "interceptionMode TPROXY of the proxy configuration (proxy.istio.io/config or the mesh's defaultConfig)"
		if orig.Annotations[annInterceptionMode] == "TPROXY" {
			source = "annotation " + annInterceptionMode + "=TPROXY"
		}
		causes = append(causes, source+" runs istio-proxy as root with NET_ADMIN: use REDIRECT")
	}
	if restricted && in.mode != "TPROXY" && !trace && in.pod.Annotations[annCapNetBindService] == "true" {
		causes = append(causes, "annotation "+annCapNetBindService+"=true runs istio-proxy as root: "+
			"remove it (restricted allows NET_BIND_SERVICE only to non-root containers)")
	}
	if restricted && in.cfg.SeccompProfile == nil && (orig.Spec.SecurityContext == nil || orig.Spec.SecurityContext.SeccompProfile == nil) {
		causes = append(causes, "spec.proxy.seccompProfile is unset on the MeshInstall and the pod sets no securityContext.seccompProfile, "+
			"so the injected containers have none: set spec.proxy.seccompProfile.type RuntimeDefault")
	}
	if len(causes) == 0 {
		causes = append(causes, "the security context of the containers the "+strings.Join(in.templates, ", ")+" template adds")
	}
	return causes
}

// PodSecurityGaps names what in a revision's configuration makes the pods
// it injects fail the Pod Security level ("baseline" or "restricted")
// whatever the pods are: what the MeshInstall must change for meshed
// namespaces that enforce that level. Under restricted a missing seccomp
// profile is named too, though a pod that sets its own passes. Nil: the
// configuration can satisfy the level.
func PodSecurityGaps(cfg *Config, level string) []string {
	restricted := level == string(psa.LevelRestricted)
	if !restricted && level != string(psa.LevelBaseline) {
		return nil
	}
	var gaps []string
	if cfg.CNI == nil {
		gaps = append(gaps, "spec.cni.enabled is false (injected pods get istio-init, which runs as root with NET_ADMIN and NET_RAW)")
	}
	if cfg.DefaultProxyConfig.ProxyMetadata["IPTABLES_TRACE_LOGGING"] == "true" {
		gaps = append(gaps, "spec.meshConfig.defaultConfig.proxyMetadata sets IPTABLES_TRACE_LOGGING=true (istio-proxy runs privileged)")
	}
	switch sp := cfg.SeccompProfile; {
	case sp != nil && sp.Type == corev1.SeccompProfileTypeUnconfined:
		gaps = append(gaps, "spec.proxy.seccompProfile.type is Unconfined")
	case sp == nil && restricted:
		gaps = append(gaps, "spec.proxy.seccompProfile is unset (only pods that set their own seccompProfile pass)")
	}
	return gaps
}
