// Results files of `repsearch learn` / `repsearch sgd` (src/io/results.cpp): round trips of every
// field (NaN accuracies, empty metrics and trajectories included), readability by h5dump and h5py,
// atomic replacement, and clear refusals of foreign, damaged and truncated files.
#include <doctest/doctest.h>
#include <hdf5.h>

#include <ATen/ATen.h>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "h5_testing.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/io/archive.hpp"
#include "repsearch/io/results.hpp"

using namespace repsearch::io;
using namespace h5_testing;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

EpochRow make_epoch(std::int64_t epoch, double base, bool measured) {
  EpochRow row;
  row.epoch = epoch;
  row.loss = 1.0 / (1.0 + base);
  row.train_accuracy = measured ? 0.5 + 0.01 * base : kNaN;
  row.val_accuracy = measured ? 0.45 + 0.01 * base : kNaN;
  row.examples_per_s = 12345.5 + base;
  row.seconds = 0.75 * static_cast<double>(epoch);
  return row;
}

// A `learn` results file: regression then head epochs, T recorded steps of n_probe x d activations.
Results make_results(std::int64_t T, std::int64_t n_probe, std::int64_t d, std::int64_t n_test, std::int64_t C) {
  Results r;
  r.kind = "learn";
  r.repsearch_version = "0.1.0";
  r.git_commit = "0123456789ab";
  r.created = "2024-05-02T08:09:10Z";
  r.command_line = "repsearch learn --archive runs/a/archive.h5 --elite 2";
  std::ostringstream config;
  config << "[learn]\nelite = 2\n# σ step — ünïcode survives\n";
  for (int i = 0; i < 3000; ++i) config << "key_" << i << " = value " << i << "\n";  // > 64 KiB
  r.config = config.str();
  r.config_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  r.archive_path = "runs/a/archive.h5";
  r.archive_sha256 = "5d41402abc4b2a76b9719d911017c592";
  r.seed = 0xFFFFFFFFFFFFFFF1ULL;       // exercises the unsigned type
  r.elite_uid = (std::uint64_t{3} << 40) | 77;
  r.elite_rank = 2;
  r.model = "mlp 784-256-64-10";
  r.train_data = "search+val";
  r.model_path = "runs/a/learn-3298534883405.pt";
  for (int e = 1; e <= 3; ++e) {
    r.phase.push_back("regress");
    r.epochs.push_back(make_epoch(e, e, /*measured=*/false));
  }
  for (int e = 1; e <= 2; ++e) {
    r.phase.push_back("head");
    r.epochs.push_back(make_epoch(e, 10 + e, /*measured=*/true));
  }
  r.val_accuracy = 0.8125;
  r.heldout_accuracy = 0.796875;
  r.test_accuracy = 0.78125;
  r.regression_mse = 0.015625;
  r.steps = at::arange(0, T * 100, 100, at::kInt);  // int32 in: written as int64
  r.probe_indices = at::randperm(1000, at::kLong).slice(0, 0, n_probe).contiguous();
  // Non-contiguous on purpose: the writer stores the logical [T, n_probe, d] layout.
  r.activations = at::randn({n_probe, d, T}, at::kFloat).permute({2, 0, 1});
  r.test_probabilities = at::softmax(at::randn({n_test, C}, at::kFloat), 1);
  r.test_labels = at::randint(C, {n_test}, at::kInt);
  r.spec.arch = "mlp";
  r.spec.hidden = {256, 128};
  r.spec.cut = d;
  r.spec.classes = C;
  r.spec.input_shape = {1, 28, 28};
  r.spec.normalisation_mean = at::tensor({0.286041f});
  r.spec.normalisation_std = at::tensor({0.353024f});
  r.spec.logit_scale = 10.0;
  r.spec.head = "ridge";
  return r;
}

// Equal, with NaN equal to NaN.
bool same(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

void check_tensor(const at::Tensor& read, const at::Tensor& written, at::ScalarType type) {
  REQUIRE(read.defined());
  CHECK_MESSAGE((read.scalar_type() == type), "dtype ", c10::toString(read.scalar_type()));
  CHECK(read.device().is_cpu());
  CHECK((read.sizes() == written.sizes()));
  CHECK(at::equal(read, written.to(type)));
}

void check_results(const Results& r, const Results& w) {
  CHECK(r.kind == w.kind);
  CHECK(r.repsearch_version == w.repsearch_version);
  CHECK(r.git_commit == w.git_commit);
  CHECK(r.created == w.created);
  CHECK(r.command_line == w.command_line);
  CHECK(r.config == w.config);
  CHECK(r.config_sha256 == w.config_sha256);
  CHECK(r.archive_path == w.archive_path);
  CHECK(r.archive_sha256 == w.archive_sha256);
  CHECK(r.seed == w.seed);
  CHECK(r.elite_uid == w.elite_uid);
  CHECK(r.elite_rank == w.elite_rank);
  CHECK(r.model == w.model);
  CHECK(r.train_data == w.train_data);
  CHECK(r.model_path == w.model_path);
  CHECK(r.phase == w.phase);
  REQUIRE(r.epochs.size() == w.epochs.size());
  for (std::size_t i = 0; i < r.epochs.size(); ++i) {
    CHECK(r.epochs[i].epoch == w.epochs[i].epoch);
    CHECK(same(r.epochs[i].loss, w.epochs[i].loss));
    CHECK(same(r.epochs[i].train_accuracy, w.epochs[i].train_accuracy));
    CHECK(same(r.epochs[i].val_accuracy, w.epochs[i].val_accuracy));
    CHECK(same(r.epochs[i].examples_per_s, w.epochs[i].examples_per_s));
    CHECK(same(r.epochs[i].seconds, w.epochs[i].seconds));
  }
  CHECK(same(r.val_accuracy, w.val_accuracy));
  CHECK(same(r.heldout_accuracy, w.heldout_accuracy));
  CHECK(same(r.test_accuracy, w.test_accuracy));
  CHECK(same(r.regression_mse, w.regression_mse));
  check_tensor(r.steps, w.steps, at::kLong);
  check_tensor(r.probe_indices, w.probe_indices, at::kLong);
  check_tensor(r.activations, w.activations, at::kFloat);
  check_tensor(r.test_probabilities, w.test_probabilities, at::kFloat);
  check_tensor(r.test_labels, w.test_labels, at::kInt);
  CHECK(r.spec.present() == w.spec.present());
  if (!w.spec.present()) return;
  CHECK(r.spec.arch == w.spec.arch);
  CHECK(r.spec.hidden == w.spec.hidden);
  CHECK(r.spec.channels == w.spec.channels);
  CHECK(r.spec.cut == w.spec.cut);
  CHECK(r.spec.classes == w.spec.classes);
  CHECK(r.spec.input_shape == w.spec.input_shape);
  check_tensor(r.spec.normalisation_mean, w.spec.normalisation_mean, at::kFloat);
  check_tensor(r.spec.normalisation_std, w.spec.normalisation_std, at::kFloat);
  CHECK(r.spec.logit_scale == w.spec.logit_scale);
  CHECK(r.spec.head == w.spec.head);
}

// The smallest valid archive: a repsearch HDF5 file of another format.
Archive make_tiny_archive() {
  Archive a;
  a.provenance.repsearch_version = "0.1.0";
  a.dataset = "fashion-mnist";
  a.search_indices = at::arange(2, at::kLong);
  a.search_labels = at::zeros({2}, at::kInt);
  a.val_indices = at::zeros({0}, at::kLong);
  a.heldout_indices = at::zeros({0}, at::kLong);
  a.representations = at::zeros({0, 2, 1}, at::kFloat);
  a.fitness = at::zeros({0}, at::kDouble);
  a.heldout = at::zeros({0}, at::kDouble);
  a.island = at::zeros({0}, at::kInt);
  a.generation = at::zeros({0}, at::kInt);
  a.cka = at::zeros({0, 0}, at::kDouble);
  return a;
}

// Replaces dataset `path` by a 1-D float64 dataset of `n` values.
void replace_with_doubles(hid_t file, const char* path, hsize_t n) {
  REQUIRE(H5Ldelete(file, path, H5P_DEFAULT) >= 0);
  const std::vector<double> values(n, 0.5);
  const hsize_t dims[1] = {n};
  const hid_t space = H5Screate_simple(1, dims, nullptr);
  const hid_t ds = H5Dcreate2(file, path, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(ds >= 0);
  if (n > 0) REQUIRE(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) >= 0);
  H5Dclose(ds);
  H5Sclose(space);
}

}  // namespace

TEST_CASE("results: round trip of every field, NaN accuracies included") {
  TempDir dir{"repsearch_test_results"};
  at::manual_seed(11);
  Results written = make_results(4, 5, 3, 20, 10);
  written.heldout_accuracy = kNaN;
  written.regression_mse = kNaN;
  const std::string path = dir.file("nested/learn-1.h5");  // parents are created
  write_results(path, written);
  CHECK(fs::exists(path));
  CHECK_FALSE(has_tmp_file(fs::path(path).parent_path()));
  const Results read = read_results(path);
  check_results(read, written);
  CHECK(std::isnan(read.heldout_accuracy));
  CHECK(std::isnan(read.regression_mse));
  CHECK(std::isnan(read.epochs[0].train_accuracy));
  CHECK((read.phase == std::vector<std::string>{"regress", "regress", "regress", "head", "head"}));
  CHECK((read.activations.sizes() == at::IntArrayRef({4, 5, 3})));
}

TEST_CASE("results: empty metrics and an empty trajectory round-trip") {
  TempDir dir{"repsearch_test_results"};
  at::manual_seed(12);
  Results written = make_results(0, 5, 3, 0, 10);
  written.kind = "sgd";
  written.archive_path.clear();
  written.archive_sha256.clear();
  written.elite_uid = 0;
  written.elite_rank = -1;
  written.phase.clear();
  written.epochs.clear();
  written.val_accuracy = kNaN;
  written.heldout_accuracy = kNaN;
  written.test_accuracy = kNaN;
  written.regression_mse = kNaN;
  const std::string path = dir.file("sgd-7.h5");
  write_results(path, written);
  const Results read = read_results(path);
  check_results(read, written);
  CHECK(read.epochs.empty());
  CHECK(read.phase.empty());
  CHECK(read.elite_rank == -1);
  CHECK((read.steps.sizes() == at::IntArrayRef({0})));
  CHECK((read.activations.sizes() == at::IntArrayRef({0, 5, 3})));
  CHECK((read.test_probabilities.sizes() == at::IntArrayRef({0, 10})));
}

TEST_CASE("results: no recorded step and undefined activations are written as [0, n_probe, 0]") {
  TempDir dir{"repsearch_test_results"};
  at::manual_seed(17);
  Results written = make_results(0, 5, 3, 4, 10);
  written.activations = at::Tensor();  // what a trainer that recorded nothing leaves
  const std::string path = dir.file("sgd-8.h5");
  write_results(path, written);
  const Results read = read_results(path);
  CHECK((read.steps.sizes() == at::IntArrayRef({0})));
  CHECK((read.activations.sizes() == at::IntArrayRef({0, 5, 0})));
  check_tensor(read.probe_indices, written.probe_indices, at::kLong);
  check_tensor(read.test_probabilities, written.test_probabilities, at::kFloat);

  SUBCASE("but not when steps were recorded") {
    written.steps = at::arange(2, at::kLong);
    expect_error<repsearch::OutputError>([&] { write_results(path, written); }, path, {"activations is undefined"});
  }
}

TEST_CASE("results: the model description of a CNN round-trips, and files without one still read") {
  TempDir dir{"repsearch_test_results"};
  at::manual_seed(18);
  Results written = make_results(3, 4, 8, 6, 100);
  written.kind = "sgd";
  written.spec.arch = "cnn";
  written.spec.hidden.clear();  // an empty width list is a valid dataset of 0 entries
  written.spec.channels = {4, 8};
  written.spec.input_shape = {3, 32, 32};
  written.spec.normalisation_mean = at::tensor({0.49f, 0.48f, 0.45f});
  written.spec.normalisation_std = at::tensor({0.25f, 0.24f, 0.26f});
  written.spec.logit_scale = 1.0;
  written.spec.head = "end-to-end";
  const std::string path = dir.file("sgd-3.h5");
  write_results(path, written);
  check_results(read_results(path), written);

  // What learn and sgd wrote before /model existed: same format_version, no /model group.
  Results old = written;
  old.spec = ModelSpec();
  write_results(path, old);
  const auto [rc, out] = run("h5dump -H " + quote(path));
  REQUIRE(rc == 0);
  CHECK_FALSE(contains(out, "GROUP \"model\""));
  const Results read = read_results(path);
  CHECK_FALSE(read.spec.present());
  check_results(read, old);
}

TEST_CASE("results: a model description that disagrees with the file is refused, written or read") {
  TempDir dir{"repsearch_test_results"};
  at::manual_seed(19);
  const Results good = make_results(4, 5, 3, 20, 10);
  const std::string path = dir.file("learn-5.h5");
  write_results(path, good);
  const std::string before = read_bytes(path);

  SUBCASE("unresolved arch") {
    Results bad = good;
    bad.spec.arch = "auto";
    expect_error<repsearch::OutputError>([&] { write_results(path, bad); }, path, {"/model arch must be mlp, cnn or convgroups", "'auto'"});
  }
  SUBCASE("classes other than the probabilities' columns") {
    Results bad = good;
    bad.spec.classes = 9;
    expect_error<repsearch::OutputError>([&] { write_results(path, bad); }, path, {"classes 9", "10 columns of test_probabilities"});
  }
  SUBCASE("a cut width other than the activations'") {
    Results bad = good;
    bad.spec.cut = 4;
    expect_error<repsearch::OutputError>([&] { write_results(path, bad); }, path, {"/model cut 4", "activations have width 3"});
  }
  SUBCASE("statistics for another number of channels") {
    Results bad = good;
    bad.spec.normalisation_std = at::ones({3});
    expect_error<repsearch::OutputError>([&] { write_results(path, bad); }, path, {"one value per channel (1)"});
  }
  SUBCASE("a zero standard deviation") {
    Results bad = good;
    bad.spec.normalisation_std = at::zeros({1});
    expect_error<repsearch::OutputError>([&] { write_results(path, bad); }, path, {"normalisation_std and logit_scale must be positive"});
    CHECK(read_bytes(path) == before);  // a refused write leaves the file as it was
  }

  SUBCASE("read: statistics of another length") {
    edit_hdf5(path, [](hid_t file) { replace_with_doubles(file, "/model/normalisation_mean", 2); });
    expect_error<repsearch::InputError>([&] { read_results(path); }, path, {"one value per channel (1)"});
  }
  SUBCASE("read: a missing attribute") {
    edit_hdf5(path, [](hid_t file) {
      const hid_t g = H5Gopen2(file, "/model", H5P_DEFAULT);
      REQUIRE(g >= 0);
      CHECK(H5Adelete(g, "logit_scale") >= 0);
      H5Gclose(g);
    });
    expect_error<repsearch::InputError>([&] { read_results(path); }, path, {"missing attribute logit_scale of /model"});
  }
}

TEST_CASE("results: layout as documented, readable by h5dump and h5py without our code") {
  TempDir dir{"repsearch_test_results"};
  at::manual_seed(13);
  Results written = make_results(4, 5, 3, 20, 10);
  written.regression_mse = kNaN;
  const std::string path = dir.file("learn-2.h5");
  write_results(path, written);

  const auto [rc_a, activations] = run("h5dump -H -p -d /trajectory/activations " + quote(path));
  INFO("h5dump activations: ", activations);
  REQUIRE(rc_a == 0);
  CHECK(contains(activations, "DATATYPE  H5T_IEEE_F32LE"));
  CHECK(contains(activations, "DATASPACE  SIMPLE { ( 4, 5, 3 ) / ( 4, 5, 3 ) }"));
  CHECK(contains(activations, "CHUNKED ( 1, 5, 3 )"));
  CHECK(contains(activations, "SHUFFLE"));
  CHECK(contains(activations, "DEFLATE { LEVEL 4 }"));

  const auto [rc_p, predictions] =
      run("h5dump -H -p -d /predictions/test_probabilities " + quote(path));
  INFO("h5dump test_probabilities: ", predictions);
  REQUIRE(rc_p == 0);
  CHECK(contains(predictions, "DATASPACE  SIMPLE { ( 20, 10 ) / ( 20, 10 ) }"));
  CHECK(contains(predictions, "CHUNKED ( 20, 10 )"));
  CHECK(contains(predictions, "DEFLATE { LEVEL 4 }"));
  CHECK_FALSE(contains(predictions, "SHUFFLE"));

  const auto [rc_f, format] = run("h5dump -a /format " + quote(path));
  INFO("h5dump -a /format: ", format);
  REQUIRE(rc_f == 0);
  CHECK(contains(format, "repsearch-results"));
  CHECK(contains(format, "H5T_CSET_UTF8"));

  const std::string python = h5py_python();
  const std::string script = dir.file("check.py");
  write_file(script,
              "import sys, math, h5py\n"
              "f = h5py.File(sys.argv[1], 'r')\n"
              "a = f['trajectory/activations']\n"
              "assert isinstance(f.attrs['kind'], str), type(f.attrs['kind'])\n"
              "print('shape', *a.shape)\n"
              "print('dtype', a.dtype)\n"
              "print('kind', f.attrs['kind'])\n"
              "print('format', f.attrs['format'])\n"
              "print('version', int(f.attrs['format_version']))\n"
              "print('seed', int(f.attrs['seed']))\n"
              "print('elite_uid', int(f.attrs['elite_uid']))\n"
              "print('elite_rank', int(f.attrs['elite_rank']))\n"
              "print('phase', *[p.decode() if isinstance(p, bytes) else p for p in f['metrics/phase'][()]])\n"
              "print('epochs', *f['metrics/epoch'][()])\n"
              "print('mse_nan', math.isnan(float(f['accuracy'].attrs['regression_mse'])))\n"
              "print('test', repr(float(f['accuracy'].attrs['test'])))\n"
              "print('steps', *f['trajectory/steps'][()])\n"
              "print('act123', repr(float(a[1, 2, 2])))\n"
              "print('probs', *f['predictions/test_probabilities'].shape)\n"
              "m = f['model']\n"
              "print('model', m.attrs['arch'], int(m.attrs['cut']), int(m.attrs['classes']), float(m.attrs['logit_scale']),\n"
              "      m.attrs['head'], *m['hidden'][()], '|', *m['input_shape'][()], '|', m['normalisation_mean'].dtype)\n");
  const auto [rc_py, out] = run(python + " " + quote(script) + " " + quote(path));
  INFO("h5py (", python, "): ", out);
  REQUIRE(rc_py == 0);
  CHECK(contains(out, "shape 4 5 3\n"));
  CHECK(contains(out, "dtype float32\n"));
  CHECK(contains(out, "kind learn\n"));
  CHECK(contains(out, "format repsearch-results\n"));
  CHECK(contains(out, "version 1\n"));
  CHECK(contains(out, "seed " + std::to_string(written.seed) + "\n"));
  CHECK(contains(out, "elite_uid " + std::to_string(written.elite_uid) + "\n"));
  CHECK(contains(out, "elite_rank 2\n"));
  CHECK(contains(out, "phase regress regress regress head head\n"));
  CHECK(contains(out, "epochs 1 2 3 1 2\n"));
  CHECK(contains(out, "mse_nan True\n"));
  CHECK(contains(out, "steps 0 100 200 300\n"));
  CHECK(contains(out, "probs 20 10\n"));
  CHECK(contains(out, "model mlp 3 10 10.0 ridge 256 128 | 1 28 28 | float32\n"));
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string key, value;
    fields >> key >> value;
    if (key == "test") CHECK(std::stod(value) == written.test_accuracy);
    if (key == "act123") CHECK(std::stod(value) == static_cast<double>(written.activations[1][2][2].item<float>()));
  }
}

TEST_CASE("results: overwriting is atomic; a refused write leaves the previous file intact") {
  TempDir dir{"repsearch_test_results"};
  at::manual_seed(14);
  const Results first = make_results(4, 5, 3, 20, 10);
  const std::string path = dir.file("learn-3.h5");
  write_results(path, first);

  at::manual_seed(15);
  Results second = make_results(2, 6, 4, 8, 10);
  second.kind = "sgd";
  second.phase = {"sgd"};
  second.epochs = {make_epoch(1, 1, true)};
  write_results(path, second);
  check_results(read_results(path), second);
  CHECK_FALSE(has_tmp_file(dir.path));
  const std::string before = read_bytes(path);

  SUBCASE("a phase per metric row") {
    Results bad = first;
    bad.phase.pop_back();
    expect_error<repsearch::OutputError>([&] { write_results(path, bad); }, path, {"4 phases for 5 metric rows"});
  }
  SUBCASE("activations of another number of steps") {
    Results bad = first;
    bad.steps = at::arange(3, at::kLong);
    expect_error<repsearch::OutputError>([&] { write_results(path, bad); }, path,
                 {"activations (axis 0)", "4 entries", "expected 3", "length of steps"});
  }
  SUBCASE("an undefined tensor") {
    Results bad = first;
    bad.test_probabilities = at::Tensor();
    expect_error<repsearch::OutputError>([&] { write_results(path, bad); }, path, {"test_probabilities is undefined"});
  }
  CHECK(read_bytes(path) == before);
  CHECK_FALSE(has_tmp_file(dir.path));
  check_results(read_results(path), second);
}

TEST_CASE("results reader refuses bad files with a clear error") {
  TempDir dir{"repsearch_test_results"};
  at::manual_seed(16);
  const Results good = make_results(4, 5, 3, 20, 10);
  const std::string results = dir.file("learn-4.h5");
  write_results(results, good);

  SUBCASE("nonexistent path") {
    const std::string path = dir.file("missing.h5");
    expect_error<repsearch::InputError>([&] { read_results(path); }, path, {"no such file", "repsearch-results"});
  }
  SUBCASE("a text file") {
    const std::string path = dir.file("notes.h5");
    write_file(path, "this is not HDF5\n");
    expect_error<repsearch::InputError>([&] { read_results(path); }, path, {"not an HDF5 file"});
  }
  SUBCASE("an archive passed as results, and the reverse") {
    const std::string archive = dir.file("archive.h5");
    write_archive(archive, make_tiny_archive());
    expect_error<repsearch::InputError>([&] { read_results(archive); }, archive,
                 {"expected a repsearch results file (format=repsearch-results), found format='repsearch-archive'"});
    expect_error<repsearch::InputError>([&] { read_archive(results); }, results, {"found format='repsearch-results'"});
  }
  SUBCASE("an HDF5 file without a format attribute") {
    edit_hdf5(results, [](hid_t file) { REQUIRE(H5Adelete(file, "format") >= 0); });
    expect_error<repsearch::InputError>([&] { read_results(results); }, results, {"no format attribute", "not a repsearch file"});
  }
  SUBCASE("another format_version") {
    edit_hdf5(results, [](hid_t file) {
      REQUIRE(H5Adelete(file, "format_version") >= 0);
      write_int64_attr(file, "format_version", 2);
    });
    expect_error<repsearch::InputError>([&] { read_results(results); }, results, {"format_version 2"});
  }
  SUBCASE("a missing root attribute") {
    edit_hdf5(results, [](hid_t file) { REQUIRE(H5Adelete(file, "kind") >= 0); });
    expect_error<repsearch::InputError>([&] { read_results(results); }, results, {"missing attribute kind of /"});
  }
  SUBCASE("missing /trajectory/activations") {
    edit_hdf5(results, [](hid_t file) { REQUIRE(H5Ldelete(file, "/trajectory/activations", H5P_DEFAULT) >= 0); });
    expect_error<repsearch::InputError>([&] { read_results(results); }, results, {"missing dataset /trajectory/activations"});
  }
  SUBCASE("missing /accuracy group") {
    edit_hdf5(results, [](hid_t file) { REQUIRE(H5Ldelete(file, "/accuracy", H5P_DEFAULT) >= 0); });
    expect_error<repsearch::InputError>([&] { read_results(results); }, results, {"missing group /accuracy"});
  }
  SUBCASE("missing /predictions group") {
    edit_hdf5(results, [](hid_t file) { REQUIRE(H5Ldelete(file, "/predictions", H5P_DEFAULT) >= 0); });
    expect_error<repsearch::InputError>([&] { read_results(results); }, results, {"missing group /predictions"});
  }
  SUBCASE("inconsistent metrics: loss of another length") {
    edit_hdf5(results, [](hid_t file) { replace_with_doubles(file, "/metrics/loss", 4); });
    expect_error<repsearch::InputError>([&] { read_results(results); }, results, {"/metrics/loss", "4 entries", "expected 5"});
  }
  SUBCASE("inconsistent trajectory: steps of another length") {
    edit_hdf5(results, [](hid_t file) {
      REQUIRE(H5Ldelete(file, "/trajectory/steps", H5P_DEFAULT) >= 0);
      const hsize_t dims[1] = {3};
      const std::int64_t values[3] = {0, 1, 2};
      const hid_t space = H5Screate_simple(1, dims, nullptr);
      const hid_t ds = H5Dcreate2(file, "/trajectory/steps", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT,
                                  H5P_DEFAULT);
      REQUIRE(ds >= 0);
      REQUIRE(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0);
      H5Dclose(ds);
      H5Sclose(space);
    });
    expect_error<repsearch::InputError>([&] { read_results(results); }, results, {"/trajectory/activations", "4 entries", "should have 3"});
  }
  SUBCASE("phase that is not strings") {
    edit_hdf5(results, [](hid_t file) { replace_with_doubles(file, "/metrics/phase", 5); });
    expect_error<repsearch::InputError>([&] { read_results(results); }, results, {"/metrics/phase", "floating-point", "expected string"});
  }
  SUBCASE("a truncated results file") {
    const std::string path = dir.file("truncated.h5");
    const std::string bytes = read_bytes(results);
    REQUIRE(bytes.size() > 1000);
    write_file(path, bytes.substr(0, bytes.size() / 2));
    expect_error<repsearch::InputError>([&] { read_results(path); }, path, {"truncated"});
  }
}

TEST_CASE("results: an example-space network's trajectories and convgroups model round-trip") {
  TempDir dir{"repsearch_test_results"};
  at::manual_seed(19);
  Results written = make_results(0, 0, 0, 6, 10);
  written.kind = "learn";
  written.spec.arch = "convgroups";
  written.spec.hidden.clear();
  written.spec.channels = {8, 8, 8};
  written.spec.depth = 3;
  written.spec.cut = 0;
  written.spec.input_shape = {1, 28, 28};
  written.spec.normalisation_mean = at::tensor({0.29f});
  written.spec.normalisation_std = at::tensor({0.35f});
  written.spec.head = "kl";
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  written.example = {"skip-block0", 3, 2, 0.03, 1, at::tensor({3, 7}, at::TensorOptions().dtype(at::kLong)),
                     at::rand({5}, f64), at::rand({5, 3}, f64), at::rand({5, 3}, f64), at::rand({5, 3}, f64),
                     at::rand({3}, f64), at::rand({3}, f64)};
  const std::string path = dir.file("learn-skip-block0-d3-s0.h5");
  write_results(path, written);
  const Results read = read_results(path);
  REQUIRE(read.example.present());
  CHECK(read.example.variant == "skip-block0");
  CHECK(read.example.depth == 3);
  CHECK(read.example.selected_epoch == 2);
  CHECK(read.example.island == 1);
  CHECK(read.example.kl_weight == 0.03);
  CHECK(at::equal(read.example.heldout_rows, written.example.heldout_rows));
  CHECK(at::equal(read.example.cosine_distance, written.example.cosine_distance));
  CHECK(at::equal(read.example.entropy_between, written.example.entropy_between));
  CHECK(at::equal(read.example.target_entropy_within, written.example.target_entropy_within));
  CHECK(read.spec.arch == "convgroups");
  CHECK(read.spec.depth == 3);
  // a file of the dataset space has none
  Results plain = make_results(2, 3, 4, 6, 10);
  write_results(dir.file("sgd-0.h5"), plain);
  CHECK_FALSE(read_results(dir.file("sgd-0.h5")).example.present());
  // rows that disagree are refused before anything is written
  Results bad = written;
  bad.example.cosine_distance = at::rand({4, 3}, f64);
  CHECK_THROWS_AS(write_results(dir.file("bad.h5"), bad), repsearch::OutputError);
  CHECK_FALSE(std::filesystem::exists(dir.file("bad.h5")));
}
