#!/usr/bin/env bash
# Benchmarks 3 and 4 of bench/RESULTS.md. Evaluations/s with 1 and 2 ranks (one thread each) on the
# same 4 islands, and the ceiling for 2 ranks on this machine: two independent 1-rank processes with
# 2 islands each, run at the same time (no MPI between them; they share cores, caches and memory
# bandwidth exactly as the 2 ranks do). The three runs are repeated REPS times back to back and the
# ratios of each repetition reported, so a busy moment of the shared machine hits both sides of a
# ratio. No run is pinned to a core (--bind-to none: two 1-rank mpiruns would share core 0).
# Then islands per rank, and peak RSS per rank (through the generations, and at the end, after the
# final checkpoint gathered every population to rank 0) against the population model P * n_s * d * 4 B.
# Then 2 ranks on 2 hosts (network namespaces on this machine, tests/multihost/harness.sh; MPI over TCP
# between them) against 2 ranks on this one host (shared memory), same 4 islands, REPS times each
# (root only: it makes namespaces).
#   bench/ranks.sh [GENERATIONS] [REPS] [PARTS]  (defaults 30, 3 and ranks,memory,hosts; default-size
#                                                 islands: P=32, n_s=3000, d=64)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=$(realpath "${REPSEARCH_BIN:-build/repsearch}")
config=$PWD/configs/fashion_mnist.ini
g=${1:-30}
reps=${2:-3}
parts=${3:-ranks,memory,hosts}
[[ $EUID -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
hosts=$PWD/tests/multihost/harness.sh
export MULTIHOST_DIR=$tmp/hosts MULTIHOST_OWNER=$$
trap '"$hosts" down >/dev/null; rm -rf "$tmp"' EXIT
search() {  # out ranks islands generations -> the run's output in $tmp/out.log
  mpirun --oversubscribe --bind-to none -np "$2" "$bin" search --config "$config" --islands "$3" \
    --generations "$4" --threads 1 --checkpoint-interval 0 --overwrite --out "$tmp/$1" >"$tmp/$1.log" 2>&1
}
search_hosts() {  # out islands generations: one rank on each of hosts 0 and 1
  "$hosts" mpirun 0,1 "$bin" search --config "$config" --islands "$2" \
    --generations "$3" --threads 1 --checkpoint-interval 0 --overwrite --out "$tmp/$1" >"$tmp/$1.log" 2>&1
}
rate() { grep -E "gen +$2/" "$tmp/$1.log" | grep -oE '[0-9]+ eval/s' | grep -oE '[0-9]+'; }
# The cost line: the largest share any rank spent in MPI of its own time since start.
mpi() { grep -oE 'MPI \(migration, gathers, signal agreement\) [0-9.]+ s \([0-9.]+% of that rank.s time\), of which migration [0-9.]+ s' "$tmp/$1.log" |
        sed -E 's/.*\) ([0-9.]+) s \(([0-9.]+%) of that rank.s time\), of which migration ([0-9.]+) s/\2 (migration \3 s of \1 s)/'; }
want() { [[ ",$parts," == *",$1,"* ]]; }
rss() { grep -oE 'peak RSS [0-9]+ MiB per rank \(max; [0-9]+ MiB before' "$tmp/$1.log" | grep -oE '[0-9]+' | tr '\n' ' ' |
        awk '{ printf "%s | %s", $2, $1 }'; }
pop() { grep -oE "one island's population [0-9.]+ MiB" "$tmp/$1.log" | grep -oE '[0-9.]+ MiB' | grep -oE '[0-9.]+'; }

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $g generations, P=32, n_s=3000, d=64, 1 thread/rank"
if want ranks; then
echo "| rep | 1 rank, 4 islands (eval/s) | 2 ranks, 4 islands | 2 independent processes, 2 islands each (sum) | 2 ranks / 1 rank | ceiling: independent / 1 rank | 2 ranks / ceiling | MPI share of the 2-rank run |"
echo "|---|---|---|---|---|---|---|---|"
for r in $(seq 1 "$reps"); do
  search one 1 4 "$g"
  search two 2 4 "$g"
  search indA 1 2 "$g" & search indB 1 2 "$g"; wait
  a=$(rate one "$g") b=$(rate two "$g") c=$(( $(rate indA "$g") + $(rate indB "$g") ))
  awk -v r="$r" -v a="$a" -v b="$b" -v c="$c" -v m="$(mpi two)" \
    'BEGIN { printf "| %d | %d | %d | %d | %.2fx | %.2fx | %.0f%% | %s |\n", r, a, b, c, b / a, c / a, 100 * b / c, m }'
done
fi
if want memory; then
echo
echo "| run | ranks | islands | evaluations/s | MPI share of the rank's time | peak RSS/rank through the generations (MiB) | peak RSS/rank at the end (MiB) | one population (MiB) |"
echo "|---|---|---|---|---|---|---|---|"
for spec in "1 island, 1 rank:1:1:$g" "2 islands, 1 rank:1:2:$g" "4 islands, 1 rank:1:4:$g" "4 islands, 2 ranks:2:4:$g" \
            "1 island, 1 rank, 0 generations (baseline; data, features, one scoring):1:1:0"; do
  IFS=: read -r label ranks islands gens <<<"$spec"
  search mem "$ranks" "$islands" "$gens"
  echo "| $label | $ranks | $islands | $(rate mem "$gens") | $(mpi mem) | $(rss mem) | $(pop mem) |"
done
fi
if want hosts; then
echo
if ! why=$("$hosts" up 2 2>&1); then
  echo "(2 hosts skipped: $(tail -n 1 <<<"$why"))"
else
echo "2 hosts: $(head -n 1 <<<"$why" | sed 's/^\[hosts\] //')"
echo
echo "| rep | 2 ranks, 1 host, shared memory (eval/s) | 2 ranks, 2 hosts, TCP (eval/s) | TCP / shared memory | MPI share, shared memory | MPI share, TCP |"
echo "|---|---|---|---|---|---|"
for r in $(seq 1 "$reps"); do
  search sm 2 4 "$g"
  search_hosts tcp 4 "$g"
  a=$(rate sm "$g") b=$(rate tcp "$g")
  awk -v r="$r" -v a="$a" -v b="$b" -v ma="$(mpi sm)" -v mb="$(mpi tcp)" \
    'BEGIN { printf "| %d | %d | %d | %.2fx | %s | %s |\n", r, a, b, b / a, ma, mb }'
done
fi
fi
