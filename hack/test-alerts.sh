#!/usr/bin/env bash
# Checks the alerting rules of config/prometheus/alerts.yaml and runs their
# unit tests (config/prometheus/tests/*.yaml) with Prometheus's own promtool.
# promtool reads plain rule files: the PrometheusRule's spec (its groups) is
# cut out into one, meshkeeper.rules.yaml, which the tests name. spec must
# be the PrometheusRule's last key.
#
# Usage: hack/test-alerts.sh <promtool>
set -euo pipefail
cd "$(dirname "$0")/.."
promtool=${1:?path to promtool}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Everything under "spec:", one indentation level less.
sed -n '/^spec:$/,$p' config/prometheus/alerts.yaml | sed '1d; s/^  //' >"$work/meshkeeper.rules.yaml"
grep -q '^groups:' "$work/meshkeeper.rules.yaml" || { echo "test-alerts.sh: no spec.groups in config/prometheus/alerts.yaml" >&2; exit 1; }
cp config/prometheus/tests/*.yaml "$work/"

# Every alert is tested firing and not firing: the tests name it beside
# expected alerts once, and beside none once.
for alert in $(sed -n 's/^ *- alert: //p' config/prometheus/alerts.yaml); do
  for want in fires stays-quiet; do
    awk -v a="$alert" -v want="$want" '
      $0 ~ "alertname: " a "$" { named = 1; next }
      named && /exp_alerts: \[\]/ { quiet = 1 }
      named && /exp_alerts:$/ { fires = 1 }
      { named = 0 }
      END { exit !(want == "fires" ? fires : quiet) }' config/prometheus/tests/*.yaml ||
      { echo "test-alerts.sh: no test where $alert $want (config/prometheus/tests)" >&2; exit 1; }
  done
done

"$promtool" check rules "$work/meshkeeper.rules.yaml"
(cd "$work" && "$promtool" test rules ./*_test.yaml)
