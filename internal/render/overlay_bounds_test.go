package render

import (
	"fmt"
	"strings"
	"testing"

	meshv1alpha1 "github.com/meshkeeper/meshkeeper/api/v1alpha1"
)

// TestApplyOverlaysBoundsCopies: copy operations that copy a subtree into
// itself double the object each time; an overlay of them is refused, naming
// the overlay, once the copies exceed maxCopiedBytes, rather than applied
// until memory runs out (32 such operations, the most an overlay holds,
// would ask for terabytes).
func TestApplyOverlaysBoundsCopies(t *testing.T) {
	var ops []meshv1alpha1.JSONPatchOperation
	for i := range 8 { // 8 KiB × 2^8 = 2 MiB: past the limit, yet quick without it
		from := "/spec/template"
		ops = append(ops, meshv1alpha1.JSONPatchOperation{Op: meshv1alpha1.JSONPatchCopy, From: &from, Path: fmt.Sprintf("/spec/template/spec/copy%d", i)})
	}
	_, err := ApplyOverlays([]meshv1alpha1.Overlay{jsonPatched("Deployment", "istiod", ops...)}, canaryObjects(t))
	if err == nil || !strings.Contains(err.Error(), "spec.overlays[0]") || !strings.Contains(err.Error(), "accumulated size increase of copy") {
		t.Fatalf("got %v, want spec.overlays[0] refused for copying more than %d bytes", err, maxCopiedBytes)
	}
}
