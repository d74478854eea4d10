#!/usr/bin/env bash
# Set up repsearch and run the main job on the default data (Fashion-MNIST): the paper's method
# (configs/fashion_mnist.ini: the per-example search under MPI, the learner over 3 seeds, SGD at depths
# 1-3 over 3 seeds, the figures and the paper's Table 1 row), or with --space dataset repsearch's own
# search (configs/fashion_mnist_dataset.ini) and its comparison.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: launch/quickstart.sh [--space example|dataset] [--ranks N] [--generations G] [SEARCH_OPTION...]

Runs launch/setup.sh (installs what is missing, builds), then on Fashion-MNIST.

--space example (the default: the paper's method), configs/fashion_mnist.ini with 600 examples (pass
--search-size N for another number), run directory runs/fashion_mnist (or --out):
  1. repsearch data      the searched examples and their class balance
  2. repsearch search    every example's activations searched layer by layer through the frozen
                         network, on N ranks (launch/search.sh: Ctrl-C checkpoints, exit 75)
  3. repsearch inspect   the archive: mean best cross-entropy per layer, the searched logits' accuracy
  4. repsearch learn     the paper's learner (every block regressed onto its targets, a KL head), seeds 0..2
  5. repsearch sgd       the same network family end to end at depths 1, 2, 3 (seed 0), then seeds 1..2
                         at the depth with the best held-out accuracy
  6. analysis/report.py  Figures 5-7 and Table 1 (learned vs best-depth SGD, mean +- std): its row printed

--space dataset, configs/fashion_mnist_dataset.ini (run directory runs/fashion_mnist_dataset):
  1. repsearch data      the search/validation/held-out splits and their class balance
  2. repsearch search    the island-model GA under mpirun (N ranks, 1 thread/rank), through
                         launch/search.sh: Ctrl-C checkpoints (exit 75); a rerun replaces an earlier
                         quickstart's run (--overwrite) unless you pass --resume to continue it
  3. repsearch inspect   a summary of the archive the search wrote
  4. repsearch learn     one network per elite, regressed onto it, and their ensemble
  5. repsearch sgd       the same network trained end to end on S+V, seeds 0..2, and their ensemble
  6. repsearch inspect   the best learned network against SGD seed 0: CKA of their trajectories

Options:
  --space S         example (default) or dataset
  --ranks N         MPI ranks for the search (default 2)
  --generations G   --space dataset: generations to search (default: the config's, 100)
  -h, --help        show this help
Any other argument is passed on to 'repsearch search' (e.g. --islands 8 --population 16).

Environment:
  REPSEARCH_BUILD_DIR   build directory (default: build)
EOF
}

ranks=2
space=example
generations=
search_extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --ranks)
      [[ $# -ge 2 ]] || { echo "quickstart.sh: --ranks needs a value" >&2; exit 2; }
      ranks="$2"
      shift 2
      ;;
    --ranks=*) ranks="${1#*=}"; shift ;;
    --space)
      [[ $# -ge 2 ]] || { echo "quickstart.sh: --space needs a value" >&2; exit 2; }
      space="$2"
      shift 2
      ;;
    --space=*) space="${1#*=}"; shift ;;
    --generations)
      [[ $# -ge 2 ]] || { echo "quickstart.sh: --generations needs a value" >&2; exit 2; }
      generations="$2"
      shift 2
      ;;
    --generations=*) generations="${1#*=}"; shift ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      search_extra+=("$1")
      shift
      ;;
  esac
done
[[ "$ranks" =~ ^[1-9][0-9]*$ ]] || { echo "quickstart.sh: --ranks must be a positive integer, got '$ranks'" >&2; exit 2; }
[[ -z "$generations" || "$generations" =~ ^[0-9]+$ ]] || { echo "quickstart.sh: --generations must be an integer, got '$generations'" >&2; exit 2; }
[[ "$space" == example || "$space" == dataset ]] || { echo "quickstart.sh: --space must be example or dataset, got '$space'" >&2; exit 2; }
[[ "$space" == dataset || -z "$generations" ]] || { echo "quickstart.sh: --generations is the dataset space's; the example space's schedule is layer-generations (pass --layer-generations A,B,C,D)" >&2; exit 2; }

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
build_dir="${REPSEARCH_BUILD_DIR:-build}"
repsearch="$build_dir/repsearch"
if [[ "$space" == example ]]; then
  config=configs/fashion_mnist.ini
  run_dir=runs/fashion_mnist   # the config's 'out', unless --out is passed on to search
else
  config=configs/fashion_mnist_dataset.ini
  run_dir=runs/fashion_mnist_dataset
fi
for ((i = 0; i < ${#search_extra[@]}; i++)); do
  case "${search_extra[i]}" in
    --out) [[ $((i + 1)) -lt ${#search_extra[@]} ]] && run_dir="${search_extra[i + 1]}" ;;
    --out=*) run_dir="${search_extra[i]#*=}" ;;
  esac
done

# Open MPI refuses to start as root unless told it is fine (containers, CI).
if [[ $EUID -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

step_no=0
header() {
  step_no=$((step_no + 1))
  echo
  echo "==== [$step_no] $* ===="
}
run() {
  echo "\$ $*"
  "$@"
}

# ---- steps: one function each, run in the order of STEPS ----------------------------------------
step_setup() {
  header "set up: packages and build (launch/setup.sh)"
  run bash launch/setup.sh
}
step_data() {
  header "data: Fashion-MNIST splits and class balance"
  run "$repsearch" data --config "$config"
}
step_search() {
  header "search ($space space) on $ranks rank(s)${generations:+, $generations generations}"
  local fresh=(--overwrite)  # the demo's run directory is its own; --resume continues it instead
  for a in "${search_extra[@]}"; do [[ "$a" == --resume || "$a" == --overwrite ]] && fresh=(); done
  local size=()  # the example space's demo: 600 examples (the config's 1,000 take about 2 minutes more)
  if [[ "$space" == example ]]; then
    size=(--search-size 600)
    for a in "${search_extra[@]}"; do [[ "$a" == --search-size* ]] && size=(); done
  fi
  REPSEARCH_BIN="$repsearch" run bash launch/search.sh -np "$ranks" --mpirun --oversubscribe -- --config "$config" \
    ${generations:+--generations "$generations"} --threads 1 "${size[@]}" "${fresh[@]}" "${search_extra[@]}"
}
step_inspect() {
  header "inspect: the archive of searched representations"
  run "$repsearch" inspect "$run_dir/archive.h5"
}
step_learn_example() {
  header "learn: the paper's learner on the searched targets, seeds 0..2"
  run "$repsearch" learn --archive "$run_dir/archive.h5" --seeds 0..2
}
step_sgd_example() {
  header "sgd: the same network family end to end on the searched examples: depths 1-3 (seed 0), then seeds 1-2 at the best"
  run "$repsearch" sgd --archive "$run_dir/archive.h5" --depth 1,2,3 --seeds 0
  local best  # the depth with the best held-out accuracy (the searched examples held out), as the report picks it
  best=$(python3 -c 'import json,sys; n=json.load(open(sys.argv[1]))["networks"]; print(max(n, key=lambda r: (r["heldout"], -r["depth"]))["depth"])' \
    "$run_dir/sgd-summary-s0.json")
  echo "best depth by held-out accuracy: $best"
  run "$repsearch" sgd --archive "$run_dir/archive.h5" --depth "$best" --seeds 1..2
}
step_report_example() {
  header "report: Figures 5-7 and Table 1 (analysis/report.py)"
  run /usr/bin/python3 analysis/report.py "$run_dir" --out "$run_dir/report"
}
step_learn() {
  header "learn: a network regressed onto every elite, and their ensemble"
  run "$repsearch" learn --archive "$run_dir/archive.h5" --elite all --out "$run_dir"
}
step_sgd() {
  header "sgd: the same network trained end to end on S+V (the fair baseline), seeds 0..2"
  run "$repsearch" sgd --config "$config" --out "$run_dir" --seeds 0..2
}
step_compare() {
  header "compare: learned (best elite) vs SGD seed 0, CKA of their representational trajectories"
  local best
  best=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["networks"][0]["results"])' "$run_dir/learn-summary.json")
  run "$repsearch" inspect "$best" "$run_dir/sgd-0.h5"
  echo
  python3 - "$run_dir" <<'PY'
import json, sys
d = sys.argv[1]
learn = json.load(open(f"{d}/learn-summary.json"))
sgd = json.load(open(f"{d}/sgd-summary.json"))
print("test accuracy          single (best elite / seed 0)   ensemble")
print(f"learn (searched Z)     {learn['networks'][0]['test']:.4f}                         {learn.get('ensemble_test', float('nan')):.4f}  ({len(learn['networks'])} networks)")
print(f"sgd on S+V             {sgd['networks'][0]['test']:.4f}                         {sgd.get('ensemble_test', float('nan')):.4f}  ({len(sgd['networks'])} networks)")
PY
}

if [[ "$space" == example ]]; then
  STEPS=(step_setup step_data step_search step_inspect step_learn_example step_sgd_example step_report_example)
else
  STEPS=(step_setup step_data step_search step_inspect step_learn step_sgd step_compare)
fi

t0=$SECONDS
for s in "${STEPS[@]}"; do
  "$s"
done
echo
echo "==== done in $((SECONDS - t0)) s: archive $run_dir/archive.h5 (h5dump, h5py or 'repsearch inspect' read it) ===="
