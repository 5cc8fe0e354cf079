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
  ./webhooks:FuzzMeshInstallValidator
  ./webhooks:FuzzRevisionSource
)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for f in "${fuzzers[@]}"; do
  pkg=${f%%:*} name=${f##*:}
  if ! go test -run='^$' -fuzz="^$name\$" -fuzztime="$fuzztime" -fuzzminimizetime=0 "$@" "$pkg" >"$log" 2>&1; then
    cat "$log"
    echo "==> $name FAILED (its output is above)"
    exit 1
  fi
  # The last status line: "fuzz: elapsed: 12s, execs: 15213 (1235/sec), new interesting: 200 (total: 228)".
  last=$(grep -E '^fuzz: elapsed: .*execs: [0-9]+' "$log" | tail -n 1 || true)
  execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
  found=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
  echo "==> $name: ${execs:-0} executions in $fuzztime, ${found:-0} new interesting inputs"
done
