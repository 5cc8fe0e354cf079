#!/usr/bin/env bash
# Builds meshkeeper's file-based catalog (FBC) with opm: the package, the
# channel and one bundle per version, each version's channel entry replacing
# the one before (the upgrade edge OLM follows).
#
# The bundles are the released ones, recorded in catalog/releases/ by
# `make bundle-release` (opm render of that version's bundle), and the
# checked-in bundle/ when its version is not released yet. `opm render` of a
# bundle directory embeds the manifests (olm.bundle.object properties, no
# image), so OLM can install from the catalog alone, without pulling a bundle
# image; `make catalog-build` is for catalogs that reference pushed images.
#
# Usage: hack/catalog.sh <out dir> [up-to version]
#   The catalog goes to <out dir>/meshkeeper/index.yaml and is validated.
#   With up-to, versions after it are left out (the e2e suite installs the
#   previous version first, then upgrades).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OPM:?path to opm}"

out=${1:?output directory}
up_to=${2:-}
package=meshkeeper
channel=${CHANNEL:-alpha}

current=$(sed -n 's/^  version: \(.*\)$/\1/p' bundle/manifests/$package.clusterserviceversion.yaml)
[[ -n $current ]] || { echo "catalog.sh: no spec.version in bundle/'s CSV" >&2; exit 1; }

declare -A source
for f in catalog/releases/$package.v*.yaml; do
  [[ -e $f ]] || continue
  v=${f#catalog/releases/$package.v}
  source[${v%.yaml}]=$f
done
[[ -n ${source[$current]:-} ]] || source[$current]=bundle
mapfile -t versions < <(printf '%s\n' "${!source[@]}" | sort -V)

rm -rf "$out/$package"
mkdir -p "$out/$package"
index=$out/$package/index.yaml
"$OPM" init "$package" --default-channel="$channel" --icon=config/manifests/icon.svg -o yaml >"$index"
entries=()
previous=
for v in "${versions[@]}"; do
  if [[ -n $up_to ]] && [[ $(printf '%s\n%s\n' "$v" "$up_to" | sort -V | tail -n1) != "$up_to" ]]; then
    continue
  fi
  if [[ ${source[$v]} == bundle ]]; then
    "$OPM" render ./bundle -o yaml >>"$index"
  else
    cat "${source[$v]}" >>"$index"
  fi
  entries+=("- name: $package.v$v${previous:+
  replaces: $package.v$previous}")
  previous=$v
done
{
  echo "---"
  echo "schema: olm.channel"
  echo "package: $package"
  echo "name: $channel"
  echo "entries:"
  printf '%s\n' "${entries[@]}"
} >>"$index"
"$OPM" validate "$out"
echo "catalog $out: $package, channel $channel: ${versions[*]}${up_to:+ (up to $up_to)}"
