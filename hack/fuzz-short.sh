#!/usr/bin/env bash
# Runs each fuzzer for a short while, one after another (go test fuzzes one
# target per package per run), and prints how many inputs each one tried.
#
# Minimization is off (-fuzzminimizetime=0): with it on, each input that
# finds new coverage is first shrunk for up to a minute, on the worker, with
# no progress shown ("execs: 39 (0/sec)") and no new inputs tried. In a run
# of seconds the first such input took the whole run. A failing input is
# still written to testdata/fuzz, as it was found; shrink it with a longer
# run of that fuzzer if it is large.
#
# Each package's instrumented test binary (go test -c -fuzz: every
# dependency compiled with coverage instrumentation, minutes on a cold
# cache) is built once, into FUZZ_BIN_DIR when set, and run directly for
# each of its fuzzers; `make test` builds them (--build) beside the tool
# builds and runs them after the unit suites.
#
# Usage: hack/fuzz-short.sh <time per fuzzer> [test flags, e.g. -parallel=1]
#        hack/fuzz-short.sh --build      (only build the test binaries into FUZZ_BIN_DIR)
set -euo pipefail

fuzzers=(
  ./webhooks:FuzzInjectHandler
  ./internal/admission:FuzzMeshInstallValidator
  ./webhooks:FuzzRevisionSource
)
build_only=false
if [[ ${1:-} == --build ]]; then
  build_only=true
  [[ -n ${FUZZ_BIN_DIR:-} ]] || { echo "fuzz-short.sh --build: set FUZZ_BIN_DIR" >&2; exit 2; }
else
  fuzztime=${1:?time per fuzzer, e.g. 12s}
  shift
fi
log=$(mktemp)
corpus=$(mktemp -d)
bindir=${FUZZ_BIN_DIR:-$corpus/bin}
trap 'rm -rf "$log" "$corpus"' EXIT
mkdir -p "$bindir"
binary() { echo "$bindir/$(tr -c 'a-zA-Z0-9\n' _ <<<"${1#./}").test"; }

# Build each package's binary once (unless an earlier --build did).
for pkg in $(printf '%s\n' "${fuzzers[@]%%:*}" | sort -u); do
  bin=$(binary "$pkg")
  if [[ $build_only == true || ! -x $bin ]]; then
    go test -c -fuzz=. -o "$bin" "$pkg"
  fi
done
$build_only && exit 0

# go test's flags, as the test binary takes them (-parallel=1 is -test.parallel=1).
flags=()
for a in "$@"; do
  case $a in -test.*) flags+=("$a") ;; -*) flags+=("-test.${a#-}") ;; *) flags+=("$a") ;; esac
done
# Each run starts from the seeds (f.Add and testdata/fuzz, read from the
# package's directory) in a corpus directory of its own. Go keeps the inputs
# a fuzzer found in its build cache and, before fuzzing, re-runs all of them
# ("gathering baseline coverage"): that corpus grows with every run on a
# machine, and with a few hundred inputs the whole short run went on
# re-running them (0 executions in 15s).
for f in "${fuzzers[@]}"; do
  pkg=${f%%:*} name=${f##*:}
  if ! (cd "$pkg" && "$(binary "$pkg")" -test.run='^$' -test.fuzz="^$name\$" -test.fuzztime="$fuzztime" \
    -test.fuzzminimizetime=0 -test.fuzzcachedir="$corpus/$name" "${flags[@]}") >"$log" 2>&1; then
    cat "$log"
    echo "==> $name FAILED (its output is above)"
    exit 1
  fi
  # The last status line: "fuzz: elapsed: 12s, execs: 15213 (1235/sec), new interesting: 200 (total: 228)".
  last=$(grep -E '^fuzz: elapsed: .*execs: [0-9]+' "$log" | tail -n 1 || true)
  execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
  found=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
  echo "==> $name: ${execs:-0} executions in $fuzztime, ${found:-0} new interesting inputs"
  # A fuzzer that barely ran checked nothing: say so rather than pass.
  if (( ${execs:-0} < 100 )); then
    cat "$log"
    echo "==> $name made ${execs:-0} executions in $fuzztime: too few to check anything (its output is above)"
    exit 1
  fi
done
