#!/usr/bin/env bash
# The example space's benchmarks and science (bench/example/RESULTS.md records one run):
#   throughput  bench_example, one thread: evaluations/s per layer and the share of a generation outside
#               the frozen network's forward passes, at configs/fashion_mnist.ini's shapes and at the
#               paper's CIFAR shapes (width 256, 32x32x3, population 240, 4 examples)
#   peer        repsearch vs bench/peers/paper_search.py (plain PyTorch) on one thread: the same network
#               (read from repsearch's archive), the same examples and schedule
#   ranks       the same search on 1 and 2 ranks: examples/s, MPI share (one thread per rank)
#   memory      peak RSS per rank at 2 sizes of search-size
#   fig2        mean best cross-entropy of each block searched alone vs population and vs generations
#   fig3        N_eff of the island bests vs the number of islands; searched logits' accuracy
# Each part writes its raw output under $OUT (default runs/bench-example/<time>) and a line to
# $OUT/summary.txt.   bench/example/run.sh [PART...]   (default: all parts; ~1 h on 2 idle cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-runs/bench-example/$(date +%Y%m%d-%H%M%S)}
B=${REPSEARCH:-build/repsearch}
BENCH=${BENCH:-build/bench/core/bench_example}
PY=${PY:-/usr/bin/python3}
DATA=${DATA_DIR:-/usr/share/datasets/fashion-mnist}
CFG=configs/fashion_mnist.ini
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$OUT"
parts=("$@"); [[ ${#parts[@]} -gt 0 ]] || parts=(throughput peer ranks memory fig2 fig3)
say() { echo "$*" | tee -a "$OUT/summary.txt"; }
say "# $(date -u +%FT%TZ) $(uname -n), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); commit $(git rev-parse --short HEAD)"
search() { "$B" search --config "$CFG" --log-every 100000 --checkpoint-minutes 0 --overwrite "$@"; }
ce_of() { "$B" inspect --json "$1/archive.h5" | "$PY" -c 'import json,sys; j=json.load(sys.stdin); print(json.dumps({k: j[k] for k in ("mean_best_ce","logit_accuracy","n_eff","n_eff_by_islands","cost") if k in j}))'; }

for part in "${parts[@]}"; do case "$part" in
throughput)
  "$BENCH" --threads 1 --width 32 --examples 50 --parents 4 --exploratory 10 --refinement 10 --generations 20 | tee "$OUT/throughput-fmnist.txt"
  "$BENCH" --threads 1 --width 256 --size 32 --channels 3 --examples 4 --generations 3 | tee "$OUT/throughput-cifar.txt"
  say "throughput fmnist: $(tail -1 "$OUT/throughput-fmnist.txt")"
  say "throughput cifar : $(tail -1 "$OUT/throughput-cifar.txt")"
  ;;
peer)
  n=${PEER_EXAMPLES:-100}
  /usr/bin/time -v "$B" search --config "$CFG" --search-size "$n" --threads 1 --out "$OUT/peer-repsearch" --log-every 100000 \
    --checkpoint-minutes 0 --overwrite > "$OUT/peer-repsearch.log" 2>&1
  sched="--parents 4 --exploratory 10 --refinement 10 --generations $("$B" config --config "$CFG" --get layer-generations)"
  sched+=" --alpha $("$B" config --config "$CFG" --get layer-alpha) --boost $("$B" config --config "$CFG" --get layer-boost)"
  sched+=" --blur $("$B" config --config "$CFG" --get layer-blur) --batch $("$B" config --config "$CFG" --get example-batch)"
  "$PY" bench/peers/paper_search.py "$OUT/peer-repsearch/archive.h5" --data-dir "$DATA" --threads 1 $sched > "$OUT/peer-pytorch.json"
  say "peer repsearch: $(grep -E 'cost:' "$OUT/peer-repsearch.log") $(ce_of "$OUT/peer-repsearch")"
  say "peer pytorch  : $(cat "$OUT/peer-pytorch.json")"
  ;;
ranks)
  n=${RANKS_EXAMPLES:-200}
  for np in 1 2; do
    start=$(date +%s.%N)
    mpirun --oversubscribe --allow-run-as-root -np "$np" "$B" search --config "$CFG" --search-size "$n" --threads 1 \
      --islands 2 --out "$OUT/ranks-$np" --log-every 100000 --checkpoint-minutes 0 --overwrite > "$OUT/ranks-$np.log" 2>&1
    end=$(date +%s.%N)
    say "ranks $np: wall $(echo "$end - $start" | bc) s for $n examples x 2 islands; $(grep -E 'since start' "$OUT/ranks-$np.log")"
  done
  ;;
memory)
  for n in 200 800; do
    /usr/bin/time -v "$B" search --config "$CFG" --search-size "$n" --threads 1 --layer-generations 2,1,1,1 \
      --out "$OUT/memory-$n" --log-every 100000 --checkpoint-minutes 0 --overwrite > "$OUT/memory-$n.log" 2>&1
    say "memory search-size $n: $(grep 'Maximum resident' "$OUT/memory-$n.log") ; $(grep 'peak RSS' "$OUT/memory-$n.log" | sed 's/.*peak RSS/peak RSS/')"
  done
  ;;
fig2)
  n=${FIG2_EXAMPLES:-200}
  for layer in block0 block1 block2; do
    for pop in "2 3 3" "4 10 10" "12 30 30"; do
      set -- $pop
      search --search-size "$n" --layers "$layer" --parents "$1" --exploratory "$2" --refinement "$3" \
        --layer-generations 20,20,20,20 --out "$OUT/fig2-$layer-p$(( $1 + $2 + $3 ))" > "$OUT/fig2-$layer-p$(( $1 + $2 + $3 )).log" 2>&1
      say "fig2 $layer population $(( $1 + $2 + $3 )) generations 20: $(ce_of "$OUT/fig2-$layer-p$(( $1 + $2 + $3 ))")"
    done
    for g in 5 20 80; do
      search --search-size "$n" --layers "$layer" --layer-generations "$g,$g,$g,$g" --out "$OUT/fig2-$layer-g$g" \
        > "$OUT/fig2-$layer-g$g.log" 2>&1
      say "fig2 $layer population 24 generations $g: $(ce_of "$OUT/fig2-$layer-g$g")"
    done
  done
  ;;
fig3)
  n=${FIG3_EXAMPLES:-100}
  mpirun --oversubscribe --allow-run-as-root -np 2 "$B" search --config "$CFG" --search-size "$n" --threads 1 --islands 8 \
    --out "$OUT/fig3" --log-every 100000 --checkpoint-minutes 0 --overwrite > "$OUT/fig3.log" 2>&1
  say "fig3 $n examples x 8 islands: $(ce_of "$OUT/fig3")"
  ;;
*) echo "bench/example/run.sh: unknown part '$part' (throughput peer ranks memory fig2 fig3)" >&2; exit 2 ;;
esac; done
say "# done $(date -u +%FT%TZ)"
