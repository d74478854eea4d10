#!/usr/bin/python3
"""Benchmark 5 (peers): the repsearch search problem run by DEAP with a numpy fitness.

Same math as repsearch's `ridge-probe` fitness (src/core/fitness.cpp), re-implemented with numpy:
random ReLU features phi(x) = [relu(x W + b) / sqrt(p), 1] (W ~ N(0, 1/D), b ~ N(0, 1), drawn with
numpy, so not bit-identical to repsearch's), kernel-ridge smoother M = phi_V (phi_S^T phi_S + lambda I)^-1
phi_S^T with lambda relative to tr(phi^T phi)/q, a per-individual ridge readout Z -> one-hot labels with
an unpenalised bias (ridge relative to tr(Z_c^T Z_c)/d), score = -mean CE(softmax(beta (M (Z W) + b)))
on ALL of V (a fixed validation set, like the pagmo harness and `repsearch search --val-batch |V|`).

GA (plain, like `repsearch search --operators gaussian`): per island, P offspring from 2-way tournament
winners; with probability --crossover an offspring takes each row from a second tournament winner with
probability 0.5 (row-wise crossover); every offspring gets Gaussian noise (sigma x column std) on
--mutation-rate of its rows; (mu + lambda) replacement. Islands exchange their best individual on a
ring (deap.tools.migRing, replacing the worst) every --migration-interval generations.

Data: Fashion-MNIST from its IDX files, standardised with training-set mean/std; the splits S/V/H are
read from a repsearch archive (--splits-from archive.h5: the very same examples repsearch searched),
else drawn with numpy from --seed. Initial populations: phi_op R (256 random features, R Gaussian),
columns standardised, as repsearch's random-features init (numpy draws).

Output: one line per generation,
  [peer] gen G wall SECONDS evals N best_val SCORE heldout SCORE
(wall counts from the end of generation 0; held-out = best over islands of the held-out score of each
island's best).  Run with Debian's /usr/bin/python3 (python3-deap, python3-numpy, python3-h5py).
"""
import argparse
import copy
import gzip
import os
import random
import struct
import sys
import time

# BLAS/OpenMP thread counts must be set before numpy loads its BLAS: --threads is read here.
for _i, _a in enumerate(sys.argv[:-1]):
    if _a == "--threads":
        for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[_v] = sys.argv[_i + 1]

try:
    import numpy as np
except ImportError:
    sys.exit("deap_search.py: numpy is missing for %s; run it with Debian's /usr/bin/python3 "
             "(apt-get install python3-numpy)" % sys.executable)
try:
    from deap import base, creator, tools
except ImportError:
    sys.exit("deap_search.py: DEAP is missing for %s; run it with Debian's /usr/bin/python3 "
             "(apt-get install --no-install-recommends python3-deap)" % sys.executable)


def read_idx(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit("deap_search.py: %s is not a uint8 IDX file" % path)
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(data_dir, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(data_dir, name)
        if os.path.exists(p):
            return p
    sys.exit("deap_search.py: %s(.gz) not found in %s" % (stem, data_dir))


def load_data(args):
    x = read_idx(find(args.data_dir, "train-images-idx3-ubyte")).reshape(-1, 784)
    y = read_idx(find(args.data_dir, "train-labels-idx1-ubyte")).astype(np.int64)
    if args.splits_from:
        import h5py
        with h5py.File(args.splits_from, "r") as h:
            s, v, hd = (h["/data/" + k][()] for k in ("search_indices", "val_indices", "heldout_indices"))
        source = "repsearch archive " + args.splits_from
    else:
        perm = np.random.default_rng(args.seed).permutation(len(x))
        s = perm[:args.search_size]
        v = perm[args.search_size:args.search_size + args.val_size]
        hd = perm[args.search_size + args.val_size:args.search_size + args.val_size + args.heldout_size]
        source = "numpy permutation (seed %d)" % args.seed
    # Per-channel standardisation with training-set statistics (one channel here), like repsearch.
    xs = x.astype(np.float64) / 255.0
    mean, std = xs.mean(), xs.std()
    prep = lambda idx: ((x[idx].astype(np.float32) / 255.0 - mean) / std).astype(np.float32)
    return prep(s), y[s], prep(v), y[v], prep(hd), y[hd], source


def random_features(D, p, rng):
    w = (rng.standard_normal((D, p)) / np.sqrt(D)).astype(np.float32)
    b = rng.standard_normal(p).astype(np.float32)

    def phi(x):
        h = np.maximum(x @ w + b, 0.0) / np.sqrt(p)
        return np.concatenate([h, np.ones((x.shape[0], 1), np.float32)], axis=1)
    return phi


class RidgeProbe:
    """Numpy ridge-probe: score(Z [n, d] or [B, n, d]) -> -mean CE on a split."""

    def __init__(self, xs, ys, xv, yv, xh, yh, args, rng, n_classes=10):
        self.C, self.beta, self.ridge = n_classes, args.beta, args.readout_ridge
        self.ys, self.yv, self.yh = ys, yv, yh
        phi = random_features(xs.shape[1], args.features, rng)
        ps = phi(xs).astype(np.float64)
        g = ps.T @ ps
        q = g.shape[0]
        lam = max(args.lam, 1e-3) * np.trace(g) / q
        chol = np.linalg.cholesky(g + lam * np.eye(q))
        smoother = np.linalg.solve(chol.T, np.linalg.solve(chol, ps.T))  # (G + lam I)^-1 phi_S^T [q, n]
        self.m_val = (phi(xv).astype(np.float64) @ smoother).astype(np.float32)
        self.m_heldout = (phi(xh).astype(np.float64) @ smoother).astype(np.float32)
        self.onehot = np.eye(n_classes)[ys]  # [n, C]
        self.ybar = self.onehot.mean(0)

    def _probe(self, z, m, y):
        batched = z.ndim == 3
        z = z if batched else z[None]
        B, n, d = z.shape
        z64 = z.astype(np.float64)
        mean = z64.mean(1)                                                     # [B, d]
        zt = z64.transpose(0, 2, 1)
        gram = zt @ z64 - n * mean[:, :, None] * mean[:, None, :]                # [B, d, d]
        cross = zt @ self.onehot - n * mean[:, :, None] * self.ybar[None, None, :]  # [B, d, C]
        mu = np.maximum(self.ridge * np.trace(gram, axis1=1, axis2=2) / d, 1e-12)
        w = np.linalg.solve(gram + mu[:, None, None] * np.eye(d), cross)      # [B, d, C]
        bias = self.ybar[None] - np.einsum("bd,bdc->bc", mean, w)             # [B, C]
        zw = z @ w.astype(np.float32)                                           # [B, n, C]
        logits = (m @ zw.transpose(1, 0, 2).reshape(n, B * self.C)).reshape(m.shape[0], B, self.C)
        logits = logits.transpose(1, 0, 2).astype(np.float64) + bias[:, None, :]
        s = self.beta * logits
        top = s.max(-1, keepdims=True)
        lse = (top + np.log(np.exp(s - top).sum(-1, keepdims=True)))[..., 0]
        picked = np.take_along_axis(s, y[None, :, None], -1)[..., 0]
        score = -(lse - picked).mean(-1)
        score = np.where(np.isfinite(score), score, -np.inf)
        return score if batched else float(score[0])

    def score(self, z):
        return self._probe(z, self.m_val, self.yv)

    def heldout(self, z):
        return self._probe(z, self.m_heldout, self.yh)


class Genome:
    """A representation Z [n, d] float32; identity equality so deap.tools.migRing can index it."""

    def __init__(self, z):
        self.z = z


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--splits-from", default="", help="repsearch archive.h5 whose /data indices to use")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--search-size", type=int, default=1000)
    ap.add_argument("--val-size", type=int, default=2000)
    ap.add_argument("--heldout-size", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--population", type=int, default=16)
    ap.add_argument("--islands", type=int, default=2)
    ap.add_argument("--generations", type=int, default=30)
    ap.add_argument("--migration-interval", type=int, default=10)
    ap.add_argument("--mutation-rate", type=float, default=0.02)
    ap.add_argument("--sigma", type=float, default=0.3)
    ap.add_argument("--crossover", type=float, default=0.1)
    ap.add_argument("--tournament", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads (set before numpy is loaded)")
    ap.add_argument("--features", type=int, default=2048)
    ap.add_argument("--lambda", dest="lam", type=float, default=0.1)
    ap.add_argument("--readout-ridge", type=float, default=1e-3)
    ap.add_argument("--beta", type=float, default=10.0)
    ap.add_argument("--batch-eval", type=int, default=0,
                    help="1: score all new individuals of an island in one batched numpy call instead of "
                         "DEAP's per-individual toolbox.map(evaluate, ...)")
    args = ap.parse_args()

    t_start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    random.seed(args.seed)
    xs, ys, xv, yv, xh, yh, source = load_data(args)
    if len(ys) != args.search_size:
        sys.exit("deap_search.py: --splits-from has n_s=%d, --search-size says %d" % (len(ys), args.search_size))
    probe = RidgeProbe(xs, ys, xv, yv, xh, yh, args, rng)
    phi_op = random_features(xs.shape[1], 256, rng)(xs)  # the init's input-predictable basis
    n, d, P = len(ys), args.dim, args.population
    t_prepared = time.perf_counter()

    creator.create("FitnessMax", base.Fitness, weights=(1.0,))
    creator.create("Individual", Genome, fitness=creator.FitnessMax)
    tb = base.Toolbox()

    def init_z():
        z = phi_op @ rng.standard_normal((phi_op.shape[1], d)).astype(np.float32)
        return ((z - z.mean(0)) / np.maximum(z.std(0), 1e-6)).astype(np.float32)

    tb.register("individual", lambda: creator.Individual(init_z()))
    tb.register("evaluate", lambda ind: (probe.score(ind.z),))
    tb.register("select", tools.selTournament, tournsize=args.tournament)
    rows_mut = max(1, min(n, int(round(args.mutation_rate * n))))

    def mate_rows(child, mate):  # row-wise crossover: each row from the mate with probability 0.5
        take = rng.random(n) < 0.5
        child.z[take] = mate.z[take]
        return child

    def mutate_gaussian(child):  # Gaussian noise on a fraction of rows, sigma x column std
        rows = rng.choice(n, rows_mut, replace=False)
        child.z[rows] += (rng.standard_normal((rows_mut, d)) * (child.z.std(0) * args.sigma)).astype(np.float32)
        return child

    tb.register("mate", mate_rows)
    tb.register("mutate", mutate_gaussian)
    tb.register("migrate", tools.migRing, k=1, selection=tools.selBest, replacement=tools.selWorst)

    evals, eval_seconds = 0, 0.0

    def evaluate(inds):
        nonlocal evals, eval_seconds
        if not inds:
            return
        t = time.process_time()
        if args.batch_eval:
            scores = probe.score(np.stack([i.z for i in inds]))
            for ind, s in zip(inds, scores):
                ind.fitness.values = (float(s),)
        else:
            for ind, fit in zip(inds, map(tb.evaluate, inds)):
                ind.fitness.values = fit
        evals += len(inds)
        eval_seconds += time.process_time() - t

    islands = [[tb.individual() for _ in range(P)] for _ in range(args.islands)]
    for pop in islands:
        evaluate(pop)
    print("[peer] deap %s: plain GA (tournament %d, row crossover %.2f, gaussian rows %.2f sigma %.2f, mu+lambda) "
          "x %d islands (sequential, one process), P=%d, n_s=%d, d=%d, |V|=%d, |H|=%d, migRing every %d, %s "
          "evaluation; splits from %s; numpy %s"
          % (getattr(sys.modules["deap"], "__version__", "?"), args.tournament, args.crossover, args.mutation_rate,
             args.sigma, args.islands, P, n, d, len(yv), len(yh), args.migration_interval,
             "batched" if args.batch_eval else "per-individual", source, np.__version__), flush=True)
    print("[peer] prepare %.2f s (data, fitness, init features)" % (t_prepared - t_start), flush=True)

    t0, cpu0 = time.perf_counter(), time.process_time()
    eval_seconds = 0.0

    def report(g):
        best = max(ind.fitness.values[0] for pop in islands for ind in pop)
        held = max(probe.heldout(tools.selBest(pop, 1)[0].z) for pop in islands)
        print("[peer] gen %d wall %.3f evals %d best_val %.5f heldout %.5f"
              % (g, time.perf_counter() - t0, evals, best, held), flush=True)

    report(0)
    migrations = 0
    for g in range(1, args.generations + 1):
        for i, pop in enumerate(islands):
            parents = tb.select(pop, P)
            offspring = [copy.deepcopy(p) for p in parents]
            for child in offspring:
                if random.random() < args.crossover:
                    tb.mate(child, tb.select(pop, 1)[0])
                tb.mutate(child)
                del child.fitness.values
            evaluate(offspring)
            islands[i] = tools.selBest(pop + offspring, P)
        if args.migration_interval > 0 and g % args.migration_interval == 0 and args.islands > 1:
            tb.migrate(islands)
            migrations += 1
        report(g)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print("[peer] done: %d generations in %.3f s, %d evaluations, %.1f evaluations/s; CPU %.3f s, of which %.3f s "
          "in the fitness (%.0f%%; the rest: DEAP's selection, cloning, variation, and the held-out logging), "
          "%d migrations; total process %.2f s"
          % (args.generations, wall, evals, (evals - args.islands * P) / wall if wall else 0, cpu, eval_seconds,
             100 * eval_seconds / cpu if cpu else 0, migrations, time.perf_counter() - t_start), flush=True)


if __name__ == "__main__":
    main()
