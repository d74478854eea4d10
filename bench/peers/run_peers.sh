#!/usr/bin/env bash
# Benchmark 5: repsearch vs peers (pagmo2, DEAP) on the same representation-search problem.
# Runs, one after the other and pinned to the same CPUs:
#   1. repsearch search, plain GA (--operators gaussian --crossover 0.1), fixed V (--val-batch |V|)
#   2. repsearch search, default operator set, fixed V
#   3. pagmo2: bench/peers/pagmo_search (sga, archipelago of thread islands, ring migration)
#   4. DEAP:   bench/peers/deap_search.py (numpy fitness, migRing), splits read from run 1's archive
#   + extras for the batch-fitness question: pagmo pso_gen with and without its bfe hook, DEAP with
#     batched numpy evaluation.
# and writes a Markdown report (table, machine, exact commands) to $OUT/report.md and stdout.
#
#   bench/peers/run_peers.sh     (from the repository root; ~5 minutes with REPEATS=3 on 2 busy cores)
# Settings (environment): N_S DIM POP ISLANDS GENS MIG SEED THREADS VAL HELD DATA_DIR CPUS OUT EXTRAS REPEATS
#   REPSEARCH (default build/repsearch), PAGMO (default build-peers/pagmo_search, else
#   build/bench/peers/pagmo_search), PY (default /usr/bin/python3: Debian's, with numpy/h5py/deap).
# Build the pagmo harness first (it is never built by default):
#   cmake -S bench/peers -B build-peers -G Ninja && cmake --build build-peers -j2
set -euo pipefail
cd "$(dirname "$0")/../.."

N_S=${N_S:-1000}
DIM=${DIM:-32}
POP=${POP:-16}
ISLANDS=${ISLANDS:-2}
GENS=${GENS:-30}
MIG=${MIG:-10}
SEED=${SEED:-0}
THREADS=${THREADS:-1}
VAL=${VAL:-2000}
HELD=${HELD:-2000}
DATA_DIR=${DATA_DIR:-/usr/share/datasets/fashion-mnist}
CPUS=${CPUS:-0}          # taskset CPU list every tool runs on (same hardware for all)
EXTRAS=${EXTRAS:-1}      # 1: also run the batch-fitness extras
REPEATS=${REPEATS:-3}    # runs per tool (round-robin); the report uses each tool's median-wall run
OUT=${OUT:-runs/peers/$(date +%Y%m%d-%H%M%S)}
REPSEARCH=${REPSEARCH:-build/repsearch}
PY=${PY:-/usr/bin/python3}
if [[ -z "${PAGMO:-}" ]]; then
  PAGMO=build-peers/pagmo_search
  [[ -x $PAGMO ]] || PAGMO=build/bench/peers/pagmo_search
fi

die() { echo "run_peers.sh: $*" >&2; exit 1; }
[[ -x $REPSEARCH ]] || die "$REPSEARCH not found: build repsearch first"
[[ -x $PAGMO ]] || die "pagmo harness not found (tried build-peers/ and build/bench/peers/); build it:
  cmake -S bench/peers -B build-peers -G Ninja && cmake --build build-peers -j2"
"$PY" -c 'import numpy, h5py, deap' 2>/dev/null || die "$PY lacks numpy/h5py/deap (apt-get install python3-deap python3-h5py)"
command -v taskset >/dev/null || die "taskset (util-linux) not found"

mkdir -p "$OUT"
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
PIN=(taskset -c "$CPUS")
CMDS="$OUT/commands.txt"
: >"$CMDS"

# Prefix every output line with seconds since the command started (repsearch prints no wall time).
stamp() { "$PY" -u -c 'import sys, time
t = time.monotonic()
for line in sys.stdin:
    sys.stdout.write("%.3f %s" % (time.monotonic() - t, line))
    sys.stdout.flush()'; }

run() {  # run NAME REPEAT CMD...: log to $OUT/NAME.rREPEAT.log; the command is recorded once
  local name=$1 rep=$2; shift 2
  [[ $rep == 1 ]] && printf '%s\n' "$name: ${*}" >>"$CMDS"
  echo "== $name (repeat $rep of $REPEATS)" >&2
  local t0=$EPOCHREALTIME
  "${PIN[@]}" "$@" 2>&1 | stamp >"$OUT/$name.r$rep.log"
  awk -v n="$name.r$rep" -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%s %.3f\n", n, b - a }' \
    >>"$OUT/process_seconds.txt"
  tail -n 1 "$OUT/$name.r$rep.log" >&2
}

COMMON=(--seed "$SEED" --data-dir "$DATA_DIR" --search-size "$N_S" --val-size "$VAL" --heldout-size "$HELD"
        --dim "$DIM" --population "$POP" --islands "$ISLANDS" --generations "$GENS" --migration-interval "$MIG"
        --threads "$THREADS")
RS=("$REPSEARCH" search "${COMMON[@]}" --val-batch "$VAL" --checkpoint-interval 0 --log-every 1)
SPLITS="$OUT/repsearch-plain.r1/archive.h5"  # DEAP searches the very examples repsearch searched
: >"$OUT/process_seconds.txt"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

# Repeats go round-robin over the tools so that load from other jobs spreads over all of them.
for ((r = 1; r <= REPEATS; r++)); do
  run repsearch-plain $r "${RS[@]}" --operators gaussian --crossover 0.1 --out "$OUT/repsearch-plain.r$r"
  run repsearch-default $r "${RS[@]}" --out "$OUT/repsearch-default.r$r"
  run pagmo-sga $r "$PAGMO" "${COMMON[@]}" --algorithm sga
  run deap $r "$PY" bench/peers/deap_search.py "${COMMON[@]}" --splits-from "$SPLITS"
  if [[ $EXTRAS == 1 ]]; then
    run pagmo-pso_gen-bfe $r "$PAGMO" "${COMMON[@]}" --algorithm pso_gen --bfe 1
    run pagmo-pso_gen-nobfe $r "$PAGMO" "${COMMON[@]}" --algorithm pso_gen --bfe 0
    run deap-batched $r "$PY" bench/peers/deap_search.py "${COMMON[@]}" --batch-eval 1 --splits-from "$SPLITS"
  fi
done

MODEL=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
CPUS_TOTAL=$(nproc --all)
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
DIRTY=$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)

"$PY" - "$OUT" "$ISLANDS" "$POP" "$GENS" "$REPEATS" <<'EOF' | tee "$OUT/report.md"
import os, re, sys
import h5py, numpy as np
out, I, P, G, R = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
line_peer = re.compile(r"\[peer\] gen (\d+) wall ([\d.]+) evals (\d+) best_val (\S+) heldout (\S+)")
line_done = re.compile(r"of which [\d.]+ s in the fitness \((\d+)%")
line_rs = re.compile(r"^([\d.]+) \[search\] gen +(\d+)/")
proc = dict(l.split() for l in open(os.path.join(out, "process_seconds.txt")))

def peer(run):  # rows (generation, wall s since generation 0, evaluations, held-out); fitness share of CPU
    rows, share = [], None
    for line in open(os.path.join(out, run + ".log")):
        m = line_peer.search(line)
        if m:
            rows.append((int(m[1]), float(m[2]), int(m[3]), float(m[5])))
        m = line_done.search(line)
        if m:
            share = int(m[1])
    return rows, share

def repsearch(run):  # wall from the stamped progress lines, evaluations and held-out from the archive
    stamps = {}
    for line in open(os.path.join(out, run + ".log")):
        m = line_rs.match(line)
        if m:
            stamps[int(m[2])] = float(m[1])
    with h5py.File(os.path.join(out, run, "archive.h5"), "r") as h:
        hist = [h["islands/%d/history" % i] for i in range(I)]
        gens = hist[0]["generation"][()]
        evals = sum(hh["evaluations"][()] for hh in hist)
        held = np.max(np.stack([hh["heldout"][()] for hh in hist]), 0)
    return [(int(g), stamps[int(g)] - stamps[0], int(e), float(x)) for g, e, x in zip(gens, evals, held)], None

main = [("repsearch, plain GA (gaussian rows + row crossover 0.1, steady)", "repsearch-plain", repsearch),
        ("repsearch, default operators (pull, column, gaussian, knn)", "repsearch-default", repsearch),
        ("pagmo2 sga, thread_island archipelago", "pagmo-sga", peer),
        ("DEAP + numpy, plain GA, migRing", "deap", peer)]
extras = [("pagmo2 pso_gen, batch fitness hook (bfe) on", "pagmo-pso_gen-bfe", peer),
          ("pagmo2 pso_gen, bfe off (one fitness() per individual)", "pagmo-pso_gen-nobfe", peer),
          ("DEAP, batched numpy evaluation (not DEAP's per-individual map)", "deap-batched", peer)]

def load(spec):
    """Per tool: the repeat with the median wall time (its per-generation rows), and all walls."""
    res = []
    for label, name, fn in spec:
        runs = []
        for r in range(1, R + 1):
            run = "%s.r%d" % (name, r)
            if not os.path.exists(os.path.join(out, run + ".log")):
                continue
            rows, share = fn(run)
            if not rows or rows[-1][0] != G:
                sys.exit("run_peers.sh: %s did not finish %d generations (see %s.log)" % (run, G, run))
            runs.append((rows[-1][1], rows, share, float(proc[run])))
        if not runs:
            continue
        held = [[h for *_, h in rows] for _, rows, _, _ in runs]
        deterministic = all(np.allclose(h, held[0], rtol=0, atol=1e-9) for h in held)
        runs.sort(key=lambda t: t[0])
        res.append((label, name, runs[len(runs) // 2], [t[0] for t in runs], deterministic))
    return res

M, E = load(main), load(extras)
# Common target: the lowest final held-out score among the runs that optimise the identical function
# from the identical start (repsearch and pagmo). DEAP's fitness uses its own random features, so its
# held-out values are offset: it is timed to the same improvement over its own generation-0 held-out.
same = [m[2][1] for m in M if m[1] != "deap"]
start = same[0][0][3]
target = min(r[-1][3] for r in same)
gain = target - start

def stats(rows, own_start=False):
    g0, gend = rows[0], rows[-1]
    wall = gend[1]
    ev = gend[2] - g0[2]
    t = g0[3] + gain if own_start else target
    reach = next(((g, 0.0 if g == 0 else w) for g, w, _, h in rows if h >= t - 1e-12), None)
    return wall, ev, ev / wall, I * P * G / wall, gend[3], reach

ref = stats(M[0][2][1])
print("| tool | wall s, %d gen (median of %d; range) | evaluations | evaluations/s | offspring/s | "
      "held-out at end | wall s to held-out >= %.4f (gen) | fitness share of CPU | process s | wall ratio | "
      "eval/s ratio | offspring/s ratio | time-to-target ratio |" % (G, R, target))
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
notes = []
for label, name, (w, rows, share, ps), walls, det in M:
    wall, ev, rate, off, held, reach = stats(rows, own_start=(name == "deap"))
    star = " *" if name == "deap" else ""
    rr = "%.2f s (%d)%s" % (reach[1], reach[0], star) if reach else "not reached" + star
    tr = "%.2fx" % (reach[1] / ref[5][1]) if reach and ref[5] and ref[5][1] > 0 else "-"
    print("| %s | %.2f (%.2f-%.2f) | %d | %.0f | %.0f | %.4f%s | %s | %s | %.1f | %.2fx | %.2fx | %.2fx | %s |"
          % (label, wall, walls[0], walls[-1], ev, rate, off, held, star, rr,
             "%d%%" % share if share is not None else "n/m", ps, wall / ref[0], rate / ref[2], off / ref[3], tr))
    if not det:
        notes.append("%s: the held-out trajectories differ between repeats (not deterministic)." % label)
print()
print("Held-out: the best over islands of the held-out score (-mean CE on H, higher is better) of each island's "
      "best individual. Generation 0 (the common start of repsearch and pagmo): %.4f; target %.4f = the lowest "
      "final held-out of the repsearch and pagmo rows (a gain of %+.4f)." % (start, target, gain))
if gain <= 0:
    print("NOTE: the target is not above the start, so time-to-target measures nothing in this run.")
for n in notes:
    print("NOTE: " + n)
print()
print("Ratios are relative to the first row (repsearch plain GA) of this same run; above 1x means more "
      "time (wall, time-to-target) or more throughput (rates).")
print("evaluations: fitness evaluations made during the %d generations (generation-0 scoring excluded); "
      "every tool scores the P offspring per island and generation (repsearch re-scores its parents only "
      "when the V minibatch changes, never here where it is all of V). offspring/s = islands x P x generations / wall: new individuals per second, the "
      "like-for-like rate." % G)
print("\\* DEAP's fitness is the same math with its own numpy random features and initial populations (not "
      "bit-identical to repsearch's), so its held-out values are offset; its time-to-target is to the same gain "
      "(%+.4f) over its own generation-0 held-out. repsearch and pagmo optimise exactly the same function from "
      "the same initial populations." % gain)
if E:
    print()
    print("Batch-fitness extras (same setting; throughput only, these algorithms are not the comparison):")
    print()
    print("| run | wall s (median of %d; range) | evaluations | evaluations/s | fitness share of CPU | "
          "held-out at end |" % R)
    print("|---|---|---|---|---|---|")
    for label, name, (w, rows, share, ps), walls, det in E:
        wall, ev, rate, off, held, reach = stats(rows)
        print("| %s | %.2f (%.2f-%.2f) | %d | %.0f | %s | %.4f |"
              % (label, wall, walls[0], walls[-1], ev, rate, "%d%%" % share if share is not None else "n/m", held))
EOF

{
  echo
  echo "Machine: $MODEL, $CPUS_TOTAL logical CPUs; every tool pinned with taskset -c $CPUS; OMP/OpenBLAS threads $THREADS;"
  echo "load average (1/5/15 min) $LOAD0 at the start and $LOAD1 at the end: a shared machine, other jobs were running,"
  echo "so timings are noisy (hence $REPEATS round-robin repeats, medians reported)."
  echo "repsearch commit $COMMIT ($DIRTY modified tracked files in the working tree); $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo "Setting: Fashion-MNIST, n_s=$N_S, |V|=$VAL (fixed: all of it every generation), |H|=$HELD, d=$DIM, P=$POP per island,"
  echo "$ISLANDS islands, $GENS generations, ring migration every $MIG generations, seed $SEED. Logs: $OUT/*.log"
  echo
  echo "Commands (each prefixed by taskset -c $CPUS):"
  echo '```'
  cat "$CMDS"
  echo '```'
} | tee -a "$OUT/report.md"
