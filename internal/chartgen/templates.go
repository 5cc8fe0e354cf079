package chartgen

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// releaseNamespace stands for config/'s namespace in every template,
// wherever config/'s text names it (metadata.namespace, a binding's
// subjects, a Service's DNS name).
const releaseNamespace = "{{ .Release.Namespace }}"

// helmLabels are the labels the chart's "meshkeeper.labels" template sets
// on every object (Helm's conventions); kustomize's values of them go.
var helmLabels = []string{"app.kubernetes.io/name", "app.kubernetes.io/managed-by"}

// objectTemplate is the template of one chart object: its conditions
// around the object, with config/'s text kept literal, the release's
// namespace and Helm's labels (and, for the manager's Deployment, the
// values) in place.
func objectTemplate(p Plan, o ChartObject) (string, error) {
	obj := o.Object.DeepCopy()
	doc := &document{}
	literal := func(s string) string {
		return strings.ReplaceAll(escapeActions(s), p.Namespace, releaseNamespace)
	}
	rewriteStrings(obj.Object, literal)
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
		extra := make([]ConditionalArgs, len(p.ExtraArgs))
		for i, e := range p.ExtraArgs {
			extra[i] = ConditionalArgs{Condition: e.Condition, Args: make([]string, len(e.Args))}
			for j, arg := range e.Args {
				extra[i].Args[j] = literal(arg)
			}
		}
		if err := templateManager(obj, doc, extra); err != nil {
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

// actionDelimiters escapes template delimiters in config/'s text (an
// alert's description in Alertmanager's own template language, say), so
// that Helm renders them as they are.
var actionDelimiters = strings.NewReplacer("{{", "{{`{{`}}", "}}", "{{`}}`}}")

func escapeActions(s string) string { return actionDelimiters.Replace(s) }

// rewriteStrings replaces every string value in v (not the keys) by rewrite's.
func rewriteStrings(v any, rewrite func(string) string) {
	switch v := v.(type) {
	case map[string]any:
		for k, item := range v {
			if s, ok := item.(string); ok {
				v[k] = rewrite(s)
			} else {
				rewriteStrings(item, rewrite)
			}
		}
	case []any:
		for i, item := range v {
			if s, ok := item.(string); ok {
				v[i] = rewrite(s)
			} else {
				rewriteStrings(item, rewrite)
			}
		}
	}
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
