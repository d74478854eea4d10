#!/usr/bin/env bash
# Run `repsearch search` under mpirun so that Ctrl-C, SIGTERM and SIGUSR1 all end in a checkpoint
# (exit 75) instead of Open MPI killing the ranks. mpirun forwards only SIGUSR1/SIGUSR2 to the ranks;
# on SIGINT or SIGTERM it kills them within a second, losing everything since the last checkpoint.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: launch/search.sh [-np N] [--mpirun "MPIRUN OPTIONS"] [--] REPSEARCH-SEARCH-OPTIONS...

Starts `mpirun -np N build/repsearch search OPTIONS...` (N defaults to 1) and turns SIGINT (Ctrl-C),
SIGTERM and SIGUSR1 into SIGUSR1 for mpirun, which forwards it to every rank: the search finishes the
current generation, writes <out>/checkpoint.h5 and exits 75; continue with the same command and
--resume. A second Ctrl-C kills at once. The exit status is mpirun's.

Without this script, send SIGUSR1 to mpirun yourself: kill -USR1 <pid of mpirun>.

Across hosts (--mpirun "--hostfile FILE ..."), it also ends mpirun when a rank has reported an error
and mpirun has not ended REPSEARCH_TEARDOWN_SECONDS later: Open MPI cannot stop the ranks of a host
it no longer reaches (a cut link) until TCP gives up on that host, about 15 minutes. The exit status
is then the search's own (3: stalled, 2: error). When Open MPI itself ends the job (a host lost), it
says where to continue from.

Environment: REPSEARCH_BIN (default: build/repsearch beside this script's repository),
REPSEARCH_TEARDOWN_SECONDS (default 60).
USAGE
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${REPSEARCH_BIN:-$repo_root/build/repsearch}"
np=1
mpirun_extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -np | -n | --mpirun)
      [[ $# -ge 2 && -n "$2" ]] || { echo "search.sh: $1 needs a value (see launch/search.sh --help)" >&2; exit 2; }
      if [[ "$1" == --mpirun ]]; then read -r -a mpirun_extra <<<"$2"; else np="$2"; fi
      shift 2
      ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[[ "$np" =~ ^[1-9][0-9]*$ ]] || { echo "search.sh: -np must be a positive integer, got '$np'" >&2; exit 2; }
[[ -x "$bin" ]] || { echo "search.sh: no repsearch binary at $bin (build first: bash launch/setup.sh)" >&2; exit 2; }

as_root=()
[[ $EUID -eq 0 ]] && as_root=(--allow-run-as-root)
teardown_s="${REPSEARCH_TEARDOWN_SECONDS:-60}"
[[ "$teardown_s" =~ ^[0-9]+$ ]] || { echo "search.sh: REPSEARCH_TEARDOWN_SECONDS must be a number of seconds, got '$teardown_s'" >&2; exit 2; }
work="$(mktemp -d "${TMPDIR:-/tmp}/repsearch-search.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The ranks' stderr passes through unchanged; the first error a rank reports is kept in $work/error,
# and mpirun's own refusal of its command line (before any rank starts) in $work/mpirun-error.
watch_errors() {
  local line
  while IFS= read -r line || [[ -n "$line" ]]; do
    printf '%s\n' "$line"
    if [[ ! -s "$work/error" && "$line" == *"repsearch search: error on rank "* ]]; then
      printf '%s\n' "$line" >"$work/error"
    elif [[ ! -s "$work/mpirun-error" && "$line" == *"mpirun: Error: "* ]]; then
      printf '%s\n' "${line#*mpirun: Error: }" >"$work/mpirun-error"
    fi
  done
}
# The watcher reads a FIFO (not a process substitution) so that its end can be waited for: what mpirun
# said is all read before the exit status is explained.
mkfifo "$work/stderr"
watch_errors <"$work/stderr" >&2 &
watcher=$!
mpirun "${as_root[@]}" ${mpirun_extra[@]+"${mpirun_extra[@]}"} -np "$np" "$bin" search "$@" 2>"$work/stderr" &
pid=$!
interrupts=0
# shellcheck disable=SC2317  # called by the traps below
forward() {
  interrupts=$((interrupts + 1))
  if [[ "$1" == INT && $interrupts -gt 1 ]]; then
    echo "search.sh: second interrupt: killing the search" >&2
    kill -TERM "$pid" 2>/dev/null || true
    return
  fi
  echo "search.sh: SIG$1: asking the search to checkpoint and stop (exit 75; continue with --resume)" >&2
  kill -USR1 "$pid" 2>/dev/null || true
}
trap 'forward INT' INT
trap 'forward TERM' TERM
trap 'forward USR1' USR1

# Once a rank has failed, mpirun tears the job down; a host it cannot reach holds that up until TCP
# gives up (~15 min). Past the limit, end mpirun: the ranks that failed have said why.
error_seen=-1 ended_by_us=0
while kill -0 "$pid" 2>/dev/null; do
  if [[ -s "$work/error" ]]; then
    ((error_seen < 0)) && error_seen=$SECONDS
    if ((SECONDS - error_seen >= teardown_s)); then
      echo "search.sh: mpirun has not ended ${teardown_s} s after a rank reported the error above: it cannot" \
        "reach a host to stop the ranks there (Open MPI waits until TCP gives up, about 15 minutes); ending it" >&2
      # Its children first (ranks left on this host, the rsh/ssh agents to the other hosts), while they
      # are still known as its children.
      pkill -KILL -P "$pid" 2>/dev/null || true
      kill -KILL "$pid" 2>/dev/null || true
      ended_by_us=1
      break
    fi
  fi
  sleep 1 &
  wait $! 2>/dev/null || true # a trapped signal interrupts this wait, not the loop
done
rc=0
while :; do
  wait "$pid" && rc=0 || rc=$?
  kill -0 "$pid" 2>/dev/null && continue  # a trapped signal interrupted wait: wait again
  if [[ $rc -gt 128 ]]; then               # interrupted just as mpirun ended: its status is still kept
    if wait "$pid" 2>/dev/null; then rc=0; else r=$?; [[ $r -ne 127 ]] && rc=$r; fi
  fi
  break
done
# The watcher ends when the last writer (mpirun, the ranks) closes the FIFO; a rank left on a host
# that mpirun could not reach may hold it open, so wait a few seconds at most.
for ((i = 0; i < 50; i++)); do
  kill -0 "$watcher" 2>/dev/null || break
  sleep 0.1
done
if ((ended_by_us)); then
  # The search's own status for what the rank reported (main.cpp: 3 stalled, 2 any other error).
  if grep -q "no progress from the other ranks" "$work/error"; then rc=3; else rc=2; fi
fi

# mpirun refused its own arguments: nothing ran, and the fix is in the command line.
if [[ $rc -ne 0 && -s "$work/mpirun-error" && ! -s "$work/error" ]]; then
  echo "search.sh: mpirun rejected its arguments ($(cat "$work/mpirun-error")): the search did not start; check" \
    "--mpirun \"${mpirun_extra[*]}\" (see mpirun --help)" >&2
  exit 2
fi

# Open MPI ended the job without a word from the ranks (a host lost: its daemon's connection closed):
# say where to continue from.
if [[ $rc -ne 0 && $rc -ne 2 && $rc -ne 3 && $rc -ne 75 && ! -s "$work/error" ]]; then
  out="$("$bin" config "$@" --get out 2>/dev/null)" || out=""
  if [[ -n "$out" && -f "$out/checkpoint.h5" ]]; then
    g="$(h5dump -a /generation "$out/checkpoint.h5" 2>/dev/null | grep -oE '\(0\): *[0-9]+' | grep -oE '[0-9]+$')" || g=""
    echo "search.sh: mpirun ended with status $rc: Open MPI stopped the search (its message above names what it" \
      "lost); continue from the newest checkpoint, $out/checkpoint.h5 (generation ${g:-?}), with --resume, on" \
      "any number of ranks (e.g. on the hosts that remain)" >&2
  elif [[ -n "$out" ]]; then
    echo "search.sh: mpirun ended with status $rc: Open MPI stopped the search (its message above names what it" \
      "lost) before its first checkpoint in $out: start it again" >&2
  fi
fi
exit "$rc"
