#!/usr/bin/env bash
# Fault injection against `repsearch search` (and learn, sgd) on configs/smoke.ini, bounded and
# reproducible (--seed):
#
#  1. kill -9 at random moments (during start-up, mid-generation, during checkpoint writes), in chains
#     of 1-3 kills, each followed by --resume (or a fresh start when no checkpoint exists) until the
#     search completes: the archive must be bit-identical to an uninterrupted run's.
#  2. damaged checkpoints (random bytes, a 0xFF block, 4 KiB of noise, truncation): --resume must
#     refuse them (exit 2, a message); the kept checkpoint.prev.h5 must still resume to the reference.
#  3. a full disk (a small tmpfs, root only): exit 2 naming the file, no temporaries left behind, and
#     the checkpoint left there must still resume to the reference.
#  4. two searches started at once into one run directory: exactly one runs, the other is refused.
#  5. stale temporaries (<file>.tmp-<pid>) in a run directory are removed, and the run says so.
#  6. learn --elite all and sgd --seeds 0..2 killed with -9 at random moments (mid-training, or while a
#     network, results or summary file is being written) 1-3 times, then run again: after every kill no
#     results file lies beside a network file it does not describe and no summary is older than a
#     results file it lists; the completed run gives the uninterrupted run's results, no temporaries
#     and no lock files.
#  7. learn and sgd on a full disk (the network, its results, the second network or not even a lock
#     file does not fit) and on a read-only one: exit 2 naming the file and the reason, no stack trace, no temporaries, no
#     stale summary, earlier files intact.
#
# Prints one line per outcome (PASS/FAIL/SKIP), a summary, then "N passed, M failed" alone on the last
# line. Exit status: 0 all passed, 1 any failed or skipped (a skip counts as a failure unless
# REPSEARCH_ALLOW_SKIPS=1), 2 bad usage or set-up.
# Environment: REPSEARCH_BIN (default <repo>/build/repsearch), REPSEARCH_PYTHON (default
# /usr/bin/python3, needs h5py and numpy), REPSEARCH_SOURCE_DIR (default: this script's repository).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: tests/fault_inject.sh [--short|--long] [--seed N] [--keep DIR]

Fault injection against `repsearch search` (configs/smoke.ini): kill -9 chains + resume, damaged
checkpoints, a full disk (tmpfs, needs root), concurrent searches into one directory, stale
temporary files; and against `repsearch learn` / `sgd`: kill -9 chains, a full and a read-only disk.
Every final archive and results file is compared with an uninterrupted run's, bit for bit.

Options:
  --short      the CTest form (default): serial runs only, 3-5 minutes on 2 busy cores
  --long       more and longer trials, 2-rank runs under mpirun, growing --generations on resume
               (about 10-15 minutes)
  --seed N     seed of bash's RANDOM, which draws every delay, offset and choice (default 1); the
               same seed and binary replay the same faults (timings aside)
  --keep DIR   work in DIR (created; must be empty) and keep it afterwards; tmpfs mounts are
               always unmounted
  -h, --help   show this help

Environment:
  REPSEARCH_BIN        the binary (default: <repo>/build/repsearch); a private copy is used
  REPSEARCH_PYTHON     Python with h5py and numpy (default /usr/bin/python3)
  REPSEARCH_SOURCE_DIR the repository (default: the one holding this script)
EOF
}

die() {
  echo "fault_inject.sh: error: $*" >&2
  exit 2
}

form=short
seed=1
keep=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --short) form=short; shift ;;
    --long) form=long; shift ;;
    --seed)
      [[ $# -ge 2 ]] || die "--seed needs a value"
      seed=$2
      shift 2
      ;;
    --seed=*) seed=${1#*=}; shift ;;
    --keep)
      [[ $# -ge 2 ]] || die "--keep needs a directory"
      keep=$2
      shift 2
      ;;
    --keep=*) keep=${1#*=}; shift ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ "$seed" =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer, got '$seed'"

repo="${REPSEARCH_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
bin_src="${REPSEARCH_BIN:-$repo/build/repsearch}"
py="${REPSEARCH_PYTHON:-/usr/bin/python3}"
config="$repo/configs/smoke.ini"
[[ -f "$config" ]] || die "no $config"
"$py" -c 'import h5py, numpy' 2>/dev/null || die "$py lacks h5py/numpy (set REPSEARCH_PYTHON)"
if [[ $EUID -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

RANDOM=$seed
t0=$SECONDS
log() { echo "[faults $((SECONDS - t0))s] $*"; }

# ---- work directory, cleanup --------------------------------------------------------------------------
if [[ -n "$keep" ]]; then
  mkdir -p "$keep"
  [[ -z "$(ls -A "$keep")" ]] || die "--keep $keep is not empty"
  work="$(cd "$keep" && pwd)"
else
  work="$(mktemp -d "${TMPDIR:-/tmp}/repsearch-faults.XXXXXX")"
fi
mounts=() # tmpfs mount points still mounted
live=()   # background processes this script started and has not reaped

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$? p m
  for p in "${live[@]}"; do
    [[ -n "$p" ]] || continue
    kill -9 "$p" 2>/dev/null || true
    { wait "$p"; } 2>/dev/null || true
  done
  for m in "${mounts[@]}"; do
    [[ -n "$m" ]] || continue
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "fault_inject.sh: could not unmount $m" >&2
  done
  if [[ -n "$keep" ]]; then
    echo "[faults] files kept in $work"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A sleep without a fork: read with a timeout from a FIFO nobody writes to.
mkfifo "$work/.nap"
exec {nap_fd}<>"$work/.nap"
nap() { read -r -t "$1" -u "$nap_fd" _ || true; }

# R = a random integer in [0, $1), from bash's RANDOM (30 bits).
rnd() { R=$((((RANDOM << 15) | RANDOM) % $1)); }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((10#$t / 1000)); }

# A private copy of the binary, so that a rebuild of build/ meanwhile does not change it under the
# test (it links only system libraries). Retry while a rebuild replaces it.
mkdir -p "$work/bin"
bin="$work/bin/repsearch"
for ((i = 0; i < 60; i++)); do
  if [[ -x "$bin_src" ]] && cp "$bin_src" "$bin" 2>/dev/null && "$bin" --help >/dev/null 2>&1; then
    break
  fi
  sleep 2
done
"$bin" --help >/dev/null 2>&1 || die "could not take a working copy of $bin_src"

# ---- outcomes and tallies -----------------------------------------------------------------------------
n_pass=0 n_fail=0 n_skip=0
pass() {
  n_pass=$((n_pass + 1))
  echo "PASS $*"
}
fail() {
  n_fail=$((n_fail + 1))
  echo "FAIL $*"
}
skip() {
  n_skip=$((n_skip + 1))
  echo "SKIP $*"
}
declare -A T=()
tally() { T[$1]=$((${T[$1]:-0} + ${2:-1})); }
t() { echo "${T[$1]:-0}"; }
tail_of() { tail -n "${2:-6}" "$1" | sed 's/^/    | /'; }

# ---- helpers ------------------------------------------------------------------------------------------
# is_running PID: alive and not a zombie.
is_running() {
  local st
  [[ -r /proc/$1/stat ]] || return 1
  read -r _ _ st _ <"/proc/$1/stat" 2>/dev/null || return 1
  [[ $st != Z ]]
}
untrack() {
  local i
  for i in "${!live[@]}"; do
    if [[ "${live[$i]}" == "$1" ]]; then unset "live[$i]"; fi
  done
}

# start_search LOG NP ARG...: `repsearch search --config smoke.ini ARG...` in the background, under
# mpirun when NP > 1 (in a session of its own); PID = the binary's or mpirun's pid.
start_search() {
  local logf=$1 np=$2
  shift 2
  if ((np > 1)); then
    setsid mpirun --oversubscribe --allow-run-as-root -np "$np" "$bin" search --config "$config" "$@" >"$logf" 2>&1 &
  else
    "$bin" search --config "$config" "$@" >"$logf" 2>&1 &
  fi
  PID=$!
  live+=("$PID")
}

# children PID: its direct children (mpirun's ranks).
children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -s ' \n' ' ' || true; }

# await PID SECONDS: wait for it to end; RC = its exit status; HUNG=1 (and killed) past SECONDS.
await() {
  local pid=$1 limit=$((SECONDS + $2)) k
  HUNG=0
  while is_running "$pid"; do
    if ((SECONDS >= limit)); then
      HUNG=1
      for k in $(children "$pid"); do kill -9 "$k" 2>/dev/null || true; done
      kill -9 "$pid" 2>/dev/null || true
      break
    fi
    nap 0.05
  done
  RC=0
  { wait "$pid"; } 2>/dev/null || RC=$? # (no "Killed" notice from bash: the outcome lines say it)
  untrack "$pid"
}

# run_search LOG NP SECONDS ARG...: run to the end; RC, HUNG.
run_search() {
  local logf=$1 np=$2 secs=$3
  shift 3
  start_search "$logf" "$np" "$@"
  await "$PID" "$secs"
}

# strays DIR: pids of processes still running with DIR on their command line (orphaned ranks).
strays() { pgrep -f -- "--out $1( |\$)" 2>/dev/null | tr '\n' ' ' || true; }

# settle DIR SECONDS: wait until no process runs in DIR; STRAY_MS = how long that took; 1 (and the
# survivors killed) if some outlive SECONDS.
settle() {
  local dir=$1 start left p
  start=$(now_ms)
  STRAY_MS=0
  while :; do
    left=$(strays "$dir")
    [[ -n "${left// /}" ]] || break
    if (($(now_ms) - start > $2 * 1000)); then
      for p in $left; do kill -9 "$p" 2>/dev/null || true; done
      STRAY_MS=$(($(now_ms) - start))
      return 1
    fi
    nap 0.05
  done
  STRAY_MS=$(($(now_ms) - start))
}

temporaries() { compgen -G "$1/*.tmp-*" 2>/dev/null | tr '\n' ' ' || true; }
what_signal() { if (($1 > 128)); then echo " (signal $(kill -l $(($1 - 128)) 2>/dev/null || echo $(($1 - 128))))"; fi; }

# same_archive A B: tests/same_archive.py: the datasets that must be deterministic, bit for bit (not
# the wall-time `seconds` column); prints the differences, 1 if any.
same_archive() { "$py" "$repo/tests/same_archive.py" "$1" "$2"; }

# damage FILE MODE OFFSET SEED: damages FILE in place and prints what and where (the dataset whose
# data holds the first damaged byte, or "metadata/free space"); exit 3 if the bytes did not change.
damage() {
  "$py" - "$@" <<'PY'
import os
import random
import sys
import h5py
path, mode, off, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
size = os.path.getsize(path)
spans = []
with h5py.File(path, "r") as f:
    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.id.get_offset() is not None:
            start = obj.id.get_offset()
            spans.append((start, start + obj.id.get_storage_size(), "/" + name))
    f.visititems(visit)
if mode == "trunc":
    off = off % size
    os.truncate(path, off)
    print(f"truncated to {off} of {size} bytes")
    sys.exit(0)
if mode == "bytes":
    n = 1 + rng.randrange(16)
    off = min(off, size - n)
    with open(path, "r+b") as f:
        f.seek(off)
        old = f.read(n)
        new = bytes(b ^ rng.randrange(1, 256) for b in old)
        f.seek(off)
        f.write(new)
elif mode in ("ff64", "rand4k"):
    n = 64 if mode == "ff64" else 4096
    off = min(off, size - n)
    new = b"\xff" * n if mode == "ff64" else bytes(rng.randrange(256) for _ in range(n))
    with open(path, "r+b") as f:
        f.seek(off)
        old = f.read(n)
        if old == new:
            sys.exit(3)
        f.seek(off)
        f.write(new)
else:
    sys.exit(f"unknown mode {mode}")
first = next(i for i in range(n) if old[i] != new[i]) + off
where = next((name for s, e, name in spans if s <= first < e), "metadata/free space")
print(f"{n} byte(s) at {off} of {size} (first changed byte {first}: {where})")
PY
}

# ---- references -----------------------------------------------------------------------------------------
# G: the length of the kill chains of the short form and of the full-disk trials (the damaged
# checkpoints are always the G=12 reference's). At 12 with checkpoints every 1-4 generations a kill
# still lands before, between and during checkpoint writes; --long adds chains of 30 and 60.
if [[ $form == short ]]; then
  gens_list=(12)
  G=12
else
  gens_list=(12 30 60)
  G=30
fi
log "form --$form, seed $seed (rerun with --seed $seed to replay), binary $bin_src, work $work"
have_mpi=0
if [[ $form == long ]]; then
  if command -v mpirun >/dev/null 2>&1; then have_mpi=1; else log "no mpirun: the 2-rank trials are skipped"; fi
fi

declare -A REF=() REF_MS=()
for g in "${gens_list[@]}"; do
  d="$work/ref-$g"
  s=$(now_ms)
  run_search "$work/ref-$g.log" 1 300 --out "$d" --generations "$g"
  REF_MS[$g]=$(($(now_ms) - s))
  if [[ $RC -ne 0 || ! -f "$d/archive.h5" ]]; then
    fail "reference G=$g: uninterrupted search exited $RC$(what_signal "$RC")"
    tail_of "$work/ref-$g.log" 10
    echo "0 passed, 1 failed"
    exit 1
  fi
  REF[$g]="$d/archive.h5"
  log "reference G=$g: $((REF_MS[$g])) ms"
done

# ---- 1. kill -9 chains ----------------------------------------------------------------------------------
# kill_now PID NP DIR: kill -9 the search (under mpirun: one of three ways); KMODE says which.
kill_now() {
  local pid=$1 np=$2 ranks r
  if ((np == 1)); then
    KMODE=serial
    kill -9 "$pid" 2>/dev/null || true
    return 0
  fi
  ranks=$(children "$pid")
  rnd 3
  case $R in
    0)
      KMODE=group # mpirun's process group (the ranks have their own groups: they are orphaned)
      kill -9 -- "-$pid" 2>/dev/null || true
      ;;
    1)
      KMODE="ranks-then-mpirun"
      for r in $ranks; do kill -9 "$r" 2>/dev/null || true; done
      kill -9 "$pid" 2>/dev/null || true
      ;;
    2)
      KMODE=one-rank # mpirun must take the job down itself
      # shellcheck disable=SC2206  # split the pid list
      local arr=($ranks)
      if [[ ${#arr[@]} -gt 0 ]]; then
        rnd "${#arr[@]}"
        kill -9 "${arr[$R]}" 2>/dev/null || true
      else
        kill -9 "$pid" 2>/dev/null || true
      fi
      ;;
  esac
}

# trigger PID DIR LOG GENS KIND: wait for the moment to kill (KIND time|gen|write); 1 if the search
# ended first.
trigger() {
  local pid=$1 dir=$2 logf=$3 gens=$4 kind=$5 limit=$((SECONDS + 120)) start k n
  case $kind in
    time)
      rnd $((REF_MS[$gens] + 1))
      local deadline=$(($(now_ms) + R))
      while (($(now_ms) < deadline)); do
        is_running "$pid" || return 1
        nap 0.01
      done
      ;;
    gen | write)
      # the first generation of this run, then K more generation lines
      until start=$(sed -n 's/.* at generation \([0-9]*\) of .*/\1/p' "$logf" 2>/dev/null) && [[ -n "$start" ]]; do
        is_running "$pid" && ((SECONDS < limit)) || return 1
        nap 0.01
      done
      rnd $((gens - start + 1))
      k=$R
      while :; do
        n=$(grep -c '^\[search\] gen ' "$logf" 2>/dev/null || true)
        ((n > k)) && break
        is_running "$pid" && ((SECONDS < limit)) || return 1
        nap 0.005
      done
      if [[ $kind == write ]]; then # then the next temporary file: a write in progress
        until compgen -G "$dir/*.tmp-*" >/dev/null; do
          is_running "$pid" && ((SECONDS < limit)) || return 1
          nap 0.001
        done
        rnd 4
        ((R == 0)) || nap "0.00$R"
      fi
      ;;
  esac
  is_running "$pid"
}

# kill_chain ID NP GENS GROW: kill -9 a search 1-3 times, resuming after each, until it completes;
# NP 2: under mpirun (resumed runs on 1 or 2 ranks); GROW 1: the first runs stop at GENS/2 and a
# later one resumes to GENS.
kill_chain() {
  local id=$1 mpi_np=$2 gens=$3 grow=$4
  local dir="$work/kill-$id" planned kills=0 missed=0 runs=0 np iv kind how target logf temps_before
  local notes="" bad="" mid=0 tgs="" kms=""
  rnd 3
  planned=$((R + 1))
  local first_target=$gens
  if ((grow)); then first_target=$((gens / 2)); fi
  target=$first_target
  mkdir -p "$dir"
  while :; do
    runs=$((runs + 1))
    if ((runs > planned + 8)); then
      bad="no completed run after $((runs - 1)) runs"
      break
    fi
    logf="$dir.run$runs.log"
    np=1
    if ((mpi_np > 1)); then
      rnd 2
      ((runs == 1 || R == 0)) && np=$mpi_np
    fi
    local ivs=(1 1 2 4 0)
    rnd ${#ivs[@]}
    iv=${ivs[$R]}
    local args=(--out "$dir" --generations "$target" --checkpoint-interval "$iv")
    ((iv == 0)) && args+=(--checkpoint-minutes 0)
    if [[ -f "$dir/checkpoint.h5" ]]; then
      args+=(--resume)
      how=resume
      tally kill.resumes
    elif [[ -f "$dir/archive.h5" || -f "$dir/checkpoint.prev.h5" ]]; then
      if [[ -f "$dir/checkpoint.prev.h5" ]]; then
        bad="checkpoint.prev.h5 without checkpoint.h5 after a kill (the write protocol keeps checkpoint.h5 in place)"
        break
      fi
      args+=(--overwrite)
      how=overwrite
      tally kill.fresh
    else
      how=fresh
      tally kill.fresh
    fi
    temps_before=$(temporaries "$dir")
    start_search "$logf" "$np" "${args[@]}"
    local pid=$PID
    if ((kills < planned)); then
      local kinds=(time gen gen write write write)
      rnd ${#kinds[@]}
      kind=${kinds[$R]}
      if trigger "$pid" "$dir" "$logf" "$target" "$kind"; then
        kill_now "$pid" "$np" "$dir"
        await "$pid" 60
        if ((RC == 0)); then
          missed=$((missed + 1)) # it ended between the check and the kill
          tally kill.missed
          if ((kills == 0)); then # not one fault yet: start over
            rm -rf "$dir" && mkdir -p "$dir"
            target=$first_target
            continue
          fi
        else
          kills=$((kills + 1))
          tally kill.kills
          tally "kill.mode.$KMODE"
          tgs+="${tgs:+,}$kind"
          kms+="${kms:+,}$KMODE"
          if ! settle "$dir" 30; then
            bad="processes of the killed job (mode $KMODE) still ran ${STRAY_MS} ms later (killed now)"
            break
          fi
          if ((np > 1 && STRAY_MS >= ${T[kill.stray_ms_max]:-0})); then T[kill.stray_ms_max]=$STRAY_MS; fi
          if [[ -n "$(temporaries "$dir")" ]]; then
            mid=$((mid + 1))
            tally kill.midwrite
          fi
          if ((RC != 137)) && ! grep -q 'exited on signal 9\|killed\|Killed' "$logf"; then
            notes+=" [run $runs exit $RC$(what_signal "$RC") after kill -9 ($KMODE)]"
          fi
          continue
        fi
      else
        missed=$((missed + 1))
        tally kill.missed
        await "$pid" 120
        if ((RC == 0 && kills == 0)); then # not one fault yet: start over
          rm -rf "$dir" && mkdir -p "$dir"
          target=$first_target
          continue
        fi
      fi
    else
      await "$pid" 120
    fi
    # this run was not killed: it must have completed
    if ((HUNG)); then
      bad="run $runs ($how, np $np) hung for 120 s"
      break
    fi
    if ((RC != 0)); then
      bad="run $runs ($how, np $np, interval $iv) exited $RC$(what_signal "$RC"):"$'\n'"$(tail_of "$logf")"
      break
    fi
    if [[ -n "$temps_before" ]]; then
      if grep -q 'removed [0-9]* temporary file' "$logf"; then
        tally kill.temps_removed
      else
        bad="run $runs started with temporaries ($temps_before) but did not report removing them"
        break
      fi
    fi
    if ((target < gens)); then # grow: the first phase is done, resume to the full length
      target=$gens
      tally kill.grown
      continue
    fi
    break
  done
  local grown=""
  if ((grow)); then grown=", grown from $((gens / 2))"; fi
  local label="kill-chain #$id (np $mpi_np, G=$gens$grown, $kills kill(s) [$tgs] ${kms:+modes [$kms] }$mid mid-write, $runs run(s))"
  if [[ -z "$bad" ]]; then
    local diffs left
    left=$(temporaries "$dir")
    if [[ ! -f "$dir/archive.h5" ]]; then
      bad="no archive.h5 after the final run"
    elif [[ -n "$left" ]]; then
      bad="temporary files left after the final run: $left"
    elif ! diffs=$(same_archive "$dir/archive.h5" "${REF[$gens]}" 2>&1); then
      bad="archive differs from the uninterrupted run's:"$'\n'"    ${diffs//$'\n'/$'\n'    }"
    fi
  fi
  tally kill.chains
  if [[ -z "$bad" ]]; then
    tally kill.identical
    pass "$label: archive identical$notes"
  else
    fail "$label: $bad$notes"
  fi
}

echo "==== 1. kill -9 at random moments, then resume ==== [at $((SECONDS - t0)) s]"
if [[ $form == short ]]; then
  for i in 1 2 3; do kill_chain "$i" 1 "$G" 0; done
else
  id=0
  for ((i = 0; i < 20; i++)); do
    id=$((id + 1))
    rnd 2
    kill_chain "$id" 1 "$( ((R)) && echo 60 || echo 30)" 0
  done
  for ((i = 0; i < 3; i++)); do id=$((id + 1)); kill_chain "$id" 1 60 1; done
  if ((have_mpi)); then
    for ((i = 0; i < 12; i++)); do
      id=$((id + 1))
      rnd 2
      kill_chain "$id" 2 "$( ((R)) && echo 60 || echo 30)" 0
    done
    id=$((id + 1))
    kill_chain "$id" 2 60 1
  else
    skip "kill-chains under mpirun: no mpirun"
  fi
fi

# ---- 2. damaged checkpoints -------------------------------------------------------------------------------
# The base: the G=12 reference's directory: checkpoint.h5 (generation 12) and checkpoint.prev.h5 (8).
echo "==== 2. damaged checkpoints ==== [at $((SECONDS - t0)) s]"
# corrupt_trial ID CHECK_PREV BOTH
corrupt_trial() {
  local id=$1 check_prev=$2 both=$3 dir="$work/ck-$1" src modes mode what rc logf size tries=0 bad=""
  local ref_dir="$work/ref-12"
  mkdir -p "$dir"
  rnd 3
  if ((R == 0 && !check_prev && !both)); then
    src=mid # the generation-8 checkpoint alone
    cp "$ref_dir/checkpoint.prev.h5" "$dir/checkpoint.h5"
  else
    src=final # generation 12, with checkpoint.prev.h5 (8)
    cp "$ref_dir/checkpoint.h5" "$ref_dir/checkpoint.prev.h5" "$dir/"
  fi
  modes=(bytes bytes ff64 rand4k)
  [[ $form == long ]] && modes+=(trunc)
  rnd ${#modes[@]}
  mode=${modes[$R]}
  size=$(stat -c %s "$dir/checkpoint.h5")
  while :; do
    rnd "$size"
    local off=$R
    rnd 1000000
    rc=0
    what=$(damage "$dir/checkpoint.h5" "$mode" "$off" "$R" 2>&1) || rc=$?
    [[ $rc -eq 3 && $tries -lt 10 ]] && { tries=$((tries + 1)); continue; }
    break
  done
  if ((rc != 0)); then
    fail "corrupt #$id: could not damage the copy ($mode): $what"
    return 0
  fi
  if ((both)); then
    rnd "$(stat -c %s "$dir/checkpoint.prev.h5")"
    local off2=$R
    rnd 1000000
    damage "$dir/checkpoint.prev.h5" ff64 "$off2" "$R" >/dev/null 2>&1 || damage "$dir/checkpoint.prev.h5" rand4k "$off2" "$R" >/dev/null
  fi
  local also=""
  if ((both)); then also="; checkpoint.prev.h5 damaged too"; fi
  local label="corrupt #$id ($src checkpoint, $mode: $what$also)"
  logf="$dir.log"
  run_search "$logf" 1 120 --out "$dir" --generations 12 --resume
  tally corrupt.total
  tally "corrupt.mode.$mode.total"
  if ((HUNG)); then
    fail "$label: --resume hung for 120 s"
    return 0
  fi
  if ((RC == 2)); then
    local err first note=""
    err=$(grep -A3 'error' "$logf" || true)
    err=${err//$work\//} # (the work directory's name must not count as a word of the message)
    first=${err%%$'\n'*}
    if [[ -z "$err" ]]; then
      bad="exit 2 but no error message"
    elif ! grep -q 'checkpoint\.h5' <<<"$err"; then
      bad="exit 2 but the message does not name checkpoint.h5"
    elif [[ -f "$dir/checkpoint.prev.h5" ]] && ! grep -q 'checkpoint\.prev\.h5' "$logf"; then
      bad="exit 2 but no line naming checkpoint.prev.h5, which exists"
    elif ((!both)) && [[ -f "$dir/checkpoint.prev.h5" ]] && ! grep -q 'move it onto' "$logf"; then
      bad="exit 2 but does not say how to resume from checkpoint.prev.h5"
    fi
    if [[ -n "$bad" ]]; then
      fail "$label: $bad"$'\n'"$(tail_of "$logf" 3)"
      return 0
    fi
    tally corrupt.detected
    tally "corrupt.mode.$mode.detected"
    if ! grep -qiE 'corrupt|HDF5|damaged|truncat|checksum|CRC' <<<"$err"; then
      tally corrupt.vague
      note=" [note: the message does not say the file is damaged]"
    fi
    pass "$label: refused (exit 2): ${first:0:160}$note"
    if ((both)) && grep -q 'move it onto' "$logf"; then
      # the hint calls the (damaged) checkpoint.prev.h5 usable: following it must be refused as well
      mv "$dir/checkpoint.prev.h5" "$dir/checkpoint.h5"
      run_search "$dir.prev.log" 1 120 --out "$dir" --generations 12 --resume
      tally corrupt.total
      if ((RC == 2)); then
        tally corrupt.detected
        pass "corrupt #$id: the hint named the damaged checkpoint.prev.h5 as usable (only its header is read);" \
          "moved onto checkpoint.h5 it is refused (exit 2)"
      else
        fail "corrupt #$id: the damaged checkpoint.prev.h5, moved onto checkpoint.h5 as the hint says, exited $RC$(what_signal "$RC") (expected 2)"
      fi
    fi
  elif ((RC == 0)); then
    local diffs verdict
    # Bytes in space HDF5 does not use (free or padding) change nothing that is read: every dataset
    # and the header passed their checksums, so only the result can tell harmless from harmful.
    if diffs=$(same_archive "$dir/archive.h5" "${REF[12]}" 2>&1); then
      tally corrupt.undetected_harmless
      pass "$label: resumed (exit 0) to the reference archive: the damaged bytes lay in unused space"
    else
      tally corrupt.undetected_harmful
      fail "$label: NOT detected: --resume exited 0 and the archive differs: ${diffs%%$'\n'*}"
    fi
    return 0
  else
    tally corrupt.crashed
    fail "$label: --resume exited $RC$(what_signal "$RC") (expected 2)"$'\n'"$(tail_of "$logf" 4)"
    return 0
  fi
  if ((check_prev)); then
    # what the message says: move checkpoint.prev.h5 onto checkpoint.h5 and resume
    mv "$dir/checkpoint.prev.h5" "$dir/checkpoint.h5"
    run_search "$dir.prev.log" 1 120 --out "$dir" --generations 12 --resume
    tally corrupt.prev_total
    local diffs
    if ((RC != 0)); then
      fail "corrupt #$id: resuming from the moved checkpoint.prev.h5 exited $RC$(what_signal "$RC")"$'\n'"$(tail_of "$dir.prev.log" 4)"
    elif ! diffs=$(same_archive "$dir/archive.h5" "${REF[12]}" 2>&1); then
      fail "corrupt #$id: resumed from checkpoint.prev.h5, but the archive differs: ${diffs%%$'\n'*}"
    else
      tally corrupt.prev_ok
      pass "corrupt #$id: checkpoint.prev.h5 moved onto checkpoint.h5 resumes to the reference archive"
    fi
  fi
}
if [[ $form == short ]]; then
  for i in 1 2 3 4 5; do corrupt_trial "$i" "$((i == 1))" 0; done
else
  for ((i = 1; i <= 80; i++)); do corrupt_trial "$i" "$((i % 10 == 1))" 0; done
  for ((i = 81; i <= 83; i++)); do corrupt_trial "$i" 0 1; done
fi

# ---- 3. full disk ----------------------------------------------------------------------------------------
echo "==== 3. full disk (tmpfs) ==== [at $((SECONDS - t0)) s]"
fulldisk_reason=""
mnt="$work/mnt"
if [[ $EUID -ne 0 ]]; then
  fulldisk_reason="not root (mounting a tmpfs needs root)"
elif ! command -v mount >/dev/null 2>&1; then
  fulldisk_reason="no mount command"
else
  mkdir -p "$mnt"
  if out=$(mount -t tmpfs -o size=64k tmpfs "$mnt" 2>&1); then
    umount "$mnt"
  else
    fulldisk_reason="mount -t tmpfs failed: ${out:-no message}"
  fi
fi
ck_bytes=$(stat -c %s "$work/ref-$G/checkpoint.h5")
ar_bytes=$(stat -c %s "$work/ref-$G/archive.h5")
# fulldisk_trial ID CASE NP: CASE second|third (the 2nd or 3rd checkpoint does not fit) or archive.
fulldisk_trial() {
  local id=$1 case=$2 np=$3 bytes iv label dir logf roomy="$work/fulldisk-$1" bad="" err
  case $case in
    second) bytes=$((ck_bytes * 3 / 2)) iv=4 ;;
    third) bytes=$((ck_bytes * 5 / 2)) iv=4 ;;
    archive) bytes=$((ck_bytes + ar_bytes / 2 + 8192)) iv=0 ;;
  esac
  local kib=$(((bytes + 1023) / 1024))
  label="full-disk #$id (np $np, ${kib} KiB tmpfs, the $case $( [[ $case == archive ]] && echo "write" || echo "checkpoint") does not fit)"
  mkdir -p "$mnt"
  if ! out=$(mount -t tmpfs -o "size=${kib}k,mode=0755" tmpfs "$mnt" 2>&1); then
    skip "$label: mount failed: $out"
    return 0
  fi
  mounts+=("$mnt")
  dir="$mnt/run"
  logf="$work/fulldisk-$id.log"
  local args=(--out "$dir" --generations "$G" --checkpoint-interval "$iv")
  ((iv == 0)) && args+=(--checkpoint-minutes 0)
  run_search "$logf" "$np" 120 "${args[@]}"
  local left
  left=$(temporaries "$dir")
  mkdir -p "$roomy"
  cp -a "$dir/." "$roomy/" 2>/dev/null || true
  umount "$mnt" || umount -l "$mnt"
  mounts=("${mounts[@]/$mnt/}")
  tally fulldisk.total
  err=$(grep -m1 'error' "$logf" || true)
  err=${err//$work\//}
  if ((HUNG)); then
    bad="hung for 120 s"
  elif ((RC != 2)); then
    bad="exit $RC$(what_signal "$RC"), expected 2"
    ((RC > 128)) && tally fulldisk.crashed
  fi
  if [[ -z "$err" ]]; then
    bad+="${bad:+; }no error message"
  else
    grep -qE '(checkpoint|archive)\.h5' <<<"$err" || bad+="${bad:+; }the message names no file"
    grep -qiE 'no space|ENOSPC|disk( is)? full|full' <<<"$(grep -A2 'error' "$logf")" ||
      bad+="${bad:+; }the message does not say the disk is full"
  fi
  [[ -z "$left" ]] || bad+="${bad:+; }temporary files left: ${left//$mnt\//}"
  if [[ $case == archive && -f "$roomy/archive.h5" ]]; then
    bad+="${bad:+; }an archive.h5 is there although writing it failed"
  fi
  # the checkpoint left on the full disk must resume (in a roomy place) to the reference
  if [[ ! -f "$roomy/checkpoint.h5" ]]; then
    bad+="${bad:+; }no checkpoint.h5 left to resume from"
  else
    rm -f "$roomy/archive.h5"
    run_search "$roomy.resume.log" 1 120 --out "$roomy" --generations "$G" --resume
    local diffs
    if ((RC != 0)); then
      bad+="${bad:+; }resuming the checkpoint it left exited $RC$(what_signal "$RC"): $(grep -m1 error "$roomy.resume.log" || true)"
    elif ! diffs=$(same_archive "$roomy/archive.h5" "${REF[$G]}" 2>&1); then
      bad+="${bad:+; }resumed from the checkpoint it left, but the archive differs: ${diffs%%$'\n'*}"
    else
      tally fulldisk.resumed_ok
    fi
  fi
  if [[ -z "$bad" ]]; then
    tally fulldisk.ok
    pass "$label: exit 2, ${err:0:140}...; no temporaries; its checkpoint resumes to the reference"
  else
    fail "$label: $bad"$'\n'"$(grep -A7 -m1 'error' "$logf" | sed 's/^/    | /')"
  fi
}
if [[ -n "$fulldisk_reason" ]]; then
  echo "SKIP full-disk: $fulldisk_reason"
  n_skip=$((n_skip + 1))
elif [[ $form == short ]]; then
  rnd 2
  fulldisk_trial 1 "$( ((R)) && echo third || echo second)" 1
  fulldisk_trial 2 archive 1
else
  fulldisk_trial 1 second 1
  fulldisk_trial 2 third 1
  fulldisk_trial 3 archive 1
  if ((have_mpi)); then
    fulldisk_trial 4 second 2
    fulldisk_trial 5 archive 2
  fi
fi

# ---- 4. concurrent searches into one directory ---------------------------------------------------------------
echo "==== 4. two searches started at once into one directory ==== [at $((SECONDS - t0)) s]"
# concurrent_trial ID NP_A NP_B STAGGER_MS
concurrent_trial() {
  local id=$1 npa=$2 npb=$3 stagger=$4 dir="$work/concurrent-$1" pa pb rca rcb bad="" winner loser
  local la="$work/concurrent-$1.a.log" lb="$work/concurrent-$1.b.log"
  local label="concurrent #$id (np $npa + np $npb, second started ${stagger} ms later)"
  start_search "$la" "$npa" --out "$dir" --generations 12
  pa=$PID
  ((stagger > 0)) && nap "$(printf '0.%03d' "$stagger")"
  start_search "$lb" "$npb" --out "$dir" --generations 12
  pb=$PID
  await "$pa" 120
  rca=$RC
  local hung=$HUNG
  await "$pb" 120
  rcb=$RC
  hung=$((hung + HUNG))
  tally concurrent.total
  if ((hung)); then
    bad="a search hung for 120 s"
  elif ((rca == 0 && rcb == 0)); then
    bad="both exited 0"
  elif ((rca == 0 && rcb == 2)); then
    winner=a loser=$lb
  elif ((rca == 2 && rcb == 0)); then
    winner=b loser=$la
  else
    bad="exits $rca$(what_signal "$rca") and $rcb$(what_signal "$rcb"), expected one 0 and one 2"
  fi
  if [[ -z "$bad" ]]; then
    if grep -q 'in use by another repsearch process' "$loser"; then
      tally concurrent.in_use
      # serial against serial: the refusal names the winner's pid
      if ((npa == 1 && npb == 1)); then
        local want
        want=$([[ $winner == a ]] && echo "$pa" || echo "$pb")
        grep -q "pid $want\b" "$loser" || bad="the refusal does not name the running search's pid $want: $(grep -m1 'in use' "$loser")"
      fi
    elif grep -q 'already holds' "$loser"; then
      tally concurrent.already_holds
    else
      bad="the refused search says neither 'in use' nor 'already holds':"$'\n'"$(tail_of "$loser" 3)"
    fi
  fi
  if [[ -z "$bad" ]]; then
    local diffs
    if ! diffs=$(same_archive "$dir/archive.h5" "${REF[12]}" 2>&1); then
      bad="the archive differs from the reference: ${diffs%%$'\n'*}"
    elif [[ -n "$(temporaries "$dir")" ]]; then
      bad="temporary files left: $(temporaries "$dir")"
    fi
  fi
  if [[ -z "$bad" ]]; then
    tally concurrent.ok
    pass "$label: one ran (exit 0), the other was refused: $(grep -m1 -oE 'in use by another repsearch process|already holds' "$loser"); archive intact"
  else
    fail "$label: $bad"
  fi
}
if [[ $form == short ]]; then
  concurrent_trial 1 1 1 0
else
  for ((i = 1; i <= 8; i++)); do
    npa=1 npb=1
    if ((have_mpi)); then
      rnd 3
      ((R == 1)) && npb=2
      ((R == 2)) && npa=2 && npb=2
    fi
    rnd 4
    stagger=$((R == 0 ? 0 : R * 100 - 50))
    concurrent_trial "$i" "$npa" "$npb" "$stagger"
  done
fi

# ---- 5. stale temporaries -----------------------------------------------------------------------------------------
echo "==== 5. stale temporary files ==== [at $((SECONDS - t0)) s]"
# stale_trial ID VARIANT: resume (from the generation-8 checkpoint), overwrite (fresh start over a
# checkpoint) or empty (a directory holding only temporaries: a fresh start must be allowed).
stale_trial() {
  local id=$1 variant=$2 dir="$work/stale-$1" logf="$work/stale-$1.log" bad="" f n
  mkdir -p "$dir"
  [[ $variant != empty ]] && cp "$work/ref-12/checkpoint.prev.h5" "$dir/checkpoint.h5"
  local fakes=(checkpoint.h5.tmp-12345 archive.h5.tmp-999)
  [[ $form == long ]] && fakes+=(checkpoint.prev.h5.tmp-4242)
  for f in "${fakes[@]}"; do head -c 5000 "$work/ref-12/checkpoint.h5" >"$dir/$f"; done
  echo "not repsearch's" >"$dir/notes.txt.tmp-1" # someone else's file: must be left alone
  local args=(--out "$dir" --generations 12)
  case $variant in
    resume) args+=(--resume) ;;
    overwrite) args+=(--overwrite) ;;
  esac
  run_search "$logf" 1 120 "${args[@]}"
  tally stale.total
  if ((RC != 0)); then
    bad="exited $RC$(what_signal "$RC"):"$'\n'"$(tail_of "$logf" 3)"
  else
    for f in "${fakes[@]}"; do [[ ! -e "$dir/$f" ]] || bad+="${bad:+; }$f is still there"; done
    [[ -f "$dir/notes.txt.tmp-1" ]] || bad+="${bad:+; }notes.txt.tmp-1 (not repsearch's) was removed"
    n=$(sed -n 's/.*removed \([0-9]*\) temporary file.*/\1/p' "$logf" | head -n 1)
    if [[ -z "$n" ]]; then
      bad+="${bad:+; }the output does not mention the removal"
    elif ((n != ${#fakes[@]})); then
      bad+="${bad:+; }it says it removed $n file(s), there were ${#fakes[@]}"
    fi
    local diffs
    diffs=$(same_archive "$dir/archive.h5" "${REF[12]}" 2>&1) || bad+="${bad:+; }the archive differs: ${diffs%%$'\n'*}"
  fi
  local label="stale #$id ($variant, ${#fakes[@]} stale temporaries)"
  if [[ -z "$bad" ]]; then
    tally stale.ok
    pass "$label: $(grep -m1 -o 'removed [0-9]* temporary file(s)' "$logf"); archive identical"
  else
    fail "$label: $bad"
  fi
}
if [[ $form == short ]]; then
  stale_trial 1 resume
else
  stale_trial 1 resume
  stale_trial 2 overwrite
  stale_trial 3 empty
fi

# ---- 6. learn and sgd: kill -9 at random moments, then run again ----------------------------------------------
echo "==== 6. learn and sgd: kill -9 at random moments, then run again ==== [at $((SECONDS - t0)) s]"
# Each job writes several networks into one directory: learn --elite all (one per elite of the G=12
# reference archive) or sgd --seeds 0..2, 10 epochs. After every kill: no results file beside a
# network file it does not describe, no summary older than a results file it lists. After the run
# that completes: the reference's results (predictions, trajectories, accuracies), no temporaries, no
# lock files, and the removal of the killed runs' temporaries reported.
learn_cmd() { # learn_cmd KIND DIR: the job's command line
  if [[ $1 == learn ]]; then
    echo "$bin learn --archive ${REF[12]} --elite all --epochs 10 --out $2"
  else
    echo "$bin sgd --config $config --seeds 0..2 --epochs 10 --out $2"
  fi
}

# check_outputs DIR: what a reader may meet in DIR at any moment; prints the problems, 1 if any.
check_outputs() {
  "$py" - "$repo/analysis" "$1" <<'PY'
import glob, json, os, sys
sys.path.insert(0, sys.argv[1])
import repsearch_h5 as rh
d, problems = sys.argv[2], []
for h5 in sorted(glob.glob(os.path.join(d, "learn-*.h5")) + glob.glob(os.path.join(d, "sgd-*.h5"))):
    pt = h5[:-3] + ".pt"
    if not os.path.isfile(pt):
        problems.append(f"{os.path.basename(h5)} has no network file beside it")
        continue
    why = rh.check_network_file(h5)
    if why:
        problems.append(f"{os.path.basename(h5)}: {why}")
for s in sorted(glob.glob(os.path.join(d, "*-summary.json"))):
    try:
        rows = json.load(open(s))["networks"]
    except (ValueError, KeyError, OSError) as e:
        problems.append(f"{os.path.basename(s)} unreadable: {e}")
        continue
    for row in rows:
        r = os.path.join(d, os.path.basename(row["results"]))
        if not os.path.isfile(r):
            problems.append(f"{os.path.basename(s)} lists {os.path.basename(r)}, which is not there")
        elif os.path.getmtime(r) > os.path.getmtime(s):
            problems.append(f"{os.path.basename(s)} is older than {os.path.basename(r)}, which it lists (stale)")
print("; ".join(problems))
sys.exit(1 if problems else 0)
PY
}

# same_results DIR REF: every results file of REF in DIR with the same predictions, trajectory and
# accuracies, and the same summaries; prints the differences, 1 if any.
same_results() {
  "$py" - "$repo/analysis" "$1" "$2" <<'PY'
import glob, json, os, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import repsearch_h5 as rh
d, ref, diffs = sys.argv[2], sys.argv[3], []
for want in sorted(glob.glob(os.path.join(ref, "*-*.h5"))):
    name = os.path.basename(want)
    got = os.path.join(d, name)
    if not os.path.isfile(got):
        diffs.append(f"no {name}")
        continue
    a, b = rh.read_results(got), rh.read_results(want)
    if not all(np.array_equal(a["accuracy"][k], b["accuracy"][k], equal_nan=True) for k in b["accuracy"]):
        diffs.append(f"{name}: accuracies {a['accuracy']} vs {b['accuracy']}")
    for part, key in (("predictions", "test_probabilities"), ("trajectory", "activations")):
        if not np.array_equal(a[part][key], b[part][key]):
            diffs.append(f"{name}: {part}/{key} differ")
for want in sorted(glob.glob(os.path.join(ref, "*-summary.json"))):
    got = os.path.join(d, os.path.basename(want))
    rows = lambda p: [(os.path.basename(r["results"]), r["test"]) for r in json.load(open(p))["networks"]]
    if not os.path.isfile(got) or rows(got) != rows(want):
        diffs.append(f"{os.path.basename(want)} missing or different")
print("; ".join(diffs))
sys.exit(1 if diffs else 0)
PY
}
locks() { compgen -G "$1/*.lock" 2>/dev/null | tr '\n' ' ' || true; }

declare -A LREF=() LREF_MS=()
for kind in learn sgd; do
  d="$work/ref-$kind"
  s=$(now_ms)
  # shellcheck disable=SC2046  # the command line is words
  $(learn_cmd $kind "$d") >"$d.log" 2>&1 || die "reference $kind run failed: $(tail -n 3 "$d.log")"
  LREF_MS[$kind]=$(($(now_ms) - s))
  LREF[$kind]=$d
  log "reference $kind: ${LREF_MS[$kind]} ms"
done

# learn_chain ID KIND: kill -9 the job 1-3 times (at a random time, or while a file is being
# written), checking what it leaves after each kill; then run it to the end.
learn_chain() {
  local id=$1 kind=$2 dir="$work/$2-kill-$1" planned kills=0 runs=0 bad="" notes="" logf temps_before why mid=0 tgs=""
  rnd 3
  planned=$((R + 1))
  mkdir -p "$dir"
  while :; do
    runs=$((runs + 1))
    if ((runs > planned + 6)); then
      bad="no completed run after $((runs - 1)) runs"
      break
    fi
    logf="$dir.run$runs.log"
    temps_before=$(temporaries "$dir")
    [[ -n "$temps_before" ]] && tally learn.temps_left
    # shellcheck disable=SC2046
    $(learn_cmd "$kind" "$dir") >"$logf" 2>&1 &
    PID=$!
    live+=("$PID")
    if ((kills < planned)); then
      local when kinds=(time time write write)
      rnd ${#kinds[@]}
      when=${kinds[$R]}
      local hit=1 limit=$((SECONDS + 60))
      if [[ $when == time ]]; then
        rnd $((LREF_MS[$kind] + 1))
        local deadline=$(($(now_ms) + R))
        while (($(now_ms) < deadline)); do is_running "$PID" || { hit=0; break; }; nap 0.01; done
      else
        rnd 3 # the first, second or third temporary file seen (a network, results, or the summary)
        local skip=$R seen=""
        while :; do
          is_running "$PID" && ((SECONDS < limit)) || { hit=0; break; }
          local now_t
          now_t=$(temporaries "$dir")
          if [[ -n "$now_t" && "$now_t" != "$seen" && "$now_t" != "$temps_before" ]]; then
            ((skip == 0)) && break
            skip=$((skip - 1))
            seen=$now_t
          fi
          nap 0.001
        done
      fi
      if ((hit)) && is_running "$PID"; then
        kill -9 "$PID" 2>/dev/null || true
        await "$PID" 60
        if ((RC != 0)); then
          kills=$((kills + 1))
          tally learn.kills
          [[ -n "$temps_before" ]] && grep -q 'removed [0-9]* temporary file' "$logf" && tally learn.temps_removed
          tgs+="${tgs:+,}$when"
          [[ -n "$(temporaries "$dir")" ]] && { mid=$((mid + 1)); tally learn.midwrite; }
          if ! why=$(check_outputs "$dir"); then
            bad="after kill $kills ($when): $why"
            break
          fi
          tally learn.consistent_after_kill
          continue
        fi
      else
        await "$PID" 120
      fi
      tally learn.missed
      ((RC == 0)) || { bad="run $runs exited $RC$(what_signal "$RC"): $(tail -n 2 "$logf")"; break; }
      continue # it completed before the kill: run it again (the next run replaces every network)
    fi
    await "$PID" 120
    if ((HUNG)); then
      bad="run $runs hung for 120 s"
    elif ((RC != 0)); then
      bad="run $runs exited $RC$(what_signal "$RC"): $(tail -n 3 "$logf")"
    elif [[ -n "$temps_before" ]] && ! grep -q 'removed [0-9]* temporary file' "$logf"; then
      bad="run $runs started with temporaries ($temps_before) but did not report removing them"
    elif [[ -n "$temps_before" ]]; then
      tally learn.temps_removed
    fi
    break
  done
  if [[ -z "$bad" ]]; then
    local diffs
    if [[ -n "$(temporaries "$dir")" ]]; then
      bad="temporary files left: $(temporaries "$dir")"
    elif [[ -n "$(locks "$dir")" ]]; then
      bad="lock files left: $(locks "$dir")"
    elif ! why=$(check_outputs "$dir"); then
      bad="$why"
    elif ! diffs=$(same_results "$dir" "${LREF[$kind]}"); then
      bad="results differ from the uninterrupted run's: $diffs"
    fi
  fi
  tally learn.chains
  local label="$kind kill-chain #$id ($kills kill(s) [$tgs], $mid mid-write, $runs run(s))"
  if [[ -z "$bad" ]]; then
    tally learn.identical
    pass "$label: consistent after every kill; results identical$notes"
  else
    fail "$label: $bad"
  fi
}
if [[ $form == short ]]; then
  learn_chain 1 learn
  learn_chain 2 learn
  learn_chain 3 sgd
else
  for ((i = 1; i <= 10; i++)); do learn_chain "$i" learn; done
  for ((i = 11; i <= 16; i++)); do learn_chain "$i" sgd; done
fi

# ---- 7. learn and sgd: a full disk, a read-only disk ------------------------------------------------------------
echo "==== 7. learn and sgd: a full disk and a read-only disk ==== [at $((SECONDS - t0)) s]"
first_learn=$(compgen -G "${LREF[learn]}/learn-*.h5" | head -n 1)
pt_bytes=$(stat -c %s "${first_learn%.h5}.pt")
h5_bytes=$(stat -c %s "$first_learn")
h5_max=$(stat -c %s "${LREF[learn]}"/learn-*.h5 | sort -n | tail -n 1)
# learn_disk_trial ID CASE: CASE network|results|second (the first network, its results, or the second
# network does not fit), sgd (sgd's first network does not fit), full (not even a lock file fits),
# readonly (a previous pair on a disk remounted read-only).
learn_disk_trial() {
  local id=$1 case=$2 bytes kind=learn bad="" err left want roomy="$work/learndisk-$1" logf="$work/learndisk-$1.log"
  case $case in
    network | sgd) bytes=$((pt_bytes / 2)) ;;
    results) bytes=$((pt_bytes + h5_bytes / 2 + 16384)) ;;
    second) bytes=$((2 * pt_bytes + h5_max + h5_bytes / 2 + 32768)) ;;
    readonly) bytes=$((4 * (pt_bytes + h5_bytes))) ;;
    full) bytes=65536 ;;
  esac
  [[ $case == sgd ]] && kind=sgd
  local kib=$(((bytes + 1023) / 1024)) dir="$mnt/out"
  local label="$kind disk #$id ($case, ${kib} KiB tmpfs)"
  mkdir -p "$mnt"
  if ! out=$(mount -t tmpfs -o "size=${kib}k,mode=0755" tmpfs "$mnt" 2>&1); then
    skip "$label: mount failed: $out"
    return 0
  fi
  mounts+=("$mnt")
  local cmd
  cmd=$(learn_cmd "$kind" "$dir")
  [[ $case == network || $case == results || $case == full ]] && cmd=${cmd/--elite all/--elite 0}
  if [[ $case == full ]]; then
    mkdir -p "$dir"
    head -c "$bytes" /dev/zero >"$mnt/filler" 2>/dev/null || true
  fi
  if [[ $case == readonly ]]; then
    mkdir -p "$dir"
    cp "$first_learn" "${first_learn%.h5}.pt" "$dir/"
    mount -o remount,ro "$mnt" || { skip "$label: remount read-only failed"; umount "$mnt"; return 0; }
    cmd=${cmd/--elite all/--elite 0}
  fi
  # shellcheck disable=SC2086
  $cmd >"$logf" 2>&1 &
  PID=$!
  live+=("$PID")
  await "$PID" 120
  left=$(temporaries "$dir")
  if ! why=$(check_outputs "$dir"); then bad="$why"; fi
  mkdir -p "$roomy"
  cp -a "$dir/." "$roomy/" 2>/dev/null || true
  umount "$mnt" || umount -l "$mnt"
  mounts=("${mounts[@]/$mnt/}")
  tally learndisk.total
  err=$(grep -m1 'error' "$logf" || true)
  err=${err//$work\//}
  local said # the error and the lines it runs on to (HDF5's reason spans lines)
  said=$(grep -m1 -A2 'error' "$logf" || true)
  want='No space left on device'
  [[ $case == readonly ]] && want='Read-only file system'
  if ((HUNG)); then
    bad+="${bad:+; }hung for 120 s"
  elif ((RC != 2)); then
    bad+="${bad:+; }exit $RC$(what_signal "$RC"), expected 2"
    ((RC > 128)) && tally learndisk.crashed
  fi
  grep -q "$want" <<<"$said" || bad+="${bad:+; }the message does not say '$want'"
  grep -qE "mnt/out/[a-z0-9.-]+" <<<"$err" || bad+="${bad:+; }the message names no file in $mnt/out"
  grep -qE 'frame #|Exception raised from|internal error' "$logf" && bad+="${bad:+; }a stack trace or internal error"
  [[ -z "$left" ]] || bad+="${bad:+; }temporary files left: ${left//$mnt\//}"
  [[ -z "$(compgen -G "$roomy/*-summary.json")" ]] || bad+="${bad:+; }a summary is there although the run failed"
  case $case in
    network | results | sgd) [[ -z "$(compgen -G "$roomy/*.h5")$(compgen -G "$roomy/*.pt")" ]] || bad+="${bad:+; }network or results files left" ;;
    full) [[ -z "$(ls -A "$roomy")" ]] || bad+="${bad:+; }files left: $(ls -A "$roomy" | tr '\n' ' ')" ;;
    second) [[ $(compgen -G "$roomy/learn-*.h5" | wc -l) == 1 ]] || bad+="${bad:+; }expected the first network's results alone" ;;
    readonly) cmp -s "$first_learn" "$roomy/$(basename "$first_learn")" || bad+="${bad:+; }the previous results changed" ;;
  esac
  if [[ -z "$bad" && $case == second ]]; then # the same job in a roomy place completes to the reference
    # shellcheck disable=SC2046
    if ! $(learn_cmd learn "$roomy") >"$roomy.rerun.log" 2>&1; then
      bad="run again elsewhere, it exited non-zero: $(grep -m1 error "$roomy.rerun.log")"
    elif ! why=$(same_results "$roomy" "${LREF[learn]}"); then
      bad="run again elsewhere, its results differ: $why"
    fi
  fi
  if [[ -z "$bad" ]]; then
    tally learndisk.ok
    pass "$label: exit 2, ${err:0:150}...; no temporaries, no stale files"
  else
    fail "$label: $bad"$'\n'"$(grep -A3 -m1 'error' "$logf" | sed 's/^/    | /')"
  fi
}
if [[ -n "$fulldisk_reason" ]]; then
  echo "SKIP learn/sgd disks: $fulldisk_reason"
  n_skip=$((n_skip + 1))
else
  learn_disk_trial 1 network
  learn_disk_trial 2 results
  learn_disk_trial 3 second
  learn_disk_trial 4 sgd
  learn_disk_trial 5 full
  learn_disk_trial 6 readonly
fi

# ---- summary ------------------------------------------------------------------------------------------------------
echo "==== summary (--$form, seed $seed, $((SECONDS - t0)) s) ===="
echo "kill -9: $(t kill.kills) kills ($(t kill.midwrite) during a write, leaving a temporary; modes:" \
  "serial $(t kill.mode.serial), group $(t kill.mode.group), ranks-then-mpirun $(t kill.mode.ranks-then-mpirun)," \
  "one-rank $(t kill.mode.one-rank)), $(t kill.missed) missed (the run ended first), $(t kill.resumes) resumes," \
  "$(t kill.fresh) fresh starts, $(t kill.grown) grown, temporaries reported removed $(t kill.temps_removed);" \
  "identical results $(t kill.identical)/$(t kill.chains)$( [[ -n "${T[kill.stray_ms_max]:-}" ]] && echo "; orphaned ranks gone after at most $(t kill.stray_ms_max) ms")"
modes_line=""
for m in bytes ff64 rand4k trunc; do
  [[ -n "${T[corrupt.mode.$m.total]:-}" ]] && modes_line+=" $m $(t "corrupt.mode.$m.detected")/$(t "corrupt.mode.$m.total")"
done
echo "corrupt: detected $(t corrupt.detected)/$(t corrupt.total) (by mode:$modes_line); undetected but harmless" \
  "$(t corrupt.undetected_harmless), undetected and harmful $(t corrupt.undetected_harmful), crashed $(t corrupt.crashed);" \
  "refused with a message that does not call the file damaged $(t corrupt.vague);" \
  "checkpoint.prev.h5 resumed to the reference $(t corrupt.prev_ok)/$(t corrupt.prev_total)"
if [[ -n "$fulldisk_reason" ]]; then
  echo "full disk: skipped ($fulldisk_reason)"
else
  echo "full disk: $(t fulldisk.ok)/$(t fulldisk.total) as expected; crashed $(t fulldisk.crashed);" \
    "checkpoint left resumed to the reference $(t fulldisk.resumed_ok)/$(t fulldisk.total)"
fi
echo "concurrent: $(t concurrent.ok)/$(t concurrent.total) with exactly one run (refused: in use" \
  "$(t concurrent.in_use), already holds $(t concurrent.already_holds))"
echo "stale temporaries: $(t stale.ok)/$(t stale.total) removed and reported"
echo "learn/sgd kill -9: $(t learn.kills) kills ($(t learn.midwrite) during a write, leaving a temporary)," \
  "$(t learn.missed) missed (the job ended first); consistent after the kill $(t learn.consistent_after_kill)/$(t learn.kills);" \
  "runs that found temporaries $(t learn.temps_left), of which reported removing them $(t learn.temps_removed)" \
  "(the others were killed first); identical results $(t learn.identical)/$(t learn.chains)"
if [[ -n "$fulldisk_reason" ]]; then
  echo "learn/sgd full and read-only disks: skipped ($fulldisk_reason)"
else
  echo "learn/sgd full and read-only disks: $(t learndisk.ok)/$(t learndisk.total) as expected; crashed $(t learndisk.crashed)"
fi
echo "skipped: $n_skip"
# A part this machine cannot run (the full disk needs root) fails the run unless skips were asked for.
if ((n_skip > 0)) && [[ "${REPSEARCH_ALLOW_SKIPS:-0}" != 1 ]]; then
  echo "FAIL $n_skip part(s) skipped because this machine cannot run them (SKIP lines above; REPSEARCH_ALLOW_SKIPS=1 allows it)"
  n_fail=$((n_fail + n_skip))
fi
echo "$n_pass passed, $n_fail failed"
((n_fail == 0))
