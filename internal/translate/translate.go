// Package translate turns one revision of an Istio installation meshkeeper
// did not make (istioctl, Helm, Sail), as read from the cluster, into the
// MeshInstall that installs the same control plane, and lists every
// setting the MeshInstall cannot express, with why. It is pure: the
// kubectl-meshkeeper command reads the objects, this package decides.
//
// What meshkeeper would render anyway is not translated: the installation
// is compared with meshkeeper's own rendering of the draft MeshInstall
// (internal/render), and only what differs becomes a field or a gap.
package translate

import (
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// Installation is what was read of one revision of a foreign Istio.
type Installation struct {
	// Revision is the revision's name; "default" for an unrevisioned install.
	Revision string
	// Istiod is the revision's istiod Deployment (required).
	Istiod *appsv1.Deployment
	// MeshConfig is its istio[-<rev>] ConfigMap; nil when missing.
	MeshConfig *corev1.ConfigMap
	// Injector is its istio-sidecar-injector[-<rev>] ConfigMap; nil when missing.
	Injector *corev1.ConfigMap
	// Gateways are the gateway Deployments found, with their Services.
	Gateways []Gateway
	// Tags are the revision tags (istio-revision-tag-<tag>) and the
	// revision each points at.
	Tags map[string]string
	// IstioOperator is istioctl's IstioOperator, when there is one.
	IstioOperator *unstructured.Unstructured
}

// Gateway is a gateway Deployment and the Service of the same name (nil when missing).
type Gateway struct {
	Deployment *appsv1.Deployment
	Service    *corev1.Service
}

// Gap is a setting of the installation the MeshInstall does not express.
type Gap struct {
	Setting, Why string
}

// Result is the translated MeshInstall and what it leaves out.
type Result struct {
	MeshInstall *meshv1alpha1.MeshInstall
	Gaps        []Gap
}

// translation accumulates the MeshInstall and its gaps.
type translation struct {
	in   Installation
	mi   *meshv1alpha1.MeshInstall
	gaps []Gap
}

func (t *translation) gap(setting, why string, args ...any) {
	t.gaps = append(t.gaps, Gap{Setting: setting, Why: fmt.Sprintf(why, args...)})
}

// Translate makes the MeshInstall equivalent to in. It fails only when
// there is nothing to translate from (no istiod) or meshkeeper cannot
// install its version at all.
func Translate(in Installation) (Result, error) {
	if in.Istiod == nil {
		return Result{}, fmt.Errorf("no istiod Deployment: nothing to translate")
	}
	t := &translation{in: in, mi: &meshv1alpha1.MeshInstall{
		TypeMeta:   metav1.TypeMeta{APIVersion: meshv1alpha1.GroupVersion.String(), Kind: "MeshInstall"},
		ObjectMeta: metav1.ObjectMeta{Name: "default"},
	}}
	t.mi.Spec.Namespace = in.Istiod.Namespace
	if err := t.image(); err != nil {
		return Result{}, err
	}
	t.istioOperator()
	t.domain()
	baseline, err := renderRevision(t.mi)
	if err != nil {
		return Result{}, fmt.Errorf("rendering meshkeeper's control plane for %s: %w", t.mi.Spec.Version, err)
	}
	if err := t.meshConfig(baseline); err != nil {
		return Result{}, err
	}
	t.pilot(baseline)
	t.injector()
	t.gateways()
	t.tags()
	t.revision()
	slices.SortStableFunc(t.gaps, func(a, b Gap) int { return strings.Compare(a.Setting, b.Setting) })
	return Result{MeshInstall: t.mi, Gaps: t.gaps}, nil
}

// image takes version, hub and variant from istiod's image.
func (t *translation) image() error {
	c := discovery(t.in.Istiod)
	if c == nil {
		return fmt.Errorf("istiod Deployment %s/%s has no containers", t.in.Istiod.Namespace, t.in.Istiod.Name)
	}
	repo, tag := splitImage(c.Image)
	if tag == "" {
		return fmt.Errorf("istiod image %q has no tag: its Istio version is unknown", c.Image)
	}
	v, variant, _ := strings.Cut(tag, "-")
	if _, err := version.Parse(v); err != nil {
		return fmt.Errorf("istiod runs Istio %s (image %s): %w", v, c.Image, err)
	}
	t.mi.Spec.Version = v
	switch variant {
	case "":
	case string(meshv1alpha1.ImageVariantDistroless), string(meshv1alpha1.ImageVariantDebug):
		t.mi.Spec.Pilot.Variant = meshv1alpha1.ImageVariant(variant)
	default:
		t.gap("pilot image variant "+variant, "meshkeeper knows the variants distroless and debug only")
	}
	hub, name, _ := cutLast(repo, "/")
	if name != "pilot" {
		t.gap("pilot image "+c.Image, "meshkeeper runs Istio's pilot image from spec.hub; set spec.pilot.image by hand if this image is a rebuild of it")
	}
	if hub != defaultHub {
		t.mi.Spec.Hub = hub
	}
	return nil
}

// defaultHub is where Istio's charts and meshkeeper take images from by default.
const defaultHub = "docker.io/istio"

// domain takes the cluster domain from istiod's --domain argument.
func (t *translation) domain() {
	args := discovery(t.in.Istiod).Args
	for i, a := range args {
		switch {
		case a == "--domain" && i+1 < len(args):
			t.setDomain(args[i+1])
		case strings.HasPrefix(a, "--domain="):
			t.setDomain(strings.TrimPrefix(a, "--domain="))
		}
	}
}

func (t *translation) setDomain(d string) {
	if d != "" && d != "cluster.local" {
		t.mi.Spec.Cluster.Domain = d
	}
}

// istioOperator takes the profile from istioctl's IstioOperator and names
// what of it only the rendered objects, not the MeshInstall, could carry.
func (t *translation) istioOperator() {
	iop := t.in.IstioOperator
	if iop == nil {
		return
	}
	switch p, _, _ := unstructured.NestedString(iop.Object, "spec", "profile"); p {
	case "", "default":
	case string(meshv1alpha1.ProfileMinimal), string(meshv1alpha1.ProfileDemo):
		t.mi.Spec.Profile = meshv1alpha1.ProfileName(p)
	default:
		t.gap("IstioOperator spec.profile "+p, "meshkeeper's profiles are default, minimal and demo; the settings read from the live objects are kept")
	}
	components, _, _ := unstructured.NestedMap(iop.Object, "spec", "components")
	for _, name := range sortedKeys(components) {
		for _, c := range componentList(components[name]) {
			if enabled, _, _ := unstructured.NestedBool(c, "enabled"); enabled && !slices.Contains([]string{"base", "pilot", "ingressGateways", "egressGateways"}, name) {
				t.gap("IstioOperator spec.components."+name, "meshkeeper installs istiod, its injector and gateways only; %s stays as it is", name)
			}
			if overlays, found, _ := unstructured.NestedSlice(c, "k8s", "overlays"); found && len(overlays) > 0 {
				t.gap("IstioOperator spec.components."+name+".k8s.overlays", "not translated: write them as spec.overlays (JSON patches on meshkeeper's rendered objects)")
			}
		}
	}
}

// componentList is a component's settings: one map, or a list (gateways).
func componentList(v any) []map[string]any {
	switch c := v.(type) {
	case map[string]any:
		return []map[string]any{c}
	case []any:
		var out []map[string]any
		for _, e := range c {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}

// tags lists the revision tags that point at the translated revision;
// the default tag always exists in a MeshInstall.
func (t *translation) tags() {
	for _, tag := range sortedKeys(t.in.Tags) {
		switch rev := t.in.Tags[tag]; {
		case tag == "default":
		case rev != t.in.Revision:
			t.gap("revision tag "+tag, "it points at revision %s, not the one translated (%s); meshkeeper's tags follow its active revision", rev, t.in.Revision)
		default:
			t.mi.Spec.RevisionTags = append(t.mi.Spec.RevisionTags, tag)
		}
	}
}

// revision notes a revision name meshkeeper will not reuse.
func (t *translation) revision() {
	if t.in.Revision == "" || t.in.Revision == render.DefaultRevision {
		return
	}
	t.gap("revision name "+t.in.Revision, "meshkeeper names its revisions itself; namespaces labelled istio.io/rev=%s are not "+
		"injected by it: label them istio-injection=enabled or with a revision tag (spec.revisionTags)", t.in.Revision)
}

// renderRevision is meshkeeper's default revision of mi, as it would apply it.
func renderRevision(mi *meshv1alpha1.MeshInstall) ([]client.Object, error) {
	rev, err := render.NewRevision(render.DefaultRevision, mi.Spec.Version)
	if err != nil {
		return nil, err
	}
	return render.ControlPlane(mi, rev)
}

// discovery is istiod's discovery container (Istio's charts name it so),
// or its first.
func discovery(d *appsv1.Deployment) *corev1.Container {
	return container(d, "discovery")
}

func container(d *appsv1.Deployment, name string) *corev1.Container {
	cs := d.Spec.Template.Spec.Containers
	if i := slices.IndexFunc(cs, func(c corev1.Container) bool { return c.Name == name }); i >= 0 {
		return &cs[i]
	}
	if len(cs) > 0 {
		return &cs[0]
	}
	return nil
}

// splitImage splits an image into its repository and tag (digest dropped).
func splitImage(image string) (repo, tag string) {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[:i], image[i+1:]
	}
	return image, ""
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return "", s, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
