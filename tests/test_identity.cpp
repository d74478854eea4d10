// The data identity (include/repsearch/io/identity.hpp) and the network file paired with a results
// file: CRC-32s as documented (checked with zlib here), stored in archives, checkpoints and results
// files and read back, absent in older files; a pair written results-last, and refused when mismatched.
#include <doctest/doctest.h>
#include <hdf5.h>
#include <zlib.h>

#include <ATen/ATen.h>
#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "h5_testing.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/io/archive.hpp"
#include "repsearch/io/identity.hpp"
#include "repsearch/io/results.hpp"
#include "repsearch/io/rundir.hpp"

using namespace repsearch::io;
using namespace h5_testing;

namespace {

// 7 training and 3 test images [1, 2, 3] whose bytes and labels differ per row.
Dataset tiny_dataset() {
  Dataset d;
  d.name = "mnist";
  d.data_dir = "relative/dir";
  d.train_images = at::arange(7 * 6, at::kInt).remainder(251).to(at::kByte).reshape({7, 1, 2, 3});
  d.train_labels = at::tensor({3, 1, 4, 1, 5, 9, 2}, at::kLong);
  d.test_images = (at::arange(3 * 6, at::kInt) * 7).remainder(251).to(at::kByte).reshape({3, 1, 2, 3});
  d.test_labels = at::tensor({2, 7, 1}, at::kLong);
  d.n_classes = 10;
  return d;
}

std::uint64_t crc(const void* data, std::size_t bytes) {
  return ::crc32(::crc32(0L, Z_NULL, 0), static_cast<const Bytef*>(data), static_cast<uInt>(bytes));
}

const DataIdentity::Split& split(const DataIdentity& id, const std::string& name) {
  for (const auto& s : id.splits)
    if (s.name == name) return s;
  throw std::runtime_error("no split " + name);
}

void check_same(const DataIdentity& a, const DataIdentity& b) {
  CHECK(a.dataset == b.dataset);
  CHECK(a.data_dir == b.data_dir);
  REQUIRE(a.splits.size() == b.splits.size());
  for (std::size_t i = 0; i < a.splits.size(); ++i) {
    CHECK(a.splits[i].name == b.splits[i].name);
    CHECK(a.splits[i].examples == b.splits[i].examples);
    CHECK(a.splits[i].labels_crc32 == b.splits[i].labels_crc32);
    CHECK(a.splits[i].images_crc32 == b.splits[i].images_crc32);
  }
}

DataIdentity tiny_identity() {
  return data_identity(tiny_dataset(), at::tensor({4, 0, 6}, at::kLong), at::tensor({2}, at::kLong),
                       at::tensor({5, 1}, at::kLong));
}

Archive tiny_archive(const DataIdentity& id) {
  Archive a;
  a.provenance.repsearch_version = "0.1.0";
  a.provenance.data = id;
  a.dataset = "mnist";
  a.search_indices = at::tensor({4, 0, 6}, at::kLong);
  a.search_labels = at::tensor({5, 3, 2}, at::kInt);
  a.val_indices = at::tensor({2}, at::kLong);
  a.heldout_indices = at::tensor({5, 1}, at::kLong);
  a.representations = at::zeros({0, 3, 1}, at::kFloat);
  a.fitness = at::zeros({0}, at::kDouble);
  a.heldout = at::zeros({0}, at::kDouble);
  a.island = at::zeros({0}, at::kInt);
  a.generation = at::zeros({0}, at::kInt);
  a.cka = at::zeros({0, 0}, at::kDouble);
  return a;
}

Results tiny_results(const DataIdentity& id) {
  Results r;
  r.kind = "sgd";
  r.data = id;
  r.steps = at::zeros({0}, at::kLong);
  r.probe_indices = at::arange(2, at::kLong);
  r.test_probabilities = at::full({3, 10}, 0.1, at::kFloat);
  r.test_labels = at::tensor({2, 7, 1}, at::kInt);
  return r;
}

}  // namespace

TEST_CASE("data identity: per split, examples and the CRC-32 of labels (int64) and image bytes in split order") {
  const Dataset d = tiny_dataset();
  const DataIdentity id = tiny_identity();
  CHECK(id.dataset == "mnist");
  CHECK(id.data_dir == (fs::current_path() / "relative/dir").string());  // recorded absolute
  std::vector<std::string> names;
  for (const auto& s : id.splits) names.push_back(s.name);
  CHECK((names == std::vector<std::string>{"search", "val", "heldout", "test", "train"}));
  const auto& search = split(id, "search");
  CHECK(search.examples == 3);
  const std::int64_t labels[] = {5, 3, 2};  // rows 4, 0, 6 in that order
  CHECK(search.labels_crc32 == crc(labels, sizeof labels));
  const auto rows = d.train_images.index_select(0, at::tensor({4, 0, 6}, at::kLong)).contiguous();
  CHECK(search.images_crc32 == crc(rows.data_ptr(), 18));
  const auto& train = split(id, "train");
  CHECK(train.examples == 7);
  CHECK(train.images_crc32 == crc(d.train_images.data_ptr(), 42));
  CHECK(split(id, "test").labels_crc32 == crc(d.test_labels.data_ptr(), 3 * sizeof(std::int64_t)));
  // Another order of the same rows is another split.
  const auto swapped = data_identity(d, at::tensor({0, 4, 6}, at::kLong), at::tensor({2}, at::kLong), at::Tensor());
  CHECK(split(swapped, "search").images_crc32 != search.images_crc32);
  CHECK(swapped.splits.size() == 4);  // an undefined split is left out
}

TEST_CASE("data identity: differences name the split, what differs and both sources") {
  const DataIdentity id = tiny_identity();
  CHECK(identity_differences(id, "A", id, "B").empty());
  Dataset other = tiny_dataset();
  other.train_labels[0] = 8;  // row 0 is in S and in the training set, not in V or H
  const auto relabelled = data_identity(other, at::tensor({4, 0, 6}, at::kLong), at::tensor({2}, at::kLong),
                                        at::tensor({5, 1}, at::kLong));
  const auto text = identity_differences(id, "archive a.h5", relabelled, "/data/d2");
  CHECK(contains(text, "split search: labels differ (CRC-32 0x"));
  CHECK(contains(text, "in archive a.h5, CRC-32 0x"));
  CHECK(contains(text, "in /data/d2)"));
  CHECK(contains(text, "split train: labels differ"));
  CHECK_FALSE(contains(text, "split val"));
  CHECK_FALSE(contains(text, "images differ"));
  Dataset fewer = tiny_dataset();
  fewer.test_images = fewer.test_images.slice(0, 0, 2);
  fewer.test_labels = fewer.test_labels.slice(0, 0, 2);
  const auto shorter = identity_differences(id, "a", data_identity(fewer, at::Tensor(), at::Tensor(), at::Tensor()), "b");
  CHECK(contains(shorter, "split test: the numbers of examples differ (3 in a, 2 in b)"));
  CHECK_FALSE(contains(shorter, "split search"));  // recorded on one side only: not compared
}

TEST_CASE("data identity: stored in archives, checkpoints and results files; absent in older ones") {
  TempDir dir{"repsearch_test_identity"};
  const DataIdentity id = tiny_identity();
  const std::string archive = dir.file("archive.h5"), results = dir.file("sgd-0.h5"), ckpt = dir.file("checkpoint.h5");
  write_archive(archive, tiny_archive(id));
  check_same(read_archive(archive).provenance.data, id);
  write_results(results, tiny_results(id));
  check_same(read_results(results).data, id);
  Checkpoint c;
  c.provenance = tiny_archive(id).provenance;
  write_checkpoint(ckpt, c);
  check_same(read_checkpoint_header(ckpt).provenance.data, id);
  check_same(read_checkpoint(ckpt, {}, at::Device(at::kCPU)).provenance.data, id);
  // h5dump reads it without our code: [examples, labels_crc32, images_crc32] per split.
  const auto [rc, text] = run("h5dump -d /data/identity/search " + quote(archive));
  CHECK(rc == 0);
  CHECK(contains(text, "3, " + std::to_string(split(id, "search").labels_crc32)));
  // A checkpoint's identity is checksummed like its other datasets.
  edit_hdf5(ckpt, [](hid_t file) {
    const hid_t ds = H5Dopen2(file, "/data/identity/val", H5P_DEFAULT);
    REQUIRE(ds >= 0);
    const std::uint64_t damaged[3] = {1, 2, 3};
    CHECK(H5Dwrite(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, damaged) >= 0);
    H5Dclose(ds);
  });
  expect_error<repsearch::InputError>([&] { read_checkpoint_header(ckpt); }, ckpt, {"/data/identity/val", "corrupt"});
  for (const auto& path : {archive, results})
    edit_hdf5(path, [](hid_t file) { CHECK(H5Ldelete(file, "/data/identity", H5P_DEFAULT) >= 0); });
  CHECK_FALSE(read_archive(archive).provenance.data.recorded());
  CHECK_FALSE(read_results(results).data.recorded());
}

TEST_CASE("results with their network file: results renamed last, with the network's size and CRC-32") {
  TempDir dir{"repsearch_test_identity"};
  const std::string path = dir.file("learn-3f.h5");
  Results r = tiny_results(tiny_identity());
  r.model_path = dir.file("learn-3f.pt");
  std::vector<std::string> seen_at_save;
  write_results_with_model(path, r, [&](const std::string& tmp) {
    CHECK(tmp == r.model_path + ".tmp-" + std::to_string(::getpid()));
    write_file(tmp, "first network");
  });
  CHECK(read_bytes(r.model_path) == "first network");
  const Results first = read_results(path);
  CHECK(first.model_bytes == 13);
  CHECK(first.model_crc32 == crc("first network", 13));
  CHECK(check_model_file(path, first).empty());
  CHECK(model_file(path, first) == r.model_path);
  CHECK_FALSE(has_tmp_file(dir.path));

  SUBCASE("a network file that is not the one written with the results is named as a mismatched pair") {
    write_file(r.model_path, "other network");  // same size, other bytes
    const auto why = check_model_file(path, first);
    CHECK(contains(why, r.model_path));
    CHECK(contains(why, "not the one written with it"));
    CHECK(contains(why, "mismatched pair"));
    fs::remove(r.model_path);
    CHECK(contains(check_model_file(path, first), "cannot be read"));
    Results older = first;
    older.model_bytes = -1;  // results written before the record: nothing to check
    CHECK(check_model_file(path, older).empty());
  }
  SUBCASE("a failed network write leaves the old pair and no temporary") {
    const std::string results_before = read_bytes(path);
    CHECK_THROWS_AS(write_results_with_model(path, r,
                                             [&](const std::string& tmp) {
                                               write_file(tmp, "half");
                                               repsearch::fail_output(tmp, "cannot write ", tmp, ": No space left on device");
                                             }),
                    repsearch::OutputError);
    CHECK(read_bytes(path) == results_before);
    CHECK(read_bytes(r.model_path) == "first network");
    CHECK_FALSE(has_tmp_file(dir.path));
  }
  SUBCASE("a refused results write leaves the old pair and no temporary") {
    Results bad = r;
    bad.test_labels = at::Tensor();
    CHECK_THROWS_AS(write_results_with_model(path, bad, [&](const std::string& tmp) { write_file(tmp, "new network"); }),
                    repsearch::OutputError);
    CHECK(read_bytes(r.model_path) == "first network");
    CHECK(check_model_file(path, read_results(path)).empty());
    CHECK_FALSE(has_tmp_file(dir.path));
  }
  SUBCASE("replacing the pair") {
    write_results_with_model(path, r, [&](const std::string& tmp) { write_file(tmp, "second, longer network"); });
    const Results second = read_results(path);
    CHECK(second.model_bytes == 22);
    CHECK(check_model_file(path, second).empty());
    CHECK_FALSE(has_tmp_file(dir.path));
  }
}

TEST_CASE("run locks: one per output name; the lock file goes with its owner; temporaries by exact name") {
  TempDir dir{"repsearch_test_identity"};
  {
    RunLock whole(dir.path.string(), "test");
    RunLock one(dir.path.string(), "test", "learn-3f.lock");
    CHECK(fs::exists(dir.file("repsearch.lock")));
    CHECK(contains(read_bytes(dir.file("learn-3f.lock")), "pid " + std::to_string(::getpid()) + ","));
  }
  CHECK_FALSE(fs::exists(dir.file("repsearch.lock")));
  CHECK_FALSE(fs::exists(dir.file("learn-3f.lock")));
  for (const char* name : {"learn-3f.h5.tmp-12", "learn-3f.pt.tmp-345", "learn-40.h5.tmp-9", "learn-3f.h5.tmp-x"})
    write_file(dir.file(name), "left by a kill -9");
  CHECK(remove_stale_temporaries(dir.path.string(), {"learn-3f.h5", "learn-3f.pt"}) == 2);
  CHECK(fs::exists(dir.file("learn-40.h5.tmp-9")));  // another output's: its writer may be alive
  CHECK(fs::exists(dir.file("learn-3f.h5.tmp-x")));  // not a pid
}
