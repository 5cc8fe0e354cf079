#!/usr/bin/env bash
# Sourced by hack/build-*.sh: helpers for the throwaway modules the tools are
# built from.

# require_repo_versions makes the module in the current directory require
# every module meshkeeper's go.mod requires, at meshkeeper's version (Go's
# minimal version selection keeps the newer of the two; go mod tidy then
# drops what the tool does not use). The modules a tool shares with
# meshkeeper (k8s.io/api, apimachinery, client-go and their dependencies)
# are then the same versions as the operator's, and with the same build
# settings (CGO_ENABLED=0, no -trimpath) their packages compile to the same
# Go build cache entries: a first make demo or make test compiles them once
# for the operator, the local Kubernetes and kwok, not once each.
toolmod_repo_gomod=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/go.mod

require_repo_versions() {
  local gomod=$toolmod_repo_gomod
  # shellcheck disable=SC2046 # one -require flag per word
  go mod edit $(awk '/^require \($/ {b = 1; next} b && /^\)/ {b = 0} b {print "-require=" $1 "@" $2}
    /^require [^(]/ {print "-require=" $2 "@" $3}' "$gomod")
}
