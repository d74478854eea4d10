#!/usr/bin/env bash
# Benchmarks 3 and 4 of bench/RESULTS.md: evaluations/s on 1 vs 2 ranks (one thread each, same
# islands and total work), MPI share of the wall time, islands per rank 1 vs 2, and peak RSS per rank
# against the population model P * n_s * d * 4 bytes.
#   bench/ranks.sh [GENERATIONS]     (default 20; default-size islands: P=32, n_s=3000, d=64)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${REPSEARCH_BIN:-build/repsearch}
g=${1:-20}
[[ $EUID -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() {  # label ranks islands [generations]
  local out
  out=$(mpirun --oversubscribe -np "$2" "$bin" search --config configs/fashion_mnist.ini --islands "$3" \
        --generations "${4:-$g}" --threads 1 --checkpoint-interval 0 --out "$tmp/$1" 2>&1)
  local rate mpi rss pop
  rate=$(grep -E "gen +${4:-$g}/" <<<"$out" | grep -oE '[0-9]+ eval/s' | grep -oE '[0-9]+')
  mpi=$(grep -oE 'MPI \(migration, gathers, signal agreement\) [0-9.]+ s \([0-9.]+%\)' <<<"$out" | grep -oE '\([0-9.]+%\)')
  rss=$(grep -oE 'peak RSS [0-9]+ MiB' <<<"$out" | grep -oE '[0-9]+')
  pop=$(grep -oE "one island's population [0-9.]+ MiB" <<<"$out" | grep -oE '[0-9.]+ MiB' | grep -oE '[0-9.]+')
  echo "| $1 | $2 | $3 | $rate | $mpi | $rss | $pop |"
}
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $g generations, P=32, n_s=3000, d=64, 1 thread/rank"
echo "| run | ranks | islands | evaluations/s | MPI share of wall | peak RSS/rank (MiB) | one population (MiB) |"
echo "|---|---|---|---|---|---|---|"
run "4 islands, 1 rank" 1 4
run "4 islands, 2 ranks" 2 4
run "1 island, 1 rank" 1 1
run "2 islands, 1 rank" 1 2
run "1 island, 1 rank, 0 generations (baseline: data, features, one scoring)" 1 1 0
