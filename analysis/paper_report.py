#!/usr/bin/env python3
"""The paper's figures and Table 1 for example-space run directories (report.py hands them here).

    /usr/bin/python3 analysis/report.py RUN_DIR [RUN_DIR...] [--out DIR] [--title T]

A run directory of the example space holds archive.h5 (`repsearch search`, space = example) and the
results of `repsearch learn` (learn-<supervise>-d<depth>-s<seed>.h5) and `repsearch sgd`
(sgd-d<depth>-s<seed>.h5) on it. Every number is read from those files, never from logs:

  Figure 2  mean best cross-entropy per block vs search population and vs generations (across runs)
  Figure 3  N_eff vs number of islands, per block (each archive searched with 2 or more islands)
  Figure 4  learned test accuracy vs search population and vs generations (across runs with learn results)
  Figure 5  cosine distance to the searched targets vs epoch, learned vs SGD, per block
  Figures 6-7  collision entropy within classes / between classes vs epoch, learned vs SGD, per block
  Table 1   learned (per supervise variant) vs best-depth SGD test accuracy, mean +- std over seeds
  Beyond    ensembles and prediction disagreement of the learned networks against the SGD seeds

Figures that need more runs than given (Figures 2 and 4 need runs that differ in population or
generations) are listed as not drawn, with the reason. The best SGD depth is the one with the best
mean held-out accuracy (the searched examples held out for model selection), not the best test one.
"""
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import repsearch_h5 as rh  # noqa: E402

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BLOCKS = ("block0", "block1", "block2")
DPI = 120


class BadInput(Exception):
    pass


def config_of(text):
    out = {}
    for line in str(text).splitlines():
        k, sep, v = line.partition(" = ")
        if sep:
            out[k.strip()] = v.strip().strip('"')
    return out


def ints(text):
    return [int(v) for v in str(text).split(",") if v.strip()]


def read_example_archive(path):
    """The example archive's summary and search settings (h5py only)."""
    h5py = rh._h5py()
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: rh._text(v) for k, v in f.attrs.items()}
            if attrs.get("format") != rh.ARCHIVE_FORMAT or attrs.get("space") != "example":
                return None
            s = f["/summary"]
            out = {"path": path, "config": config_of(attrs.get("config", "")),
                   "mean_best_ce": np.asarray(s["mean_best_ce"][()], dtype=float),
                   "n_eff_by_islands": np.asarray(s["n_eff_by_islands"][()], dtype=float),
                   "examples": int(s.attrs["examples"]), "logit_accuracy": float(s.attrs["logit_accuracy"]),
                   "mean_initial_ce": float(s.attrs["mean_initial_ce"])}
    except (OSError, KeyError) as e:
        raise BadInput(f"{path}: not a readable example-space archive ({e}) DAMAGED") from None
    c = out["config"]
    out["population"] = sum(int(c.get(k, 0)) for k in ("parents", "exploratory", "refinement"))
    out["generations"] = ints(c.get("layer-generations", ""))
    out["islands"] = int(c.get("islands", 1))
    return out


def is_example_dir(path):
    archive = os.path.join(path, "archive.h5")
    if os.path.isfile(archive):
        try:
            return read_example_archive(archive) is not None
        except BadInput:
            return False
    return any(n.startswith(("learn-all-", "learn-skip-block0-", "sgd-d")) and n.endswith(".h5") for n in os.listdir(path))


def load_run(path):
    run = {"dir": os.path.abspath(path), "name": os.path.basename(os.path.abspath(path)), "archive": None,
           "learn": {}, "sgd": {}, "islands": []}
    archive = os.path.join(path, "archive.h5")
    if os.path.isfile(archive):
        run["archive"] = read_example_archive(archive)
    for name in sorted(os.listdir(path)):
        if not name.endswith(".h5") or name == "archive.h5" or not name.startswith(("learn-", "sgd-")):
            continue
        p = os.path.join(path, name)
        try:
            r = rh.read_results(p, activations=False)
        except (rh.FormatError, OSError, KeyError) as e:
            raise BadInput(f"{p}: {e} DAMAGED") from None
        ex = r["trajectory"].get("example")
        if ex is None:
            continue
        labels = r["predictions"].get("test_labels")
        row = {"path": p, "seed": int(r["attrs"]["seed"]), "depth": ex["depth"], "variant": ex["variant"],
               "island": ex.get("island", -1), "data_dir": (r.get("data_identity") or {}).get("data_dir"),
               "dataset": config_of(r["attrs"].get("config", "")).get("dataset", "fashion-mnist"),
               "test": r["accuracy"]["test"], "heldout": r["accuracy"]["heldout"], "traj": ex,
               "argmax": np.asarray(r["predictions"]["test_probabilities"]).argmax(1),
               "probabilities": np.asarray(r["predictions"]["test_probabilities"], dtype=float), "labels": labels,
               "examples_per_s": float(np.mean(r["metrics"]["examples_per_s"])) if len(r["metrics"]["examples_per_s"]) else float("nan")}
        key = (ex["variant"], ex["depth"])
        if row["island"] >= 0:  # learn --targets islands: one network per island's own targets
            run["islands"].append(row)
            continue
        (run["sgd"] if ex["variant"] == "end-to-end" else run["learn"]).setdefault(key, []).append(row)
    for group in (run["learn"], run["sgd"]):
        for rows in group.values():
            rows.sort(key=lambda r: r["seed"])
    return run


def mean_std(values):
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def pm(values, scale=100.0, digits=1):
    m, s = mean_std(values)
    if math.isnan(m):
        return "n/a"
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


def best_sgd(run):
    """(depth, rows) of the SGD depth with the best mean held-out accuracy among the depths trained with
    the most seeds (a depth tried with one seed only does not stand against a mean over three)."""
    if not run["sgd"]:
        return None, []
    most = max(len(v) for v in run["sgd"].values())
    keys = [k for k, v in run["sgd"].items() if len(v) == most]
    key = max(keys, key=lambda k: (mean_std([r["heldout"] for r in run["sgd"][k]])[0], -k[1]))
    return key[1], run["sgd"][key]


def main_learn(run):
    """The learned networks of the main comparison: supervise 'all' at the depth with most seeds."""
    keys = [k for k in run["learn"] if k[0] == "all"] or list(run["learn"])
    if not keys:
        return None, []
    key = max(keys, key=lambda k: (len(run["learn"][k]), k[1]))
    return key, run["learn"][key]


def disagreement(rows):
    vals = [float(np.mean(rows[i]["argmax"] != rows[j]["argmax"])) for i in range(len(rows)) for j in range(i + 1, len(rows))]
    return float(np.mean(vals)) if vals else float("nan")


def gram_cka(x, y):
    """Linear CKA through the n x n Gram matrices (cheap for wide block outputs): <Kx, Ky> / (|Kx| |Ky|),
    K = the centred Gram matrix; equal to repsearch_h5.linear_cka."""
    def centred_gram(a):
        a = a - a.mean(0, keepdims=True)
        return a @ a.T
    kx, ky = centred_gram(x), centred_gram(y)
    denom = np.linalg.norm(kx) * np.linalg.norm(ky)
    return float((kx * ky).sum() / denom) if denom > 0 else float("nan")


def representation_similarity(rows, n=500):
    """Mean pairwise linear CKA of the networks' block outputs on the first n test images, per block
    (the networks rebuilt with repsearch_h5.load_network); None without PyTorch or the data."""
    try:
        import torch
        x = torch.from_numpy(np.array(rh.read_dataset(rows[0]["dataset"], rows[0]["data_dir"])["test_images"][:n]))
        outs = []
        with torch.no_grad():
            for r in rows:
                net = rh.load_network(r["path"])
                outs.append([o.flatten(1).double().numpy() for o in net.block_outputs(x)])
    except Exception as e:  # noqa: BLE001 - reported, not fatal: the figure-free part of the report stands
        return {"error": str(e)}
    sims = [[gram_cka(outs[i][b], outs[j][b]) for i in range(len(outs)) for j in range(i + 1, len(outs))] for b in range(3)]
    return {BLOCKS[b]: float(np.mean(sims[b])) for b in range(3)}


def beyond(run):
    """Beyond the paper: do diverse searched targets give diverse models? The networks learned from each
    island's own targets against the SGD seeds at the best depth: ensemble, disagreement, similarity."""
    depth, sgd = best_sgd(run)
    out = {}
    for label, rows in (("islands", sorted(run["islands"], key=lambda r: r["island"])), ("sgd seeds", sgd)):
        if len(rows) >= 2:
            out[label] = {"networks": len(rows), "test": [r["test"] for r in rows], "ensemble_test": ensemble(rows),
                          "mean_disagreement": disagreement(rows), "cka": representation_similarity(rows)}
    return out


def ensemble(rows):
    if len(rows) < 2 or rows[0]["labels"] is None:
        return float("nan")
    mean = np.mean([r["probabilities"] for r in rows], axis=0)
    return float((mean.argmax(1) == rows[0]["labels"]).mean())


# ---- figures -----------------------------------------------------------------------------------------

def scaling_axes(runs, value):
    """Points (x, y, label) for 'value(run)' against population (runs sharing the most common generation
    schedule) and against generations (runs sharing the most common population)."""
    rs = [r for r in runs if r["archive"] is not None and value(r) is not None]
    if not rs:
        return [], []
    gens = [tuple(r["archive"]["generations"]) for r in rs]
    pops = [r["archive"]["population"] for r in rs]
    common_g = max(set(gens), key=gens.count)
    common_p = max(set(pops), key=pops.count)
    by_pop = sorted((r["archive"]["population"], value(r), r) for r in rs if tuple(r["archive"]["generations"]) == common_g)
    by_gen = sorted((sum(r["archive"]["generations"][:3]), value(r), r) for r in rs if r["archive"]["population"] == common_p)
    return by_pop, by_gen


def figure2(runs, path):
    by_pop, by_gen = scaling_axes(runs, lambda r: r["archive"]["mean_best_ce"][:3])
    if len({p[0] for p in by_pop}) < 2 and len({g[0] for g in by_gen}) < 2:
        return None, "needs two or more archives that differ in population or in generations"
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, pts, xlabel in ((axes[0], by_pop, "population per example"), (axes[1], by_gen, "generations (blocks 0-2, summed)")):
        for b, name in enumerate(BLOCKS):
            ax.plot([p[0] for p in pts], [p[1][b] for p in pts], "o-", label=name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean best cross-entropy")
        ax.set_xscale("log")
        ax.legend()
    fig.suptitle("Figure 2: search quality vs search compute")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return {"population": [[p[0], list(map(float, p[1]))] for p in by_pop],
            "generations": [[g[0], list(map(float, g[1]))] for g in by_gen]}, None


def figure3(runs, path):
    rs = [r for r in runs if r["archive"] is not None and r["archive"]["n_eff_by_islands"].shape[0] >= 2]
    if not rs:
        return None, "needs an archive searched with 2 or more islands"
    fig, ax = plt.subplots(figsize=(5.5, 4))
    data = {}
    for r in rs:
        m = r["archive"]["n_eff_by_islands"]
        for b, name in enumerate(BLOCKS):
            ax.plot(np.arange(1, m.shape[0] + 1), m[:, b], "o-", label=f"{name} ({r['name']})" if len(rs) > 1 else name)
        data[r["name"]] = m.tolist()
    ax.set_xlabel("independent islands R")
    ax.set_ylabel("N_eff of the island bests")
    ax.legend()
    ax.set_title("Figure 3: diversity vs number of islands")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return data, None


def figure4(runs, path):
    def acc(r):
        key, rows = main_learn(r)
        return mean_std([x["test"] for x in rows])[0] if rows else None
    by_pop, by_gen = scaling_axes(runs, acc)
    if len({p[0] for p in by_pop}) < 2 and len({g[0] for g in by_gen}) < 2:
        return None, "needs learn results on two or more archives that differ in population or in generations"
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, pts, xlabel in ((axes[0], by_pop, "population per example"), (axes[1], by_gen, "generations (blocks 0-2, summed)")):
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color="C3")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("learned network's test accuracy")
        ax.set_xscale("log")
    fig.suptitle("Figure 4: learned accuracy vs search compute")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return {"population": [[p[0], p[1]] for p in by_pop], "generations": [[g[0], g[1]] for g in by_gen]}, None


def per_epoch_figure(run, field, target_field, ylabel, title, path):
    key, learned = main_learn(run)
    depth, sgd = best_sgd(run)
    if not learned or not sgd:
        return None, "needs learn and sgd results in the same run directory"
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    data = {}
    for label, rows, color in ((f"search-based ({key[0]}, depth {key[1]})", learned, "C3"), (f"SGD (depth {depth})", sgd, "C0")):
        n = min(len(r["traj"][field]) for r in rows)
        curve = np.mean([r["traj"][field][:n] for r in rows], axis=0)
        data[label] = curve.tolist()
        for b, ax in enumerate(axes):
            ax.plot(np.arange(n), curve[:, b], color=color, label=label)
    if target_field:
        t = np.asarray(learned[0]["traj"][target_field], dtype=float)
        data["targets"] = t.tolist()
        for b, ax in enumerate(axes):
            ax.axhline(t[b], color="k", ls="--", lw=1, label="searched targets")
    for b, ax in enumerate(axes):
        ax.set_title(BLOCKS[b])
        ax.set_xlabel("epoch")
    axes[0].set_ylabel(ylabel)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return data, None


# ---- the report --------------------------------------------------------------------------------------

def table1(run):
    key, learned = main_learn(run)
    depth, sgd = best_sgd(run)
    rows = []
    if sgd:
        rows.append({"method": f"SGD (best depth by held-out accuracy: {depth})", "test": [r["test"] for r in sgd]})
    for (variant, d), rs in sorted(run["learn"].items()):
        name = "all layers" if variant == "all" else "skip block 0"
        rows.append({"method": f"search-based, {name} (depth {d})", "test": [r["test"] for r in rs]})
    for r in rows:
        r["mean"], r["std"] = mean_std(r["test"])
        r["seeds"] = len(r["test"])
    return rows


def build(run_dirs, out, title=None):
    runs = []
    for d in run_dirs:
        if not os.path.isdir(d):
            raise BadInput(f"{d}: no such run directory")
        runs.append(load_run(d))
    if not any(r["archive"] or r["learn"] or r["sgd"] for r in runs):
        raise BadInput("no example-space archive or results in " + ", ".join(run_dirs))
    os.makedirs(out, exist_ok=True)
    report = {"runs": [], "figures": {}, "not_drawn": {}}
    figures = []

    def draw(name, fn, *args):
        path = os.path.join(out, f"{name}.png")
        data, why = fn(*args, path)
        if why:
            report["not_drawn"][name] = why
        else:
            report["figures"][name] = data
            figures.append(name)

    draw("figure2_search_compute", figure2, runs)
    draw("figure3_neff_islands", figure3, runs)
    draw("figure4_learned_vs_search", figure4, runs)
    main = next((r for r in runs if r["learn"] and r["sgd"]), None)
    if main is not None:
        draw("figure5_cosine_distance", per_epoch_figure, main, "cosine_distance", None,
             "cosine distance to the searched targets", "Figure 5: distance to the targets (held-out examples)")
        draw("figure6_entropy_within", per_epoch_figure, main, "collision_entropy_within", "target_collision_entropy_within",
             "collision entropy within classes (nats)", "Figure 6: collision entropy within classes")
        draw("figure7_entropy_between", per_epoch_figure, main, "collision_entropy_between", "target_collision_entropy_between",
             "collision entropy between classes (nats)", "Figure 7: collision entropy between classes")
    else:
        for name in ("figure5_cosine_distance", "figure6_entropy_within", "figure7_entropy_between"):
            report["not_drawn"][name] = "needs learn and sgd results in the same run directory"

    lines = [f"# {title or 'repsearch: the paper’s comparison'}", ""]
    table_lines = []
    for r in runs:
        a = r["archive"]
        entry = {"name": r["name"], "dir": r["dir"]}
        lines += [f"## {r['name']}", ""]
        if a:
            entry["search"] = {"examples": a["examples"], "population": a["population"], "generations": a["generations"],
                               "islands": a["islands"], "mean_best_ce": a["mean_best_ce"].tolist(),
                               "mean_initial_ce": a["mean_initial_ce"], "logit_accuracy": a["logit_accuracy"]}
            lines += [f"Search: {a['examples']} examples, population {a['population']}, generations "
                      f"{','.join(map(str, a['generations']))}, {a['islands']} island(s); mean best cross-entropy "
                      f"{' / '.join(f'{v:.3f}' for v in a['mean_best_ce'])} (block0/1/2/logits; untrained "
                      f"{a['mean_initial_ce']:.3f}); searched logits right for {100 * a['logit_accuracy']:.1f} %.", ""]
        t = table1(r)
        if t:
            entry["table1"] = [{k: v for k, v in row.items()} for row in t]
            lines += ["| method | test accuracy (%), mean ± std | seeds |", "|---|---|---|"]
            for row in t:
                lines.append(f"| {row['method']} | {pm(row['test'])} | {row['seeds']} |")
            lines.append("")
            learned = [row for row in t if row["method"].startswith("search-based, all")]
            sgd = [row for row in t if row["method"].startswith("SGD")]
            if learned and sgd:
                gap = 100 * (learned[0]["mean"] - sgd[0]["mean"])
                row_text = (f"Table 1 row ({r['name']}): SGD {pm(sgd[0]['test'])} | search-based, all layers "
                            f"{pm(learned[0]['test'])} | gap {gap:+.1f} points")
                table_lines.append(row_text)
                entry["gap_points"] = gap
                lines += [row_text, ""]
            key, lrows = main_learn(r)
            depth, srows = best_sgd(r)
            seed_ensembles = {}
            for label, rows in (("learned", lrows), ("sgd", srows)):
                if len(rows) >= 2:
                    seed_ensembles[label] = {"ensemble_test": ensemble(rows), "mean_disagreement": disagreement(rows),
                                     "examples_per_s": mean_std([x["examples_per_s"] for x in rows])[0]}
            if seed_ensembles:
                entry["seed_ensembles"] = seed_ensembles
                lines.append("Ensembles of the seeds (mean of softmax outputs) and their mean pairwise prediction disagreement "
                             "on the test set:")
                for label, b in seed_ensembles.items():
                    lines.append(f"- {label}: ensemble {100 * b['ensemble_test']:.1f} %, disagreement "
                                 f"{100 * b['mean_disagreement']:.1f} %, {b['examples_per_s']:.0f} examples/s per epoch")
                lines.append("")
        if r["islands"]:
            b = beyond(r)
            entry["islands"] = b
            lines.append("Beyond the paper: one network per island, each learned from that island's own targets, "
                         "against the SGD seeds (best depth): test accuracy, the ensemble (mean of softmax outputs), "
                         "mean pairwise prediction disagreement and linear CKA of block outputs on 500 test images:")
            for label, v in b.items():
                cka = v["cka"]
                cka_text = ("CKA " + "/".join(f"{cka[k]:.3f}" for k in BLOCKS)) if "error" not in cka else f"CKA n/a ({cka['error']})"
                lines.append(f"- {label} ({v['networks']}): test {pm(v['test'])} %, ensemble {100 * v['ensemble_test']:.1f} %, "
                             f"disagreement {100 * v['mean_disagreement']:.1f} %, {cka_text}")
            lines.append("")
        report["runs"].append(entry)
    for name in figures:
        lines += [f"![{name}]({name}.png)", ""]
    for name, why in report["not_drawn"].items():
        lines.append(f"- {name} not drawn: {why}")
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=1, default=float)
    for line in table_lines:
        print(line)
    return out, figures
