// HDF5 archives and checkpoints (src/io/h5.cpp): round trips of every field, readability by tools
// that are not ours (h5dump, h5py), atomic replacement, and clear refusals of bad files. Damaged files
// are made with the HDF5 C API; everything lives in a private temporary directory.
#include <doctest/doctest.h>
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "repsearch/core/error.hpp"
#include "repsearch/core/search.hpp"
#include "repsearch/io/archive.hpp"
#include "h5_testing.hpp"

namespace fs = std::filesystem;
using repsearch::Error;
using namespace repsearch::io;
using repsearch::HistoryRow;
using repsearch::IslandState;
using repsearch::MigrationEvent;
using namespace h5_testing;

namespace {

Provenance make_provenance() {
  Provenance p;
  p.repsearch_version = "0.1.0";
  p.git_commit = "0123456789ab";
  p.created = "2024-05-01T12:34:56Z";
  p.command_line = "repsearch search --config run.ini --search.population=16";
  std::ostringstream config;
  config << "[search]\nalgorithm = ga\npopulation = 16\n# σ step — ünïcode survives\n[data]\ndataset = fashion-mnist\n";
  for (int i = 0; i < 3000; ++i) config << "key_" << i << " = value " << i << "\n";  // > 64 KiB: beyond compact attrs
  p.config = config.str();
  p.config_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  p.seed = 0xFFFFFFFFFFFFFFF0ULL;  // exercises the unsigned type
  p.n_islands = 2;
  p.n_ranks = 2;
  p.hosts = "node01,node02";
  p.devices = "cpu,cuda:0";
  p.fitness = "ridge-accuracy";
  p.fitness_parameters = "lambda=0.001";
  return p;
}

HistoryRow make_row(std::int64_t generation, double base) {
  HistoryRow row;
  row.generation = generation;
  row.best = base + 0.5;
  row.mean = base + 0.25;
  row.std = base * 0.1;
  row.heldout = base + 0.4;
  row.diversity = 1.0 / (1.0 + base);
  row.disagreement = generation % 2 ? std::numeric_limits<double>::quiet_NaN() : 0.125 * base;  // NaN: not computed
  row.evaluations = 16 * (generation + 1);
  row.seconds = 0.125 * static_cast<double>(generation + 1);
  row.nonfinite = generation % 2;
  return row;
}

Archive make_archive(std::int64_t k, std::int64_t n_s, std::int64_t d) {
  Archive a;
  a.provenance = make_provenance();
  a.dataset = "fashion-mnist";
  a.data_dir = "/data/fashion-mnist";
  a.normalisation = "per-pixel standardisation";
  a.search_indices = at::randperm(1000, at::kLong).slice(0, 0, n_s).contiguous();
  a.search_labels = at::randint(0, 10, {n_s}, at::kLong);  // int64 in: written as int32
  a.val_indices = at::randperm(1000, at::kLong).slice(0, 0, 30).contiguous();
  a.heldout_indices = at::randperm(1000, at::kLong).slice(0, 0, 20).contiguous();
  a.representations = at::randn({k, n_s, d}, at::kFloat);
  a.fitness = at::rand({k}, at::kDouble);
  a.heldout = at::rand({k}, at::kDouble);
  a.island = at::randint(0, 2, {k}, at::kInt);
  a.generation = at::randint(0, 100, {k}, at::kInt);
  for (std::int64_t i = 0; i < k; ++i) a.uid.push_back((std::uint64_t{1} << 40) + 1000 + static_cast<std::uint64_t>(i));
  a.cka = at::rand({k, k}, at::kDouble);
  a.disagreement = at::rand({k, k}, at::kDouble);
  a.elite_selection = "diverse tolerance=0.02 within=5";
  for (int island = 0; island < 2; ++island) {
    std::vector<HistoryRow> rows;
    for (int g = 0; g < 3; ++g) rows.push_back(make_row(g, island + 0.1 * g));
    a.histories.push_back(rows);
  }
  a.migrations.push_back({5, 0, 1, (std::uint64_t{0} << 40) | 17, 0.75});
  a.migrations.push_back({10, 1, 0, (std::uint64_t{1} << 40) | 23, 0.8125});
  return a;
}

void check_tensor(const at::Tensor& read, const at::Tensor& written, at::ScalarType type) {
  REQUIRE(read.defined());
  CHECK_MESSAGE((read.scalar_type() == type), "dtype ", c10::toString(read.scalar_type()));
  CHECK(read.device().is_cpu());
  CHECK((read.sizes() == written.sizes()));
  CHECK(at::equal(read, written.to(type)));
}

void check_provenance(const Provenance& r, const Provenance& w) {
  CHECK(r.repsearch_version == w.repsearch_version);
  CHECK(r.git_commit == w.git_commit);
  CHECK(r.created == w.created);
  CHECK(r.command_line == w.command_line);
  CHECK(r.config == w.config);
  CHECK(r.config_sha256 == w.config_sha256);
  CHECK(r.seed == w.seed);
  CHECK(r.n_islands == w.n_islands);
  CHECK(r.n_ranks == w.n_ranks);
  CHECK(r.hosts == w.hosts);
  CHECK(r.devices == w.devices);
  CHECK(r.fitness == w.fitness);
  CHECK(r.fitness_parameters == w.fitness_parameters);
}

void check_history(const std::vector<HistoryRow>& r, const std::vector<HistoryRow>& w) {
  REQUIRE(r.size() == w.size());
  for (std::size_t i = 0; i < r.size(); ++i) {
    CHECK(r[i].generation == w[i].generation);
    CHECK(r[i].best == w[i].best);
    CHECK(r[i].mean == w[i].mean);
    CHECK(r[i].std == w[i].std);
    CHECK(r[i].heldout == w[i].heldout);
    CHECK(r[i].diversity == w[i].diversity);
    CHECK((r[i].disagreement == w[i].disagreement || (std::isnan(r[i].disagreement) && std::isnan(w[i].disagreement))));
    CHECK(r[i].evaluations == w[i].evaluations);
    CHECK(r[i].seconds == w[i].seconds);
    CHECK(r[i].nonfinite == w[i].nonfinite);
  }
}

void check_migrations(const std::vector<MigrationEvent>& r, const std::vector<MigrationEvent>& w) {
  REQUIRE(r.size() == w.size());
  for (std::size_t i = 0; i < r.size(); ++i) {
    CHECK(r[i].generation == w[i].generation);
    CHECK(r[i].source == w[i].source);
    CHECK(r[i].destination == w[i].destination);
    CHECK(r[i].uid == w[i].uid);
    CHECK(r[i].fitness == w[i].fitness);
  }
}

void check_archive(const Archive& r, const Archive& w) {
  check_provenance(r.provenance, w.provenance);
  CHECK(r.dataset == w.dataset);
  CHECK(r.data_dir == w.data_dir);
  CHECK(r.normalisation == w.normalisation);
  check_tensor(r.search_indices, w.search_indices, at::kLong);
  check_tensor(r.search_labels, w.search_labels, at::kInt);
  check_tensor(r.val_indices, w.val_indices, at::kLong);
  check_tensor(r.heldout_indices, w.heldout_indices, at::kLong);
  check_tensor(r.representations, w.representations, at::kFloat);
  check_tensor(r.fitness, w.fitness, at::kDouble);
  check_tensor(r.heldout, w.heldout, at::kDouble);
  check_tensor(r.island, w.island, at::kInt);
  check_tensor(r.generation, w.generation, at::kInt);
  CHECK(r.uid == w.uid);
  check_tensor(r.cka, w.cka, at::kDouble);
  REQUIRE(r.disagreement.defined() == w.disagreement.defined());
  if (w.disagreement.defined()) check_tensor(r.disagreement, w.disagreement, at::kDouble);
  CHECK(r.elite_selection == w.elite_selection);
  REQUIRE(r.histories.size() == w.histories.size());
  for (std::size_t i = 0; i < r.histories.size(); ++i) check_history(r.histories[i], w.histories[i]);
  check_migrations(r.migrations, w.migrations);
}

IslandState make_island(std::int64_t index, std::int64_t generation) {
  IslandState s;
  s.island = index;
  s.generation = generation;
  s.population = at::randn({4, 20, 3}, at::kFloat);
  s.fitness = at::rand({4}, at::kDouble);
  for (int i = 0; i < 4; ++i) {
    s.uid.push_back(s.new_uid());
    s.born.push_back(static_cast<std::int32_t>(generation - i));
  }
  const double x = static_cast<double>(index);
  s.op_weights = {0.1 + x, 0.2, 0.3, 0.4};
  s.sigma = 0.3 + 0.01 * x;
  s.evaluations = 1000 + index;
  s.nonfinite = index;
  s.seconds = 12.5 + x;
  for (int g = 0; g <= 2; ++g) s.history.push_back(make_row(g, x + 0.5 * g));
  if (index == 1) s.foreign = at::randn({2, 5, 3}, at::kFloat);  // island-repulsion references
  return s;
}

Checkpoint make_checkpoint() {
  Checkpoint c;
  c.provenance = make_provenance();
  c.provenance.n_islands = 3;
  c.generation = 7;
  for (std::int64_t i = 0; i < 3; ++i) c.islands.push_back(make_island(i, 7));
  c.migrations.push_back({3, 2, 0, (std::uint64_t{2} << 40) | 5, 0.5});
  return c;
}

void check_island(const IslandState& r, const IslandState& w) {
  CHECK(r.island == w.island);
  CHECK(r.generation == w.generation);
  check_tensor(r.population, w.population, at::kFloat);
  check_tensor(r.fitness, w.fitness, at::kDouble);
  CHECK(r.uid == w.uid);
  CHECK(r.born == w.born);
  CHECK(r.next_serial == w.next_serial);
  CHECK(r.op_weights == w.op_weights);
  CHECK(r.sigma == w.sigma);
  CHECK(r.evaluations == w.evaluations);
  CHECK(r.nonfinite == w.nonfinite);
  CHECK(r.seconds == w.seconds);
  check_history(r.history, w.history);
  REQUIRE(r.foreign.defined() == w.foreign.defined());
  if (w.foreign.defined()) check_tensor(r.foreign, w.foreign, at::kFloat);
}

}  // namespace

TEST_CASE("archive: round trip of every field and attribute") {
  TempDir dir{"repsearch_test_archive"};
  at::manual_seed(1);
  const Archive written = make_archive(3, 50, 4);
  const std::string path = dir.file("nested/run/archive.h5");  // parents are created
  write_archive(path, written);
  CHECK(fs::exists(path));
  CHECK_FALSE(has_tmp_file(fs::path(path).parent_path()));
  const Archive read = read_archive(path);
  check_archive(read, written);

  SUBCASE("overwriting replaces the file") {
    at::manual_seed(2);
    const Archive second = make_archive(2, 50, 5);
    write_archive(path, second);
    check_archive(read_archive(path), second);
    CHECK_FALSE(has_tmp_file(fs::path(path).parent_path()));
  }
}

TEST_CASE("archive: files without the diversity datasets (written before them) still read") {
  TempDir dir{"repsearch_test_archive"};
  at::manual_seed(4);
  Archive written = make_archive(3, 50, 4);
  const std::string path = dir.file("old.h5");
  write_archive(path, written);
  {  // remove what older versions did not write
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(f >= 0);
    CHECK(H5Ldelete(f, "/elites/disagreement", H5P_DEFAULT) >= 0);
    CHECK(H5Ldelete(f, "/islands/0/history/disagreement", H5P_DEFAULT) >= 0);
    hid_t g = H5Gopen2(f, "/elites", H5P_DEFAULT);
    CHECK(H5Adelete(g, "selection") >= 0);
    H5Gclose(g);
    H5Fclose(f);
  }
  const Archive read = read_archive(path);
  CHECK_FALSE(read.disagreement.defined());
  CHECK(read.elite_selection.empty());
  for (const auto& row : read.histories[0]) CHECK(std::isnan(row.disagreement));
  check_history(read.histories[1], written.histories[1]);
  check_tensor(read.cka, written.cka, at::kDouble);
}

TEST_CASE("archive: zero elites, islands and migrations round-trip") {
  TempDir dir{"repsearch_test_archive"};
  at::manual_seed(3);
  Archive written = make_archive(0, 50, 4);
  written.histories.clear();
  written.migrations.clear();
  const std::string path = dir.file("empty.h5");
  write_archive(path, written);
  const Archive read = read_archive(path);
  check_archive(read, written);
  CHECK((read.representations.sizes() == at::IntArrayRef({0, 50, 4})));
  CHECK((read.cka.sizes() == at::IntArrayRef({0, 0})));
}

TEST_CASE("archive: readable by h5dump and h5py without our code") {
  TempDir dir{"repsearch_test_archive"};
  at::manual_seed(4);
  const Archive written = make_archive(3, 50, 4);
  const std::string path = dir.file("archive.h5");
  write_archive(path, written);

  const auto [rc_h, header] = run("h5dump -H -g /elites " + quote(path));
  INFO("h5dump -H -g /elites: ", header);
  REQUIRE(rc_h == 0);
  CHECK(contains(header, "/elites"));
  CHECK(contains(header, "representations"));
  CHECK(contains(header, "DATATYPE  H5T_IEEE_F32LE"));
  CHECK(contains(header, "DATASPACE  SIMPLE { ( 3, 50, 4 ) / ( 3, 50, 4 ) }"));

  const auto [rc_p, properties] = run("h5dump -H -p -d /elites/representations " + quote(path));
  INFO("h5dump -H -p: ", properties);
  REQUIRE(rc_p == 0);
  CHECK(contains(properties, "CHUNKED ( 1, 50, 4 )"));
  CHECK(contains(properties, "SHUFFLE"));
  CHECK(contains(properties, "DEFLATE { LEVEL 4 }"));

  const auto [rc_a, format] = run("h5dump -a /format " + quote(path));
  INFO("h5dump -a /format: ", format);
  REQUIRE(rc_a == 0);
  CHECK(contains(format, "repsearch-archive"));
  CHECK(contains(format, "H5T_CSET_UTF8"));

  const std::string python = h5py_python();  // python3 or /usr/bin/python3 with h5py; absent → fail
  const std::string script = dir.file("check.py");
  write_file(script,
              "import sys, h5py\n"
              "f = h5py.File(sys.argv[1], 'r')\n"
              "r = f['elites/representations']\n"
              "c = f.attrs['config']\n"
              "assert isinstance(c, str), type(c)\n"
              "assert isinstance(f.attrs['format'], str)\n"
              "open(sys.argv[2], 'w', encoding='utf-8', newline='').write(c)\n"
              "print('shape', *r.shape)\n"
              "print('dtype', r.dtype)\n"
              "print('format', f.attrs['format'])\n"
              "print('version', int(f.attrs['format_version']))\n"
              "print('seed', int(f.attrs['seed']))\n"
              "print('fitness0', repr(float(f['elites/fitness'][0])))\n"
              "print('rep123', repr(float(r[1, 2, 3])))\n"
              "print('history', *f['islands/1/history/best'].shape)\n"
              "print('migrations', *f['migrations/uid'].shape)\n"
              "print('dataset', f['data'].attrs['dataset'])\n");
  const std::string config_out = dir.file("config.txt");
  const auto [rc_py, out] =
      run(python + " " + quote(script) + " " + quote(path) + " " + quote(config_out));
  INFO("h5py (", python, "): ", out);
  REQUIRE(rc_py == 0);
  CHECK(contains(out, "shape 3 50 4\n"));
  CHECK(contains(out, "dtype float32\n"));
  CHECK(contains(out, "format repsearch-archive\n"));
  CHECK(contains(out, "version 1\n"));
  CHECK(contains(out, "seed " + std::to_string(written.provenance.seed) + "\n"));
  CHECK(contains(out, "history 3\n"));
  CHECK(contains(out, "migrations 2\n"));
  CHECK(contains(out, "dataset fashion-mnist\n"));
  CHECK(read_bytes(config_out) == written.provenance.config);
  std::istringstream lines(out);
  std::string key, value;
  while (lines >> key >> value) {
    if (key == "fitness0") CHECK(std::stod(value) == written.fitness[0].item<double>());
    if (key == "rep123") CHECK(std::stod(value) == static_cast<double>(written.representations[1][2][3].item<float>()));
  }
}

TEST_CASE("checkpoint: round trip, a subset of islands, header only") {
  TempDir dir{"repsearch_test_archive"};
  at::manual_seed(5);
  const Checkpoint written = make_checkpoint();
  const std::string path = dir.file("checkpoint.h5");
  write_checkpoint(path, written);
  CHECK_FALSE(has_tmp_file(dir.path));

  const Checkpoint all = read_checkpoint(path, {}, at::Device(at::kCPU));
  check_provenance(all.provenance, written.provenance);
  CHECK(all.generation == 7);
  REQUIRE(all.islands.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) check_island(all.islands[i], written.islands[i]);
  check_migrations(all.migrations, written.migrations);

  const Checkpoint some = read_checkpoint(path, {2, 0}, at::Device(at::kCPU));
  REQUIRE(some.islands.size() == 2);
  CHECK(some.islands[0].island == 2);
  CHECK(some.islands[1].island == 0);
  check_island(some.islands[0], written.islands[2]);
  check_island(some.islands[1], written.islands[0]);
  check_migrations(some.migrations, written.migrations);

  const Checkpoint header = read_checkpoint_header(path);
  check_provenance(header.provenance, written.provenance);
  CHECK(header.generation == 7);
  CHECK(header.islands.empty());

  const auto [rc, rng] = run("h5dump -a /rng " + quote(path));
  CHECK(rc == 0);
  CHECK(contains(rng, "counter-based"));

  // One schema: every field the wire carries (for_each_island_field) is stored under its name, so a
  // field added to the list but not to the checkpoint fails here. Island 1 holds `foreign`.
  edit_hdf5(path, [&](hid_t file) {
    int fields = 0;
    repsearch::for_each_island_field(written.islands[1], [&](const char* name, const auto&) {
      const std::string group = "/islands/1";
      const bool stored = H5Aexists_by_name(file, group.c_str(), name, H5P_DEFAULT) > 0 ||
                          H5Lexists(file, (group + "/" + name).c_str(), H5P_DEFAULT) > 0;
      const std::string missing = std::string("island field '") + name + "' is not in the checkpoint";
      CHECK_MESSAGE(stored, missing);
      ++fields;
    });
    CHECK(fields == 14);
  });

  expect_error<repsearch::InputError>([&] { read_checkpoint(path, {5, 1, 7}, at::Device(at::kCPU)); }, path, {"no island 5, 7", "0, 1, 2"});
}

TEST_CASE("checkpoint: refuses to write islands at different generations") {
  TempDir dir{"repsearch_test_archive"};
  Checkpoint c = make_checkpoint();
  c.islands[1].generation = 6;
  const std::string path = dir.file("checkpoint.h5");
  expect_error<repsearch::OutputError>([&] { write_checkpoint(path, c); }, path, {"generation 6"});
  CHECK_FALSE(fs::exists(path));
  CHECK_FALSE(has_tmp_file(dir.path));
}

TEST_CASE("archive: a failed write leaves the previous file intact and no temporary file") {
  TempDir dir{"repsearch_test_archive"};
  at::manual_seed(6);
  const Archive good = make_archive(3, 50, 4);
  const std::string path = dir.file("archive.h5");
  write_archive(path, good);
  const std::string before = read_bytes(path);

  SUBCASE("inconsistent /elites: throws midway, after /data was written") {
    Archive bad = good;
    bad.cka = at::zeros({3, 4}, at::kDouble);
    expect_error<repsearch::OutputError>([&] { write_archive(path, bad); }, path, {"cka", "expected 3"});
  }
  SUBCASE("inconsistent /data: throws before the first dataset") {
    Archive bad = good;
    bad.search_labels = at::zeros({49}, at::kInt);
    expect_error<repsearch::OutputError>([&] { write_archive(path, bad); }, path, {"search_labels", "49"});
  }
  SUBCASE("fitness of another length") {
    Archive bad = good;
    bad.fitness = at::zeros({4}, at::kDouble);
    expect_error<repsearch::OutputError>([&] { write_archive(path, bad); }, path, {"fitness", "4 entries"});
  }
  CHECK(read_bytes(path) == before);
  CHECK_FALSE(has_tmp_file(dir.path));
  check_archive(read_archive(path), good);
}

TEST_CASE("archive and checkpoint readers refuse bad files with a clear error") {
  TempDir dir{"repsearch_test_archive"};
  at::manual_seed(7);
  const Archive good = make_archive(3, 50, 4);
  const std::string archive = dir.file("good.h5");
  write_archive(archive, good);

  SUBCASE("nonexistent path") {
    const std::string path = dir.file("missing.h5");
    expect_error<repsearch::InputError>([&] { read_archive(path); }, path, {"no such file"});
    expect_error<repsearch::InputError>([&] { read_checkpoint_header(path); }, path, {"no such file"});
  }
  SUBCASE("a text file") {
    const std::string path = dir.file("notes.h5");
    write_file(path, "this is not HDF5\n");
    expect_error<repsearch::InputError>([&] { read_archive(path); }, path, {"not an HDF5 file"});
  }
  SUBCASE("an HDF5 file without a format attribute") {
    const std::string path = dir.file("foreign.h5");
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(file >= 0);
    const hid_t group = H5Gcreate2(file, "/elites", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(group >= 0);
    H5Gclose(group);
    REQUIRE(H5Fclose(file) >= 0);
    expect_error<repsearch::InputError>([&] { read_archive(path); }, path, {"no format attribute", "not a repsearch file"});
    expect_error<repsearch::InputError>([&] { read_checkpoint(path, {}, at::Device(at::kCPU)); }, path, {"no format attribute"});
  }
  SUBCASE("a checkpoint passed as an archive, and the reverse") {
    const std::string path = dir.file("checkpoint.h5");
    write_checkpoint(path, make_checkpoint());
    expect_error<repsearch::InputError>([&] { read_archive(path); }, path,
                 {"expected a repsearch archive (format=repsearch-archive), found format='repsearch-checkpoint'"});
    expect_error<repsearch::InputError>([&] { read_checkpoint_header(archive); }, archive, {"found format='repsearch-archive'"});
  }
  SUBCASE("another format_version") {
    edit_hdf5(archive, [](hid_t file) {
      REQUIRE(H5Adelete(file, "format_version") >= 0);
      write_int64_attr(file, "format_version", 2);
    });
    expect_error<repsearch::InputError>([&] { read_archive(archive); }, archive, {"format_version 2"});
  }
  SUBCASE("missing /elites/representations") {
    edit_hdf5(archive, [](hid_t file) { REQUIRE(H5Ldelete(file, "/elites/representations", H5P_DEFAULT) >= 0); });
    expect_error<repsearch::InputError>([&] { read_archive(archive); }, archive, {"missing dataset /elites/representations"});
  }
  SUBCASE("missing /migrations group") {
    edit_hdf5(archive, [](hid_t file) { REQUIRE(H5Ldelete(file, "/migrations", H5P_DEFAULT) >= 0); });
    expect_error<repsearch::InputError>([&] { read_archive(archive); }, archive, {"missing group /migrations"});
  }
  SUBCASE("inconsistent shapes: fitness of length k + 1") {
    edit_hdf5(archive, [](hid_t file) {
      REQUIRE(H5Ldelete(file, "/elites/fitness", H5P_DEFAULT) >= 0);
      const hsize_t dims[1] = {4};
      const double values[4] = {1, 2, 3, 4};
      const hid_t space = H5Screate_simple(1, dims, nullptr);
      const hid_t ds =
          H5Dcreate2(file, "/elites/fitness", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      REQUIRE(ds >= 0);
      REQUIRE(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0);
      H5Dclose(ds);
      H5Sclose(space);
    });
    expect_error<repsearch::InputError>([&] { read_archive(archive); }, archive, {"/elites/fitness", "4 entries", "should have 3"});
  }
  SUBCASE("an object of the wrong kind: a group where a dataset belongs") {
    edit_hdf5(archive, [](hid_t file) {
      REQUIRE(H5Ldelete(file, "/elites/representations", H5P_DEFAULT) >= 0);
      const hid_t group = H5Gcreate2(file, "/elites/representations", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      REQUIRE(group >= 0);
      H5Gclose(group);
    });
    expect_error<repsearch::InputError>([&] { read_archive(archive); }, archive, {"[HDF5]", "/elites/representations", "expected a dataset"});
  }
  SUBCASE("values of the wrong class: floating-point island indices") {
    edit_hdf5(archive, [](hid_t file) {
      REQUIRE(H5Ldelete(file, "/elites/island", H5P_DEFAULT) >= 0);
      const hsize_t dims[1] = {3};
      const double values[3] = {0, 1, 0};
      const hid_t space = H5Screate_simple(1, dims, nullptr);
      const hid_t ds = H5Dcreate2(file, "/elites/island", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      REQUIRE(ds >= 0);
      REQUIRE(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0);
      H5Dclose(ds);
      H5Sclose(space);
    });
    expect_error<repsearch::InputError>([&] { read_archive(archive); }, archive, {"/elites/island", "floating-point", "expected integer"});
  }
  SUBCASE("a truncated archive") {
    const std::string path = dir.file("truncated.h5");
    const std::string bytes = read_bytes(archive);
    REQUIRE(bytes.size() > 1000);
    write_file(path, bytes.substr(0, bytes.size() / 2));
    expect_error<repsearch::InputError>([&] { read_archive(path); }, path, {"truncated"});
  }
}

TEST_CASE("checkpoint integrity: damage is detected, the previous checkpoint is kept, a bad new one never replaces it") {
  TempDir dir{"repsearch_test_archive"};
  at::manual_seed(11);
  const std::string path = dir.file("checkpoint.h5"), prev = previous_checkpoint(path);
  CHECK(prev == dir.file("checkpoint.prev.h5"));
  Checkpoint first = make_checkpoint();
  write_checkpoint(path, first);
  CHECK_FALSE(fs::exists(prev));  // nothing to keep yet
  Checkpoint second = make_checkpoint();
  second.generation = 8;
  for (auto& s : second.islands) s.generation = 8;
  write_checkpoint(path, second);
  REQUIRE(fs::exists(prev));
  CHECK(read_checkpoint_header(prev).generation == 7);
  CHECK(read_checkpoint_header(path).generation == 8);
  CHECK_FALSE(has_tmp_file(dir.path));
  const auto [rc, attrs] = run("h5dump -a /islands/1/population/crc32 " + quote(path));
  CHECK(rc == 0);  // every dataset carries its CRC-32, readable by standard tools

  SUBCASE("a kill between the two renames left checkpoint.prev.h5 a second link to checkpoint.h5") {
    fs::remove(prev);
    fs::create_hard_link(path, prev);
    Checkpoint third = make_checkpoint();
    third.generation = 9;
    for (auto& s : third.islands) s.generation = 9;
    write_checkpoint(path, third);
    CHECK_FALSE(has_tmp_file(dir.path));  // rename() onto another link of the same file does nothing
    CHECK(read_checkpoint_header(path).generation == 9);
    CHECK(read_checkpoint_header(prev).generation == 8);
  }
  SUBCASE("a changed population value (valid HDF5, stale checksum) is refused") {
    edit_hdf5(path, [](hid_t file) {
      hid_t ds = H5Dopen2(file, "/islands/1/population", H5P_DEFAULT);
      REQUIRE(ds >= 0);
      std::vector<float> all(static_cast<std::size_t>(H5Sget_simple_extent_npoints(H5Dget_space(ds))));
      REQUIRE(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, all.data()) >= 0);
      all[3] = 1e30f;  // what a hostile edit or a flipped bit would leave
      REQUIRE(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, all.data()) >= 0);
      H5Dclose(ds);
    });
    expect_error<repsearch::InputError>([&] { read_checkpoint(path, {}, at::Device(at::kCPU)); }, path,
                 {"/islands/1/population", "corrupt", "CRC-32"});
    read_checkpoint(path, {0, 2}, at::Device(at::kCPU));  // the intact islands still read
  }
  SUBCASE("a changed config attribute is refused") {
    edit_hdf5(path, [](hid_t file) {
      REQUIRE(H5Adelete(file, "generation") >= 0);
      write_int64_attr(file, "generation", 9);
    });
    expect_error<repsearch::InputError>([&] { read_checkpoint_header(path); }, path, {"root attributes", "corrupt"});
  }
  SUBCASE("64 bytes of 0xFF in the middle of the file are refused") {
    const auto size = fs::file_size(path);
    {
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(size / 2));
      const std::string ff(64, '\xff');
      f.write(ff.data(), 64);
    }
    expect_error<repsearch::InputError>([&] { read_checkpoint(path, {}, at::Device(at::kCPU)); }, path, {});
  }
  SUBCASE("a population that is not finite is never written over a good checkpoint") {
    Checkpoint bad = make_checkpoint();
    bad.generation = 9;
    for (auto& s : bad.islands) s.generation = 9;
    bad.islands[2].population[0][0][0] = std::numeric_limits<float>::quiet_NaN();
    expect_error<repsearch::OutputError>([&] { write_checkpoint(path, bad); }, path, {"did not read back intact", "non-finite"});
    CHECK(read_checkpoint_header(path).generation == 8);  // untouched
    CHECK(read_checkpoint_header(prev).generation == 7);
    CHECK_FALSE(has_tmp_file(dir.path));
  }
}
