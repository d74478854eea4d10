#!/usr/bin/env bash
# The search across hosts for real: network namespaces joined by a bridge (tests/multihost/harness.sh),
# one rank per host, mpirun starting its daemons through an rsh agent, MPI over TCP only. On
# configs/smoke.ini (4 islands, ring migration every 4 generations, a checkpoint every 4).
#
#   identical  2 and 3 hosts: the archive equals a 1-rank run's (elites, histories, migrations, bit for
#              bit); the archive names every host; migrants and checkpoint gathers crossed the links
#              (bytes on each host's link >= what the gathers alone must move); the MPI share <= 100%
#   resume     a 3-host run stopped at generation 6, resumed on 2 hosts: equals the 1-rank run
#   lost       3 hosts, host 2 killed mid-run (every process on it): the job ends at once, the survivors
#              name the lost host and the checkpoint to resume from; a resume on hosts 0 and 1
#              equals an uninterrupted 1-rank run to the same generation
#   cut        2 hosts, host 1's link taken down mid-run: the stall watchdog's message (rank, host,
#              checkpoint) and exit 3 within --stall-minutes plus the launcher's teardown limit, not a
#              hang (launch/search.sh)
#
#   tests/multihost/test_multihost.sh PART...    (default: all four)
#
# Runs as root (namespaces). Exit status: 0 pass, 1 fail (also when this machine cannot run it: not
# root, no namespaces; the reason is printed), 77 skip (the same, with REPSEARCH_ALLOW_SKIPS=1).
# Environment: REPSEARCH_BIN (default build/repsearch), REPSEARCH_PYTHON (default /usr/bin/python3,
# with h5py), KEEP_TMP=1 keeps the temporary directory.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin_src="${REPSEARCH_BIN:-$repo/build/repsearch}"
py="${REPSEARCH_PYTHON:-/usr/bin/python3}"
hosts="$repo/tests/multihost/harness.sh"
config="$repo/configs/smoke.ini"
t0=$SECONDS

log() { echo "[multihost $((SECONDS - t0))s] $*"; }
# shellcheck source=tests/cannot_run.sh
source "$repo/tests/cannot_run.sh"
skip() { cannot_run multihost "$@"; }
failures=0
fail() {
  echo "[multihost] FAIL: $*" >&2
  failures=$((failures + 1))
}

parts=("$@")
[[ ${#parts[@]} -gt 0 ]] || parts=(identical resume lost cut)
for p in "${parts[@]}"; do
  case "$p" in identical | resume | lost | cut) ;; *)
    echo "usage: $0 [identical|resume|lost|cut]..." >&2
    exit 2
    ;;
  esac
done

[[ $EUID -eq 0 ]] || skip "needs root (network namespaces)"
[[ -x "$bin_src" ]] || skip "repsearch binary $bin_src not built"
command -v mpirun >/dev/null 2>&1 || skip "no mpirun"
"$py" -c 'import h5py' 2>/dev/null || {
  echo "[multihost] FAIL: $py lacks h5py (launch/setup.sh installs python3-h5py)" >&2
  exit 1
}

tmp="$(mktemp -d /tmp/repsearch-multihost.XXXXXX)"
export MULTIHOST_DIR="$tmp/hosts" MULTIHOST_OWNER=$$
live=() # background jobs not yet reaped

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$? p
  for p in "${live[@]}"; do
    [[ -n "$p" ]] && kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  "$hosts" down
  if [[ ($rc -eq 0 || $rc -eq 77) && "${KEEP_TMP:-0}" != 1 ]]; then
    rm -rf "$tmp"
  else
    echo "[multihost] files kept in $tmp"
  fi
  echo "[multihost] total $((SECONDS - t0)) s, exit $rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# A private copy of the binary (it links only system libraries): a rebuild meanwhile cannot change it.
mkdir -p "$tmp/bin"
for ((i = 0; i < 60; i++)); do
  if cp "$bin_src" "$tmp/bin/repsearch" 2>/dev/null && "$tmp/bin/repsearch" --help >/dev/null 2>&1; then break; fi
  sleep 2
done
bin="$tmp/bin/repsearch"
"$bin" --help >/dev/null 2>&1 || {
  echo "[multihost] FAIL: could not take a working copy of $bin_src" >&2
  exit 1
}

n_hosts=3
[[ " ${parts[*]} " == " cut " ]] && n_hosts=2
"$hosts" up "$n_hosts"
rc=$?
[[ $rc -eq 77 ]] && skip "this machine cannot make hosts (see the harness's message above)"
[[ $rc -eq 0 ]] || {
  echo "[multihost] FAIL: the hosts harness failed (exit $rc)" >&2
  exit 1
}
name() { "$hosts" name "$1"; }

# ---- helpers ------------------------------------------------------------------------------------------
# search OUT ARG...: a 1-rank reference run here (no MPI launcher).
search() {
  local out="$1"
  shift
  "$bin" search --config "$config" --out "$out" "$@" >"$out.log" 2>&1
}

# on_hosts H LOG ARG...: `repsearch search ARG...` with one rank on each host of H (e.g. 0,1,2).
on_hosts() {
  local h="$1" logf="$2"
  shift 2
  timeout -k 5 120 "$hosts" mpirun "$h" "$bin" search --config "$config" "$@" >"$logf" 2>&1
}

# same_archive A B: tests/same_archive.py: the datasets that must be deterministic, bit for bit;
# prints the differences, 1 if any.
same_archive() { "$py" "$repo/tests/same_archive.py" "$1" "$2"; }

# provenance ARCHIVE KEY: a provenance field of an archive (inspect --json).
provenance() { "$bin" inspect --json --file "$1" | "$py" -c "import json, sys; print(json.load(sys.stdin)['provenance']['$2'])"; }
ckpt_generation() { "$py" -c "import h5py, sys; print(int(h5py.File(sys.argv[1], 'r').attrs['generation']))" "$1"; }

# check_run LOG ARCHIVE REFERENCE HOSTS: exit 0, same result as the reference, every host named, share.
check_run() {
  local logf="$1" archive="$2" ref="$3" h="$4" want="" i share
  for i in ${h//,/ }; do want+="${want:+,}$(name "$i")"; done
  if [[ ! -f "$archive" ]]; then
    fail "no $archive:"
    tail -n 15 "$logf" >&2
    return
  fi
  if same_archive "$archive" "$ref" >"$logf.cmp"; then
    log "  $(tail -n 1 "$logf.cmp")"
  else
    fail "$archive differs from the 1-rank reference $ref:"
    cat "$logf.cmp" >&2
  fi
  [[ "$(provenance "$archive" hosts)" == "$want" ]] || fail "archive hosts '$(provenance "$archive" hosts)', expected '$want'"
  # The cost line: each rank's MPI time as a share of its own time since start/resume.
  share="$(grep -oE '\(([0-9.]+)% of that rank.s time\)' "$logf" | grep -oE '[0-9.]+' | head -n 1)"
  if [[ -z "$share" ]]; then
    fail "no MPI share line in $logf"
  elif ! awk -v s="$share" 'BEGIN { exit !(s >= 0 && s <= 100) }'; then
    fail "MPI share $share% is not within 0-100% ($logf)"
  else
    log "  hosts $want, MPI share $share% of the rank's time"
  fi
}

# wait_for LOG REGEX PID SECONDS: until LOG matches (0), the process ends or time runs out (1).
wait_for() {
  local limit=$((SECONDS + $4))
  until grep -qE "$2" "$1" 2>/dev/null; do
    if ! kill -0 "$3" 2>/dev/null || ((SECONDS > limit)); then return 1; fi
    sleep 0.1
  done
}

# await PID SECONDS: RC = its exit status, or HUNG=1 (and the job killed) past SECONDS.
await() {
  local limit=$((SECONDS + $2)) i
  HUNG=0
  while kill -0 "$1" 2>/dev/null; do
    if ((SECONDS >= limit)); then
      HUNG=1
      kill -9 -- "-$1" 2>/dev/null || kill -9 "$1" 2>/dev/null
      break
    fi
    sleep 0.1
  done
  RC=0
  wait "$1" 2>/dev/null || RC=$?
  for i in "${!live[@]}"; do [[ "${live[$i]}" == "$1" ]] && unset "live[$i]"; done
}

ref="$tmp/ref"
# start_until_checkpoint LABEL NP HOSTS OUT [VAR=VALUE...] -- [SEARCH_OPTION...]: a long search through
# launch/search.sh, as a user would start it, in the background ($pid, also in live); returns 1, after
# failing the part, when it never reaches its first checkpoint (generation 10).
start_until_checkpoint() {
  local label=$1 np=$2 on=$3 out=$4 vars=()
  shift 4
  while [[ $1 != -- ]]; do vars+=("$1"); shift; done
  shift
  env REPSEARCH_BIN="$bin" "${vars[@]}" setsid "$hosts" exec 0 "$repo/launch/search.sh" -np "$np" \
    --mpirun "$("$hosts" mpirun-args "$on")" -- --config "$config" --out "$out" --generations 100000 \
    --checkpoint-interval 10 "$@" >"$out.log" 2>&1 &
  pid=$!
  live+=("$pid")
  wait_for "$out.log" 'checkpoint at generation [1-9][0-9]+:' "$pid" 90 && return 0
  fail "the $label search never reached its first checkpoint (generation 10):"
  tail -n 20 "$out.log" >&2
  await "$pid" 1
  return 1
}

reference() { # the 1-rank run of configs/smoke.ini, once
  [[ -f "$ref/archive.h5" ]] && return 0
  search "$ref" || {
    echo "[multihost] FAIL: the 1-rank reference run failed:" >&2
    tail -n 15 "$ref.log" >&2
    exit 1
  }
}

# ---- parts --------------------------------------------------------------------------------------------
part_identical() {
  local h n out before after moved need i s
  reference
  for h in 0,1 0,1,2; do
    n=$(($(tr -cd , <<<"$h" | wc -c) + 1))
    out="$tmp/hosts$n"
    before=()
    for i in ${h//,/ }; do before+=("$("$hosts" bytes "$i")"); done
    s=$SECONDS
    if ! on_hosts "$h" "$out.log" --out "$out"; then
      fail "the $n-host search failed:"
      tail -n 20 "$out.log" >&2
      continue
    fi
    log "$n hosts ($h): search done in $((SECONDS - s)) s"
    check_run "$out.log" "$out/archive.h5" "$ref/archive.h5" "$h"
    # Every host but 0 hosts islands i with i % n == rank: at each checkpoint (generations 4, 8, 12)
    # its populations cross its link to rank 0 (P x n_s x d float32 each), besides migrants and elites.
    for ((i = 1; i < n; i++)); do
      after="$("$hosts" bytes "$i")"
      moved=$((after - before[i]))
      need=$((3 * $(seq "$i" "$n" 3 | wc -l) * 8 * 300 * 16 * 4))
      if ((moved < need)); then
        fail "host $i's link moved $moved bytes, less than its islands' checkpoint gathers alone ($need)"
      fi
      log "  host $i's link: $moved bytes (its checkpoint gathers alone: $need)"
    done
    "$py" - "$out/checkpoint.h5" <<'PY' || fail "the final checkpoint does not hold all 4 islands at generation 12"
import sys
import h5py
f = h5py.File(sys.argv[1], "r")
ok = int(f.attrs["generation"]) == 12 and sorted(f["/islands"], key=int) == ["0", "1", "2", "3"]
sys.exit(0 if ok else 1)
PY
  done
}

part_resume() {
  local out="$tmp/resume"
  reference
  if ! on_hosts 0,1,2 "$out.3.log" --out "$out" --generations 6; then
    fail "the 3-host search to generation 6 failed:"
    tail -n 20 "$out.3.log" >&2
    return
  fi
  [[ "$(ckpt_generation "$out/checkpoint.h5")" == 6 ]] || fail "the 3-host checkpoint is not at generation 6"
  if ! on_hosts 0,1 "$out.2.log" --out "$out" --resume; then
    fail "the resume on 2 hosts failed:"
    tail -n 20 "$out.2.log" >&2
    return
  fi
  grep -q 'resumed at generation 6 of 12' "$out.2.log" || fail "the 2-host run did not resume at generation 6"
  log "3-host checkpoint at generation 6 resumed on 2 hosts"
  check_run "$out.2.log" "$out/archive.h5" "$ref/archive.h5" 0,1
}

part_lost() {
  local out="$tmp/lost" pid g target lost s
  lost="$(name 2)"
  # Through launch/search.sh, as a user would start it (it adds where to continue from).
  start_until_checkpoint 3-host 3 0,1,2 "$out" -- || return
  "$hosts" kill 2
  s=$SECONDS
  await "$pid" 60
  if ((HUNG)); then
    fail "the job did not end within 60 s of losing host 2 (killed):"
    tail -n 20 "$out.log" >&2
    return
  fi
  log "host 2 lost: the job ended in $((SECONDS - s)) s with status $RC"
  ((RC != 0 && RC != 75)) || fail "exit status $RC after losing a host"
  # Open MPI's runtime notices first (its connection to the lost host's daemon closes) and ends the
  # job on the survivors, naming the host; the launcher adds where to continue from.
  grep -qE "lost communication with a remote daemon|lost contact with a remote daemon" "$out.log" ||
    fail "no message saying that a host was lost"
  grep -q "on node $lost" "$out.log" || fail "the message does not name the lost host $lost"
  grep -q "continue from the newest checkpoint, $out/checkpoint.h5 (generation" "$out.log" ||
    fail "launch/search.sh does not say where to continue from"
  sed -n '/lost communication/,$p' "$out.log" | grep -v '^-*$' | head -n 12 | sed 's/^/    | /'
  g="$(ckpt_generation "$out/checkpoint.h5")" || {
    fail "no readable checkpoint after the loss"
    return
  }
  target=$((g + 8))
  if ! on_hosts 0,1 "$out.resume.log" --out "$out" --resume --generations "$target"; then
    fail "the resume on hosts 0 and 1 failed:"
    tail -n 20 "$out.resume.log" >&2
    return
  fi
  grep -q "resumed at generation $g of $target" "$out.resume.log" || fail "the resume did not start at generation $g"
  if ! search "$tmp/lost-ref" --generations "$target"; then
    fail "the uninterrupted 1-rank run to generation $target failed"
    return
  fi
  log "checkpoint at generation $g resumed on 2 hosts to generation $target"
  check_run "$out.resume.log" "$out/archive.h5" "$tmp/lost-ref/archive.h5" 0,1
}

part_cut() {
  # teardown_s: the launcher ends mpirun that long after the watchdog's error (mpirun cannot reach the
  # cut host, so any wait is spent idle; the error line is printed before it starts).
  local out="$tmp/cut" pid s g stall_s=6 teardown_s=3
  start_until_checkpoint 2-host 2 0,1 "$out" REPSEARCH_TEARDOWN_SECONDS="$teardown_s" -- --stall-minutes 0.1 || return
  "$hosts" cut 1
  s=$SECONDS
  # The watchdog (6 s) + the launcher's teardown limit (3 s) + start-up slack; Open MPI alone would
  # wait for TCP to give up on the cut host (about 15 minutes).
  await "$pid" $((stall_s + teardown_s + 30))
  "$hosts" mend 1
  "$hosts" kill 1 # the orted that mpirun could not reach is still waiting for it
  if ((HUNG)); then
    fail "the job hung after host 1's link was cut (killed after $((stall_s + teardown_s + 30)) s):"
    tail -n 20 "$out.log" >&2
    return
  fi
  log "host 1 cut off: the job ended in $((SECONDS - s)) s with status $RC"
  [[ $RC -eq 3 ]] || fail "exit status $RC, expected 3 (stalled)"
  grep -qE "error on rank [01] of 2 \(host $(name 0)\): at generation [0-9]+: no progress from the other ranks for [0-9]+ s" "$out.log" ||
    fail "no stall watchdog message from the rank on host $(name 0)"
  grep -q -- "--stall-minutes 0.1" "$out.log" || fail "the message does not name --stall-minutes"
  g="$(grep -oE "the newest checkpoint is $out/checkpoint.h5 \(generation [0-9]+\)" "$out.log" | grep -oE '[0-9]+\)$' | tr -d ')' | head -n 1)"
  if [[ -z "$g" ]]; then
    fail "the message does not name the newest checkpoint"
  elif [[ "$(ckpt_generation "$out/checkpoint.h5")" != "$g" ]]; then
    fail "the message names generation $g, the checkpoint holds $(ckpt_generation "$out/checkpoint.h5")"
  fi
  grep -E "error on rank|search.sh: mpirun" "$out.log" | head -n 3 | sed 's/^/    | /'
}

for p in "${parts[@]}"; do
  log "---- $p"
  n0=$failures
  case "$p" in
    identical) part_identical ;;
    resume) part_resume ;;
    lost) part_lost ;;
    cut) part_cut ;;
  esac
  log "$p: $([[ $failures -eq $n0 ]] && echo PASS || echo FAIL)"
done

if [[ $failures -gt 0 ]]; then
  echo "[multihost] $failures failure(s)" >&2
  exit 1
fi
log "PASS"
exit 0
