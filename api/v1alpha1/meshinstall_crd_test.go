package v1alpha1_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		println(err.Error())
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

func loadSample(t *testing.T) *meshv1alpha1.MeshInstall {
	t.Helper()
	mi, err := testenv.Sample()
	if err != nil {
		t.Fatal(err)
	}
	return mi
}

// minimal returns the smallest valid MeshInstall, as unstructured so that
// tests can set fields the Go types would not let them express.
func minimal(name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "mesh.meshkeeper.dev/v1alpha1",
		"kind":       "MeshInstall",
		"metadata":   map[string]any{"name": name},
		"spec":       map[string]any{"version": "1.31.4"},
	}}
	return u
}

func TestSampleIsAcceptedAndDefaulted(t *testing.T) {
	ctx := context.Background()
	mi := loadSample(t)
	mi.Name = "sample"
	if err := env.Client.Create(ctx, mi); err != nil {
		t.Fatalf("sample refused: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, mi) })

	got := &meshv1alpha1.MeshInstall{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(mi), got); err != nil {
		t.Fatal(err)
	}
	s := got.Spec
	checks := []struct {
		field     string
		got, want any
	}{
		{"spec.hub", s.Hub, "docker.io/istio"},
		{"spec.injection.rewriteAppProbes", deref(s.Injection.RewriteAppProbes), true},
		{"spec.meshConfig.trustDomain", s.MeshConfig.TrustDomain, "cluster.local"},
		{"spec.meshConfig.enablePrometheusMerge", deref(s.MeshConfig.EnablePrometheusMerge), true},
		{"spec.cluster.name", s.Cluster.Name, "Kubernetes"},
		{"spec.proxy.logLevel", s.Proxy.LogLevel, meshv1alpha1.ProxyLogLevel("warning")},
		{"spec.proxy.componentLogLevel", s.Proxy.ComponentLogLevel, "misc:error"},
		{"spec.updateStrategy.inactiveRevisionDeletionGracePeriod", s.UpdateStrategy.InactiveRevisionDeletionGracePeriod.Duration, 30 * time.Second},
		{"spec.gateways[0].replicas", deref(s.Gateways[0].Replicas), int32(1)},
		{"spec.gateways[0].serviceType", string(s.Gateways[0].ServiceType), "ClusterIP"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
		}
	}
}

func TestMinimalSpecGetsDocumentedDefaults(t *testing.T) {
	ctx := context.Background()
	u := minimal("minimal-defaults")
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatalf("minimal spec refused: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, u) })
	got := &meshv1alpha1.MeshInstall{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: u.GetName()}, got); err != nil {
		t.Fatal(err)
	}
	s := got.Spec
	if s.Namespace != "istio-system" || s.Profile != meshv1alpha1.ProfileDefault ||
		s.UpdateStrategy.Type != meshv1alpha1.UpdateStrategyInPlace ||
		s.Injection.NativeSidecars != meshv1alpha1.NativeSidecarAuto ||
		s.Injection.FailurePolicy != meshv1alpha1.FailurePolicyFail {
		t.Errorf("defaults not applied: namespace=%q profile=%q strategy=%q nativeSidecars=%q failurePolicy=%q",
			s.Namespace, s.Profile, s.UpdateStrategy.Type, s.Injection.NativeSidecars, s.Injection.FailurePolicy)
	}
	if pd := s.UpdateStrategy.ProgressDeadline; pd == nil || pd.Duration != 10*time.Minute {
		t.Errorf("updateStrategy.progressDeadline = %v, want 10m", pd)
	}
	if r := s.DataPlane.Rollout; r.Mode != meshv1alpha1.RolloutManual || r.MaxConcurrent == nil || r.MaxConcurrent.IntValue() != 1 ||
		r.ProgressDeadline == nil || r.ProgressDeadline.Duration != 10*time.Minute || r.PauseBetween == nil || r.PauseBetween.Duration != 0 {
		t.Errorf("dataPlane.rollout defaults = %+v, want Manual, one at a time, 10m deadline, no pause", r)
	}
	if c := s.CNI; c.Enabled || c.Namespace != "kube-system" || c.Provider != meshv1alpha1.CNIProviderDefault ||
		c.BinDir != "/opt/cni/bin" || c.ConfDir != "/etc/cni/net.d" || len(c.ExcludeNamespaces) != 1 || c.ExcludeNamespaces[0] != "kube-system" ||
		c.Repair != meshv1alpha1.CNIRepairPods {
		t.Errorf("cni defaults = %+v, want off, kube-system, default provider, Istio's chart's dirs, kube-system excluded, RepairPods", c)
	}

	// A canary strategy gets the documented steps and interval.
	got.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{Type: meshv1alpha1.UpdateStrategyCanary, Canary: &meshv1alpha1.CanaryStrategy{}}
	if err := env.Client.Update(ctx, got); err != nil {
		t.Fatalf("switching to canary refused: %v", err)
	}
	c := got.Spec.UpdateStrategy.Canary
	if len(c.Steps) != 3 || c.Steps[0] != 10 || c.Steps[1] != 50 || c.Steps[2] != 100 || c.StepInterval.Duration != 5*time.Minute {
		t.Errorf("canary defaults = steps %v interval %v, want [10 50 100] 5m", c.Steps, c.StepInterval)
	}
}

func TestInvalidSpecsAreRefusedNamingTheField(t *testing.T) {
	cases := []refusal{
		{"version not X.Y.Z", func(s map[string]any) { s["version"] = "1.32" }, []string{"spec.version"}},
		{"version with a v prefix", func(s map[string]any) { s["version"] = "v1.32.0" }, []string{"spec.version"}},
		{"version missing", func(s map[string]any) { delete(s, "version") }, []string{"spec.version", "Required"}},
		{"namespace not a DNS label", func(s map[string]any) { s["namespace"] = "Istio_System" }, []string{"spec.namespace"}},
		{"unknown profile", func(s map[string]any) { s["profile"] = "ambient" }, []string{"spec.profile", "Unsupported value"}},
		{"unknown update strategy", func(s map[string]any) { s["updateStrategy"] = map[string]any{"type": "BlueGreen"} }, []string{"spec.updateStrategy.type"}},
		{"canary settings with InPlace", func(s map[string]any) {
			s["updateStrategy"] = map[string]any{"type": "InPlace", "canary": map[string]any{"steps": []any{50, 100}}}
		}, []string{"spec.updateStrategy", "canary may only be set when spec.updateStrategy.type is Canary"}},
		{"canary steps not increasing", func(s map[string]any) {
			s["updateStrategy"] = map[string]any{"type": "Canary", "canary": map[string]any{"steps": []any{50, 10, 100}}}
		}, []string{"spec.updateStrategy.canary.steps", "strictly increasing"}},
		{"seccomp Localhost without its profile", func(s map[string]any) {
			s["proxy"] = map[string]any{"seccompProfile": map[string]any{"type": "Localhost"}}
		}, []string{"spec.proxy.seccompProfile", "localhostProfile is required"}},
		{"unknown CNI provider", func(s map[string]any) { s["cni"] = map[string]any{"enabled": true, "provider": "calico"} }, []string{"spec.cni.provider", "Unsupported value"}},
		{"CNI bin dir not absolute", func(s map[string]any) { s["cni"] = map[string]any{"binDir": "opt/cni/bin"} }, []string{"spec.cni.binDir"}},
		{"CNI namespace not a DNS label", func(s map[string]any) { s["cni"] = map[string]any{"namespace": "Kube_System"} }, []string{"spec.cni.namespace"}},
		{"unknown CNI repair", func(s map[string]any) { s["cni"] = map[string]any{"repair": "Fix"} }, []string{"spec.cni.repair", "Unsupported value"}},
		{"canary steps repeated", func(s map[string]any) {
			s["updateStrategy"] = map[string]any{"type": "Canary", "canary": map[string]any{"steps": []any{10, 10, 100}}}
		}, []string{"spec.updateStrategy.canary.steps", "Duplicate value"}},
		{"canary steps not ending at 100", func(s map[string]any) {
			s["updateStrategy"] = map[string]any{"type": "Canary", "canary": map[string]any{"steps": []any{10, 50}}}
		}, []string{"spec.updateStrategy.canary.steps", "must end at 100"}},
		{"canary step above 100", func(s map[string]any) {
			s["updateStrategy"] = map[string]any{"type": "Canary", "canary": map[string]any{"steps": []any{10, 150}}}
		}, []string{"spec.updateStrategy.canary.steps[1]", "less than or equal to 100"}},
		{"canary step zero", func(s map[string]any) {
			s["updateStrategy"] = map[string]any{"type": "Canary", "canary": map[string]any{"steps": []any{0, 100}}}
		}, []string{"spec.updateStrategy.canary.steps[0]", "greater than or equal to 1"}},
		{"migration without the Canary strategy", func(s map[string]any) { s["migration"] = map[string]any{"revision": "default"} },
			[]string{"spec", "spec.migration requires spec.updateStrategy.type Canary"}},
		{"migration into the namespace it migrates off", func(s map[string]any) {
			s["updateStrategy"] = map[string]any{"type": "Canary"}
			s["migration"] = map[string]any{"revision": "default"}
		}, []string{"spec.namespace must differ from spec.migration.namespace"}},
		{"migration without its revision", func(s map[string]any) {
			s["namespace"] = "istio-meshkeeper"
			s["updateStrategy"] = map[string]any{"type": "Canary"}
			s["migration"] = map[string]any{"namespace": "istio-system"}
		}, []string{"spec.migration.revision", "Required"}},
		{"migration with an unknown action", func(s map[string]any) {
			s["updateStrategy"] = map[string]any{"type": "Canary"}
			s["namespace"] = "istio-meshkeeper"
			s["migration"] = map[string]any{"revision": "default", "foreignControlPlane": "Delete"}
		}, []string{"spec.migration.foreignControlPlane", "Unsupported value"}},
		{"revision tag named default", func(s map[string]any) { s["revisionTags"] = []any{"prod", "default"} }, []string{"spec.revisionTags", "must not contain 'default'"}},
		{"revision tag not a DNS label", func(s map[string]any) { s["revisionTags"] = []any{"Prod!"} }, []string{"spec.revisionTags[0]"}},
		{"duplicate gateway names", func(s map[string]any) {
			s["gateways"] = []any{map[string]any{"name": "ingress"}, map[string]any{"name": "ingress", "type": "Egress"}}
		}, []string{"spec.gateways[1]", "Duplicate value"}},
		{"unknown failure policy", func(s map[string]any) { s["injection"] = map[string]any{"failurePolicy": "Retry"} }, []string{"spec.injection.failurePolicy"}},
		{"unknown native sidecar mode", func(s map[string]any) { s["injection"] = map[string]any{"nativeSidecars": "Always"} }, []string{"spec.injection.nativeSidecars"}},
		{"unknown mTLS mode", func(s map[string]any) { s["security"] = map[string]any{"mtls": "Required"} }, []string{"spec.security.mtls"}},
		{"pilot replicas zero", func(s map[string]any) { s["pilot"] = map[string]any{"replicas": 0} }, []string{"spec.pilot.replicas"}},
		{"autoscaling min above max", func(s map[string]any) {
			s["pilot"] = map[string]any{"autoscaling": map[string]any{"enabled": true, "minReplicas": 5, "maxReplicas": 2}}
		}, []string{"spec.pilot", "minReplicas must not exceed spec.pilot.autoscaling.maxReplicas"}},
		{"unknown proxy log level", func(s map[string]any) { s["proxy"] = map[string]any{"logLevel": "verbose"} }, []string{"spec.proxy.logLevel"}},
		{"unknown outbound traffic policy", func(s map[string]any) { s["meshConfig"] = map[string]any{"outboundTrafficPolicy": "DENY"} }, []string{"spec.meshConfig.outboundTrafficPolicy"}},
		{"hub with spaces", func(s map[string]any) { s["hub"] = "docker.io/my istio" }, []string{"spec.hub"}},
		{"rollout maxConcurrent zero", func(s map[string]any) {
			s["dataPlane"] = map[string]any{"rollout": map[string]any{"maxConcurrent": 0}}
		}, []string{"spec.dataPlane.rollout", "maxConcurrent must be a number of at least 1"}},
		{"rollout maxConcurrent above a hundred percent", func(s map[string]any) {
			s["dataPlane"] = map[string]any{"rollout": map[string]any{"maxConcurrent": "150%"}}
		}, []string{"spec.dataPlane.rollout", "percentage from 1% to 100%"}},
		{"unknown rollout mode", func(s map[string]any) {
			s["dataPlane"] = map[string]any{"rollout": map[string]any{"mode": "Eager"}}
		}, []string{"spec.dataPlane.rollout.mode"}},
		{"rollout progress deadline too short", func(s map[string]any) {
			s["dataPlane"] = map[string]any{"rollout": map[string]any{"progressDeadline": "1s"}}
		}, []string{"spec.dataPlane.rollout.progressDeadline", "at least 5s"}},
		{"upgrade progress deadline too short", func(s map[string]any) {
			s["updateStrategy"] = map[string]any{"type": "InPlace", "progressDeadline": "1s"}
		}, []string{"spec.updateStrategy.progressDeadline", "between 10s and 24h"}},
		{"certificate authority of another kind of issuer", func(s map[string]any) {
			s["security"] = map[string]any{"certificateAuthority": map[string]any{"type": "CertManager",
				"issuerRef": map[string]any{"name": "vault", "kind": "VaultIssuer"}}}
		}, []string{"spec.security.certificateAuthority.issuerRef.kind", "Unsupported value", "Issuer", "ClusterIssuer"}},
		{"certificate authority of another issuer group", func(s map[string]any) {
			s["security"] = map[string]any{"certificateAuthority": map[string]any{"type": "CertManager",
				"issuerRef": map[string]any{"name": "pca", "kind": "ClusterIssuer", "group": "awspca.cert-manager.io"}}}
		}, []string{"spec.security.certificateAuthority.issuerRef.group", "Unsupported value"}},
		{"cert-manager certificate authority without an issuer", func(s map[string]any) {
			s["security"] = map[string]any{"certificateAuthority": map[string]any{"type": "CertManager"}}
		}, []string{"spec.security.certificateAuthority", "issuerRef is required when type is CertManager"}},
		{"self-signed certificate authority with an issuer", func(s map[string]any) {
			s["security"] = map[string]any{"certificateAuthority": map[string]any{"type": "SelfSigned",
				"issuerRef": map[string]any{"name": "root", "kind": "ClusterIssuer"}}}
		}, []string{"spec.security.certificateAuthority", "may only be set when type is CertManager"}},
		{"certificate authority renewed after it expires", func(s map[string]any) {
			s["security"] = map[string]any{"certificateAuthority": map[string]any{"type": "CertManager",
				"issuerRef": map[string]any{"name": "root", "kind": "ClusterIssuer"}, "duration": "24h", "renewBefore": "48h"}}
		}, []string{"spec.security.certificateAuthority", "renewBefore must be shorter than duration"}},
		{"certificate authority renewed after cert-manager's default duration", func(s map[string]any) {
			s["security"] = map[string]any{"certificateAuthority": map[string]any{"type": "CertManager",
				"issuerRef": map[string]any{"name": "root", "kind": "ClusterIssuer"}, "renewBefore": "2200h"}}
		}, []string{"spec.security.certificateAuthority", "renewBefore must be shorter than duration"}},
		{"certificate authority too short-lived", func(s map[string]any) {
			s["security"] = map[string]any{"certificateAuthority": map[string]any{"type": "CertManager",
				"issuerRef": map[string]any{"name": "root", "kind": "ClusterIssuer"}, "duration": "10m"}}
		}, []string{"spec.security.certificateAuthority.duration", "at least 1h"}},
		{"gateway service port out of range", func(s map[string]any) {
			s["gateways"] = []any{map[string]any{"name": "ingress", "ports": []any{map[string]any{"name": "http", "port": 70000}}}}
		}, []string{"spec.gateways[0].ports[0].port"}},
		{"gateway node port on a ClusterIP Service", func(s map[string]any) {
			s["gateways"] = []any{map[string]any{"name": "ingress", "ports": []any{map[string]any{"name": "http", "port": 80, "nodePort": 30080}}}}
		}, []string{"spec.gateways[0]", "spec.gateways[].ports[].nodePort may only be set when serviceType is NodePort or LoadBalancer"}},
		{"gateway load balancer class on a NodePort Service", func(s map[string]any) {
			s["gateways"] = []any{map[string]any{"name": "ingress", "serviceType": "NodePort",
				"service": map[string]any{"loadBalancerClass": "service.k8s.aws/nlb"}}}
		}, []string{"spec.gateways[0]", "loadBalancerClass", "only be set when serviceType is LoadBalancer"}},
		{"gateway source ranges on a ClusterIP Service", func(s map[string]any) {
			s["gateways"] = []any{map[string]any{"name": "ingress", "service": map[string]any{"loadBalancerSourceRanges": []any{"10.0.0.0/8"}}}}
		}, []string{"spec.gateways[0]", "loadBalancerSourceRanges", "only be set when serviceType is LoadBalancer"}},
		{"gateway external traffic policy Local on a ClusterIP Service", func(s map[string]any) {
			s["gateways"] = []any{map[string]any{"name": "ingress", "service": map[string]any{"externalTrafficPolicy": "Local"}}}
		}, []string{"spec.gateways[0]", "spec.gateways[].service.externalTrafficPolicy may only be set when serviceType is NodePort or LoadBalancer"}},
		{"gateway unknown external traffic policy", func(s map[string]any) {
			s["gateways"] = []any{map[string]any{"name": "ingress", "serviceType": "LoadBalancer", "service": map[string]any{"externalTrafficPolicy": "Nearest"}}}
		}, []string{"spec.gateways[0].service.externalTrafficPolicy", "Unsupported value"}},
		{"gateway autoscaling min above max", func(s map[string]any) {
			s["gateways"] = []any{map[string]any{"name": "ingress", "autoscaling": map[string]any{"enabled": true, "minReplicas": 6, "maxReplicas": 3}}}
		}, []string{"spec.gateways[0]", "spec.gateways[].autoscaling.minReplicas must not exceed"}},
		{"gateway disruption budget with both bounds", func(s map[string]any) {
			s["gateways"] = []any{map[string]any{"name": "ingress", "podDisruptionBudget": map[string]any{"minAvailable": 1, "maxUnavailable": "50%"}}}
		}, []string{"spec.gateways[0].podDisruptionBudget", "minAvailable or maxUnavailable, not both"}},
		{"gateway pull secret not a name", func(s map[string]any) {
			s["gateways"] = []any{map[string]any{"name": "ingress", "imagePullSecrets": []any{"My Registry"}}}
		}, []string{"spec.gateways[0].imagePullSecrets[0]"}},
		{"pilot variant with an image", func(s map[string]any) {
			s["pilot"] = map[string]any{"variant": "distroless", "image": "registry.example.com/pilot:1.31.4"}
		}, []string{"spec.pilot", "variant cannot be combined with spec.pilot.image"}},
		{"unknown proxy variant", func(s map[string]any) { s["proxy"] = map[string]any{"variant": "alpine"} }, []string{"spec.proxy.variant", "Unsupported value"}},
		{"unknown proxy pull policy", func(s map[string]any) { s["proxy"] = map[string]any{"imagePullPolicy": "Sometimes"} }, []string{"spec.proxy.imagePullPolicy", "Unsupported value"}},
		{"pilot priority class not a name", func(s map[string]any) { s["pilot"] = map[string]any{"priorityClassName": "Critical!"} }, []string{"spec.pilot.priorityClassName"}},
		{"overlay of a ClusterRole", func(s map[string]any) {
			s["overlays"] = []any{map[string]any{"target": map[string]any{"kind": "ClusterRole", "name": "istiod-clusterrole-istio-system"},
				"strategicMerge": map[string]any{"rules": []any{map[string]any{"apiGroups": []any{"*"}, "resources": []any{"*"}, "verbs": []any{"*"}}}}}}
		}, []string{"spec.overlays[0].target.kind", "Unsupported value", `"ClusterRole"`}},
		{"overlay of the validator's webhook configuration", func(s map[string]any) {
			s["overlays"] = []any{map[string]any{"target": map[string]any{"kind": "ValidatingWebhookConfiguration", "name": "istio-validator-istio-system"},
				"jsonPatch": []any{map[string]any{"op": "add", "path": "/webhooks/0/clientConfig/url", "value": "https://elsewhere.example.com"}}}}
		}, []string{"spec.overlays[0].target.kind", "Unsupported value"}},
	}
	if len(cases) < 12 {
		t.Fatalf("want at least 12 invalid specs, have %d", len(cases))
	}
	expectRefused(t, "invalid-", cases)
}

// refusal is a spec change the CRD must refuse, naming the field.
type refusal struct {
	name    string
	mutate  func(spec map[string]any)
	wantMsg []string // every fragment must appear in the error
}

// expectRefused creates, for each case, a minimal MeshInstall changed by
// it, and checks that the API server refuses it as Invalid with every
// fragment in the message, and stores nothing.
func expectRefused(t *testing.T, prefix string, cases []refusal) {
	t.Helper()
	ctx := context.Background()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := minimal(prefix + strings.ReplaceAll(strings.ToLower(tc.name), " ", "-"))
			if len(u.GetName()) > 63 {
				u.SetName(u.GetName()[:60] + string(rune('a'+i%26)))
			}
			tc.mutate(u.Object["spec"].(map[string]any))
			err := env.Client.Create(ctx, u)
			if err == nil {
				_ = env.Client.Delete(ctx, u)
				t.Fatalf("spec was accepted, want it refused")
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			for _, frag := range tc.wantMsg {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error %q does not mention %q", err.Error(), frag)
				}
			}
			// Nothing was stored.
			if err := env.Client.Get(ctx, client.ObjectKey{Name: u.GetName()}, &meshv1alpha1.MeshInstall{}); !apierrors.IsNotFound(err) {
				t.Errorf("refused object exists anyway: %v", err)
			}
		})
	}
}

func TestNamespaceIsImmutable(t *testing.T) {
	ctx := context.Background()
	u := minimal("immutable-namespace")
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, u) })
	mi := &meshv1alpha1.MeshInstall{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: u.GetName()}, mi); err != nil {
		t.Fatal(err)
	}
	mi.Spec.Namespace = "other-system"
	err := env.Client.Update(ctx, mi)
	if err == nil || !strings.Contains(err.Error(), "spec.namespace is immutable") {
		t.Fatalf("changing spec.namespace: got %v, want it refused as immutable", err)
	}
	// Other fields stay editable.
	if err := env.Client.Get(ctx, client.ObjectKey{Name: u.GetName()}, mi); err != nil {
		t.Fatal(err)
	}
	mi.Spec.Version = "1.32.0"
	if err := env.Client.Update(ctx, mi); err != nil {
		t.Fatalf("changing spec.version refused: %v", err)
	}
}

func TestStatusSubresourceAndPrinterColumns(t *testing.T) {
	ctx := context.Background()
	u := minimal("status-and-columns")
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, u) })
	mi := &meshv1alpha1.MeshInstall{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: u.GetName()}, mi); err != nil {
		t.Fatal(err)
	}

	// Status is written through the subresource only.
	mi.Status.ActiveRevision = "ignored"
	if err := env.Client.Update(ctx, mi); err != nil {
		t.Fatal(err)
	}
	if mi.Status.ActiveRevision != "" {
		t.Errorf("an update of the main resource changed status.activeRevision to %q", mi.Status.ActiveRevision)
	}
	mi.Status = meshv1alpha1.MeshInstallStatus{
		ObservedGeneration: mi.Generation,
		ActiveRevision:     "default",
		Version:            "1.31.4",
		DataPlane:          &meshv1alpha1.DataPlaneStatus{InjectedPods: 7, UpToDatePods: 5},
	}
	meta.SetStatusCondition(&mi.Status.Conditions, metav1.Condition{
		Type: meshv1alpha1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: meshv1alpha1.ReasonReconcileSucceeded, Message: "istiod is available",
	})
	if err := env.Client.Status().Update(ctx, mi); err != nil {
		t.Fatalf("status update: %v", err)
	}

	// What `kubectl get meshinstall` shows: the server-side Table.
	hc, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(env.Config.Host, "/")+"/apis/mesh.meshkeeper.dev/v1alpha1/meshinstalls/"+u.GetName(), nil)
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET table: %d %s %v", resp.StatusCode, raw, err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for i, col := range table.ColumnDefinitions {
		got[col.Name] = table.Rows[0].Cells[i]
	}
	want := map[string]any{"Version": "1.31.4", "Active": "default", "Ready": "True", "Up-To-Date": float64(5), "Injected": float64(7)}
	for col, v := range want {
		if got[col] != v {
			t.Errorf("column %s = %v, want %v (all: %v)", col, got[col], v, got)
		}
	}
	if _, ok := got["Age"]; !ok {
		t.Errorf("no Age column: %v", got)
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func TestCertificateAuthorityIsAcceptedAndDefaulted(t *testing.T) {
	ctx := context.Background()
	u := minimal("certificate-authority")
	u.Object["spec"].(map[string]any)["security"] = map[string]any{"certificateAuthority": map[string]any{
		"issuerRef": map[string]any{"name": "mesh-root", "kind": "ClusterIssuer"}, "type": "CertManager", "duration": "2160h", "renewBefore": "720h",
	}}
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatalf("a cert-manager CA refused: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, u) })

	self := minimal("certificate-authority-default")
	self.Object["spec"].(map[string]any)["security"] = map[string]any{"certificateAuthority": map[string]any{}}
	if err := env.Client.Create(ctx, self); err != nil {
		t.Fatalf("an empty certificateAuthority refused: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, self) })
	got := &meshv1alpha1.MeshInstall{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: self.GetName()}, got); err != nil {
		t.Fatal(err)
	}
	if ca := got.Spec.Security.CertificateAuthority; ca == nil || ca.Type != meshv1alpha1.CertificateAuthoritySelfSigned {
		t.Errorf("certificateAuthority = %+v, want type SelfSigned by default", ca)
	}
}

// The placement and gateway knobs a production install sets are accepted as
// written (the schema keeps every field: none is pruned).
func TestPlacementAndGatewayKnobsAreAccepted(t *testing.T) {
	ctx := context.Background()
	u := minimal("placement-knobs")
	placement := map[string]any{
		"nodeSelector":      map[string]any{"node-role.example.com/mesh": "true"},
		"tolerations":       []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "mesh", "effect": "NoSchedule"}},
		"priorityClassName": "system-cluster-critical",
		"podAnnotations":    map[string]any{"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"},
		"podLabels":         map[string]any{"team": "platform"},
		"topologySpreadConstraints": []any{map[string]any{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
			"whenUnsatisfiable": "ScheduleAnyway"}},
		"affinity": map[string]any{"nodeAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{
			"nodeSelectorTerms": []any{map[string]any{"matchExpressions": []any{map[string]any{
				"key": "kubernetes.io/arch", "operator": "In", "values": []any{"amd64"}}}}}}}},
	}
	pilot := map[string]any{"variant": "distroless", "imagePullPolicy": "Always", "imagePullSecrets": []any{"mesh-registry"}}
	gateway := map[string]any{"name": "public", "serviceType": "LoadBalancer", "imagePullSecrets": []any{"gateway-registry"},
		"ports": []any{map[string]any{"name": "https", "port": 443, "targetPort": 8443, "nodePort": 30443}},
		"service": map[string]any{
			"annotations":              map[string]any{"service.beta.kubernetes.io/aws-load-balancer-type": "external"},
			"labels":                   map[string]any{"exposure": "public"},
			"loadBalancerIP":           "203.0.113.10",
			"loadBalancerClass":        "service.k8s.aws/nlb",
			"loadBalancerSourceRanges": []any{"203.0.113.0/24"},
			"externalTrafficPolicy":    "Local",
		},
		"autoscaling":         map[string]any{"enabled": true, "minReplicas": 2, "maxReplicas": 10},
		"podDisruptionBudget": map[string]any{"maxUnavailable": "50%"},
	}
	for k, v := range placement {
		pilot[k], gateway[k] = v, v
	}
	spec := u.Object["spec"].(map[string]any)
	spec["pilot"] = pilot
	spec["proxy"] = map[string]any{"variant": "debug", "imagePullPolicy": "IfNotPresent", "imagePullSecrets": []any{"mesh-registry"}}
	spec["gateways"] = []any{gateway}
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatalf("production knobs refused: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, u) })
	got := &meshv1alpha1.MeshInstall{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: u.GetName()}, got); err != nil {
		t.Fatal(err)
	}
	p, g := got.Spec.Pilot, got.Spec.Gateways[0]
	checks := []struct {
		field     string
		got, want any
	}{
		{"spec.pilot.variant", p.Variant, meshv1alpha1.ImageVariantDistroless},
		{"spec.pilot.priorityClassName", p.PriorityClassName, "system-cluster-critical"},
		{"spec.pilot.nodeSelector", p.NodeSelector["node-role.example.com/mesh"], "true"},
		{"spec.pilot.tolerations", len(p.Tolerations), 1},
		{"spec.pilot.affinity", p.Affinity != nil && p.Affinity.NodeAffinity != nil, true},
		{"spec.pilot.podLabels", p.PodLabels["team"], "platform"},
		{"spec.proxy.variant", got.Spec.Proxy.Variant, meshv1alpha1.ImageVariantDebug},
		{"spec.proxy.imagePullSecrets", len(got.Spec.Proxy.ImagePullSecrets), 1},
		{"spec.gateways[0].service.loadBalancerClass", g.Service.LoadBalancerClass, "service.k8s.aws/nlb"},
		{"spec.gateways[0].service.annotations", g.Service.Annotations["service.beta.kubernetes.io/aws-load-balancer-type"], "external"},
		{"spec.gateways[0].ports[0].nodePort", g.Ports[0].NodePort, int32(30443)},
		{"spec.gateways[0].autoscaling.targetCPUUtilizationPercentage", deref(g.Autoscaling.TargetCPUUtilizationPercentage), int32(80)},
		{"spec.gateways[0].podDisruptionBudget.maxUnavailable", g.PodDisruptionBudget.MaxUnavailable.String(), "50%"},
		{"spec.gateways[0].topologySpreadConstraints", len(g.TopologySpreadConstraints), 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
		}
	}
}
