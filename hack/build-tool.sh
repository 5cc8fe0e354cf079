#!/usr/bin/env bash
# Builds one of the operator-framework tools (operator-sdk, opm, OLM v0's olm and
# catalog), cert-manager's controller and cainjector, or Istio's istiod
# (pilot-discovery), proxy agent (pilot-agent) and istioctl, or Prometheus's
# promtool from the Go module proxy into a cache outside the checkout.
#
# `go install module/cmd@version` cannot be used here: the proxy refuses these
# modules' version lists, which go install reads. Each tool instead has a small
# module of its own under hack/tools/<tool> (go.mod pins the version, go.sum
# the sums); one module per tool, because they sit on different k8s.io minors.
#
# Usage: hack/build-tool.sh <tool> <output-dir> [binary...]
# The binaries default to all of the tool's; make demo asks for Istio's
# pilot-discovery and pilot-agent only. It prints one line when a build
# starts and one when it ends (hack/quietly.sh); the compiler's output goes
# to a log. Binaries are linked with -s -w (no symbol table nor DWARF: less
# to link; stack traces keep their function names).
set -euo pipefail

tool=${1:?tool: operator-sdk, opm, olm, cert-manager, istio or promtool}
OUT=${2:?output directory}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/quietly.sh"
dir=$here/tools/$tool
[[ -f $dir/go.mod ]] || { echo "build-tool.sh: no module for $tool in $dir" >&2; exit 2; }

version() { (cd "$dir" && go list -m -f '{{.Version}}' "$1"); }
export CGO_ENABLED=0
case $tool in
  operator-sdk)
    m=github.com/operator-framework/operator-sdk
    v=$(version $m)
    bins=(operator-sdk)
    pkgs=($m/cmd/operator-sdk)
    tags=containers_image_openpgp
    ldflags="-X $m/internal/version.Version=$v -X $m/internal/version.GitVersion=$v -X $m/internal/version.ImageVersion=$v -X $m/internal/version.KubernetesVersion=$(version k8s.io/api)"
    ;;
  opm)
    m=github.com/operator-framework/operator-registry
    v=$(version $m)
    bins=(opm bundle-validate)
    pkgs=($m/cmd/opm ./bundle-validate)
    tags=json1,containers_image_openpgp
    ldflags="-X $m/cmd/opm/version.opmVersion=$v"
    ;;
  olm)
    m=github.com/operator-framework/operator-lifecycle-manager
    v=$(version $m)
    bins=(olm catalog)
    pkgs=($m/cmd/olm $m/cmd/catalog)
    tags=json1
    ldflags="-X $m/pkg/version.OLMVersion=$v"
    ;;
  cert-manager)
    # cert-manager's own binaries are nested modules the proxy cannot serve;
    # these are our small mains over its packages (SelfSigned and CA issuers).
    m=github.com/cert-manager/cert-manager
    v=$(version $m)
    bins=(cert-manager-controller cert-manager-cainjector)
    pkgs=(./controller ./cainjector)
    tags=""
    ldflags="-X $m/pkg/util.AppVersion=$v"
    ;;
  istio)
    # istio.io/istio publishes no semver module versions: go.mod pins a
    # pseudo-version of its main branch. The version stamps are the ones Istio's
    # own build sets (common/scripts/report_build_info.sh): the release in its
    # VERSION file with "-dev" (what its Makefile uses for an untagged build) and
    # the commit the pseudo-version names, so `istioctl version` tells the truth.
    m=istio.io/istio
    v=$(version $m)
    (cd "$dir" && go mod download $m)
    src=$(cd "$dir" && go list -m -f '{{.Dir}}' $m)
    commit=${v##*-}
    bins=(pilot-discovery pilot-agent istioctl)
    pkgs=($m/pilot/cmd/pilot-discovery $m/pilot/cmd/pilot-agent $m/istioctl/cmd/istioctl)
    # Istio's own build tags (Makefile.core.mk) without vtprotobuf, which
    # adds generated fast-path marshalling code and changes no behaviour:
    # disable_pgv leaves out the protoc-gen-validate methods, a third of
    # go-control-plane's source, which Istio never calls.
    tags=disable_pgv
    p=$m/pkg/version
    ldflags="-X $p.buildVersion=$(cat "$src/VERSION")-dev -X $p.buildGitRevision=$commit -X $p.buildStatus=Clean -X $p.buildTag=$v -X $p.buildOS=$(go env GOOS) -X $p.buildArch=$(go env GOARCH)"
    ;;
  promtool)
    # Prometheus's rule checker and unit tester (make test-alerts). The
    # version stamps are the ones Prometheus's own build sets (.promu.yml).
    # remove_all_sd is Prometheus's own build tag (plugins/) that leaves out
    # the service discoveries and their cloud SDKs: rules and their tests
    # need none, and it halves promtool's build (3m51s of CPU instead of
    # 8m09s, measured cold).
    m=github.com/prometheus/prometheus
    v=$(version $m)
    bins=(promtool)
    pkgs=($m/cmd/promtool)
    tags=remove_all_sd
    p=github.com/prometheus/common/version
    ldflags="-X $p.Version=${v#v} -X $p.Branch=HEAD -X $p.Revision=$v"
    ;;
  *) echo "build-tool.sh: unknown tool $tool" >&2; exit 2 ;;
esac

# The cache is keyed by the tool's version (in the directory name) and, for our
# own programs in the module (bundle-validate), by a hash of their source.
shopt -s nullglob
stamp=$(cat "$dir/go.sum" "$dir"/*/*.go | sha256sum | cut -c1-16)
want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=("${bins[@]}")
if [[ $(cat "$OUT/.source" 2>/dev/null) != "$stamp" ]]; then
  for b in "${bins[@]}"; do rm -f "$OUT/$b"; done # built from other sources
fi
todo=()
for i in "${!bins[@]}"; do
  for w in "${want[@]}"; do
    [[ $w == "${bins[$i]}" && ! -x $OUT/${bins[$i]} ]] && todo+=("$i")
  done
done
[[ ${#todo[@]} -gt 0 ]] || exit 0

build() {
  mkdir -p "$OUT"
  echo "$stamp" >"$OUT/.source"
  cd "$dir"
  for i in "${todo[@]}"; do
    go build -trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$OUT/${bins[$i]}.tmp" "${pkgs[$i]}"
    mv "$OUT/${bins[$i]}.tmp" "$OUT/${bins[$i]}"
  done
}
names=$(for i in "${todo[@]}"; do printf '%s, ' "${bins[$i]}"; done)
quietly "$tool" "$tool (${names%, }; $m $v)" build
