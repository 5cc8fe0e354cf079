package chartgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Builds are kustomize's output for config/default and for every Feature's variant.
type Builds struct {
	Default  []*unstructured.Unstructured
	Variants map[string][]*unstructured.Unstructured
}

// BuildAll builds config/default of the repository at root, and every
// feature's variant of it, with the kustomize binary at kustomize.
func BuildAll(kustomize, root string) (Builds, error) {
	b := Builds{Variants: map[string][]*unstructured.Unstructured{}}
	var err error
	if b.Default, err = BuildVariant(kustomize, root, nil); err != nil {
		return b, err
	}
	for _, f := range Features {
		if f.Edit == nil {
			b.Variants[f.Name] = b.Default
			continue
		}
		if b.Variants[f.Name], err = BuildVariant(kustomize, root, f.Edit); err != nil {
			return b, fmt.Errorf("variant %s: %w", f.Name, err)
		}
	}
	return b, nil
}

// BuildVariant builds config/default from a copy of root's config/ that
// edit (when not nil) has changed; the checkout is never touched.
func BuildVariant(kustomize, root string, edit func(configDir string) error) ([]*unstructured.Unstructured, error) {
	tmp, err := os.MkdirTemp("", "meshkeeper-chartgen-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	configDir := filepath.Join(tmp, "config")
	if err := os.CopyFS(configDir, os.DirFS(filepath.Join(root, "config"))); err != nil {
		return nil, err
	}
	if edit != nil {
		if err := edit(configDir); err != nil {
			return nil, err
		}
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(kustomize, "build", filepath.Join(configDir, "default"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kustomize build: %w\n%s", err, stderr.String())
	}
	return DecodeObjects(&stdout)
}

// DecodeObjects reads a stream of YAML documents, skipping empty ones.
// Numbers are int64 or float64, as the API machinery decodes them.
func DecodeObjects(r io.Reader) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return nil, err
		}
		objs = append(objs, u)
	}
}
