#!/usr/bin/env bash
# The attempts at the issue-12 target with the shipped default (configs/fashion_mnist_dataset.ini, 2 ranks,
# 1 thread each, 100 generations): one search per option set, elite diversity from `repsearch
# inspect`; for two of them all 8 elites learned (ensemble).
#   bash bench/study-diversity/run_attempts.sh [OUT_DIR]     (default runs/study-diversity-attempts)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${REPSEARCH_BIN:-$here/build/repsearch}
out=${1:-$here/runs/study-diversity-attempts}
mkdir -p "$out"
[[ $EUID -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
attempt() {
  local name=$1; shift
  mpirun -np 2 --oversubscribe "$bin" search --config "$here/configs/fashion_mnist_dataset.ini" --threads 1 \
    --out "$out/$name" --overwrite "$@" > "$out/$name.search.log" 2>&1
  echo "$name ($*): $("$bin" inspect "$out/$name/archive.h5" | grep '^diversity')"
}
attempt top-diverse --elite-selection diverse
attempt rep05 --island-repulsion 0.05 --elite-selection diverse
attempt rep20 --island-repulsion 0.2 --elite-selection diverse
attempt rep50 --island-repulsion 0.5 --elite-selection diverse
attempt dns --selection dns --elite-selection diverse
attempt dns-rep20 --selection dns --island-repulsion 0.2 --elite-selection diverse
attempt dns-dis --selection dns --qd-distance disagreement --elite-selection diverse
attempt rep50-full --island-repulsion 0.5 --topology full --elite-selection diverse
attempt rep200-full --island-repulsion 2 --topology full --elite-selection diverse
attempt rep200-full-int5 --island-repulsion 2 --topology full --migration-interval 5 --elite-selection diverse
for name in rep200-full dns; do
  "$bin" learn --archive "$out/$name/archive.h5" --elite all --threads 1 --out "$out/$name" > "$out/$name.learn.log" 2>&1
  grep ensemble "$out/$name.learn.log"
done
