#!/usr/bin/env bash
# Copies Istio's CRDs from the istio.io/api module pinned in go.mod into
# internal/render/crds/istio.gen.yaml, which the renderer embeds. Run through
# `make istio-crds` (also part of `make manifests`, so verify-generated
# notices when go.mod moves istio.io/api and the copy is stale).
set -euo pipefail
cd "$(dirname "$0")/.."

module=istio.io/api
src=kubernetes/customresourcedefinitions.gen.yaml
out=internal/render/crds/istio.gen.yaml

go mod download "$module"
version=$(go list -m -f '{{.Version}}' "$module")
dir=$(go list -m -f '{{.Dir}}' "$module")
[[ -n $version && -f $dir/$src ]] || { echo "cannot find $src of $module in the module cache" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
{
  echo "# Istio's CustomResourceDefinitions, copied by 'make istio-crds' (hack/istio-crds.sh)"
  echo "# from $module@$version $src. DO NOT EDIT."
  cat "$dir/$src"
} >"$out.tmp"
mv "$out.tmp" "$out"
