package render

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/yaml"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// istioCRDsYAML is kubernetes/customresourcedefinitions.gen.yaml of the
// istio.io/api module pinned in go.mod, copied by `make istio-crds`.
//
//go:embed crds/istio.gen.yaml
var istioCRDsYAML []byte

// crdSourceVersion finds the module version in the header make istio-crds writes.
var crdSourceVersion = regexp.MustCompile(`istio\.io/api@v(\S+)`)

type parsedCRDs struct {
	version string
	crds    []*apiextensionsv1.CustomResourceDefinition
}

// parseIstioCRDs parses the embedded file once; IstioCRDs hands out copies.
var parseIstioCRDs = sync.OnceValues(func() (parsedCRDs, error) {
	return parseCRDs(istioCRDsYAML)
})

func parseCRDs(data []byte) (parsedCRDs, error) {
	m := crdSourceVersion.FindSubmatch(data[:min(len(data), 512)])
	if m == nil {
		return parsedCRDs{}, errors.New("embedded Istio CRDs lack their istio.io/api@<version> header; run make istio-crds")
	}
	out := parsedCRDs{version: string(m[1])}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 64*1024)
	for {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		err := dec.Decode(crd)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return parsedCRDs{}, fmt.Errorf("parsing embedded Istio CRDs: %w", err)
		}
		if crd.Name == "" {
			continue // an empty document
		}
		if crd.APIVersion != apiextensionsv1.SchemeGroupVersion.String() || crd.Kind != "CustomResourceDefinition" {
			return parsedCRDs{}, fmt.Errorf("embedded Istio CRDs: %s is a %s %s, not a CustomResourceDefinition",
				crd.Name, crd.APIVersion, crd.Kind)
		}
		out.crds = append(out.crds, crd)
	}
	if len(out.crds) == 0 {
		return parsedCRDs{}, errors.New("embedded Istio CRDs are empty; run make istio-crds")
	}
	slices.SortFunc(out.crds, func(a, b *apiextensionsv1.CustomResourceDefinition) int {
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// IstioCRDs returns Istio's CustomResourceDefinitions, sorted by name, to
// apply before everything else. They come from the istio.io/api version in
// go.mod (the newest supported Istio), whatever spec.version is: Istio's
// CRDs only grow, and during a canary both revisions need the newer ones.
// As Istio's base chart does, their labels are replaced by the install's
// (here meshkeeper's, with app.kubernetes.io/version the CRDs' version);
// their annotations are kept. Each call returns new objects.
func IstioCRDs(mi *meshv1alpha1.MeshInstall) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	parsed, err := parseIstioCRDs()
	if err != nil {
		return nil, err
	}
	out := make([]*apiextensionsv1.CustomResourceDefinition, len(parsed.crds))
	for i, crd := range parsed.crds {
		c := crd.DeepCopy()
		c.Labels = istioLabels(mi, parsed.version)
		out[i] = c
	}
	return out, nil
}

// IstioCRDsVersion is the istio.io/api version the embedded CRDs come from.
func IstioCRDsVersion() (string, error) {
	parsed, err := parseIstioCRDs()
	return parsed.version, err
}
