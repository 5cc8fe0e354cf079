package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
)

// meshConfig translates every key of the installation's mesh config that
// differs from what meshkeeper renders for the draft: into
// spec.meshConfig when its field takes the value as it is, else a gap.
// The result is checked by rendering it again: a key that still renders
// differently is a gap too.
func (t *translation) meshConfig(baseline []client.Object) error {
	if t.in.MeshConfig == nil {
		t.gap("mesh config", "no istio%s ConfigMap was found; meshkeeper's defaults apply", suffix(t.in.Revision))
		return nil
	}
	theirs, err := MeshConfigValues(t.in.MeshConfig)
	if err != nil {
		return err
	}
	ours, err := renderedMeshConfig(baseline)
	if err != nil {
		return err
	}
	accepted := map[string]any{}
	for _, key := range sortedKeys(theirs) {
		if reflect.DeepEqual(theirs[key], ours[key]) {
			continue
		}
		if key == "defaultConfig" {
			t.defaultConfig(theirs[key], ours[key], accepted)
			continue
		}
		value := theirs[key]
		if reshape, ok := reshapes[key]; ok {
			value = reshape(value)
		}
		if fits(map[string]any{key: value}, &meshv1alpha1.MeshConfigSpec{}) {
			accepted[key] = value
		} else {
			t.gap("meshConfig."+key, "spec.meshConfig has no field that takes it as it is")
		}
	}
	t.onlyOurs("meshConfig.", theirs, ours)
	if err := decodeStrict(accepted, &t.mi.Spec.MeshConfig); err != nil {
		return fmt.Errorf("mesh config: %w", err)
	}
	return t.checkMeshConfig(theirs, accepted)
}

// reshapes turn a mesh config value into the shape of its spec.meshConfig
// field where the two differ; the rendering check (checkMeshConfig) proves
// the field renders the value back.
var reshapes = map[string]func(any) any{
	// Istio's {mode: REGISTRY_ONLY} is spec.meshConfig.outboundTrafficPolicy: REGISTRY_ONLY.
	"outboundTrafficPolicy": func(v any) any {
		if m, ok := v.(map[string]any); ok && len(m) == 1 && m["mode"] != nil {
			return m["mode"]
		}
		return v
	},
}

// defaultConfig translates defaultConfig key by key: it holds settings
// meshkeeper derives (discoveryAddress) beside ones it takes.
func (t *translation) defaultConfig(theirs, ours any, accepted map[string]any) {
	their, _ := theirs.(map[string]any)
	our, _ := ours.(map[string]any)
	out := map[string]any{}
	for _, key := range sortedKeys(their) {
		switch {
		case reflect.DeepEqual(their[key], our[key]):
		case key == "discoveryAddress":
			t.gap("meshConfig.defaultConfig.discoveryAddress", "meshkeeper points proxies at its own istiod (%v)", our[key])
		case fits(map[string]any{key: their[key]}, &meshv1alpha1.DefaultProxyConfig{}):
			out[key] = their[key]
		default:
			t.gap("meshConfig.defaultConfig."+key, "spec.meshConfig.defaultConfig has no field that takes it as it is")
		}
	}
	t.onlyOurs("meshConfig.defaultConfig.", their, our)
	if len(out) > 0 {
		accepted["defaultConfig"] = out
	}
}

// istioRuntimeDefaults are mesh config values meshkeeper writes that
// istiod assumes when the key is absent (Istio's default mesh config):
// written or not, istiod behaves the same.
var istioRuntimeDefaults = map[string]any{"meshConfig.enableTracing": true}

// onlyOurs names the keys meshkeeper renders that the installation does
// not set: a MeshInstall cannot unset them.
func (t *translation) onlyOurs(prefix string, theirs, ours map[string]any) {
	for _, key := range sortedKeys(ours) {
		if def, ok := istioRuntimeDefaults[prefix+key]; ok && reflect.DeepEqual(def, ours[key]) {
			continue
		}
		if _, set := theirs[key]; !set {
			t.gap(prefix+key, "meshkeeper sets it (%v) and the installation does not; it cannot be unset", ours[key])
		}
	}
}

// checkMeshConfig renders the translated MeshInstall and moves to the gaps
// every accepted key meshkeeper would still render differently.
func (t *translation) checkMeshConfig(theirs, accepted map[string]any) error {
	objs, err := renderRevision(t.mi)
	if err != nil {
		return fmt.Errorf("rendering the translated mesh config: %w", err)
	}
	rendered, err := renderedMeshConfig(objs)
	if err != nil {
		return err
	}
	for _, key := range sortedKeys(accepted) {
		if key == "defaultConfig" {
			want, _ := theirs[key].(map[string]any)
			got, _ := rendered[key].(map[string]any)
			for _, sub := range sortedKeys(accepted[key].(map[string]any)) {
				if !reflect.DeepEqual(want[sub], got[sub]) {
					t.gap("meshConfig.defaultConfig."+sub, "meshkeeper renders it as %v, not %v", got[sub], want[sub])
				}
			}
			continue
		}
		if !reflect.DeepEqual(theirs[key], rendered[key]) {
			t.gap("meshConfig."+key, "meshkeeper renders it as %v, not %v", rendered[key], theirs[key])
		}
	}
	return nil
}

// MeshConfigValues reads the mesh config of an istio[-<rev>] ConfigMap
// (its key mesh) as generic values.
func MeshConfigValues(cm *corev1.ConfigMap) (map[string]any, error) {
	out := map[string]any{}
	if err := yaml.Unmarshal([]byte(cm.Data["mesh"]), &out); err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s: key mesh is not YAML: %w", cm.Namespace, cm.Name, err)
	}
	return out, nil
}

// renderedMeshConfig is the mesh config among meshkeeper's rendered objects.
func renderedMeshConfig(objs []client.Object) (map[string]any, error) {
	for _, o := range objs {
		if cm, ok := o.(*corev1.ConfigMap); ok && cm.Name == render.MeshConfigMapName(render.DefaultRevision) {
			return MeshConfigValues(cm)
		}
	}
	return nil, fmt.Errorf("meshkeeper rendered no mesh config")
}

// fits says whether v decodes into out with no field unknown to it.
func fits(v any, out any) bool {
	return decodeStrict(v, out) == nil
}

func decodeStrict(v any, out any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(out)
}

// suffix is Istio's object name suffix of a revision.
func suffix(rev string) string {
	if rev == "" || rev == render.DefaultRevision {
		return ""
	}
	return "-" + rev
}
