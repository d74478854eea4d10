#!/usr/bin/env bash
# Issue-11 science: does a network learned from a whole-training-set search approach SGD trained on
# all the data (same network, same epochs)? And does carrying a 3,000-example search to the whole
# training set through the fitness's smoother (learn --extend smoother) help?
#   A. search n_s = all (4 islands, 1 rank); after G in GENS the archive is copied and the best elite
#      learned (regression on all of S, ridge head on S + V, the config's 30 epochs);
#   B. the default n_s = 3,000 search to the last G: learn with and without --extend smoother;
#   C. sgd --data full (all 60,000 training images, same network, same 30 epochs), seeds 0 and 1.
#   bench/scale_science.sh [GENS...]     (default 0 10 25 50; runs in runs/bench-scale; resumable)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${REPSEARCH_BIN:-build/repsearch}
config=configs/fashion_mnist_dataset.ini
gens=("$@")
[[ ${#gens[@]} -gt 0 ]] || gens=(0 10 25 50)
d=runs/bench-scale
mkdir -p "$d"
t() { /usr/bin/time -f "%e s" "$@"; }
log() { echo "[scale_science $(date -u +%T)] $*"; }

prev=""
for g in "${gens[@]}"; do  # A: one search, resumed from checkpoint to checkpoint
  if [[ ! -f $d/all-g$g/archive.h5 ]]; then
    log "search n_s = all to generation $g"
    resume=(--overwrite); [[ -n "$prev" ]] && resume=(--resume)
    t "$bin" search --config $config --search-size all --generations "$g" --checkpoint-minutes 0 \
      --out "$d/all" "${resume[@]}" >>"$d/all-search.log" 2>&1
    mkdir -p "$d/all-g$g" && cp "$d/all/archive.h5" "$d/all-g$g/archive.h5"
  fi
  prev=$g
  [[ -f $d/all-g$g/learn.log ]] || { log "learn from the all-data archive at generation $g";
    t "$bin" learn --archive "$d/all-g$g/archive.h5" --elite 0 >"$d/all-g$g/learn.log" 2>&1; }
done
last=${gens[-1]}
if [[ ! -f $d/s3000/archive.h5 ]]; then  # B
  log "search n_s = 3000 to generation $last"
  t "$bin" search --config $config --generations "$last" --checkpoint-minutes 0 --out "$d/s3000" --overwrite >"$d/s3000-search.log" 2>&1
fi
[[ -f $d/s3000/learn.log ]] || { log "learn n_s = 3000"; t "$bin" learn --archive "$d/s3000/archive.h5" --elite 0 >"$d/s3000/learn.log" 2>&1; }
if [[ ! -f $d/s3000-extend/learn.log ]]; then
  log "learn n_s = 3000 --extend smoother"
  mkdir -p "$d/s3000-extend"
  t "$bin" learn --archive "$d/s3000/archive.h5" --elite 0 --extend smoother --out "$d/s3000-extend" >"$d/s3000-extend/learn.log" 2>&1
fi
for s in 0 1; do  # C
  [[ -f $d/sgd-full-$s.log ]] || { log "sgd full data seed $s";
    t "$bin" sgd --config $config --data full --seeds "$s" --out "$d/sgd" >"$d/sgd-full-$s.log" 2>&1; }
done

/usr/bin/python3 - "$d" "${gens[@]}" <<'PY'
import re, sys
d, gens = sys.argv[1], sys.argv[2:]
def acc(log):
    m = re.findall(r"test ([0-9.]+)", open(log).read())
    return float(m[-1])
def secs(log):
    m = re.findall(r"^([0-9.]+) s$", open(log).read(), re.M)
    return float(m[-1]) if m else float("nan")
sgd = [acc(f"{d}/sgd-full-{s}.log") for s in (0, 1)]
ref = sum(sgd) / len(sgd)
print(f"SGD on all 60,000 training images (same MLP, 30 epochs): seeds 0, 1 -> {sgd[0]:.4f}, {sgd[1]:.4f} (mean {ref:.4f}); {secs(f'{d}/sgd-full-0.log'):.0f} s each")
print()
print("| searched S | generations | learned test accuracy (best elite) | / SGD full | learn time (s) |")
print("|---|---|---|---|---|")
for g in gens:
    a = acc(f"{d}/all-g{g}/learn.log")
    print(f"| all (56,000) | {g} | {a:.4f} | {a / ref:.3f} | {secs(f'{d}/all-g{g}/learn.log'):.0f} |")
for name, label in (("s3000", "3,000"), ("s3000-extend", "3,000 + --extend smoother (58,000)")):
    a = acc(f"{d}/{name}/learn.log")
    print(f"| {label} | {gens[-1]} | {a:.4f} | {a / ref:.3f} | {secs(f'{d}/{name}/learn.log'):.0f} |")
PY
grep -h "set-up\|since start" "$d/all-search.log" | sed 's/^/    /'
