package chartgen

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// releaseNamespace stands for config/'s namespace in every template.
const releaseNamespace = "{{ .Release.Namespace }}"

// helmLabels are the labels the chart's "meshkeeper.labels" template sets
// on every object (Helm's conventions); kustomize's values of them go.
var helmLabels = []string{"app.kubernetes.io/name", "app.kubernetes.io/managed-by"}

// objectTemplate is the template of one chart object: its conditions
// around the object, with the release's namespace and Helm's labels (and,
// for the manager's Deployment, the values) in place.
func objectTemplate(p Plan, o ChartObject) (string, error) {
	obj := o.Object.DeepCopy()
	doc := &document{}
	if err := replaceNamespace(obj.Object, p.Namespace, obj.GetKind()+" "+obj.GetName()); err != nil {
		return "", err
	}
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for _, l := range helmLabels {
		delete(labels, l)
	}
	labels[doc.key(include("meshkeeper.labels"))] = ""
	obj.SetLabels(labels)
	if keyOf(o.Object) == keyOf(p.Manager) {
		if err := templateManager(obj, doc, p.ExtraArgs); err != nil {
			return "", err
		}
	}
	body, err := doc.render(obj.Object)
	if err != nil {
		return "", fmt.Errorf("%s: %w", keyOf(o.Object), err)
	}
	if len(o.Conditions) == 0 {
		return templateHeader + body, nil
	}
	return templateHeader + "{{- if " + conditionExpr(o.Conditions) + " }}\n" + body + "{{- end }}\n", nil
}

// replaceNamespace puts the release's namespace wherever config/'s stands
// as a whole string (metadata.namespace, a binding's subjects); config/'s
// namespace inside a longer string is an error, since chartgen would
// have to guess.
func replaceNamespace(v any, namespace, where string) error {
	switch v := v.(type) {
	case map[string]any:
		for k, item := range v {
			if s, ok := item.(string); ok && s == namespace {
				v[k] = releaseNamespace
				continue
			}
			if err := replaceNamespace(item, namespace, where+"."+k); err != nil {
				return err
			}
		}
	case []any:
		for i, item := range v {
			if s, ok := item.(string); ok && s == namespace {
				v[i] = releaseNamespace
				continue
			}
			if err := replaceNamespace(item, namespace, fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return err
			}
		}
	case string:
		if strings.Contains(v, namespace) {
			return fmt.Errorf("%s holds the namespace %s inside %q: chartgen cannot tell how the release's namespace fits there", where, namespace, v)
		}
	}
	return nil
}

// podValues are pod spec fields the chart takes from values, only when set.
var podValues = []string{"imagePullSecrets", "nodeSelector", "tolerations", "affinity"}

// templateManager puts the values into the manager's Deployment: replicas,
// image, resources, the arguments values decide and those features add,
// and the pod's scheduling.
func templateManager(d *unstructured.Unstructured, doc *document, extra []ConditionalArgs) error {
	if err := unstructured.SetNestedField(d.Object, doc.value(scalar(".Values.replicaCount")), "spec", "replicas"); err != nil {
		return err
	}
	c, err := managerContainer(d)
	if err != nil {
		return err
	}
	c["image"] = doc.value(quoted("{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"))
	c[doc.key(optionalScalar(".Values.image.pullPolicy", "imagePullPolicy"))] = ""
	c["resources"] = doc.value(asYAML(".Values.resources"))
	args, err := templateManagerArgs(c, doc, Features)
	if err != nil {
		return err
	}
	for _, e := range extra {
		args = append(args, doc.value(conditionalItems(e.Condition, e.Args)))
	}
	c["args"] = args
	podSpec, _, err := unstructured.NestedFieldNoCopy(d.Object, "spec", "template", "spec")
	if err != nil {
		return err
	}
	spec, _ := podSpec.(map[string]any)
	for _, field := range podValues {
		if _, set := spec[field]; set {
			return fmt.Errorf("config/ sets the manager pod's %s: chartgen would hide it behind the chart's value", field)
		}
		spec[doc.key(optionalYAML(".Values."+field, field))] = ""
	}
	return nil
}

// templateManagerArgs renders each argument a feature sets (Feature.Args)
// as config/'s or the feature's, by the feature's condition; every such
// flag must be among config/'s arguments, or its value would do nothing.
func templateManagerArgs(c map[string]any, doc *document, features []Feature) ([]any, error) {
	args, _, err := unstructured.NestedStringSlice(c, "args")
	if err != nil {
		return nil, err
	}
	out := make([]any, len(args))
	for i, arg := range args {
		out[i] = arg
	}
	for _, f := range features {
		for flag, set := range f.Args {
			i := slices.IndexFunc(args, func(arg string) bool { return arg == flag || strings.HasPrefix(arg, flag+"=") })
			if i < 0 {
				return nil, fmt.Errorf("the manager's arguments in config/ lack %s, which variant %s sets", flag, f.Name)
			}
			if _, ok := out[i].(string); !ok || out[i] != args[i] {
				return nil, fmt.Errorf("two features set the manager's %s", flag)
			}
			on, off := args[i], set
			if f.Adds {
				on, off = set, args[i]
			}
			out[i] = doc.value(quoted("{{ if " + f.Condition + " }}" + on + "{{ else }}" + off + "{{ end }}"))
		}
	}
	return out, nil
}
