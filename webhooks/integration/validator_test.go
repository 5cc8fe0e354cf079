package integration_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

func meshInstall(name, version string) *meshv1alpha1.MeshInstall {
	return &meshv1alpha1.MeshInstall{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       meshv1alpha1.MeshInstallSpec{Version: version},
	}
}

// installedAt records in status that the MeshInstall runs version in place,
// as the operator would once istiod rolled out.
func installedAt(t *testing.T, mi *meshv1alpha1.MeshInstall, version string) {
	t.Helper()
	mi.Status = meshv1alpha1.MeshInstallStatus{
		ActiveRevision: "default", Version: version,
		Revisions: []meshv1alpha1.RevisionStatus{{Name: "default", Version: version, Role: meshv1alpha1.RevisionActive, Ready: true}},
	}
	if err := env.Client.Status().Update(context.Background(), mi); err != nil {
		t.Fatal(err)
	}
}

func TestValidatorThroughTheAPIServer(t *testing.T) {
	ctx := context.Background()

	t.Run("an unsupported version is refused, listing the supported ones", func(t *testing.T) {
		err := env.Client.Create(ctx, meshInstall("unsupported", "1.29.3"))
		if err == nil || !strings.Contains(err.Error(), `spec.version: Invalid value: "1.29.3": Istio version 1.29.3 is not supported; supported versions: 1.32.0, 1.31.0-1.31.4, 1.30.0-1.30.8`) {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("a spec the renderer cannot carry out is refused, naming the field, and nothing is stored", func(t *testing.T) {
		bad := meshInstall("reserved-env", "1.31.4")
		bad.Spec.Pilot.Env = map[string]string{"REVISION": "other"}
		err := env.Client.Create(ctx, bad)
		if err == nil || !strings.Contains(err.Error(), "spec.pilot.env[REVISION]: Forbidden") {
			t.Fatalf("got %v, want spec.pilot.env[REVISION] refused", err)
		}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(bad), &meshv1alpha1.MeshInstall{}); !apierrors.IsNotFound(err) {
			t.Errorf("the refused MeshInstall was stored: %v", err)
		}
	})

	t.Run("a pod label the gateway is selected by is refused, naming the field and the key", func(t *testing.T) {
		bad := meshInstall("reserved-pod-label", "1.31.4")
		bad.Spec.Gateways = []meshv1alpha1.GatewaySpec{{Name: "ingress",
			PodPlacement: meshv1alpha1.PodPlacement{PodLabels: map[string]string{"mesh.meshkeeper.dev/gateway": "other"}}}}
		bad.Spec.Pilot.PodLabels = map[string]string{"istio": "custom"}
		err := env.Client.Create(ctx, bad)
		for _, want := range []string{"spec.gateways[0].podLabels[mesh.meshkeeper.dev/gateway]: Forbidden", "spec.pilot.podLabels[istio]: Forbidden"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("got %v, want %s", err, want)
			}
		}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(bad), &meshv1alpha1.MeshInstall{}); !apierrors.IsNotFound(err) {
			t.Errorf("the refused MeshInstall was stored: %v", err)
		}
	})

	t.Run("a control plane or gateway outside the operator's mesh namespaces is refused, naming the field", func(t *testing.T) {
		for field, mutate := range map[string]func(*meshv1alpha1.MeshInstall){
			"spec.namespace: namespace shop is not one the operator manages meshes in": func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Namespace = "shop" },
			"spec.gateways[].namespace: namespace shop is not one": func(mi *meshv1alpha1.MeshInstall) {
				mi.Spec.Gateways = []meshv1alpha1.GatewaySpec{{Name: "ingress", Namespace: "shop"}}
			},
			"spec.namespace: namespace meshkeeper-system is the operator's own": func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Namespace = "meshkeeper-system" },
		} {
			bad := meshInstall("elsewhere", "1.31.4")
			mutate(bad)
			err := env.Client.Create(ctx, bad)
			if err == nil || !strings.Contains(err.Error(), field) {
				t.Errorf("got %v, want %q", err, field)
			}
			if err == nil {
				_ = env.Client.Delete(ctx, bad)
			}
		}
	})

	mi := meshInstall("default", "1.30.8")
	if err := env.Client.Create(ctx, mi); err != nil {
		t.Fatalf("a valid MeshInstall was refused: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, mi) })
	// At once, before any informer could have seen the first: the
	// validator reads the API server, not a cache that lags behind it.
	if err := env.Client.Create(ctx, meshInstall("second", "1.31.4"), client.DryRunAll); err == nil ||
		!strings.Contains(err.Error(), "MeshInstall default already manages the mesh of this cluster") {
		t.Errorf("a second MeshInstall created the moment after the first: %v, want it refused", err)
	}
	installedAt(t, mi, "1.30.8")

	t.Run("a second MeshInstall is refused", func(t *testing.T) {
		err := env.Client.Create(ctx, meshInstall("second", "1.31.4"))
		if err == nil || !strings.Contains(err.Error(), "MeshInstall default already manages the mesh of this cluster") {
			t.Fatalf("got %v", err)
		}
	})

	refused := []struct {
		name, version, rule string
		strategy            meshv1alpha1.UpdateStrategyType
	}{
		{"two minors in place", "1.32.0", "skips more than 1 minor version", meshv1alpha1.UpdateStrategyInPlace},
		{"a downgrade in place", "1.30.0", "in-place downgrade from 1.30.8 to 1.30.0 is not allowed", meshv1alpha1.UpdateStrategyInPlace},
	}
	for _, tc := range refused {
		t.Run(tc.name+" is refused and nothing changes", func(t *testing.T) {
			got := &meshv1alpha1.MeshInstall{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(mi), got); err != nil {
				t.Fatal(err)
			}
			got.Spec.Version = tc.version
			got.Spec.UpdateStrategy.Type = tc.strategy
			err := env.Client.Update(ctx, got)
			if err == nil || !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) && !strings.Contains(err.Error(), "denied") {
				t.Fatalf("got %v, want the update refused", err)
			}
			if !strings.Contains(err.Error(), tc.rule) {
				t.Errorf("message %q does not name the rule %q", err.Error(), tc.rule)
			}
			stored := &meshv1alpha1.MeshInstall{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(mi), stored); err != nil {
				t.Fatal(err)
			}
			if stored.Spec.Version != "1.30.8" {
				t.Errorf("stored version is %s after a refused update", stored.Spec.Version)
			}
		})
	}

	t.Run("a change of CA on the running mesh is refused, saying how to do it safely", func(t *testing.T) {
		got := &meshv1alpha1.MeshInstall{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(mi), got); err != nil {
			t.Fatal(err)
		}
		got.Spec.Security.CertificateAuthority = &meshv1alpha1.CertificateAuthoritySpec{
			Type:      meshv1alpha1.CertificateAuthorityCertManager,
			IssuerRef: &meshv1alpha1.CertificateAuthorityIssuerRef{Kind: meshv1alpha1.IssuerKindClusterIssuer, Name: "mesh-root"},
		}
		err := env.Client.Update(ctx, got)
		for _, want := range []string{"spec.security.certificateAuthority cannot change from istiod's own self-signed CA to ClusterIssuer mesh-root while the mesh runs",
			"mTLS between pods holding old and new certificates would fail", meshv1alpha1.AnnotationAllowCertificateAuthorityChange + "=true"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, want the update refused saying %q", err, want)
			}
		}
		stored := &meshv1alpha1.MeshInstall{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(mi), stored); err != nil {
			t.Fatal(err)
		}
		if stored.Spec.Security.CertificateAuthority != nil {
			t.Errorf("stored CA is %+v after a refused update", stored.Spec.Security.CertificateAuthority)
		}
	})

	t.Run("the next minor in place is accepted, with a warning naming the istiod defaults it changes", func(t *testing.T) {
		warnings := &recordedWarnings{}
		cfg := rest.CopyConfig(env.Config)
		cfg.WarningHandler = warnings
		c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
		if err != nil {
			t.Fatal(err)
		}
		got := &meshv1alpha1.MeshInstall{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(mi), got); err != nil {
			t.Fatal(err)
		}
		got.Spec.Version = "1.31.4"
		got.Spec.Pilot.Env = map[string]string{"PILOT_ENABLE_STRICT_GATEWAY_MERGING": "true"} // pinned: not named
		if err := c.Update(ctx, got); err != nil {
			t.Fatalf("refused: %v", err)
		}
		want := "upgrading from Istio 1.30 to 1.31 changes istiod defaults; to keep 1.30's behaviour set in spec.pilot.env: " +
			"PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS=false, PILOT_SPAWN_UPSTREAM_SPAN_FOR_GATEWAY=false"
		if !slices.Contains(warnings.messages, want) {
			t.Errorf("warnings %q, want %q", warnings.messages, want)
		}
	})

	t.Run("meshed namespaces that enforce a Pod Security level the mesh cannot satisfy are warned of, until it can", func(t *testing.T) {
		for name, labels := range map[string]map[string]string{
			"psa-restricted": {"istio-injection": "enabled", "pod-security.kubernetes.io/enforce": "restricted"},
			"psa-baseline":   {"istio.io/rev": "default", "pod-security.kubernetes.io/enforce": "baseline"},
			"psa-unmeshed":   {"pod-security.kubernetes.io/enforce": "restricted"},
			"psa-opted-out":  {"istio-injection": "disabled", "istio.io/rev": "default", "pod-security.kubernetes.io/enforce": "restricted"},
		} {
			if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}); err != nil {
				t.Fatal(err)
			}
		}
		update := func(change func(*meshv1alpha1.MeshInstall)) []string {
			t.Helper()
			warnings := &recordedWarnings{}
			cfg := rest.CopyConfig(env.Config)
			cfg.WarningHandler = warnings
			c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
			if err != nil {
				t.Fatal(err)
			}
			got := &meshv1alpha1.MeshInstall{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(mi), got); err != nil {
				t.Fatal(err)
			}
			change(got)
			if err := c.Update(ctx, got); err != nil {
				t.Fatalf("refused: %v", err)
			}
			return slices.DeleteFunc(warnings.messages, func(m string) bool { return !strings.Contains(m, "Pod Security") })
		}
		got := update(func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Proxy.LogLevel = meshv1alpha1.ProxyLogLevel("info") })
		want := []string{
			"meshed namespaces enforce Pod Security baseline (psa-baseline), which pods injected by this mesh cannot pass: " +
				"spec.cni.enabled is false (injected pods get istio-init, which runs as root with NET_ADMIN and NET_RAW)",
			"meshed namespaces enforce Pod Security restricted (psa-restricted), which pods injected by this mesh cannot pass: " +
				"spec.cni.enabled is false (injected pods get istio-init, which runs as root with NET_ADMIN and NET_RAW); " +
				"spec.proxy.seccompProfile is unset (only pods that set their own seccompProfile pass)",
		}
		if !slices.Equal(got, want) {
			t.Errorf("warnings %q\nwant %q", got, want)
		}
		got = update(func(mi *meshv1alpha1.MeshInstall) {
			mi.Spec.CNI.Enabled = true
			mi.Spec.Proxy.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
		})
		if len(got) != 0 {
			t.Errorf("with CNI and RuntimeDefault: warnings %q, want none", got)
		}
	})
}

// recordedWarnings keeps the API server's warnings to a client.
type recordedWarnings struct{ messages []string }

func (w *recordedWarnings) HandleWarningHeader(_ int, _ string, message string) {
	w.messages = append(w.messages, message)
}
