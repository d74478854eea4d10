#!/usr/bin/env python3
"""analysis/repsearch_h5.py from PyTorch: networks rebuilt from results files must reproduce the C++
forward pass, elites and splits must line up, and the README's "From Python" example must run.

    /usr/bin/python3 tests/test_python.py [REPSEARCH_BINARY [REPSEARCH_SOURCE_DIR]] [unittest options]

Runs a real smoke search, learn (MLP with a ridge head and with a CE head, a tiny CNN) and sgd (MLP,
CNN) on the real Fashion-MNIST (REPSEARCH_FMNIST_DIR, default /usr/share/datasets/fashion-mnist).
Without numpy, h5py, torch or the data set the test FAILS: CI installs them (launch/setup.sh).
REPSEARCH_KEEP_TEST_DIR=1 keeps the temporary run directory.
"""
import glob
import gzip
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

T0 = time.time()


def _arguments():
    args = sys.argv[1:]
    positional = []
    while args and len(positional) < 2 and not args[0].startswith("-") and os.path.exists(args[0]):
        positional.append(args.pop(0))
    here = os.path.dirname(os.path.abspath(__file__))
    source = os.environ.get("REPSEARCH_SOURCE_DIR") or (positional[1] if len(positional) > 1 else None) \
        or os.path.dirname(here)
    binary = os.environ.get("REPSEARCH_BINARY") or (positional[0] if positional else None) \
        or os.path.join(source, "build", "repsearch")
    return os.path.abspath(binary), os.path.abspath(source), args


BINARY, SOURCE, UNITTEST_ARGS = _arguments()
FMNIST = os.environ.get("REPSEARCH_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")

try:
    import numpy as np
    import h5py
    import torch
except ImportError as e:
    sys.stderr.write(f"test_python.py: FAILED: {e} (run with an interpreter that has numpy, h5py and torch: "
                     "Debian's /usr/bin/python3 with python3-h5py and python3-torch, see launch/setup.sh)\n")
    sys.exit(1)

sys.path.insert(0, os.path.join(SOURCE, "analysis"))
import repsearch_h5 as rh  # noqa: E402

torch.set_num_threads(1)
ATOL = 1e-4  # float32 forward passes in two builds of the same ATen: observed differences ~1e-6
BETA = 10.0  # the fitness temperature of configs/smoke.ini (the default)
EXAMPLE_BEGIN, EXAMPLE_END = "<!-- from-python-example -->", "<!-- /from-python-example -->"


def run_cmd(args, cwd):
    p = subprocess.run(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout[-3000:]}\n"
                             f"stderr:\n{p.stderr[-3000:]}")
    return p


def steps(epochs, n, batch):
    return epochs * math.ceil(n / batch)


class Readers(unittest.TestCase):
    """The numpy data readers on small files in the exact formats."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="repsearch-python-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, name, data, gz=False):
        path = os.path.join(self.dir, name)
        with (gzip.open if gz else open)(path, "wb") as f:
            f.write(data)
        return path

    def test_idx_plain_and_gzip_by_content(self):
        images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
        raw = bytes([0, 0, 8, 3]) + np.array([2, 3, 4], dtype=">u4").tobytes() + images.tobytes()
        np.testing.assert_array_equal(rh.read_idx(self.write("plain", raw)), images)
        np.testing.assert_array_equal(rh.read_idx(self.write("no-suffix", raw, gz=True)), images)
        with self.assertRaises(rh.FormatError) as e:
            rh.read_idx(self.write("short", raw[:-1]))
        self.assertIn("need 40 bytes, found 39", str(e.exception))
        with self.assertRaises(rh.FormatError) as e:
            rh.read_idx(self.write("float", bytes([0, 0, 0x0D, 1, 0, 0, 0, 0])))
        self.assertIn("not an IDX file of unsigned bytes", str(e.exception))

    def test_cifar_records_channel_major_fine_labels(self):
        pixels = np.random.default_rng(0).integers(0, 256, size=(3, 3, 32, 32), dtype=np.uint8)
        c10 = b"".join(bytes([7 - i]) + pixels[i].tobytes() for i in range(3))
        images, labels = rh.read_cifar(self.write("c10.bin", c10), cifar100=False)
        np.testing.assert_array_equal(images, pixels)
        np.testing.assert_array_equal(labels, [7, 6, 5])
        c100 = b"".join(bytes([1, 90 + i]) + pixels[i].tobytes() for i in range(3))
        images, labels = rh.read_cifar(self.write("c100.bin", c100), cifar100=True)
        np.testing.assert_array_equal(images, pixels)
        np.testing.assert_array_equal(labels, [90, 91, 92])
        with self.assertRaises(rh.FormatError):
            rh.read_cifar(self.write("cut.bin", c10[:-5]), cifar100=False)

    def test_unknown_data_set_and_missing_files(self):
        with self.assertRaises(rh.FormatError) as e:
            rh.read_dataset("svhn", self.dir)
        self.assertIn("fashion-mnist, mnist, cifar10, cifar100", str(e.exception))
        with self.assertRaises(rh.FormatError) as e:
            rh.read_dataset("mnist", self.dir)
        self.assertIn("train-images-idx3-ubyte.gz", str(e.exception))

    def test_standardisation_is_population_statistics_of_images_in_0_1(self):
        x = np.random.default_rng(1).integers(0, 256, size=(50, 3, 4, 5), dtype=np.uint8)
        mean, std = rh.standardisation(x)
        f = x.astype(np.float64) / 255.0
        np.testing.assert_allclose(mean, f.mean(axis=(0, 2, 3)), rtol=1e-6)
        np.testing.assert_allclose(std, f.std(axis=(0, 2, 3)), rtol=1e-6)
        self.assertEqual(mean.dtype, np.float32)


class Networks(unittest.TestCase):
    """One smoke search; networks learned and trained by the real binary; rebuilt in PyTorch."""

    @classmethod
    def setUpClass(cls):
        if not os.access(BINARY, os.X_OK):
            raise AssertionError(f"no repsearch binary at {BINARY} (pass it as the first argument)")
        cls.tmp = tempfile.mkdtemp(prefix="repsearch-python-")
        t = time.time()
        run = cls.run_dir = os.path.join(cls.tmp, "runs", "fashion_mnist")
        config = os.path.join(SOURCE, "configs", "smoke.ini")
        common = ["--threads", "1", "--batch", "64"]
        archive = cls.archive = os.path.join(run, "archive.h5")
        run_cmd([BINARY, "search", "--config", config, "--data-dir", FMNIST, "--generations", "6", "--threads", "1",
                 "--out", run], cls.tmp)
        cls.elites = rh.load_elites(archive)
        uid0, uid1 = (f"{e['uid']:x}" for e in cls.elites[:2])
        learn = [BINARY, "learn", "--archive", archive, *common]
        cnn = ["--arch", "cnn", "--channels", "4,8", "--lr", "3e-3"]
        run_cmd([*learn, "--elite", "0", "--epochs", "2"], cls.tmp)
        run_cmd([*learn, "--elite", "1", "--epochs", "2", "--head", "ce", "--head-epochs", "20", "--lr", "1e-2",
                 "--out", os.path.join(run, "ce")], cls.tmp)
        run_cmd([*learn, "--elite", "0", "--epochs", "3", *cnn, "--out", os.path.join(run, "cnn")], cls.tmp)
        sgd = [BINARY, "sgd", "--config", config, "--data-dir", FMNIST, "--seeds", "0", *common]
        run_cmd([*sgd, "--epochs", "2", "--out", run], cls.tmp)
        run_cmd([*sgd, "--epochs", "3", *cnn, "--out", os.path.join(run, "cnn")], cls.tmp)
        cls.t_binary = time.time() - t
        n_s, n_sv = 300, 500  # configs/smoke.ini: search-size, search-size + val-size
        # name: (results file, arch, head, logit scale, last recorded step)
        cls.networks = {
            "mlp learn ridge": (os.path.join(run, f"learn-{uid0}.h5"), "mlp", "ridge", BETA, steps(2, n_s, 64)),
            "mlp learn ce": (os.path.join(run, "ce", f"learn-{uid1}.h5"), "mlp", "ce", 1.0, steps(2, n_s, 64)),
            "cnn learn ridge": (os.path.join(run, "cnn", f"learn-{uid0}.h5"), "cnn", "ridge", BETA, steps(3, n_s, 64)),
            "mlp sgd": (os.path.join(run, "sgd-0.h5"), "mlp", "end-to-end", 1.0, steps(2, n_sv, 64)),
            "cnn sgd": (os.path.join(run, "cnn", "sgd-0.h5"), "cnn", "end-to-end", 1.0, steps(3, n_sv, 64)),
        }
        t = time.time()
        cls.test = rh.load_split(archive, split="test")
        cls.search = rh.load_split(archive)
        cls.x_test = torch.from_numpy(cls.test["images"])
        cls.loaded = {name: rh.load_network(v[0]) for name, v in cls.networks.items()}
        cls.results = {name: rh.read_results(v[0]) for name, v in cls.networks.items()}
        cls.t_load = time.time() - t
        cls.max_diff = {}
        sys.stderr.write(f"[test_python] binaries {cls.t_binary:.1f} s, splits + networks loaded {cls.t_load:.1f} s\n")

    @classmethod
    def tearDownClass(cls):
        for name, diff in sorted(cls.max_diff.items()):
            sys.stderr.write(f"[test_python] {name}: max |softmax - stored| {diff:.2e}\n")
        if os.environ.get("REPSEARCH_KEEP_TEST_DIR"):
            sys.stderr.write(f"[test_python] kept {cls.tmp}\n")
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def probabilities(self, net, n=None):
        with torch.no_grad():
            return torch.softmax(net(self.x_test[:n]), 1).numpy()

    def test_softmax_of_logits_is_the_stored_test_probabilities(self):
        for name, (path, arch, head, scale, _) in self.networks.items():
            with self.subTest(name):
                net, r = self.loaded[name], self.results[name]
                self.assertEqual((net.spec["arch"], net.spec["head"]), (arch, head))
                self.assertEqual(float(net.head.scale.scale), scale)
                stored = r["predictions"]["test_probabilities"]
                p = self.probabilities(net)
                self.assertEqual(p.shape, stored.shape)
                self.max_diff[name] = float(np.abs(p - stored).max())
                self.assertLess(self.max_diff[name], ATOL)
                # Near-uniform outputs would match anything: these networks learned something.
                self.assertGreater(p.max(1).mean(), 0.2)
                accuracy = float(np.mean(p.argmax(1) == self.test["labels"]))
                self.assertAlmostEqual(accuracy, r["accuracy"]["test"], delta=2e-4)
                self.assertGreater(accuracy, 0.4)
                np.testing.assert_array_equal(self.test["labels"], r["predictions"]["test_labels"])

    def test_the_tolerance_tells_a_wrong_forward_pass(self):
        # Each is one thing a reimplementation can get wrong: the comparison above must notice it. On
        # the first 1000 test images: a difference there is one over all of them.
        n = 1000
        for name in self.networks:
            with self.subTest(name):
                stored = self.results[name]["predictions"]["test_probabilities"][:n]
                net = rh.load_network(self.networks[name][0])
                with torch.no_grad():
                    net.encoder.normalise.mean.zero_()
                    net.encoder.normalise.std.fill_(1.0)
                self.assertGreater(np.abs(self.probabilities(net, n) - stored).max(), 100 * ATOL)
                if self.networks[name][3] != 1.0:
                    net = rh.load_network(self.networks[name][0])
                    net.head.scale.scale.fill_(1.0)
                    self.assertGreater(np.abs(self.probabilities(net, n) - stored).max(), 100 * ATOL)

    def test_encoder_is_the_last_step_of_the_trajectory(self):
        for name, (path, _, _, _, last) in self.networks.items():
            with self.subTest(name):
                traj = self.results[name]["trajectory"]
                self.assertEqual(int(traj["steps"][0]), 0)
                self.assertEqual(int(traj["steps"][-1]), last)
                probe = traj["probe_indices"]
                self.assertEqual(len(probe), 1000)  # probe-size: test images chosen by the seed
                with torch.no_grad():
                    h = self.loaded[name].encoder(self.x_test[probe]).numpy()
                self.assertEqual(h.shape, traj["activations"].shape[1:])
                np.testing.assert_allclose(h, traj["activations"][-1], rtol=0, atol=ATOL)
                self.assertGreater(np.abs(h - traj["activations"][0]).max(), 100 * ATOL)  # it did train
                np.testing.assert_array_equal(net_logits(self.loaded[name], self.x_test[:50]),
                                              net_logits(self.loaded[name], self.x_test[:50], composed=True))

    def test_pt_path_uint8_and_shape_errors(self):
        path = self.networks["cnn sgd"][0]
        net_pt = rh.load_network(path[:-3] + ".pt")
        self.assertEqual(net_pt.results_path, path)
        # Bit for bit on 2000 images: any difference in the weights shows there.
        np.testing.assert_array_equal(self.probabilities(net_pt, 2000), self.probabilities(self.loaded["cnn sgd"], 2000))
        uint8 = torch.from_numpy(np.rint(self.test["images"][:200] * 255).astype(np.uint8))
        np.testing.assert_allclose(net_logits(net_pt, uint8), net_logits(net_pt, self.x_test[:200]), atol=1e-6)
        with self.assertRaises(ValueError) as e:
            net_pt(self.x_test[:4].reshape(4, -1))
        self.assertIn("expected images [N, 1, 28, 28]", str(e.exception))
        self.assertEqual(set(net_pt.state_dict()) - {"encoder.normalise.mean", "encoder.normalise.std", "head.scale.scale"},
                         set(torch.jit.load(path[:-3] + ".pt").state_dict()))

    def test_refusals_name_the_file_and_the_reason(self):
        d = tempfile.mkdtemp(dir=self.tmp)
        mlp, cnn = self.networks["mlp sgd"][0], self.networks["cnn sgd"][0]
        lone = os.path.join(d, "lone.pt")
        shutil.copy(mlp[:-3] + ".pt", lone)
        with self.assertRaises(rh.FormatError) as e:
            rh.load_network(lone)
        self.assertIn(os.path.join(d, "lone.h5"), str(e.exception))
        # Weights of the CNN beside the MLP's description: not the file written with it.
        shutil.copy(mlp, os.path.join(d, "mixed.h5"))
        shutil.copy(cnn[:-3] + ".pt", os.path.join(d, "mixed.pt"))
        with self.assertRaises(rh.FormatError) as e:
            rh.load_network(os.path.join(d, "mixed.h5"))
        self.assertIn("mismatched pair", str(e.exception))
        # Without the recorded checksum (older results), the shapes still tell.
        with h5py.File(os.path.join(d, "mixed.h5"), "r+") as f:
            del f.attrs["model_bytes"], f.attrs["model_crc32"]
        with self.assertRaises(rh.FormatError) as e:
            rh.load_network(os.path.join(d, "mixed.h5"))
        self.assertIn("do not fit the network", str(e.exception))
        self.assertIn("mlp 784-256-16-10", str(e.exception))
        # A results file written before /model existed.
        old = os.path.join(d, "old.h5")
        shutil.copy(mlp, old)
        shutil.copy(mlp[:-3] + ".pt", old[:-3] + ".pt")
        with h5py.File(old, "r+") as f:
            del f["model"]
        self.assertNotIn("model", rh.read_results(old))  # still readable as results
        with self.assertRaises(rh.FormatError) as e:
            rh.load_network(old)
        self.assertIn("no /model group", str(e.exception))
        # Moved without its weights: the path learn/sgd recorded is used.
        moved = os.path.join(d, "moved.h5")
        shutil.copy(mlp, moved)
        self.assertEqual(rh.load_network(moved).weights_path, mlp[:-3] + ".pt")

    def test_a_mismatched_pair_is_refused_naming_both_files(self):
        # Two networks of one architecture: the other's weights would load, and give other outputs.
        d = tempfile.mkdtemp(dir=self.tmp)
        learned, other = self.networks["mlp learn ridge"][0], self.networks["mlp sgd"][0]
        results, weights = os.path.join(d, "learn-x.h5"), os.path.join(d, "learn-x.pt")
        shutil.copy(learned, results)
        shutil.copy(other[:-3] + ".pt", weights)
        with self.assertRaises(rh.FormatError) as e:
            rh.load_network(results)
        self.assertIn(results, str(e.exception))
        self.assertIn(weights, str(e.exception))
        self.assertIn("not the one written with it", str(e.exception))
        self.assertIn("not the one written with it", rh.check_network_file(results))
        shutil.copy(learned[:-3] + ".pt", weights)
        self.assertEqual(rh.check_network_file(results), "")
        rh.load_network(results)
        r = rh.read_results(results, activations=False, probabilities=False)
        self.assertEqual(int(r["attrs"]["model_bytes"]), os.path.getsize(weights))

    def test_nonfinite_elites_are_refused_or_flagged(self):
        damaged = os.path.join(tempfile.mkdtemp(dir=self.tmp), "archive.h5")
        shutil.copy(self.archive, damaged)
        with h5py.File(damaged, "r+") as f:
            f["/elites/representations"][1, 3, 2] = np.inf
        self.assertEqual(rh.nonfinite_elites(damaged), [1])
        with self.assertRaises(rh.FormatError) as e:
            rh.load_elites(damaged)
        self.assertIn(f"elite(s) 1 (uid {self.elites[1]['uid']:x})", str(e.exception))
        flagged = rh.load_elites(damaged, allow_nonfinite=True)
        self.assertEqual([e["finite"] for e in flagged[:3]], [True, False, True])
        self.assertTrue(all(e["finite"] for e in self.elites))

    def test_load_split_checks_the_data_identity(self):
        a = rh.read_archive(self.archive)
        self.assertEqual(set(a["data_identity"]["splits"]), {"search", "val", "heldout", "test", "train"})
        self.assertEqual(a["data_identity"]["splits"]["search"],
                         rh.split_identity(np.rint(self.search["images"] * 255).astype(np.uint8), self.search["labels"]))
        # Same images, training labels shuffled (the hostile case): refused, naming the split and both sources.
        other = os.path.join(tempfile.mkdtemp(dir=self.tmp), "fashion-mnist")
        os.makedirs(other)
        for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            found = [n for n in (name, name + ".gz") if os.path.isfile(os.path.join(FMNIST, n))][0]
            os.symlink(os.path.join(FMNIST, found), os.path.join(other, found))
        labels = rh.read_idx(rh._find(FMNIST, ["train-labels-idx1-ubyte", "train-labels-idx1-ubyte.gz"])).copy()
        np.random.default_rng(0).shuffle(labels)
        with open(os.path.join(other, "train-labels-idx1-ubyte"), "wb") as f:
            f.write(bytes([0, 0, 8, 1]) + np.array([len(labels)], dtype=">u4").tobytes() + labels.tobytes())
        for split in ("search", "heldout"):
            with self.assertRaises(rh.FormatError) as e:
                rh.load_split(self.archive, other, split)
            self.assertIn(f"split {split}: labels differ", str(e.exception))
            self.assertIn(self.archive, str(e.exception))
            self.assertIn(other, str(e.exception))
        # The test split shares the installed files: it loads (its training set differs: refused).
        with self.assertRaises(rh.FormatError) as e:
            rh.load_split(self.archive, other, "test")
        self.assertIn("split train: labels differ", str(e.exception))
        # An archive from before the identity: a warning, and the data is read.
        old = os.path.join(tempfile.mkdtemp(dir=self.tmp), "archive.h5")
        shutil.copy(self.archive, old)
        with h5py.File(old, "r+") as f:
            del f["/data/identity"]
        with self.assertWarns(UserWarning) as w:
            v = rh.load_split(old, split="val")
        self.assertIn("records no data identity", str(w.warning))
        self.assertEqual(v["images"].shape, (200, 1, 28, 28))

    def test_a_relative_data_directory_is_stored_absolute(self):
        here = tempfile.mkdtemp(dir=self.tmp)
        os.symlink(FMNIST, os.path.join(here, "data"))
        run_cmd([BINARY, "search", "--config", os.path.join(SOURCE, "configs", "smoke.ini"), "--data-dir", "data",
                 "--generations", "0", "--threads", "1", "--out", "rel"], here)
        archive = os.path.join(here, "rel", "archive.h5")
        a = rh.read_archive(archive)
        self.assertEqual(a["data"]["attrs"]["data_dir"], os.path.join(here, "data"))
        self.assertEqual(a["data_identity"]["data_dir"], os.path.join(here, "data"))
        elsewhere = tempfile.mkdtemp(dir=self.tmp)
        p = run_cmd([sys.executable, "-c", f"import sys; sys.path.insert(0, {os.path.join(SOURCE, 'analysis')!r}); "
                     f"import repsearch_h5 as rh; print(rh.load_split({archive!r}, split='val')['images'].shape)"],
                    elsewhere)
        self.assertIn("(200, 1, 28, 28)", p.stdout)
        # learn from another folder reads the data the search read (its config says "data", relative).
        p = run_cmd([BINARY, "learn", "--archive", archive, "--epochs", "1", "--threads", "1"], elsewhere)
        r = rh.read_results(glob.glob(os.path.join(here, "rel", "learn-*.h5"))[0], activations=False)
        self.assertEqual(r["data_identity"]["data_dir"], os.path.join(here, "data"))

    def test_elites_and_splits_line_up(self):
        a = rh.read_archive(self.archive, representations=True)
        k, n_s, d = a["elites"]["representations"].shape
        self.assertEqual(len(self.elites), k)
        for i, e in enumerate(self.elites):
            self.assertEqual(e["rank"], i)
            self.assertEqual(e["uid"], int(a["elites"]["uid"][i]))
            self.assertEqual(e["z"].shape, (n_s, d))
            np.testing.assert_array_equal(e["z"], a["elites"]["representations"][i])
        s = self.search
        self.assertEqual(s["images"].shape, (n_s, 1, 28, 28))
        self.assertEqual(s["images"].dtype, np.float32)
        self.assertGreaterEqual(s["images"].min(), 0.0)
        self.assertLessEqual(s["images"].max(), 1.0)
        self.assertEqual(s["images"].max(), 1.0)
        np.testing.assert_array_equal(s["indices"], self.elites[0]["indices"])
        np.testing.assert_array_equal(s["labels"], self.elites[0]["labels"])
        np.testing.assert_array_equal(s["labels"], a["data"]["search_labels"])
        for split, indices in (("val", a["data"]["val_indices"]), ("heldout", a["data"]["heldout_indices"])):
            v = rh.load_split(self.archive, FMNIST, split)
            self.assertEqual(v["images"].shape, (200, 1, 28, 28))
            np.testing.assert_array_equal(v["indices"], indices)
        self.assertEqual(self.test["images"].shape, (10000, 1, 28, 28))
        # Training-set statistics computed here equal those repsearch standardised with.
        spec = self.loaded["mlp sgd"].spec
        np.testing.assert_allclose(s["mean"], spec["normalisation_mean"], rtol=1e-6)
        np.testing.assert_allclose(s["std"], spec["normalisation_std"], rtol=1e-6)
        # Row i of the images is row i of z: the learned encoder's MSE on them is the one learn reported.
        name = "mlp learn ridge"
        with torch.no_grad():
            h = self.loaded[name].encoder(torch.from_numpy(s["images"])).numpy()
        mse = float(np.mean((h - self.elites[0]["z"]) ** 2))
        self.assertAlmostEqual(mse, self.results[name]["accuracy"]["regression_mse"], delta=1e-5)
        shuffled = float(np.mean((h - self.elites[0]["z"][::-1]) ** 2))
        self.assertGreater(shuffled, mse * 1.2)

    def test_readme_example_runs_as_written(self):
        with open(os.path.join(SOURCE, "README.md")) as f:
            readme = f.read()
        m = re.search(re.escape(EXAMPLE_BEGIN) + r"\n```python\n(.*?)```\n" + re.escape(EXAMPLE_END), readme, re.S)
        self.assertIsNotNone(m, f"README.md has no ```python block between {EXAMPLE_BEGIN} and {EXAMPLE_END}")
        code = m.group(1)
        self.assertIn('run = "runs/fashion_mnist"', code)
        # As from the repository root after the quickstart: analysis/ and runs/fashion_mnist/ there.
        root = tempfile.mkdtemp(dir=self.tmp)
        os.symlink(os.path.join(SOURCE, "analysis"), os.path.join(root, "analysis"))
        os.symlink(os.path.join(self.tmp, "runs"), os.path.join(root, "runs"))
        script = os.path.join(root, "example.py")
        with open(script, "w") as f:
            f.write(code)
        p = run_cmd([sys.executable, script], root)
        accuracy = re.search(r"^test accuracy ([0-9.]+)$", p.stdout, re.M)
        self.assertIsNotNone(accuracy, p.stdout)
        self.assertAlmostEqual(float(accuracy.group(1)), self.results["mlp learn ridge"]["accuracy"]["test"],
                               delta=2e-4)
        mse = re.search(r"^regression mse ([0-9.e-]+) target variance ([0-9.e-]+)$", p.stdout, re.M)
        self.assertIsNotNone(mse, p.stdout)
        self.assertLess(float(mse.group(1)), 0.5 * float(mse.group(2)))


def net_logits(net, x, composed=False):
    with torch.no_grad():
        return (net.head(net.encoder(x)) if composed else net(x)).numpy()


if __name__ == "__main__":
    if not os.path.isdir(FMNIST):
        sys.stderr.write(f"test_python.py: FAILED: no Fashion-MNIST at {FMNIST} (Debian: dataset-fashion-mnist, "
                         "or set REPSEARCH_FMNIST_DIR)\n")
        sys.exit(1)
    result = unittest.main(argv=[sys.argv[0], *UNITTEST_ARGS], exit=False, verbosity=2).result
    sys.stderr.write(f"[test_python] total {time.time() - T0:.1f} s\n")
    sys.exit(0 if result.wasSuccessful() else 1)
