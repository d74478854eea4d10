#!/usr/bin/env bash
# Issue-11 benchmark: the search set from 3,000 examples to the whole Fashion-MNIST training set.
# For each n_s: set-up seconds (data, fitness smoother, kNN, generation 0), peak RSS, evaluations/s
# over the generations and evaluations/s x n_s, on 1 island with all cores; then the target shape:
# n_s = all on 2 ranks x 2 islands (1 thread each), whose peak RSS per rank includes the final
# checkpoint gather and the archive. Every row of one invocation runs back to back on one machine, so
# the ratios between rows are the result (the shared VM drifts by up to 1.5x over minutes).
#   bench/scale.sh [SIZES...]      (default: 3000 12000 30000 all)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${REPSEARCH_BIN:-build/repsearch}
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(3000 12000 30000 all)
[[ $EUID -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gens() { case "$1" in 3000) echo 40 ;; 12000) echo 12 ;; 30000) echo 6 ;; *) echo 5 ;; esac; }
field() { grep -oE "$2" "$tmp/$1.log" | head -1 | grep -oE '[0-9.]+' | head -1; }

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(date -u +%FT%TZ); commit $(git rev-parse --short HEAD)"
echo "# configs/fashion_mnist_dataset.ini (P=32, d=64, features 2048, |V| = |H| = 2000), --islands 1 --threads $(nproc)"
echo "| n_s | generations | set-up (s) | peak RSS (MiB) | eval/s | eval/s x n_s | vs n_s = ${sizes[0]} |"
echo "|---|---|---|---|---|---|---|"
base=""
for n in "${sizes[@]}"; do
  g=$(gens "$n")
  cmd=("$bin" search --config configs/fashion_mnist_dataset.ini --islands 1 --threads "$(nproc)" --search-size "$n"
    --generations "$g" --checkpoint-interval 0 --checkpoint-minutes 0 --out "$tmp/run-$n")
  /usr/bin/time -v "${cmd[@]}" >"$tmp/$n.log" 2>&1
  ns=$(grep -oE 'n_s=[0-9]+' "$tmp/$n.log" | head -1 | cut -d= -f2)
  setup=$(field "$n" 'set-up [0-9.]+ s')
  rss=$(( $(grep 'Maximum resident set size' "$tmp/$n.log" | grep -oE '[0-9]+') / 1024 ))
  # wall-clock evaluations/s over the generations (the progress line's own rate, set-up excluded)
  rate=$(grep -E "gen +$g/$g" "$tmp/$n.log" | grep -oE '[0-9]+ eval/s' | grep -oE '[0-9]+')
  prod=$(awk -v r="$rate" -v n="$ns" 'BEGIN { printf "%.2f", r * n / 1e6 }')
  [[ -n "$base" ]] || base=$prod
  echo "| $ns | $g | $setup | $rss | $rate | ${prod} M | $(awk -v a="$prod" -v b="$base" 'BEGIN { printf "%.2f", a / b }') |"
done
echo
echo "Target shape: n_s = all, 4 islands on 2 ranks (2 per rank), 1 thread each, 3 generations, final checkpoint and archive:"
mpirun --oversubscribe --bind-to none -np 2 "$bin" search --config configs/fashion_mnist_dataset.ini --islands 4 --threads 1 \
  --search-size all --generations 3 --checkpoint-minutes 0 --out "$tmp/target" >"$tmp/target.log" 2>&1
grep -E '^\[search\] (set-up|.*peak RSS)' "$tmp/target.log" | sed 's/^/    /'
