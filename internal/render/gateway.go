package render

import (
	"cmp"
	"maps"
	"slices"

	"istio.io/api/annotation"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// Gateways follow Istio's gateway chart (manifests/charts/gateway): a
// Deployment whose istio-proxy container has image "auto" and is completed
// by the injector with the gateway template, a Service, a ServiceAccount and
// a Role to read TLS secrets (SDS). Default ports are those of Istio's
// ingress and egress gateways (manifests/charts/gateways).

// gatewayRole reads the TLS secrets of Gateway servers in its namespace.
var gatewayRole = []rbacv1.PolicyRule{rule(strs(""), strs("secrets"), strs("get", "watch", "list"))}

// reservedGatewayLabels are set by meshkeeper on gateway pods and cannot be
// overridden by spec.gateways[].labels.
var reservedGatewayLabels = []string{LabelManagedBy, LabelMeshInstall, LabelGateway, LabelRevision,
	labelRev, labelSidecarInject}

// gatewayNamespace is where a gateway runs: its namespace, or spec.namespace.
func gatewayNamespace(mi *meshv1alpha1.MeshInstall, gw meshv1alpha1.GatewaySpec) string {
	return cmp.Or(gw.Namespace, namespace(mi))
}

func gatewayType(gw meshv1alpha1.GatewaySpec) meshv1alpha1.GatewayType {
	return cmp.Or(gw.Type, meshv1alpha1.GatewayIngress)
}

// gatewayPorts are spec's, or Istio's defaults for the type. Targets above
// 1024 let the proxy run unprivileged.
func gatewayPorts(gw meshv1alpha1.GatewaySpec) []meshv1alpha1.GatewayPort {
	if len(gw.Ports) > 0 {
		return gw.Ports
	}
	if gatewayType(gw) == meshv1alpha1.GatewayEgress {
		return []meshv1alpha1.GatewayPort{
			{Name: "http2", Port: 80, TargetPort: 8080},
			{Name: "https", Port: 443, TargetPort: 8443},
		}
	}
	return []meshv1alpha1.GatewayPort{
		{Name: "status-port", Port: 15021, TargetPort: 15021},
		{Name: "http2", Port: 80, TargetPort: 8080},
		{Name: "https", Port: 443, TargetPort: 8443},
	}
}

// gatewayLabels are on every object of a gateway: Istio's app and istio
// labels (istio=ingressgateway or egressgateway, which Gateway resources
// select), overridable by spec labels, and meshkeeper's, which are not.
func gatewayLabels(mi *meshv1alpha1.MeshInstall, active Revision, gw meshv1alpha1.GatewaySpec) map[string]string {
	istio := "ingressgateway"
	if gatewayType(gw) == meshv1alpha1.GatewayEgress {
		istio = "egressgateway"
	}
	l := map[string]string{labelApp: gw.Name, labelIstio: istio}
	maps.Copy(l, gw.Labels)
	maps.Copy(l, istioLabels(mi, active.Version.String()))
	l[labelName] = gw.Name
	l[LabelGateway] = gw.Name
	return l
}

// gatewaySelector is stable whatever spec labels say (selectors are immutable).
func gatewaySelector(gw meshv1alpha1.GatewaySpec) map[string]string {
	return map[string]string{LabelGateway: gw.Name}
}

func gatewayObjects(mi *meshv1alpha1.MeshInstall, active Revision, gw meshv1alpha1.GatewaySpec, p profile) []client.Object {
	ns := gatewayNamespace(mi, gw)
	labels := func() map[string]string { return gatewayLabels(mi, active, gw) }
	objs := []client.Object{
		&corev1.ServiceAccount{
			TypeMeta:   typeMeta(corev1.SchemeGroupVersion, "ServiceAccount"),
			ObjectMeta: objectMeta(gw.Name, ns, labels()),
		},
		&rbacv1.Role{
			TypeMeta:   typeMeta(rbacv1.SchemeGroupVersion, "Role"),
			ObjectMeta: objectMeta(gw.Name, ns, labels()),
			Rules:      gatewayRole,
		},
		&rbacv1.RoleBinding{
			TypeMeta:   typeMeta(rbacv1.SchemeGroupVersion, "RoleBinding"),
			ObjectMeta: objectMeta(gw.Name, ns, labels()),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: gw.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: gw.Name}},
		},
		gatewayDeployment(mi, active, gw, p),
		gatewayService(mi, active, gw),
	}
	s := gatewayScalingOf(gw)
	if s.autoscale {
		objs = append(objs, gatewayHPA(mi, active, gw, s))
	}
	// As Istio's gateway charts: a PDB only when at least two replicas
	// always run; with one, a budget would block node drains.
	if s.least() > 1 {
		objs = append(objs, gatewayPDB(mi, active, gw))
	}
	return objs
}

// gatewayScalingOf is how a gateway is scaled: spec.gateways[].replicas,
// or, when autoscaling is enabled, its HPA with the gateway chart's
// defaults (1 to 5 replicas at 80% CPU).
func gatewayScalingOf(gw meshv1alpha1.GatewaySpec) scaling {
	s := scaling{replicas: ptr.Deref(gw.Replicas, 1)}
	if a := gw.Autoscaling; a != nil && a.Enabled {
		s.autoscale = true
		s.minReplicas = ptr.Deref(a.MinReplicas, defaultAutoscaleMin)
		s.maxReplicas = ptr.Deref(a.MaxReplicas, defaultAutoscaleMax)
		s.targetCPUPercent = ptr.Deref(a.TargetCPUUtilizationPercentage, defaultAutoscaleTargetCPU)
	}
	return s
}

func gatewayHPA(mi *meshv1alpha1.MeshInstall, active Revision, gw meshv1alpha1.GatewaySpec, s scaling) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   typeMeta(autoscalingv2.SchemeGroupVersion, "HorizontalPodAutoscaler"),
		ObjectMeta: objectMeta(gw.Name, gatewayNamespace(mi, gw), gatewayLabels(mi, active, gw)),
		Spec:       hpaSpec(gw.Name, s),
	}
}

func gatewayPDB(mi *meshv1alpha1.MeshInstall, active Revision, gw meshv1alpha1.GatewaySpec) *policyv1.PodDisruptionBudget {
	spec := policyv1.PodDisruptionBudgetSpec{
		MinAvailable: ptr.To(intstr.FromInt32(1)),
		Selector:     &metav1.LabelSelector{MatchLabels: gatewaySelector(gw)},
	}
	if b := gw.PodDisruptionBudget; b != nil && (b.MinAvailable != nil || b.MaxUnavailable != nil) {
		spec.MinAvailable, spec.MaxUnavailable = b.MinAvailable, b.MaxUnavailable
	}
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   typeMeta(policyv1.SchemeGroupVersion, "PodDisruptionBudget"),
		ObjectMeta: objectMeta(gw.Name, gatewayNamespace(mi, gw), gatewayLabels(mi, active, gw)),
		Spec:       spec,
	}
}

func gatewayDeployment(mi *meshv1alpha1.MeshInstall, active Revision, gw meshv1alpha1.GatewaySpec, p profile) *appsv1.Deployment {
	podLabels := with(gatewayLabels(mi, active, gw),
		labelSidecarInject, "true",
		labelRev, active.Name,
		labelDataplaneMode, "none")
	if v, ok := gw.Labels[labelDataplaneMode]; ok {
		podLabels[labelDataplaneMode] = v
	}
	d := &appsv1.Deployment{
		TypeMeta:   typeMeta(appsv1.SchemeGroupVersion, "Deployment"),
		ObjectMeta: objectMeta(gw.Name, gatewayNamespace(mi, gw), gatewayLabels(mi, active, gw)),
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: gatewaySelector(gw)},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxSurge:       ptr.To(intstr.FromString("100%")),
					MaxUnavailable: ptr.To(intstr.FromString("25%")),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: podLabels,
					Annotations: map[string]string{
						"prometheus.io/port":            "15020",
						"prometheus.io/scrape":          "true",
						"prometheus.io/path":            "/stats/prometheus",
						annotation.InjectTemplates.Name: "gateway",
						annotation.SidecarInject.Name:   "true",
					},
				},
				Spec: corev1.PodSpec{
					ServiceAccountName: gw.Name,
					// Lets the unprivileged proxy bind ports below 1024 when
					// spec ports target them (safe since Kubernetes 1.22).
					SecurityContext: &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{
						{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"},
					}},
					ImagePullSecrets: pullSecrets(gw.ImagePullSecrets),
					Containers: []corev1.Container{{
						Name:  "istio-proxy",
						Image: "auto", // set by the injector's gateway template
						// This container is merged over the injected one, so
						// its policy is the pod's. Unset, the API server
						// defaults it to Always (image "auto" has no tag),
						// as for Istio's gateway chart.
						ImagePullPolicy: mi.Spec.Proxy.ImagePullPolicy,
						Ports: []corev1.ContainerPort{
							{Name: "http-envoy-prom", ContainerPort: 15090, Protocol: corev1.ProtocolTCP},
						},
						Resources: resourcesOr(gw.Resources, p.gatewayResources),
						SecurityContext: &corev1.SecurityContext{
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							AllowPrivilegeEscalation: ptr.To(false),
							Privileged:               ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							RunAsNonRoot:             ptr.To(true),
						},
					}},
					TerminationGracePeriodSeconds: ptr.To(int64(30)),
				},
			},
		},
	}
	placePod(&d.Spec.Template, gw.PodPlacement, reservedGatewayLabels, reservedGatewayPodAnnotations)
	// With autoscaling the HPA owns replicas: left out of what is applied,
	// server-side apply leaves them to it instead of resetting them.
	if s := gatewayScalingOf(gw); !s.autoscale {
		d.Spec.Replicas = ptr.To(s.replicas)
	}
	return d
}

func gatewayService(mi *meshv1alpha1.MeshInstall, active Revision, gw meshv1alpha1.GatewaySpec) *corev1.Service {
	var ports []corev1.ServicePort
	for _, p := range gatewayPorts(gw) {
		ports = append(ports, corev1.ServicePort{
			Name:       p.Name,
			Port:       p.Port,
			TargetPort: intstr.FromInt32(cmp.Or(p.TargetPort, p.Port)),
			NodePort:   p.NodePort,
			Protocol:   corev1.ProtocolTCP,
		})
	}
	svc := &corev1.Service{
		TypeMeta:   typeMeta(corev1.SchemeGroupVersion, "Service"),
		ObjectMeta: objectMeta(gw.Name, gatewayNamespace(mi, gw), gatewayLabels(mi, active, gw)),
		Spec: corev1.ServiceSpec{
			Type:     cmp.Or(gw.ServiceType, corev1.ServiceTypeClusterIP),
			Ports:    ports,
			Selector: gatewaySelector(gw),
		},
	}
	if o := gw.Service; o != nil {
		svc.Labels = overlay(svc.Labels, o.Labels, reservedGatewayLabels)
		if len(o.Annotations) > 0 {
			svc.Annotations = maps.Clone(o.Annotations)
		}
		svc.Spec.LoadBalancerIP = o.LoadBalancerIP
		if o.LoadBalancerClass != "" {
			svc.Spec.LoadBalancerClass = ptr.To(o.LoadBalancerClass)
		}
		svc.Spec.LoadBalancerSourceRanges = slices.Clone(o.LoadBalancerSourceRanges)
		svc.Spec.ExternalTrafficPolicy = o.ExternalTrafficPolicy
	}
	return svc
}
