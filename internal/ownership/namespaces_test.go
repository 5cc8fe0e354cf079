package ownership

import (
	"errors"
	"strings"
	"testing"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/refusal"
)

func TestCheckNamespaces(t *testing.T) {
	managed := []string{"istio-system", "istio-ingress"}
	for _, tc := range []struct {
		name      string
		namespace string
		gateway   string
		refused   string // a word of the refusal; "" when accepted
	}{
		{"control plane and gateway in managed namespaces", "istio-system", "istio-ingress", ""},
		{"a gateway beside the control plane", "istio-system", "", ""},
		{"a control plane elsewhere", "mesh", "", "spec.namespace: namespace mesh is not one"},
		{"a gateway elsewhere", "istio-system", "shop", "spec.gateways[].namespace: namespace shop"},
		{"the operator's namespace", "meshkeeper-system", "", "the operator's own"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mi := &meshv1alpha1.MeshInstall{Spec: meshv1alpha1.MeshInstallSpec{Namespace: tc.namespace,
				Gateways: []meshv1alpha1.GatewaySpec{{Name: "gw", Namespace: tc.gateway}}}}
			err := CheckNamespaces(mi, append(managed, "meshkeeper-system"), "meshkeeper-system")
			var refused *refusal.Error
			switch {
			case tc.refused == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.refused != "" && (!errors.As(err, &refused) || refused.Reason != meshv1alpha1.ReasonNamespaceNotManaged ||
				!strings.Contains(refused.Message, tc.refused)):
				t.Errorf("got %v, want a NamespaceNotManaged refusal saying %q", err, tc.refused)
			}
		})
	}
}
