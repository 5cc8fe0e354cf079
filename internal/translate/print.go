package translate

import (
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/yaml"
)

// Print writes the MeshInstall as YAML after a comment naming where it
// was translated from and listing every setting it does not express and
// why, so that it can be reviewed and applied as it is.
func Print(w io.Writer, r Result, source string) error {
	doc := map[string]any{}
	raw, err := yaml.Marshal(r.MeshInstall)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return err
	}
	// What the cluster fills in is not the user's to write.
	delete(doc, "status")
	if meta, ok := doc["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	pruneEmpty(doc)
	out, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# MeshInstall translated by kubectl meshkeeper translate from %s.\n", source)
	if len(r.Gaps) == 0 {
		b.WriteString("# Every setting read was expressed.\n")
	} else {
		fmt.Fprintf(&b, "# Not expressed (%d); review each before applying:\n", len(r.Gaps))
		for _, g := range r.Gaps {
			fmt.Fprintf(&b, "#   - %s: %s\n", oneLine(g.Setting), oneLine(g.Why))
		}
	}
	b.WriteString("# Applying it beside the running installation stalls (ForeignIstioInstallation): the live migration\n")
	b.WriteString("# is not built yet; see the README section \"Migrating from istioctl, Helm or Sail\".\n")
	b.Write(out)
	_, err = io.WriteString(w, b.String())
	return err
}

// oneLine keeps a value from breaking out of its comment line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// pruneEmpty drops the empty objects omitempty leaves of unset structs
// (cluster: {}), so that the output shows only what was translated.
func pruneEmpty(m map[string]any) {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			pruneEmpty(sub)
			if len(sub) == 0 && k != "resources" {
				delete(m, k)
			}
		}
	}
}
