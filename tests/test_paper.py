#!/usr/bin/env python3
"""The example space's learning from Python: networks that learn and sgd wrote on an example archive
are rebuilt by analysis/repsearch_h5.load_network and reproduce the stored test probabilities and the
archive's target shapes; analysis/report.py draws every figure of the paper (2-7) and Table 1 from a
tiny real run (two searches that differ in generations, two islands each).

    /usr/bin/python3 tests/test_paper.py [REPSEARCH_BINARY [REPSEARCH_SOURCE_DIR]] [unittest options]

Without numpy, h5py, torch, matplotlib or the data set the test FAILS (launch/setup.sh installs them).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

here = os.path.dirname(os.path.abspath(__file__))
args = [a for a in sys.argv[1:] if not a.startswith("-")]
BINARY = os.path.abspath(args[0]) if args else os.path.join(os.path.dirname(here), "build", "repsearch")
SOURCE = os.path.abspath(args[1]) if len(args) > 1 else os.path.dirname(here)
FMNIST = os.environ.get("REPSEARCH_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
try:
    import numpy as np
    import torch
    import h5py  # noqa: F401
    import matplotlib  # noqa: F401
except ImportError as e:
    sys.stderr.write(f"test_paper.py: FAILED: {e} (use Debian's /usr/bin/python3, see launch/setup.sh)\n")
    sys.exit(1)
sys.path.insert(0, os.path.join(SOURCE, "analysis"))
import repsearch_h5 as rh  # noqa: E402

torch.set_num_threads(1)


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-3000:]}")
    return r.stdout


class PaperRun(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="repsearch-paper-")
        config = os.path.join(SOURCE, "configs", "smoke.ini")
        base = [BINARY, "search", "--config", config, "--space", "example", "--data-dir", FMNIST, "--search-size", "100",
                "--islands", "2", "--migration-interval", "0", "--checkpoint-interval", "0", "--threads", "1"]
        cls.a, cls.b = os.path.join(cls.tmp, "a"), os.path.join(cls.tmp, "b")
        run([*base, "--out", cls.a])
        run([*base, "--layer-generations", "8,4,4,2", "--out", cls.b])
        common = ["--threads", "1", "--learner-epochs", "3", "--learner-batch", "20"]
        for d, seeds in ((cls.a, "0..1"), (cls.b, "0")):
            run([BINARY, "learn", "--archive", os.path.join(d, "archive.h5"), "--seeds", seeds, *common])
        run([BINARY, "sgd", "--archive", os.path.join(cls.a, "archive.h5"), "--seeds", "0..1", "--depth", "1,2", *common])
        # beyond the paper: one network per island from its own targets (the 50 diversity rows of smoke.ini)
        run([BINARY, "learn", "--archive", os.path.join(cls.a, "archive.h5"), "--targets", "islands", *common])
        cls.x_test = torch.from_numpy(np.array(rh.read_dataset("fashion-mnist", FMNIST)["test_images"][:500]))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_networks_reproduce_the_stored_probabilities(self):
        for name in ("learn-all-d2-s0", "learn-all-d2-s1", "sgd-d1-s0", "sgd-d2-s1"):
            with self.subTest(name):
                path = os.path.join(self.a, name + ".h5")
                net = rh.load_network(path)
                r = rh.read_results(path, activations=False)
                with torch.no_grad():
                    p = torch.softmax(net(self.x_test), 1).numpy()
                stored = r["predictions"]["test_probabilities"][:500]
                self.assertLess(float(np.abs(p - stored).max()), 1e-4)
                self.assertEqual(net.spec["depth"], int(name.split("-d")[1][0]))

    def test_block_outputs_have_the_targets_shapes(self):
        net = rh.load_network(os.path.join(self.a, "learn-all-d2-s0.h5"))
        with h5py.File(os.path.join(self.a, "archive.h5"), "r") as f:
            shapes = [f[f"/targets/block{b}"].shape[1:] for b in range(3)]
        with torch.no_grad():
            outs = net.block_outputs(self.x_test[:3])
        self.assertEqual([tuple(o.shape[1:]) for o in outs], shapes)

    def test_results_name_the_trajectories(self):
        r = rh.read_results(os.path.join(self.a, "learn-all-d2-s0.h5"), activations=False)
        ex = r["trajectory"]["example"]
        self.assertEqual(ex["variant"], "all")
        self.assertEqual(ex["cosine_distance"].shape, (4, 3))
        self.assertEqual(ex["collision_entropy_within"].shape, (4, 3))
        self.assertAlmostEqual(r["accuracy"]["heldout"], float(ex["heldout_accuracy"][ex["selected_epoch"]]))

    def test_report_draws_every_figure_and_table1(self):
        out = os.path.join(self.tmp, "report")
        text = run(["/usr/bin/python3", os.path.join(SOURCE, "analysis", "report.py"), self.a, self.b, "--out", out])
        self.assertIn("Table 1 row (a): SGD", text)
        with open(os.path.join(out, "report.json")) as f:
            rep = json.load(f)
        self.assertEqual(rep["not_drawn"], {})
        for name in ("figure2_search_compute", "figure3_neff_islands", "figure4_learned_vs_search",
                     "figure5_cosine_distance", "figure6_entropy_within", "figure7_entropy_between"):
            self.assertTrue(os.path.getsize(os.path.join(out, name + ".png")) > 1000, name)
        # the numbers are the files': Figure 3 is the archive's N_eff by islands, Table 1 the results' test accuracies
        with h5py.File(os.path.join(self.a, "archive.h5"), "r") as f:
            np.testing.assert_allclose(rep["figures"]["figure3_neff_islands"]["a"], f["/summary/n_eff_by_islands"][()])
        table = {row["method"]: row for row in rep["runs"][0]["table1"]}
        learned = table["search-based, all layers (depth 2)"]
        tests = [rh.read_results(os.path.join(self.a, f"learn-all-d2-s{s}.h5"), activations=False)["accuracy"]["test"]
                 for s in (0, 1)]
        self.assertAlmostEqual(learned["mean"], float(np.mean(tests)))
        self.assertEqual(learned["seeds"], 2)
        with open(os.path.join(out, "report.md")) as f:
            md = f.read()
        self.assertIn("![figure5_cosine_distance](figure5_cosine_distance.png)", md)

    def test_island_networks_learn_each_islands_own_targets(self):
        with h5py.File(os.path.join(self.a, "archive.h5"), "r") as f:
            m = f["/diversity/block0"].shape[0]
        for island in (0, 1):
            r = rh.read_results(os.path.join(self.a, f"learn-all-d2-s0-i{island}.h5"), activations=False)
            ex = r["trajectory"]["example"]
            self.assertEqual(ex["island"], island)
            self.assertEqual(len(ex["heldout_rows"]) + int(r["attrs"]["train_data"].split("(")[1].split(" ")[0]), m)
            self.assertIn(f"island {island}'s own", r["attrs"]["train_data"])
        out = os.path.join(self.tmp, "report-islands")
        run(["/usr/bin/python3", os.path.join(SOURCE, "analysis", "report.py"), self.a, "--out", out])
        with open(os.path.join(out, "report.json")) as f:
            b = json.load(f)["runs"][0]["islands"]
        self.assertEqual(b["islands"]["networks"], 2)
        self.assertEqual(b["sgd seeds"]["networks"], 2)
        for v in b.values():
            self.assertTrue(0 <= v["mean_disagreement"] <= 1)
            self.assertTrue(all(0 <= v["cka"][k] <= 1 + 1e-9 for k in ("block0", "block1", "block2")), v["cka"])

    def test_report_refuses_a_damaged_results_file(self):
        bad = os.path.join(self.tmp, "bad")
        shutil.copytree(self.a, bad)
        with open(os.path.join(bad, "learn-all-d2-s0.h5"), "r+b") as f:
            f.seek(0)
            f.write(b"\0" * 64)
        r = subprocess.run(["/usr/bin/python3", os.path.join(SOURCE, "analysis", "report.py"), bad, "--out",
                            os.path.join(bad, "rep")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn("learn-all-d2-s0.h5", r.stdout)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + [a for a in sys.argv[1:] if a.startswith("-")])
