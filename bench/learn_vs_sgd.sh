#!/usr/bin/env bash
# Benchmark of issue 4: test accuracy of learn (best elite, ensemble of elites) vs sgd on S+V vs sgd
# on the full training set, one full pipeline per seed, with training examples/s of learn vs sgd.
#   bench/learn_vs_sgd.sh [SEEDS...]        (default seeds: 0 1 2; writes runs/bench-learn/seed-<s>)
# Prints a Markdown table; bench/RESULTS.md holds the recorded one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${REPSEARCH_BIN:-build/repsearch}
config=configs/fashion_mnist.ini
seeds=("$@")
[[ ${#seeds[@]} -gt 0 ]] || seeds=(0 1 2)
[[ $EUID -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for s in "${seeds[@]}"; do
  d=runs/bench-learn/seed-$s
  mkdir -p "$d"
  [[ -f $d/archive.h5 ]] || mpirun --oversubscribe -np 2 "$bin" search --config $config --seed "$s" --out "$d" --threads 1 > "$d/search.log"
  [[ -f $d/learn-summary.json ]] || "$bin" learn --archive "$d/archive.h5" --elite all --threads 1 > "$d/learn.log"
  [[ -f $d/sgd-summary.json ]] || "$bin" sgd --config $config --seed "$s" --out "$d" --seeds 0..2 --threads 1 > "$d/sgd.log"
  [[ -f $d/sgd-full-0.h5 ]] || "$bin" sgd --config $config --seed "$s" --out "$d" --seeds 0 --data full --threads 1 > "$d/sgd-full.log"
done
/usr/bin/python3 - "${seeds[@]}" <<'PY'
import json, re, sys, statistics as st
rows = []
for s in sys.argv[1:]:
    d = f"runs/bench-learn/seed-{s}"
    L, S = json.load(open(f"{d}/learn-summary.json")), json.load(open(f"{d}/sgd-summary.json"))
    full = re.search(r"test ([0-9.]+)", open(f"{d}/sgd-full.log").read()).group(1)
    def rate(log):  # mean examples/s over the epoch lines
        v = [float(x) for x in re.findall(r"([0-9]+) ex/s", open(log).read())]
        return sum(v) / len(v)
    rows.append((s, L["networks"][0]["test"], L["ensemble_test"], len(L["networks"]),
                 statistics_mean := st.mean(n["test"] for n in S["networks"]), S["ensemble_test"], float(full),
                 rate(f"{d}/learn.log"), rate(f"{d}/sgd.log")))
print("| seed | learn best elite | learn ensemble | sgd S+V (mean of 3) | sgd S+V ensemble (3) | sgd full data | learn ex/s | sgd ex/s |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]:.4f} | {r[2]:.4f} ({r[3]}) | {r[4]:.4f} | {r[5]:.4f} | {r[6]:.4f} | {r[7]:.0f} | {r[8]:.0f} |")
m = lambda i: st.mean(r[i] for r in rows)
sd = lambda i: st.pstdev(r[i] for r in rows)
print(f"| mean ± sd | {m(1):.4f} ± {sd(1):.4f} | {m(2):.4f} ± {sd(2):.4f} | {m(4):.4f} ± {sd(4):.4f} | {m(5):.4f} ± {sd(5):.4f} | {m(6):.4f} ± {sd(6):.4f} | {m(7):.0f} | {m(8):.0f} |")
PY
