#!/usr/bin/env bash
# The REDUCED diversity study that fits a shared 2-core machine (see README.md here for what it is
# and is not): 2 islands on 1 rank, 1 thread, Fashion-MNIST, n_s 3000, populations 8 and 32,
# generations 25 and 100 (the 100-generation archive is the 25-generation run resumed), selection
# fitness (elites: top, today's default) vs dns (elites: diverse). Then the best elite of every
# archive is learned, and for the P=32, 100-generation archives all 8 elites (ensemble) beside 8 SGD
# networks on the same data.
#   bash bench/study-diversity/run_reduced.sh [OUT_DIR]   (default runs/study-diversity-reduced)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=$here/build/repsearch
out=${1:-$here/runs/study-diversity-reduced}
data=${REPSEARCH_DATA_DIR:-/usr/share/datasets/fashion-mnist}
common=(--dataset fashion-mnist --data-dir "$data" --islands 2 --threads 1 --log-every 25 --checkpoint-minutes 0)
mkdir -p "$out"
for P in 8 32; do
  for scheme in fitness dns; do
    if [[ $scheme == dns ]]; then extra=(--selection dns --elite-selection diverse); else extra=(--selection fitness --elite-selection top); fi
    run=$out/p$P-$scheme
    "$bin" search "${common[@]}" "${extra[@]}" --population $P --generations 25 --out "$run" --overwrite > "$run.g25.log" 2>&1
    mkdir -p "$run-g25" && cp "$run/archive.h5" "$run-g25/archive.h5"
    "$bin" search "${common[@]}" "${extra[@]}" --population $P --generations 100 --out "$run" --resume > "$run.g100.log" 2>&1
    mkdir -p "$run-g100" && cp "$run/archive.h5" "$run-g100/archive.h5"
  done
done
# best elite of every archive
for a in "$out"/p*-g25 "$out"/p*-g100; do
  [[ -f $a/learn-done ]] || { "$bin" learn --archive "$a/archive.h5" --elite 0 --threads 1 > "$a/learn0.log" 2>&1 && touch "$a/learn-done"; }
done
# ensembles of 8 at P=32, 100 generations, and 8 SGD networks on S u V
for scheme in dns fitness; do
  a=$out/p32-$scheme-g100
  "$bin" learn --archive "$a/archive.h5" --elite all --threads 1 > "$a/learn-all.log" 2>&1
done
"$bin" sgd "${common[@]}" --seeds 0..7 --out "$out/sgd" > "$out/sgd.log" 2>&1
