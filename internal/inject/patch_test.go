package inject

import (
	"encoding/json"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshkeeper/meshkeeper/internal/inject/podpatch"
)

// applyPatch applies a JSON patch to the pod's JSON and decodes the result.
func applyPatch(t *testing.T, doc []byte, patch []byte) *corev1.Pod {
	t.Helper()
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("invalid patch: %v\n%s", err, patch)
	}
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("patch does not apply: %v\n%s", err, patch)
	}
	pod := &corev1.Pod{}
	if err := json.Unmarshal(out, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPatchReproducesGoldens applies the patch of every golden case to the
// input pod's JSON: the result must be the injected pod. The injected pods
// hold the shared values registered with podpatch (shared.go), so their
// shared encodings are checked too.
func TestPatchReproducesGoldens(t *testing.T) {
	for _, gc := range goldenCases() {
		t.Run(gc.name, func(t *testing.T) {
			in := readPod(t, gc.inputFile())
			out, err := Inject(in, gc.configFor(), gc.req)
			if err != nil {
				t.Fatal(err)
			}
			patch, err := podpatch.CreatePatch(in, out)
			if err != nil {
				t.Fatal(err)
			}
			got := applyPatch(t, mustJSON(t, in), patch)
			if g, w := mustJSON(t, got), mustJSON(t, out); string(g) != string(w) {
				t.Errorf("patched pod differs from the injected pod:\n%s", lineDiff(string(podYAML(t, out)), string(podYAML(t, got))))
			}
		})
	}
}
