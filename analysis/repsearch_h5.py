#!/usr/bin/env python3
"""Readers for repsearch's HDF5 files, and linear CKA.

Plain h5py + numpy, no repsearch code: what a user needs to read an archive (format
"repsearch-archive", written by `repsearch search`) or a results file (format "repsearch-results",
written by `repsearch learn` / `repsearch sgd`) into dicts of numpy arrays. Layouts: README.md
("HDF5 archive") and src/io/results.cpp. Any other file is refused with a FormatError that names
the path and the format found.

    import repsearch_h5 as rh
    a = rh.read_archive("runs/smoke/archive.h5")     # a["elites"]["heldout"], a["histories"][0]["best"], ...
    r = rh.read_results("runs/smoke/learn-3f.h5")     # r["accuracy"]["test"], r["trajectory"]["activations"], ...
    rh.linear_cka(x, y)                              # x: [n, d1], y: [n, d2]

and, with PyTorch (Debian: python3-torch), the networks and the data behind them:

    net = rh.load_network("runs/smoke/learn-3f.h5")  # torch.nn.Module; net(images in [0, 1]) -> logits
    elites = rh.load_elites("runs/smoke/archive.h5")  # per elite: z [n_s, d], indices, labels
    s = rh.load_split("runs/smoke/archive.h5")        # the images of S [n_s, C, H, W] float32 in [0, 1]
"""
import gzip
import os
import warnings
import zlib
from collections import OrderedDict

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


IDENTITY_GROUP = "/data/identity"
IDENTITY_SPLITS = ("search", "val", "heldout", "test", "train")


def _identity(f, path):
    """/data/identity as {"dataset", "data_dir", "splits": {name: (examples, labels_crc32, images_crc32)}},
    or None in files written before repsearch recorded it."""
    if IDENTITY_GROUP not in f:
        return None
    g = f[IDENTITY_GROUP]
    out = {"dataset": _text(g.attrs.get("dataset", "")), "data_dir": _text(g.attrs.get("data_dir", "")), "splits": {}}
    for name in g:
        v = _dataset(f, path, f"{IDENTITY_GROUP}/{name}")
        if np.shape(v) != (3,):
            raise FormatError(f"{path}: {IDENTITY_GROUP}/{name} has shape {np.shape(v)}, expected (3,)")
        out["splits"][name] = tuple(int(x) for x in v)
    return out


def split_identity(images, labels):
    """(examples, labels_crc32, images_crc32) of one split as repsearch records it: CRC-32 (zlib) of the
    labels as int64 little-endian and of the uint8 images [n, C, H, W], both in split order."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.ascontiguousarray(labels, dtype="<i8")
    return (len(labels), zlib.crc32(labels.tobytes()) & 0xFFFFFFFF, zlib.crc32(memoryview(images).cast("B")) & 0xFFFFFFFF)


def identity_differences(recorded, found, recorded_name, found_name):
    """Lines naming each split of `found` ({name: (examples, labels_crc32, images_crc32)}) that differs from
    `recorded`'s; "" when they agree (splits on one side only are not compared)."""
    out = ""
    for name, have in found.items():
        want = recorded.get(name)
        if want is None:
            continue
        if want[0] != have[0]:
            out += f"\n  split {name}: the numbers of examples differ ({want[0]} in {recorded_name}, {have[0]} in {found_name})"
            continue
        for i, what in ((1, "labels"), (2, "images")):
            if want[i] != have[i]:
                out += (f"\n  split {name}: {what} differ (CRC-32 0x{want[i]:08x} in {recorded_name}, "
                        f"0x{have[i]:08x} in {found_name})")
    return out


def read_archive(path, representations=False):
    """An archive as a dict:

    attrs       root attributes (provenance: config, config_sha256, git_commit, created, n_islands, ...)
    data        {"attrs", "search_indices", "search_labels", "val_indices", "heldout_indices"}
    data_identity  the data it was searched on (see _identity), None in archives written before it
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
        # Optional (archives written before them lack them): the elites' prediction disagreement on V
        # and how they were chosen.
        if "disagreement" in f["/elites"]:
            elites["disagreement"] = _dataset(f, path, "/elites/disagreement")
        if "selection" in f["/elites"].attrs:
            elites["selection"] = _text(f["/elites"].attrs["selection"])
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
        for i, h in enumerate(out["histories"]):  # optional column: NaN where absent or not computed
            name = f"/islands/{i}/history/disagreement"
            h["disagreement"] = np.asarray(f[name][()], dtype=float) if name in f else np.full(len(h["generation"]), np.nan)
        out["migrations"] = _columns(f, path, "/migrations", MIGRATION_COLUMNS)
        out["data_identity"] = _identity(f, path)
    return out


def read_results(path, activations=True, probabilities=True):
    """A results file (learn-<uid>.h5, sgd-<seed>.h5, sgd-full-<seed>.h5) as a dict:

    attrs        root attributes (kind "learn"|"sgd", seed, elite_uid, elite_rank, model, train_data,
                 archive_path, archive_sha256, config_sha256, model_bytes and model_crc32 of the network
                 file, ...)
    data_identity  the data trained and evaluated on (see _identity), None in files written before it
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
        if "variant" in f["/trajectory"].attrs:  # an example-space network (learn/sgd on an example archive)
            traj["example"] = _example_trajectory(f, path)
        out["trajectory"] = traj
        _group(f, path, "/predictions")
        if probabilities:
            out["predictions"] = {"test_probabilities": _dataset(f, path, "/predictions/test_probabilities")}
            if "test_labels" in f["predictions"]:  # written since the results carry labels
                out["predictions"]["test_labels"] = f["predictions/test_labels"][()]
        if "model" in f:  # written since results describe their network (absent in older files)
            out["model"] = _model(f, path)
        out["data_identity"] = _identity(f, path)
    return out


EXAMPLE_TRAJECTORY = ("heldout_rows", "heldout_accuracy", "cosine_distance", "collision_entropy_within",
                      "collision_entropy_between", "target_collision_entropy_within", "target_collision_entropy_between")


def _example_trajectory(f, path):
    """/trajectory of an example-space network: attrs variant ("all" | "skip-block0" | "end-to-end"),
    depth, selected_epoch, kl_weight; per epoch 0..E (0: before training) on the held-out searched examples:
    heldout_accuracy [E+1], cosine_distance, collision_entropy_within, collision_entropy_between [E+1, 3]
    (per block); the targets' own entropies [3]."""
    g = f["/trajectory"]
    out = {"variant": _text(g.attrs["variant"]), "depth": int(g.attrs["depth"]),
           "selected_epoch": int(g.attrs["selected_epoch"]), "kl_weight": float(g.attrs["kl_weight"]),
           "island": int(g.attrs["island"]) if "island" in g.attrs else -1}
    for name in EXAMPLE_TRAJECTORY:
        out[name] = _dataset(f, path, f"/trajectory/{name}")
    rows = len(out["heldout_accuracy"])
    for name in ("cosine_distance", "collision_entropy_within", "collision_entropy_between"):
        if out[name].shape != (rows, 3):
            raise FormatError(f"{path}: /trajectory/{name} has shape {out[name].shape}, expected ({rows}, 3)")
    return out


MODEL_ATTRS = ("arch", "cut", "classes", "logit_scale", "head")
MODEL_DATASETS = ("hidden", "channels", "input_shape", "normalisation_mean", "normalisation_std")


def _model(f, path):
    g = _group(f, path, "/model")
    out = {}
    for name in MODEL_ATTRS:
        if name not in g.attrs:
            raise FormatError(f"{path}: /model lacks attribute {name}")
        out[name] = _text(g.attrs[name])
    for name in MODEL_DATASETS:
        out[name] = _dataset(f, path, f"/model/{name}")
    if out["arch"] not in ("mlp", "cnn", "convgroups"):
        raise FormatError(f"{path}: /model arch must be mlp, cnn or convgroups, found '{out['arch']}'")
    if out["arch"] == "convgroups":
        if "depth" not in g.attrs or len(out["channels"]) != 3:
            raise FormatError(f"{path}: /model of a convgroups network needs attribute depth and 3 channels")
        out["depth"] = int(g.attrs["depth"])
        out["head_input"] = _text(g.attrs["head_input"]) if "head_input" in g.attrs else "raw"
    shape = tuple(int(v) for v in out["input_shape"])
    if len(shape) != 3 or any(v < 1 for v in shape):
        raise FormatError(f"{path}: /model/input_shape must be [C, H, W], found {list(shape)}")
    for name in ("normalisation_mean", "normalisation_std"):
        if out[name].shape != (shape[0],):
            raise FormatError(f"{path}: /model/{name} has shape {out[name].shape}, expected ({shape[0]},)")
    return out


# ---- networks (PyTorch) --------------------------------------------------------------------------------

def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the interpreter
        raise ImportError("repsearch_h5 networks need PyTorch (Debian: apt-get install python3-torch; "
                          "use /usr/bin/python3)") from e
    return torch


_MODULES = None


def _modules():
    """The torch.nn classes of load_network, defined on first use: reading files needs no PyTorch."""
    global _MODULES
    if _MODULES is not None:
        return _MODULES
    torch = _torch()
    nn = torch.nn

    class Standardise(nn.Module):
        """(x - mean[c]) / std[c] with the training set's per-channel statistics, as repsearch's
        Standardiser: x is the data set's images scaled to [0, 1] (uint8 images are divided by 255 here)."""

        def __init__(self, mean, std, input_shape):
            super().__init__()
            self.input_shape = tuple(int(v) for v in input_shape)
            self.register_buffer("mean", torch.as_tensor(np.asarray(mean, dtype=np.float32)))
            self.register_buffer("std", torch.as_tensor(np.asarray(std, dtype=np.float32)))

        def forward(self, x):
            if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
                raise ValueError(f"expected images [N, {', '.join(map(str, self.input_shape))}] (as the data set "
                                 f"stores them, scaled to [0, 1]), got shape {list(x.shape)}")
            if x.dtype == torch.uint8:
                x = x.to(self.mean.dtype) / 255.0
            x = x.to(self.mean.dtype)
            return (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)

    class Scale(nn.Module):
        """Logits times a constant: a ridge head's probabilities are softmax(beta * logits)."""

        def __init__(self, scale):
            super().__init__()
            self.register_buffer("scale", torch.tensor(float(scale), dtype=torch.float32))

        def forward(self, x):
            return x * self.scale

    class Network(nn.Module):
        """f = head(encoder(x)) as repsearch built it. encoder: standardisation, then repsearch's layers
        under their own indices (so the weights' names are those of the .pt file); its output is the
        cut layer [N, d]. head: the linear layer, then the logit scale; softmax(net(x)) are the
        probabilities the results file stores for the test set."""

        def __init__(self, spec):
            super().__init__()
            arch = spec["arch"]
            c, h, w = (int(v) for v in spec["input_shape"])
            cut, classes = int(spec["cut"]), int(spec["classes"])
            layers = [("normalise", Standardise(spec["normalisation_mean"], spec["normalisation_std"], (c, h, w)))]
            # Same order as Network::Network in src/core/models.cpp; the index is the C++ Sequential's.
            if arch == "mlp":
                mods = [nn.Flatten()]
                width = c * h * w
                for hidden in spec["hidden"]:
                    mods += [nn.Linear(width, int(hidden)), nn.ReLU()]
                    width = int(hidden)
                mods.append(nn.Linear(width, cut))
            elif arch == "cnn":
                mods = []
                for out in spec["channels"]:
                    mods += [nn.Conv2d(c, int(out), 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
                    c, h, w = int(out), h // 2, w // 2
                mods += [nn.Flatten(), nn.Linear(c * h * w, cut)]
            else:
                raise ValueError(f"unknown arch '{arch}' (expected mlp or cnn)")
            layers += [(str(i), m) for i, m in enumerate(mods)]
            self.encoder = nn.Sequential(OrderedDict(layers))
            self.head = nn.Sequential(OrderedDict([("0", nn.Linear(cut, classes)), ("scale", Scale(spec["logit_scale"]))]))
            self.spec = dict(spec)

        def forward(self, x):
            return self.head(self.encoder(x))

    class ConvGroup(nn.Module):
        """conv3x3 -> [maxpool2] -> BN -> GELU -> conv3x3 -> BN -> GELU (core/learner.cpp's ConvGroupImpl)."""

        def __init__(self, cin, cout, pool):
            super().__init__()
            self.pool = pool
            self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout, eps=1e-12, momentum=0.4)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout, eps=1e-12, momentum=0.4)

        def forward(self, x):
            h = self.conv1(x)
            if self.pool:
                h = nn.functional.max_pool2d(h, 2)
            h = nn.functional.gelu(self.bn1(h))
            return nn.functional.gelu(self.bn2(self.conv2(h)))

    class ConvGroupNet(nn.Module):
        """The example space's learned and SGD networks (arch "convgroups"): standardisation, the search
        network's frozen whitening conv + GELU, three blocks of `depth` ConvGroups (the first pools), a
        linear head without bias on the flattened last block. net(x) -> logits; net.blocks(x) -> the three
        block outputs, comparable with an example archive's /targets."""

        def __init__(self, spec):
            super().__init__()
            c, h, w = (int(v) for v in spec["input_shape"])
            widths, depth = [int(v) for v in spec["channels"]], int(spec["depth"])
            self.normalise = Standardise(spec["normalisation_mean"], spec["normalisation_std"], (c, h, w))
            self.whiten = nn.Module()
            k = 2  # the search network's whitening kernel; its weights come from the .pt (shape checked)
            self.whiten.register_buffer("weight", torch.zeros(2 * c * k * k, c, k, k))
            self.whiten.register_buffer("bias", torch.zeros(2 * c * k * k))
            cin, h, w = 2 * c * k * k, h - k + 1, w - k + 1
            self.blocks = nn.ModuleList()
            for width in widths:
                self.blocks.append(nn.Sequential(*[ConvGroup(cin if g == 0 else width, width, g == 0) for g in range(depth)]))
                cin, h, w = width, h // 2, w // 2
            self.head = nn.Linear(cin * h * w, int(spec["classes"]), bias=False)
            self.normalised_head = spec.get("head_input", "raw") == "normalised"
            self.spec = dict(spec)

        def block_outputs(self, x):
            h = nn.functional.gelu(nn.functional.conv2d(self.normalise(x), self.whiten.weight, self.whiten.bias))
            out = []
            for block in self.blocks:
                h = block(h)
                out.append(h)
            return out

        def forward(self, x):
            last = self.block_outputs(x)[-1]
            if self.normalised_head:  # per example over C, H, W, as core/learner.cpp's compared_output
                last = nn.functional.layer_norm(last, last.shape[1:], eps=1e-5)
            return self.head(last.flatten(1))

    _MODULES = {"Standardise": Standardise, "Scale": Scale, "Network": Network, "ConvGroupNet": ConvGroupNet}
    return _MODULES


def _network_files(path):
    """(results .h5, weights .pt) for a results file or its .pt: the other one shares its stem."""
    path = str(path)
    stem, ext = os.path.splitext(path)
    if ext == ".pt":
        results = stem + ".h5"
        if not os.path.isfile(results):
            raise FormatError(f"{path}: no results file {results} beside it (load_network reads the network's "
                              "description from the results file that learn/sgd write with the .pt)")
        return results, path
    weights = stem + ".pt"
    if not os.path.isfile(weights):
        # Moved results: the path learn/sgd wrote the weights to.
        recorded = read_results(path, activations=False, probabilities=False)["attrs"].get("model_path", "")
        if not recorded or not os.path.isfile(recorded):
            raise FormatError(f"{path}: no weights file {weights} beside it"
                              + (f" nor at {recorded}, where it was written" if recorded else ""))
        weights = recorded
    return path, weights


def _network_file_problem(weights, recorded):
    """Why `weights` is not the network file whose (bytes, crc32) its results record; "" when it is (or
    when the results predate the record)."""
    if recorded is None:
        return ""
    try:
        with open(weights, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"its network file {weights} cannot be read: {e.strerror}"
    found = (len(data), zlib.crc32(data) & 0xFFFFFFFF)
    if found != recorded:
        return (f"its network file {weights} is not the one written with it ({found[0]} bytes, CRC-32 {found[1]}; "
                f"the results record {recorded[0]} bytes, CRC-32 {recorded[1]}): a mismatched pair (a write "
                "interrupted between the two files, or one copied over); run learn/sgd again")
    return ""


def check_network_file(path):
    """"" when the network file of results `path` (learn-*.h5, sgd-*.h5) is the one written with it, else
    why not (a mismatched pair, or missing); results written before the checksum: ""."""
    try:
        results, weights = _network_files(path)
    except FormatError as e:
        return str(e)
    with _open(results, RESULTS_FORMAT) as f:
        recorded = (int(f.attrs["model_bytes"]), int(f.attrs["model_crc32"])) if "model_bytes" in f.attrs else None
    return _network_file_problem(weights, recorded)


def load_network(path, device="cpu"):
    """The network of a results file (learn-*.h5, sgd-*.h5) or of its .pt, as a torch.nn.Module in
    eval mode:

    net(x)          logits [N, classes] for images x [N, C, H, W] as the data set stores them scaled to
                    [0, 1] (float; uint8 is divided by 255). The training set's per-channel
                    standardisation is applied inside. softmax(net(x), 1) on the test images equals the
                    results file's predictions/test_probabilities (for a ridge head the logits include
                    the factor beta the probabilities were computed with: net.head.scale.scale).
    net.encoder(x)  the cut-layer activations [N, d], those the results trajectory records;
                    net.encoder.normalise alone standardises images as repsearch did.
    net.head        the linear head (and the logit scale): net(x) == net.head(net.encoder(x)).
    net.spec        the /model description (arch, hidden, channels, cut, classes, input_shape, ...).

    An example-space network (arch "convgroups", learn/sgd on an example archive) is a ConvGroupNet:
    net(x) logits as above, net.block_outputs(x) the three block outputs, the shapes of the archive's
    /targets/block0..2 (standardised inside, like the search's inputs).

    Needs the /model group (written by learn/sgd since it exists) and the .pt beside the results file
    (else where learn/sgd wrote it: the results' model_path). A .pt that is not the one written with the
    results (its size and CRC-32 differ from the results' model_bytes, model_crc32) is refused.
    """
    torch = _torch()
    results, weights = _network_files(path)
    with _open(results, RESULTS_FORMAT) as f:
        if "model" not in f:
            raise FormatError(f"{results}: no /model group: written by a repsearch that did not yet describe its "
                              "networks; run learn/sgd again to get a loadable network")
        spec = _model(f, results)
        spec["description"] = _text(f.attrs["model"]) if "model" in f.attrs else ""
        recorded = (int(f.attrs["model_bytes"]), int(f.attrs["model_crc32"])) if "model_bytes" in f.attrs else None
    problem = _network_file_problem(weights, recorded)
    if problem:
        raise FormatError(f"{results}: {problem}")
    net = _modules()["ConvGroupNet" if spec["arch"] == "convgroups" else "Network"](spec)
    try:
        stored = torch.jit.load(weights, map_location="cpu").state_dict()
    except (RuntimeError, ValueError, OSError) as e:
        raise FormatError(f"{weights}: not a repsearch model file (torch::save archive): {e}") from None
    expected = {k: v.shape for k, v in net.state_dict().items()
                if not k.startswith(("encoder.normalise.", "head.scale.", "normalise."))}
    found = {k: v.shape for k, v in stored.items()}
    if found != expected:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        shapes = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
        raise FormatError(f"{weights}: its weights do not fit the network {results} describes "
                          f"({spec['description'] or spec['arch']}): missing {missing}, unexpected {extra}, "
                          f"other shapes {[(k, list(found[k]), list(expected[k])) for k in shapes]}")
    net.load_state_dict(stored, strict=False)
    net.results_path, net.weights_path = results, weights
    return net.to(device).eval()


# ---- searched representations and the data behind them ----------------------------------------------

def nonfinite_elites(archive):
    """Ranks of the elites whose representation holds NaN or inf (read one elite at a time)."""
    bad = []
    with _open(archive, ARCHIVE_FORMAT) as f:
        reps = f["/elites/representations"] if "/elites/representations" in f else None
        if reps is None or not hasattr(reps, "shape") or len(reps.shape) != 3:
            raise FormatError(f"{archive}: missing dataset /elites/representations [k, n_s, d]")
        for i in range(reps.shape[0]):
            try:
                if not np.isfinite(reps[i]).all():
                    bad.append(i)
            except (OSError, ValueError) as e:
                raise FormatError(f"{archive}: cannot read /elites/representations[{i}]: {e}") from None
    return bad


def load_elites(archive, allow_nonfinite=False):
    """The elites of an archive, best first (the archive's order), as a list of dicts:

    rank, uid, fitness, heldout, island, generation   as in /elites
    z          [n_s, d] float32: the searched cut-layer representation, row i for example indices[i]
    indices    [n_s] int64: those examples' indices into the official training set (the search set S)
    labels     [n_s] int64: their labels
    finite     whether z holds only finite values

    An elite holding NaN or inf (a damaged archive, or a diverged search) is refused with a FormatError
    naming its rank and uid, unless allow_nonfinite (then "finite" flags it). A network regressed onto z
    (learn) is written as learn-<uid as hex>.h5 beside the archive.
    """
    a = read_archive(archive, representations=True)
    reps = a["elites"]["representations"]
    indices = a["data"]["search_indices"].astype(np.int64)
    labels = a["data"]["search_labels"].astype(np.int64)
    if reps.ndim != 3 or reps.shape[1] != len(indices) or len(labels) != len(indices):
        raise FormatError(f"{archive}: /elites/representations has shape {reps.shape}, expected "
                          f"[k, n_s={len(indices)}, d] with one label per search index")
    out = []
    for i in range(reps.shape[0]):
        out.append({"rank": i, "uid": int(a["elites"]["uid"][i]), "fitness": float(a["elites"]["fitness"][i]),
                    "heldout": float(a["elites"]["heldout"][i]), "island": int(a["elites"]["island"][i]),
                    "generation": int(a["elites"]["generation"][i]), "z": reps[i], "indices": indices,
                    "labels": labels, "finite": bool(np.isfinite(reps[i]).all())})
    bad = [e for e in out if not e["finite"]]
    if bad and not allow_nonfinite:
        names = ", ".join("%d (uid %x)" % (e["rank"], e["uid"]) for e in bad)
        raise FormatError(f"{archive}: elite(s) {names} hold "
                          "non-finite values (NaN or inf): the archive was damaged or the search diverged "
                          "(load_elites(..., allow_nonfinite=True) returns them flagged)")
    return out


# Where repsearch looks for each data set without --data-dir (src/io/dataset.cpp).
DEFAULT_DATA_DIRS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist", "mnist": "/usr/share/datasets/mnist",
                     "cifar10": "data/cifar-10-batches-bin", "cifar100": "data/cifar-100-binary"}
SPLITS = ("search", "val", "heldout", "test")


def _read_bytes(path):
    """A file's content, gunzipped when it starts with the gzip magic (as repsearch: by content, not name)."""
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def read_idx(path):
    """An IDX file of unsigned bytes (plain or gzip) as a uint8 array with the file's dims."""
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise FormatError(f"{path}: not an IDX file of unsigned bytes (expected magic 00 00 08 <ndims>)")
    ndims = data[3]
    header = 4 + 4 * ndims
    dims = tuple(int(v) for v in np.frombuffer(data, dtype=">u4", count=ndims, offset=4)) if ndims else ()
    if len(data) != header + int(np.prod(dims)):
        raise FormatError(f"{path}: IDX dims {list(dims)} need {header + int(np.prod(dims))} bytes, found {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_cifar(path, cifar100):
    """CIFAR binary records (1 label byte, or coarse + fine for CIFAR-100, then 3072 channel-major bytes):
    (images [N, 3, 32, 32] uint8, fine labels [N] int64)."""
    data = _read_bytes(path)
    record = 3074 if cifar100 else 3073
    if len(data) == 0 or len(data) % record:
        raise FormatError(f"{path}: {len(data)} bytes is not a whole number of {record}-byte CIFAR records")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    return rows[:, record - 3072:].reshape(-1, 3, 32, 32), rows[:, record - 3073].astype(np.int64)


def _find(dir_, alternatives):
    for name in alternatives:
        p = os.path.join(dir_, name)
        if os.path.isfile(p):
            return p
    raise FormatError(f"data set files: expected {' or '.join(os.path.join(dir_, n) for n in alternatives)}, "
                      f"found neither (pass data_dir)")


def read_dataset(name, data_dir=None):
    """A data set as repsearch reads it: {"train_images" [N, C, H, W] uint8, "train_labels" [N] int64,
    "test_images", "test_labels", "classes", "data_dir"}. IDX (fashion-mnist, mnist; plain or gzip) and
    CIFAR binary (cifar10, cifar100) files, under data_dir or repsearch's default directory."""
    if name not in DEFAULT_DATA_DIRS:
        raise FormatError(f"data set '{name}': unknown; expected one of {', '.join(DEFAULT_DATA_DIRS)}")
    d = data_dir or DEFAULT_DATA_DIRS[name]
    if not os.path.isdir(d):
        raise FormatError(f"data set '{name}': no directory {d} (pass data_dir)")
    out = {"data_dir": d}
    if name in ("fashion-mnist", "mnist"):
        for part, prefix in (("train", "train"), ("test", "t10k")):
            images = read_idx(_find(d, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images-idx3-ubyte.gz"]))
            labels = read_idx(_find(d, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels-idx1-ubyte.gz"]))
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise FormatError(f"data set '{name}' in {d}: {part} images {images.shape} and labels "
                                  f"{labels.shape} do not pair up")
            out[f"{part}_images"] = images[:, None]
            out[f"{part}_labels"] = labels.astype(np.int64)
        out["classes"] = 10
    else:
        c100 = name == "cifar100"
        train = ["train.bin"] if c100 else [f"data_batch_{i}.bin" for i in range(1, 6)]
        parts = [read_cifar(_find(d, [f]), c100) for f in train]
        out["train_images"] = np.concatenate([p[0] for p in parts])
        out["train_labels"] = np.concatenate([p[1] for p in parts])
        out["test_images"], out["test_labels"] = read_cifar(
            _find(d, ["test.bin" if c100 else "test_batch.bin"]), c100)
        out["classes"] = 100 if c100 else 10
    return out


def standardisation(train_images):
    """Per-channel mean and std [C] float32 of uint8 training images scaled to [0, 1] (population std),
    as repsearch's fit_standardiser; exact integer sums, so no float64 copy of the data set."""
    x = np.asarray(train_images)
    count = x.shape[0] * x.shape[2] * x.shape[3]
    sums = np.array([x[:, c].sum(dtype=np.int64) for c in range(x.shape[1])], dtype=np.float64)
    squares = np.array([np.einsum("ijk,ijk->", x[:, c].astype(np.int64), x[:, c].astype(np.int64))
                        for c in range(x.shape[1])], dtype=np.float64)
    mean = sums / 255.0 / count
    var = np.maximum(squares / 255.0 ** 2 / count - mean ** 2, 0.0)
    return mean.astype(np.float32), np.maximum(np.sqrt(var), 1e-8).astype(np.float32)


def _check_identity(archive, identity, ds, split, images, labels):
    """Refuses (FormatError naming the split, the archive and the data directory) data whose split or
    training set (which gives the standardisation) differs from what the archive records; warns for
    archives written before the record."""
    source = os.path.abspath(ds["data_dir"])
    if identity is None:
        warnings.warn(f"{archive} records no data identity (written by an older repsearch): the data in {source} "
                      "is not checked against it", stacklevel=3)
        return
    found = {split: split_identity(images, labels), "train": split_identity(ds["train_images"], ds["train_labels"])}
    diffs = identity_differences(identity["splits"], found, archive, source)
    if diffs:
        raise FormatError(f"{archive}: the data in {source} is not the data it was searched on "
                          f"({identity['dataset']} in {identity['data_dir']}):{diffs}")


def load_split(archive, data_dir=None, split="search"):
    """The images of one split of an archive's search, as a dict:

    images    [n, C, H, W] float32 in [0, 1]: the data set's uint8 images / 255, unstandardised (what
              load_network's networks take)
    labels    [n] int64;  indices [n] int64 into the official training set (test: into the test set)
    mean, std [C] float32: the training set's per-channel statistics repsearch standardises with
    split, dataset, data_dir

    split: "search" (S, row i matches load_elites' z row i), "val" (V), "heldout" (H) or "test" (the
    official test set, the order of the results files' predictions). The data set and its directory
    come from the archive (data_dir overrides the directory). Reads IDX (Fashion-MNIST, MNIST) and
    CIFAR-10/100 binary files in numpy. The split and the training set are checked against the data
    identity the archive records (a FormatError names the split and both directories; archives written
    before it: a warning, and for S the labels are checked against the archive's).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got '{split}'")
    a = read_archive(archive)
    name = a["data"]["attrs"].get("dataset", "")
    ds = read_dataset(name, data_dir or a["data"]["attrs"].get("data_dir") or None)
    if split == "test":
        images, labels = ds["test_images"], ds["test_labels"]
        indices = np.arange(len(labels), dtype=np.int64)
    else:
        indices = a["data"][f"{split}_indices"].astype(np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(ds["train_labels"])):
            raise FormatError(f"{archive}: {split} indices reach {indices.max()}, but {ds['data_dir']} holds "
                              f"{len(ds['train_labels'])} training images (another data set?)")
        images, labels = ds["train_images"][indices], ds["train_labels"][indices]
    _check_identity(archive, a.get("data_identity"), ds, split, images, labels)
    if split == "search" and not np.array_equal(labels, a["data"]["search_labels"].astype(np.int64)):
        raise FormatError(f"{archive}: the labels of S in {ds['data_dir']} differ from those the archive "
                          "stores (another data set or version?)")
    mean, std = standardisation(ds["train_images"])
    return {"images": images.astype(np.float32) / np.float32(255.0), "labels": labels, "indices": indices,
            "mean": mean, "std": std, "split": split, "dataset": name, "data_dir": ds["data_dir"]}


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
