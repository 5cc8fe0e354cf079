package render

import (
	"cmp"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// Ports istiod serves.
const (
	portHTTPDebug      = 8080
	portGRPCXDS        = 15010
	portTLSXDS         = 15012
	portMonitoring     = 15014
	portWebhooks       = 15017
	servicePortWebhook = 443
)

// istiodSelector selects a revision's istiod pods. The chart selects the
// default revision by istio=pilot (which canary pods lack, being
// istio=istiod) and a named revision by app and istio.io/rev. Selectors are
// immutable, so these must never change.
func istiodSelector(rev Revision) map[string]string {
	if rev.Name == DefaultRevision {
		return map[string]string{labelIstio: "pilot"}
	}
	return map[string]string{labelApp: "istiod", labelRev: rev.Name}
}

// istioLabelValue is the istio label of istiod's pods.
func istioLabelValue(rev Revision) string {
	if rev.Name == DefaultRevision {
		return "pilot"
	}
	return "istiod"
}

func istiodDeployment(mi *meshv1alpha1.MeshInstall, rev Revision, p profile, s scaling) *appsv1.Deployment {
	name := IstiodName(rev.Name)
	podLabels := with(istiodLabels(mi, rev),
		labelSidecarInject, "false",
		labelComponent, componentPilot,
		labelIstio, istioLabelValue(rev),
		labelDataplaneMode, "none")

	d := &appsv1.Deployment{
		TypeMeta: typeMeta(appsv1.SchemeGroupVersion, "Deployment"),
		ObjectMeta: objectMeta(name, namespace(mi),
			with(istiodLabels(mi, rev), labelComponent, componentPilot, labelIstio, "pilot")),
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: istiodSelector(rev)},
			// The Deployment controller judges the rollout: past the deadline
			// it reports ProgressDeadlineExceeded, which the MeshInstall surfaces.
			ProgressDeadlineSeconds: ptr.To(progressDeadlineSeconds(mi)),
			// The chart allows 25% unavailable; meshkeeper keeps every
			// istiod serving during an in-place upgrade.
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxSurge:       ptr.To(intstr.FromString("100%")),
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: podLabels,
					Annotations: map[string]string{
						"prometheus.io/port":   "15014",
						"prometheus.io/scrape": "true",
						labelSidecarInject:     "false",
					},
				},
				Spec: corev1.PodSpec{
					ServiceAccountName: name,
					Tolerations: []corev1.Toleration{
						{Key: "cni.istio.io/not-ready", Operator: corev1.TolerationOpExists},
					},
					Affinity:   istiodAffinity(rev, s),
					Containers: []corev1.Container{discoveryContainer(mi, rev, p)},
					Volumes:    istiodVolumes(mi),
				},
			},
		},
	}
	if rev.CertificateAuthority != "" {
		d.Spec.Template.Annotations[AnnotationCertificateAuthority] = rev.CertificateAuthority
	}
	pilot := mi.Spec.Pilot
	placePod(&d.Spec.Template, pilot.PodPlacement, reservedPilotPodLabels, reservedPilotPodAnnotations)
	d.Spec.Template.Spec.ImagePullSecrets = pullSecrets(pilot.ImagePullSecrets)
	// With autoscaling the HPA owns replicas; setting them here would fight it.
	if !s.autoscale {
		d.Spec.Replicas = ptr.To(s.replicas)
	}
	return d
}

// istiodAffinity spreads istiod over nodes when more than one may run;
// spec.pilot.affinity replaces it.
func istiodAffinity(rev Revision, s scaling) *corev1.Affinity {
	if s.most() <= 1 {
		return nil
	}
	return &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight: 100,
			PodAffinityTerm: corev1.PodAffinityTerm{
				LabelSelector: &metav1.LabelSelector{MatchLabels: istiodSelector(rev)},
				TopologyKey:   corev1.LabelHostname,
			},
		}},
	}}
}

func discoveryContainer(mi *meshv1alpha1.MeshInstall, rev Revision, p profile) corev1.Container {
	port := func(name string, n int32) corev1.ContainerPort {
		return corev1.ContainerPort{Name: name, ContainerPort: n, Protocol: corev1.ProtocolTCP}
	}
	return corev1.Container{
		Name:            "discovery",
		Image:           pilotImage(mi, rev),
		ImagePullPolicy: mi.Spec.Pilot.ImagePullPolicy,
		Args: []string{
			"discovery",
			"--monitoringAddr=:15014",
			"--log_output_level=default:info",
			"--domain", clusterDomain(mi),
			"--keepaliveMaxServerConnectionAge", "30m",
		},
		Ports: []corev1.ContainerPort{
			port("http-debug", portHTTPDebug),
			port("grpc-xds", portGRPCXDS),
			port("tls-xds", portTLSXDS),
			port("https-webhooks", portWebhooks),
			port("http-monitoring", portMonitoring),
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/ready", Port: intstr.FromInt32(portHTTPDebug),
			}},
			InitialDelaySeconds: 1,
			PeriodSeconds:       3,
			TimeoutSeconds:      5,
		},
		Env:       istiodEnv(mi, rev, p),
		Resources: resourcesOr(mi.Spec.Pilot.Resources, p.pilotResources),
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			RunAsNonRoot:             ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "istio-token", MountPath: "/var/run/secrets/tokens", ReadOnly: true},
			{Name: "local-certs", MountPath: "/var/run/secrets/istio-dns"},
			{Name: "cacerts", MountPath: "/etc/cacerts", ReadOnly: true},
			{Name: "istio-kubeconfig", MountPath: "/var/run/secrets/remote", ReadOnly: true},
			{Name: "istio-csr-dns-cert", MountPath: "/var/run/secrets/istiod/tls", ReadOnly: true},
			{Name: "istio-csr-ca-configmap", MountPath: "/var/run/secrets/istiod/ca", ReadOnly: true},
		},
	}
}

// reservedPilotEnv are istiod variables spec.pilot.env may not override:
// they identify the pod and its revision.
var reservedPilotEnv = []string{"REVISION", "POD_NAME", "POD_NAMESPACE", "SERVICE_ACCOUNT"}

// istiodEnv is the chart's environment of istiod, with spec.pilot.env in the
// middle as the chart places values.env. A user variable replaces the
// chart's of the same name instead of duplicating it (a duplicate name would
// make server-side apply fail, env being a map keyed by name).
func istiodEnv(mi *meshv1alpha1.MeshInstall, rev Revision, p profile) []corev1.EnvVar {
	user := mi.Spec.Pilot.Env
	value := func(name, v string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: v} }
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path},
		}}
	}
	head := []corev1.EnvVar{
		value("REVISION", rev.Name),
		value("PILOT_CERT_PROVIDER", "istiod"),
		field("POD_NAME", "metadata.name"),
		field("POD_NAMESPACE", "metadata.namespace"),
		field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
		value("KUBECONFIG", "/var/run/secrets/remote/config"),
		// ztunnel is trusted where the chart trusts it: in istiod's namespace.
		value("CA_TRUSTED_NODE_ACCOUNTS", namespace(mi)+"/ztunnel"),
	}
	var tail []corev1.EnvVar
	// From 1.31 the chart turns on Go's FIPS-only mode with this policy.
	if user["COMPLIANCE_POLICY"] == "fips-140-3" && rev.Version.AtLeast(1, 31) {
		tail = append(tail, value("GODEBUG", "fips140=only"))
	}
	tail = append(tail,
		value("PILOT_TRACE_SAMPLING", p.traceSampling),
		value("PILOT_ENABLE_ANALYSIS", "false"),
		value("CLUSTER_ID", cmp.Or(mi.Spec.Cluster.Name, defaultClusterName)),
		corev1.EnvVar{Name: "GOMAXPROCS", ValueFrom: &corev1.EnvVarSource{
			ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: resource.MustParse("1")},
		}},
	)
	overridden := func(e corev1.EnvVar) bool { _, ok := user[e.Name]; return ok }
	env := slices.DeleteFunc(head, overridden)
	keys := make([]string, 0, len(user))
	for k := range user {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, value(k, user[k]))
	}
	return append(env, slices.DeleteFunc(tail, overridden)...)
}

func istiodVolumes(mi *meshv1alpha1.MeshInstall) []corev1.Volume {
	optionalSecret := func(name, secret string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: secret, Optional: ptr.To(true)},
		}}
	}
	caRoot := corev1.Volume{Name: "istio-csr-ca-configmap", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "istio-ca-root-cert"},
			DefaultMode:          ptr.To(int32(0o644)),
			Optional:             ptr.To(true),
		},
	}}
	if mi.Spec.Pilot.Env["ENABLE_CLUSTER_TRUST_BUNDLE_API"] == "true" {
		caRoot.VolumeSource = corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{
				Name: ptr.To("istio.io:istiod-ca:root-cert"), Path: "root-cert.pem", Optional: ptr.To(true),
			}}},
		}}
	}
	return []corev1.Volume{
		{Name: "local-certs", VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory},
		}},
		{Name: "istio-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: "istio-ca", ExpirationSeconds: ptr.To(int64(43200)), Path: "istio-token",
			}}},
		}}},
		optionalSecret("cacerts", "cacerts"),
		optionalSecret("istio-kubeconfig", "istio-kubeconfig"),
		optionalSecret("istio-csr-dns-cert", "istiod-tls"),
		caRoot,
	}
}

func istiodService(mi *meshv1alpha1.MeshInstall, rev Revision) *corev1.Service {
	port := func(name string, port, target int32) corev1.ServicePort {
		return corev1.ServicePort{Name: name, Port: port, TargetPort: intstr.FromInt32(target), Protocol: corev1.ProtocolTCP}
	}
	selector := with(istiodSelector(rev), labelApp, "istiod")
	return &corev1.Service{
		TypeMeta: typeMeta(corev1.SchemeGroupVersion, "Service"),
		ObjectMeta: objectMeta(IstiodName(rev.Name), namespace(mi),
			with(istiodLabels(mi, rev), labelComponent, componentPilot, labelIstio, "pilot")),
		Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{
				port("grpc-xds", portGRPCXDS, portGRPCXDS),
				port("https-dns", portTLSXDS, portTLSXDS),
				port("https-webhook", servicePortWebhook, portWebhooks),
				port("http-monitoring", portMonitoring, portMonitoring),
			},
			Selector: selector,
		},
	}
}

func istiodHPA(mi *meshv1alpha1.MeshInstall, rev Revision, s scaling) *autoscalingv2.HorizontalPodAutoscaler {
	name := IstiodName(rev.Name)
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   typeMeta(autoscalingv2.SchemeGroupVersion, "HorizontalPodAutoscaler"),
		ObjectMeta: objectMeta(name, namespace(mi), with(istiodLabels(mi, rev), labelComponent, componentPilot)),
		Spec:       hpaSpec(name, s),
	}
}

// hpaSpec scales the named Deployment by CPU, as Istio's charts do.
func hpaSpec(deployment string, s scaling) autoscalingv2.HorizontalPodAutoscalerSpec {
	return autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: deployment},
		MinReplicas:    ptr.To(s.minReplicas),
		MaxReplicas:    s.maxReplicas,
		Metrics: []autoscalingv2.MetricSpec{{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{
					Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(s.targetCPUPercent),
				},
			},
		}},
	}
}

// istiodPDB keeps one istiod up during voluntary disruptions. As in the
// chart it exists only when at least two replicas always run: with one, a
// minAvailable of 1 would block node drains (kubernetes/kubernetes#93476).
func istiodPDB(mi *meshv1alpha1.MeshInstall, rev Revision) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		TypeMeta: typeMeta(policyv1.SchemeGroupVersion, "PodDisruptionBudget"),
		ObjectMeta: objectMeta(IstiodName(rev.Name), namespace(mi),
			with(istiodLabels(mi, rev), labelComponent, componentPilot, labelIstio, "pilot")),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(1)),
			Selector:     &metav1.LabelSelector{MatchLabels: with(istiodSelector(rev), labelApp, "istiod")},
		},
	}
}

// defaultProgressDeadline is spec.updateStrategy.progressDeadline's default
// (the CRD's, for MeshInstalls the API server did not default), which is
// also Kubernetes' default for a Deployment.
const defaultProgressDeadline = 10 * time.Minute

func progressDeadlineSeconds(mi *meshv1alpha1.MeshInstall) int32 {
	d := defaultProgressDeadline
	if pd := mi.Spec.UpdateStrategy.ProgressDeadline; pd != nil && pd.Duration > 0 {
		d = pd.Duration
	}
	return int32(d.Round(time.Second) / time.Second)
}
