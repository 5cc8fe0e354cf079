#!/usr/bin/env bash
# Builds kwok and kwokctl into a cache outside the checkout, in one go build
# (their shared packages compile once), from a throwaway module that pins
# kwok's version and takes the modules it shares with meshkeeper at
# meshkeeper's versions (hack/toolmod.sh): kwok v0.8.0 asks for k8s.io
# v0.36, the local Kubernetes and the operator use v0.37, and one version
# compiles once.
#
# Usage: hack/build-kwok.sh <kwok-version> <output-dir>
set -euo pipefail
. "$(dirname "$0")/quietly.sh"
. "$(dirname "$0")/toolmod.sh"

VERSION=${1:?kwok version, e.g. v0.8.0}
OUT=${2:?output directory}
[[ -x $OUT/kwok && -x $OUT/kwokctl ]] && exit 0

build() {
  mkdir -p "$OUT"
  work=$(mktemp -d "${OUT%/}.work.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  cd "$work"
  # kwok's own go directive: it sets the binaries' GODEBUG defaults, as go
  # install of kwok would.
  gomod=$(go mod download -json "sigs.k8s.io/kwok@$VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  printf 'module meshkeeper.dev/kwok-tools\n\ngo %s\n\nrequire sigs.k8s.io/kwok %s\n' "$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")" "$VERSION" >go.mod
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "sigs.k8s.io/kwok/cmd/kwok"\n\t_ "sigs.k8s.io/kwok/cmd/kwokctl"\n)\n' >tools.go
  require_repo_versions
  GOFLAGS=-mod=mod go mod tidy
  # kwokctl --version reads kwok's module version from the build info.
  CGO_ENABLED=0 go build -ldflags "-s -w" -o "$work/bin/" sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl
  mv "$work/bin/kwok" "$work/bin/kwokctl" "$OUT/"
}
quietly kwok "kwok (kwok, kwokctl $VERSION)" build
