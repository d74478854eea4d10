#!/usr/bin/env bash
# Before/after of benchmarks 1-2 in one run: alternates `bench_fitness --quick` of two builds PAIRS
# times and prints the medians and the median of the per-pair ratios (old / new).
#   bench/ab_quick.sh OLD_BENCH_FITNESS NEW_BENCH_FITNESS [PAIRS]     (default 9)
# e.g. git worktree add /tmp/old 3a4813d && cmake -S /tmp/old -B /tmp/old/build -G Ninja \
#      -DREPSEARCH_CORE_ONLY=ON && cmake --build /tmp/old/build --target bench_fitness
#      bench/ab_quick.sh /tmp/old/build/bench/core/bench_fitness build/bench/core/bench_fitness
set -euo pipefail
old=$1 new=$2 pairs=${3:-9}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OPENBLAS_NUM_THREADS=1
for r in $(seq 1 "$pairs"); do
  "$old" --threads 1 --quick --reps 9 >"$tmp/old$r.txt" 2>&1
  "$new" --threads 1 --quick --reps 9 >"$tmp/new$r.txt" 2>&1
done
/usr/bin/python3 - "$tmp" "$pairs" <<'PY'
import re, statistics as st, sys
d, pairs = sys.argv[1], int(sys.argv[2])
def parts(text):  # ms per generation of the GA split, and ms per scoring of P (back to back)
    row = lambda k: float([l for l in text.splitlines() if l.startswith('| ' + k)][0].split('|')[2]) * 1e3
    m = re.search(r'back to back ([0-9.]+) ms', text)  # new bench; the old one has it in the grid row
    fit = float(m.group(1)) if m else float([l for l in text.splitlines() if l.startswith('| 32 |')][0].split('|')[4]) * 1e3
    return [fit] + [row(k) for k in ('fitness', 'selection', 'history', 'total')]
rows = [(parts(open(f'{d}/old{r}.txt').read()), parts(open(f'{d}/new{r}.txt').read())) for r in range(1, pairs + 1)]
names = ['one scoring of P (back to back)', 'fitness (2P scores)', 'selection + variation + replacement', 'history row', 'generation total']
print(f'| ms, median of {pairs} alternating pairs | old | new | old / new (median of pair ratios) |\n|---|---|---|---|')
for i, n in enumerate(names):
    print(f'| {n} | {st.median(o[i] for o, _ in rows):.1f} | {st.median(w[i] for _, w in rows):.1f} | '
          f'{st.median(o[i] / w[i] for o, w in rows):.2f}x |')
print(f'| fitness share of a generation | {100 * st.median(o[1] / o[4] for o, _ in rows):.0f} % | '
      f'{100 * st.median(w[1] / w[4] for _, w in rows):.0f} % | |')
PY
