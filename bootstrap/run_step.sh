#!/usr/bin/env bash
# Run one bootstrap step with its output in a log and its exit code in a result file.
#
#   run_step.sh [--tee] [--path-file FILE] STEP FINGERPRINT LOGDIR -- COMMAND [ARG]...
#
# Writes LOGDIR/STEP.log (stdout+stderr), LOGDIR/STEP.started and, when the command ends
# (or the step is killed), LOGDIR/STEP.result: {"step", "fingerprint", "rc", "started", "ended"}
# (temp-then-rename). The controller reads the result file, so a step that runs detached
# in tmux is recorded even when the controller has gone away. --tee also copies the log
# to stdout (steps run attached); --path-file restores the caller's PATH (tmux sessions
# inherit the tmux server's environment, not the client's).
set -uo pipefail

tee_out=0
path_file=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tee) tee_out=1; shift ;;
    --path-file) path_file="$2"; shift 2 ;;
    *) break ;;
  esac
done
if [ $# -lt 4 ] || [ "$4" != "--" ]; then
  echo "usage: run_step.sh [--tee] [--path-file FILE] STEP FINGERPRINT LOGDIR -- COMMAND..." >&2
  exit 2
fi
step="$1"; fp="$2"; logdir="$3"; shift 4
if [ -n "$path_file" ] && [ -s "$path_file" ]; then
  PATH="$(cat "$path_file")"; export PATH
fi

mkdir -p "$logdir"
log="$logdir/$step.log"
result="$logdir/$step.result"
rm -f "$result"
started=$(date +%s)
printf '{"step": "%s", "fingerprint": "%s", "started": %s, "pid": %s}\n' "$step" "$fp" "$started" "$$" > "$logdir/$step.started"

finish() {
  local rc="$1"
  local ended tmp
  ended=$(date +%s)
  echo "[orch] step $step finished with exit code $rc after $((ended - started)) s" >> "$log"
  tmp="$result.tmp.$$"
  printf '{"step": "%s", "fingerprint": "%s", "rc": %d, "started": %s, "ended": %s}\n' \
    "$step" "$fp" "$rc" "$started" "$ended" > "$tmp" && mv -f "$tmp" "$result"
}
trap 'finish 129; exit 129' HUP
trap 'finish 143; exit 143' TERM
trap 'finish 130; exit 130' INT

echo "[orch] step $step started $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname): $*" > "$log"
if [ "$tee_out" = 1 ]; then
  "$@" < /dev/null 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
else
  "$@" < /dev/null >> "$log" 2>&1
  rc=$?
fi
finish "$rc"
exit "$rc"
