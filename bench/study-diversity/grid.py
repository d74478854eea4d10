#!/usr/bin/env python3
"""Summary table of bench/study-diversity/run_grid.sh's output directory (markdown on stdout).

    /usr/bin/python3 bench/study-diversity/grid.py runs/study-diversity-grid

One row per archive pP-SCHEME-gG: evaluations, best and worst elite held-out score, elite diversity
(mean pairwise 1 - CKA, on all of S) and prediction disagreement on V, the best elite's learned test
accuracy; then, where all 8 elites were learned, the members' range and the ensemble of 8, beside the
ensemble of the 8 SGD networks.
"""
import glob
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "analysis"))
import repsearch_h5 as rh  # noqa: E402


def mean_offdiag(m):
    m = np.asarray(m, dtype=float)
    return float(np.mean(m[~np.eye(m.shape[0], dtype=bool)])) if m.shape[0] > 1 else float("nan")


def learned(directory):
    """{elite rank: test accuracy} of the learn-*.h5 files in a run directory."""
    out = {}
    for p in sorted(glob.glob(os.path.join(directory, "learn-*.h5"))):
        r = rh.read_results(p, activations=False, probabilities=False)
        out[int(r["attrs"]["elite_rank"])] = r["accuracy"]["test"]
    return out


def main(out):
    rows = []
    for d in glob.glob(os.path.join(out, "p*-*-g*")):
        m = re.fullmatch(r"p(\d+)-(\w+)-g(\d+)", os.path.basename(d))
        if not m or not os.path.isfile(os.path.join(d, "archive.h5")):
            continue
        a = rh.read_archive(os.path.join(d, "archive.h5"))
        e = a["elites"]
        evals = sum(int(h["evaluations"][-1]) for h in a["histories"])
        nets = learned(d)
        best = [nets[0]] if 0 in nets else []
        members = list(nets.values()) if len(nets) > 1 else []
        ens = None
        summary = os.path.join(d, "learn-summary.json")
        if os.path.isfile(summary):
            ens = json.load(open(summary)).get("ensemble_test")
        rows.append((int(m[1]), m[2], int(m[3]), evals, float(np.max(e["heldout"])), float(np.min(e["heldout"])),
                     rh.elite_diversity(e["cka"]), mean_offdiag(e["disagreement"]) if "disagreement" in e else float("nan"),
                     best[0] if best else None, members, ens))
    rows.sort(key=lambda r: (r[1], r[0], r[2]))
    f = lambda x: "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.4f}"
    print("| P | selection | G | evaluations | best held-out | worst elite held-out | elite diversity (1 - CKA) "
          "| disagreement on V | best elite learned (test) | 8 elites learned: min - max | ensemble of 8 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for P, s, G, ev, hb, hw, div, dis, b, mem, ens in rows:
        span = f"{min(mem):.4f} - {max(mem):.4f}" if mem else ""
        print(f"| {P} | {s} | {G} | {ev} | {f(hb)} | {f(hw)} | {f(div)} | {f(dis)} | {f(b)} | {span} | {f(ens) if ens else ''} |")
    sgd = os.path.join(out, "sgd", "sgd-summary.json")
    if os.path.isfile(sgd):
        s = json.load(open(sgd))
        t = [n["test"] for n in s["networks"]]
        print(f"\nSGD on S u V, {len(t)} seeds: members {min(t):.4f} - {max(t):.4f}, ensemble {s['ensemble_test']:.4f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
