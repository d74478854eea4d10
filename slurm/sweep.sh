#!/usr/bin/env bash
# A scaling study on Slurm: one pipeline (slurm/submit.sh) per combination of population x generations
# x islands (x ranks) listed in a sweep file, each in its own run directory
# <sweep-dir>/p<P>-g<G>-i<I>[-r<R>], then one analysis job over all run directories when every
# pipeline has ended.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: slurm/sweep.sh SWEEP.ini [--sweep-dir DIR] [--dry-run] [-- extra repsearch arguments]

SWEEP.ini (key = value; '#' starts a comment):
  config      = configs/fashion_mnist_dataset.ini   base config (relative to the current directory, the
                                            sweep file's directory or the repository)
  population  = 8,16,32                     values to sweep (comma-separated)
  generations = 10,40
  islands     = 2,4
  ranks       = 2                           optional: MPI ranks of each search (default 1); several
                                            values add an axis (run directories get -r<R>); a
                                            combination with more ranks than islands is skipped
  seeds       = 0..2                        optional: sgd seeds per run (default 0..2)
  out         = runs/sweep                  optional: the sweep directory (default runs/<sweep name>)
  args        = --elites 4                  optional: extra repsearch arguments for every run
                                            (whitespace-separated, no quoting)

Each run is slurm/submit.sh CONFIG --run-dir <sweep-dir>/p<P>-g<G>-i<I> --ntasks R --seeds S
-- --population P --generations G --islands I [args] [extra]. The final analysis
(analysis/report.py over every run directory, report in <sweep-dir>/report) depends on every
run's analysis job with afterany, so a study with a failed run is still reported (as missing).
Prints a table of run directories and job ids and writes it to <sweep-dir>/jobs.txt.

Options:
  --sweep-dir DIR   overrides 'out'
  --dry-run         print the sbatch commands instead of submitting
  -h, --help        this help
Environment: REPSEARCH_SITE_CONF as for slurm/submit.sh.
EOF
}

slurm_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$slurm_dir/.." && pwd)"
site_conf="${REPSEARCH_SITE_CONF:-$slurm_dir/site.conf}"

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # die, abspath, ini_read
# list KEY DEFAULT: the comma-separated values of KEY as words; each must be a positive integer.
list() {
  local raw v vals res=()
  raw="${INI[$1]:-}"
  raw="${raw:-$2}"
  [[ -n "$raw" ]] || die "$sweep: '$1 = ...' is required"
  IFS=', ' read -r -a vals <<<"$raw"
  for v in "${vals[@]}"; do
    [[ -z "$v" ]] && continue
    [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "$sweep: $1 values must be positive integers (got '$v')"
    res+=("$v")
  done
  echo "${res[*]}"
}
# find_file PATH: PATH as given, else beside the sweep file, else in the repository.
find_file() {
  local p
  for p in "$1" "$(dirname "$sweep")/$1" "$repo_root/$1"; do
    [[ -f "$p" ]] && {
      abspath "$p"
      return 0
    }
  done
  return 1
}

[[ $# -ge 1 ]] || {
  usage >&2
  exit 2
}
case "$1" in -h | --help)
  usage
  exit 0
  ;;
esac
sweep="$1"
shift
[[ -f "$sweep" ]] || die "sweep file '$sweep' not found"
sweep="$(abspath "$sweep")"
sweep_dir="" dry_run=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sweep-dir) sweep_dir="${2:?--sweep-dir needs a value}"; shift 2 ;;
    --sweep-dir=*) sweep_dir="${1#*=}"; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
extra=("$@")

ini_read "$sweep" config population generations islands ranks seeds out args
cfg="${INI[config]:-}"
[[ -n "$cfg" ]] || die "$sweep: 'config = ...' is required"
config="$(find_file "$cfg")" || die "$sweep: config '$cfg' not found"
v="$(list population "")" || exit 1
read -r -a populations <<<"$v"
v="$(list generations "")" || exit 1
read -r -a generations <<<"$v"
v="$(list islands "")" || exit 1
read -r -a islands <<<"$v"
v="$(list ranks 1)" || exit 1
read -r -a ranks <<<"$v"
seeds="${INI[seeds]:-0..2}"
read -r -a sweep_args <<<"${INI[args]:-}"
name="$(basename "$sweep" .ini)"
[[ -n "$sweep_dir" ]] || sweep_dir="${INI[out]:-}"
sweep_dir="$(abspath "${sweep_dir:-runs/$name}")"

# Site settings for the final analysis job (the pipelines read them through submit.sh).
[[ -f "$site_conf" ]] || die "site settings '$site_conf' not found"
# shellcheck source=SCRIPTDIR/site.conf
source "$site_conf"
common=(--parsable)
[[ -n "${SITE_PARTITION:-}" ]] && common+=("--partition=$SITE_PARTITION")
[[ -n "${SITE_ACCOUNT:-}" ]] && common+=("--account=$SITE_ACCOUNT")
[[ -n "${SITE_QOS:-}" ]] && common+=("--qos=$SITE_QOS")
[[ -n "${SITE_MEM_PER_CPU:-}" ]] && common+=("--mem-per-cpu=$SITE_MEM_PER_CPU")
[[ -n "${SITE_TIME_ANALYSIS:-}" ]] && common+=("--time=$SITE_TIME_ANALYSIS")
common+=(${SITE_SBATCH_FLAGS[@]+"${SITE_SBATCH_FLAGS[@]}"})

dry=()
[[ $dry_run -eq 1 ]] && dry=(--dry-run)
[[ $dry_run -eq 1 ]] || mkdir -p "$sweep_dir"

rows=() run_dirs=() analysis_ids=()
for p in "${populations[@]}"; do
  for g in "${generations[@]}"; do
    for i in "${islands[@]}"; do
      for r in "${ranks[@]}"; do
        dir="$sweep_dir/p$p-g$g-i$i"
        [[ ${#ranks[@]} -gt 1 ]] && dir+="-r$r"
        if ((r > i)); then
          echo "sweep.sh: skipping $(basename "$dir"): $r ranks cannot host $i islands (every rank needs one)" >&2
          continue
        fi
        out="$("$slurm_dir/submit.sh" "$config" --run-dir "$dir" --ntasks "$r" --seeds "$seeds" ${dry[@]+"${dry[@]}"} \
          -- --population "$p" --generations "$g" --islands "$i" \
          ${sweep_args[@]+"${sweep_args[@]}"} ${extra[@]+"${extra[@]}"})" ||
          die "submit.sh failed for $(basename "$dir") (jobs submitted so far: see the table in $sweep_dir)"
        declare -A id=()
        while IFS='=' read -r k v; do id[$k]="$v"; done <<<"$out"
        rows+=("$(printf '%-28s %5s %5s %5s %5s  %-8s %-8s %-8s %-8s' "$(basename "$dir")" "$p" "$g" "$i" "$r" \
          "${id[search]:-}" "${id[learn]:-}" "${id[sgd]:-}" "${id[analysis]:-}")")
        run_dirs+=("$dir")
        analysis_ids+=("${id[analysis]:-}")
        unset id
      done
    done
  done
done
[[ ${#run_dirs[@]} -gt 0 ]] || die "no combination to run"

deps="$(printf ':%s' "${analysis_ids[@]}")"
final_cmd=("${common[@]}" --job-name="rs-analysis-$name" --ntasks=1 --cpus-per-task="${SITE_CPUS_ANALYSIS:-1}"
  --output="$sweep_dir/slurm-analysis-%j.out" "--dependency=afterany$deps"
  "$slurm_dir/analysis.sbatch" --out "$sweep_dir/report" "${run_dirs[@]}")
if [[ $dry_run -eq 1 ]]; then
  printf '%q ' sbatch "${final_cmd[@]}" >&2
  echo >&2
  final="<final>"
else
  final="$(sbatch "${final_cmd[@]}")" || die "sbatch of the final analysis failed"
  final="${final%%;*}"
fi

{
  echo "# sweep $sweep -> $sweep_dir (config $config)"
  printf '%-28s %5s %5s %5s %5s  %-8s %-8s %-8s %-8s\n' run pop gen isl ranks search learn sgd analysis
  printf '%s\n' "${rows[@]}"
  echo "final analysis: $final (report in $sweep_dir/report)"
} | if [[ $dry_run -eq 1 ]]; then cat; else tee "$sweep_dir/jobs.txt"; fi
