package localcluster

import (
	"context"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// InstallCRD installs the MeshInstall CRD from config/crd/bases under repoRoot
// and waits until it is served (waitServed).
func InstallCRD(ctx context.Context, c client.Client, repoRoot string) error {
	f, err := os.Open(filepath.Join(repoRoot, "config", "crd", "bases", "mesh.meshkeeper.dev_meshinstalls.yaml"))
	if err != nil {
		return err
	}
	defer f.Close()
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.NewYAMLOrJSONDecoder(f, 4096).Decode(crd); err != nil {
		return err
	}
	if err := c.Create(ctx, crd); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	// Established is not enough: an operator started before discovery
	// serves the kind exits ("no matches for kind MeshInstall"), as one
	// clean-clone run showed.
	return waitServed(ctx, c, []string{crd.Name})
}

// EnsureNamespace creates a namespace or sets labels on it; an empty label
// value removes the label.
func EnsureNamespace(ctx context.Context, c client.Client, name string, labels map[string]string) error {
	ns := &corev1.Namespace{}
	err := c.Get(ctx, client.ObjectKey{Name: name}, ns)
	if apierrors.IsNotFound(err) {
		ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
		for k, v := range labels {
			if v != "" {
				ns.Labels[k] = v
			}
		}
		return c.Create(ctx, ns)
	}
	if err != nil {
		return err
	}
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	for k, v := range labels {
		if v == "" {
			delete(ns.Labels, k)
		} else {
			ns.Labels[k] = v
		}
	}
	return c.Update(ctx, ns)
}
