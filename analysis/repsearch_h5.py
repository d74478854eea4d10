#!/usr/bin/env python3
"""Readers for repsearch's HDF5 files, and linear CKA.

Plain h5py + numpy, no repsearch code: what a user needs to read an archive (format
"repsearch-archive", written by `repsearch search`) or a results file (format "repsearch-results",
written by `repsearch learn` / `repsearch sgd`) into dicts of numpy arrays. Layouts: DESIGN.md
("HDF5 archive") and src/io/results.cpp. Any other file is refused with a FormatError that names
the path and the format found.

    import repsearch_h5 as rh
    a = rh.read_archive("runs/smoke/archive.h5")     # a["elites"]["heldout"], a["histories"][0]["best"], ...
    r = rh.read_results("runs/smoke/learn-3f.h5")     # r["accuracy"]["test"], r["trajectory"]["activations"], ...
    rh.linear_cka(x, y)                              # x: [n, d1], y: [n, d2]
"""
import numpy as np

ARCHIVE_FORMAT = "repsearch-archive"
RESULTS_FORMAT = "repsearch-results"
FORMAT_VERSION = 1

HISTORY_COLUMNS = ("generation", "best", "mean", "std", "heldout", "diversity", "evaluations", "seconds",
                   "nonfinite")
MIGRATION_COLUMNS = ("generation", "source", "destination", "uid", "fitness")
METRIC_COLUMNS = ("epoch", "phase", "loss", "train_accuracy", "val_accuracy", "examples_per_s", "seconds")


class FormatError(Exception):
    """A file that is not the repsearch HDF5 file it was expected to be (message names the path)."""


def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - depends on the interpreter
        raise ImportError("repsearch_h5 needs h5py (Debian: apt-get install python3-h5py; use /usr/bin/python3)") from e
    return h5py


def _text(value):
    """An HDF5 string attribute as str (h5py gives str for variable-length, bytes for fixed-length)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value[()])
    if isinstance(value, np.generic):
        return value.item()
    return value


def _attrs(obj):
    return {key: _text(obj.attrs[key]) for key in obj.attrs}


def _open(path, expected):
    """Open `path` read-only and check its root `format` and `format_version` attributes."""
    h5py = _h5py()
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file (expected a {expected} file)") from None
    except OSError as e:
        raise FormatError(f"{path}: not a readable HDF5 file (expected format '{expected}'): {e}") from None
    fmt = _text(f.attrs["format"]) if "format" in f.attrs else None
    if fmt != expected:
        found = "no root 'format' attribute" if fmt is None else f"format '{fmt}'"
        f.close()
        raise FormatError(f"{path}: not a {expected} file: expected format '{expected}', found {found}")
    version = _text(f.attrs["format_version"]) if "format_version" in f.attrs else None
    if version != FORMAT_VERSION:
        f.close()
        raise FormatError(f"{path}: format '{expected}' version {version}, this reader knows version "
                          f"{FORMAT_VERSION}")
    return f


def _dataset(f, path, name):
    if name not in f:
        raise FormatError(f"{path}: missing dataset {name}")
    obj = f[name]
    if not hasattr(obj, "shape"):
        raise FormatError(f"{path}: {name} is not a dataset")
    try:
        return obj[()]
    except (OSError, ValueError) as e:
        raise FormatError(f"{path}: cannot read {name}: {e}") from None


def _group(f, path, name):
    if name not in f:
        raise FormatError(f"{path}: missing group {name}")
    return f[name]


def _columns(f, path, group, names):
    _group(f, path, group)
    out = {}
    for name in names:
        value = _dataset(f, path, f"{group}/{name}")
        if value.dtype.kind in ("O", "S"):
            value = np.array([_text(v) for v in value], dtype=object)
        out[name] = value
    lengths = {name: len(v) for name, v in out.items()}
    if len(set(lengths.values())) > 1:
        raise FormatError(f"{path}: columns of {group} differ in length: {lengths}")
    return out


def read_format(path):
    """The root `format` attribute of an HDF5 file ("" when absent); FormatError when not HDF5."""
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            return _text(f.attrs["format"]) if "format" in f.attrs else ""
    except OSError as e:
        raise FormatError(f"{path}: not a readable HDF5 file: {e}") from None


def read_archive(path, representations=False):
    """An archive as a dict:

    attrs       root attributes (provenance: config, config_sha256, git_commit, created, n_islands, ...)
    data        {"attrs", "search_indices", "search_labels", "val_indices", "heldout_indices"}
    elites      {"fitness", "heldout", "island", "generation", "uid", "cka"[, "representations"]}
    histories   one dict of columns per island (HISTORY_COLUMNS), index = island
    migrations  dict of columns (MIGRATION_COLUMNS)
    path        the path read

    Representations [k, n_s, d] are read only when asked for (they are the bulk of the file).
    """
    with _open(path, ARCHIVE_FORMAT) as f:
        out = {"path": str(path), "attrs": _attrs(f)}
        data = _group(f, path, "/data")
        out["data"] = {"attrs": _attrs(data)}
        for name in ("search_indices", "search_labels", "val_indices", "heldout_indices"):
            out["data"][name] = _dataset(f, path, f"/data/{name}")
        _group(f, path, "/elites")
        elites = {}
        for name in ("fitness", "heldout", "island", "generation", "uid", "cka"):
            elites[name] = _dataset(f, path, f"/elites/{name}")
        k = len(elites["fitness"])
        for name in ("heldout", "island", "generation", "uid"):
            if len(elites[name]) != k:
                raise FormatError(f"{path}: /elites/{name} holds {len(elites[name])} entries, /elites/fitness {k}")
        if elites["cka"].shape != (k, k):
            raise FormatError(f"{path}: /elites/cka has shape {elites['cka'].shape}, expected ({k}, {k})")
        if representations:
            elites["representations"] = _dataset(f, path, "/elites/representations")
        elif "representations" in f["/elites"]:
            elites["representations_shape"] = tuple(f["/elites/representations"].shape)
        out["elites"] = elites
        islands = _group(f, path, "/islands")
        names = sorted(islands.keys(), key=lambda s: int(s) if s.isdigit() else -1)
        if names != [str(i) for i in range(len(names))]:
            raise FormatError(f"{path}: /islands holds {names}, expected groups 0..{len(names) - 1}")
        out["histories"] = [_columns(f, path, f"/islands/{i}/history", HISTORY_COLUMNS) for i in range(len(names))]
        out["migrations"] = _columns(f, path, "/migrations", MIGRATION_COLUMNS)
    return out


def read_results(path, activations=True, probabilities=True):
    """A results file (learn-<uid>.h5, sgd-<seed>.h5, sgd-full-<seed>.h5) as a dict:

    attrs        root attributes (kind "learn"|"sgd", seed, elite_uid, elite_rank, model, train_data,
                 archive_path, archive_sha256, config_sha256, ...)
    metrics      dict of columns (METRIC_COLUMNS), one entry per epoch
    accuracy     {"val", "heldout", "test", "regression_mse"} floats (NaN where not measured)
    trajectory   {"steps" [T], "probe_indices" [n_probe][, "activations" [T, n_probe, d] float32]}
    predictions  {"test_probabilities" [n_test, C] float32} (when probabilities=True)
    path         the path read
    """
    with _open(path, RESULTS_FORMAT) as f:
        out = {"path": str(path), "attrs": _attrs(f)}
        out["metrics"] = _columns(f, path, "/metrics", METRIC_COLUMNS)
        acc = _group(f, path, "/accuracy")
        out["accuracy"] = {}
        for name in ("val", "heldout", "test", "regression_mse"):
            if name not in acc.attrs:
                raise FormatError(f"{path}: /accuracy lacks attribute {name}")
            out["accuracy"][name] = float(acc.attrs[name])
        _group(f, path, "/trajectory")
        traj = {"steps": _dataset(f, path, "/trajectory/steps"),
                "probe_indices": _dataset(f, path, "/trajectory/probe_indices")}
        if "/trajectory/activations" not in f:
            raise FormatError(f"{path}: missing dataset /trajectory/activations")
        shape = tuple(f["/trajectory/activations"].shape)
        if len(shape) != 3 or shape[0] != len(traj["steps"]) or shape[1] != len(traj["probe_indices"]):
            raise FormatError(f"{path}: /trajectory/activations has shape {shape}, expected "
                              f"[T={len(traj['steps'])}, n_probe={len(traj['probe_indices'])}, d]")
        traj["activations_shape"] = shape
        if activations:
            traj["activations"] = _dataset(f, path, "/trajectory/activations")
        out["trajectory"] = traj
        _group(f, path, "/predictions")
        if probabilities:
            out["predictions"] = {"test_probabilities": _dataset(f, path, "/predictions/test_probabilities")}
            if "test_labels" in f["predictions"]:  # written since the results carry labels
                out["predictions"]["test_labels"] = f["predictions/test_labels"][()]
    return out


# ---- linear CKA -------------------------------------------------------------------------------------

def _centred(x):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"linear CKA takes [n, d] matrices, got shape {x.shape}")
    return x - x.mean(axis=0, keepdims=True)


def linear_cka(x, y):
    """Linear CKA of two representations of the same n examples, x [n, d1] and y [n, d2] (a 1-d
    array is one column): columns centred, float64,
        ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F).
    NaN when either representation is constant."""
    xc, yc = _centred(x), _centred(y)
    if xc.shape[0] != yc.shape[0]:
        raise ValueError(f"linear CKA needs the same examples: {xc.shape[0]} rows vs {yc.shape[0]}")
    denom = np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    if denom == 0:
        return float("nan")
    return float(np.linalg.norm(yc.T @ xc) ** 2 / denom)


def cka_matrix(xs, ys):
    """Linear CKA between every x in xs [T1, n, d1] and every y in ys [T2, n, d2]: [T1, T2] float64.
    Same values as linear_cka entry by entry; centring and norms computed once per point."""
    xs = [_centred(x) for x in xs]
    ys = [_centred(y) for y in ys]
    xn = [np.linalg.norm(x.T @ x) for x in xs]
    yn = [np.linalg.norm(y.T @ y) for y in ys]
    out = np.full((len(xs), len(ys)), np.nan)
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"linear CKA needs the same examples: {x.shape[0]} rows vs {y.shape[0]}")
            denom = xn[i] * yn[j]
            if denom > 0:
                out[i, j] = np.linalg.norm(y.T @ x) ** 2 / denom
    return out


def elite_diversity(cka):
    """Mean pairwise 1 - CKA over the off-diagonal entries of an elites' CKA matrix (NaN for k < 2)."""
    cka = np.asarray(cka, dtype=np.float64)
    k = cka.shape[0]
    if k < 2:
        return float("nan")
    off = ~np.eye(k, dtype=bool)
    return float(np.mean(1.0 - cka[off]))
