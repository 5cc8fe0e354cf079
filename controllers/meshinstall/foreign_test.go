package meshinstall

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/apply"
	"github.com/meshkeeper/meshkeeper/internal/inject"
	"github.com/meshkeeper/meshkeeper/internal/inventory"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/webhookconfig"
)

func TestForeignRefusal(t *testing.T) {
	istiod := foreignObject{kind: "Deployment", namespace: "istio-system", name: "istiod", revision: "default",
		version: "1.31.0", installedBy: "istioctl (IstioOperator istio-system/installed-state)"}
	injector := foreignObject{kind: "MutatingWebhookConfiguration", name: "istio-sidecar-injector", revision: "default", installedBy: "Helm (chart istiod-1.31.0)"}
	tag := foreignObject{kind: "MutatingWebhookConfiguration", name: "istio-revision-tag-prod", revision: "1-31-0", tag: "prod", installedBy: "Sail (IstioRevision default)"}
	gateway := foreignObject{kind: "Deployment", namespace: "istio-ingress", name: "istio-ingressgateway"}
	validator := foreignObject{kind: "ValidatingWebhookConfiguration", name: "istio-validator-istio-system", revision: "default"}
	for _, tc := range []struct {
		name    string
		found   foreignControlPlane
		refused bool
		want    []string
	}{
		{name: "nothing foreign", found: foreignControlPlane{}},
		{name: "only pods injected by someone else: reported by nothing, never acted on", found: foreignControlPlane{injectedPods: 3}},
		{name: "only a gateway and a validator: nothing meshkeeper writes", found: foreignControlPlane{gateways: []foreignObject{gateway}, validators: []foreignObject{validator}}},
		{name: "an istiod", found: foreignControlPlane{istiods: []foreignObject{istiod}}, refused: true,
			want: []string{"istiod Deployment istio-system/istiod (revision default, version 1.31.0, installed by istioctl (IstioOperator istio-system/installed-state))",
				"kubectl meshkeeper translate", "Migrating from istioctl, Helm or Sail"}},
		{name: "an injector alone: a second webhook would inject the same pods", found: foreignControlPlane{injectors: []foreignObject{injector}}, refused: true,
			want: []string{"injector MutatingWebhookConfiguration istio-sidecar-injector (revision default, installed by Helm (chart istiod-1.31.0))"}},
		{name: "the whole installation is named, pods counted",
			found:   foreignControlPlane{istiods: []foreignObject{istiod}, injectors: []foreignObject{injector, tag}, validators: []foreignObject{validator}, gateways: []foreignObject{gateway}, injectedPods: 20},
			refused: true,
			want: []string{"injector MutatingWebhookConfiguration istio-revision-tag-prod (tag prod, revision 1-31-0, installed by Sail (IstioRevision default))",
				"validator ValidatingWebhookConfiguration istio-validator-istio-system (revision default)",
				"gateway Deployment istio-ingress/istio-ingressgateway", "20 running pod(s) injected by it"}},
		{name: "many istiods are named up to a bound",
			found:   foreignControlPlane{istiods: []foreignObject{istiod, istiod, istiod, istiod, istiod, istiod, istiod}},
			refused: true, want: []string{"and 2 more istiod(s)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := foreignRefusal(tc.found)
			if (got != nil) != tc.refused {
				t.Fatalf("refused = %v, want %v", got, tc.refused)
			}
			if got == nil {
				return
			}
			if got.Reason != meshv1alpha1.ReasonForeignIstioInstallation {
				t.Errorf("reason %s", got.Reason)
			}
			for _, w := range tc.want {
				if !strings.Contains(got.Message, w) {
					t.Errorf("message does not say %q:\n%s", w, got.Message)
				}
			}
		})
	}
}

func TestInjectedBySomeoneElse(t *testing.T) {
	pod := func(annotations, labels map[string]string) inventory.Pod {
		return inventory.Pod{Pod: webhookconfig.Pod{Namespace: "app", Annotations: annotations, Labels: labels}}
	}
	status := map[string]string{"sidecar.istio.io/status": ""}
	obs := &observation{pods: []inventory.Pod{
		pod(status, nil), // Istio's injector
		pod(status, nil),
		pod(status, map[string]string{inject.LabelInjectedBy: "default"}), // meshkeeper's
		pod(nil, nil), // not injected
	}}
	if got := injectedBySomeoneElse(obs); got != 2 {
		t.Errorf("injected by someone else: %d, want 2", got)
	}
}

func TestInstalledBy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels map[string]string
		owners []metav1.OwnerReference
		want   string
	}{
		{name: "no installer labels", labels: map[string]string{"app": "istiod"}, want: ""},
		{name: "istioctl", labels: map[string]string{labelOwningResource: "installed-state", labelOperatorComponent: "Pilot"}, want: "istioctl (IstioOperator installed-state)"},
		{name: "istioctl without its IstioOperator's name", labels: map[string]string{labelOwningResource: "unknown", labelOperatorComponent: "Pilot"}, want: "istioctl"},
		{name: "Helm", labels: map[string]string{labelK8sManagedBy: "Helm", labelHelmChart: "istiod-1.31.0"}, want: "Helm (chart istiod-1.31.0)"},
		{name: "Helm without its chart label", labels: map[string]string{labelK8sManagedBy: "Helm"}, want: "Helm"},
		{name: "Sail by owner, although it renders Helm's charts",
			labels: map[string]string{labelK8sManagedBy: "Helm", labelHelmChart: "istiod-1.31.0"},
			owners: []metav1.OwnerReference{{APIVersion: "sailoperator.io/v1", Kind: "IstioRevision", Name: "default", Controller: ptr.To(true)}},
			want:   "Sail (IstioRevision default)"},
		{name: "Sail by label", labels: map[string]string{"sailoperator.io/revision": "default"}, want: "Sail"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := installedBy(tc.labels, tc.owners); got != tc.want {
				t.Errorf("installedBy = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestVersionOf(t *testing.T) {
	for _, tc := range []struct {
		name, image string
		labels      map[string]string
		want        string
	}{
		{name: "image tag", image: "docker.io/istio/pilot:1.31.0", want: "1.31.0"},
		{name: "registry with a port, digest", image: "registry.local:5000/istio/pilot:1.31.1-distroless@sha256:abc", want: "1.31.1-distroless"},
		{name: "no tag: the labels", image: "registry.local:5000/istio/pilot", labels: map[string]string{labelK8sVersion: "1.31.0"}, want: "1.31.0"},
		{name: "Helm chart label", labels: map[string]string{labelHelmChart: "istiod-1.30.2"}, want: "1.30.2"},
		{name: "nothing says", want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &appsv1.Deployment{}
			if tc.image != "" {
				d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "discovery", Image: tc.image}}
			}
			if got := versionOf(tc.labels, imageTag(d)); got != tc.want {
				t.Errorf("version = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTrimWebhookConfiguration(t *testing.T) {
	foreign := istioctlInjector("default")
	out, err := TrimWebhookConfiguration(foreign.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*admissionregistrationv1.MutatingWebhookConfiguration)
	if len(got.Webhooks) != len(foreign.Webhooks) || got.Webhooks[0].Name != foreign.Webhooks[0].Name || got.Webhooks[0].ClientConfig.CABundle != nil {
		t.Errorf("a foreign injector is cached with its webhooks' names only: %+v", got.Webhooks)
	}
	if !istioInjector(got) || installedBy(got.Labels, got.OwnerReferences) != "istioctl (IstioOperator installed-state)" || got.Labels[labelIstioRev] != "default" {
		t.Errorf("the trimmed injector no longer tells what it is: %v", got.Labels)
	}
	if _, kept := got.Labels["some.user/label"]; kept {
		t.Errorf("a label observeForeign does not read was kept")
	}

	ours := foreign.DeepCopy()
	ours.OwnerReferences = []metav1.OwnerReference{{APIVersion: meshv1alpha1.GroupVersion.String(), Kind: "MeshInstall", Name: "mesh", UID: "u", Controller: ptr.To(true)}}
	out, _ = TrimWebhookConfiguration(ours.DeepCopy())
	if !reflect.DeepEqual(out, ours) {
		t.Errorf("meshkeeper's own webhook configuration must be cached whole")
	}
	// The operator's MeshInstall validator: labelled, no MeshInstall controls it, its CA bundle is read from the cache.
	validator := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: webhookconfig.ValidatorName, Labels: map[string]string{render.LabelManagedBy: render.ManagedBy}},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "vmeshinstall.mesh.meshkeeper.dev",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: []byte("ca")}}}}
	out, _ = TrimWebhookConfiguration(validator.DeepCopy())
	if !reflect.DeepEqual(out, validator) {
		t.Errorf("the operator's own validator must be cached whole (its CA bundle is read): %+v", out)
	}
}

func TestIstioWebhooksRecognised(t *testing.T) {
	if !istioInjector(istioctlInjector("default")) {
		t.Error("Istio's injector not recognised")
	}
	renamed := istioctlInjector("default")
	renamed.Name = "corp-injector"
	if !istioInjector(renamed) {
		t.Error("Istio's injector renamed is recognised by its webhooks' names")
	}
	other := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "cert-manager-webhook"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "webhook.cert-manager.io"}}}
	if istioInjector(other) {
		t.Error("cert-manager's webhook taken for Istio's injector")
	}
	if !istioValidator(&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "istio-validator-istio-system"}}) ||
		!istioValidator(&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "x"},
			Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "rev.validation.istio.io"}}}) {
		t.Error("Istio's validator not recognised")
	}
}

// istioctlLabels are the labels `istioctl install` (1.31) puts on the
// objects of its default revision.
func istioctlLabels(extra map[string]string) map[string]string {
	l := map[string]string{
		"install.operator.istio.io/owning-resource": "installed-state",
		"operator.istio.io/component":               "Pilot",
		"istio.io/rev":                              "default",
		"app.kubernetes.io/name":                    "istiod",
		"app.kubernetes.io/part-of":                 "istio",
		"app.kubernetes.io/version":                 "1.31.0",
		"release":                                   "istio",
		"some.user/label":                           "x",
	}
	for k, v := range extra {
		l[k] = v
	}
	return l
}

// istioctlInjector is the sidecar injector as Istio's istiod chart renders
// it for the default revision (1.31), as istioctl labels it.
func istioctlInjector(rev string) *admissionregistrationv1.MutatingWebhookConfiguration {
	path := "/inject"
	svc := &admissionregistrationv1.ServiceReference{Name: "istiod", Namespace: "istio-system", Path: &path, Port: ptr.To[int32](443)}
	none := admissionregistrationv1.SideEffectClassNone
	fail := admissionregistrationv1.Fail
	rules := []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}}
	hook := func(name string, ns, obj *metav1.LabelSelector) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{Name: name, ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: svc, CABundle: []byte("ca")},
			Rules: rules, FailurePolicy: &fail, SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
			NamespaceSelector: ns, ObjectSelector: obj}
	}
	exists := func(k string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpExists}
	}
	notIn := func(k string, v ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpNotIn, Values: v}
	}
	doesNotExist := func(k string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpDoesNotExist}
	}
	sel := func(r ...metav1.LabelSelectorRequirement) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: r}
	}
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-injector", Labels: istioctlLabels(map[string]string{"app": "sidecar-injector", "istio.io/rev": rev})},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			hook("rev.namespace.sidecar-injector.istio.io", sel(metav1.LabelSelectorRequirement{Key: "istio.io/rev", Operator: metav1.LabelSelectorOpIn, Values: []string{rev}}, doesNotExist("istio-injection")),
				sel(notIn("sidecar.istio.io/inject", "false"))),
			hook("rev.object.sidecar-injector.istio.io", sel(doesNotExist("istio.io/rev"), doesNotExist("istio-injection")),
				sel(notIn("sidecar.istio.io/inject", "false"), metav1.LabelSelectorRequirement{Key: "istio.io/rev", Operator: metav1.LabelSelectorOpIn, Values: []string{rev}})),
			hook("namespace.sidecar-injector.istio.io", sel(metav1.LabelSelectorRequirement{Key: "istio-injection", Operator: metav1.LabelSelectorOpIn, Values: []string{"enabled"}}),
				sel(notIn("sidecar.istio.io/inject", "false"))),
			hook("object.sidecar-injector.istio.io", sel(notIn("istio-injection", "disabled"), doesNotExist("istio.io/rev")),
				sel(exists("sidecar.istio.io/inject"), metav1.LabelSelectorRequirement{Key: "sidecar.istio.io/inject", Operator: metav1.LabelSelectorOpIn, Values: []string{"true"}},
					doesNotExist("istio.io/rev"))),
		},
	}
}

// istioctlIstiod is istiod as Istio's istiod chart renders it (1.31), as
// istioctl labels it.
func istioctlIstiod(ns string) *appsv1.Deployment {
	template := map[string]string{"app": "istiod", "istio.io/rev": "default", "istio": "pilot", "sidecar.istio.io/inject": "false",
		"install.operator.istio.io/owning-resource": "installed-state", "operator.istio.io/component": "Pilot", "istio.io/dataplane-mode": "none"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "istiod", Labels: istioctlLabels(map[string]string{"app": "istiod", "istio": "pilot"})},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"istio": "pilot"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: template, Annotations: map[string]string{"prometheus.io/port": "15014", "prometheus.io/scrape": "true"}},
				Spec: corev1.PodSpec{ServiceAccountName: "istiod", Containers: []corev1.Container{{
					Name: "discovery", Image: "docker.io/istio/pilot:1.31.0",
					Args: []string{"discovery", "--monitoringAddr=:15014", "--log_output_level=default:info", "--domain", "cluster.local", "--keepaliveMaxServerConnectionAge", "30m"},
					Env:  []corev1.EnvVar{{Name: "REVISION", Value: "default"}, {Name: "PILOT_CERT_PROVIDER", Value: "istiod"}},
				}}},
			},
		},
	}
}

// TestForeignIstioIsNeverWrittenOver: an Istio installed by istioctl (its
// istiod, injector, validator and mesh config, written by hand as the 1.31
// charts render them) and a pod injected by it, then a MeshInstall: Stalled
// ForeignIstioInstallation naming the installation, nothing of it changed,
// nothing of meshkeeper's applied.
func TestForeignIstioIsNeverWrittenOver(t *testing.T) {
	startManager(t, managerOpts{})
	ctx := context.Background()
	ns := controlPlaneNamespace()
	appNS := ns + "-app"
	for _, n := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		{ObjectMeta: metav1.ObjectMeta{Name: appNS, Labels: map[string]string{"istio-injection": "enabled"}}},
	} {
		if err := env.Client.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	fail := admissionregistrationv1.Ignore
	none := admissionregistrationv1.SideEffectClassNone
	path := "/validate"
	validator := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "istio-validator-" + ns, Labels: istioctlLabels(map[string]string{"app": "istiod", "istio": "istiod"})},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "rev.validation.istio.io", FailurePolicy: &fail, SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
			ClientConfig:   admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Name: "istiod", Namespace: ns, Path: &path}},
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "istio.io/rev", Operator: metav1.LabelSelectorOpIn, Values: []string{"default"}}}}}},
	}
	injector := istioctlInjector("default")
	for i := range injector.Webhooks {
		injector.Webhooks[i].ClientConfig.Service.Namespace = ns
		// The envtest API server cannot reach it: the test's pod must still be admitted.
		injector.Webhooks[i].FailurePolicy = &fail
	}
	meshConfig := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "istio", Labels: istioctlLabels(nil)},
		Data: map[string]string{"mesh": "defaultConfig:\n  discoveryAddress: istiod." + ns + ".svc:15012\nenablePrometheusMerge: true\nrootNamespace: " + ns + "\n"}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "app", Labels: map[string]string{"app": "app"},
		Annotations: map[string]string{"sidecar.istio.io/status": `{"initContainers":["istio-init"],"containers":["istio-proxy"],"revision":"default"}`}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}, {Name: "istio-proxy", Image: "docker.io/istio/proxyv2:1.31.0"}}}}
	theirs := []client.Object{istioctlIstiod(ns), injector, validator, meshConfig, pod}
	for _, o := range theirs {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		// Other tests share the API server: the foreign installation leaves with this one.
		t.Cleanup(func() { _ = env.Client.Delete(ctx, o, client.GracePeriodSeconds(0)) })
	}
	// A tenant's look-alike: any Deployment whose pods are labelled
	// app=istiod, in a namespace meshkeeper does not manage. It stays to
	// the end, and stalls nothing.
	lookAlike := istioctlIstiod(appNS)
	if err := env.Client.Create(ctx, lookAlike); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, lookAlike) })
	before := map[apply.Key]client.Object{}
	for _, o := range theirs {
		got, err := whole(withKind(t, o))
		if err != nil {
			t.Fatal(err)
		}
		before[apply.KeyOf(withKind(t, o))] = got
	}

	mi := createSample(t, nil)
	waitCondition(t, mi.Name, meshv1alpha1.ConditionStalled, metav1.ConditionTrue, meshv1alpha1.ReasonForeignIstioInstallation)
	msg := condition(t, mi.Name, meshv1alpha1.ConditionStalled).Message
	for _, want := range []string{
		"istiod Deployment " + ns + "/istiod (revision default, version 1.31.0, installed by istioctl (IstioOperator installed-state))",
		"injector MutatingWebhookConfiguration istio-sidecar-injector (revision default, version 1.31.0, installed by istioctl (IstioOperator installed-state))",
		"validator ValidatingWebhookConfiguration istio-validator-" + ns,
		// Other tests' pods share the API server: the count is checked in TestInjectedBySomeoneElse.
		"running pod(s) injected by it",
		"kubectl meshkeeper translate",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("Stalled does not say %q:\n%s", want, msg)
		}
	}
	if got := getMI(t, mi.Name); got.Status.ObservedGeneration != got.Generation {
		t.Errorf("observedGeneration %d, generation %d: the refusal judged the spec", got.Status.ObservedGeneration, got.Generation)
	}

	// A pass a minute later is not waited for; a spec edit makes one now.
	patch := client.MergeFrom(getMI(t, mi.Name))
	edited := getMI(t, mi.Name)
	if edited.Annotations == nil {
		edited.Annotations = map[string]string{}
	}
	edited.Annotations["test/poke"] = "1"
	if err := env.Client.Patch(ctx, edited, patch); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, mi.Name, meshv1alpha1.ConditionStalled, metav1.ConditionTrue, meshv1alpha1.ReasonForeignIstioInstallation)

	for key, was := range before {
		now, err := whole(was)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if now.GetResourceVersion() != was.GetResourceVersion() || !reflect.DeepEqual(now, was) {
			t.Errorf("%s was written to:\nbefore %+v\nafter  %+v", key, was, now)
		}
	}
	// Nothing of meshkeeper's was applied either.
	for _, o := range []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: render.RoutingConfigMapName}},
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "meshkeeper-sidecar-injector"}},
	} {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(o), o); !apierrors.IsNotFound(err) {
			t.Errorf("%T %s was applied despite the refusal (%v)", o, o.GetName(), err)
		}
	}

	if strings.Contains(msg, appNS+"/istiod") {
		t.Errorf("Stalled names the tenant's look-alike istiod:\n%s", msg)
	}

	// Once the foreign installation is uninstalled (its pods may linger,
	// the tenant's look-alike stays), meshkeeper installs.
	for _, o := range theirs[:4] {
		if err := env.Client.Delete(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, timeout, "installed once the foreign Istio is gone", func() error {
		if c := condition(t, mi.Name, meshv1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
			return fmt.Errorf("still stalled: %s", c.Message)
		}
		return env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: render.IstiodName(render.DefaultRevision)}, &appsv1.Deployment{})
	})
}

// whole reads an object of any kind from the API server, all of it.
func whole(obj client.Object) (client.Object, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(obj.GetObjectKind().GroupVersionKind())
	err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), u)
	return u, err
}
