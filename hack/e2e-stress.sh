#!/usr/bin/env bash
# Runs the end-to-end test(s) matching TEST (a go test -run regexp) N times
# in a row, COPIES processes at once in each round (as the suite's clusters
# share the machine), and stops at the first round with a failure, naming
# the failed tests, their logs and the artifacts folders they printed.
# Run through `make e2e-stress`, which sets the tools' environment.
set -uo pipefail

TEST=${TEST:?set TEST to a go test -run regexp naming the e2e test(s), e.g. TEST=TestCanaryUpgrade}
N=${N:-10}
COPIES=${COPIES:-1}
PARALLEL=${E2E_PARALLEL:-5}
out=${E2E_STRESS_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/meshkeeper-e2e-stress-XXXXXX")}
mkdir -p "$out"
export E2E_ARTIFACTS_DIR=${E2E_ARTIFACTS_DIR:-$out/artifacts}

root=$(cd "$(dirname "$0")/.." && pwd)
bin=$out/e2e.test
echo "e2e-stress: building the e2e tests into $bin"
(cd "$root" && go test -c -o "$bin" ./test/e2e/) || exit 1

pids=()
# Ctrl-C reaches the test processes too (same process group); each deletes
# its clusters on SIGINT. Wait for them so none is left behind.
trap 'kill -INT "${pids[@]}" 2>/dev/null; wait; exit 130' INT TERM

echo "e2e-stress: $TEST, $N rounds of $COPIES, E2E_PARALLEL $PARALLEL; logs in $out, artifacts of failures in $E2E_ARTIFACTS_DIR"
total_start=$(date +%s)
for ((i = 1; i <= N; i++)); do
	start=$(date +%s)
	pids=()
	for ((c = 1; c <= COPIES; c++)); do
		(cd "$root/test/e2e" && E2E_PARALLEL=$PARALLEL exec "$bin" -test.run "$TEST" -test.v -test.count 1 -test.parallel 64 -test.timeout 30m) \
			>"$out/run-$i-$c.log" 2>&1 &
		pids+=($!)
	done
	failed=()
	for ((c = 1; c <= COPIES; c++)); do
		wait "${pids[c - 1]}" || failed+=("$out/run-$i-$c.log")
	done
	tests=$(cat "$out"/run-"$i"-*.log | grep -c -- '^--- PASS')
	echo "e2e-stress: round $i/$N: $tests tests passed, ${#failed[@]} of $COPIES processes failed, $(($(date +%s) - start))s"
	if ((${#failed[@]} > 0)); then
		for log in "${failed[@]}"; do
			echo "--- failed: $log"
			grep -h -E -- '^\s*--- FAIL|artifacts of the failed test' "$log" | sed 's/^/    /'
			grep -q -- '--- FAIL' "$log" || tail -20 "$log" | sed 's/^/    /'
		done
		echo "e2e-stress: FAILED in round $i of $N ($(($(date +%s) - total_start))s)"
		exit 1
	fi
done
echo "e2e-stress: $TEST passed $((N * COPIES)) times in $N rounds ($(($(date +%s) - total_start))s)"
