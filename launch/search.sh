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

Environment: REPSEARCH_BIN (default: build/repsearch beside this script's repository).
USAGE
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${REPSEARCH_BIN:-$repo_root/build/repsearch}"
np=1
mpirun_extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -np | -n) np="${2:?$1 needs a value}"; shift 2 ;;
    --mpirun) read -r -a mpirun_extra <<<"${2:?--mpirun needs a value}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[[ "$np" =~ ^[1-9][0-9]*$ ]] || { echo "search.sh: -np must be a positive integer, got '$np'" >&2; exit 2; }
[[ -x "$bin" ]] || { echo "search.sh: no repsearch binary at $bin (build first: bash launch/setup.sh)" >&2; exit 2; }

as_root=()
[[ $EUID -eq 0 ]] && as_root=(--allow-run-as-root)
mpirun "${as_root[@]}" ${mpirun_extra[@]+"${mpirun_extra[@]}"} -np "$np" "$bin" search "$@" &
pid=$!
interrupts=0
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
rc=0
while :; do
  wait "$pid" && rc=0 || rc=$?
  kill -0 "$pid" 2>/dev/null && continue  # a trapped signal interrupted wait: wait again
  if [[ $rc -gt 128 ]]; then               # interrupted just as mpirun ended: its status is still kept
    wait "$pid" 2>/dev/null && rc=0 || { r=$?; [[ $r -ne 127 ]] && rc=$r; }
  fi
  break
done
exit "$rc"
