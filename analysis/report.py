#!/usr/bin/env python3
"""Figures and a Markdown report for one or more repsearch run directories.

    /usr/bin/python3 analysis/report.py RUN_DIR [RUN_DIR...] [--out DIR] [--title T]

A run directory is what `repsearch search --out DIR` and the `learn` / `sgd` commands that follow it
write: archive.h5, learn-<uid>.h5, sgd-<seed>.h5, sgd-full-<seed>.h5 and the *-summary.json files.
Writes into --out (default: the first RUN_DIR/report): PNG figures, report.md (figures embedded
with relative paths) and report.json (every number the figures and tables show, for scripts).

Run directories of the example space (the paper's search) get the paper's Figures 2-7 and Table 1
instead (analysis/paper_report.py says what each needs). Figures of the dataset space: fitness vs search compute and diversity vs search compute (one of each per run with an
archive), test accuracy and prediction agreement (per run with results), CKA trajectories of the
best learned network against SGD seed 0 (per run with both), and scaling across runs (with two or
more runs that have archives).

Exit status: 0 report written; 2 bad input (a run directory that does not exist, no archive and no
results in any of them, a file that is not a readable repsearch archive/results file or lacks one of
its groups, an archive whose elites hold NaN or inf, or a results file beside a network file it does
not describe: its recorded size and CRC-32 differ); the message says which, and "DAMAGED" when a
file is. Missing pieces (no learn or sgd results yet, a results file without its .pt) are reported
as missing.
"""
import argparse
import glob
import json
import math
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import repsearch_h5 as rh  # noqa: E402
import paper_report  # noqa: E402

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: E402
except ImportError:  # pragma: no cover
    sys.stderr.write("report.py: needs matplotlib (Debian: python3-matplotlib; run with /usr/bin/python3)\n")
    raise

DPI = 120
BAD_INPUT = 2


class BadInput(Exception):
    pass


# ---- small helpers ------------------------------------------------------------------------------------

def finite(x):
    return x is not None and isinstance(x, (int, float, np.floating, np.integer)) and math.isfinite(float(x))


def fmt(x, digits=4):
    if not finite(x):
        return "n/a"
    return f"{float(x):.{digits}f}"


def fmt_pm(values, digits=4):
    values = [v for v in values if finite(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (n=1)"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f} (n={len(values)})"


def mean_std(values):
    values = [v for v in values if finite(v)]
    if not values:
        return float("nan"), float("nan"), 0
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else 0.0), len(values)


def jsonable(x):
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    return x


def safe_name(name):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "run"


def md_escape(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def monotone_words(values):
    v = [x for x in values if finite(x)]
    if len(v) < 2:
        return "a single value"
    d = np.diff(v)
    if np.all(d > 0):
        return "increasing at every step"
    if np.all(d >= 0):
        return "non-decreasing"
    if np.all(d < 0):
        return "decreasing at every step"
    if np.all(d <= 0):
        return "non-increasing"
    return "not monotone"


def change_words(a, b, digits=4):
    if not (finite(a) and finite(b)):
        return f"from {fmt(a, digits)} to {fmt(b, digits)}"
    return f"from {a:.{digits}f} to {b:.{digits}f} ({b - a:+.{digits}f})"


# ---- loading ------------------------------------------------------------------------------------------

def read_summary(path):
    if not os.path.isfile(path):
        return None, None
    try:
        with open(path) as f:
            return json.load(f), None
    except (OSError, ValueError) as e:
        return None, f"{os.path.basename(path)} is unreadable ({e}); ensemble accuracy not reported"


def files_ensemble(results):
    """Ensemble accuracy (mean of softmax outputs) from the results files' own test labels."""
    preds = [r.get("ensemble_input", {}) for r in results]
    if not all("test_labels" in p and "test_probabilities" in p for p in preds):
        return None, "results files without test labels"
    labels = preds[0]["test_labels"]
    if any(p["test_labels"].shape != labels.shape or (p["test_labels"] != labels).any() for p in preds):
        return None, "results files disagree on the test labels"
    mean = np.mean([p["test_probabilities"] for p in preds], axis=0)
    return float((mean.argmax(1) == labels).mean()), None


def ensemble_curve(results):
    """Test accuracy of the ensemble (mean softmax) of the first m networks, m = 1..len(results), in the
    order given (learned: elite rank; SGD: seed); [] when the files lack test labels or disagree on them."""
    preds = [r.get("ensemble_input", {}) for r in results]
    if not preds or not all("test_labels" in p and "test_probabilities" in p for p in preds):
        return []
    labels = preds[0]["test_labels"]
    if any(p["test_labels"].shape != labels.shape or (p["test_labels"] != labels).any() for p in preds):
        return []
    total = np.zeros_like(np.asarray(preds[0]["test_probabilities"], dtype=float))
    out = []
    for p in preds:
        total = total + np.asarray(p["test_probabilities"], dtype=float)
        out.append(float((total.argmax(1) == labels).mean()))
    return out


def mean_disagreement(results):
    """Mean pairwise share of test images on which two networks' predictions differ (nan for < 2)."""
    m = len(results)
    vals = [float(np.mean(results[i]["argmax"] != results[j]["argmax"])) for i in range(m) for j in range(i + 1, m)
            if len(results[i]["argmax"]) and len(results[i]["argmax"]) == len(results[j]["argmax"])]
    return float(np.mean(vals)) if vals else float("nan")


def config_value(archive, key, default=None):
    """One key of an archive's resolved config text (`key = value` lines)."""
    for line in str(archive.get("attrs", {}).get("config", "")).splitlines():
        k, sep, v = line.partition(" = ")
        if sep and k.strip() == key:
            return v.strip()
    return default


def summary_ensemble(summary, files, label):
    """The summary's ensemble_test when it covers exactly the results files present, else (None, why)."""
    if summary is None:
        return None, f"no {label} summary and no test labels in the results files: ensemble accuracy n/a"
    names = {os.path.basename(n.get("results", "")) for n in summary.get("networks", [])}
    present = {os.path.basename(r["path"]) for r in files}
    if names != present:
        return None, (f"{label} covers {len(names)} network(s), {len(present)} results file(s) present: "
                      "ensemble accuracy n/a")
    if "ensemble_test" not in summary:
        return None, f"{label} holds no ensemble_test (one network)"
    return float(summary["ensemble_test"]), None


def load_run(path, name):
    run = {"name": name, "dir": os.path.abspath(path), "notes": [], "archive": None,
           "learn": [], "sgd": [], "sgd_full": [], "other_results": []}
    archive_path = os.path.join(path, "archive.h5")
    if os.path.isfile(archive_path):
        run["archive"] = rh.read_archive(archive_path)
        bad = rh.nonfinite_elites(archive_path)
        if bad:
            raise BadInput(f"{archive_path}: DAMAGED archive: elite(s) {', '.join(map(str, bad))} (rank, best first) "
                           "hold non-finite values (NaN or inf); learn refuses them: search again, or report on "
                           "another run directory")
    else:
        run["notes"].append("no archive.h5 (no search figures for this run)")
    files = sorted(set(glob.glob(os.path.join(path, "learn-*.h5")) + glob.glob(os.path.join(path, "sgd-*.h5"))))
    for f in files:
        r = rh.read_results(f, activations=False, probabilities=True)
        weights = os.path.splitext(f)[0] + ".pt"
        if os.path.isfile(weights):
            problem = rh.check_network_file(f)
            if problem:
                raise BadInput(f"{f}: DAMAGED results: {problem}")
        else:
            run["notes"].append(f"{os.path.basename(f)}: no network file {os.path.basename(weights)} beside it "
                                "(its checksum not checked)")
        pred = r.pop("predictions")
        probs = pred["test_probabilities"]
        r["argmax"] = np.argmax(probs, axis=1) if probs.ndim == 2 and probs.shape[0] > 0 else np.zeros(0, dtype=int)
        r["ensemble_input"] = pred  # test probabilities (+ labels in files that carry them)
        kind = r["attrs"].get("kind")
        base = os.path.basename(f)
        full = r["attrs"].get("train_data") == "full"
        if kind == "sgd" and base.startswith("sgd-full-") != full:
            run["notes"].append(f"{base}: its name and its train_data attribute "
                                f"('{r['attrs'].get('train_data')}') disagree; classified by the attribute")
        if kind == "learn":
            run["learn"].append(r)
        elif kind == "sgd" and full:
            run["sgd_full"].append(r)
        elif kind == "sgd":
            run["sgd"].append(r)
        else:
            run["other_results"].append(r)
            run["notes"].append(f"{os.path.basename(f)}: kind '{kind}' not recognised, ignored")
    run["learn"].sort(key=lambda r: (int(r["attrs"].get("elite_rank", 1 << 30)), r["path"]))
    run["sgd"].sort(key=lambda r: (int(r["attrs"].get("seed", 0)), r["path"]))
    run["sgd_full"].sort(key=lambda r: (int(r["attrs"].get("seed", 0)), r["path"]))
    if not run["learn"]:
        run["notes"].append("no learn-*.h5 results yet")
    if not run["sgd"]:
        run["notes"].append("no sgd-<seed>.h5 results (SGD on S+V) yet")

    if run["archive"] is not None:
        sha = run["archive"]["attrs"].get("config_sha256", "")
        for r in run["learn"]:
            if r["attrs"].get("archive_sha256", "") != sha:
                run["notes"].append(f"{os.path.basename(r['path'])} was learned from another archive "
                                    f"({r['attrs'].get('archive_path', '?')}, config sha "
                                    f"{r['attrs'].get('archive_sha256', '')[:12]}), not this run's archive.h5")

    for key, fname, label in (("learn", "learn-summary.json", "learn-summary.json"),
                              ("sgd", "sgd-summary.json", "sgd-summary.json"),
                              ("sgd_full", "sgd-full-summary.json", "sgd-full-summary.json")):
        summary, problem = read_summary(os.path.join(path, fname))
        if problem:
            run["notes"].append(problem)
        ens, why = (None, None)
        if len(run[key]) > 1:
            ens, why = files_ensemble(run[key])
            if ens is None:
                ens, why = summary_ensemble(summary, run[key], label)
        run[key + "_ensemble"] = ens
        run[key + "_ensemble_why"] = why
    return run


# ---- search statistics --------------------------------------------------------------------------------

def search_stats(run):
    """Per-generation totals of a run's archive: x axis (evaluations over all islands) and friends."""
    a = run["archive"]
    hs = [h for h in a["histories"] if len(h["generation"])]
    if not hs:
        return None
    gens = np.unique(np.concatenate([h["generation"] for h in hs]))

    def at_generation(h, column):
        # value of `column` at the last row with generation <= g (NaN before the island's first row)
        idx = np.searchsorted(h["generation"], gens, side="right") - 1
        out = np.full(len(gens), np.nan)
        ok = idx >= 0
        out[ok] = np.asarray(h[column], dtype=np.float64)[idx[ok]]
        return out

    evals = np.nansum([at_generation(h, "evaluations") for h in hs], axis=0)
    per_island = {c: np.array([at_generation(h, c) for h in a["histories"] if len(h["generation"])])
                  for c in ("best", "mean", "heldout", "diversity", "seconds")}
    mig = a["migrations"]["generation"]
    mig_gens = np.unique(mig) if len(mig) else np.zeros(0, dtype=np.int64)
    mig_evals = np.interp(mig_gens, gens, evals) if len(mig_gens) else np.zeros(0)
    elites = a["elites"]
    st = {
        "generations": gens, "evaluations": evals, "per_island": per_island,
        "best_max": np.nanmax(per_island["best"], axis=0),
        "mean_mean": np.nanmean(per_island["mean"], axis=0),
        "heldout_max": np.nanmax(per_island["heldout"], axis=0),
        "diversity_mean": np.nanmean(per_island["diversity"], axis=0),
        "migration_generations": mig_gens, "migration_evaluations": mig_evals,
        "n_migrations": int(len(mig)),
        "elite_diversity": rh.elite_diversity(elites["cka"]),
        "elite_disagreement": (float(elites["disagreement"][~np.eye(len(elites["heldout"]), dtype=bool)].mean())
                               if "disagreement" in elites and len(elites["heldout"]) > 1 else float("nan")),
        "elite_best_heldout": float(np.max(elites["heldout"])) if len(elites["heldout"]) else float("nan"),
        "n_elites": int(len(elites["heldout"])),
        "seconds": float(np.nanmax(per_island["seconds"][:, -1])),
    }
    return st


# ---- figures ------------------------------------------------------------------------------------------

def island_colors(n):
    cmap = plt.get_cmap("tab10" if n <= 10 else "viridis")
    return [cmap(i if n <= 10 else i / max(1, n - 1)) for i in range(n)]


def add_migrations(ax, st, label=True):
    for k, x in enumerate(st["migration_evaluations"]):
        ax.axvline(x, color="0.55", ls=":", lw=1.0, zorder=0, label="migration" if (label and k == 0) else None)


def fitness_label(run):
    name = run["archive"]["attrs"].get("fitness", "fitness")
    return name


def figure_fitness(run, st, path):
    per = st["per_island"]
    n = per["best"].shape[0]
    colors = island_colors(n)
    x = st["evaluations"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), constrained_layout=True)
    fit = fitness_label(run)
    panels = [
        ("best", st["best_max"], "max over islands", f"best fitness on the generation's V minibatch\n[{fit} score, higher = better]",
         "Best fitness (V minibatch)"),
        ("mean", st["mean_mean"], "mean over islands", f"mean population fitness on V minibatch\n[{fit} score, higher = better]",
         "Mean fitness"),
        ("heldout", st["heldout_max"], "max over islands", f"held-out score of the island best (split H)\n[{fit} score, higher = better]",
         "Held-out score of island bests"),
    ]
    many = n > 8
    for ax, (col, agg, agg_label, ylabel, title) in zip(axes, panels):
        for i in range(n):
            ax.plot(x, per[col][i], color=("0.7" if many else colors[i]), lw=1.0, alpha=0.9,
                    label=(f"island {i}" if not many else ("islands" if i == 0 else None)))
        ax.plot(x, agg, color="black", lw=2.2, label=agg_label)
        add_migrations(ax, st)
        ax.set_xlabel("search compute: cumulative fitness evaluations, all islands")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    # the first two panels show the same quantity (fitness on the V minibatch): one y range for both
    both = np.concatenate([per["best"].ravel(), per["mean"].ravel(), st["best_max"], st["mean_mean"]])
    both = both[np.isfinite(both)]
    if both.size:
        lo, hi = float(both.min()), float(both.max())
        pad = 0.05 * (hi - lo) if hi > lo else 0.05 * max(1.0, abs(hi))
        for ax in axes[:2]:
            ax.set_ylim(lo - pad, hi + pad)
    axes[0].legend(fontsize=8, loc="best")
    for ax in axes[1:]:
        handles, labels = ax.get_legend_handles_labels()
        keep = [(h, l) for h, l in zip(handles, labels) if l in ("max over islands", "mean over islands", "migration")]
        ax.legend([h for h, _ in keep], [l for _, l in keep], fontsize=8, loc="best")
    fig.suptitle(f"{run['name']}: fitness vs search compute ({n} islands, "
                 f"{len(st['generations']) - 1} generations)", fontsize=12)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def figure_diversity(run, st, path):
    per = st["per_island"]["diversity"]
    n = per.shape[0]
    colors = island_colors(n)
    x = st["evaluations"]
    cka = np.asarray(run["archive"]["elites"]["cka"], dtype=np.float64)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1.6, 1]},
                                  constrained_layout=True)
    many = n > 8
    for i in range(n):
        ax.plot(x, per[i], color=("0.7" if many else colors[i]), lw=1.0,
                label=(f"island {i}" if not many else ("islands" if i == 0 else None)))
    ax.plot(x, st["diversity_mean"], color="black", lw=2.2, label="mean over islands")
    add_migrations(ax, st)
    ax.set_xlabel("search compute: cumulative fitness evaluations, all islands")
    ax.set_ylabel("within-island diversity\n(mean pairwise 1 − linear CKA, dimensionless)")
    ax.set_title(f"Within-island diversity\nelite diversity (mean pairwise 1 − CKA of the {st['n_elites']} "
                 f"archived elites): {fmt(st['elite_diversity'], 3)}", fontsize=11)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    k = cka.shape[0]
    if k:
        im = ax2.imshow(cka, vmin=min(0.0, float(np.nanmin(cka))), vmax=1.0, cmap="viridis", origin="upper")
        if k <= 12:
            for i in range(k):
                for j in range(k):
                    ax2.text(j, i, f"{cka[i, j]:.2f}", ha="center", va="center", fontsize=8,
                             color=("black" if cka[i, j] > 0.6 else "white"))
        ticks = np.arange(k) if k <= 16 else np.linspace(0, k - 1, 8).round().astype(int)
        isl = run["archive"]["elites"]["island"]
        ticklabels = [f"{t}\ni{int(isl[t])}" for t in ticks]
        ax2.set_xticks(ticks)
        ax2.set_xticklabels(ticklabels, fontsize=8)
        ax2.set_yticks(ticks)
        ax2.set_yticklabels([t.replace("\n", " ") for t in ticklabels], fontsize=8)
        ax2.set_xlabel("elite rank (0 = best held-out), i = its island")
        ax2.set_ylabel("elite rank (0 = best held-out), i = its island")
        fig.colorbar(im, ax=ax2, label="linear CKA (1 = same representation)")
    else:
        ax2.text(0.5, 0.5, "no elites", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_axis_off()
    ax2.set_title("Pairwise CKA of the archived elites")
    fig.suptitle(f"{run['name']}: diversity vs search compute", fontsize=12)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def agreement_matrix(nets):
    m = len(nets)
    out = np.full((m, m), np.nan)
    for i in range(m):
        for j in range(m):
            a, b = nets[i]["argmax"], nets[j]["argmax"]
            if len(a) and len(a) == len(b):
                out[i, j] = float(np.mean(a == b))
    return out


def network_label(r):
    base = os.path.basename(r["path"])
    return base[:-3] if base.endswith(".h5") else base


def figure_accuracy(run, acc, path):
    groups = [("learn (regress to searched Z)", run["learn"], "tab:blue", run.get("learn_ensemble")),
              ("SGD on S+V", run["sgd"], "tab:orange", run.get("sgd_ensemble")),
              ("SGD on full data", run["sgd_full"], "tab:green", run.get("sgd_full_ensemble"))]
    groups = [g for g in groups if g[1]]
    nets = acc["networks"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1, 1.2]},
                                  constrained_layout=True)
    for gi, (label, rs, color, ens) in enumerate(groups):
        ys = [r["accuracy"]["test"] for r in rs]
        xs = gi + np.linspace(-0.15, 0.15, len(ys)) if len(ys) > 1 else np.array([gi], dtype=float)
        ax.scatter(xs, ys, color=color, s=30, zorder=3, label=f"{label}: each network")
        m, s, n = mean_std(ys)
        ax.errorbar([gi + 0.3], [m], yerr=[s], fmt="D", color="black", capsize=4, zorder=4,
                    label=("mean ± sample std" if gi == 0 else None))
        if ens is not None:
            ax.scatter([gi + 0.42], [ens], marker="*", s=140, color="crimson", zorder=5,
                       label=("ensemble (mean softmax, from *-summary.json)"
                              if not any(g[3] is not None for g in groups[:gi]) else None))
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g[0] for g in groups], fontsize=9)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylabel("test accuracy (fraction of the official test set)")
    ax.set_title("Test accuracy")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="lower left")
    agr = acc["agreement"]
    if len(nets) >= 2:
        im = ax2.imshow(agr, vmin=float(np.nanmin(agr)), vmax=1.0, cmap="magma")
        labels = [network_label(r) for r in nets]
        ax2.set_xticks(range(len(nets)))
        ax2.set_yticks(range(len(nets)))
        ax2.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax2.set_yticklabels(labels, fontsize=7)
        if len(nets) <= 12:
            mid = (float(np.nanmin(agr)) + 1.0) / 2
            for i in range(len(nets)):
                for j in range(len(nets)):
                    ax2.text(j, i, f"{agr[i, j]:.2f}", ha="center", va="center", fontsize=7,
                             color=("black" if agr[i, j] > mid else "white"))
        fig.colorbar(im, ax=ax2, label="agreement (fraction of test images with the same argmax)")
        ax2.set_title("Prediction agreement between networks (no labels needed)")
    else:
        ax2.text(0.5, 0.5, "fewer than two networks:\nno agreement to show", ha="center", va="center",
                 transform=ax2.transAxes)
        ax2.set_axis_off()
    fig.suptitle(f"{run['name']}: learned vs SGD networks", fontsize=12)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def figure_ensembles(run, path):
    """Ensemble accuracy against the number of members, learned networks and SGD networks of equal count."""
    fig, ax = plt.subplots(figsize=(7, 4.6), constrained_layout=True)
    for key, label, color in (("learn", "learned (elites in rank order)", "tab:blue"),
                              ("sgd", "SGD on S+V (seeds in order)", "tab:orange"),
                              ("sgd_full", "SGD on full data", "tab:green")):
        curve = run.get(key + "_curve") or []
        if curve:
            dis = run.get(key + "_disagreement")
            ax.plot(range(1, len(curve) + 1), curve, "o-", color=color,
                    label=f"{label}; mean pairwise disagreement {fmt(dis, 3)}")
    ax.set_xlabel("ensemble size (first m networks, mean of softmax outputs)")
    ax.set_ylabel("test accuracy (fraction of the official test set)")
    ax.set_title(f"Ensemble size curves — {run['name']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def step_ticks(steps, max_ticks=10):
    t = len(steps)
    idx = np.arange(t) if t <= max_ticks else np.unique(np.linspace(0, t - 1, max_ticks).round().astype(int))
    return idx, [str(int(steps[i])) for i in idx]


def figure_cka(run, ck, path):
    m = np.asarray(ck["matrix"])
    ls, ss = np.asarray(ck["learn_steps"]), np.asarray(ck["sgd_steps"])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5.2), constrained_layout=True)
    im = ax.imshow(m, origin="lower", aspect="auto", vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
    xi, xl = step_ticks(ss)
    yi, yl = step_ticks(ls)
    ax.set_xticks(xi)
    ax.set_xticklabels(xl, fontsize=8)
    ax.set_yticks(yi)
    ax.set_yticklabels(yl, fontsize=8)
    ax.set_xlabel(f"SGD training step ({ck['sgd_name']}; recorded steps, axis not to scale)")
    ax.set_ylabel(f"learn training step ({ck['learn_name']}; recorded steps, not to scale)")
    ax.set_title(f"Linear CKA between the two trajectories\n({ck['n_probe']} probe test images, cut layer)")
    fig.colorbar(im, ax=ax, label="linear CKA")
    ax2.plot(ls, ck["self_learn"], "o-", color="tab:blue", label=f"learn ({ck['learn_name']})")
    ax2.plot(ss, ck["self_sgd"], "s-", color="tab:orange", label=f"SGD on S+V ({ck['sgd_name']})")
    ax2.set_xscale("symlog", linthresh=1.0)
    ax2.set_xlim(left=0)
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_xlabel("training step (optimisation steps, symmetric-log scale: 0, then log)")
    ax2.set_ylabel("linear CKA with the same network's final activations")
    ax2.set_title("How far each trajectory is from where it ends")
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=9, loc="lower right")
    fig.suptitle(f"{run['name']}: representational trajectories (claim d)", fontsize=12)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def label_point(ax, text, x, y, xs):
    """Name a point; points at the right end are labelled to their left so the text stays inside."""
    right_end = len(xs) > 1 and x >= np.nanmax(xs)
    ax.annotate(text, (x, y), textcoords="offset points", xytext=((-6, 6) if right_end else (6, 6)),
                ha=("right" if right_end else "left"), fontsize=8)


def figure_scaling(rows, sgd_ref, full_ref, path):
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.4), sharex=True, constrained_layout=True)
    xs = np.array([r["evaluations"] for r in rows], dtype=float)
    logx = len(xs) > 1 and np.nanmin(xs) > 0 and np.nanmax(xs) / np.nanmin(xs) >= 10
    panels = [("elite_best_heldout", "best held-out score in the archive (elite rank 0)\n[fitness score, higher = better]",
               "Held-out score vs search compute"),
              ("elite_diversity", "elite diversity\n(mean pairwise 1 − CKA, dimensionless)", "Elite diversity vs search compute")]
    # One line per population size and selection scheme, its runs in order of compute: "grows with
    # population and with generations" reads off the lines, not off a zigzag through every run.
    groups = {}
    for i, r in enumerate(rows):
        groups.setdefault((str(r.get("population", "?")), str(r.get("selection", "fitness"))), []).append(i)
    def pop_key(g):
        try:
            return (int(g[0]), g[1])
        except ValueError:
            return (1 << 30, g[1])
    keys = sorted(groups, key=pop_key)
    colors = {k: c for k, c in zip(keys, plt.cm.tab10(np.linspace(0, 1, 10))[: len(keys)])} if len(keys) <= 10 else \
        {k: plt.cm.viridis(i / max(1, len(keys) - 1)) for i, k in enumerate(keys)}
    for ax, (key, ylabel, title) in zip(axes[:2], panels):
        ys = np.array([r[key] if finite(r[key]) else np.nan for r in rows])
        for g in keys:
            idx = np.array(groups[g])
            order = idx[np.argsort(xs[idx])]
            ax.plot(xs[order], ys[order], "o-" if g[1] == "fitness" else "s--", color=colors[g],
                    label=f"P = {g[0]}, selection {g[1]}")
        for r, x, y in zip(rows, xs, ys):
            if finite(y):
                label_point(ax, r["name"], x, y, xs)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    ax = axes[2]
    have = [i for i, r in enumerate(rows) if r["learn_n"] > 0]
    if have:
        for g in keys:
            idx = np.array([i for i in groups[g] if i in have], dtype=int)
            if not len(idx):
                continue
            order = idx[np.argsort(xs[idx])]
            ax.errorbar(xs[order], [rows[i]["learn_mean"] for i in order], yerr=[rows[i]["learn_std"] for i in order],
                        fmt="o-" if g[1] == "fitness" else "s--", color=colors[g], capsize=4,
                        label=f"learned, P = {g[0]}, {g[1]}: mean ± sample std")
        for i in have:
            label_point(ax, f"{rows[i]['name']} (n={rows[i]['learn_n']})", xs[i], rows[i]["learn_mean"], xs)
    else:
        ax.text(0.5, 0.5, "no learn-*.h5 results in any run", ha="center", va="center", transform=ax.transAxes)
    for ref, color, ls, label in ((sgd_ref, "tab:orange", "--", "SGD on S+V"), (full_ref, "tab:green", "-.", "SGD on full data")):
        if ref["n"]:
            ax.axhline(ref["mean"], color=color, ls=ls,
                       label=f"{label}: mean ± std, n={ref['n']} network(s)")
            if ref["n"] > 1:
                ax.axhspan(ref["mean"] - ref["std"], ref["mean"] + ref["std"], color=color, alpha=0.12, lw=0)
    ax.set_ylabel("test accuracy (fraction of the official test set)")
    ax.set_title("Learned test accuracy vs search compute")
    if have or sgd_ref["n"] or full_ref["n"]:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
    for ax in axes:
        ax.set_xlabel("search compute: total fitness evaluations, all islands")
        if logx:
            ax.set_xscale("log")
        ax.margins(x=0.15, y=0.12)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"Scaling across {len(rows)} runs with an archive", fontsize=12)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


# ---- per-run computations -----------------------------------------------------------------------------

def accuracy_numbers(run):
    nets = run["learn"] + run["sgd"] + run["sgd_full"]
    agr = agreement_matrix(nets)
    kinds = ["learn"] * len(run["learn"]) + ["sgd"] * len(run["sgd"]) + ["sgd_full"] * len(run["sgd_full"])

    def mean_pairs(k1, k2):
        vals = [agr[i, j] for i in range(len(nets)) for j in range(len(nets))
                if i < j and {kinds[i], kinds[j]} == {k1, k2} and (k1 != k2 or kinds[i] == k1)]
        vals = [v for v in vals if finite(v)]
        return (float(np.mean(vals)) if vals else float("nan")), len(vals)

    return {"networks": nets, "kinds": kinds, "agreement": agr,
            "agree_learn": mean_pairs("learn", "learn"), "agree_sgd": mean_pairs("sgd", "sgd"),
            "agree_cross": mean_pairs("learn", "sgd")}


def cka_numbers(run):
    """(numbers, None) for the best learn network vs SGD seed 0, or (None, why not)."""
    if not run["learn"] or not run["sgd"]:
        return None, "needs a learn-*.h5 and an sgd-<seed>.h5 result"
    learn = min(run["learn"], key=lambda r: int(r["attrs"].get("elite_rank", 1 << 30)))
    sgd = min(run["sgd"], key=lambda r: int(r["attrs"].get("seed", 0)))
    notes = []
    if int(learn["attrs"].get("elite_rank", -1)) != 0:
        notes.append(f"no learn result for elite rank 0; used rank {learn['attrs'].get('elite_rank')}")
    if int(sgd["attrs"].get("seed", -1)) != 0:
        notes.append(f"no sgd seed 0; used seed {sgd['attrs'].get('seed')}")
    lp, sp = learn["trajectory"]["probe_indices"], sgd["trajectory"]["probe_indices"]
    if len(lp) != len(sp) or not np.array_equal(lp, sp):
        return None, (f"probe indices differ between {os.path.basename(learn['path'])} and "
                      f"{os.path.basename(sgd['path'])} ({len(lp)} vs {len(sp)} probes, "
                      "other seed or probe-size?): trajectories not compared")
    la = rh.read_results(learn["path"], activations=True, probabilities=False)["trajectory"]
    sa = rh.read_results(sgd["path"], activations=True, probabilities=False)["trajectory"]
    if la["activations"].shape[0] == 0 or sa["activations"].shape[0] == 0:
        return None, "a trajectory holds no recorded steps"
    matrix = rh.cka_matrix(la["activations"], sa["activations"])
    self_learn = rh.cka_matrix(la["activations"], la["activations"][-1:])[:, 0]
    self_sgd = rh.cka_matrix(sa["activations"], sa["activations"][-1:])[:, 0]
    return {"learn_file": os.path.basename(learn["path"]), "sgd_file": os.path.basename(sgd["path"]),
            "learn_name": network_label(learn), "sgd_name": network_label(sgd),
            "learn_steps": la["steps"], "sgd_steps": sa["steps"], "n_probe": int(len(lp)),
            "matrix": matrix, "self_learn": self_learn, "self_sgd": self_sgd, "notes": notes}, None


# ---- the report ---------------------------------------------------------------------------------------

def provenance_rows(runs):
    lines = ["| run | directory | config_sha256 | git_commit | created | islands / ranks | fitness | dataset |",
             "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        if run["archive"] is None:
            # provenance from a results file when there is no archive
            src = (run["learn"] + run["sgd"] + run["sgd_full"])
            at = src[0]["attrs"] if src else {}
            lines.append(f"| {md_escape(run['name'])} | `{md_escape(run['dir'])}` | "
                         f"`{at.get('config_sha256', 'n/a')}` (results) | {md_escape(at.get('git_commit', 'n/a'))} | "
                         f"{md_escape(at.get('created', 'n/a'))} | no archive | n/a | n/a |")
            continue
        at = run["archive"]["attrs"]
        fitness = at.get("fitness", "")
        params = at.get("fitness_parameters", "")
        lines.append(f"| {md_escape(run['name'])} | `{md_escape(run['dir'])}` | `{at.get('config_sha256', '')}` | "
                     f"{md_escape(at.get('git_commit', ''))} | {md_escape(at.get('created', ''))} | "
                     f"{at.get('n_islands', '?')} / {at.get('n_ranks', '?')} | "
                     f"{md_escape(fitness)} ({md_escape(params)}) | "
                     f"{md_escape(run['archive']['data']['attrs'].get('dataset', ''))} |")
    return lines


def search_table(runs):
    lines = ["| run | generations | evaluations (all islands) | search time (s) | held-out, generation 0 "
             "(max over islands) | held-out, last generation (max over islands) | best elite held-out | "
             "within-island diversity, last generation (mean) | elite diversity (mean 1 − CKA) | elites | migrations |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        st = run.get("search")
        if st is None:
            lines.append(f"| {md_escape(run['name'])} | missing: no archive.h5 | | | | | | | | | |")
            continue
        lines.append(f"| {md_escape(run['name'])} | {int(st['generations'][-1])} | {int(st['evaluations'][-1])} | "
                     f"{st['seconds']:.2f} | {fmt(st['heldout_max'][0])} | {fmt(st['heldout_max'][-1])} | "
                     f"{fmt(st['elite_best_heldout'])} | {fmt(st['diversity_mean'][-1], 3)} | "
                     f"{fmt(st['elite_diversity'], 3)} | {st['n_elites']} | {st['n_migrations']} |")
    return lines


def accuracy_table(run, acc):
    lines = ["| network | kind | elite rank / seed | uid | train data | test | held-out | val | regression MSE |",
             "|---|---|---|---|---|---|---|---|---|"]

    def row(r, kind):
        at = r["attrs"]
        a = r["accuracy"]
        who = str(at.get("elite_rank")) if kind == "learn" else str(at.get("seed"))
        uid = f"{int(at.get('elite_uid', 0)):x}" if kind == "learn" else ""
        return (f"| {os.path.basename(r['path'])} | {kind} | {who} | {uid} | {md_escape(at.get('train_data', ''))} | "
                f"{fmt(a['test'])} | {fmt(a['heldout'])} | {fmt(a['val'])} | {fmt(a['regression_mse'])} |")

    def aggregate(label, rs, ens, why):
        out = []
        if not rs:
            return [f"| {label} | missing | | | | | | | |"]
        if len(rs) > 1:
            out.append(f"| **{label}: mean ± std** | | | | | {fmt_pm([r['accuracy']['test'] for r in rs])} | "
                       f"{fmt_pm([r['accuracy']['heldout'] for r in rs])} | "
                       f"{fmt_pm([r['accuracy']['val'] for r in rs])} | |")
            out.append(f"| **{label}: ensemble** (mean softmax) | | | | | "
                       f"{fmt(ens) if ens is not None else 'n/a'} | | | |")
        return out

    for r in run["learn"]:
        lines.append(row(r, "learn"))
    lines += aggregate("learn", run["learn"], run.get("learn_ensemble"), run.get("learn_ensemble_why"))
    for r in run["sgd"]:
        lines.append(row(r, "sgd S+V"))
    lines += aggregate("sgd S+V", run["sgd"], run.get("sgd_ensemble"), run.get("sgd_ensemble_why"))
    for r in run["sgd_full"]:
        lines.append(row(r, "sgd full"))
    if run["sgd_full"]:
        lines += aggregate("sgd full", run["sgd_full"], run.get("sgd_full_ensemble"), run.get("sgd_full_ensemble_why"))
    else:
        lines.append("| sgd full | missing (no sgd-full-*.h5) | | | | | | | |")
    return lines


def distinct_test_accuracies(results):
    """Test accuracies of distinct networks: the same SGD command run in several run directories (same
    config_sha256 and seed) trains the same network, counted once."""
    seen, out = set(), []
    for r in results:
        at = r["attrs"]
        key = (at.get("config_sha256"), at.get("seed"), at.get("train_data"), r["accuracy"]["test"])
        if key not in seen:
            seen.add(key)
            out.append(r["accuracy"]["test"])
    return out


def rel(path, start):
    return os.path.relpath(path, start).replace(os.sep, "/")


def build(args):
    run_dirs = args.run_dirs
    for d in run_dirs:
        if not os.path.isdir(d):
            raise BadInput(f"{d}: no such run directory")
    names, runs = [], []
    for d in run_dirs:
        base = os.path.basename(os.path.normpath(os.path.abspath(d))) or "run"
        name = base
        k = 2
        while name in names:
            name = f"{base}#{k}"
            k += 1
        names.append(name)
        try:
            runs.append(load_run(d, name))
        except rh.FormatError as e:
            raise BadInput(str(e)) from None
    if not any(r["archive"] is not None or r["learn"] or r["sgd"] or r["sgd_full"] or r["other_results"]
               for r in runs):
        raise BadInput("no archive.h5 and no learn-*.h5 / sgd-*.h5 results in " + ", ".join(run_dirs))

    out = args.out or os.path.join(run_dirs[0], "report")
    os.makedirs(out, exist_ok=True)
    figures = []  # (title, path, description)
    data = {"title": args.title, "runs": []}

    for run in runs:
        fname = safe_name(run["name"])
        run["search"] = search_stats(run) if run["archive"] is not None else None
        if run["archive"] is not None and run["search"] is None:
            run["notes"].append("archive.h5 holds no island history")
        if run["search"] is not None:
            p = os.path.join(out, f"fitness-{fname}.png")
            figure_fitness(run, run["search"], p)
            figures.append((f"Fitness vs search compute — {run['name']}", p, run["name"]))
            p = os.path.join(out, f"diversity-{fname}.png")
            figure_diversity(run, run["search"], p)
            figures.append((f"Diversity vs search compute — {run['name']}", p, run["name"]))
        run["acc"] = accuracy_numbers(run)
        for key in ("learn", "sgd", "sgd_full"):
            run[key + "_curve"] = ensemble_curve(run[key]) if len(run[key]) > 1 else []
            run[key + "_disagreement"] = mean_disagreement(run[key])
        if run["learn_curve"] or run["sgd_curve"]:
            p = os.path.join(out, f"ensembles-{fname}.png")
            figure_ensembles(run, p)
            figures.append((f"Ensemble size curves — {run['name']}", p, run["name"]))
        if run["acc"]["networks"]:
            p = os.path.join(out, f"accuracy-{fname}.png")
            figure_accuracy(run, run["acc"], p)
            figures.append((f"Test accuracy and prediction agreement — {run['name']}", p, run["name"]))
        ck, why = cka_numbers(run)
        run["cka"] = ck
        run["cka_why"] = why
        if ck is not None:
            p = os.path.join(out, f"cka-{fname}.png")
            figure_cka(run, ck, p)
            figures.append((f"CKA trajectories — {run['name']}", p, run["name"]))

    # scaling
    all_sgd = distinct_test_accuracies([r for run in runs for r in run["sgd"]])
    all_full = distinct_test_accuracies([r for run in runs for r in run["sgd_full"]])
    m, s, n = mean_std(all_sgd)
    sgd_ref = {"mean": m, "std": s, "n": n}
    m, s, n = mean_std(all_full)
    full_ref = {"mean": m, "std": s, "n": n}
    scaling_rows = []
    for run in runs:
        if run["search"] is None:
            continue
        lm, ls, ln = mean_std([r["accuracy"]["test"] for r in run["learn"]])
        st = run["search"]
        scaling_rows.append({"name": run["name"], "evaluations": float(st["evaluations"][-1]),
                             "generations": int(st["generations"][-1]),
                             "elite_best_heldout": st["elite_best_heldout"], "elite_diversity": st["elite_diversity"],
                             "learn_mean": lm, "learn_std": ls, "learn_n": ln,
                             "population": config_value(run["archive"], "population", "?"),
                             "selection": config_value(run["archive"], "selection", "fitness"),
                             "elite_disagreement": st.get("elite_disagreement", float("nan"))})
    scaling_note = None
    if len(runs) > 1:
        if len(scaling_rows) >= 2:
            p = os.path.join(out, "scaling.png")
            figure_scaling(scaling_rows, sgd_ref, full_ref, p)
            figures.append(("Scaling across runs", p, None))
        else:
            scaling_note = "Scaling figure not drawn: it needs at least two runs with an archive.h5."

    write_markdown(args, out, runs, figures, scaling_rows, sgd_ref, full_ref, scaling_note)

    for run in runs:
        st = run["search"]
        acc = run["acc"]
        entry = {"name": run["name"], "dir": run["dir"], "notes": run["notes"]}
        if st is not None:
            entry["search"] = {k: st[k] for k in ("generations", "evaluations", "best_max", "mean_mean", "heldout_max",
                                                  "diversity_mean", "migration_generations", "migration_evaluations",
                                                  "elite_diversity", "elite_best_heldout", "n_elites", "seconds")}
            entry["archive"] = {"path": run["archive"]["path"], "attrs": {k: v for k, v in run["archive"]["attrs"].items()
                                                                        if k != "config"}}
        entry["networks"] = [{"file": os.path.basename(r["path"]), "kind": k, "attrs": {a: v for a, v in r["attrs"].items()
                                                                                       if a != "config"},
                              "accuracy": r["accuracy"]} for r, k in zip(acc["networks"], acc["kinds"])]
        entry["agreement"] = acc["agreement"]
        entry["ensembles"] = {"learn": run.get("learn_ensemble"), "sgd": run.get("sgd_ensemble"),
                              "sgd_full": run.get("sgd_full_ensemble")}
        entry["ensemble_curves"] = {k: run.get(k + "_curve") or [] for k in ("learn", "sgd", "sgd_full")}
        entry["disagreement"] = {k: jsonable(run.get(k + "_disagreement")) for k in ("learn", "sgd", "sgd_full")}
        if run["cka"] is not None:
            entry["cka"] = {k: v for k, v in run["cka"].items()}
        else:
            entry["cka_missing"] = run["cka_why"]
        data["runs"].append(entry)
    data["scaling"] = scaling_rows
    data["references"] = {"sgd_search_val": sgd_ref, "sgd_full": full_ref}
    data["figures"] = [rel(p, out) for _, p, _ in figures]
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(jsonable(data), f, indent=1)
    return out, figures


def findings(runs, scaling_rows, sgd_ref, full_ref):
    lines = []
    for run in runs:
        st = run["search"]
        bullets = []
        if st is not None:
            g0, g1 = int(st["generations"][0]), int(st["generations"][-1])
            bullets.append(f"Held-out score of the island bests (max over islands) went "
                           f"{change_words(st['heldout_max'][0], st['heldout_max'][-1])} between generation {g0} and "
                           f"generation {g1}, over {int(st['evaluations'][-1])} fitness evaluations; its maximum over "
                           f"the run was {fmt(np.nanmax(st['heldout_max']))}. The best archived elite scores "
                           f"{fmt(st['elite_best_heldout'])} on the held-out split.")
            bullets.append(f"Best fitness on the V minibatch (max over islands) went "
                           f"{change_words(st['best_max'][0], st['best_max'][-1])}; the V minibatch changes every "
                           "generation, so this curve is noisy by construction.")
            bullets.append(f"Within-island diversity (mean over islands) went "
                           f"{change_words(st['diversity_mean'][0], st['diversity_mean'][-1], 3)}; the "
                           f"{st['n_elites']} archived elites have a diversity of {fmt(st['elite_diversity'], 3)} "
                           f"(mean pairwise 1 − CKA); {st['n_migrations']} migrations at "
                           f"{len(st['migration_generations'])} generation(s).")
        L = [r["accuracy"]["test"] for r in run["learn"]]
        S = [r["accuracy"]["test"] for r in run["sgd"]]
        F = [r["accuracy"]["test"] for r in run["sgd_full"]]
        if L or S or F:
            parts = []
            if L:
                parts.append(f"learned networks {fmt_pm(L)}, range {fmt(min(L))}–{fmt(max(L))}")
            if S:
                parts.append(f"SGD on S+V {fmt_pm(S)}")
            if F:
                parts.append(f"SGD on full data {fmt_pm(F)}")
            text = "Test accuracy: " + "; ".join(parts) + "."
            if L and S:
                text += f" Difference of means (learn − SGD on S+V): {np.mean(L) - np.mean(S):+.4f}."
            bullets.append(text)
            acc = run["acc"]
            agr = []
            for key, label in (("agree_learn", "between learned networks"), ("agree_sgd", "between SGD networks"),
                               ("agree_cross", "between a learned and an SGD network")):
                v, n = acc[key]
                if n:
                    agr.append(f"{fmt(v, 3)} {label} ({n} pairs)")
            if agr:
                bullets.append("Mean fraction of test images on which two networks predict the same class: "
                               + "; ".join(agr) + ".")
        ck = run["cka"]
        if ck is not None:
            mtx = ck["matrix"]
            bullets.append(f"Linear CKA on {ck['n_probe']} probe images between {ck['learn_name']} and "
                           f"{ck['sgd_name']}: {fmt(mtx[0, 0], 3)} at step 0 of both, {fmt(mtx[-1, -1], 3)} between "
                           f"their final points (largest entry {fmt(np.nanmax(mtx), 3)}). CKA with the own final "
                           f"point at step 0: learn {fmt(ck['self_learn'][0], 3)}, SGD {fmt(ck['self_sgd'][0], 3)}.")
        if bullets:
            lines.append(f"**{run['name']}**")
            lines.append("")
            lines += [f"- {b}" for b in bullets]
            lines.append("")
    if len(scaling_rows) >= 2:
        rows = sorted(scaling_rows, key=lambda r: r["evaluations"])
        ev = ", ".join(f"{r['name']} {int(r['evaluations'])}" for r in rows)
        ho = [r["elite_best_heldout"] for r in rows]
        dv = [r["elite_diversity"] for r in rows]
        lines.append("**Across runs** (ordered by evaluations: " + ev + ")")
        lines.append("")
        lines.append(f"- Best elite held-out score: {', '.join(fmt(v) for v in ho)} ({monotone_words(ho)} in "
                     "evaluations).")
        lines.append(f"- Elite diversity: {', '.join(fmt(v, 3) for v in dv)} ({monotone_words(dv)} in evaluations).")
        la = [r["learn_mean"] for r in rows if r["learn_n"]]
        if la:
            trend = f" ({monotone_words(la)} in evaluations)" if len(la) > 1 else ""
            lines.append(f"- Mean learned test accuracy ({len(la)} run{'s' if len(la) > 1 else ''} with results): "
                         f"{', '.join(fmt(v) for v in la)}{trend}"
                         + (f"; SGD on S+V reference {fmt(sgd_ref['mean'])} ({sgd_ref['n']} distinct network(s))" if sgd_ref["n"] else "")
                         + (f"; SGD on full data {fmt(full_ref['mean'])} ({full_ref['n']} distinct network(s))"
                            if full_ref["n"] else "")
                         + ".")
        lines.append(f"- {len(rows)} runs are few points, each from one search seed: differences of the size of "
                     "the spread between networks above are not evidence either way.")
        lines.append("")
    return lines


def write_markdown(args, out, runs, figures, scaling_rows, sgd_ref, full_ref, scaling_note):
    title = args.title or ("repsearch report: " + ", ".join(r["name"] for r in runs))
    L = [f"# {title}", ""]
    L.append("Generated by `analysis/report.py` from:")
    L.append("")
    for run in runs:
        L.append(f"- **{run['name']}**: `{run['dir']}` — archive: {'yes' if run['archive'] is not None else 'missing'}, "
                 f"learn results: {len(run['learn'])}, SGD (S+V) results: {len(run['sgd'])}, "
                 f"SGD (full data) results: {len(run['sgd_full'])}")
    L.append("")
    L.append("## Provenance")
    L.append("")
    L += provenance_rows(runs)
    L.append("")
    L.append("## Search")
    L.append("")
    L.append("Evaluations count fitness evaluations summed over all islands; held-out scores are the fitness "
             "evaluated on the held-out split H, which the search never optimises (higher is better). "
             "Diversity is mean pairwise 1 − linear CKA.")
    L.append("")
    L += search_table(runs)
    L.append("")
    L.append("## Accuracy")
    L.append("")
    L.append("Test accuracy on the official test set (fraction correct). Ensemble accuracies (mean of the "
             "networks' softmax outputs) are computed from the results files' stored test probabilities and labels; "
             "for older files without labels they come from `learn-summary.json` / `sgd-summary.json` when those "
             "cover exactly the results files present, otherwise n/a. "
             "± is the sample standard deviation over networks.")
    L.append("")
    for run in runs:
        L.append(f"### {run['name']}")
        L.append("")
        if not run["acc"]["networks"]:
            L.append("Missing: no learn-*.h5 or sgd-*.h5 results in this run directory.")
            L.append("")
            continue
        L += accuracy_table(run, run["acc"])
        L.append("")
        for key in ("learn_ensemble_why", "sgd_ensemble_why", "sgd_full_ensemble_why"):
            if run.get(key):
                L.append(f"- {run[key]}")
        acc = run["acc"]
        for key, label in (("agree_learn", "learned networks"), ("agree_sgd", "SGD (S+V) networks"),
                           ("agree_cross", "learned vs SGD (S+V) networks")):
            v, n = acc[key]
            if n:
                L.append(f"- Prediction agreement, {label}: {fmt(v, 4)} (mean over {n} pairs; fraction of test "
                         "images with the same argmax)")
        for key, label in (("learn", "learned"), ("sgd", "SGD (S+V)"), ("sgd_full", "SGD (full data)")):
            curve = run.get(key + "_curve") or []
            if curve:
                L.append(f"- Ensemble size curve, {label} (m = 1..{len(curve)}): "
                         + ", ".join(fmt(v, 4) for v in curve)
                         + f"; mean pairwise prediction disagreement {fmt(run.get(key + '_disagreement'), 4)}")
        L.append("")
    L.append("## Figures")
    L.append("")
    descriptions = {
        "fitness": "Left to right: best fitness on the generation's validation minibatch, mean population fitness, "
                   "and held-out score of each island's best, against cumulative fitness evaluations over all islands. "
                   "Thin lines: islands; thick black: max (mean for the middle panel) over islands; dotted verticals: "
                   "migrations.",
        "diversity": "Left: within-island diversity (mean pairwise 1 − CKA) against evaluations, islands and their mean, "
                     "migrations dotted; the box gives the elite diversity. Right: pairwise CKA of the archived elites.",
        "accuracy": "Left: test accuracy of each network (dots), mean ± sample std (diamond) and, where a summary "
                    "file gives it, the ensemble (star). Right: fraction of test images on which two networks' "
                    "predicted classes agree (needs no labels).",
        "cka": "Left: linear CKA between the cut-layer activations of the best learned network (rows, training "
               "steps) and SGD seed 0 (columns), on the same probe test images. Right: CKA of each trajectory point "
               "with the same network's final point against the training step.",
        "ensembles": "Test accuracy of the ensemble (mean softmax) of the first m networks against m: learned networks "
                     "in elite rank order, SGD networks in seed order; the legend gives each group's mean pairwise "
                     "prediction disagreement on the test set.",
        "scaling": "One point per run against total search evaluations, one line per population size and selection "
                   "scheme (runs of a line in order of compute): best elite held-out score, elite diversity, "
                   "and mean learned test accuracy (error bar: sample std over the run's networks) with the SGD "
                   "references as horizontal lines.",
    }
    for title_f, p, _ in figures:
        key = os.path.basename(p).split("-")[0].split(".")[0]
        L.append(f"### {title_f}")
        L.append("")
        L.append(f"![{title_f}]({rel(p, out)})")
        L.append("")
        L.append(descriptions.get(key, ""))
        L.append("")
    if scaling_note:
        L.append(scaling_note)
        L.append("")
    missing = []
    for run in runs:
        for n in run["notes"]:
            missing.append(f"- {run['name']}: {n}")
        if run["cka"] is None and run["cka_why"]:
            missing.append(f"- {run['name']}: CKA trajectories not drawn: {run['cka_why']}")
        elif run["cka"] is not None:
            for n in run["cka"]["notes"]:
                missing.append(f"- {run['name']}: CKA trajectories: {n}")
    if missing:
        L.append("## Missing pieces and notes")
        L.append("")
        L += missing
        L.append("")
    L.append("## What the figures show")
    L.append("")
    L.append("Numbers only, from the files above; one search seed per run, so no statement here is a trend "
             "with error bars.")
    L.append("")
    L += findings(runs, scaling_rows, sgd_ref, full_ref)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(L).rstrip() + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Figures and a Markdown report (report.md) for repsearch run directories.",
        epilog="Exit status: 0 written, 2 bad input (missing directory, nothing to report, unreadable or damaged "
               "file: non-finite elites, missing groups, a results file beside another network file).")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="directory holding archive.h5 and/or learn-*.h5, sgd-*.h5 results")
    parser.add_argument("--out", help="output directory (default: the first RUN_DIR/report)")
    parser.add_argument("--title", help="report title")
    args = parser.parse_args(argv)
    try:
        if all(os.path.isdir(d) and paper_report.is_example_dir(d) for d in args.run_dirs):
            # the example space (the paper's search): its own figures and Table 1
            out, figures = paper_report.build(args.run_dirs, args.out or os.path.join(args.run_dirs[0], "report"), args.title)
        else:
            out, figures = build(args)
    except paper_report.BadInput as e:
        sys.stderr.write(f"report.py: error: {e}\n")
        return BAD_INPUT
    except BadInput as e:
        sys.stderr.write(f"report.py: error: {e}\n")
        return BAD_INPUT
    print(f"report.py: wrote {os.path.join(out, 'report.md')} with {len(figures)} figure(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
