package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshkeeper/meshkeeper/internal/translate"
)

// istioOperatorList is istioctl's IstioOperator, read without its types.
var istioOperatorList = schema.GroupVersionKind{Group: "install.istio.io", Version: "v1alpha1", Kind: "IstioOperatorList"}

// translateCluster reads one revision of the Istio in namespace and prints its translation.
func translateCluster(ctx context.Context, cfg *rest.Config, namespace, rev, migrateInto string, out io.Writer) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	in, err := read(ctx, c, namespace, rev)
	if err != nil {
		return err
	}
	result, err := translate.Translate(in)
	if err != nil {
		return err
	}
	if migrateInto != "" {
		if result, err = translate.Migrate(result, in, migrateInto); err != nil {
			return err
		}
	}
	return translate.Print(out, result, fmt.Sprintf("istiod %s/%s (revision %s)", in.Istiod.Namespace, in.Istiod.Name, in.Revision))
}

// read gathers what translate needs of one revision: istiod (the one in
// namespace, or the one of rev), its ConfigMaps, the revision tags,
// gateways anywhere, and istioctl's IstioOperator when there is one.
func read(ctx context.Context, c client.Reader, namespace, rev string) (translate.Installation, error) {
	var in translate.Installation
	istiod, err := findIstiod(ctx, c, namespace, rev)
	if err != nil {
		return in, err
	}
	in.Istiod, in.Revision = istiod, revisionOf(istiod.Spec.Template.Labels)
	suffix := ""
	if in.Revision != "default" {
		suffix = "-" + in.Revision
	}
	if in.MeshConfig, err = configMap(ctx, c, namespace, "istio"+suffix); err != nil {
		return in, err
	}
	if in.Injector, err = configMap(ctx, c, namespace, "istio-sidecar-injector"+suffix); err != nil {
		return in, err
	}
	if in.Tags, err = tags(ctx, c); err != nil {
		return in, err
	}
	if in.Gateways, err = gateways(ctx, c, in.Revision); err != nil {
		return in, err
	}
	in.IstioOperator, err = istioOperator(ctx, c, namespace, in.Revision)
	return in, err
}

// findIstiod is the istiod Deployment of rev in namespace; with no rev,
// the only one there.
func findIstiod(ctx context.Context, c client.Reader, namespace, rev string) (*appsv1.Deployment, error) {
	var list appsv1.DeploymentList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{"app": "istiod"}); err != nil {
		return nil, fmt.Errorf("listing istiod Deployments in %s: %w", namespace, err)
	}
	var found []string
	for i := range list.Items {
		d := &list.Items[i]
		r := revisionOf(d.Spec.Template.Labels)
		if r == rev || rev == "" && len(list.Items) == 1 {
			return d, nil
		}
		found = append(found, r)
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("no istiod Deployment (label app=istiod) in namespace %s; name Istio's namespace with -n", namespace)
	case rev == "":
		return nil, fmt.Errorf("namespace %s runs more than one istiod revision (%s): choose one with --revision", namespace, strings.Join(found, ", "))
	}
	return nil, fmt.Errorf("no istiod of revision %s in namespace %s (found %s)", rev, namespace, strings.Join(found, ", "))
}

func revisionOf(templateLabels map[string]string) string {
	if r := templateLabels["istio.io/rev"]; r != "" {
		return r
	}
	return "default"
}

// configMap reads one ConfigMap; nil when there is none.
func configMap(ctx context.Context, c client.Reader, namespace, name string) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{}
	switch err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cm); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading ConfigMap %s/%s: %w", namespace, name, err)
	}
	return cm, nil
}

// tags maps each revision tag (Istio's istio-revision-tag-<tag> webhook
// configurations, labelled istio.io/tag) to the revision it points at.
func tags(ctx context.Context, c client.Reader) (map[string]string, error) {
	var list admissionregistrationv1.MutatingWebhookConfigurationList
	if err := c.List(ctx, &list, client.HasLabels{"istio.io/tag"}); err != nil {
		return nil, fmt.Errorf("listing revision tags: %w", err)
	}
	out := map[string]string{}
	for _, w := range list.Items {
		out[w.Labels["istio.io/tag"]] = w.Labels["istio.io/rev"]
	}
	return out, nil
}

// gateways are the gateway Deployments of rev in any namespace (labelled
// istio=<…>gateway by Istio's installers), with their Services.
func gateways(ctx context.Context, c client.Reader, rev string) ([]translate.Gateway, error) {
	var list appsv1.DeploymentList
	if err := c.List(ctx, &list, client.HasLabels{"istio"}); err != nil {
		return nil, fmt.Errorf("listing gateway Deployments: %w", err)
	}
	var out []translate.Gateway
	for i := range list.Items {
		d := &list.Items[i]
		t := d.Spec.Template.Labels
		if !strings.HasSuffix(t["istio"], "gateway") || (t["istio.io/rev"] != "" && t["istio.io/rev"] != rev) {
			continue
		}
		svc := &corev1.Service{}
		switch err := c.Get(ctx, client.ObjectKeyFromObject(d), svc); {
		case apierrors.IsNotFound(err):
			svc = nil
		case err != nil:
			return nil, fmt.Errorf("reading Service %s/%s: %w", d.Namespace, d.Name, err)
		}
		out = append(out, translate.Gateway{Deployment: d, Service: svc})
	}
	slices.SortFunc(out, func(a, b translate.Gateway) int {
		return strings.Compare(a.Deployment.Namespace+"/"+a.Deployment.Name, b.Deployment.Namespace+"/"+b.Deployment.Name)
	})
	return out, nil
}

// istioOperator is istioctl's IstioOperator of rev in namespace; nil when
// there is none or its CRD is not installed.
func istioOperator(ctx context.Context, c client.Reader, namespace, rev string) (*unstructured.Unstructured, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(istioOperatorList)
	err := c.List(ctx, list, client.InNamespace(namespace))
	if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing IstioOperators: %w", err)
	}
	for i := range list.Items {
		r, _, _ := unstructured.NestedString(list.Items[i].Object, "spec", "revision")
		if r == rev || r == "" && rev == "default" {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}
