#!/usr/bin/env bash
# A small search-compute scaling study on this machine (no Slurm): population x generations on
# Fashion-MNIST with 2 ranks, learned networks for every run's elites, the SGD baselines, and the
# analysis report over all runs. On a cluster, slurm/sweep.sh submits the same study as jobs.
#   launch/study.sh [--out DIR] [--populations "8 32"] [--generations "0 10 50"] [--ranks 2]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=runs/study populations="8 32" generations="0 10 50" ranks=2
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --populations) populations=$2; shift 2 ;;
    --generations) generations=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "study.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
bin=${REPSEARCH_BIN:-build/repsearch}
config=configs/fashion_mnist_dataset.ini
[[ $EUID -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$out"
dirs=()
for p in $populations; do
  for g in $generations; do
    d=$out/p$p-g$g
    dirs+=("$d")
    echo "==== search P=$p G=$g -> $d"
    [[ -f $d/archive.h5 ]] || mpirun --oversubscribe -np "$ranks" "$bin" search --config $config --population "$p" \
      --generations "$g" --elites 4 --threads 1 --out "$d" | grep -E "gen +$g/|archive" || true
    [[ -f $d/learn-summary.json ]] || "$bin" learn --archive "$d/archive.h5" --elite all --out "$d" | grep -E "ensemble|test" | tail -2
  done
done
# One SGD baseline (same splits: same seed) shared by every run: S+V over 3 seeds, and the full data.
b=$out/sgd
mkdir -p "$b"
[[ -f $b/sgd-summary.json ]] || "$bin" sgd --config $config --out "$b" --seeds 0..2 | grep -E "accuracy|ensemble"
[[ -f $b/sgd-full-0.h5 ]] || "$bin" sgd --config $config --out "$b" --seeds 0 --data full | grep -E "accuracy"
for d in "${dirs[@]}"; do cp -f "$b"/sgd-*.h5 "$d"/; done
/usr/bin/python3 analysis/report.py "${dirs[@]}" --out "$out/report" --title "repsearch scaling study: Fashion-MNIST"
