#!/usr/bin/env bash
# shellcheck disable=SC2046  # $(time_flag ...) is unquoted on purpose: empty when there is no time limit
# Submit the repsearch pipeline of one config to Slurm:
#
#   search (N MPI ranks, checkpoints and requeues itself before its time limit)
#     -> learn array + sgd array                                          [afterok:search]
#       -> analysis (analysis/report.py on the run directory)              [afterok:learn:sgd]
#
# space = example (the paper's method, the default): one learn task per seed (every supervise variant
# and depth of the config) and one sgd task per seed (every depth of --sgd-depths, the best reported);
# space = dataset: one learn task per elite, one sgd task per seed.
#
# Cluster settings (partition, account, time limits, GPUs, modules, ...) come from slurm/site.conf
# (or the file REPSEARCH_SITE_CONF names); nothing else here is cluster-specific.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: slurm/submit.sh CONFIG [options] [-- extra repsearch arguments]

Submits search -> learn array + sgd array -> analysis with sbatch --parsable, prints one line per
job (search=ID, learn=ID, sgd=ID, analysis=ID) and writes the same lines to RUN_DIR/jobs.txt.

Options:
  --run-dir DIR    run directory (archive, checkpoint, results, logs); default: the config's 'out'
                   (or an extra --out), relative to the current directory
  --ntasks N       MPI ranks of the search (default 1, or one per node with --nodes); islands are
                   spread over them
  --nodes N        nodes the search spans (sbatch --nodes; default: as Slurm places the ranks); its
                   ranks talk over the network between nodes (see README, "Several nodes")
  --seeds SPEC     network seeds, one array task each: A..B, A,B,C or A (default 0..2); sgd's, and
                   with space = example learn's too
  --sgd-depths L   space = example: ConvGroups per block of the SGD baselines (default 1,2,3; the report
                   takes the best by held-out accuracy, as the paper does)
  --stages LIST    comma-separated subset of search,learn,sgd,analysis (default: all); a stage
                   depends only on the stages submitted with it (learn alone needs an archive)
  --dry-run        print the sbatch commands instead of submitting them
  -h, --help       this help

Extra arguments after '--' go to 'repsearch search' and 'repsearch sgd' (e.g. -- --generations 200
--population 64); learn takes every option from the archive's recorded config. --elites (there or in
an extra --config) sizes the learn array; --out sets the default run directory; --threads is set
from the site's cpus per task and --resume is added by the job itself when a checkpoint exists.

Environment:
  REPSEARCH_SITE_CONF   site settings to use (default: slurm/site.conf beside this script)

Logs: RUN_DIR/slurm-<kind>-<jobid>.out (arrays: slurm-<kind>-<jobid>_<task>.out).
Stop a search early but keep it resumable: scancel --signal=USR1 --batch <search id> (it checkpoints
and requeues itself); scancel <id> cancels (the checkpoint stays: resubmit to continue).
EOF
}

slurm_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$slurm_dir/.." && pwd)"
site_conf="${REPSEARCH_SITE_CONF:-$slurm_dir/site.conf}"

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # die, abspath

# slurm_seconds TIME: a Slurm time limit (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S) in seconds; nothing when
# unlimited or not understood.
slurm_seconds() {
  local t="$1" d=0 h=0 m=0 s=0 a b c
  [[ "$t" =~ ^[0-9:-]+$ ]] || return 0
  if [[ "$t" == *-* ]]; then
    d="${t%%-*}"
    IFS=: read -r h m s <<<"${t#*-}"
  else
    IFS=: read -r a b c <<<"$t"
    if [[ -n "$c" ]]; then h=$a m=$b s=$c; elif [[ -n "$b" ]]; then m=$a s=$b; else m=$a; fi
  fi
  echo $((10#${d:-0} * 86400 + 10#${h:-0} * 3600 + 10#${m:-0} * 60 + 10#${s:-0}))
}

# ---- arguments --------------------------------------------------------------------------------------
[[ $# -ge 1 ]] || {
  usage >&2
  exit 2
}
case "$1" in -h | --help)
  usage
  exit 0
  ;;
esac
config="$1"
shift
[[ -f "$config" ]] || die "config '$config' not found"
config="$(abspath "$config")"

run_dir="" ntasks="" nodes="" seeds="0..2" sgd_depths="1,2,3" stages="search,learn,sgd,analysis" dry_run=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --run-dir) run_dir="${2:?--run-dir needs a value}"; shift 2 ;;
    --run-dir=*) run_dir="${1#*=}"; shift ;;
    --ntasks) ntasks="${2:?--ntasks needs a value}"; shift 2 ;;
    --ntasks=*) ntasks="${1#*=}"; shift ;;
    --nodes) nodes="${2:?--nodes needs a value}"; shift 2 ;;
    --nodes=*) nodes="${1#*=}"; shift ;;
    --seeds) seeds="${2:?--seeds needs a value}"; shift 2 ;;
    --seeds=*) seeds="${1#*=}"; shift ;;
    --sgd-depths) sgd_depths="${2:?--sgd-depths needs a value}"; shift 2 ;;
    --sgd-depths=*) sgd_depths="${1#*=}"; shift ;;
    --stages) stages="${2:?--stages needs a value}"; shift 2 ;;
    --stages=*) stages="${1#*=}"; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    *) die "unknown option '$1' (see --help; repsearch options go after '--')" ;;
  esac
done
[[ -z "$nodes" || "$nodes" =~ ^[1-9][0-9]*$ ]] || die "--nodes must be a positive integer (got '$nodes')"
[[ -n "$ntasks" ]] || ntasks="${nodes:-1}"
[[ "$ntasks" =~ ^[1-9][0-9]*$ ]] || die "--ntasks must be a positive integer (got '$ntasks')"
[[ -z "$nodes" ]] || ((ntasks >= nodes)) || die "--ntasks $ntasks cannot fill --nodes $nodes (at least one rank per node)"

# Extra repsearch arguments: keep them for search and sgd, but take out what the jobs set themselves.
extra=() extra_out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) extra_out="${2:?--out needs a value}"; shift 2 ;;
    --out=*) extra_out="${1#*=}"; shift ;;
    --threads | --threads=*) die "--threads is set from the site's cpus per task (SITE_CPUS_* in $site_conf)" ;;
    --resume) echo "submit.sh: note: dropping --resume: the search job resumes by itself when RUN_DIR/checkpoint.h5 exists" >&2; shift ;;
    --config | -c)
      [[ -f "${2:-}" ]] || die "extra config '${2:-}' not found"
      extra+=("$1" "$(abspath "$2")"); shift 2 ;;
    --config=*)
      [[ -f "${1#*=}" ]] || die "extra config '${1#*=}' not found"
      extra+=("--config" "$(abspath "${1#*=}")"); shift ;;
    *) extra+=("$1"); shift ;;
  esac
done

[[ -n "$run_dir" ]] || run_dir="$extra_out"

# Seeds: A..B, A,B,C or A -> a job array specification.
if [[ "$seeds" =~ ^([0-9]+)\.\.([0-9]+)$ ]]; then
  ((BASH_REMATCH[1] <= BASH_REMATCH[2])) || die "--seeds $seeds: empty range"
  seed_array="${BASH_REMATCH[1]}-${BASH_REMATCH[2]}"
elif [[ "$seeds" =~ ^[0-9]+(,[0-9]+)*$ ]]; then
  seed_array="$seeds"
else
  die "--seeds must be A..B, A,B,C or A (got '$seeds')"
fi

declare -A want=()
IFS=, read -r -a stage_list <<<"$stages"
for s in "${stage_list[@]}"; do
  case "$s" in search | learn | sgd | analysis) want[$s]=1 ;; *) die "unknown stage '$s' in --stages" ;; esac
done

# ---- site settings ----------------------------------------------------------------------------------
[[ -f "$site_conf" ]] || die "site settings '$site_conf' not found"
# shellcheck source=SCRIPTDIR/site.conf
source "$site_conf"
site_conf="$(abspath "$site_conf")"
bin="${SITE_REPSEARCH_BIN:-$repo_root/build/repsearch}"
[[ -x "$bin" ]] || die "repsearch binary '$bin' is not executable here (SITE_REPSEARCH_BIN in $site_conf): it resolves the config"

# Settings exactly as repsearch resolves them (defaults < CONFIG < extra configs in order < command
# line): the binary itself answers, so the jobs are sized from the config the search will run.
resolved() { # resolved KEY
  local v
  v="$("$bin" config --config "$config" ${extra[@]+"${extra[@]}"} --get "$1" 2>&1)" || die "$v"
  printf '%s\n' "$v"
}
space="$(resolved space)"
[[ "$sgd_depths" =~ ^[1-9](,[1-9])*$ ]] || die "--sgd-depths must be comma-separated depths 1..8 (got '$sgd_depths')"
if [[ "$space" == example ]]; then
  learn_array="$seed_array" # one task per seed: every supervise variant and depth of the config
else
  elites="$(resolved elites)"
  [[ "$elites" =~ ^[1-9][0-9]*$ ]] || die "elites must be a positive integer (got '$elites')"
  learn_array="0-$((elites - 1))"
fi
[[ -n "$run_dir" ]] || run_dir="$(resolved out)"
run_dir="$(abspath "$run_dir")"
if [[ $dry_run -eq 0 ]]; then
  command -v sbatch >/dev/null 2>&1 || die "sbatch not found: run this on a Slurm login node (or load the Slurm module)"
fi

common=(--parsable)
[[ -n "${SITE_PARTITION:-}" ]] && common+=("--partition=$SITE_PARTITION")
[[ -n "${SITE_ACCOUNT:-}" ]] && common+=("--account=$SITE_ACCOUNT")
[[ -n "${SITE_QOS:-}" ]] && common+=("--qos=$SITE_QOS")
[[ -n "${SITE_MEM_PER_CPU:-}" ]] && common+=("--mem-per-cpu=$SITE_MEM_PER_CPU")
common+=(${SITE_SBATCH_FLAGS[@]+"${SITE_SBATCH_FLAGS[@]}"})
gpus=()
if [[ "${SITE_GPUS_PER_TASK:-0}" =~ ^[1-9][0-9]*$ ]]; then
  gpus=("--gpus-per-task=${SITE_GPU_TYPE:+$SITE_GPU_TYPE:}$SITE_GPUS_PER_TASK")
fi
throttle="${SITE_ARRAY_PARALLEL:+%$SITE_ARRAY_PARALLEL}"
time_flag() { if [[ -n "$1" ]]; then echo "--time=$1"; fi; } # unquoted use: a time limit has no spaces
signal_s="${SITE_SIGNAL_SECONDS:-600}"
[[ "$signal_s" =~ ^[0-9]+$ ]] || die "SITE_SIGNAL_SECONDS must be a number of seconds (got '$signal_s')"
search_s="$(slurm_seconds "${SITE_TIME_SEARCH:-}")"
if [[ -n "$search_s" ]] && ((search_s <= signal_s)); then
  die "SITE_TIME_SEARCH (${SITE_TIME_SEARCH}) must be longer than SITE_SIGNAL_SECONDS (${signal_s} s): the search would be told to checkpoint as soon as it starts"
fi
name="$(basename "$run_dir")"

# ---- the run directory: logs go there, and pipeline.env tells the jobs what to run -------------------
if [[ $dry_run -eq 0 ]]; then
  mkdir -p "$run_dir"
  if [[ -n "${want[search]:-}" && -f "$run_dir/checkpoint.h5" ]]; then
    echo "submit.sh: note: $run_dir/checkpoint.h5 exists: the search resumes from it (same config required)" >&2
  fi
  {
    echo "# Written by slurm/submit.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ); sourced by the job scripts."
    printf 'REPSEARCH_ROOT=%q\n' "$repo_root"
    printf 'REPSEARCH_SITE_CONF=%q\n' "$site_conf"
    printf 'REPSEARCH_CONFIG=%q\n' "$config"
    printf 'REPSEARCH_SPACE=%q\n' "$space"
    printf 'REPSEARCH_SGD_DEPTHS=%q\n' "$sgd_depths"
    printf 'REPSEARCH_ARGS=('
    [[ ${#extra[@]} -eq 0 ]] || printf ' %q' "${extra[@]}"
    printf ' )\n'
  } >"$run_dir/pipeline.env.tmp"
  mv "$run_dir/pipeline.env.tmp" "$run_dir/pipeline.env"
fi

submit() { # submit KIND SBATCH-ARGS...: sbatch, echo the job id (a placeholder with --dry-run)
  local kind="$1"
  shift
  if [[ $dry_run -eq 1 ]]; then
    printf '%q ' sbatch "$@" >&2
    echo >&2
    echo "<$kind>"
  else
    local out
    out="$(sbatch "$@")" || die "sbatch failed: sbatch $*"
    echo "${out%%;*}"
  fi
}

ids=()
search_id="" learn_id="" sgd_id="" analysis_id=""
if [[ -n "${want[search]:-}" ]]; then
  search_id="$(submit search "${common[@]}" --job-name="rs-search-$name" ${nodes:+"--nodes=$nodes"} --ntasks="$ntasks" \
    --cpus-per-task="${SITE_CPUS_SEARCH:-1}" $(time_flag "${SITE_TIME_SEARCH:-}") \
    --signal="B:USR1@$signal_s" --requeue --open-mode=append \
    --output="$run_dir/slurm-search-%j.out" ${gpus[@]+"${gpus[@]}"} \
    "$slurm_dir/search.sbatch" "$run_dir")"
  ids+=("search=$search_id")
fi
after_search=()
[[ -n "$search_id" ]] && after_search=("--dependency=afterok:$search_id" --kill-on-invalid-dep=yes)
if [[ -n "${want[learn]:-}" ]]; then
  learn_id="$(submit learn "${common[@]}" --job-name="rs-learn-$name" --array="$learn_array$throttle" \
    --ntasks=1 --cpus-per-task="${SITE_CPUS_LEARN:-1}" $(time_flag "${SITE_TIME_LEARN:-}") \
    --output="$run_dir/slurm-learn-%A_%a.out" ${gpus[@]+"${gpus[@]}"} ${after_search[@]+"${after_search[@]}"} \
    "$slurm_dir/learn.sbatch" "$run_dir")"
  ids+=("learn=$learn_id")
fi
if [[ -n "${want[sgd]:-}" ]]; then
  sgd_id="$(submit sgd "${common[@]}" --job-name="rs-sgd-$name" --array="$seed_array$throttle" \
    --ntasks=1 --cpus-per-task="${SITE_CPUS_SGD:-1}" $(time_flag "${SITE_TIME_SGD:-}") \
    --output="$run_dir/slurm-sgd-%A_%a.out" ${gpus[@]+"${gpus[@]}"} ${after_search[@]+"${after_search[@]}"} \
    "$slurm_dir/sgd.sbatch" "$run_dir")"
  ids+=("sgd=$sgd_id")
fi
if [[ -n "${want[analysis]:-}" ]]; then
  deps=""
  [[ -n "$learn_id" ]] && deps+=":$learn_id"
  [[ -n "$sgd_id" ]] && deps+=":$sgd_id"
  [[ -z "$deps" && -n "$search_id" ]] && deps=":$search_id"
  after=()
  [[ -n "$deps" ]] && after=("--dependency=afterok$deps" --kill-on-invalid-dep=yes)
  analysis_id="$(submit analysis "${common[@]}" --job-name="rs-analysis-$name" --ntasks=1 \
    --cpus-per-task="${SITE_CPUS_ANALYSIS:-1}" $(time_flag "${SITE_TIME_ANALYSIS:-}") \
    --output="$run_dir/slurm-analysis-%j.out" ${after[@]+"${after[@]}"} \
    "$slurm_dir/analysis.sbatch" "$run_dir")"
  ids+=("analysis=$analysis_id")
fi

printf '%s\n' "${ids[@]}"
if [[ $dry_run -eq 0 ]]; then
  printf '%s\n' "${ids[@]}" >"$run_dir/jobs.txt"
fi
