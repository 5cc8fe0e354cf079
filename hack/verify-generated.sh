#!/usr/bin/env bash
# Fails when checked-in generated files differ from what the generators produce
# now. Works in a dirty tree too: it compares before/after regeneration rather
# than against git's index. The bundle counts as generated: it is made from
# config/ (and the API's descriptors) by `make bundle`; so does the Helm
# chart, made from config/ by `make chart`.
set -euo pipefail
cd "$(dirname "$0")/.."

generated=(config/crd/bases config/rbac/role.yaml config/webhook/manifests.yaml internal/render/crds/istio.gen.yaml
  config/manifests/bases bundle bundle.Dockerfile charts/meshkeeper)
mapfile -t deepcopy < <(git ls-files -co --exclude-standard '*zz_generated*.go')
generated+=("${deepcopy[@]}")

snapshot=$(mktemp -d)
trap 'rm -rf "$snapshot"' EXIT
for p in "${generated[@]}"; do
  [[ -e $p ]] && mkdir -p "$snapshot/$(dirname "$p")" && cp -r "$p" "$snapshot/$p"
done

make -s manifests generate bundle-manifests chart >/dev/null 2>&1 || make -s manifests generate bundle-manifests chart >/dev/null

stale=0
for p in "${generated[@]}"; do
  [[ ! -e $p && ! -e $snapshot/$p ]] && continue
  if ! diff -r "$snapshot/$p" "$p" >/dev/null 2>&1; then
    echo "stale generated file: $p" >&2
    stale=1
  fi
done
if [[ $stale == 1 ]]; then
  echo "generated code was stale and has been regenerated; review and commit it" >&2
  exit 1
fi
echo "generated code is fresh"
