#!/usr/bin/env bash
# The example space's learning study (issue 21; bench/learn/RESULTS.md records one run), on Fashion-MNIST:
#   search   configs/fashion_mnist.ini's search of N examples (N = $N, default 3000) on 2 ranks -> $OUT/n$N
#   tune     the learner at depth 2, seed 0: kl-weight x learner-lr (the paper's lambda 0.03 and larger)
#   tune2    sgd at depth 2, seed 0, at learner-lr 0.05/0.2/0.5; the learner at larger rates and weights
#   tune3    the learner with kl-weight 3: 60 epochs, kl-weight 10, depth 3, skip-block0
#   tune4    what the head reads (head-input raw | normalised) for the learner and for sgd
#   compare  sgd at depths 1, 2, 3 and the learner (all and skip-block0, $LEARN_ARGS) at depth 2, seeds 0..2,
#            and the report (Table 1, Figures 5-7)
#   speed    learn vs sgd examples/s per epoch at depth 2 (4 epochs each, alternating, twice)
#   fig4     searches of $N4 examples at population 12/24/48 and generations x0.5/x1/x2 of the config's, a
#            learner on each (seeds 0..1), and the report over them (Figures 2 and 4)
# Each part writes its raw output under $OUT and lines to $OUT/summary.txt.
#   bench/learn/run.sh [PART...]   (default: search tune compare fig4; about 1 h on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-runs/bench-learn}
B=${REPSEARCH:-build/repsearch}
PY=${PY:-/usr/bin/python3}
N=${N:-3000}
N4=${N4:-500}
CFG=configs/fashion_mnist.ini
EPOCHS=${EPOCHS:-30}
LEARN_ARGS=${LEARN_ARGS:-}
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$OUT"
parts=("$@"); [[ ${#parts[@]} -gt 0 ]] || parts=(search tune compare fig4)
say() { echo "$*" | tee -a "$OUT/summary.txt"; }
say "# $(date -u +%FT%TZ) $(uname -n), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); commit $(git rev-parse --short HEAD)"
search() { mpirun --oversubscribe -np 2 "$B" search --config "$CFG" --threads 1 --log-every 100000 --checkpoint-minutes 0 --overwrite "$@"; }
last() { tail -1 "$1" | sed 's/.*selected/selected/'; }
timed() { local t0=$SECONDS; "$@"; echo "$((SECONDS - t0))"; }

for part in "${parts[@]}"; do case "$part" in
search)
  t0=$SECONDS
  search --search-size "$N" --out "$OUT/n$N" > "$OUT/search-n$N.log" 2>&1
  say "search n=$N: $((SECONDS - t0)) s; $(grep 'mean best cross-entropy' "$OUT/search-n$N.log" | sed 's/.*: 3000/3000/')"
  ;;
tune)
  for kl in 0.03 0.3 3; do for lr in 0.05 0.2; do
    d="$OUT/tune/kl$kl-lr$lr"; mkdir -p "$d"; t0=$SECONDS
    "$B" learn --archive "$OUT/n$N/archive.h5" --out "$d" --learner-epochs "$EPOCHS" --kl-weight "$kl" --learner-lr "$lr" > "$d/log" 2>&1
    say "tune kl-weight $kl lr $lr ($((SECONDS - t0)) s): $(last "$d/log")"
  done; done
  ;;
tune2)
  for lr in 0.05 0.2 0.5; do
    d="$OUT/tune/sgd-lr$lr"; mkdir -p "$d"; t0=$SECONDS
    "$B" sgd --archive "$OUT/n$N/archive.h5" --out "$d" --learner-epochs "$EPOCHS" --learner-lr "$lr" > "$d/log" 2>&1
    say "tune sgd depth 2 lr $lr ($((SECONDS - t0)) s): $(last "$d/log")"
  done
  for spec in "0.3 0.5" "1 0.2" "1 0.5"; do
    read -r kl lr <<<"$spec"; d="$OUT/tune/kl$kl-lr$lr"; mkdir -p "$d"; t0=$SECONDS
    "$B" learn --archive "$OUT/n$N/archive.h5" --out "$d" --learner-epochs "$EPOCHS" --kl-weight "$kl" --learner-lr "$lr" > "$d/log" 2>&1
    say "tune kl-weight $kl lr $lr ($((SECONDS - t0)) s): $(last "$d/log")"
  done
  ;;
tune3)
  for spec in "kl3-e60 --kl-weight 3 --learner-lr 0.2 --learner-epochs 60" "kl10 --kl-weight 10 --learner-lr 0.2 --learner-epochs $EPOCHS" \
              "kl3-d3 --kl-weight 3 --learner-lr 0.2 --depth 3 --learner-epochs $EPOCHS" \
              "kl3-skip0 --kl-weight 3 --learner-lr 0.2 --supervise skip-block0 --learner-epochs $EPOCHS"; do
    name=${spec%% *}; extra=${spec#"$name"}; d="$OUT/tune/$name"; mkdir -p "$d"; t0=$SECONDS
    # shellcheck disable=SC2086
    "$B" learn --archive "$OUT/n$N/archive.h5" --out "$d" $extra > "$d/log" 2>&1
    say "tune learn$extra ($((SECONDS - t0)) s): $(last "$d/log")"
  done
  ;;
tune4)
  for spec in "head-raw --head-input raw" "head-norm --head-input normalised" "head-norm-kl0.3 --head-input normalised --kl-weight 0.3"; do
    name=${spec%% *}; extra=${spec#"$name"}; d="$OUT/tune/$name"; mkdir -p "$d"; t0=$SECONDS
    # shellcheck disable=SC2086
    "$B" learn --archive "$OUT/n$N/archive.h5" --out "$d" --kl-weight 3 --learner-lr 0.2 --learner-epochs "$EPOCHS" $extra > "$d/log" 2>&1 ||
      "$B" learn --archive "$OUT/n$N/archive.h5" --out "$d" --learner-lr 0.2 --learner-epochs "$EPOCHS" $extra > "$d/log" 2>&1
    say "tune learn kl 3 (or as given) lr 0.2$extra ($((SECONDS - t0)) s): $(last "$d/log")"
  done
  d="$OUT/tune/sgd-head-norm"; mkdir -p "$d"; t0=$SECONDS
  "$B" sgd --archive "$OUT/n$N/archive.h5" --out "$d" --learner-epochs "$EPOCHS" --head-input normalised > "$d/log" 2>&1
  say "tune sgd depth 2 lr 0.05 --head-input normalised ($((SECONDS - t0)) s): $(last "$d/log")"
  ;;
speed)
  # examples/s per epoch at equal depth (2), alternating learn and sgd twice, 4 epochs each, on an idle machine
  for round in 1 2; do
    for kind in learn sgd; do
      d="$OUT/speed/$kind-$round"; mkdir -p "$d"
      "$B" "$kind" --archive "$OUT/n$N/archive.h5" --out "$d" --learner-epochs 4 --seeds 0 > "$d/log" 2>&1
      say "speed $kind round $round: $(grep -o '[0-9]* ex/s' "$d/log" | tr '\n' ' ')"
    done
  done
  ;;
compare)
  d="$OUT/n$N"; t0=$SECONDS
  "$B" sgd --archive "$d/archive.h5" --depth 1,2,3 --seeds 0..2 --learner-epochs "$EPOCHS" > "$OUT/compare-sgd.log" 2>&1
  say "sgd depths 1,2,3 x seeds 0..2: $((SECONDS - t0)) s"
  t0=$SECONDS
  "$B" learn --archive "$d/archive.h5" --supervise all,skip-block0 --seeds 0..2 --learner-epochs "$EPOCHS" $LEARN_ARGS > "$OUT/compare-learn.log" 2>&1
  say "learn all,skip-block0 x seeds 0..2 ($LEARN_ARGS): $((SECONDS - t0)) s"
  "$PY" analysis/report.py "$d" --out "$OUT/report-n$N" | tee -a "$OUT/summary.txt"
  grep -h "selected epoch" "$OUT/compare-sgd.log" "$OUT/compare-learn.log" | sed 's/^/  /' | tee -a "$OUT/summary.txt"
  ;;
fig4)
  gens=$(grep '^layer-generations' "$CFG" | cut -d= -f2 | tr -d ' ')
  half=$("$PY" -c "print(','.join(str(max(1, int(g) // 2)) for g in '$gens'.split(',')))")
  double=$("$PY" -c "print(','.join(str(2 * int(g)) for g in '$gens'.split(',')))")
  runs=()
  for spec in "p12 --parents 2 --exploratory 5 --refinement 5" "p24" "p48 --parents 8 --exploratory 20 --refinement 20" \
              "g05 --layer-generations $half" "g2 --layer-generations $double"; do
    name=${spec%% *}; extra=${spec#"$name"}; d="$OUT/fig4/$name"; t0=$SECONDS
    # shellcheck disable=SC2086
    search --search-size "$N4" --out "$d" $extra > "$d.log" 2>&1 || { mkdir -p "$d"; search --search-size "$N4" --out "$d" $extra > "$d.log" 2>&1; }
    "$B" learn --archive "$d/archive.h5" --seeds 0..1 --learner-epochs "$EPOCHS" $LEARN_ARGS > "$d/learn.log" 2>&1
    say "fig4 $name ($((SECONDS - t0)) s):$extra | $(grep 'mean best cross-entropy' "$d.log" | sed 's/.*layer.s search: //') | $(grep -h 'selected epoch' "$d/learn.log" | sed 's/.*test acc \([0-9.]*\).*/\1/' | tr '\n' ' ')"
    runs+=("$d")
  done
  "$PY" analysis/report.py "${runs[@]}" --out "$OUT/report-fig4" | tee -a "$OUT/summary.txt"
  ;;
*) echo "unknown part $part" >&2; exit 2 ;;
esac; done
