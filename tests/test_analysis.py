#!/usr/bin/env python3
"""analysis/ end to end: a real smoke run (search, learn, sgd) through analysis/report.py, plus unit
tests of analysis/repsearch_h5.py (readers, linear CKA).

    /usr/bin/python3 tests/test_analysis.py [REPSEARCH_BINARY [REPSEARCH_SOURCE_DIR]] [unittest options]

The binary and source directory come from the arguments or the environment (REPSEARCH_BINARY,
REPSEARCH_SOURCE_DIR; defaults: <source>/build/repsearch and this file's parent directory). The real
Fashion-MNIST is read from REPSEARCH_FMNIST_DIR when set (else the binary's default). Run with an
interpreter that has h5py, numpy and matplotlib (Debian: /usr/bin/python3); without them, or without
the data set, the test fails (launch/setup.sh installs them). REPSEARCH_KEEP_TEST_DIR=1 keeps the
temporary run directory and prints where it is.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest


def _arguments():
    # Up to two leading paths (binary, source dir); everything after goes to unittest (options, test names).
    args = sys.argv[1:]
    positional = []
    while args and len(positional) < 2 and not args[0].startswith("-") and os.path.exists(args[0]):
        positional.append(args.pop(0))
    rest = args
    here = os.path.dirname(os.path.abspath(__file__))
    source = os.environ.get("REPSEARCH_SOURCE_DIR") or (positional[1] if len(positional) > 1 else None) \
        or os.path.dirname(here)
    binary = os.environ.get("REPSEARCH_BINARY") or (positional[0] if positional else None) \
        or os.path.join(source, "build", "repsearch")
    return os.path.abspath(binary), os.path.abspath(source), rest


BINARY, SOURCE, UNITTEST_ARGS = _arguments()

try:
    import numpy as np
    import h5py
    import matplotlib  # noqa: F401  (report.py needs it)
except ImportError as e:
    sys.stderr.write(f"test_analysis.py: FAILED: {e} (run with an interpreter that has h5py, numpy and "
                     "matplotlib, e.g. Debian's /usr/bin/python3; launch/setup.sh installs them)\n")
    sys.exit(1)

sys.path.insert(0, os.path.join(SOURCE, "analysis"))
import repsearch_h5 as rh  # noqa: E402

REPORT = os.path.join(SOURCE, "analysis", "report.py")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_cmd(args, cwd, timeout=600):
    p = subprocess.run(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout[-3000:]}\n"
                             f"stderr:\n{p.stderr[-3000:]}")
    return p


def report(*args, cwd=None):
    return subprocess.run([sys.executable, REPORT, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=600)


def hsic_cka(x, y):
    """Linear CKA written independently of repsearch_h5: centred Gram matrices, HSIC form
    tr(K_c L_c) / sqrt(tr(K_c K_c) tr(L_c L_c)), K = X X^T."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k = h @ (x @ x.T) @ h
    l = h @ (y @ y.T) @ h
    return float(np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l)))


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


class LinearCKA(unittest.TestCase):
    def test_identical_is_one(self):
        x = np.random.default_rng(0).normal(size=(50, 7))
        self.assertAlmostEqual(rh.linear_cka(x, x), 1.0, places=12)

    def test_orthogonal_and_scale_invariance(self):
        rng = np.random.default_rng(1)
        x = rng.normal(size=(40, 6))
        y = rng.normal(size=(40, 5)) + x[:, :5]
        q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
        self.assertAlmostEqual(rh.linear_cka(x, x @ q), 1.0, places=12)
        self.assertAlmostEqual(rh.linear_cka(x @ q, y), rh.linear_cka(x, y), places=12)
        self.assertAlmostEqual(rh.linear_cka(3.5 * x + 2.0, y), rh.linear_cka(x, y), places=12)

    def test_hand_value(self):
        self.assertAlmostEqual(rh.linear_cka([1, 2, 3, 4], [1, 3, 2, 4]), 0.64, places=12)
        self.assertAlmostEqual(hsic_cka([1, 2, 3, 4], [1, 3, 2, 4]), 0.64, places=12)

    def test_agrees_with_gram_form_and_matrix(self):
        rng = np.random.default_rng(2)
        xs = rng.normal(size=(3, 30, 4)).astype(np.float32)
        ys = rng.normal(size=(2, 30, 6)).astype(np.float32)
        m = rh.cka_matrix(xs, ys)
        self.assertEqual(m.shape, (3, 2))
        for i in range(3):
            for j in range(2):
                self.assertAlmostEqual(m[i, j], rh.linear_cka(xs[i], ys[j]), places=12)
                self.assertAlmostEqual(m[i, j], hsic_cka(xs[i], ys[j]), places=10)

    def test_constant_is_nan_and_shapes_checked(self):
        self.assertTrue(np.isnan(rh.linear_cka(np.ones((5, 2)), np.arange(10.0).reshape(5, 2))))
        with self.assertRaises(ValueError):
            rh.linear_cka(np.zeros((5, 2)), np.zeros((4, 2)))

    def test_elite_diversity(self):
        cka = np.array([[1.0, 0.8, 0.6], [0.8, 1.0, 0.4], [0.6, 0.4, 1.0]])
        self.assertAlmostEqual(rh.elite_diversity(cka), 1 - 0.6, places=12)
        self.assertTrue(np.isnan(rh.elite_diversity(np.ones((1, 1)))))


class SmokeRunReport(unittest.TestCase):
    """One smoke run (search + learn all elites + sgd seeds 0..1), a second search-only run, a copy of an
    SGD result relabelled as trained on full data; report.py over them."""

    @classmethod
    def setUpClass(cls):
        if not os.path.isfile(BINARY) or not os.access(BINARY, os.X_OK):
            raise AssertionError(f"no repsearch binary at {BINARY} (pass it as the first argument or "
                                 "REPSEARCH_BINARY)")
        cls.tmp = tempfile.mkdtemp(prefix="repsearch-analysis-")
        cls.t0 = time.time()
        config = os.path.join(SOURCE, "configs", "smoke.ini")
        data = ["--data-dir", os.environ["REPSEARCH_FMNIST_DIR"]] if os.environ.get("REPSEARCH_FMNIST_DIR") else []
        cls.run1 = os.path.join(cls.tmp, "smoke")
        cls.run2 = os.path.join(cls.tmp, "short")
        cls.run3 = os.path.join(cls.tmp, "fullref")
        run_cmd([BINARY, "search", "--config", config, *data, "--generations", "6", "--threads", "1",
                 "--out", cls.run1], cls.tmp)
        run_cmd([BINARY, "learn", "--archive", os.path.join(cls.run1, "archive.h5"), "--elite", "all",
                 "--epochs", "3", "--threads", "1"], cls.tmp)
        run_cmd([BINARY, "sgd", "--config", config, *data, "--seeds", "0..1", "--epochs", "3", "--threads", "1",
                 "--out", cls.run1], cls.tmp)
        run_cmd([BINARY, "search", "--config", config, *data, "--generations", "2", "--threads", "1",
                 "--out", cls.run2], cls.tmp)
        os.makedirs(cls.run3)
        shutil.copy(os.path.join(cls.run1, "sgd-1.h5"), os.path.join(cls.run3, "sgd-full-1.h5"))
        with h5py.File(os.path.join(cls.run3, "sgd-full-1.h5"), "r+") as f:
            f.attrs["train_data"] = "full"
        cls.t_data = time.time() - cls.t0
        cls.out = os.path.join(cls.tmp, "report")
        t = time.time()
        cls.proc = report(cls.run1, cls.run2, cls.run3, "--out", cls.out, "--title", "analysis test", cwd=cls.tmp)
        cls.t_report = time.time() - t
        cls.md = ""
        if cls.proc.returncode == 0:
            with open(os.path.join(cls.out, "report.md")) as f:
                cls.md = f.read()
            with open(os.path.join(cls.out, "report.json")) as f:
                cls.json = json.load(f)
        sys.stderr.write(f"[test_analysis] runs generated in {cls.t_data:.1f} s, report.py took "
                         f"{cls.t_report:.1f} s\n")

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("REPSEARCH_KEEP_TEST_DIR"):
            sys.stderr.write(f"[test_analysis] kept {cls.tmp}\n")
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.assertEqual(self.proc.returncode, 0, f"report.py failed:\n{self.proc.stdout}\n{self.proc.stderr}")

    def section(self, heading):
        m = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^#{{1,3}} |\Z)", self.md, re.M | re.S)
        self.assertIsNotNone(m, f"no section '{heading}' in report.md")
        return m.group(1)

    def test_report_names_runs_and_provenance(self):
        self.assertTrue(self.md.startswith("# analysis test\n"))
        with h5py.File(os.path.join(self.run1, "archive.h5"), "r") as f:
            sha = f.attrs["config_sha256"]
            sha = sha.decode() if isinstance(sha, bytes) else sha
        self.assertIn(sha, self.md)
        for d in (self.run1, self.run2, self.run3):
            self.assertIn(d, self.md)
        self.assertIn("## What the figures show", self.md)
        self.assertIn("held-out score of the island bests".lower(), self.md.lower())

    def test_figures_exist_are_pngs_and_are_embedded(self):
        expected = {"fitness-smoke.png", "diversity-smoke.png", "accuracy-smoke.png", "cka-smoke.png",
                    "fitness-short.png", "diversity-short.png", "accuracy-fullref.png", "scaling.png",
                    "ensembles-smoke.png"}
        self.assertEqual(set(self.json["figures"]), expected)
        for name in expected:
            path = os.path.join(self.out, name)
            self.assertIn(f"]({name})", self.md, f"{name} not embedded in report.md")
            self.assertTrue(os.path.isfile(path), name)
            self.assertGreater(os.path.getsize(path), 20000, f"{name} is suspiciously small")
            size = png_size(path)
            self.assertIsNotNone(size, f"{name} is not a PNG")
            self.assertGreaterEqual(size[0], 600, name)
            self.assertGreaterEqual(size[1], 400, name)

    def test_accuracy_table_has_one_row_per_learned_network(self):
        learned = sorted(f for f in os.listdir(self.run1) if re.fullmatch(r"learn-[0-9a-f]+\.h5", f))
        with h5py.File(os.path.join(self.run1, "archive.h5"), "r") as f:
            k = f["elites/fitness"].shape[0]
        self.assertEqual(len(learned), k)
        smoke = self.section("### smoke")
        rows = re.findall(r"^\| (learn-[0-9a-f]+\.h5) \|", smoke, re.M)
        self.assertEqual(sorted(rows), learned)
        self.assertEqual(len(re.findall(r"^\| sgd-[01]\.h5 \|", smoke, re.M)), 2)
        with open(os.path.join(self.run1, "learn-summary.json")) as f:
            ensemble = json.load(f)["ensemble_test"]
        self.assertRegex(smoke, rf"\*\*learn: ensemble\*\* \(mean softmax\) \|.*\| {ensemble:.4f} \|")
        # the search-only run has no results: reported as missing
        short = self.section("### short")
        self.assertIn("Missing", short)
        self.assertNotRegex(short, r"^\| learn-", "no learn rows for a run without results")
        self.assertIn("sgd-full-1.h5", self.section("### fullref"))

    def test_accuracy_numbers_match_files(self):
        nets = {n["file"]: n for n in self.json["runs"][0]["networks"]}
        for name, entry in nets.items():
            with h5py.File(os.path.join(self.run1, name), "r") as f:
                self.assertEqual(entry["accuracy"]["test"], float(f["accuracy"].attrs["test"]))
        # agreement from the stored probabilities, computed here
        files = [n["file"] for n in self.json["runs"][0]["networks"]]
        with h5py.File(os.path.join(self.run1, files[0]), "r") as a, h5py.File(os.path.join(self.run1, files[1]), "r") as b:
            agree = float(np.mean(np.argmax(a["predictions/test_probabilities"][()], 1)
                                  == np.argmax(b["predictions/test_probabilities"][()], 1)))
        self.assertAlmostEqual(self.json["runs"][0]["agreement"][0][1], agree, places=12)

    def test_ensemble_curves_match_files(self):
        # m = 1: the first network alone; m = all: the ensemble; both recomputed here from the files
        run = self.json["runs"][0]
        learned = sorted([n["file"] for n in run["networks"] if n["file"].startswith("learn-")],
                         key=lambda f: int(h5py.File(os.path.join(self.run1, f), "r").attrs["elite_rank"]))
        curve = run["ensemble_curves"]["learn"]
        self.assertEqual(len(curve), len(learned))
        probs, labels = [], None
        for name in learned:
            with h5py.File(os.path.join(self.run1, name), "r") as f:
                probs.append(f["predictions/test_probabilities"][()])
                labels = f["predictions/test_labels"][()]
        self.assertAlmostEqual(curve[0], float(np.mean(probs[0].argmax(1) == labels)), places=12)
        self.assertAlmostEqual(curve[-1], float(np.mean(np.mean(probs, axis=0).argmax(1) == labels)), places=12)
        dis = np.mean([np.mean(probs[i].argmax(1) != probs[j].argmax(1))
                       for i in range(len(probs)) for j in range(i + 1, len(probs))])
        self.assertAlmostEqual(run["disagreement"]["learn"], float(dis), places=12)

    def test_cka_heatmap_matches_independent_computation(self):
        ck = self.json["runs"][0]["cka"]
        with h5py.File(os.path.join(self.run1, ck["learn_file"]), "r") as f:
            self.assertEqual(int(f.attrs["elite_rank"]), 0)
            learn = f["trajectory/activations"][()]
            learn_steps = f["trajectory/steps"][()]
            probes = f["trajectory/probe_indices"][()]
        with h5py.File(os.path.join(self.run1, ck["sgd_file"]), "r") as f:
            self.assertEqual(int(f.attrs["seed"]), 0)
            sgd = f["trajectory/activations"][()]
            sgd_steps = f["trajectory/steps"][()]
            np.testing.assert_array_equal(f["trajectory/probe_indices"][()], probes)
        m = np.array(ck["matrix"], dtype=np.float64)
        self.assertEqual(m.shape, (len(learn_steps), len(sgd_steps)))
        self.assertEqual(ck["learn_steps"], learn_steps.tolist())
        self.assertEqual(ck["sgd_steps"], sgd_steps.tolist())
        i, j = len(learn_steps) // 2, len(sgd_steps) - 1
        self.assertLess(abs(m[i, j] - hsic_cka(learn[i], sgd[j])), 1e-9)
        self.assertLess(abs(ck["self_learn"][0] - hsic_cka(learn[0], learn[-1])), 1e-9)
        self.assertAlmostEqual(ck["self_sgd"][-1], 1.0, places=9)

    def test_search_numbers_match_archive(self):
        s = self.json["runs"][0]["search"]
        with h5py.File(os.path.join(self.run1, "archive.h5"), "r") as f:
            n = f.attrs["n_islands"]
            total = sum(int(f[f"islands/{i}/history/evaluations"][-1]) for i in range(n))
            heldout = max(float(f[f"islands/{i}/history/heldout"][-1]) for i in range(n))
            cka = f["elites/cka"][()]
        self.assertEqual(s["evaluations"][-1], total)
        self.assertAlmostEqual(s["heldout_max"][-1], heldout, places=12)
        k = cka.shape[0]
        self.assertAlmostEqual(s["elite_diversity"], float(np.sum(1 - cka) / (k * (k - 1))), places=12)
        self.assertIn(f"over {total} fitness evaluations", self.md)

    def test_empty_directory_exits_2(self):
        empty = tempfile.mkdtemp(dir=self.tmp)
        p = report(empty, "--out", os.path.join(self.tmp, "report-empty"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("no archive.h5", p.stderr)
        self.assertIn(empty, p.stderr)
        p = report(os.path.join(self.tmp, "does-not-exist"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("no such run directory", p.stderr)

    def test_foreign_file_exits_2_naming_it(self):
        bad = tempfile.mkdtemp(dir=self.tmp)
        shutil.copy(os.path.join(self.run1, "checkpoint.h5"), os.path.join(bad, "learn-0.h5"))
        p = report(bad, "--out", os.path.join(self.tmp, "report-bad"))
        self.assertEqual(p.returncode, 2)
        self.assertIn(os.path.join(bad, "learn-0.h5"), p.stderr)
        self.assertIn("repsearch-checkpoint", p.stderr)
        with open(os.path.join(bad, "learn-0.h5"), "wb") as f:
            f.write(b"not hdf5 at all")
        p = report(bad, "--out", os.path.join(self.tmp, "report-bad"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("not a readable HDF5 file", p.stderr)

    def test_damaged_files_exit_2_saying_damaged(self):
        # An elite holding NaN: learn refuses it, so the report must not present the run as sound.
        bad = tempfile.mkdtemp(dir=self.tmp)
        archive = os.path.join(bad, "archive.h5")
        shutil.copy(os.path.join(self.run1, "archive.h5"), archive)
        with h5py.File(archive, "r+") as f:
            f["/elites/representations"][2, 0, 0] = np.nan
        p = report(bad, "--out", os.path.join(self.tmp, "report-nan"))
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn(f"{archive}: DAMAGED archive: elite(s) 2 (rank", p.stderr)
        # A group missing: named.
        shutil.copy(os.path.join(self.run1, "archive.h5"), archive)
        with h5py.File(archive, "r+") as f:
            del f["/migrations"]
        p = report(bad, "--out", os.path.join(self.tmp, "report-nogroup"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("missing group /migrations", p.stderr)
        # A results file beside another network's weights (same shapes: they would load silently).
        pair = tempfile.mkdtemp(dir=self.tmp)
        shutil.copy(os.path.join(self.run1, "sgd-0.h5"), os.path.join(pair, "sgd-0.h5"))
        shutil.copy(os.path.join(self.run1, "sgd-1.pt"), os.path.join(pair, "sgd-0.pt"))
        p = report(pair, "--out", os.path.join(self.tmp, "report-pair"))
        self.assertEqual(p.returncode, 2)
        self.assertIn(os.path.join(pair, "sgd-0.h5") + ": DAMAGED results", p.stderr)
        self.assertIn("mismatched pair", p.stderr)
        # The matching pair passes.
        shutil.copy(os.path.join(self.run1, "sgd-0.pt"), os.path.join(pair, "sgd-0.pt"))
        self.assertEqual(report(pair, "--out", os.path.join(self.tmp, "report-pair")).returncode, 0)

    def test_readers(self):
        a = rh.read_archive(os.path.join(self.run1, "archive.h5"), representations=True)
        self.assertEqual(a["attrs"]["format"], "repsearch-archive")
        k, n_s, d = a["elites"]["representations"].shape
        self.assertEqual(len(a["data"]["search_indices"]), n_s)
        self.assertEqual(a["elites"]["cka"].shape, (k, k))
        self.assertEqual(len(a["histories"]), a["attrs"]["n_islands"])
        self.assertAlmostEqual(rh.linear_cka(a["elites"]["representations"][0], a["elites"]["representations"][1]),
                               a["elites"]["cka"][0, 1], places=4)
        r = rh.read_results(os.path.join(self.run1, "sgd-0.h5"))
        self.assertEqual(r["attrs"]["kind"], "sgd")
        self.assertEqual(r["trajectory"]["activations"].shape[0], len(r["trajectory"]["steps"]))
        self.assertEqual(r["predictions"]["test_probabilities"].shape[1], 10)
        with self.assertRaises(rh.FormatError) as e:
            rh.read_archive(os.path.join(self.run1, "sgd-0.h5"))
        self.assertIn("sgd-0.h5", str(e.exception))
        self.assertIn("found format 'repsearch-results'", str(e.exception))
        with self.assertRaises(rh.FormatError) as e:
            rh.read_results(os.path.join(self.run1, "checkpoint.h5"))
        self.assertIn("repsearch-checkpoint", str(e.exception))
        self.assertEqual(rh.read_format(os.path.join(self.run1, "checkpoint.h5")), "repsearch-checkpoint")


if __name__ == "__main__":
    fmnist = os.environ.get("REPSEARCH_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
    if not os.path.isdir(fmnist):
        sys.stderr.write(f"test_analysis.py: FAILED: no Fashion-MNIST at {fmnist} (Debian: dataset-fashion-mnist, "
                         "or set REPSEARCH_FMNIST_DIR)\n")
        sys.exit(1)
    t0 = time.time()
    result = unittest.main(argv=[sys.argv[0], *UNITTEST_ARGS], exit=False, verbosity=2).result
    sys.stderr.write(f"[test_analysis] total {time.time() - t0:.1f} s\n")
    sys.exit(0 if result.wasSuccessful() else 1)
