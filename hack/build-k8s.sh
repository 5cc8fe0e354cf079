#!/usr/bin/env bash
# Builds a real Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler) and etcd from Go modules into a cache outside the checkout.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod requires every staging
# module at v0.0.0. We generate a throwaway tools module whose replace list is
# derived from that go.mod, so a version bump is one variable.
#
# Usage: hack/build-k8s.sh <k8s-version> <etcd-version> <output-dir> [binary...]
# The binaries default to etcd, kube-apiserver, kube-controller-manager and
# kube-scheduler; kubectl is built on request (make kubectl). Every build uses
# the same generated module, so a later one reuses the earlier one's compiled
# packages from the Go build cache. Only the binaries missing from the
# output directory are built, in one go build. It prints one line when the
# build starts and one when it ends (hack/quietly.sh); the compiler's output
# goes to a log.
set -euo pipefail
. "$(dirname "$0")/quietly.sh"
. "$(dirname "$0")/toolmod.sh"

K8S_VERSION=${1:?kubernetes version, e.g. 1.37.2}
ETCD_VERSION=${2:?etcd version, e.g. 3.7.0}
OUT=${3:?output directory}
shift 3

want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=(etcd kube-apiserver kube-controller-manager kube-scheduler)
missing=()
for b in "${want[@]}"; do [[ -x "$OUT/$b" ]] || missing+=("$b"); done
[[ ${#missing[@]} -gt 0 ]] || exit 0
want=("${missing[@]}")
pkgs=()
for b in "${want[@]}"; do
  case $b in
    etcd) pkgs+=(go.etcd.io/etcd/server/v3) ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl) pkgs+=("k8s.io/kubernetes/cmd/$b") ;;
    *) echo "build-k8s.sh: unknown binary $b" >&2; exit 2 ;;
  esac
done

build() {
  mkdir -p "$OUT"
  work=$(mktemp -d "${OUT%/}.work.XXXXXX")
  trap 'rm -rf "$work"' EXIT

  staging_minor="0.${K8S_VERSION#*.}" # 1.37.2 -> 0.37.2
  gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f "$gomod" ]] || { echo "could not download k8s.io/kubernetes@v$K8S_VERSION" >&2; exit 1; }

  {
    echo "module meshkeeper.dev/k8s-tools"
    echo
    echo "go $(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes v$K8S_VERSION"
    echo "	go.etcd.io/etcd/server/v3 v$ETCD_VERSION"
    echo ")"
    echo
    echo "replace ("
    grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v v="v$staging_minor" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >"$work/go.mod"

  cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO

  cd "$work"
  echo "resolving modules for kubernetes v$K8S_VERSION, etcd v$ETCD_VERSION"
  # k8s.io/api, apimachinery, client-go, ... at meshkeeper's versions, to
  # compile them once (hack/toolmod.sh).
  require_repo_versions
  GOFLAGS=-mod=mod go mod tidy
  v=k8s.io/component-base/version
  minor=${K8S_VERSION#*.}; minor=${minor%%.*}
  ldflags="-s -w -X $v.gitVersion=v$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  start=$SECONDS
  echo "building ${want[*]} (one go build, so compilation and linking overlap)"
  # The -X flags only touch Kubernetes' version package; etcd ignores them.
  # No -trimpath: the operator, its tests and the demo, which find the
  # repository by their source paths, are built without it, and a build
  # cache entry is shared only between builds of the same flags.
  CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$work/bin/" "${pkgs[@]}"
  for n in v3 server; do [[ -f "$work/bin/$n" ]] && mv "$work/bin/$n" "$work/bin/etcd"; done
  for b in "${want[@]}"; do mv "$work/bin/$b" "$OUT/$b"; done
  echo "built in $((SECONDS - start))s"
}
list=$(printf '%s, ' "${want[@]}")
quietly kubernetes "Kubernetes v$K8S_VERSION (${list%, })" build
