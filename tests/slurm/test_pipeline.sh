#!/usr/bin/env bash
# The Slurm pipeline against a real Slurm on this machine with two nodes: two hosts made of network
# namespaces (tests/multihost/harness.sh), one slurmd on each (NodeAddr = the host's address, 2 CPUs
# and 2 fake GPUs each), slurmctld on host 0 (tests/slurm/harness.sh). This script makes the hosts,
# then runs itself on host 0, where slurmctld is reachable; the hosts go when it ends.
#
#  1. slurm/submit.sh configs/smoke.ini --nodes 2 --seeds 0..1: search (2 ranks, one per node, 1 fake
#     GPU each; srun, MPI over TCP between the nodes) -> learn array (4 elites) + sgd array (2 seeds)
#     -> analysis; every job must end COMPLETED 0:0, the run directory must hold archive.h5,
#     4 learn-*.h5, sgd-0.h5, sgd-1.h5 (and report/report.md when analysis/report.py exists), and the
#     archive must name both nodes.
#  1b. The paper's chain: submit.sh smoke.ini --seeds 0..1 --sgd-depths 1,2 -- --space example: search
#     -> learn array (one task per seed) + sgd array (one per seed, depths 1 and 2) -> analysis: every job
#     COMPLETED 0:0, learn-all-d2-s{0,1} and sgd-d{1,2}-s{0,1} written, the report's Table 1 row printed.
#  2. Preemption: a longer 2-node search alone; once it logs generation 10, SIGUSR1 to its batch shell
#     (scancel --signal=USR1 --batch); the search checkpoints and exits 75, the job requeues itself,
#     runs again with --resume ("resumed at generation N", 0 < N < G) and completes; its archive must
#     equal that of the same search run straight through outside Slurm (elites, fitness, held-out).
#
# Runs as root (namespaces, slurmd). Exit status: 0 pass, 1 fail (also when this machine cannot run it:
# not root, no namespaces, Slurm not installed; the reason is printed), 77 skip (the same, with
# REPSEARCH_ALLOW_SKIPS=1).
# Environment: REPSEARCH_BIN (default build/repsearch), KEEP_TMP=1 keeps the temporary directory,
# TEST_SLURM_TIMEOUT (seconds per wait, default 150; at most 4 waits, so CTest needs TIMEOUT >= 700).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${REPSEARCH_BIN:-$repo/build/repsearch}"
harness="$repo/tests/slurm/harness.sh"
multihost="$repo/tests/multihost/harness.sh"
timeout_s="${TEST_SLURM_TIMEOUT:-150}"
gens=80 # the preemption search: signalled at generation 10, it stopped at 19-31 in runs here (loaded or not)
py=/usr/bin/python3
t0=$SECONDS

log() { echo "[test_pipeline $((SECONDS - t0))s] $*"; }
# shellcheck source=tests/cannot_run.sh
source "$repo/tests/cannot_run.sh"
skip() { cannot_run test_pipeline "$@"; }
failures=0
fail() {
  echo "[test_pipeline] FAIL: $*" >&2
  failures=$((failures + 1))
}

[[ $EUID -eq 0 ]] || skip "needs root (slurmd runs as root)"
[[ -x "$bin" ]] || skip "repsearch binary $bin not built"
[[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || -d /usr/share/datasets/fashion-mnist ]] ||
  skip "Fashion-MNIST not installed (dataset-fashion-mnist)"

# ---- the two hosts; the test itself runs on host 0 ------------------------------------------------------
if [[ -z "${REPSEARCH_PIPELINE_HOSTS:-}" ]]; then
  hosts_dir="$(mktemp -d /tmp/repsearch-slurm-hosts.XXXXXX)"
  export MULTIHOST_DIR="$hosts_dir" MULTIHOST_OWNER=$$
  body=""
  # shellcheck disable=SC2317  # called by the EXIT trap
  outer_cleanup() {
    local rc=$?
    [[ -n "$body" ]] && kill -TERM "$body" 2>/dev/null && wait "$body" 2>/dev/null
    "$multihost" down # also whatever the body left running on the hosts
    rm -rf "$hosts_dir"
    exit "$rc"
  }
  trap outer_cleanup EXIT
  trap 'exit 1' INT TERM
  "$multihost" up 2
  rc=$?
  [[ $rc -eq 77 ]] && skip "this machine cannot make the two hosts (see the harness's message above)"
  [[ $rc -eq 0 ]] || {
    echo "[test_pipeline] FAIL: tests/multihost/harness.sh up 2 failed (exit $rc)" >&2
    exit 1
  }
  REPSEARCH_PIPELINE_HOSTS="$hosts_dir" "$multihost" exec 0 "$repo/tests/slurm/test_pipeline.sh" "$@" &
  body=$!
  wait "$body"
  rc=$?
  body=""
  exit "$rc"
fi
export SLURM_HARNESS_HOSTS="$REPSEARCH_PIPELINE_HOSTS"
nodes=("$("$multihost" name 0)" "$("$multihost" name 1)")
log "on host ${nodes[0]}; Slurm nodes ${nodes[*]}"

tmp="$(mktemp -d /tmp/repsearch-slurm-test.XXXXXX)"
chmod 0755 "$tmp" # the munge user must reach the harness's munge directory inside
export SLURM_HARNESS_DIR="$tmp/slurm"

ref_pid=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$?
  [[ -n "$ref_pid" ]] && kill "$ref_pid" 2>/dev/null && wait "$ref_pid" 2>/dev/null
  "$harness" stop
  if [[ ($rc -eq 0 || $rc -eq 77) && "${KEEP_TMP:-0}" != 1 ]]; then
    rm -rf "$tmp"
  else
    echo "[test_pipeline] files kept in $tmp"
  fi
  echo "[test_pipeline] total $((SECONDS - t0)) s, exit $rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# A private copy of the binary, so that every job and the reference run the same one even when
# build/ is rebuilt meanwhile (it links only system libraries). Retry while a rebuild replaces it.
mkdir -p "$tmp/bin"
for ((i = 0; i < 60; i++)); do
  if [[ -x "$bin" ]] && cp "$bin" "$tmp/bin/repsearch" 2>/dev/null && "$tmp/bin/repsearch" --help >/dev/null 2>&1; then
    break
  fi
  sleep 2
done
"$tmp/bin/repsearch" --help >/dev/null 2>&1 || {
  echo "[test_pipeline] FAIL: could not take a working copy of $bin" >&2
  exit 1
}
bin="$tmp/bin/repsearch"

# ---- the Slurm ----------------------------------------------------------------------------------------
"$harness" start
rc=$?
[[ $rc -eq 77 ]] && skip "no Slurm on this machine (see the harness's message above)"
[[ $rc -eq 0 ]] || {
  echo "[test_pipeline] FAIL: the Slurm harness did not start (exit $rc)" >&2
  exit 1
}
eval "$("$harness" env)"

# Site settings for this Slurm: no partition/account/qos, one (fake) GPU per task to exercise the gres
# path, one CPU per task, short limits.
export REPSEARCH_SITE_CONF="$tmp/site.conf"
cat >"$REPSEARCH_SITE_CONF" <<EOF
# test site: the harness's single-node Slurm
SITE_PARTITION=""
SITE_ACCOUNT=""
SITE_QOS=""
SITE_SBATCH_FLAGS=()
SITE_TIME_SEARCH="00:10:00"
SITE_TIME_LEARN="00:05:00"
SITE_TIME_SGD="00:05:00"
SITE_TIME_ANALYSIS="00:05:00"
SITE_CPUS_SEARCH=1
SITE_CPUS_LEARN=1
SITE_CPUS_SGD=1
SITE_CPUS_ANALYSIS=1
SITE_MEM_PER_CPU=""
SITE_GPUS_PER_TASK=1
SITE_GPU_TYPE=""
SITE_ARRAY_PARALLEL=""
SITE_SIGNAL_SECONDS=60
SITE_MODULES=()
SITE_MODULE_PURGE=0
SITE_LD_LIBRARY_PATH=""
SITE_ENV=()
SITE_REPSEARCH_BIN="$bin"
SITE_PYTHON="$py"
SITE_SRUN_MPI="pmix"
EOF

# The uninterrupted reference of the preemption search, outside Slurm, meanwhile.
ref_dir="$tmp/reference"
"$bin" search --config "$repo/configs/smoke.ini" --generations "$gens" --checkpoint-interval 0 \
  --out "$ref_dir" --threads 1 >"$tmp/reference.log" 2>&1 &
ref_pid=$!

# ---- helpers ------------------------------------------------------------------------------------------
# job_records ID...: one line per job (array tasks each) from scontrol -o show job.
job_records() {
  local id
  for id in "$@"; do scontrol -o show job "$id" 2>/dev/null; done
}
field() { grep -o "\b$1=[^ ]*" | head -n 1 | cut -d= -f2-; }

# wait_jobs SECONDS ID...: until every record of the jobs is in a final state; 1 on timeout.
wait_jobs() {
  local limit=$(($1 + SECONDS)) recs states
  shift
  while ((SECONDS < limit)); do
    recs="$(job_records "$@")"
    states="$(grep -o 'JobState=[A-Z_]*' <<<"$recs" | cut -d= -f2 | sort | uniq -c | tr -s ' \n' ' ')"
    if [[ -n "$recs" ]] && ! grep -qE 'JobState=(PENDING|RUNNING|CONFIGURING|COMPLETING|REQUEUED|RESIZING|SUSPENDED|REQUEUE_HOLD|REQUEUE_FED|SIGNALING|STAGE_OUT)\b' <<<"$recs"; then
      log "jobs $* done: $states"
      return 0
    fi
    sleep 1
  done
  log "timeout after $1 s waiting for jobs $*: $states"
  return 1
}

show_jobs() {
  job_records "$@" | while read -r line; do
    echo "  JobId=$(field JobId <<<"$line") ArrayTaskId=$(field ArrayTaskId <<<"$line")" \
      "JobName=$(field JobName <<<"$line") JobState=$(field JobState <<<"$line")" \
      "Reason=$(field Reason <<<"$line") ExitCode=$(field ExitCode <<<"$line") Restarts=$(field Restarts <<<"$line")"
  done
}

dump_logs() { # dump_logs DIR: the jobs' logs and the daemons' log tails
  local f
  for f in "$1"/slurm-*.out; do
    [[ -f "$f" ]] || continue
    echo "----- $f (last 15 lines)"
    tail -n 15 "$f"
  done
  echo "----- slurmctld.log (last 20 lines)"
  tail -n 20 "$SLURM_HARNESS_DIR/log/slurmctld.log"
  for f in "$SLURM_HARNESS_DIR"/log/slurmd-*.log; do
    echo "----- $(basename "$f") (last 20 lines)"
    tail -n 20 "$f"
  done
}

# check_completed ID...: every record COMPLETED with ExitCode=0:0.
check_completed() {
  local recs n_all n_ok
  recs="$(job_records "$@")"
  n_all="$(grep -c . <<<"$recs")"
  n_ok="$(grep -cE 'JobState=COMPLETED .* ExitCode=0:0 ' <<<"$recs")"
  [[ $n_all -gt 0 && $n_all -eq $n_ok ]]
}

# ---- 1. the pipeline ----------------------------------------------------------------------------------
run="$tmp/run"
log "submitting the pipeline: slurm/submit.sh configs/smoke.ini --run-dir $run --nodes 2 --seeds 0..1"
if ! out="$("$repo/slurm/submit.sh" "$repo/configs/smoke.ini" --run-dir "$run" --nodes 2 --seeds 0..1 2>&1)"; then
  echo "$out"
  echo "[test_pipeline] FAIL: submit.sh failed" >&2
  exit 1
fi
while read -r line; do echo "  $line"; done <<<"$out"
search_id="$(sed -n 's/^search=\([0-9]*\)$/\1/p' <<<"$out")"
learn_id="$(sed -n 's/^learn=\([0-9]*\)$/\1/p' <<<"$out")"
sgd_id="$(sed -n 's/^sgd=\([0-9]*\)$/\1/p' <<<"$out")"
analysis_id="$(sed -n 's/^analysis=\([0-9]*\)$/\1/p' <<<"$out")"
if [[ -z "$search_id" || -z "$learn_id" || -z "$sgd_id" || -z "$analysis_id" ]]; then
  echo "[test_pipeline] FAIL: submit.sh did not print search=ID learn=ID sgd=ID analysis=ID" >&2
  exit 1
fi
cmp -s <(printf '%s\n' "search=$search_id" "learn=$learn_id" "sgd=$sgd_id" "analysis=$analysis_id") "$run/jobs.txt" ||
  fail "$run/jobs.txt does not hold the four job ids"
# The learn array is sized from the config's elites (4), the sgd array from --seeds.
[[ "$(scontrol -o show job "$learn_id" | head -n 1 | field ArrayTaskId)" == 0-3 ]] ||
  fail "learn array is not 0-3: $(scontrol -o show job "$learn_id" | head -n 1 | field ArrayTaskId)"

jobs=("$search_id" "$learn_id" "$sgd_id" "$analysis_id")
if ! wait_jobs "$timeout_s" "${jobs[@]}" || ! check_completed "${jobs[@]}"; then
  fail "pipeline jobs did not all complete with exit code 0:0"
  show_jobs "${jobs[@]}"
  dump_logs "$run"
else
  log "all pipeline jobs COMPLETED 0:0"
fi
[[ "$(job_records "$learn_id" | grep -c 'JobState=COMPLETED')" -eq 4 ]] || fail "expected 4 completed learn tasks"
[[ "$(job_records "$sgd_id" | grep -c 'JobState=COMPLETED')" -eq 2 ]] || fail "expected 2 completed sgd tasks"

[[ -f "$run/archive.h5" ]] || fail "no $run/archive.h5"
n_learn="$(find "$run" -maxdepth 1 -name 'learn-*.h5' | wc -l)"
[[ "$n_learn" -eq 4 ]] || fail "expected 4 learn-*.h5 in $run, found $n_learn"
for s in 0 1; do [[ -f "$run/sgd-$s.h5" ]] || fail "no $run/sgd-$s.h5"; done
if [[ -f "$repo/analysis/report.py" ]]; then
  [[ -f "$run/report/report.md" ]] || fail "analysis/report.py exists but $run/report/report.md was not written"
else
  log "analysis/report.py not present: the analysis job had nothing to run (report.md not checked)"
fi
grep -q 'search.sbatch.* (2 node(s)) .* 2 rank(s) x 1 thread(s), GPUs per task: 1' "$run"/slurm-search-"$search_id".out ||
  fail "the search log does not show 2 nodes, 2 ranks x 1 thread with 1 GPU per task"
if [[ -f "$run/archive.h5" ]]; then
  # One inspect --json, parsed: "n_ranks hosts" of the provenance.
  read -r ranks hosts < <("$bin" inspect --json --file "$run/archive.h5" 2>/dev/null |
    "$py" -c 'import json, sys; p = json.load(sys.stdin)["provenance"]; print(p["n_ranks"], p["hosts"])')
  [[ "$ranks" == 2 ]] || fail "archive says n_ranks=$ranks, expected 2"
  # srun placed one rank per node: each rank's host name is in the archive, in rank order.
  [[ "$(tr , '\n' <<<"$hosts" | sort | tr '\n' ' ')" == "$(printf '%s\n' "${nodes[@]}" | sort | tr '\n' ' ')" ]] ||
    fail "archive hosts '$hosts', expected one rank on each of ${nodes[*]}"
  log "the archive names the ranks' hosts: $hosts"
fi
log "pipeline part done ($failures failure(s) so far)"

# ---- 1b. the paper's chain (space = example): search -> learn per seed + sgd per seed x depth -> report ---
ex="$tmp/example"
log "submitting the example-space chain: --seeds 0..1 --sgd-depths 1,2 -- --space example (60 examples)"
if ! out="$("$repo/slurm/submit.sh" "$repo/configs/smoke.ini" --run-dir "$ex" --ntasks 1 --seeds 0..1 --sgd-depths 1,2 \
  -- --space example --search-size 60 --learner-epochs 2 --learner-batch 20 --islands 2 --migration-interval 0 2>&1)"; then
  echo "$out"
  fail "submit.sh of the example-space chain failed"
else
  ex_ids=()
  for k in search learn sgd analysis; do ex_ids+=("$(sed -n "s/^$k=\([0-9]*\)$/\1/p" <<<"$out")"); done
  # one learn task and one sgd task per seed
  [[ "$(scontrol -o show job "${ex_ids[1]}" | head -n 1 | field ArrayTaskId)" == 0-1 ]] || fail "example learn array is not 0-1"
  if ! wait_jobs "$timeout_s" "${ex_ids[@]}" || ! check_completed "${ex_ids[@]}"; then
    fail "example-space chain jobs did not all complete with exit code 0:0"
    show_jobs "${ex_ids[@]}"
    dump_logs "$ex"
  else
    log "example-space chain COMPLETED 0:0"
  fi
  for f in learn-all-d2-s0 learn-all-d2-s1 sgd-d1-s0 sgd-d2-s0 sgd-d1-s1 sgd-d2-s1; do
    [[ -f "$ex/$f.h5" && -f "$ex/$f.pt" ]] || fail "no $ex/$f.h5 and .pt"
  done
  grep -q "Table 1 row" "$ex"/slurm-analysis-*.out 2>/dev/null || fail "the analysis job printed no Table 1 row"
  [[ -f "$ex/report/figure5_cosine_distance.png" ]] || fail "the analysis job drew no Figure 5"
fi

# ---- 2. preemption: USR1 -> checkpoint -> requeue -> resume ----------------------------------------------
pre="$tmp/preempt"
log "submitting a $gens-generation search alone on both nodes (--checkpoint-interval 0)"
if ! out="$("$repo/slurm/submit.sh" "$repo/configs/smoke.ini" --run-dir "$pre" --nodes 2 --stages search \
  -- --generations "$gens" --checkpoint-interval 0 2>&1)"; then
  echo "$out"
  echo "[test_pipeline] FAIL: submit.sh --stages search failed" >&2
  exit 1
fi
pre_id="$(sed -n 's/^search=\([0-9]*\)$/\1/p' <<<"$out")"
[[ -n "$pre_id" ]] || {
  echo "$out"
  echo "[test_pipeline] FAIL: no search=ID from submit.sh" >&2
  exit 1
}
pre_log="$pre/slurm-search-$pre_id.out"

# Wait for generation >= 10 in the log, then signal the batch shell as Slurm does before the time limit.
limit=$((SECONDS + timeout_s))
until grep -qE 'gen +[1-9][0-9]+/' "$pre_log" 2>/dev/null; do
  if ((SECONDS > limit)) || [[ "$(scontrol -o show job "$pre_id" | field JobState)" =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT)$ ]]; then
    fail "the preemption search never reached generation 10 while running"
    show_jobs "$pre_id"
    dump_logs "$pre"
    exit 1
  fi
  sleep 0.2
done
log "search $pre_id at $(grep -oE 'gen +[0-9]+/[0-9]+' "$pre_log" | tail -n 1): scancel --signal=USR1 --batch $pre_id"
scancel --signal=USR1 --batch "$pre_id" || fail "scancel --signal=USR1 --batch failed"

# The job requeues itself; Slurm then holds it ~2 minutes (BeginTime): release it at once.
limit=$((SECONDS + timeout_s))
until [[ "$(scontrol -o show job "$pre_id" | field Restarts)" -ge 1 ]]; do
  if ((SECONDS > limit)) || [[ "$(scontrol -o show job "$pre_id" | field JobState)" =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT)$ ]]; then
    fail "job $pre_id was not requeued after SIGUSR1"
    show_jobs "$pre_id"
    dump_logs "$pre"
    exit 1
  fi
  sleep 0.2
done
log "job $pre_id requeued: $(show_jobs "$pre_id" | sed 's/^ *//')"
# Release it only once the first run's allocation is gone: started too early, slurmctld kills the new
# run ("Job credential revoked", seen once on a loaded machine).
limit=$((SECONDS + timeout_s))
until [[ "$(sinfo -h -N -o %T 2>/dev/null | sort -u)" == idle ]]; do
  ((SECONDS > limit)) && { fail "the nodes did not return to idle after the requeue"; break; }
  sleep 0.2
done
sleep 2
scontrol update JobId="$pre_id" StartTime=now || fail "could not release the requeued job (StartTime=now)"

if ! wait_jobs "$timeout_s" "$pre_id" || ! check_completed "$pre_id"; then
  fail "the requeued search did not complete with exit code 0:0"
  show_jobs "$pre_id"
  dump_logs "$pre"
fi
restarts="$(scontrol -o show job "$pre_id" | field Restarts)"
[[ "$restarts" == 1 ]] || fail "expected Restarts=1, got '$restarts'"
grep -q 'exited with status 75' "$pre_log" || fail "the first run did not exit with status 75"
grep -q 'requeueing job' "$pre_log" || fail "the log does not show the requeue"
resumed="$(grep -oE 'resumed at generation [0-9]+' "$pre_log" | grep -oE '[0-9]+$' | head -n 1)"
if [[ -z "$resumed" ]] || ((resumed <= 0 || resumed >= gens)); then
  fail "expected 'resumed at generation N' with 0 < N < $gens in $pre_log, got '${resumed:-nothing}'"
else
  log "second run resumed at generation $resumed of $gens"
fi

# The same search straight through, outside Slurm.
if ! wait "$ref_pid"; then
  ref_pid=""
  fail "the reference search failed:"
  tail -n 20 "$tmp/reference.log" >&2
fi
ref_pid=""
if [[ -f "$pre/archive.h5" && -f "$ref_dir/archive.h5" ]]; then
  # Elites: uid, fitness, held-out score (inspect --json), then every array of /elites element-wise.
  elites() { "$bin" inspect --json --file "$1" | "$py" -c '
import json, sys
for e in json.load(sys.stdin)["elites"]:
    print(e["uid"], repr(e["fitness"]), repr(e["heldout"]), e["island"], e["generation"])'; }
  if ! diff <(elites "$pre/archive.h5") <(elites "$ref_dir/archive.h5") >"$tmp/elites.diff"; then
    fail "elites differ between the preempted run and the reference:"
    cat "$tmp/elites.diff" >&2
  fi
  if "$py" -c 'import h5py' 2>/dev/null; then
    "$py" - "$pre/archive.h5" "$ref_dir/archive.h5" <<'EOF' || fail "/elites arrays differ from the reference"
import sys
import h5py
import numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
bad = 0
for name in sorted(b["/elites"]):
    x, y = a["/elites"][name][()], b["/elites"][name][()]
    if x.shape != y.shape or not np.array_equal(x, y):
        diff = np.max(np.abs(x.astype(float) - y.astype(float))) if x.shape == y.shape else "shape"
        print(f"  /elites/{name}: {x.shape} vs {y.shape}, max |diff| {diff}", file=sys.stderr)
        bad += 1
print(f"  /elites arrays compared: {len(b['/elites'])}, different: {bad}")
sys.exit(1 if bad else 0)
EOF
  else
    log "no h5py for $py: compared the elites through inspect --json only"
  fi
else
  fail "missing archive: $pre/archive.h5 or $ref_dir/archive.h5"
fi

if [[ $failures -gt 0 ]]; then
  echo "[test_pipeline] $failures failure(s)" >&2
  exit 1
fi
log "PASS"
exit 0
