#!/usr/bin/env bash
# quietly runs one tool build and says only what it does: one line when it
# starts, one when it ends with its wall and CPU time. The compiler's output
# goes to a log under BUILD_LOG_DIR (default ~/.cache/meshkeeper/logs), whose
# end is printed when the build fails.
#
# Sourced by hack/build-*.sh (quietly <name> <what> <command or function...>),
# or run as hack/quietly.sh <name> <what> <command...> from the Makefile.

quietly() {
  # The locals are prefixed: bash scopes variables dynamically, and the
  # build function that quietly runs sees them.
  local q_name=${1:?log name} q_what=${2:?what is built}
  shift 2
  local q_dir=${BUILD_LOG_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meshkeeper/logs}
  mkdir -p "$q_dir"
  local q_log=$q_dir/$q_name.log q_start=$SECONDS q_status=0 q_cpu0 q_cpu1 q_took
  echo "==> building $q_what ..."
  times >"$q_log.times" && q_cpu0=$(childCPU "$q_log.times")
  # In the background, so that set -e holds inside a function it runs
  # (bash ignores it in the condition of an if or ||).
  (set -e; "$@") >"$q_log" 2>&1 &
  wait $! || q_status=$?
  times >"$q_log.times" && q_cpu1=$(childCPU "$q_log.times") && rm -f "$q_log.times"
  q_took=$(duration $((SECONDS - q_start)))
  if [[ $q_status != 0 ]]; then
    echo "==> building $q_name FAILED after $q_took; the end of its log (${q_log/#$HOME/\~}):"
    tail -n 40 "$q_log" | sed 's/^/    /'
    return $q_status
  fi
  echo "==> $q_name built in $q_took, $(duration $((q_cpu1 - q_cpu0))) of CPU (log: ${q_log/#$HOME/\~})"
}

# childCPU reads the output of bash's times, written to a file: the user
# and system seconds of the shell's finished children, on its second line.
# (times cannot be captured with $(...): the subshell's children are not ours.)
childCPU() {
  awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, t, "m"); n += t[1] * 60 + t[2] } printf "%d\n", n }' "$1"
}

# duration formats seconds as 6m12s.
duration() {
  local s=$1
  if ((s >= 60)); then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  quietly "$@"
fi
