#!/usr/bin/env python3
"""A plain PyTorch implementation of the paper's search (Vegesna & Dahal, arXiv 2509.10973), written
from its description (../shared/PAPER.md, restated in ARCHITECTURE.md), as a researcher would write it:
NCHW tensors, one batch of examples at a time, torch's own operators. The peer of `repsearch search
--space example` in bench/peers/run_paper_peer.sh.

It searches the same frozen network on the same examples: both read from a repsearch example archive
(/network: the whitening and conv weights; /data: the searched examples' training indices), and the
images come from the same IDX files. It reports candidate evaluations/s and the mean best
cross-entropy after each layer's search, as `repsearch inspect` does.

    paper_search.py ARCHIVE --data-dir DIR [--examples N] [--batch B] [--threads 1]
                    [--parents 20 --exploratory 100 --refinement 120]
                    [--generations 300,100,100,10 --alpha 0.3,0.2,0.1,0.1 --boost 5,3,3,1 --blur 5,1,1,0]
"""
import argparse
import gzip
import json
import math
import os
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F


def read_idx(path):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_train(data_dir):
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        if not any(os.path.exists(os.path.join(data_dir, stem + s)) for s in ("", ".gz")):
            raise SystemExit(f"paper_search.py: {data_dir} holds no {stem}[.gz]")
    pick = lambda stem: os.path.join(data_dir, stem + ("" if os.path.exists(os.path.join(data_dir, stem)) else ".gz"))
    images = read_idx(pick("train-images-idx3-ubyte")).astype(np.float32)[:, None] / 255.0
    labels = read_idx(pick("train-labels-idx1-ubyte")).astype(np.int64)
    return torch.from_numpy(images), torch.from_numpy(labels)


class Net:
    """The frozen network of the archive: whitening conv + GELU, three ConvGroups, linear head."""

    def __init__(self, g):
        t = lambda name: torch.from_numpy(g[name][()])
        self.ww, self.wb = t("whiten_weight"), t("whiten_bias")
        self.conv1 = [t(f"conv1_{b}") for b in range(3)]
        self.conv2 = [t(f"conv2_{b}") for b in range(3)]
        self.bn = [(t(f"bn1_mean_{b}"), t(f"bn1_var_{b}"), t(f"bn2_mean_{b}"), t(f"bn2_var_{b}")) for b in range(3)]
        self.head = t("head")
        self.identity = g.attrs["batchnorm"] == "identity"

    def norm(self, x, mean, var):
        if self.identity:
            return x
        return (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + 1e-12)

    def block(self, b, x):
        m1, v1, m2, v2 = self.bn[b]
        x = F.gelu(self.norm(F.max_pool2d(F.conv2d(x, self.conv1[b], padding=1), 2), m1, v1))
        return F.gelu(self.norm(F.conv2d(x, self.conv2[b], padding=1), m2, v2))

    def stem(self, x):
        return F.gelu(F.conv2d(x, self.ww, self.wb))

    def layer(self, l, x):
        return x.flatten(1) @ self.head.t() if l == 3 else self.block(l, x)

    def logits_from(self, l, h):
        for m in range(l + 1, 4):
            h = self.layer(m, h)
        return h


def normalise(x):  # zero mean, unit variance over C, H, W
    flat = x.flatten(-3)
    mean, var = flat.mean(-1, keepdim=True), flat.var(-1, unbiased=False, keepdim=True)
    return ((flat - mean) / torch.sqrt(var + 1e-5)).view_as(x)


def spread(x, conv):  # per-channel spatial std, or the std across classes
    return x.flatten(-2).std(-1, unbiased=False) if conv else x.std(-1, unbiased=False)


def children(pool, sigma, n, strength, blur, conv):
    e, m = pool.shape[:2]
    a, b = torch.randint(m, (e, n)), torch.randint(m, (e, n))
    rows = torch.arange(e).unsqueeze(1)
    child = (pool[rows, a] + pool[rows, b]) / 2
    sd = (sigma[rows, a] + sigma[rows, b]) / 2 * strength
    if conv:
        child = child + torch.randn_like(child) * sd[..., None, None]
        shape = child.shape
        child = child.reshape(-1, *shape[2:])
        for _ in range(blur):
            child = F.avg_pool2d(child, 3, stride=1, padding=1)
        return normalise(child.reshape(shape))
    child = child + torch.randn_like(child) * sd[..., None]
    return child - child.mean(-1, keepdim=True)


def score(net, l, cand, labels):
    e, n = cand.shape[:2]
    logits = net.logits_from(l, cand.reshape(e * n, *cand.shape[2:]))
    return -F.cross_entropy(logits, labels.repeat_interleave(n), reduction="none").view(e, n)


def search_batch(net, x, y, a, stats):
    h = net.stem(x)
    pop_size = a.parents + a.exploratory + a.refinement
    for l in range(4):
        conv = l < 3
        sd = h.flatten(2).std(-1, unbiased=False)[:, None, :, None, None]
        noisy = h.unsqueeze(1) + torch.randn(h.shape[0], pop_size, *h.shape[1:]) * a.init_noise * sd
        noisy[:, 0] = h
        cand = net.layer(l, noisy.flatten(0, 1))
        cand = normalise(cand) if conv else cand - cand.mean(-1, keepdim=True)
        pop = cand.view(h.shape[0], pop_size, *cand.shape[1:])
        fit = score(net, l, pop, y)
        stats["evaluations"] += fit.numel()
        for _ in range(a.generations[l]):
            top, idx = fit.topk(a.parents, 1)
            parents = pop[torch.arange(pop.shape[0]).unsqueeze(1), idx]
            sig = spread(parents, conv)
            exp = children(parents, sig, a.exploratory, a.alpha[l] * a.boost[l], a.blur[l], conv)
            ref = children(torch.cat([parents, exp], 1), torch.cat([sig, spread(exp, conv)], 1), a.refinement,
                           a.alpha[l], a.blur[l], conv)
            made = torch.cat([exp, ref], 1)
            made_fit = score(net, l, made, y)
            stats["evaluations"] += made_fit.numel()
            pop, fit = torch.cat([parents, made], 1), torch.cat([top, made_fit], 1)
        best = fit.argmax(1)
        h = pop[torch.arange(pop.shape[0]), best]
        stats["ce"][l] += float((-fit.max(1).values).sum())
    stats["right"] += int((h.argmax(1) == y).sum())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("archive")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--examples", type=int, default=0, help="first N of the archive's examples (0: all)")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parents", type=int, default=20)
    p.add_argument("--exploratory", type=int, default=100)
    p.add_argument("--refinement", type=int, default=120)
    p.add_argument("--init-noise", type=float, default=0.5)
    lists = lambda kind: (lambda s: [kind(v) for v in s.split(",")])
    p.add_argument("--generations", type=lists(int), default=[300, 100, 100, 10])
    p.add_argument("--alpha", type=lists(float), default=[0.3, 0.2, 0.1, 0.1])
    p.add_argument("--boost", type=lists(float), default=[5, 3, 3, 1])
    p.add_argument("--blur", type=lists(int), default=[5, 1, 1, 0])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    with h5py.File(a.archive, "r") as f:
        net = Net(f["network"])
        indices = f["data/indices"][()]
    if a.examples:
        indices = indices[:a.examples]
    images, labels = load_train(a.data_dir)
    mean, std = images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3), unbiased=False)
    x_all = ((images[indices] - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).float()
    y_all = labels[indices]
    stats = {"evaluations": 0, "ce": [0.0] * 4, "right": 0}
    t0 = time.time()
    with torch.no_grad():
        for s in range(0, len(indices), a.batch):
            search_batch(net, x_all[s:s + a.batch], y_all[s:s + a.batch], a, stats)
    seconds = time.time() - t0
    n = len(indices)
    out = {"examples": n, "seconds": seconds, "evaluations": stats["evaluations"],
           "eval_per_s": stats["evaluations"] / seconds, "mean_best_ce": [c / n for c in stats["ce"]],
           "logit_accuracy": stats["right"] / n, "threads": a.threads}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
