package meshinstall

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/testenv"
	"github.com/meshkeeper/meshkeeper/internal/version"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

const timeout = 20 * time.Second

var testNamespaceSeq int

// controlPlaneNamespace is the namespace the running test's manager (startManager) manages.
func controlPlaneNamespace() string { return fmt.Sprintf("istio-system-%d", testNamespaceSeq) }

// createSample creates config/samples' MeshInstall (optionally changed) and
// deletes it, waiting until it is gone, when the test ends.
func createSample(t *testing.T, mutate func(*meshv1alpha1.MeshInstall)) *meshv1alpha1.MeshInstall {
	t.Helper()
	mi, err := testenv.Sample()
	if err != nil {
		t.Fatal(err)
	}
	// Every test gets its own control plane namespace (startManager).
	mi.Spec.Namespace = controlPlaneNamespace()
	if mutate != nil {
		mutate(mi)
	}
	ctx := context.Background()
	if err := env.Client.Create(ctx, mi); err != nil {
		t.Fatalf("creating the sample: %v", err)
	}
	t.Cleanup(func() {
		_ = env.Client.Delete(ctx, mi)
		eventually(t, timeout, "MeshInstall deleted", func() error {
			err := env.Client.Get(ctx, client.ObjectKeyFromObject(mi), &meshv1alpha1.MeshInstall{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("still there (%v)", err)
		})
	})
	return mi
}

func getMI(t *testing.T, name string) *meshv1alpha1.MeshInstall {
	t.Helper()
	mi := &meshv1alpha1.MeshInstall{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, mi); err != nil {
		t.Fatal(err)
	}
	return mi
}

// expectedObjects is what the renderer says one in-place revision and the shared part consist of.
func expectedObjects(t *testing.T, mi *meshv1alpha1.MeshInstall, rev string) []client.Object {
	t.Helper()
	v, err := version.Parse(mi.Spec.Version)
	if err != nil {
		t.Fatal(err)
	}
	r := render.Revision{Name: rev, Version: v}
	objs, err := render.ControlPlane(mi, r)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := render.Shared(mi, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range shared {
		// Gateway Deployments wait for istiod; TestInstall… checks they come after.
		if _, gw := o.GetLabels()[render.LabelGateway]; gw && o.GetObjectKind().GroupVersionKind().Kind == "Deployment" {
			continue
		}
		objs = append(objs, o)
	}
	return objs
}

// gatewayDeployments are the sample's gateway Deployments.
func gatewayDeployments(t *testing.T, mi *meshv1alpha1.MeshInstall) []client.Object {
	t.Helper()
	v, _ := version.Parse(mi.Spec.Version)
	shared, err := render.Shared(mi, render.Revision{Name: render.DefaultRevision, Version: v})
	if err != nil {
		t.Fatal(err)
	}
	var out []client.Object
	for _, o := range shared {
		if _, gw := o.GetLabels()[render.LabelGateway]; gw && o.GetObjectKind().GroupVersionKind().Kind == "Deployment" {
			out = append(out, o)
		}
	}
	return out
}

// live reads an object of any kind from the API server.
func live(obj client.Object) (client.Object, error) {
	u := &metav1.PartialObjectMetadata{}
	u.SetGroupVersionKind(obj.GetObjectKind().GroupVersionKind())
	err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), u)
	return u, err
}

func allExist(objs []client.Object) error {
	var missing []string
	for _, o := range objs {
		if _, err := live(o); err != nil {
			missing = append(missing, apply.KeyOf(o).String()+": "+err.Error())
		}
	}
	if len(missing) > 0 {
		return errors.New(strings.Join(missing, "; "))
	}
	return nil
}

// makeAvailable plays the Deployment controller, which envtest does not run:
// every replica of the current template is up and available.
func makeAvailable(t *testing.T, namespace, name string) {
	t.Helper()
	ctx := context.Background()
	eventually(t, timeout, "deployment "+name+" marked available", func() error {
		d := &appsv1.Deployment{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, d); err != nil {
			return err
		}
		replicas := int32(1)
		if d.Spec.Replicas != nil {
			replicas = *d.Spec.Replicas
		}
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation, Replicas: replicas, UpdatedReplicas: replicas,
			ReadyReplicas: replicas, AvailableReplicas: replicas,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue,
				LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now(), Reason: "MinimumReplicasAvailable"}},
		}
		return env.Client.Status().Update(ctx, d)
	})
}

func condition(t *testing.T, name, condType string) *metav1.Condition {
	t.Helper()
	return meta.FindStatusCondition(getMI(t, name).Status.Conditions, condType)
}

func waitCondition(t *testing.T, name, condType string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("%s=%s (%s)", condType, status, reason), func() error {
		c := condition(t, name, condType)
		if c == nil || c.Status != status || (reason != "" && c.Reason != reason) {
			return fmt.Errorf("condition is %+v", c)
		}
		return nil
	})
}

func TestInstallCreatesTheControlPlaneAndBecomesReady(t *testing.T) {
	startManager(t, managerOpts{})
	mi := createSample(t, nil)
	want := expectedObjects(t, mi, render.DefaultRevision)

	eventually(t, timeout, "every rendered object exists", func() error { return allExist(want) })
	eventually(t, timeout, "the injector configuration exists", func() error {
		return env.Client.Get(context.Background(), client.ObjectKey{Name: webhookconfig.InjectorName}, &admissionregistrationv1.MutatingWebhookConfiguration{})
	})
	crds, err := render.IstioCRDs(mi)
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Name: crd.Name}, &apiextensionsv1.CustomResourceDefinition{}); err != nil {
			t.Errorf("Istio CRD %s: %v", crd.Name, err)
		}
	}
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionFalse, meshv1alpha1.ReasonInstalling)
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReconciling, metav1.ConditionTrue, meshv1alpha1.ReasonInstalling)
	gateways := gatewayDeployments(t, mi)
	if len(gateways) == 0 {
		t.Fatal("the sample has no gateway")
	}
	if err := allExist(gateways); err == nil {
		t.Error("gateway Deployments were created before istiod was available; their pods would miss injection")
	}

	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))
	eventually(t, timeout, "gateways created once istiod is available", func() error { return allExist(gateways) })
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded)
	got := getMI(t, mi.Name)
	if got.Status.ActiveRevision != render.DefaultRevision || got.Status.Version != mi.Spec.Version ||
		got.Status.ObservedGeneration != got.Generation || len(got.Status.Revisions) != 1 ||
		got.Status.Revisions[0].Role != meshv1alpha1.RevisionActive || !got.Status.Revisions[0].Ready {
		t.Errorf("status = %+v", got.Status)
	}
	if c := condition(t, mi.Name, meshv1alpha1.ConditionReconciling); c.Status != metav1.ConditionFalse {
		t.Errorf("Reconciling = %+v, want False once ready", c)
	}
}

func TestDriftIsRepaired(t *testing.T) {
	startManager(t, managerOpts{})
	mi := createSample(t, nil)
	ctx := context.Background()
	want := expectedObjects(t, mi, render.DefaultRevision)
	eventually(t, timeout, "installed", func() error { return allExist(want) })
	ns := mi.Spec.Namespace

	t.Run("deleted Deployment", func(t *testing.T) {
		d := &appsv1.Deployment{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.IstiodName(render.DefaultRevision)}, d); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Delete(ctx, d); err != nil {
			t.Fatal(err)
		}
		eventually(t, timeout, "Deployment restored", func() error {
			got := &appsv1.Deployment{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(d), got); err != nil {
				return err
			}
			if got.UID == d.UID {
				return errors.New("not recreated yet")
			}
			return nil
		})
	})
	t.Run("edited mesh ConfigMap", func(t *testing.T) {
		cm := &corev1.ConfigMap{}
		key := client.ObjectKey{Namespace: ns, Name: render.MeshConfigMapName(render.DefaultRevision)}
		if err := env.Client.Get(ctx, key, cm); err != nil {
			t.Fatal(err)
		}
		original := cm.Data["mesh"]
		cm.Data["mesh"] = "defaultConfig: {}\n"
		if err := env.Client.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		eventually(t, timeout, "ConfigMap restored", func() error {
			if err := env.Client.Get(ctx, key, cm); err != nil {
				return err
			}
			if cm.Data["mesh"] != original {
				return fmt.Errorf("mesh is %q", cm.Data["mesh"])
			}
			return nil
		})
	})
	t.Run("deleted ClusterRole", func(t *testing.T) {
		var roles rbacv1.ClusterRoleList
		if err := env.Client.List(ctx, &roles, client.MatchingLabels{render.LabelMeshInstall: mi.Name}); err != nil || len(roles.Items) == 0 {
			t.Fatalf("no ClusterRoles (%v)", err)
		}
		victim := roles.Items[0]
		if err := env.Client.Delete(ctx, &victim); err != nil {
			t.Fatal(err)
		}
		eventually(t, timeout, "ClusterRole restored", func() error {
			got := &rbacv1.ClusterRole{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: victim.Name}, got); err != nil {
				return err
			}
			if got.UID == victim.UID {
				return errors.New("not recreated yet")
			}
			return nil
		})
	})
	t.Run("a rule added to a ClusterRole", func(t *testing.T) {
		var roles rbacv1.ClusterRoleList
		if err := env.Client.List(ctx, &roles, client.MatchingLabels{render.LabelMeshInstall: mi.Name}); err != nil || len(roles.Items) == 0 {
			t.Fatalf("no ClusterRoles (%v)", err)
		}
		victim := roles.Items[0]
		want := len(victim.Rules)
		victim.Rules = append(victim.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"*"}})
		if err := env.Client.Update(ctx, &victim); err != nil {
			t.Fatal(err)
		}
		eventually(t, timeout, "the extra rule taken out", func() error {
			got := &rbacv1.ClusterRole{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(&victim), got); err != nil {
				return err
			}
			if len(got.Rules) != want {
				return fmt.Errorf("%d rules, want %d", len(got.Rules), want)
			}
			return nil
		})
	})
	t.Run("an expression added to the injector's namespace selector", func(t *testing.T) {
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		key := client.ObjectKey{Name: webhookconfig.InjectorName}
		if err := env.Client.Get(ctx, key, mwc); err != nil {
			t.Fatal(err)
		}
		want := len(mwc.Webhooks[0].NamespaceSelector.MatchExpressions)
		mwc.Webhooks[0].NamespaceSelector.MatchExpressions = append(mwc.Webhooks[0].NamespaceSelector.MatchExpressions,
			metav1.LabelSelectorRequirement{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"nobody"}})
		if err := env.Client.Update(ctx, mwc); err != nil {
			t.Fatal(err)
		}
		eventually(t, timeout, "the narrowed selector put back", func() error {
			if err := env.Client.Get(ctx, key, mwc); err != nil {
				return err
			}
			if got := len(mwc.Webhooks[0].NamespaceSelector.MatchExpressions); got != want {
				return fmt.Errorf("%d expressions, want %d", got, want)
			}
			return nil
		})
	})
	t.Run("edited injector webhook configuration", func(t *testing.T) {
		key := client.ObjectKey{Name: webhookconfig.InjectorName}
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := env.Client.Get(ctx, key, mwc); err != nil {
			t.Fatal(err)
		}
		n := len(mwc.Webhooks)
		mwc.Webhooks = mwc.Webhooks[:1]
		if err := env.Client.Update(ctx, mwc); err != nil {
			t.Fatal(err)
		}
		eventually(t, timeout, "webhook entries restored", func() error {
			if err := env.Client.Get(ctx, key, mwc); err != nil {
				return err
			}
			if len(mwc.Webhooks) != n {
				return fmt.Errorf("%d entries, want %d", len(mwc.Webhooks), n)
			}
			return nil
		})
	})
	t.Run("deleted Istio validating webhook configuration", func(t *testing.T) {
		var vwcs admissionregistrationv1.ValidatingWebhookConfigurationList
		if err := env.Client.List(ctx, &vwcs, client.MatchingLabels{render.LabelMeshInstall: mi.Name}); err != nil || len(vwcs.Items) == 0 {
			t.Fatalf("no Istio validator (%v)", err)
		}
		victim := vwcs.Items[0]
		if err := env.Client.Delete(ctx, &victim); err != nil {
			t.Fatal(err)
		}
		eventually(t, timeout, "validator restored", func() error {
			return env.Client.Get(ctx, client.ObjectKey{Name: victim.Name}, &admissionregistrationv1.ValidatingWebhookConfiguration{})
		})
	})
	t.Run("deleted Istio CRD", func(t *testing.T) {
		crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "peerauthentications.security.istio.io"}}
		if err := env.Client.Delete(ctx, crd); err != nil {
			t.Fatal(err)
		}
		eventually(t, timeout, "CRD restored", func() error {
			got := &apiextensionsv1.CustomResourceDefinition{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(crd), got); err != nil {
				return err
			}
			if !got.DeletionTimestamp.IsZero() {
				return errors.New("still terminating")
			}
			return nil
		})
	})
}

func istiodImage(t *testing.T, mi *meshv1alpha1.MeshInstall) (*appsv1.Deployment, string) {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.IstiodName(render.DefaultRevision)}, d); err != nil {
		t.Fatal(err)
	}
	return d, d.Spec.Template.Spec.Containers[0].Image
}

func TestInPlaceMinorUpgrade(t *testing.T) {
	startManager(t, managerOpts{})
	mi := createSample(t, nil) // 1.31.4
	eventually(t, timeout, "installed", func() error { return allExist(expectedObjects(t, mi, render.DefaultRevision)) })
	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	before, _ := istiodImage(t, mi)

	updateMI(t, mi.Name, func(got *meshv1alpha1.MeshInstall) {
		got.Spec.Version = "1.32.0"
	})
	eventually(t, timeout, "istiod rolled to 1.32.0", func() error {
		_, img := istiodImage(t, mi)
		if !strings.HasSuffix(img, ":1.32.0") {
			return fmt.Errorf("image %s", img)
		}
		return nil
	})
	waitCondition(t, mi.Name, meshv1alpha1.ConditionUpgradeInProgress, metav1.ConditionTrue, meshv1alpha1.ReasonUpgradingInPlace)
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionFalse, meshv1alpha1.ReasonUpgradingInPlace)

	after, _ := istiodImage(t, mi)
	if *after.Spec.Replicas != *before.Spec.Replicas {
		t.Errorf("replicas changed from %d to %d", *before.Spec.Replicas, *after.Spec.Replicas)
	}
	ru := after.Spec.Strategy.RollingUpdate
	if ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update %+v, want maxUnavailable 0 to keep availability", ru)
	}

	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded)
	waitCondition(t, mi.Name, meshv1alpha1.ConditionUpgradeInProgress, metav1.ConditionFalse, "")
	if v := getMI(t, mi.Name).Status.Version; v != "1.32.0" {
		t.Errorf("status.version = %s, want 1.32.0", v)
	}
}

func TestRefusedUpgradeAppliesNothing(t *testing.T) {
	startManager(t, managerOpts{})
	mi := createSample(t, func(mi *meshv1alpha1.MeshInstall) { mi.Spec.Version = "1.30.8" })
	eventually(t, timeout, "installed", func() error { return allExist(expectedObjects(t, mi, render.DefaultRevision)) })
	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	_, imageBefore := istiodImage(t, mi)

	// Without the validating webhook in front (this suite runs none), the
	// reconciler is the last line: it refuses and applies nothing.
	updateMI(t, mi.Name, func(got *meshv1alpha1.MeshInstall) {
		got.Spec.Version = "1.32.0"
	})
	waitCondition(t, mi.Name, meshv1alpha1.ConditionStalled, metav1.ConditionTrue, meshv1alpha1.ReasonVersionSkewTooLarge)
	c := condition(t, mi.Name, meshv1alpha1.ConditionStalled)
	if !strings.Contains(c.Message, "skips more than 1 minor version") {
		t.Errorf("Stalled message %q does not name the rule", c.Message)
	}
	// The metric follows the status patch in the same pass.
	eventually(t, timeout, "meshkeeper_meshinstall_stalled says why", func() error {
		if got := testutil.ToFloat64(stalledGauge.WithLabelValues(mi.Name, meshv1alpha1.ReasonVersionSkewTooLarge)); got != 1 {
			return fmt.Errorf("meshkeeper_meshinstall_stalled{reason=%q} = %v, want 1", meshv1alpha1.ReasonVersionSkewTooLarge, got)
		}
		return nil
	})
	time.Sleep(time.Second) // give a wrong apply the chance to happen
	if _, img := istiodImage(t, mi); img != imageBefore {
		t.Errorf("istiod image changed to %s although the upgrade was refused", img)
	}
	// kstatus reads a refusal only at the generation it judged: Stalled at
	// observedGeneration == generation is "Failed" to kubectl wait, Flux and Argo CD.
	if g := getMI(t, mi.Name); g.Status.ObservedGeneration != g.Generation {
		t.Errorf("observedGeneration %d, want the refused generation %d: the refusal would read as still in progress", g.Status.ObservedGeneration, g.Generation)
	}
	if c := condition(t, mi.Name, meshv1alpha1.ConditionReady); c.Status != metav1.ConditionFalse || c.ObservedGeneration != getMI(t, mi.Name).Generation {
		t.Errorf("Ready = %+v, want False at the refused generation", c)
	}
}

func TestSuspendStopsAllWrites(t *testing.T) {
	startManager(t, managerOpts{})
	mi := createSample(t, nil)
	ctx := context.Background()
	eventually(t, timeout, "installed", func() error { return allExist(expectedObjects(t, mi, render.DefaultRevision)) })

	updateMI(t, mi.Name, func(got *meshv1alpha1.MeshInstall) {
		got.Spec.Suspend = true
	})
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReconciling, metav1.ConditionFalse, meshv1alpha1.ReasonSuspended)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: mi.Spec.Namespace, Name: render.MeshConfigMapName(render.DefaultRevision)}}
	if err := env.Client.Delete(ctx, cm); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(cm), &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a suspended MeshInstall restored its ConfigMap (err=%v)", err)
	}

	updateMI(t, mi.Name, func(got *meshv1alpha1.MeshInstall) {
		got.Spec.Suspend = false
	})
	eventually(t, timeout, "resumed and restored", func() error {
		return env.Client.Get(ctx, client.ObjectKeyFromObject(cm), &corev1.ConfigMap{})
	})
}

func TestRemovedPartsArePruned(t *testing.T) {
	startManager(t, managerOpts{})
	mi := createSample(t, nil)
	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded)
	before := expectedObjects(t, mi, render.DefaultRevision)
	before = append(before, gatewayDeployments(t, mi)...)
	eventually(t, timeout, "installed with its gateway and mTLS policy", func() error { return allExist(before) })

	updateMI(t, mi.Name, func(got *meshv1alpha1.MeshInstall) {
		got.Spec.Gateways = nil // with the minimal profile: no gateway at all
		got.Spec.Profile = meshv1alpha1.ProfileMinimal
		got.Spec.Security.MTLS = ""
	})
	after := expectedObjects(t, getMI(t, mi.Name), render.DefaultRevision)
	kept := map[apply.Key]bool{}
	for _, o := range after {
		kept[apply.KeyOf(o)] = true
	}
	var removed []client.Object
	for _, o := range before {
		if !kept[apply.KeyOf(o)] {
			removed = append(removed, o)
		}
	}
	kinds := map[string]bool{}
	for _, o := range removed {
		kinds[o.GetObjectKind().GroupVersionKind().Kind] = true
	}
	if !kinds["Deployment"] || !kinds["Service"] || !kinds["PeerAuthentication"] {
		t.Fatalf("the change should remove the gateway's Deployment and Service and the PeerAuthentication; removes %v", kinds)
	}
	eventually(t, timeout, "the gateway and the PeerAuthentication pruned", func() error {
		for _, o := range removed {
			_, err := live(o)
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return fmt.Errorf("%s: %w", apply.KeyOf(o), err)
			default:
				return fmt.Errorf("%s still exists", apply.KeyOf(o))
			}
		}
		return nil
	})
	if err := allExist(after); err != nil {
		t.Errorf("pruning removed wanted objects: %v", err)
	}
}

func TestDeleteRemovesEverythingButIstioCRDs(t *testing.T) {
	startManager(t, managerOpts{})
	mi := createSample(t, nil)
	ctx := context.Background()
	want := expectedObjects(t, mi, render.DefaultRevision)
	eventually(t, timeout, "installed", func() error { return allExist(want) })
	ns := &corev1.Namespace{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: mi.Spec.Namespace}, ns); err != nil || ns.Labels[render.LabelMeshInstall] != mi.Name {
		t.Fatalf("the operator did not create namespace %s (%v, labels %v)", mi.Spec.Namespace, err, ns.Labels)
	}
	// It created the namespace, and keeps it (TestDeleteKeepsNamespacesWithUsersObjects).

	if err := env.Client.Delete(ctx, mi); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "every object removed", func() error {
		for _, o := range want {
			got, err := live(o)
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return fmt.Errorf("%s: %w", apply.KeyOf(o), err)
			case got.GetDeletionTimestamp().IsZero():
				return fmt.Errorf("%s still exists", apply.KeyOf(o))
			}
		}
		err := env.Client.Get(ctx, client.ObjectKey{Name: webhookconfig.InjectorName}, &admissionregistrationv1.MutatingWebhookConfiguration{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("injector configuration: %v", err)
		}
		return nil
	})
	crds, _ := render.IstioCRDs(mi)
	for _, crd := range crds {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: crd.Name}, &apiextensionsv1.CustomResourceDefinition{}); err != nil {
			t.Errorf("Istio CRD %s was removed: %v (users' resources would go with it)", crd.Name, err)
		}
	}
}

func TestApplyErrorIsReportedAndRetried(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	funcs := &interceptor.Funcs{
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			if failing.Load() {
				return apierrors.NewServiceUnavailable("etcd is having a bad day")
			}
			return c.Apply(ctx, obj, opts...)
		},
	}
	startManager(t, managerOpts{funcs: funcs})
	mi := createSample(t, nil)
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionFalse, meshv1alpha1.ReasonApplyFailed)
	if c := condition(t, mi.Name, meshv1alpha1.ConditionReady); !strings.Contains(c.Message, "etcd is having a bad day") {
		t.Errorf("Ready message %q does not carry the API error", c.Message)
	}
	if c := condition(t, mi.Name, meshv1alpha1.ConditionStalled); c.Status != metav1.ConditionFalse {
		t.Errorf("a transient error stalled the MeshInstall: %+v", c)
	}
	failing.Store(false)
	eventually(t, 30*time.Second, "recovered after the API came back", func() error {
		return allExist(expectedObjects(t, mi, render.DefaultRevision))
	})
}

func TestDataPlaneInventory(t *testing.T) {
	startManager(t, managerOpts{})
	mi := createSample(t, nil)
	ctx := context.Background()
	eventually(t, timeout, "installed", func() error { return allExist(expectedObjects(t, mi, render.DefaultRevision)) })

	v, _ := version.Parse(mi.Spec.Version)
	cfg, err := render.InjectionConfig(mi, render.Revision{Name: render.DefaultRevision, Version: v})
	if err != nil {
		t.Fatal(err)
	}
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "inventory-shop"}}
	if err := env.Client.Create(ctx, nsObj); err != nil {
		t.Fatal(err)
	}
	pod := func(name string, annotations map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: nsObj.Name, Name: name, Annotations: annotations},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
		}
	}
	// Created before the namespace is labelled (the injector is not running in this suite):
	// two carry the stamp of an injection, current and outdated; one has none.
	// The outdated one belongs to a workload; the others are bare pods.
	owned := func(p *corev1.Pod) *corev1.Pod {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", UID: "uid-web-1", Controller: ptr.To(true)}}
		return p
	}
	hostNetwork := pod("host-network", nil)
	hostNetwork.Spec.HostNetwork = true
	// A finished Job's pod of a revision long gone: neither outdated nor holding its revision.
	finished := pod("finished", map[string]string{"sidecar.istio.io/status": "{}", "mesh.meshkeeper.dev/revision": "1-30-8",
		"mesh.meshkeeper.dev/proxy-version": "1.30.8", "mesh.meshkeeper.dev/config-hash": "0000"})

	// A pod someone stamped with a name meshkeeper never gives a revision.
	forged := pod("forged", map[string]string{"sidecar.istio.io/status": "{}", "mesh.meshkeeper.dev/revision": "not-a-revision", "mesh.meshkeeper.dev/config-hash": "0000"})
	forged.Labels = map[string]string{inject.LabelInjectedBy: "not-a-revision"}
	for _, p := range []*corev1.Pod{
		pod("current", map[string]string{"sidecar.istio.io/status": "{}", "mesh.meshkeeper.dev/revision": "default", "mesh.meshkeeper.dev/config-hash": cfg.Hash()}),
		owned(pod("outdated", map[string]string{"sidecar.istio.io/status": "{}", "mesh.meshkeeper.dev/revision": "default", "mesh.meshkeeper.dev/config-hash": "0000"})),
		pod("missed", nil),
		hostNetwork, // Istio never injects it: never "uninjected"
		finished,    // Succeeded: neither outdated nor in use
		forged,
	} {
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	finished.Status.Phase = corev1.PodSucceeded
	if err := env.Client.Status().Update(ctx, finished); err != nil {
		t.Fatal(err)
	}
	// Stamped only once it has finished (a pod cannot be created Succeeded):
	// it was never a running pod of that revision.
	finished.Labels = map[string]string{inject.LabelInjectedBy: "1-30-8"}
	if err := env.Client.Update(ctx, finished); err != nil {
		t.Fatal(err)
	}
	nsObj.Labels = map[string]string{"istio-injection": "enabled"}
	if err := env.Client.Update(ctx, nsObj); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*timeout, "data plane counted", func() error {
		dp := getMI(t, mi.Name).Status.DataPlane
		want := meshv1alpha1.DataPlaneStatus{InjectedPods: 3, UpToDatePods: 1, OutdatedPods: 2, UninjectedPods: 1, UnmanagedPods: 2}
		if dp != nil {
			counts := *dp
			counts.Rollout = nil
			dp = &counts
		}
		if dp == nil || *dp != want {
			return fmt.Errorf("dataPlane = %+v, want %+v", dp, want)
		}
		return nil
	})
	waitCondition(t, mi.Name, meshv1alpha1.ConditionDataPlaneUpToDate, metav1.ConditionFalse, meshv1alpha1.ReasonUninjectedPods)
	// Neither the finished pod's revision nor the forged one is brought back.
	for _, rev := range []string{"1-30-8", "not-a-revision"} {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.IstiodName(rev)}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
			t.Errorf("istiod of revision %s: %v, want none", rev, err)
		}
	}
	if revs := getMI(t, mi.Name).Status.Revisions; len(revs) != 1 {
		t.Errorf("status.revisions = %+v, want the default revision only", revs)
	}
}

// writeCounter counts the reconciler's writes, naming the last one.
type writeCounter struct {
	n    atomic.Int64
	last atomic.Value
}

func (w *writeCounter) count(what string, obj any) {
	w.n.Add(1)
	if o, ok := obj.(interface {
		GetName() string
		GetKind() string
	}); ok {
		w.last.Store(fmt.Sprintf("%s %s %s", what, o.GetKind(), o.GetName()))
		return
	}
	w.last.Store(fmt.Sprintf("%s %T", what, obj))
}

func (w *writeCounter) funcs() *interceptor.Funcs {
	return &interceptor.Funcs{
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			w.count("apply", obj)
			return c.Apply(ctx, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			w.count("create", obj)
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			w.count("update", obj)
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			w.count("patch", obj)
			return c.Patch(ctx, obj, patch, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			w.count("delete", obj)
			return c.Delete(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			w.count("patch "+sub, obj)
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	}
}

// settle waits until the counter has not moved for quiet.
func (w *writeCounter) settle(t *testing.T, quiet time.Duration) int64 {
	t.Helper()
	n := w.n.Load()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		time.Sleep(quiet)
		if m := w.n.Load(); m == n {
			return n
		} else {
			n = m
		}
	}
	t.Fatalf("the reconciler kept writing for %s (last: %v)", timeout, w.last.Load())
	return 0
}

// TestAPassThatChangesNothingWritesNothing runs passes that apply (the
// MeshInstall's annotations change) and passes that only count (pods come
// and go) over a settled control plane: none of them may write, pods alone
// render nothing, and drift is still put back.
func TestAPassThatChangesNothingWritesNothing(t *testing.T) {
	w := &writeCounter{}
	startManager(t, managerOpts{funcs: w.funcs()})
	mi := createSample(t, nil)
	ctx := context.Background()
	eventually(t, timeout, "installed", func() error { return allExist(expectedObjects(t, mi, render.DefaultRevision)) })
	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded)
	settled := w.settle(t, 2*time.Second)

	for i := range 3 {
		updateMI(t, mi.Name, func(got *meshv1alpha1.MeshInstall) {
			got.Annotations = map[string]string{"example.com/touched": strconv.Itoa(i)}
		})
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "churn-" + strconv.Itoa(i)},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}}}
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	time.Sleep(envtestPodEventDelay + 2*time.Second)
	if n := w.n.Load(); n != settled {
		t.Errorf("%d writes by passes that changed nothing (last: %v)", n-settled, w.last.Load())
	}

	// Pods alone: their passes stop after the plan, render and apply nothing.
	applied, counted := passesOf(mi.Name, passApply), passesOf(mi.Name, passCount)
	for i := range 3 {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pods-only-" + strconv.Itoa(i)},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}}}
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, timeout, "a pass after the pods", func() error {
		if passesOf(mi.Name, passCount) == counted {
			return errors.New("no pass yet")
		}
		return nil
	})
	if n := passesOf(mi.Name, passApply) - applied; n != 0 {
		t.Errorf("%v passes rendered and applied for pods alone, want none", n)
	}

	// Drift is still seen, even with a pod's pass pending on the same
	// request key: an edited ConfigMap is put back.
	if err := env.Client.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "with-drift"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}}}); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{}
	key := client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.MeshConfigMapName(render.DefaultRevision)}
	if err := env.Client.Get(ctx, key, cm); err != nil {
		t.Fatal(err)
	}
	want := cm.Data["mesh"]
	cm.Data["mesh"] = "edited: true"
	if err := env.Client.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, "edited ConfigMap restored", func() error {
		if err := env.Client.Get(ctx, key, cm); err != nil {
			return err
		}
		if cm.Data["mesh"] != want {
			return fmt.Errorf("mesh config is %q", cm.Data["mesh"])
		}
		return nil
	})
}

// TestOneFailingObjectStopsNothingElse refuses one gateway object: the
// control plane, the mesh-wide policy, the routing and the injector are
// applied all the same, and the condition names the refused object.
func TestOneFailingObjectStopsNothingElse(t *testing.T) {
	funcs := &interceptor.Funcs{
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			if o, ok := obj.(interface {
				GetName() string
				GetKind() string
			}); ok && o.GetKind() == "Service" && o.GetName() == "istio-ingressgateway" {
				return apierrors.NewForbidden(corev1.Resource("services"), "istio-ingressgateway", errors.New("refused by a policy"))
			}
			return c.Apply(ctx, obj, opts...)
		},
	}
	startManager(t, managerOpts{funcs: funcs})
	mi := createSample(t, nil)
	ctx := context.Background()
	eventually(t, timeout, "istiod applied", func() error {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.IstiodName(render.DefaultRevision)}, &appsv1.Deployment{})
	})
	makeAvailable(t, mi.Spec.Namespace, render.IstiodName(render.DefaultRevision))
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionFalse, meshv1alpha1.ReasonApplyFailed)
	for _, o := range expectedObjects(t, mi, render.DefaultRevision) {
		if _, isService := o.(*corev1.Service); isService && o.GetName() == "istio-ingressgateway" {
			continue
		}
		if err := allExist([]client.Object{o}); err != nil {
			t.Errorf("not applied because of the refused Service: %v", err)
		}
	}
	eventually(t, timeout, "the condition names the refused Service", func() error {
		c := condition(t, mi.Name, meshv1alpha1.ConditionReady)
		if !strings.Contains(c.Message, "Service "+mi.Spec.Namespace+"/istio-ingressgateway") || !strings.Contains(c.Message, "refused by a policy") {
			return fmt.Errorf("Ready message %q", c.Message)
		}
		return nil
	})
	eventually(t, timeout, "routing, injector and the gateway Deployment applied once istiod is available", func() error {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: mi.Spec.Namespace, Name: render.RoutingConfigMapName}, &corev1.ConfigMap{}); err != nil {
			return err
		}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: webhookconfig.InjectorName}, &admissionregistrationv1.MutatingWebhookConfiguration{}); err != nil {
			return err
		}
		return allExist(gatewayDeployments(t, mi))
	})
	if c := condition(t, mi.Name, meshv1alpha1.ConditionReady); c.Reason != meshv1alpha1.ReasonApplyFailed {
		t.Errorf("Ready = %+v, want ApplyFailed while the Service is refused", c)
	}
}

// TestAPromotionHeldByAFailedObjectMovesNothing promotes a canary whose
// Service cannot be applied: the tags and the gateways stay on the old
// revision, and follow once the Service can be applied.
func TestAPromotionHeldByAFailedObjectMovesNothing(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	funcs := &interceptor.Funcs{
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			if o, ok := obj.(interface {
				GetName() string
				GetKind() string
			}); ok && failing.Load() && o.GetKind() == "Service" && o.GetName() == render.IstiodName("1-32-0") {
				return apierrors.NewForbidden(corev1.Resource("services"), o.GetName(), errors.New("refused by a policy"))
			}
			return c.Apply(ctx, obj, opts...)
		},
	}
	startManager(t, managerOpts{funcs: funcs})
	mi := createSample(t, func(mi *meshv1alpha1.MeshInstall) {
		mi.Spec.UpdateStrategy = meshv1alpha1.UpdateStrategy{Type: meshv1alpha1.UpdateStrategyCanary,
			Canary: &meshv1alpha1.CanaryStrategy{Steps: []int32{100}, StepInterval: &metav1.Duration{Duration: time.Second}}}
	})
	ctx := context.Background()
	ns := mi.Spec.Namespace
	eventually(t, timeout, "istiod of 1-31-4 applied", func() error {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.IstiodName("1-31-4")}, &appsv1.Deployment{})
	})
	makeAvailable(t, ns, render.IstiodName("1-31-4"))
	waitCondition(t, mi.Name, meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconcileSucceeded)

	updateMI(t, mi.Name, func(got *meshv1alpha1.MeshInstall) {
		got.Spec.Version = "1.32.0"
	})
	eventually(t, timeout, "istiod of 1-32-0 applied", func() error {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.IstiodName("1-32-0")}, &appsv1.Deployment{})
	})
	makeAvailable(t, ns, render.IstiodName("1-32-0"))
	gatewayRevision := func() string {
		d := &appsv1.Deployment{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "istio-ingressgateway"}, d); err != nil {
			t.Fatal(err)
		}
		return d.Spec.Template.Labels["istio.io/rev"]
	}
	routedTo := func() string {
		cm := &corev1.ConfigMap{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.RoutingConfigMapName}, cm); err != nil {
			t.Fatal(err)
		}
		return cm.Data["active"]
	}
	// What istioctl tag list and istiod read of the default tag.
	taggedTo := func() string {
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: webhookconfig.TagConfigurationName(revision.DefaultTag, ns)}, mwc); err != nil {
			t.Fatal(err)
		}
		return mwc.Labels["istio.io/rev"]
	}
	eventually(t, timeout, "the refused Service named", func() error {
		if c := condition(t, mi.Name, meshv1alpha1.ConditionReady); !strings.Contains(c.Message, "Service "+ns+"/istiod-1-32-0") {
			return fmt.Errorf("Ready = %+v", c)
		}
		return nil
	})
	for range 3 { // the promotion is due on every pass; it must stay held
		time.Sleep(time.Second)
		if a, g, s, tag := routedTo(), gatewayRevision(), getMI(t, mi.Name).Status.ActiveRevision, taggedTo(); a != "1-31-4" || g != "1-31-4" || s != "1-31-4" || tag != "1-31-4" {
			t.Fatalf("with the canary's Service refused: routing %s, gateway %s, status %s, default tag %s; want all on 1-31-4", a, g, s, tag)
		}
	}

	failing.Store(false)
	eventually(t, 2*timeout, "promoted once the Service applies", func() error {
		if a, g, tag := routedTo(), gatewayRevision(), taggedTo(); a != "1-32-0" || g != "1-32-0" || tag != "1-32-0" {
			return fmt.Errorf("routing %s, gateway %s, default tag %s", a, g, tag)
		}
		return nil
	})
}

// passCount reads meshkeeper_passes_total for one MeshInstall and kind.
func passesOf(name, kind string) float64 {
	return testutil.ToFloat64(passes.WithLabelValues(name, kind))
}
