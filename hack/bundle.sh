#!/usr/bin/env bash
# Makes the operator bundle with operator-sdk's own flow, as its Makefile does:
#   operator-sdk generate kustomize manifests   (spec/status descriptors of the
#                                                base CSV, from the API's markers)
#   kustomize build config/manifests | operator-sdk generate bundle
# into bundle/ and bundle.Dockerfile. The image is set in a copy of config/, so
# the checkout is not edited. A CSV that differs only in its createdAt stamp is
# left as it was: `make bundle` twice changes nothing.
#
# Usage: hack/bundle.sh <version> <operator image> <channels> <default channel>
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:?bundle version, e.g. 0.2.0}
image=${2:?operator image}
channels=${3:?channels, e.g. alpha}
default_channel=${4:?default channel}
: "${OPERATOR_SDK:?path to operator-sdk}" "${KUSTOMIZE:?path to kustomize}"

csv=bundle/manifests/meshkeeper.clusterserviceversion.yaml
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[[ -f $csv ]] && cp "$csv" "$work/previous.csv.yaml"

"$OPERATOR_SDK" generate kustomize manifests -q --interactive=false

cp -r config "$work/config"
(cd "$work/config/manager" && "$KUSTOMIZE" edit set image "controller=$image")
sed -i "s|^\(    containerImage:\).*|\1 $image|" "$work/config/manifests/bases/meshkeeper.clusterserviceversion.yaml"
"$KUSTOMIZE" build "$work/config/manifests" |
  "$OPERATOR_SDK" generate bundle -q --overwrite --version "$version" \
    --channels="$channels" --default-channel="$default_channel"

if [[ -f $work/previous.csv.yaml ]] &&
  diff -q -I '^    createdAt: ' "$work/previous.csv.yaml" "$csv" >/dev/null; then
  cp "$work/previous.csv.yaml" "$csv"
fi
