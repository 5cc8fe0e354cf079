package chartgen

import (
	"fmt"
	"reflect"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Plan is what the chart holds, worked out from kustomize's builds.
type Plan struct {
	// Namespace is the one config/ installs into, which the chart
	// replaces by the release's namespace.
	Namespace string
	// CRDs go to the chart's crds/ directory, as they are.
	CRDs []*unstructured.Unstructured
	// Objects become templates/, each under its conditions.
	Objects []ChartObject
	// Manager is the manager's Deployment (also among Objects).
	Manager *unstructured.Unstructured
	// ExtraArgs are the manager's arguments a feature adds, in Features' order.
	ExtraArgs []ConditionalArgs
}

// ChartObject is one templated object and the conditions it is rendered under (all must hold).
type ChartObject struct {
	Object     *unstructured.Unstructured
	Conditions []string
}

// ConditionalArgs are arguments of the manager rendered when Condition holds.
type ConditionalArgs struct {
	Condition string
	Args      []string
}

// objectKey names an object across builds.
type objectKey struct{ apiVersion, kind, namespace, name string }

func keyOf(o *unstructured.Unstructured) objectKey {
	return objectKey{o.GetAPIVersion(), o.GetKind(), o.GetNamespace(), o.GetName()}
}

func (k objectKey) String() string {
	if k.namespace == "" {
		return fmt.Sprintf("%s %s", k.kind, k.name)
	}
	return fmt.Sprintf("%s %s/%s", k.kind, k.namespace, k.name)
}

// MakePlan works out the chart from the builds: config/default's objects,
// and what each feature's variant adds or lacks. It fails on any other
// difference between a variant and config/default, naming it.
func MakePlan(b Builds) (Plan, error) {
	var p Plan
	index := map[objectKey]int{}
	for _, o := range b.Default {
		switch o.GetKind() {
		case "Namespace":
			if p.Namespace != "" {
				return p, fmt.Errorf("config/default makes two namespaces, %s and %s: the chart installs into one, the release's", p.Namespace, o.GetName())
			}
			p.Namespace = o.GetName()
		case "CustomResourceDefinition":
			p.CRDs = append(p.CRDs, o)
		default:
			index[keyOf(o)] = len(p.Objects)
			p.Objects = append(p.Objects, ChartObject{Object: o})
		}
		if o.GetKind() == "Deployment" {
			if p.Manager != nil {
				return p, fmt.Errorf("config/default makes two Deployments, %s and %s: chartgen knows one, the manager's", p.Manager.GetName(), o.GetName())
			}
			p.Manager = o
		}
	}
	if p.Namespace == "" || p.Manager == nil {
		return p, fmt.Errorf("config/default makes no Namespace or no Deployment: nothing to make a chart of")
	}
	for _, f := range Features {
		variant, ok := b.Variants[f.Name]
		if !ok {
			return p, fmt.Errorf("no build of variant %s", f.Name)
		}
		if err := p.addVariant(f, b.Default, variant, index); err != nil {
			return p, fmt.Errorf("variant %s: %w", f.Name, err)
		}
	}
	return p, nil
}

// addVariant files what the feature's variant adds (Adds) or lacks (!Adds)
// under its condition, and the manager arguments it adds.
func (p *Plan) addVariant(f Feature, base, variant []*unstructured.Unstructured, index map[objectKey]int) error {
	inBase := keyed(base)
	inVariant := keyed(variant)
	for _, o := range variant {
		k := keyOf(o)
		b, shared := inBase[k]
		switch {
		case !shared && f.Adds:
			index[k] = len(p.Objects)
			p.Objects = append(p.Objects, ChartObject{Object: o, Conditions: []string{f.Condition}})
		case !shared:
			return fmt.Errorf("turning the feature off adds %s: chartgen cannot render that", k)
		case k == keyOf(p.Manager):
			args, err := addedManagerArgs(b, o)
			if err != nil {
				return err
			}
			if len(args) > 0 && !f.Adds {
				return fmt.Errorf("turning the feature off adds the manager arguments %v: chartgen cannot render that", args)
			}
			if len(args) > 0 {
				p.ExtraArgs = append(p.ExtraArgs, ConditionalArgs{Condition: f.Condition, Args: args})
			}
		case !reflect.DeepEqual(b.Object, o.Object):
			return fmt.Errorf("%s differs from config/default's: chartgen renders only whole objects and the manager's arguments conditionally", k)
		}
	}
	for _, o := range base {
		k := keyOf(o)
		if _, kept := inVariant[k]; kept {
			continue
		}
		i, templated := index[k]
		if f.Adds || !templated {
			return fmt.Errorf("turning the feature on removes %s: chartgen cannot render that", k)
		}
		p.Objects[i].Conditions = append(p.Objects[i].Conditions, f.Condition)
	}
	return nil
}

func keyed(objs []*unstructured.Unstructured) map[objectKey]*unstructured.Unstructured {
	m := make(map[objectKey]*unstructured.Unstructured, len(objs))
	for _, o := range objs {
		m[keyOf(o)] = o
	}
	return m
}

// addedManagerArgs returns the arguments the variant's manager Deployment
// appends to the base's, which must be its only difference.
func addedManagerArgs(base, variant *unstructured.Unstructured) ([]string, error) {
	baseArgs, err := managerArgs(base)
	if err != nil {
		return nil, err
	}
	variantArgs, err := managerArgs(variant)
	if err != nil {
		return nil, err
	}
	if len(variantArgs) < len(baseArgs) || !slices.Equal(variantArgs[:len(baseArgs)], baseArgs) {
		return nil, fmt.Errorf("the manager's arguments %v do not extend config/default's %v", variantArgs, baseArgs)
	}
	same := variant.DeepCopy()
	if err := setManagerArgs(same, baseArgs); err != nil {
		return nil, err
	}
	if !reflect.DeepEqual(same.Object, base.Object) {
		return nil, fmt.Errorf("the manager's Deployment differs from config/default's beyond its arguments: chartgen cannot render that")
	}
	return variantArgs[len(baseArgs):], nil
}

// ManagerContainer is the name of the manager's container in config/manager.
const ManagerContainer = "manager"

// managerContainer returns the manager's container of a Deployment, as a map to edit in place.
func managerContainer(d *unstructured.Unstructured) (map[string]any, error) {
	// Not NestedSlice, which copies: the caller edits the object's own container.
	containers, _, err := unstructured.NestedFieldNoCopy(d.Object, "spec", "template", "spec", "containers")
	if err != nil {
		return nil, err
	}
	list, _ := containers.([]any)
	for _, c := range list {
		if m, ok := c.(map[string]any); ok && m["name"] == ManagerContainer {
			return m, nil
		}
	}
	return nil, fmt.Errorf("deployment %s has no container %q", d.GetName(), ManagerContainer)
}

func managerArgs(d *unstructured.Unstructured) ([]string, error) {
	c, err := managerContainer(d)
	if err != nil {
		return nil, err
	}
	args, _, err := unstructured.NestedStringSlice(c, "args")
	return args, err
}

func setManagerArgs(d *unstructured.Unstructured, args []string) error {
	c, err := managerContainer(d)
	if err != nil {
		return err
	}
	return unstructured.SetNestedStringSlice(c, args, "args")
}
