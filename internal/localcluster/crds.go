package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// applyCRDs creates or updates every CRD in dir and waits until each is
// established and c maps its kind (the API server's discovery lags a little
// behind Established, and a client that asks too early is told the kind does
// not exist).
func applyCRDs(ctx context.Context, c client.Client, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no CRDs in %s (%v)", dir, err)
	}
	var names []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if u.GetKind() != "CustomResourceDefinition" {
				continue
			}
			u.SetManagedFields(nil)
			//nolint:staticcheck // client.Apply on unstructured is the simplest server-side apply here
			if err := c.Patch(ctx, u, client.Apply, client.FieldOwner("localcluster"), client.ForceOwnership); err != nil {
				return fmt.Errorf("%s: %w", u.GetName(), err)
			}
			names = append(names, u.GetName())
		}
	}
	return waitServed(ctx, c, names)
}

// waitServed waits until each CRD named is established and c maps its kind:
// the API server's discovery lags a little behind Established, and a
// process that starts in between (the operator, which maps its kinds once
// at start) is told the kind does not exist.
func waitServed(ctx context.Context, c client.Client, names []string) error {
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range names {
		for {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			err := c.Get(ctx, client.ObjectKey{Name: name}, crd)
			if err == nil && established(crd) {
				// Name the versions: the client's mapper keeps the versions a
				// group had when it first saw it, and CRDs of one group
				// (OLM's) can come up one version at a time.
				var versions []string
				for _, v := range crd.Spec.Versions {
					if v.Served {
						versions = append(versions, v.Name)
					}
				}
				_, err = c.RESTMapper().RESTMapping(schema.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind}, versions...)
				if err == nil {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("CRD %s not established and served within 30s (%v)", name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	return slices.ContainsFunc(crd.Status.Conditions, func(c apiextensionsv1.CustomResourceDefinitionCondition) bool {
		return c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue
	})
}
