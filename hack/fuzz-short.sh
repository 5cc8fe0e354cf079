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
# Usage: hack/fuzz-short.sh <time per fuzzer> [go test flags...]
set -euo pipefail

fuzztime=${1:?time per fuzzer, e.g. 12s}
shift
fuzzers=(
  ./webhooks:FuzzInjectHandler
  ./internal/admission:FuzzMeshInstallValidator
  ./webhooks:FuzzRevisionSource
)
# Each run starts from the seeds (f.Add and testdata/fuzz) in a corpus
# directory of its own. Go keeps the inputs a fuzzer found in its build cache
# and, before fuzzing, re-runs all of them ("gathering baseline coverage"):
# that corpus grows with every run on a machine, and with a few hundred
# inputs the whole short run went on re-running them (0 executions in 15s).
# A longer run (FUZZTIME) keeps using Go's cache, as go test does.
log=$(mktemp)
corpus=$(mktemp -d)
trap 'rm -rf "$log" "$corpus"' EXIT
for f in "${fuzzers[@]}"; do
  pkg=${f%%:*} name=${f##*:}
  if ! go test -run='^$' -fuzz="^$name\$" -fuzztime="$fuzztime" -fuzzminimizetime=0 "$@" "$pkg" \
    -args -test.fuzzcachedir="$corpus/$name" >"$log" 2>&1; then
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
