package translate

import (
	"strings"

	corev1 "k8s.io/api/core/v1"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// istioGatewayLabels are pod labels Istio's charts and installers put on a
// gateway's pods: meshkeeper puts its own, so they are not the user's.
var istioGatewayLabels = []string{"app", "istio", "istio.io/rev", "sidecar.istio.io/inject", "release", "chart", "heritage"}

// gateways translates each gateway Deployment and its Service.
func (t *translation) gateways() {
	for _, g := range t.in.Gateways {
		d := g.Deployment
		spec := meshv1alpha1.GatewaySpec{Name: d.Name, Namespace: d.Namespace, Type: meshv1alpha1.GatewayIngress, Replicas: d.Spec.Replicas}
		if strings.Contains(d.Spec.Template.Labels["istio"], "egress") || strings.Contains(d.Name, "egress") {
			spec.Type = meshv1alpha1.GatewayEgress
		}
		if spec.Namespace == t.mi.Spec.Namespace {
			spec.Namespace = ""
		}
		if rev := d.Spec.Template.Labels["istio.io/rev"]; rev != "" && rev != t.in.Revision {
			t.gap("gateway "+d.Namespace+"/"+d.Name, "it runs with revision %s, not the one translated (%s); it is translated all the same", rev, t.in.Revision)
		}
		if c := container(d, "istio-proxy"); c != nil && (len(c.Resources.Requests) > 0 || len(c.Resources.Limits) > 0) {
			spec.Resources = c.Resources.DeepCopy()
		}
		for k, v := range d.Spec.Template.Labels {
			if isIstioLabel(k) {
				continue
			}
			if spec.Labels == nil {
				spec.Labels = map[string]string{}
			}
			spec.Labels[k] = v
		}
		for _, s := range d.Spec.Template.Spec.ImagePullSecrets {
			spec.ImagePullSecrets = append(spec.ImagePullSecrets, s.Name)
		}
		spec.PodPlacement = placement(&d.Spec.Template, nil, nil)
		t.gatewayService(&spec, g.Service, d.Namespace+"/"+d.Name)
		t.mi.Spec.Gateways = append(t.mi.Spec.Gateways, spec)
	}
}

// isIstioLabel says whether a pod label is one Istio's installers set.
func isIstioLabel(k string) bool {
	for _, l := range istioGatewayLabels {
		if k == l {
			return true
		}
	}
	prefix, _, ok := strings.Cut(k, "/")
	return ok && (strings.HasSuffix(prefix, "istio.io") || prefix == "app.kubernetes.io" || prefix == "helm.sh" || strings.HasSuffix(prefix, "sailoperator.io"))
}

// gatewayService takes the Service's type and ports.
func (t *translation) gatewayService(spec *meshv1alpha1.GatewaySpec, svc *corev1.Service, name string) {
	if svc == nil {
		t.gap("gateway "+name+" Service", "no Service of the gateway's name was found; meshkeeper's default ports apply")
		return
	}
	spec.ServiceType = svc.Spec.Type
	for _, p := range svc.Spec.Ports {
		port := meshv1alpha1.GatewayPort{Name: p.Name, Port: p.Port, NodePort: p.NodePort}
		if p.TargetPort.IntValue() != 0 && int32(p.TargetPort.IntValue()) != p.Port {
			port.TargetPort = int32(p.TargetPort.IntValue())
		}
		if svc.Spec.Type != corev1.ServiceTypeNodePort && svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			port.NodePort = 0
		}
		spec.Ports = append(spec.Ports, port)
	}
	if svc.Spec.LoadBalancerIP != "" || len(svc.Spec.LoadBalancerSourceRanges) > 0 || svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		t.gap("gateway "+name+" Service load balancer settings", "spec.gateways[].service carries some of them; compare them by hand")
	}
	for k := range svc.Annotations {
		if !strings.HasPrefix(k, "meta.helm.sh/") && k != "kubectl.kubernetes.io/last-applied-configuration" {
			t.gap("gateway "+name+" Service annotation "+k, "compare with spec.gateways[].service by hand")
		}
	}
}
