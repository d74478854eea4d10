#!/usr/bin/env bash
# The issue-12 grid at the shipped default's scale on one machine: configs/fashion_mnist_dataset.ini (4 islands,
# n_s 3000, d 64) on 2 ranks, population {8, 32, 128} x generations {25, 100, 400} (each longer run
# is the shorter one resumed, so the 25/100/400 archives are one trajectory), selection fitness
# (elites: top, the default) vs dns (elites: diverse). Then: the best elite of every archive learned;
# all 8 elites learned (ensemble) at P = 32 after 100 generations (the default) and P = 128 after 400; 8 SGD networks on
# S u V (seeds 0..7) once. Summary table: bench/study-diversity/grid.py OUT.
#   bash bench/study-diversity/run_grid.sh [OUT_DIR]     (default runs/study-diversity-grid)
# Extra search options for the qd scheme: QD_ARGS (default "--selection dns --elite-selection diverse").
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${REPSEARCH_BIN:-$here/build/repsearch}
out=${1:-$here/runs/study-diversity-grid}
ranks=${RANKS:-2}
read -r -a qd_args <<< "${QD_ARGS:---selection dns --elite-selection diverse}"
mkdir -p "$out"
[[ $EUID -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
search() { mpirun -np "$ranks" --oversubscribe "$bin" search --config "$here/configs/fashion_mnist_dataset.ini" --threads 1 --log-every 25 "$@"; }
# Generations outermost: the whole grid at 25, then each run resumed to 100, then to 400, so that a
# run cut short leaves complete lower rows.
prev=
for G in 25 100 400; do
  for P in 8 32 128; do
    for scheme in fitness dns; do
      if [[ $scheme == dns ]]; then extra=("${qd_args[@]}"); else extra=(--selection fitness --elite-selection top); fi
      run=$out/p$P-$scheme
      start=(--overwrite)
      [[ -n $prev ]] && start=(--resume)
      if [[ ! -f $run-g$G/archive.h5 ]]; then
        echo "[grid] P=$P $scheme G=$G"
        search "${extra[@]}" --population "$P" --generations "$G" --out "$run" "${start[@]}" > "$run.g$G.log" 2>&1
        mkdir -p "$run-g$G" && cp "$run/archive.h5" "$run-g$G/archive.h5.tmp" && mv "$run-g$G/archive.h5.tmp" "$run-g$G/archive.h5"
      fi
    done
  done
  prev=$G
done
learn() { "$bin" learn --archive "$1/archive.h5" --threads 1 "${@:2}"; }
for a in "$out"/p*-g*/; do
  a=${a%/}
  [[ -f $a/learn0.log ]] || { learn "$a" --elite 0 --out "$a" > "$a/learn0.tmp" 2>&1 && mv "$a/learn0.tmp" "$a/learn0.log"; }
done
for a in "$out"/p32-{fitness,dns}-g100 "$out"/p128-{fitness,dns}-g400; do
  [[ -f $a/learn-all.log ]] || { learn "$a" --elite all --out "$a" > "$a/learn-all.tmp" 2>&1 && mv "$a/learn-all.tmp" "$a/learn-all.log"; }
done
[[ -f $out/sgd.log ]] || { "$bin" sgd --config "$here/configs/fashion_mnist_dataset.ini" --threads 1 --seeds 0..7 --out "$out/sgd" > "$out/sgd.tmp" 2>&1 && mv "$out/sgd.tmp" "$out/sgd.log"; }
echo "[grid] done: $out"
