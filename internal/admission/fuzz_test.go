package admission

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
	"github.com/meshkeeper/meshkeeper/internal/fuzzbudget"
	"github.com/meshkeeper/meshkeeper/internal/render"
	"github.com/meshkeeper/meshkeeper/internal/revision"
	"github.com/meshkeeper/meshkeeper/internal/version"
)

// FuzzMeshInstallValidator sends the sample MeshInstall, with fuzzed
// versions, update strategy and spec.overlays (those the CRD's schema lets
// through to the webhook), through the validating webhook's rules: as a new
// MeshInstall, and as an update of a mesh running the old version. Every
// call must stay within fuzzbudget.Call's budget and never panic, and
//   - a refusal names the field it refuses (spec.…);
//   - an accepted MeshInstall renders, as the reconciler renders it (with
//     classic or native sidecars): what admission accepts is what is applied;
//   - an accepted MeshInstall, read back from the JSON the API server stores,
//     is accepted again;
//   - without overlays, an update is accepted exactly when Istio's upgrade
//     rules (version.CheckInPlace, version.CheckCanary) allow the version change.
func FuzzMeshInstallValidator(f *testing.F) {
	base := sampleMeshInstall(f)
	for _, s := range []struct {
		from, to string
		canary   bool
		overlays string
	}{
		{"1.31.4", "1.31.4", false, ""},
		{"1.31.4", "1.32.0", false, ""},
		{"1.31.0", "1.31.4", false, ""},
		{"1.30.8", "1.32.0", false, ""},
		{"1.30.8", "1.32.0", true, ""},
		{"1.32.0", "1.30.0", true, ""},
		{"1.31.4", "1.31.0", false, ""},
		{"1.31.4", "1.40.0", true, ""},
		{"1.31.4", "v1.32.0", false, ""},
		{"1.31.4", "1.32.0", false, `[{"target":{"kind":"Deployment","name":"istiod"},"strategicMerge":{"spec":{"template":{"spec":{"containers":[{"name":"discovery","env":[{"name":"X","value":"1"}]}]}}}}}]`},
		{"1.31.4", "1.32.0", true, `[{"target":{"kind":"ConfigMap","name":"istio"},"jsonPatch":[{"op":"add","path":"/data/extra","value":"x"}]}]`},
		{"1.31.4", "1.31.4", false, `[{"target":{"kind":"Deployment","name":"istiod"},"strategicMerge":{"metadata":{"labels":{"istio.io/rev":"other"}}}}]`},
		{"1.31.4", "1.32.0", false, `[{"target":{"kind":"Service","name":"istio-ingressgateway","namespace":"istio-system"},"jsonPatch":[{"op":"replace","path":"/spec/type","value":"NodePort"},{"op":"copy","from":"/metadata/labels","path":"/metadata/annotations"}]}]`},
		{"1.31.4", "1.32.0", false, `[{"target":{"kind":"Deployment","name":"pilot"},"jsonPatch":[{"op":"remove","path":"/spec/replicas","value":1}]}]`},
		{"1.31.4", "1.32.0", false, `[{"target":{"kind":"PeerAuthentication","name":"default"},"strategicMerge":{"spec":{"mtls":{"mode":"PERMISSIVE"}}}}]`},
	} {
		f.Add(s.from, s.to, s.canary, []byte(s.overlays))
	}
	f.Fuzz(func(t *testing.T, from, to string, canary bool, overlaysJSON []byte) {
		overlays, ok := overlaysTheSchemaAdmits(overlaysJSON)
		if !ok {
			return
		}
		strategy := meshv1alpha1.UpdateStrategyInPlace
		if canary {
			strategy = meshv1alpha1.UpdateStrategyCanary
		}

		created := base.DeepCopy()
		created.Spec.Version, created.Spec.UpdateStrategy.Type, created.Spec.Overlays = to, strategy, overlays
		var err error
		fuzzbudget.Call(t, "ValidateCreate", func() { err = ValidateCreate(created, nil, Namespaces{}) })
		if err != nil {
			requireNamesAField(t, err)
		} else {
			requireRenders(t, created)
			requireAcceptedAfterStoring(t, created)
		}

		if _, err := version.Parse(from); err != nil {
			return // the running MeshInstall was accepted: its version is supported
		}
		old := base.DeepCopy()
		old.Spec.Version, old.Spec.UpdateStrategy.Type = from, strategy
		old.Status = meshv1alpha1.MeshInstallStatus{
			ActiveRevision: render.DefaultRevision, Version: from,
			Revisions: []meshv1alpha1.RevisionStatus{{Name: render.DefaultRevision, Version: from, Role: meshv1alpha1.RevisionActive, Ready: true}},
		}
		updated := old.DeepCopy()
		updated.Spec.Version, updated.Spec.Overlays = to, overlays
		fuzzbudget.Call(t, "ValidateUpdate", func() { _, err = ValidateUpdate(old, updated, Namespaces{}) })
		if err != nil {
			requireNamesAField(t, err)
		}
		if len(overlays) == 0 {
			if allowed := upgradeRulesAllow(from, to, canary); allowed != (err == nil) {
				t.Fatalf("updating %s to %s (canary %t): the upgrade rules allow it: %t; the validator says %v", from, to, canary, allowed, err)
			}
		}
	})
}

// sampleMeshInstall is config/samples' MeshInstall as the API server stores
// it: with the CRD's defaults that the validator relies on.
func sampleMeshInstall(t testing.TB) *meshv1alpha1.MeshInstall {
	b, err := os.ReadFile("../../config/samples/mesh_v1alpha1_meshinstall.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mi := &meshv1alpha1.MeshInstall{}
	if err := yaml.UnmarshalStrict(b, mi); err != nil {
		t.Fatal(err)
	}
	if mi.Spec.Hub == "" {
		mi.Spec.Hub = "docker.io/istio"
	}
	return mi
}

// The CRD's enums and patterns for overlays (api/v1alpha1/overlay_types.go).
var (
	overlayKinds = []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap", "Service",
		"Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ValidatingWebhookConfiguration", "PeerAuthentication"}
	jsonPatchOps = []meshv1alpha1.JSONPatchOp{"add", "remove", "replace", "move", "copy", "test"}
	jsonPointer  = regexp.MustCompile(`^(/.*)?$`)
)

// overlaysTheSchemaAdmits decodes spec.overlays as the API server does and
// keeps only lists the CRD's schema and CEL rules accept: the webhook never
// sees the others.
func overlaysTheSchemaAdmits(raw []byte) ([]meshv1alpha1.Overlay, bool) {
	if len(raw) == 0 {
		return nil, true
	}
	var overlays []meshv1alpha1.Overlay
	if strict, err := kjson.UnmarshalStrict(raw, &overlays, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields); err != nil || len(strict) > 0 {
		return nil, false
	}
	if len(overlays) > 32 {
		return nil, false
	}
	for _, o := range overlays {
		t := o.Target
		if !slices.Contains(overlayKinds, t.Kind) || len(t.Name) < 1 || len(t.Name) > 253 || len(t.Namespace) > 63 || len(t.Revision) > 56 {
			return nil, false
		}
		if (o.StrategicMerge != nil) == (o.JSONPatch != nil) {
			return nil, false
		}
		if o.StrategicMerge != nil && !strings.HasPrefix(strings.TrimSpace(string(o.StrategicMerge.Raw)), "{") {
			return nil, false
		}
		if o.JSONPatch != nil && (len(o.JSONPatch) < 1 || len(o.JSONPatch) > 32) {
			return nil, false
		}
		for _, op := range o.JSONPatch {
			takesFrom := op.Op == "move" || op.Op == "copy"
			if !slices.Contains(jsonPatchOps, op.Op) || len(op.Path) > 1024 || !jsonPointer.MatchString(op.Path) || takesFrom != (op.From != nil) {
				return nil, false
			}
			if op.From != nil && (len(*op.From) > 1024 || !jsonPointer.MatchString(*op.From)) {
				return nil, false
			}
		}
	}
	return overlays, true
}

// namesAField matches a refusal that says which field is wrong, as the API
// server shows it to the user: spec.version, spec.overlays[0], ….
var namesAField = regexp.MustCompile(`\bspec\.[a-zA-Z]+`)

func requireNamesAField(t *testing.T, err error) {
	t.Helper()
	if !namesAField.MatchString(err.Error()) {
		t.Fatalf("the refusal names no field: %v", err)
	}
}

// requireRenders renders an accepted new MeshInstall as the reconciler
// does (its plan's revisions with spec.overlays), on nodes that can and
// cannot run native sidecars.
func requireRenders(t *testing.T, mi *meshv1alpha1.MeshInstall) {
	t.Helper()
	plan, err := revision.Decide(mi, revision.Observed{})
	if err != nil {
		t.Fatalf("accepted, but the planner refuses it: %v", err)
	}
	for _, classic := range []bool{false, true} {
		var err error
		fuzzbudget.Call(t, "rendering", func() {
			_, _, err = revision.Render(mi, plan, plan.Active, render.CertificateAuthorityOf(mi), classic)
		})
		if err != nil {
			t.Fatalf("accepted, but it does not render (nodes without native sidecars: %t): %v", classic, err)
		}
	}
}

// requireAcceptedAfterStoring sends an accepted MeshInstall through JSON,
// as the API server stores it and the webhook later reads it, and validates
// it again.
func requireAcceptedAfterStoring(t *testing.T, mi *meshv1alpha1.MeshInstall) {
	t.Helper()
	b, err := json.Marshal(mi)
	if err != nil {
		t.Fatalf("an accepted MeshInstall does not encode: %v", err)
	}
	stored := &meshv1alpha1.MeshInstall{}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(b, stored); err != nil {
		t.Fatalf("an accepted MeshInstall does not decode: %v", err)
	}
	fuzzbudget.Call(t, "ValidateCreate", func() { err = ValidateCreate(stored, nil, Namespaces{}) })
	if err != nil {
		t.Fatalf("accepted, then refused once stored: %v\n%s", err, b)
	}
}

// upgradeRulesAllow says whether Istio's upgrade rules allow a running mesh
// to move from one version to another with the strategy.
func upgradeRulesAllow(from, to string, canary bool) bool {
	fromV, err := version.Parse(from)
	if err != nil {
		panic(fmt.Sprintf("the running version %q is unsupported", from))
	}
	toV, err := version.Parse(to)
	switch {
	case err != nil:
		return false
	case toV.Compare(fromV) == 0:
		return true
	case canary:
		return version.CheckCanary(fromV, toV) == nil
	default:
		return version.CheckInPlace(fromV, toV) == nil
	}
}
