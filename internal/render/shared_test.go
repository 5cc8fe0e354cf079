package render

import (
	"reflect"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// A gateway pod must be injected by the active revision with the gateway
// template, and carry the labels Gateway resources select.
func TestGatewayPodIsInjectedByTheActiveRevision(t *testing.T) {
	mi := meshInstall("1.32.0", withGateways(meshv1alpha1.GatewaySpec{Name: "istio-ingressgateway"}))
	objs := mustShared(t, mi, mustRevision(t, "1-32-0", "1.32.0"))
	d := find[*appsv1.Deployment](t, objs, "istio-ingressgateway")
	pod := d.Spec.Template
	for k, v := range map[string]string{
		"sidecar.istio.io/inject": "true", "istio": "ingressgateway", "app": "istio-ingressgateway",
		"istio.io/rev": "1-32-0", LabelGateway: "istio-ingressgateway",
	} {
		if pod.Labels[k] != v {
			t.Errorf("pod label %s = %q, want %q", k, pod.Labels[k], v)
		}
	}
	if pod.Annotations["inject.istio.io/templates"] != "gateway" {
		t.Errorf("pod is not annotated inject.istio.io/templates=gateway: %v", pod.Annotations)
	}
	c := pod.Spec.Containers[0]
	if c.Name != "istio-proxy" || c.Image != "auto" {
		t.Errorf("container %s image %s, want istio-proxy with image auto", c.Name, c.Image)
	}
	if d.Namespace != "istio-system" || pod.Spec.ServiceAccountName != "istio-ingressgateway" {
		t.Errorf("gateway in %s as %s, want istio-system as istio-ingressgateway", d.Namespace, pod.Spec.ServiceAccountName)
	}
	if d.Labels[LabelRevision] != "" || d.Labels["istio.io/rev"] != "" {
		t.Errorf("gateway Deployment carries revision labels %v; only its pods select a revision", d.Labels)
	}
	svc := find[*corev1.Service](t, objs, "istio-ingressgateway")
	if !reflect.DeepEqual(svc.Spec.Selector, d.Spec.Selector.MatchLabels) {
		t.Errorf("Service selects %v, Deployment %v", svc.Spec.Selector, d.Spec.Selector.MatchLabels)
	}
	role := find[*rbacv1.Role](t, objs, "istio-ingressgateway")
	if want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "watch", "list"}}}; !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("gateway role rules = %v, want read access to secrets only", role.Rules)
	}
	rb := find[*rbacv1.RoleBinding](t, objs, "istio-ingressgateway")
	if rb.Subjects[0].Name != "istio-ingressgateway" || rb.RoleRef.Name != "istio-ingressgateway" {
		t.Errorf("gateway role binding = %+v", rb)
	}
}

func TestGatewayServicePorts(t *testing.T) {
	type port struct {
		name         string
		port, target int32
	}
	tests := []struct {
		name string
		gw   meshv1alpha1.GatewaySpec
		typ  corev1.ServiceType
		want []port
	}{
		{name: "ingress defaults", gw: meshv1alpha1.GatewaySpec{Name: "in"}, typ: corev1.ServiceTypeClusterIP,
			want: []port{{"status-port", 15021, 15021}, {"http2", 80, 8080}, {"https", 443, 8443}}},
		{name: "egress defaults", gw: meshv1alpha1.GatewaySpec{Name: "out", Type: meshv1alpha1.GatewayEgress},
			typ: corev1.ServiceTypeClusterIP, want: []port{{"http2", 80, 8080}, {"https", 443, 8443}}},
		{name: "spec ports and type", gw: meshv1alpha1.GatewaySpec{Name: "in", ServiceType: corev1.ServiceTypeLoadBalancer,
			Ports: []meshv1alpha1.GatewayPort{{Name: "tls", Port: 15443}, {Name: "http", Port: 80, TargetPort: 8080}}},
			typ: corev1.ServiceTypeLoadBalancer, want: []port{{"tls", 15443, 15443}, {"http", 80, 8080}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := mustShared(t, meshInstall("1.32.0", withGateways(tt.gw)), mustRevision(t, DefaultRevision, "1.32.0"))
			svc := find[*corev1.Service](t, objs, tt.gw.Name)
			if svc.Spec.Type != tt.typ {
				t.Errorf("type = %s, want %s", svc.Spec.Type, tt.typ)
			}
			var got []port
			for _, p := range svc.Spec.Ports {
				got = append(got, port{p.Name, p.Port, p.TargetPort.IntVal})
				if p.TargetPort.Type != intstr.Int || p.Protocol != corev1.ProtocolTCP {
					t.Errorf("port %s: targetPort %v protocol %s", p.Name, p.TargetPort, p.Protocol)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ports = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPeerAuthentication(t *testing.T) {
	for mode, want := range map[meshv1alpha1.MTLSMode]string{"": "", meshv1alpha1.MTLSStrict: "STRICT", meshv1alpha1.MTLSPermissive: "PERMISSIVE"} {
		mi := meshInstall("1.32.0", withMTLS(mode), func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Namespace = "mesh-system" })
		objs := mustShared(t, mi, mustRevision(t, DefaultRevision, "1.32.0"))
		if want == "" {
			if has[*unstructured.Unstructured](objs, PeerAuthenticationName) {
				t.Error("PeerAuthentication rendered although spec.security.mtls is unset")
			}
			continue
		}
		pa := find[*unstructured.Unstructured](t, objs, PeerAuthenticationName)
		got, _, _ := unstructured.NestedString(pa.Object, "spec", "mtls", "mode")
		if got != want || pa.GetNamespace() != "mesh-system" || pa.GroupVersionKind() != PeerAuthenticationGVK {
			t.Errorf("%s: %s %s/%s mode %s, want %s in mesh-system", mode, pa.GroupVersionKind(), pa.GetNamespace(), pa.GetName(), got, want)
		}
	}
}

// istiod owns caBundle and failurePolicy of its validators; meshkeeper must
// not apply them, or the two would flip them back and forth.
func TestValidatorsLeaveIstiodsFieldsAlone(t *testing.T) {
	for _, c := range goldenCases() {
		for _, o := range c.render(t) {
			vwc, ok := o.(*admissionregistrationv1.ValidatingWebhookConfiguration)
			if !ok {
				continue
			}
			for _, wh := range vwc.Webhooks {
				if len(wh.ClientConfig.CABundle) > 0 || wh.FailurePolicy != nil {
					t.Errorf("%s: %s/%s sets caBundle or failurePolicy, which istiod manages", c.name, vwc.Name, wh.Name)
				}
			}
			if vwc.Labels["istio.io/rev"] == "" {
				t.Errorf("%s: %s has no istio.io/rev label: no istiod would patch its caBundle", c.name, vwc.Name)
			}
		}
	}
}

// Unlabelled Istio config is validated by the active revision, and the
// default validator's label tells every istiod which revision is default.
func TestDefaultValidatorFollowsTheActiveRevision(t *testing.T) {
	mi := meshInstall("1.32.0")
	for _, active := range []Revision{mustRevision(t, DefaultRevision, "1.31.4"), mustRevision(t, "1-32-0", "1.32.0")} {
		vwc := find[*admissionregistrationv1.ValidatingWebhookConfiguration](t, mustShared(t, mi, active), DefaultValidatorName)
		wh := vwc.Webhooks[0]
		if vwc.Labels["istio.io/rev"] != active.Name || wh.ClientConfig.Service.Name != IstiodName(active.Name) {
			t.Errorf("active %s: default validator labelled %s calls %s", active.Name, vwc.Labels["istio.io/rev"], wh.ClientConfig.Service.Name)
		}
		if wh.ObjectSelector != nil || wh.NamespaceSelector != nil {
			t.Errorf("active %s: default validator has selectors; it must see all Istio config", active.Name)
		}
		if vwc.Labels[LabelRevision] != "" {
			t.Errorf("active %s: default validator carries %s, so pruning a revision would delete it", active.Name, LabelRevision)
		}
	}
	// A revision's own validator only sees config labelled with it.
	rev := mustRevision(t, "1-32-0", "1.32.0")
	vwc := find[*admissionregistrationv1.ValidatingWebhookConfiguration](t, mustControlPlane(t, mi, rev), ValidatorName("1-32-0", "istio-system"))
	sel := vwc.Webhooks[0].ObjectSelector
	if sel == nil || len(sel.MatchExpressions) != 1 || sel.MatchExpressions[0].Key != "istio.io/rev" ||
		!reflect.DeepEqual(sel.MatchExpressions[0].Values, []string{"1-32-0"}) {
		t.Errorf("revision validator selector = %v, want istio.io/rev In [1-32-0]", sel)
	}
}

func TestControlPlaneNamespaceLabels(t *testing.T) {
	if l := ControlPlaneNamespaceLabels(meshInstall("1.32.0")); len(l) != 0 {
		t.Errorf("single network: labels = %v, want none", l)
	}
	mi := meshInstall("1.32.0", func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Cluster.Network = "net-1" })
	if l := ControlPlaneNamespaceLabels(mi); l["topology.istio.io/network"] != "net-1" {
		t.Errorf("labels = %v, want topology.istio.io/network=net-1", l)
	}
	for _, o := range mustShared(t, mi, mustRevision(t, DefaultRevision, "1.32.0")) {
		if _, ok := o.(*corev1.Namespace); ok {
			t.Errorf("Shared rendered namespace %s; namespaces are the reconciler's", o.GetName())
		}
	}
}
