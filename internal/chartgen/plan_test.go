package chartgen

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func object(apiVersion, kind, namespace, name string) *unstructured.Unstructured {
	o := &unstructured.Unstructured{}
	o.SetAPIVersion(apiVersion)
	o.SetKind(kind)
	o.SetNamespace(namespace)
	o.SetName(name)
	return o
}

func manager(args ...string) *unstructured.Unstructured {
	d := object("apps/v1", "Deployment", "mk-system", "mk-controller-manager")
	anyArgs := make([]any, len(args))
	for i, a := range args {
		anyArgs[i] = a
	}
	d.Object["spec"] = map[string]any{
		"replicas": int64(2),
		"template": map[string]any{"spec": map[string]any{"containers": []any{
			map[string]any{"name": "manager", "image": "example/mk:dev", "args": anyArgs},
		}}},
	}
	return d
}

func service(port int64) *unstructured.Unstructured {
	s := object("v1", "Service", "mk-system", "mk-webhook-service")
	s.Object["spec"] = map[string]any{"ports": []any{map[string]any{"port": port}}}
	return s
}

var baseArgs = []string{"--leader-elect", "--metrics-bind-address=:8443"}

func base() []*unstructured.Unstructured {
	return []*unstructured.Unstructured{
		object("v1", "Namespace", "", "mk-system"),
		object("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "things.example.dev"),
		manager(baseArgs...),
		service(443),
		object("networking.k8s.io/v1", "NetworkPolicy", "mk-system", "mk-allow-metrics-traffic"),
	}
}

// builds are base's, every variant the same as base but those given.
func builds(variants map[string][]*unstructured.Unstructured) Builds {
	b := Builds{Default: base(), Variants: map[string][]*unstructured.Unstructured{}}
	for _, f := range Features {
		b.Variants[f.Name] = base()
		if v, ok := variants[f.Name]; ok {
			b.Variants[f.Name] = v
		}
	}
	return b
}

func without(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	return slices.DeleteFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == kind })
}

func replaced(objs []*unstructured.Unstructured, by *unstructured.Unstructured) []*unstructured.Unstructured {
	for i, o := range objs {
		if keyOf(o) == keyOf(by) {
			objs[i] = by
		}
	}
	return objs
}

func feature(name string) Feature {
	for _, f := range Features {
		if f.Name == name {
			return f
		}
	}
	panic(name)
}

func conditionsOf(p Plan, kind string) []string {
	for _, o := range p.Objects {
		if o.Object.GetKind() == kind {
			return o.Conditions
		}
	}
	return nil
}

func TestMakePlan(t *testing.T) {
	issuer := object("cert-manager.io/v1", "Issuer", "mk-system", "mk-webhook-ca")
	cases := []struct {
		name     string
		variants map[string][]*unstructured.Unstructured
		check    func(t *testing.T, p Plan)
	}{
		{
			name: "config/default's objects render unconditionally, its CRDs and namespace go apart",
			check: func(t *testing.T, p Plan) {
				if p.Namespace != "mk-system" || len(p.CRDs) != 1 || len(p.Objects) != 3 || p.Manager.GetKind() != "Deployment" {
					t.Errorf("namespace %q, %d CRDs, %d objects, manager %v", p.Namespace, len(p.CRDs), len(p.Objects), p.Manager)
				}
				for _, o := range p.Objects {
					if len(o.Conditions) > 0 {
						t.Errorf("%s under %v", keyOf(o.Object), o.Conditions)
					}
				}
			},
		},
		{
			name:     "an object a feature's variant adds renders under the feature's condition",
			variants: map[string][]*unstructured.Unstructured{"cert-manager": append(base(), issuer)},
			check: func(t *testing.T, p Plan) {
				if got, want := conditionsOf(p, "Issuer"), []string{feature("cert-manager").Condition}; !slices.Equal(got, want) {
					t.Errorf("the Issuer renders under %v, want %v", got, want)
				}
			},
		},
		{
			name: "an object two features' variants lack renders when both are on",
			variants: map[string][]*unstructured.Unstructured{
				"no-network-policy": without(base(), "NetworkPolicy"),
				"no-metrics":        without(base(), "NetworkPolicy"),
			},
			check: func(t *testing.T, p Plan) {
				want := []string{feature("no-network-policy").Condition, feature("no-metrics").Condition}
				if got := conditionsOf(p, "NetworkPolicy"); !slices.Equal(got, want) {
					t.Errorf("the NetworkPolicy renders under %v, want %v", got, want)
				}
			},
		},
		{
			name:     "arguments a feature's variant appends to the manager's are added under its condition",
			variants: map[string][]*unstructured.Unstructured{"cert-manager": replaced(base(), manager(append(slices.Clone(baseArgs), "--webhook-cert-provider=cert-manager")...))},
			check: func(t *testing.T, p Plan) {
				want := ConditionalArgs{Condition: feature("cert-manager").Condition, Args: []string{"--webhook-cert-provider=cert-manager"}}
				if len(p.ExtraArgs) != 1 || p.ExtraArgs[0].Condition != want.Condition || !slices.Equal(p.ExtraArgs[0].Args, want.Args) {
					t.Errorf("extra arguments %+v, want %+v", p.ExtraArgs, want)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := MakePlan(builds(c.variants))
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, p)
		})
	}
}

// TestMakePlanRefusesWhatItCannotRender: a variant that differs from
// config/default otherwise than chartgen renders is an error naming the
// difference, never a chart that silently lacks it.
func TestMakePlanRefusesWhatItCannotRender(t *testing.T) {
	changedManager := manager(baseArgs...)
	changedManager.Object["spec"].(map[string]any)["replicas"] = int64(3)
	cases := []struct {
		name     string
		variants map[string][]*unstructured.Unstructured
		want     string
	}{
		{"a feature changes a shared object", map[string][]*unstructured.Unstructured{"service-monitor": replaced(base(), service(8443))}, "Service mk-system/mk-webhook-service differs"},
		{"a feature changes the manager beyond its arguments", map[string][]*unstructured.Unstructured{"cert-manager": replaced(base(), changedManager)}, "beyond its arguments"},
		{"a feature drops the manager's arguments", map[string][]*unstructured.Unstructured{"cert-manager": replaced(base(), manager("--leader-elect"))}, "do not extend"},
		{"turning a feature on removes an object", map[string][]*unstructured.Unstructured{"cert-manager": without(base(), "NetworkPolicy")}, "turning the feature on removes NetworkPolicy"},
		{"turning a feature off adds an object", map[string][]*unstructured.Unstructured{"no-metrics": append(base(), object("v1", "ConfigMap", "mk-system", "x"))}, "turning the feature off adds ConfigMap"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := MakePlan(builds(c.variants))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			}
		})
	}
	t.Run("config/default without a namespace", func(t *testing.T) {
		b := builds(nil)
		b.Default = without(b.Default, "Namespace")
		if _, err := MakePlan(b); err == nil {
			t.Error("no error")
		}
	})
}
