package render

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Server-side apply needs apiVersion and kind; the reconciler finds its
// objects by the managed-by and meshinstall labels, and prunes a revision
// by LabelRevision, which shared objects must therefore never carry.
func TestEveryObjectHasTypeMetaAndLabels(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			check := func(o client.Object, revision string) {
				gvk := o.GetObjectKind().GroupVersionKind()
				if gvk.Version == "" || gvk.Kind == "" {
					t.Errorf("%T %s has no TypeMeta", o, o.GetName())
				}
				l := o.GetLabels()
				if l[LabelManagedBy] != ManagedBy || l[LabelMeshInstall] != c.mi.Name {
					t.Errorf("%s %s lacks %s=%s or %s=%s: %v", gvk.Kind, o.GetName(),
						LabelManagedBy, ManagedBy, LabelMeshInstall, c.mi.Name, l)
				}
				if l[LabelRevision] != revision {
					t.Errorf("%s %s: %s=%q, want %q", gvk.Kind, o.GetName(), LabelRevision, l[LabelRevision], revision)
				}
				if len(o.GetOwnerReferences()) > 0 {
					t.Errorf("%s %s has ownerReferences", gvk.Kind, o.GetName())
				}
			}
			for _, r := range c.revisions {
				for _, o := range mustControlPlane(t, c.mi, mustRevision(t, r[0], r[1])) {
					check(o, r[0])
				}
			}
			for _, o := range mustShared(t, c.mi, mustRevision(t, c.active[0], c.active[1])) {
				check(o, "")
			}
		})
	}
}

// The reconciler must own or watch every kind the renderer emits.
func TestKindsListEveryRenderedKindInApplyOrder(t *testing.T) {
	kinds := Kinds()
	for _, c := range goldenCases() {
		objs := c.render(t)
		last := -1
		for _, o := range objs {
			i := slices.Index(kinds, o.GetObjectKind().GroupVersionKind())
			if i < 0 {
				t.Fatalf("%s: Kinds() lacks %s", c.name, o.GetObjectKind().GroupVersionKind())
			}
			if i < last {
				t.Errorf("%s: %s %s comes after a later kind", c.name, kinds[i].Kind, o.GetName())
			}
			last = i
		}
	}
	crds, err := IstioCRDs(meshInstall("1.32.0"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(kinds, crds[0].GroupVersionKind()) || kinds[0] != crds[0].GroupVersionKind() {
		t.Errorf("CRDs must be the first kind of Kinds(): %v", kinds)
	}
}

// Same input, same output; the input is not changed; the output shares
// nothing a caller could corrupt the next render through.
func TestPure(t *testing.T) {
	for _, c := range goldenCases() {
		before := c.mi.DeepCopy()
		first := toYAML(t, c.render(t))
		if !reflect.DeepEqual(before, c.mi) {
			t.Errorf("%s: rendering changed the MeshInstall", c.name)
		}
		objs := c.render(t)
		for _, o := range objs {
			o.GetLabels()[LabelManagedBy] = "someone-else"
			switch o := o.(type) {
			case *appsv1.Deployment:
				ctr := &o.Spec.Template.Spec.Containers[0]
				for k := range ctr.Resources.Requests {
					ctr.Resources.Requests[k] = resource.MustParse("999")
				}
				ctr.Args = append(ctr.Args[:0:0], "changed")
			case *rbacv1.ClusterRole:
				o.Rules[0].Verbs[0] = "escalate"
				o.Rules[0].APIGroups[0] = "changed"
			case *rbacv1.Role:
				o.Rules[0].Verbs[0] = "escalate"
			}
		}
		if again := toYAML(t, c.render(t)); !bytes.Equal(first, again) {
			t.Errorf("%s: a second render differs:\n%s", c.name, firstDifference(string(first), string(again)))
		}
	}
}

// Lists server-side apply merges by key must not repeat a key, or the
// whole apply is refused.
func TestListMapKeysAreUnique(t *testing.T) {
	for _, c := range goldenCases() {
		for _, o := range c.render(t) {
			var spec *corev1.PodSpec
			switch o := o.(type) {
			case *appsv1.Deployment:
				spec = &o.Spec.Template.Spec
			case *corev1.Service:
				unique(t, c.name+"/"+o.Name+" ports", o.Spec.Ports, func(p corev1.ServicePort) string {
					return fmt.Sprint(p.Port, p.Protocol)
				})
				unique(t, c.name+"/"+o.Name+" port names", o.Spec.Ports, func(p corev1.ServicePort) string { return p.Name })
			}
			if spec == nil {
				continue
			}
			unique(t, c.name+"/"+o.GetName()+" volumes", spec.Volumes, func(v corev1.Volume) string { return v.Name })
			for _, ctr := range spec.Containers {
				unique(t, c.name+"/"+o.GetName()+" env", ctr.Env, func(e corev1.EnvVar) string { return e.Name })
				unique(t, c.name+"/"+o.GetName()+" ports", ctr.Ports, func(p corev1.ContainerPort) string {
					return fmt.Sprint(p.ContainerPort, p.Protocol)
				})
				unique(t, c.name+"/"+o.GetName()+" mounts", ctr.VolumeMounts, func(m corev1.VolumeMount) string { return m.MountPath })
			}
		}
	}
}

func unique[T any](t *testing.T, what string, items []T, key func(T) string) {
	t.Helper()
	seen := map[string]bool{}
	for _, it := range items {
		k := key(it)
		if seen[k] {
			t.Errorf("%s: %q repeats", what, k)
		}
		seen[k] = true
	}
}
