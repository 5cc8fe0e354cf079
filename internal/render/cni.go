package render

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// The istio-cni node agent, rendered as Istio's istio-cni Helm chart
// (manifests/charts/istio-cni in the istio.io/istio module) renders it for
// sidecar mode (ambient off) and its default values, with spec.cni's
// settings where the chart takes values. The module holds one chart, the
// development line after 1.30 (its newest compatibility profile is
// compatibility-version-1.30.yaml); nothing in it differs by version for
// sidecar mode among the minors meshkeeper supports (1.30, 1.31, 1.32), so
// the same objects are rendered for each, with the version's image.
// Ambient's keys are rendered with the chart's defaults (off): install-cni
// reads them (cni/pkg/cmd/root.go) whatever the mode.

// Names of the node agent's objects: the chart's "name" helper is
// istio-cni; the DaemonSet is <name>-node, a name the CNI plugin falls back
// on, and its ConfigMap <name>-config.
const (
	CNIName          = "istio-cni"
	CNIDaemonSetName = CNIName + "-node"
	CNIConfigMapName = CNIName + "-config"
	cniRepairName    = CNIName + "-repair-role"
	cniRepairBinding = CNIName + "-repair-rolebinding"
	// cniContainerName is the agent's one container (install-cni).
	cniContainerName = "install-cni"
)

// LabelCNI marks, with value "true", every object of the node agent: they
// carry no revision (one agent serves every revision), and the reconciler
// prunes them only once no pod relies on them.
const LabelCNI = "mesh.meshkeeper.dev/cni"

// DefaultCNINamespace is spec.cni.namespace's default (where Istio installs the agent).
const DefaultCNINamespace = "kube-system"

// CNINamespace is where mi's node agent runs: spec.cni.namespace, defaulted.
func CNINamespace(mi *meshv1alpha1.MeshInstall) string {
	return cmp.Or(mi.Spec.CNI.Namespace, DefaultCNINamespace)
}

// CNIEnabled says whether mi runs the node agent (and injects pods for it).
func CNIEnabled(mi *meshv1alpha1.MeshInstall) bool { return mi.Spec.CNI.Enabled }

// CNI renders the istio-cni node agent at version v, in apply order: its
// ServiceAccount, ClusterRoles and bindings (the repair role only while
// repair is on), the CNI ConfigMap and the DaemonSet istio-cni-node, all in
// spec.cni.namespace. Every object carries LabelCNI and v as LabelVersion.
// It fails with an *InvalidError when spec.cni cannot be rendered.
func CNI(mi *meshv1alpha1.MeshInstall, v version.Version) ([]client.Object, error) {
	if v.Release.Minor == "" {
		return nil, invalid(field.ErrorList{field.Required(field.NewPath("cni", "version"), "a parsed, supported Istio version")})
	}
	if err := invalid(validateCNI(mi)); err != nil {
		return nil, err
	}
	c := cniSettingsOf(mi)
	objs := []client.Object{
		&corev1.ServiceAccount{
			TypeMeta:   typeMeta(corev1.SchemeGroupVersion, "ServiceAccount"),
			ObjectMeta: objectMeta(CNIName, c.namespace, cniLabels(mi, v, labelApp, CNIName)),
		},
		cniClusterRole(mi, v, CNIName, cniRules(c)),
		cniClusterRoleBinding(mi, v, CNIName, CNIName, c.namespace, cniLabels(mi, v, labelApp, CNIName)),
	}
	if rules := cniRepairRules(c.repair); rules != nil {
		objs = append(objs,
			cniClusterRole(mi, v, cniRepairName, rules),
			// The chart labels this binding k8s-app: istio-cni-repair.
			cniClusterRoleBinding(mi, v, cniRepairBinding, cniRepairName, c.namespace, cniLabels(mi, v, "k8s-app", CNIName+"-repair")))
	}
	objs = append(objs, cniConfigMap(mi, v, c), cniDaemonSet(mi, v, c))
	return finish(objs), nil
}

// cniSettings are spec.cni's values with the chart's defaults for those
// left unset (the API server defaults them too; a MeshInstall built in Go
// may not be).
type cniSettings struct {
	namespace, binDir, confDir string
	provider                   meshv1alpha1.CNIProvider
	repair                     meshv1alpha1.CNIRepairMode
	excludeNamespaces          []string
	// chained and confFileName: the default provider chains the plugin into
	// the node's CNI configuration; multus runs it standalone from
	// istio-cni.conf, as Istio's OpenShift profile sets
	// (manifests/helm-profiles/platform-openshift.yaml).
	chained      bool
	confFileName string
}

func cniSettingsOf(mi *meshv1alpha1.MeshInstall) cniSettings {
	spec := mi.Spec.CNI
	c := cniSettings{
		namespace:         CNINamespace(mi),
		binDir:            cmp.Or(spec.BinDir, "/opt/cni/bin"),
		confDir:           cmp.Or(spec.ConfDir, "/etc/cni/net.d"),
		provider:          cmp.Or(spec.Provider, meshv1alpha1.CNIProviderDefault),
		repair:            cmp.Or(spec.Repair, meshv1alpha1.CNIRepairPods),
		excludeNamespaces: spec.ExcludeNamespaces,
		chained:           true,
	}
	if spec.ExcludeNamespaces == nil {
		c.excludeNamespaces = []string{"kube-system"}
	}
	if c.provider == meshv1alpha1.CNIProviderMultus {
		c.chained, c.confFileName = false, "istio-cni.conf"
	}
	return c
}

// cniLabels are the chart's labels of the agent's objects (app or k8s-app,
// release, istio.io/rev default, the operator component Cni, the name
// istio-cni, and its "istio.labels"), meshkeeper's base labels and LabelCNI.
func cniLabels(mi *meshv1alpha1.MeshInstall, v version.Version, kv ...string) map[string]string {
	l := istioLabels(mi, v.String())
	l[labelName] = CNIName
	l[labelRev] = DefaultRevision
	l[labelComponent] = "Cni"
	l["release"] = mi.Name
	l[LabelCNI] = "true"
	return with(l, kv...)
}

// cniRules are the agent's cluster permissions (the chart's clusterrole.yaml):
// it reads pods, nodes and namespaces; through Multus (OpenShift) it must also
// use the privileged SecurityContextConstraints, which the chart grants on
// platform openshift.
func cniRules(c cniSettings) []rbacv1.PolicyRule {
	rules := []rbacv1.PolicyRule{rule(strs(""), strs("pods", "nodes", "namespaces"), read)}
	if c.provider == meshv1alpha1.CNIProviderMultus {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: strs("security.openshift.io"),
			Resources: strs("securitycontextconstraints"), ResourceNames: strs("privileged"), Verbs: strs("use")})
	}
	return rules
}

// cniRepairRules are the repair role's rules for a repair mode (the chart's
// <name>-repair-role): events and reading pods always, then what the mode
// needs: nothing more to repair a pod in place, deleting pods, or patching
// their status to label them (pods/status is the narrower grant that can
// label). nil when repair is off: the chart renders no role then.
func cniRepairRules(mode meshv1alpha1.CNIRepairMode) []rbacv1.PolicyRule {
	if mode == meshv1alpha1.CNIRepairNone {
		return nil
	}
	rules := []rbacv1.PolicyRule{
		rule(strs(""), strs("events"), strs("create", "patch")),
		rule(strs(""), strs("pods"), strs("watch", "get", "list")),
	}
	switch mode {
	case meshv1alpha1.CNIRepairDeletePods:
		rules = append(rules, rule(strs(""), strs("pods"), strs("delete")))
	case meshv1alpha1.CNIRepairLabelPods:
		rules = append(rules, rule(strs(""), strs("pods/status"), strs("patch", "update")))
	}
	return rules
}

func cniClusterRole(mi *meshv1alpha1.MeshInstall, v version.Version, name string, rules []rbacv1.PolicyRule) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		TypeMeta:   typeMeta(rbacv1.SchemeGroupVersion, "ClusterRole"),
		ObjectMeta: objectMeta(name, "", cniLabels(mi, v, labelApp, CNIName)),
		Rules:      rules,
	}
}

func cniClusterRoleBinding(mi *meshv1alpha1.MeshInstall, v version.Version, name, role, namespace string, labels map[string]string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   typeMeta(rbacv1.SchemeGroupVersion, "ClusterRoleBinding"),
		ObjectMeta: objectMeta(name, "", labels),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: CNIName, Namespace: namespace}},
	}
}

// cniConfigMap is the agent's configuration (the chart's configmap-cni.yaml),
// which install-cni reads from its environment (envFrom). Keys are those of
// cni/pkg/constants; the repair keys follow spec.cni.repair: exactly one of
// repair, label or delete, or repair off.
func cniConfigMap(mi *meshv1alpha1.MeshInstall, v version.Version, c cniSettings) *corev1.ConfigMap {
	data := map[string]string{
		"CURRENT_AGENT_VERSION":                  v.String(),
		"AMBIENT_ENABLED":                        "false",
		"AMBIENT_ENABLEMENT_SELECTOR":            ambientEnablementSelector,
		"AMBIENT_DNS_CAPTURE":                    "true",
		"AMBIENT_IPV6":                           "true",
		"AMBIENT_RECONCILE_POD_RULES_ON_STARTUP": "true",
		"ENABLE_AMBIENT_DETECTION_RETRY":         "false",
		"ISTIO_OWNED_CNI_CONFIG":                 "false",
		"CHAINED_CNI_PLUGIN":                     strconv.FormatBool(c.chained),
		"EXCLUDE_NAMESPACES":                     strings.Join(c.excludeNamespaces, ","),
		"REPAIR_ENABLED":                         strconv.FormatBool(c.repair != meshv1alpha1.CNIRepairNone),
		"REPAIR_LABEL_PODS":                      strconv.FormatBool(c.repair == meshv1alpha1.CNIRepairLabelPods),
		"REPAIR_DELETE_PODS":                     strconv.FormatBool(c.repair == meshv1alpha1.CNIRepairDeletePods),
		"REPAIR_REPAIR_PODS":                     strconv.FormatBool(c.repair == meshv1alpha1.CNIRepairPods),
		"REPAIR_INIT_CONTAINER_NAME":             inject.ValidationContainerName, // the repair controller watches it fail
		"REPAIR_BROKEN_POD_LABEL_KEY":            "cni.istio.io/uninitialized",
		"REPAIR_BROKEN_POD_LABEL_VALUE":          "true",
		"NATIVE_NFTABLES":                        "false",
	}
	if c.confFileName != "" {
		data["CNI_CONF_NAME"] = c.confFileName
	}
	return &corev1.ConfigMap{
		TypeMeta:   typeMeta(corev1.SchemeGroupVersion, "ConfigMap"),
		ObjectMeta: objectMeta(CNIConfigMapName, c.namespace, cniLabels(mi, v, labelApp, CNIName)),
		Data:       data,
	}
}

// ambientEnablementSelector is the chart's ambient.enablementSelectors as
// its ConfigMap carries them (YAML); unused while ambient is off.
const ambientEnablementSelector = `- podSelector:
    matchLabels:
      istio.io/dataplane-mode: ambient
- namespaceSelector:
    matchLabels:
      istio.io/dataplane-mode: ambient
  podSelector:
    matchExpressions:
    - key: istio.io/dataplane-mode
      operator: NotIn
      values:
      - none
`

// cniTolerations are the chart's: every NoSchedule and NoExecute taint and
// CriticalAddonsOnly, since the agent must run wherever meshed pods may.
var cniTolerations = []corev1.Toleration{
	{Effect: corev1.TaintEffectNoSchedule, Operator: corev1.TolerationOpExists},
	{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
	{Effect: corev1.TaintEffectNoExecute, Operator: corev1.TolerationOpExists},
}

// reservedCNIPodLabels are what the DaemonSet selects on and what keeps the
// agent out of the mesh; spec.cni.podLabels cannot set them.
var reservedCNIPodLabels = []string{"k8s-app", labelSidecarInject, labelDataplaneMode, LabelManagedBy, LabelMeshInstall, LabelCNI, LabelVersion}

// reservedCNIPodAnnotations keep the agent uninjected and unconfined.
var reservedCNIPodAnnotations = []string{labelSidecarInject, appArmorAnnotation}

// appArmorAnnotation runs install-cni unconfined by AppArmor, which would
// block its capabilities; the chart sets it (useAppArmorAnnotation, its
// default) rather than securityContext.appArmorProfile.
const appArmorAnnotation = "container.apparmor.security.beta.kubernetes.io/" + cniContainerName

// cniDaemonSet is the node agent (the chart's daemonset.yaml, sidecar mode):
// install-cni on every Linux node, root without privilege but with the
// capabilities repair needs, the host's CNI directories mounted, and /proc
// while pods are repaired in place.
func cniDaemonSet(mi *meshv1alpha1.MeshInstall, v version.Version, c cniSettings) *appsv1.DaemonSet {
	selector := map[string]string{"k8s-app": CNIDaemonSetName}
	podLabels := cniLabels(mi, v, "k8s-app", CNIDaemonSetName, labelSidecarInject, "false", labelDataplaneMode, "none")
	delete(podLabels, labelComponent)
	delete(podLabels, labelRev)
	delete(podLabels, "release")
	t := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels: podLabels,
			Annotations: map[string]string{
				labelSidecarInject:     "false",
				"prometheus.io/scrape": "true",
				"prometheus.io/port":   "15014",
				"prometheus.io/path":   "/metrics",
				appArmorAnnotation:     "unconfined",
			},
		},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{corev1.LabelOSStable: "linux"},
			Tolerations:                   cniTolerations,
			ServiceAccountName:            CNIName,
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			Containers:                    []corev1.Container{cniContainer(mi, v, c)},
			Volumes:                       cniVolumes(c),
		},
	}
	placement := mi.Spec.CNI.PodPlacement
	if len(placement.Tolerations) > 0 {
		t.Spec.Tolerations = nil // the user's replace the chart's, as its tolerations value does
	}
	placePod(&t, placement, reservedCNIPodLabels, reservedCNIPodAnnotations)
	// The chart always runs the agent as system-node-critical: a node must
	// not evict it before the pods whose network it sets up.
	t.Spec.PriorityClassName = cmp.Or(placement.PriorityClassName, "system-node-critical")
	return &appsv1.DaemonSet{
		TypeMeta: typeMeta(appsv1.SchemeGroupVersion, "DaemonSet"),
		ObjectMeta: objectMeta(CNIDaemonSetName, c.namespace,
			cniLabels(mi, v, "k8s-app", CNIDaemonSetName)),
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			// The chart's updateStrategy: one node at a time.
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
				Type:          appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(intstr.FromInt32(1))},
			},
			Template: t,
		},
	}
}

// cniCapabilities are what the chart adds after dropping ALL: NET_ADMIN and
// NET_RAW for iptables, SYS_PTRACE and SYS_ADMIN to enter pods' network
// namespaces (repair), DAC_OVERRIDE to write host directories others own.
var cniCapabilities = []corev1.Capability{"NET_ADMIN", "NET_RAW", "SYS_PTRACE", "SYS_ADMIN", "DAC_OVERRIDE"}

func cniContainer(mi *meshv1alpha1.MeshInstall, v version.Version, c cniSettings) corev1.Container {
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	resourceEnv := func(name, res string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
			Resource: res, Divisor: resource.MustParse("1")}}}
	}
	nodeName := fieldEnv("NODE_NAME", "spec.nodeName")
	nodeName.ValueFrom.FieldRef.APIVersion = "v1"
	mounts := []corev1.VolumeMount{{Name: "cni-bin-dir", MountPath: "/host/opt/cni/bin"}}
	if c.repair == meshv1alpha1.CNIRepairPods {
		mounts = append(mounts, corev1.VolumeMount{Name: "cni-host-procfs", MountPath: "/host/proc", ReadOnly: true})
	}
	mounts = append(mounts,
		corev1.VolumeMount{Name: "cni-net-dir", MountPath: "/host/etc/cni/net.d"},
		corev1.VolumeMount{Name: "cni-socket-dir", MountPath: "/var/run/istio-cni"})
	return corev1.Container{
		Name:    cniContainerName,
		Image:   cniImage(mi, v),
		Command: []string{"install-cni"},
		Args:    []string{"--log_output_level=" + cniLogLevel(mi)},
		Ports:   []corev1.ContainerPort{{Name: "metrics", ContainerPort: 15014, Protocol: corev1.ProtocolTCP}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
			HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(8000)}}},
		SecurityContext: &corev1.SecurityContext{
			Privileged:   ptr.To(false),
			RunAsGroup:   ptr.To[int64](0),
			RunAsUser:    ptr.To[int64](0),
			RunAsNonRoot: ptr.To(false),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: cniCapabilities},
		},
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: CNIConfigMapName}}}},
		Env: []corev1.EnvVar{
			fieldEnv("REPAIR_NODE_NAME", "spec.nodeName"),
			{Name: "REPAIR_RUN_AS_DAEMON", Value: "true"},
			{Name: "REPAIR_SIDECAR_ANNOTATION", Value: "sidecar.istio.io/status"},
			{Name: "ALLOW_SWITCH_TO_HOST_NS", Value: "true"},
			nodeName,
			resourceEnv("GOMEMLIMIT", "limits.memory"),
			resourceEnv("GOMAXPROCS", "limits.cpu"),
			fieldEnv("POD_NAME", "metadata.name"),
			fieldEnv("POD_NAMESPACE", "metadata.namespace"),
		},
		VolumeMounts: mounts,
		Resources:    resourcesOr(mi.Spec.CNI.Resources, requirements("100m", "100Mi", "", "")),
	}
}

// cniLogLevel is the chart's global.logging.level default.
func cniLogLevel(*meshv1alpha1.MeshInstall) string { return "info" }

// cniImage is spec.cni.image, else <hub>/install-cni:<version>.
func cniImage(mi *meshv1alpha1.MeshInstall, v version.Version) string {
	if mi.Spec.CNI.Image != "" {
		return mi.Spec.CNI.Image
	}
	return fmt.Sprintf("%s/install-cni:%s", cmp.Or(mi.Spec.Hub, defaultHub), v)
}

// cniVolumes are the host paths the agent works in: the CNI binaries and
// configuration (spec.cni.binDir, confDir), /proc to repair pods in place,
// its socket directory, and the network namespaces directory, created if
// missing because the node's CNI may create it only with the first pod.
func cniVolumes(c cniSettings) []corev1.Volume {
	host := func(name, path string, t *corev1.HostPathType) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path, Type: t}}}
	}
	vols := []corev1.Volume{host("cni-bin-dir", c.binDir, nil)}
	if c.repair == meshv1alpha1.CNIRepairPods {
		vols = append(vols, host("cni-host-procfs", "/proc", ptr.To(corev1.HostPathDirectory)))
	}
	return append(vols,
		host("cni-net-dir", c.confDir, nil),
		host("cni-socket-dir", "/var/run/istio-cni", nil),
		host("cni-netns-dir", "/var/run/netns", ptr.To(corev1.HostPathDirectoryOrCreate)))
}

// validateCNI refuses what spec.cni's schema lets through but the API
// server would refuse only once the DaemonSet is applied.
func validateCNI(mi *meshv1alpha1.MeshInstall) field.ErrorList {
	path := field.NewPath("spec", "cni")
	errs := validatePlacement(mi.Spec.CNI.PodPlacement, path, reservedCNIPodLabels, reservedCNIPodAnnotations)
	errs = append(errs, validateResources(mi.Spec.CNI.Resources, path.Child("resources"))...)
	// The agent needs privileged pods: kube-system allows them, and so must
	// the control plane's namespace. Anywhere else would be a namespace
	// meshkeeper neither controls nor caches.
	if ns := CNINamespace(mi); ns != DefaultCNINamespace && ns != namespace(mi) {
		errs = append(errs, field.NotSupported(path.Child("namespace"), ns, []string{DefaultCNINamespace, namespace(mi)}))
	}
	for i, ns := range mi.Spec.CNI.ExcludeNamespaces {
		if strings.Contains(ns, ",") {
			errs = append(errs, field.Invalid(path.Child("excludeNamespaces").Index(i), ns, "must be a namespace name"))
		}
	}
	return errs
}

// CNIVersionOf reads the version the node agent's objects were rendered
// at (LabelVersion); "" when they carry none.
func CNIVersionOf(o metav1.Object) string { return o.GetLabels()[LabelVersion] }
