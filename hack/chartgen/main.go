// Command chartgen writes meshkeeper's Helm chart (charts/meshkeeper) from
// config/: kustomize's build of config/default and of its variants (see
// internal/chartgen). `make chart` runs it; `make test` fails when the
// checked-in chart differs from what it writes.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/meshkeeper/meshkeeper/internal/chartgen"
)

func main() {
	kustomize := flag.String("kustomize", "kustomize", "The kustomize binary.")
	root := flag.String("root", ".", "The repository, whose config/ the chart is made from.")
	out := flag.String("out", "charts/meshkeeper", "The chart's directory, replaced whole.")
	version := flag.String("version", "", "The chart's version.")
	appVersion := flag.String("app-version", "", "The chart's appVersion: the manager image's default tag.")
	flag.Parse()
	if err := run(*kustomize, *root, *out, chartgen.Meta{Version: *version, AppVersion: *appVersion}); err != nil {
		fmt.Fprintln(os.Stderr, "chartgen:", err)
		os.Exit(1)
	}
}

func run(kustomize, root, out string, meta chartgen.Meta) error {
	if meta.Version == "" || meta.AppVersion == "" {
		return fmt.Errorf("-version and -app-version are required")
	}
	builds, err := chartgen.BuildAll(kustomize, root)
	if err != nil {
		return err
	}
	plan, err := chartgen.MakePlan(builds)
	if err != nil {
		return err
	}
	files, err := chartgen.Generate(plan, meta)
	if err != nil {
		return err
	}
	return write(out, files)
}

// write replaces dir by files, so that a file the chart no longer has goes.
func write(dir string, files map[string][]byte) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}
