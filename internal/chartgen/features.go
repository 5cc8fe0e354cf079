// Package chartgen makes meshkeeper's Helm chart (charts/meshkeeper) from
// config/, so that the chart cannot drift from what `make deploy` installs.
//
// The chart's objects are kustomize's: config/default is built as it is
// (the chart's default values), then once per Feature with config/ edited
// the way its comments tell a user to (cert-manager's component enabled,
// the Prometheus ServiceMonitor added, the NetworkPolicies dropped, ...).
// An object only one variant has is rendered under that feature's
// condition; the manager Deployment's arguments only a variant has are
// added under it. Any other difference between the variants is an error
// that names it: the generator must then be taught the new feature, rather
// than ship a chart that silently lacks it.
package chartgen

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Feature is one chart value that config/ expresses as a kustomize edit.
type Feature struct {
	// Name names the variant (in errors and tests).
	Name string
	// Condition is the template condition under which the chart renders
	// what the feature adds, or keeps what turning it off removes.
	Condition string
	// Adds tells whether Edit turns the feature on (config/default has it
	// off: what the variant adds is rendered when Condition holds) or off
	// (config/default has it on: what the variant lacks is rendered when
	// Condition holds).
	Adds bool
	// Edit changes a copy of config/ into the variant (nil: the variant
	// differs from config/default only in Args).
	Edit func(configDir string) error
	// Args are manager arguments the variant sets, by flag, whole, where
	// config/ has no kustomize variant of them: the chart renders
	// config/default's argument of the flag, or this one.
	Args map[string]string
	// Values are the chart values that select the variant, for tests
	// comparing the chart's rendering with kustomize's build.
	Values map[string]any
}

// Features are the chart's values that config/ has a kustomize variant of.
// The edits are the ones config/default's comments describe.
var Features = []Feature{
	{
		Name:      "cert-manager",
		Condition: `eq .Values.webhook.certProvider "cert-manager"`,
		Adds:      true,
		Edit:      editKustomization("default", appendTo("components", "../certmanager")),
		Values:    map[string]any{"webhook": map[string]any{"certProvider": "cert-manager"}},
	},
	{
		Name:      "service-monitor",
		Condition: `and .Values.metrics.enabled .Values.metrics.serviceMonitor.enabled`,
		Adds:      true,
		Edit:      editKustomization("default", appendTo("resources", "../prometheus")),
		Values:    map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}}},
	},
	{
		Name:      "no-network-policy",
		Condition: `.Values.networkPolicy.enabled`,
		Edit:      editKustomization("default", removeFrom("resources", "../network-policy")),
		Values:    map[string]any{"networkPolicy": map[string]any{"enabled": false}},
	},
	{
		// The metrics Service, the NetworkPolicy that opens its port, and
		// the endpoint itself; the metrics RBAC stays, as harmless as unused.
		Name:      "no-metrics",
		Condition: `.Values.metrics.enabled`,
		Edit: both(
			editKustomization("default", removeFrom("resources", "metrics_service.yaml")),
			editKustomization("network-policy", removeFrom("resources", "allow-metrics-traffic.yaml")),
		),
		Args:   map[string]string{"--metrics-bind-address": "--metrics-bind-address=0"},
		Values: map[string]any{"metrics": map[string]any{"enabled": false}},
	},
	{
		Name:      "no-leader-election",
		Condition: `.Values.leaderElection.enabled`,
		Args:      map[string]string{"--leader-elect": "--leader-elect=false"},
		Values:    map[string]any{"leaderElection": map[string]any{"enabled": false}},
	},
}

// WithArgs returns objs with the manager's arguments f.Args sets: the
// variant as the chart renders it.
func (f Feature) WithArgs(objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		out[i] = o
		if o.GetKind() != "Deployment" || len(f.Args) == 0 {
			continue
		}
		out[i] = o.DeepCopy()
		args, err := managerArgs(out[i])
		if err != nil {
			return nil, err
		}
		for j, arg := range args {
			flag, _, _ := strings.Cut(arg, "=")
			if set, ok := f.Args[flag]; ok {
				args[j] = set
			}
		}
		if err := setManagerArgs(out[i], args); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// kustomizationEdit changes a kustomization, decoded as a map.
type kustomizationEdit func(k map[string]any) error

// editKustomization applies change to config/<dir>/kustomization.yaml.
func editKustomization(dir string, change kustomizationEdit) func(configDir string) error {
	return func(configDir string) error {
		path := filepath.Join(configDir, dir, "kustomization.yaml")
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		k := map[string]any{}
		if err := yaml.Unmarshal(data, &k); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := change(k); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		out, err := yaml.Marshal(k)
		if err != nil {
			return err
		}
		return os.WriteFile(path, out, 0o644)
	}
}

func both(edits ...func(string) error) func(string) error {
	return func(configDir string) error {
		for _, e := range edits {
			if err := e(configDir); err != nil {
				return err
			}
		}
		return nil
	}
}

// appendTo adds entry to the list field, which must not hold it yet (the
// variant would otherwise be config/default itself, and the feature lost).
func appendTo(field, entry string) kustomizationEdit {
	return func(k map[string]any) error {
		list, err := stringList(k, field)
		if err != nil {
			return err
		}
		if slices.Contains(list, entry) {
			return fmt.Errorf("%s already lists %s: the chart's default must not have it", field, entry)
		}
		k[field] = append(list, entry)
		return nil
	}
}

// removeFrom drops entry from the list field, which must hold it.
func removeFrom(field, entry string) kustomizationEdit {
	return func(k map[string]any) error {
		list, err := stringList(k, field)
		if err != nil {
			return err
		}
		i := slices.Index(list, entry)
		if i < 0 {
			return fmt.Errorf("%s does not list %s: the chart's default must have it", field, entry)
		}
		k[field] = slices.Delete(list, i, i+1)
		return nil
	}
}

func stringList(k map[string]any, field string) ([]string, error) {
	raw, _ := k[field].([]any)
	var out []string
	for _, v := range raw {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s holds %v, not a path", field, v)
		}
		out = append(out, s)
	}
	return out, nil
}
