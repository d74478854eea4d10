// Data set readers (IDX, CIFAR binary), the registry, and the tensor-only data preparation in
// core/data.hpp. Synthetic files are written byte for byte in the on-disk formats into a private
// temporary directory; the real Fashion-MNIST comes from REPSEARCH_FMNIST_DIR.
#include <doctest/doctest.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "repsearch/core/data.hpp"
#include "repsearch/core/error.hpp"
#include "repsearch/io/dataset.hpp"
#include "testing.hpp"

namespace fs = std::filesystem;
using repsearch::Error;
using Bytes = std::vector<std::uint8_t>;

namespace {

using testing::TempDir;

void write_plain(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(out.good());
}

void write_gz(const std::string& path, const Bytes& b) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  if (!b.empty()) REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

void put_be32(Bytes& b, std::uint32_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 24));
  b.push_back(static_cast<std::uint8_t>(v >> 16));
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}

// An IDX file of unsigned bytes with the given dims and data.
Bytes idx_bytes(const std::vector<std::uint32_t>& dims, const Bytes& data) {
  Bytes b = {0x00, 0x00, 0x08, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims) put_be32(b, d);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

// Pixel value of image n at (h, w), distinct for the small sizes used here.
std::uint8_t pix(int n, int h, int w) { return static_cast<std::uint8_t>((n * 37 + h * 11 + w * 3 + 1) % 251); }

Bytes image_data(int n, int h, int w) {
  Bytes b;
  for (int i = 0; i < n; ++i)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) b.push_back(pix(i, y, x));
  return b;
}

// CIFAR pixel for record n, channel c, row h, column w.
std::uint8_t cpix(int n, int c, int h, int w) { return static_cast<std::uint8_t>((n * 7 + c * 85 + h * 5 + w) % 256); }

// CIFAR-10 (labels = {label}) or CIFAR-100 (labels = {coarse, fine}) records.
Bytes cifar_bytes(const std::vector<std::vector<std::uint8_t>>& labels) {
  Bytes b;
  for (int n = 0; n < static_cast<int>(labels.size()); ++n) {
    b.insert(b.end(), labels[n].begin(), labels[n].end());
    for (int c = 0; c < 3; ++c)
      for (int h = 0; h < 32; ++h)
        for (int w = 0; w < 32; ++w) b.push_back(cpix(n, c, h, w));
  }
  return b;
}

// The message of the repsearch::Error that f throws; fails the test if it throws nothing.
// Any other exception type escapes and fails the test case as well.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL_CHECK("expected repsearch::Error, nothing was thrown");
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The message of the repsearch::InputError that f throws, after checking its fields: the file it
// names lies in `where` (a file or its directory) and appears in the message, which ends with the reason.
// Any other outcome fails the test.
std::string input_error_of(const std::string& where, const std::function<void()>& f) {
  try {
    f();
  } catch (const repsearch::InputError& e) {
    const std::string m = e.what();
    CHECK_MESSAGE(e.file.rfind(where, 0) == 0, "file '", e.file, "' not in '", where, "'");
    CHECK(contains(m, e.file));
    CHECK_FALSE(e.reason.empty());
    CHECK(m.size() >= e.reason.size());
    CHECK(m.compare(m.size() - std::min(m.size(), e.reason.size()), std::string::npos, e.reason) == 0);
    return m;
  }
  FAIL_CHECK("expected repsearch::InputError, nothing was thrown");
  return "";
}

#define CHECK_ERROR_MENTIONS(msg, part) CHECK_MESSAGE(contains(msg, part), "message: " << (msg) << "\nlacks: " << (part))

// A fake MNIST-style directory: 4 IDX files with the given images/labels.
void write_mnist_dir(const TempDir& d, int n_train, int n_test, int h = 28, int w = 28, bool gz = false) {
  auto write = gz ? write_gz : write_plain;
  const std::string ext = gz ? ".gz" : "";
  Bytes trl, tel;
  for (int i = 0; i < n_train; ++i) trl.push_back(static_cast<std::uint8_t>(i % 10));
  for (int i = 0; i < n_test; ++i) tel.push_back(static_cast<std::uint8_t>((i + 3) % 10));
  write(d.file("train-images-idx3-ubyte" + ext),
        idx_bytes({std::uint32_t(n_train), std::uint32_t(h), std::uint32_t(w)}, image_data(n_train, h, w)));
  write(d.file("train-labels-idx1-ubyte" + ext), idx_bytes({std::uint32_t(n_train)}, trl));
  write(d.file("t10k-images-idx3-ubyte" + ext),
        idx_bytes({std::uint32_t(n_test), std::uint32_t(h), std::uint32_t(w)}, image_data(n_test, h, w)));
  write(d.file("t10k-labels-idx1-ubyte" + ext), idx_bytes({std::uint32_t(n_test)}, tel));
}

// Real Fashion-MNIST, loaded once for all test cases that need it.
const repsearch::io::Dataset& fmnist() {
  static const repsearch::io::Dataset d = repsearch::io::load_dataset("fashion-mnist", REPSEARCH_FMNIST_DIR);
  return d;
}

// First byte of data of a (gzip) IDX labels file, read independently of read_idx.
int first_label_byte(const std::string& path, std::size_t index) {
  gzFile f = gzopen(path.c_str(), "rb");
  REQUIRE(f != nullptr);
  std::vector<unsigned char> buf(8 + index + 1);
  const int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
  gzclose(f);
  REQUIRE(n == static_cast<int>(buf.size()));
  REQUIRE(buf[2] == 0x08);
  REQUIRE(buf[3] == 0x01);
  return buf[8 + index];
}

}  // namespace

// ============================================ IDX ============================================

TEST_CASE("read_idx: 3-dim and 1-dim files, plain and gzip, element order preserved") {
  TempDir d;
  const int n = 3, h = 4, w = 5;
  const Bytes img = idx_bytes({n, h, w}, image_data(n, h, w));
  const Bytes lbl = idx_bytes({6}, {9, 0, 3, 255, 7, 1});
  for (bool gz : {false, true}) {
    CAPTURE(gz);
    const std::string ip = d.file(gz ? "img.gz" : "img"), lp = d.file(gz ? "lbl.gz" : "lbl");
    (gz ? write_gz : write_plain)(ip, img);
    (gz ? write_gz : write_plain)(lp, lbl);

    at::Tensor t = repsearch::io::read_idx(ip);
    CHECK((t.scalar_type() == at::kByte));
    REQUIRE(t.dim() == 3);
    CHECK(t.size(0) == n);
    CHECK(t.size(1) == h);
    CHECK(t.size(2) == w);
    auto a = t.accessor<std::uint8_t, 3>();
    int bad = 0;
    for (int i = 0; i < n; ++i)
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) bad += a[i][y][x] != pix(i, y, x);
    CHECK(bad == 0);

    at::Tensor l = repsearch::io::read_idx(lp);
    CHECK((l.scalar_type() == at::kByte));
    REQUIRE(l.dim() == 1);
    REQUIRE(l.size(0) == 6);
    const std::vector<int> want = {9, 0, 3, 255, 7, 1};
    for (int i = 0; i < 6; ++i) CHECK(l[i].item<int>() == want[i]);
  }
}

TEST_CASE("read_idx: gzip is detected by content, not by file name") {
  TempDir d;
  const Bytes b = idx_bytes({2, 2}, {1, 2, 3, 4});
  write_gz(d.file("looks-plain"), b);
  write_plain(d.file("looks-gzipped.gz"), b);
  for (const char* name : {"looks-plain", "looks-gzipped.gz"}) {
    at::Tensor t = repsearch::io::read_idx(d.file(name));
    REQUIRE(t.sizes() == at::IntArrayRef({2, 2}));
    CHECK(t[1][0].item<int>() == 3);
  }
}

TEST_CASE("read_idx: 4-dim file and large dimension sizes use big-endian") {
  TempDir d;
  // 258 = 0x00000102: a little-endian reader would see a huge size.
  Bytes data(258 * 2, 0);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i);
  write_plain(d.file("f"), idx_bytes({1, 258, 1, 2}, data));
  at::Tensor t = repsearch::io::read_idx(d.file("f"));
  CHECK(t.sizes() == at::IntArrayRef({1, 258, 1, 2}));
  CHECK(t[0][257][0][1].item<int>() == static_cast<std::uint8_t>(257 * 2 + 1));
}

TEST_CASE("read_idx: bad inputs are errors naming the file") {
  TempDir d;
  using repsearch::io::read_idx;

  SUBCASE("missing file") {
    const std::string p = d.file("nope-idx3-ubyte");
    CHECK_THROWS_AS(read_idx(p), Error);
    const std::string m = input_error_of(p, [&] { read_idx(p); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "no such file");
  }
  SUBCASE("a directory instead of a file") {
    const std::string p = d.file("adir");
    fs::create_directories(p);
    const std::string m = input_error_of(p, [&] { read_idx(p); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "directory");
  }
  SUBCASE("empty file") {
    const std::string p = d.file("empty");
    write_plain(p, {});
    const std::string m = input_error_of(p, [&] { read_idx(p); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "header");
  }
  SUBCASE("file shorter than the header (dims cut off)") {
    const std::string p = d.file("shorthdr");
    Bytes b = idx_bytes({10, 28, 28}, {});
    b.resize(9);
    write_plain(p, b);
    const std::string m = input_error_of(p, [&] { read_idx(p); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "header of 16 bytes");
    CHECK_ERROR_MENTIONS(m, "truncated");
  }
  SUBCASE("truncated data, plain") {
    const std::string p = d.file("trunc");
    Bytes b = idx_bytes({3, 4, 5}, image_data(3, 4, 5));
    b.resize(b.size() - 7);
    write_plain(p, b);
    const std::string m = input_error_of(p, [&] { read_idx(p); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "truncated");
    CHECK_ERROR_MENTIONS(m, "expected 60 data bytes");
    CHECK_ERROR_MENTIONS(m, "found 53");
  }
  SUBCASE("truncated data, gzip (complete gzip stream of short content)") {
    const std::string p = d.file("trunc.gz");
    Bytes b = idx_bytes({3, 4, 5}, image_data(3, 4, 5));
    b.resize(b.size() - 1);
    write_gz(p, b);
    const std::string m = input_error_of(p, [&] { read_idx(p); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "truncated");
    CHECK_ERROR_MENTIONS(m, "found 59");
  }
  SUBCASE("damaged gzip stream (compressed file cut short)") {
    const std::string full = d.file("full.gz"), p = d.file("cut.gz");
    write_gz(full, idx_bytes({50, 28, 28}, image_data(50, 28, 28)));
    std::ifstream in(full, std::ios::binary);
    Bytes raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(raw.size() > 40);
    raw.resize(raw.size() / 2);
    write_plain(p, raw);
    const std::string m = input_error_of(p, [&] { read_idx(p); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "gzip");
  }
  SUBCASE("trailing extra data") {
    const std::string p = d.file("extra");
    Bytes b = idx_bytes({2, 2}, {1, 2, 3, 4});
    b.push_back(0);
    b.push_back(0);
    write_plain(p, b);
    const std::string m = input_error_of(p, [&] { read_idx(p); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "trailing");
    CHECK_ERROR_MENTIONS(m, "expected 4 data bytes");
    CHECK_ERROR_MENTIONS(m, "found 6");
  }
  SUBCASE("wrong magic shows the found bytes in hex") {
    const std::string p = d.file("magic");
    Bytes b = idx_bytes({2, 2}, {1, 2, 3, 4});
    b[0] = 0x89;
    b[1] = 0x50;  // a PNG, say
    write_plain(p, b);
    const std::string m = input_error_of(p, [&] { read_idx(p); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "magic");
    CHECK_ERROR_MENTIONS(m, "0x89 0x50 0x08 0x02");
  }
  SUBCASE("type byte not unsigned byte (0x0D = float)") {
    const std::string p = d.file("float");
    Bytes b = idx_bytes({2, 2}, {1, 2, 3, 4});
    b[2] = 0x0D;
    write_plain(p, b);
    const std::string m = input_error_of(p, [&] { read_idx(p); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "unsigned byte");
    CHECK_ERROR_MENTIONS(m, "0x0d");
  }
  SUBCASE("zero dimensions") {
    const std::string p = d.file("nodims");
    write_plain(p, Bytes{0, 0, 8, 0, 1, 2});
    const std::string m = input_error_of(p, [&] { read_idx(p); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "dimensions, found 0");
  }
  SUBCASE("more than 4 dimensions") {
    const std::string p = d.file("fivedims");
    write_plain(p, idx_bytes({1, 1, 1, 1, 1}, {7}));
    const std::string m = input_error_of(p, [&] { read_idx(p); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "dimensions, found 5");
  }
  SUBCASE("dimension sizes whose product overflows") {
    const std::string p = d.file("huge");
    write_plain(p, idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu}, {1, 2, 3}));
    const std::string m = input_error_of(p, [&] { read_idx(p); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "truncated");
  }
}

// =========================================== CIFAR ===========================================

TEST_CASE("read_cifar: CIFAR-10 records, channel-major layout and labels") {
  TempDir d;
  const std::string p = d.file("data_batch_1.bin");
  write_plain(p, cifar_bytes({{3}, {0}, {9}}));
  auto r = repsearch::io::read_cifar(p, false);
  REQUIRE(r.images.sizes() == at::IntArrayRef({3, 3, 32, 32}));
  CHECK((r.images.scalar_type() == at::kByte));
  CHECK((r.labels.scalar_type() == at::kLong));
  CHECK_FALSE(r.coarse.defined());
  REQUIRE(r.labels.size(0) == 3);
  CHECK(r.labels[0].item<std::int64_t>() == 3);
  CHECK(r.labels[1].item<std::int64_t>() == 0);
  CHECK(r.labels[2].item<std::int64_t>() == 9);
  auto a = r.images.accessor<std::uint8_t, 4>();
  int bad = 0;
  for (int n = 0; n < 3; ++n)
    for (int c = 0; c < 3; ++c)
      for (int h = 0; h < 32; ++h)
        for (int w = 0; w < 32; ++w) bad += a[n][c][h][w] != cpix(n, c, h, w);
  CHECK(bad == 0);
  // Spot checks: record 1, green channel, row 2, column 31 is byte 1 + 1024 + 2*32 + 31 of record 1.
  CHECK(a[1][1][2][31] == cpix(1, 1, 2, 31));
  CHECK(a[2][2][31][0] == cpix(2, 2, 31, 0));
}

TEST_CASE("read_cifar: CIFAR-100 records carry coarse and fine labels") {
  TempDir d;
  const std::string p = d.file("train.bin");
  write_plain(p, cifar_bytes({{19, 99}, {0, 0}, {7, 42}, {3, 58}}));
  auto r = repsearch::io::read_cifar(p, true);
  REQUIRE(r.images.sizes() == at::IntArrayRef({4, 3, 32, 32}));
  REQUIRE(r.coarse.defined());
  CHECK((r.coarse.scalar_type() == at::kLong));
  const std::vector<std::int64_t> fine = {99, 0, 42, 58}, coarse = {19, 0, 7, 3};
  for (int i = 0; i < 4; ++i) {
    CHECK(r.labels[i].item<std::int64_t>() == fine[i]);
    CHECK(r.coarse[i].item<std::int64_t>() == coarse[i]);
  }
  auto a = r.images.accessor<std::uint8_t, 4>();
  int bad = 0;
  for (int n = 0; n < 4; ++n)
    for (int c = 0; c < 3; ++c)
      for (int h = 0; h < 32; ++h)
        for (int w = 0; w < 32; ++w) bad += a[n][c][h][w] != cpix(n, c, h, w);
  CHECK(bad == 0);
}

TEST_CASE("read_cifar: bad inputs are errors naming the file") {
  TempDir d;
  using repsearch::io::read_cifar;
  SUBCASE("missing file") {
    const std::string p = d.file("data_batch_9.bin");
    CHECK_THROWS_AS(read_cifar(p, false), Error);
    const std::string m = input_error_of(p, [&] { read_cifar(p, false); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "no such file");
  }
  SUBCASE("empty file") {
    const std::string p = d.file("empty.bin");
    write_plain(p, {});
    const std::string m = input_error_of(p, [&] { read_cifar(p, false); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "empty");
  }
  SUBCASE("CIFAR-10 size not a multiple of the record size") {
    const std::string p = d.file("short.bin");
    Bytes b = cifar_bytes({{1}, {2}});
    b.resize(b.size() - 100);  // 6146 - 100 = 6046
    write_plain(p, b);
    const std::string m = input_error_of(p, [&] { read_cifar(p, false); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "multiple of the record size 3073");
    CHECK_ERROR_MENTIONS(m, "6046");
  }
  SUBCASE("CIFAR-100 file read as CIFAR-10: size not a multiple") {
    const std::string p = d.file("c100.bin");
    write_plain(p, cifar_bytes({{1, 2}, {3, 4}}));  // 2 * 3074 = 6148
    const std::string m = input_error_of(p, [&] { read_cifar(p, false); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "3073");
    CHECK_ERROR_MENTIONS(m, "6148");
  }
  SUBCASE("CIFAR-100 size not a multiple of 3074") {
    const std::string p = d.file("c100short.bin");
    write_plain(p, cifar_bytes({{1}, {2}}));  // 6146 bytes
    const std::string m = input_error_of(p, [&] { read_cifar(p, true); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "3074");
    CHECK_ERROR_MENTIONS(m, "6146");
  }
  SUBCASE("CIFAR-10 label out of range") {
    const std::string p = d.file("badlabel.bin");
    write_plain(p, cifar_bytes({{1}, {2}, {10}}));
    const std::string m = input_error_of(p, [&] { read_cifar(p, false); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "label < 10, found 10 in record 2");
  }
  SUBCASE("CIFAR-100 fine label out of range") {
    const std::string p = d.file("badfine.bin");
    write_plain(p, cifar_bytes({{1, 2}, {3, 100}}));
    const std::string m = input_error_of(p, [&] { read_cifar(p, true); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "fine label < 100, found 100 in record 1");
  }
  SUBCASE("CIFAR-100 coarse label out of range") {
    const std::string p = d.file("badcoarse.bin");
    write_plain(p, cifar_bytes({{20, 2}}));
    const std::string m = input_error_of(p, [&] { read_cifar(p, true); });
    CHECK_ERROR_MENTIONS(m, p);
    CHECK_ERROR_MENTIONS(m, "coarse label < 20, found 20 in record 0");
  }
}

// ========================================== registry =========================================

TEST_CASE("dataset registry: names and default directories") {
  const auto names = repsearch::io::dataset_names();
  CHECK(names == std::vector<std::string>{"fashion-mnist", "mnist", "cifar10", "cifar100"});
  CHECK(repsearch::io::default_data_dir("fashion-mnist") == "/usr/share/datasets/fashion-mnist");
  CHECK(repsearch::io::default_data_dir("mnist") == "/usr/share/datasets/mnist");
  CHECK(repsearch::io::default_data_dir("cifar10") == "data/cifar-10-batches-bin");
  CHECK(repsearch::io::default_data_dir("cifar100") == "data/cifar-100-binary");
}

TEST_CASE("load_dataset: unknown name lists the known names") {
  for (auto f : std::vector<std::function<void()>>{[] { repsearch::io::load_dataset("imagenet"); },
                                                   [] { repsearch::io::default_data_dir("imagenet"); }}) {
    CHECK_THROWS_AS(f(), Error);
    const std::string m = error_of(f);
    try {
      f();
    } catch (const repsearch::OptionError& e) {
      CHECK(e.option == "dataset");
      CHECK(e.value == "imagenet");
      for (const auto& n : repsearch::io::dataset_names()) CHECK(contains(e.expected, n));
    }
    CHECK_ERROR_MENTIONS(m, "imagenet");
    CHECK_ERROR_MENTIONS(m, "unknown");
    for (const auto& n : repsearch::io::dataset_names()) CHECK_ERROR_MENTIONS(m, n);
  }
}

TEST_CASE("load_dataset: MNIST-style directory, plain and gzip files") {
  for (bool gz : {false, true}) {
    CAPTURE(gz);
    TempDir d;
    write_mnist_dir(d, 12, 5, 28, 28, gz);
    auto ds = repsearch::io::load_dataset("mnist", d.path.string());
    CHECK(ds.name == "mnist");
    CHECK(ds.data_dir == d.path.string());
    CHECK(ds.n_classes == 10);
    REQUIRE(ds.train_images.sizes() == at::IntArrayRef({12, 1, 28, 28}));
    REQUIRE(ds.test_images.sizes() == at::IntArrayRef({5, 1, 28, 28}));
    CHECK((ds.train_images.scalar_type() == at::kByte));
    CHECK((ds.train_labels.scalar_type() == at::kLong));
    CHECK(ds.train_labels.sizes() == at::IntArrayRef({12}));
    CHECK(ds.test_labels.sizes() == at::IntArrayRef({5}));
    CHECK(ds.train_labels[11].item<std::int64_t>() == 1);
    CHECK(ds.test_labels[0].item<std::int64_t>() == 3);
    auto a = ds.test_images.accessor<std::uint8_t, 4>();
    CHECK(a[4][0][27][13] == pix(4, 27, 13));
    const std::string ext = gz ? ".gz" : "";
    CHECK(ds.files == std::vector<std::string>{d.file("train-images-idx3-ubyte" + ext),
                                               d.file("train-labels-idx1-ubyte" + ext),
                                               d.file("t10k-images-idx3-ubyte" + ext),
                                               d.file("t10k-labels-idx1-ubyte" + ext)});
  }
}

TEST_CASE("load_dataset: plain file preferred when both plain and .gz exist") {
  TempDir d;
  write_mnist_dir(d, 4, 2, 28, 28, false);
  // A .gz with different content next to the plain one.
  write_gz(d.file("train-labels-idx1-ubyte.gz"), idx_bytes({4}, {5, 5, 5, 5}));
  auto ds = repsearch::io::load_dataset("mnist", d.path.string());
  CHECK(ds.files[1] == d.file("train-labels-idx1-ubyte"));
  CHECK(ds.train_labels[0].item<std::int64_t>() == 0);
}

TEST_CASE("load_dataset: CIFAR-10 and CIFAR-100 directories") {
  SUBCASE("cifar10: 5 training batches concatenated in order") {
    TempDir d;
    for (int b = 1; b <= 5; ++b) write_plain(d.file("data_batch_" + std::to_string(b) + ".bin"), cifar_bytes({{std::uint8_t(b)}, {std::uint8_t(b + 4)}}));
    write_plain(d.file("test_batch.bin"), cifar_bytes({{7}}));
    auto ds = repsearch::io::load_dataset("cifar10", d.path.string());
    CHECK(ds.n_classes == 10);
    REQUIRE(ds.train_images.sizes() == at::IntArrayRef({10, 3, 32, 32}));
    REQUIRE(ds.test_images.sizes() == at::IntArrayRef({1, 3, 32, 32}));
    const std::vector<std::int64_t> want = {1, 5, 2, 6, 3, 7, 4, 8, 5, 9};
    for (int i = 0; i < 10; ++i) CHECK(ds.train_labels[i].item<std::int64_t>() == want[i]);
    CHECK(ds.test_labels[0].item<std::int64_t>() == 7);
    CHECK(ds.train_images[9][2][3][4].item<int>() == cpix(1, 2, 3, 4));  // record 1 of batch 5
    CHECK(ds.files.size() == 6);
    CHECK(ds.files.back() == d.file("test_batch.bin"));
  }
  SUBCASE("cifar100: fine labels, 100 classes") {
    TempDir d;
    write_plain(d.file("train.bin"), cifar_bytes({{4, 72}, {1, 30}}));
    write_plain(d.file("test.bin"), cifar_bytes({{17, 99}}));
    auto ds = repsearch::io::load_dataset("cifar100", d.path.string());
    CHECK(ds.n_classes == 100);
    CHECK(ds.train_labels[0].item<std::int64_t>() == 72);
    CHECK(ds.train_labels[1].item<std::int64_t>() == 30);
    CHECK(ds.test_labels[0].item<std::int64_t>() == 99);
    CHECK(ds.files == std::vector<std::string>{d.file("train.bin"), d.file("test.bin")});
  }
  SUBCASE("cifar10: a missing batch names the path and how to get it") {
    TempDir d;
    for (int b = 1; b <= 4; ++b) write_plain(d.file("data_batch_" + std::to_string(b) + ".bin"), cifar_bytes({{1}}));
    write_plain(d.file("test_batch.bin"), cifar_bytes({{7}}));
    const std::string m =
        input_error_of(d.path.string(), [&] { repsearch::io::load_dataset("cifar10", d.path.string()); });
    CHECK_ERROR_MENTIONS(m, d.file("data_batch_5.bin"));
    CHECK_ERROR_MENTIONS(m, "--data-dir");
    CHECK_ERROR_MENTIONS(m, "fetch_datasets.sh");
  }
  SUBCASE("cifar100: a missing relative directory is explained with the current directory") {
    const std::string m =
        input_error_of("no-such-dir-repsearch", [] { repsearch::io::load_dataset("cifar100", "no-such-dir-repsearch"); });
    CHECK_ERROR_MENTIONS(m, (fs::path("no-such-dir-repsearch") / "train.bin").string());
    CHECK_ERROR_MENTIONS(m, "current directory");
  }
  SUBCASE("cifar10: a bad batch size surfaces through load_dataset") {
    TempDir d;
    for (int b = 1; b <= 5; ++b) write_plain(d.file("data_batch_" + std::to_string(b) + ".bin"), cifar_bytes({{1}}));
    Bytes bad = cifar_bytes({{1}});
    bad.pop_back();
    write_plain(d.file("data_batch_3.bin"), bad);
    write_plain(d.file("test_batch.bin"), cifar_bytes({{7}}));
    const std::string m =
        input_error_of(d.path.string(), [&] { repsearch::io::load_dataset("cifar10", d.path.string()); });
    CHECK_ERROR_MENTIONS(m, d.file("data_batch_3.bin"));
    CHECK_ERROR_MENTIONS(m, "record size 3073");
  }
}

TEST_CASE("load_dataset: bad MNIST-style directories") {
  TempDir d;
  SUBCASE("missing files: both paths tried, --data-dir and fetch_datasets.sh suggested") {
    const std::string dir = d.file("does-not-exist");
    const std::string m = input_error_of(dir, [&] { repsearch::io::load_dataset("mnist", dir); });
    const std::string plain = (fs::path(dir) / "train-images-idx3-ubyte").string();
    CHECK_ERROR_MENTIONS(m, plain);
    CHECK_ERROR_MENTIONS(m, plain + ".gz");
    CHECK_ERROR_MENTIONS(m, "--data-dir");
    CHECK_ERROR_MENTIONS(m, "fetch_datasets.sh");
    CHECK_ERROR_MENTIONS(m, "does not exist");
  }
  SUBCASE("missing fashion-mnist suggests the Debian package") {
    const std::string m =
        input_error_of(d.path.string(), [&] { repsearch::io::load_dataset("fashion-mnist", d.path.string()); });
    CHECK_ERROR_MENTIONS(m, d.file("train-images-idx3-ubyte"));
    CHECK_ERROR_MENTIONS(m, "dataset-fashion-mnist");
    CHECK_ERROR_MENTIONS(m, "--data-dir");
  }
  SUBCASE("one of four files missing") {
    write_mnist_dir(d, 4, 2);
    fs::remove(d.file("t10k-labels-idx1-ubyte"));
    const std::string m =
        input_error_of(d.path.string(), [&] { repsearch::io::load_dataset("mnist", d.path.string()); });
    CHECK_ERROR_MENTIONS(m, d.file("t10k-labels-idx1-ubyte"));
    CHECK_ERROR_MENTIONS(m, "found neither");
  }
  SUBCASE("wrong dimension count: a labels file where the images file should be") {
    write_mnist_dir(d, 4, 2);
    write_plain(d.file("train-images-idx3-ubyte"), idx_bytes({4}, {1, 2, 3, 4}));
    const std::string m =
        input_error_of(d.path.string(), [&] { repsearch::io::load_dataset("mnist", d.path.string()); });
    CHECK_ERROR_MENTIONS(m, d.file("train-images-idx3-ubyte"));
    CHECK_ERROR_MENTIONS(m, "3 dimensions");
    CHECK_ERROR_MENTIONS(m, "found 1 dimension");
  }
  SUBCASE("wrong dimension count: an images file where the labels file should be") {
    write_mnist_dir(d, 4, 2);
    write_plain(d.file("t10k-labels-idx1-ubyte"), idx_bytes({2, 28, 28}, image_data(2, 28, 28)));
    const std::string m =
        input_error_of(d.path.string(), [&] { repsearch::io::load_dataset("mnist", d.path.string()); });
    CHECK_ERROR_MENTIONS(m, d.file("t10k-labels-idx1-ubyte"));
    CHECK_ERROR_MENTIONS(m, "1 dimension");
    CHECK_ERROR_MENTIONS(m, "found 3");
  }
  SUBCASE("image/label count mismatch names both files and both counts") {
    write_mnist_dir(d, 4, 2);
    write_plain(d.file("train-labels-idx1-ubyte"), idx_bytes({5}, {1, 2, 3, 4, 5}));
    const std::string m =
        input_error_of(d.path.string(), [&] { repsearch::io::load_dataset("mnist", d.path.string()); });
    CHECK_ERROR_MENTIONS(m, d.file("train-images-idx3-ubyte"));
    CHECK_ERROR_MENTIONS(m, d.file("train-labels-idx1-ubyte"));
    CHECK_ERROR_MENTIONS(m, "mismatch");
    CHECK_ERROR_MENTIONS(m, "4 images");
    CHECK_ERROR_MENTIONS(m, "5 labels");
  }
  SUBCASE("label out of range names the file, index and value") {
    write_mnist_dir(d, 4, 2);
    write_plain(d.file("t10k-labels-idx1-ubyte"), idx_bytes({2}, {3, 10}));
    const std::string m =
        input_error_of(d.path.string(), [&] { repsearch::io::load_dataset("mnist", d.path.string()); });
    CHECK_ERROR_MENTIONS(m, d.file("t10k-labels-idx1-ubyte"));
    CHECK_ERROR_MENTIONS(m, "[0, 10)");
    CHECK_ERROR_MENTIONS(m, "found label 10 at index 1");
  }
  SUBCASE("truncated images file surfaces through load_dataset") {
    write_mnist_dir(d, 4, 2);
    Bytes b = idx_bytes({4, 28, 28}, image_data(4, 28, 28));
    b.resize(b.size() - 28);
    write_gz(d.file("train-images-idx3-ubyte.gz"), b);
    fs::remove(d.file("train-images-idx3-ubyte"));
    const std::string m =
        input_error_of(d.path.string(), [&] { repsearch::io::load_dataset("mnist", d.path.string()); });
    CHECK_ERROR_MENTIONS(m, d.file("train-images-idx3-ubyte.gz"));
    CHECK_ERROR_MENTIONS(m, "truncated");
  }
  SUBCASE("wrong magic surfaces through load_dataset") {
    write_mnist_dir(d, 4, 2);
    write_plain(d.file("t10k-images-idx3-ubyte"), Bytes{'h', 'e', 'l', 'l', 'o', '\n'});
    const std::string m =
        input_error_of(d.path.string(), [&] { repsearch::io::load_dataset("mnist", d.path.string()); });
    CHECK_ERROR_MENTIONS(m, d.file("t10k-images-idx3-ubyte"));
    CHECK_ERROR_MENTIONS(m, "0x68 0x65 0x6c 0x6c");
  }
  SUBCASE("train and test images of different sizes") {
    write_mnist_dir(d, 4, 2);
    write_plain(d.file("t10k-images-idx3-ubyte"), idx_bytes({2, 32, 32}, image_data(2, 32, 32)));
    const std::string m =
        input_error_of(d.path.string(), [&] { repsearch::io::load_dataset("mnist", d.path.string()); });
    CHECK_ERROR_MENTIONS(m, d.file("t10k-images-idx3-ubyte"));
    CHECK_ERROR_MENTIONS(m, "same size");
  }
}

// ====================================== real Fashion-MNIST ===================================

TEST_CASE("Fashion-MNIST: the real files") {
  const std::string dir = REPSEARCH_FMNIST_DIR;
  // Facts checked independently of read_idx by reading the label files directly: the first
  // training label is 9 (Ankle boot), and so is the first test label.
  const std::string trl = dir + "/train-labels-idx1-ubyte.gz", tel = dir + "/t10k-labels-idx1-ubyte.gz";
  REQUIRE(fs::exists(trl));
  REQUIRE(fs::exists(tel));
  CHECK(first_label_byte(trl, 0) == 9);
  CHECK(first_label_byte(tel, 0) == 9);

  const auto& ds = fmnist();
  CHECK(ds.name == "fashion-mnist");
  CHECK(ds.n_classes == 10);
  CHECK(ds.files.size() == 4);
  CHECK((ds.train_images.scalar_type() == at::kByte));
  CHECK((ds.test_images.scalar_type() == at::kByte));
  CHECK((ds.train_labels.scalar_type() == at::kLong));
  CHECK(ds.train_images.sizes() == at::IntArrayRef({60000, 1, 28, 28}));
  CHECK(ds.test_images.sizes() == at::IntArrayRef({10000, 1, 28, 28}));
  CHECK(ds.train_labels.sizes() == at::IntArrayRef({60000}));
  CHECK(ds.test_labels.sizes() == at::IntArrayRef({10000}));
  CHECK(ds.train_labels[0].item<std::int64_t>() == 9);
  CHECK(ds.test_labels[0].item<std::int64_t>() == 9);
  // The loader agrees with the independent byte reader further in as well.
  CHECK(ds.train_labels[1234].item<std::int64_t>() == first_label_byte(trl, 1234));
  CHECK(ds.train_images.is_contiguous());

  const at::Tensor tc = repsearch::class_counts(ds.train_labels, 10);
  const at::Tensor ec = repsearch::class_counts(ds.test_labels, 10);
  REQUIRE(tc.numel() == 10);
  for (int c = 0; c < 10; ++c) {
    CHECK(tc[c].item<std::int64_t>() == 6000);
    CHECK(ec[c].item<std::int64_t>() == 1000);
  }
  CHECK(ds.train_images.max().item<int>() == 255);
  CHECK(ds.train_images.min().item<int>() == 0);
}

TEST_CASE("Fashion-MNIST: default directory is used when data_dir is empty") {
  if (std::string(REPSEARCH_FMNIST_DIR) != repsearch::io::default_data_dir("fashion-mnist")) return;
  auto ds = repsearch::io::load_dataset("fashion-mnist");
  CHECK(ds.data_dir == "/usr/share/datasets/fashion-mnist");
  CHECK(ds.train_images.size(0) == 60000);
}

// ====================================== core/data.hpp =========================================

TEST_CASE("make_splits: sizes, disjointness, range, determinism") {
  const repsearch::SplitSizes sz{30, 20, 10};
  auto s = repsearch::make_splits(100, sz, 7);
  CHECK((s.search.scalar_type() == at::kLong));
  CHECK(s.search.numel() == 30);
  CHECK(s.val.numel() == 20);
  CHECK(s.heldout.numel() == 10);
  std::set<std::int64_t> all;
  for (const auto* t : {&s.search, &s.val, &s.heldout})
    for (std::int64_t i = 0; i < t->numel(); ++i) {
      const auto v = (*t)[i].item<std::int64_t>();
      CHECK(v >= 0);
      CHECK(v < 100);
      all.insert(v);
    }
  CHECK(all.size() == 60);  // disjoint and without repeats

  auto same = repsearch::make_splits(100, sz, 7);
  CHECK(at::equal(s.search, same.search));
  CHECK(at::equal(s.val, same.val));
  CHECK(at::equal(s.heldout, same.heldout));

  auto other = repsearch::make_splits(100, sz, 8);
  CHECK_FALSE(at::equal(s.search, other.search));

  // All of the training set may be used.
  auto full = repsearch::make_splits(60, sz, 1);
  CHECK(std::get<0>(at::sort(at::cat({full.search, full.val, full.heldout}))).equal(at::arange(60, at::kLong)));

  // Default sizes on Fashion-MNIST's 60000.
  auto def = repsearch::make_splits(60000, repsearch::SplitSizes{}, 0);
  CHECK(def.search.numel() == 3000);
  CHECK(def.val.numel() == 2000);
  CHECK(def.heldout.numel() == 2000);
}

TEST_CASE("make_splits: invalid sizes are errors") {
  SUBCASE("sum exceeds n_train") {
    const std::string m = error_of([] { repsearch::make_splits(59, {30, 20, 10}, 1); });
    CHECK_ERROR_MENTIONS(m, "60");
    CHECK_ERROR_MENTIONS(m, "59");
    CHECK_ERROR_MENTIONS(m, "exceeds");
  }
  SUBCASE("zero search size") {
    const std::string m = error_of([] { repsearch::make_splits(100, {0, 20, 10}, 1); });
    CHECK_ERROR_MENTIONS(m, "positive");
  }
  SUBCASE("negative val size") {
    const std::string m = error_of([] { repsearch::make_splits(100, {30, -1, 10}, 1); });
    CHECK_ERROR_MENTIONS(m, "positive");
  }
  SUBCASE("zero heldout size") {
    const std::string m = error_of([] { repsearch::make_splits(100, {30, 20, 0}, 1); });
    CHECK_ERROR_MENTIONS(m, "positive");
  }
}

TEST_CASE("fit_standardiser: Fashion-MNIST statistics and standardised training set") {
  const auto& ds = fmnist();
  const auto st = repsearch::fit_standardiser(ds.train_images);
  REQUIRE(st.mean.numel() == 1);
  REQUIRE(st.std.numel() == 1);
  CHECK((st.mean.scalar_type() == at::kFloat));
  // Measured independently (pixels / 255 over all 47,040,000 training pixels):
  // mean 0.2860406, population std 0.3530242.
  CHECK(st.mean.item<double>() == doctest::Approx(0.2860406).epsilon(1e-5));
  CHECK(st.std.item<double>() == doctest::Approx(0.3530242).epsilon(1e-5));

  // The statistics come from the images passed in: the test set's differ.
  const auto te = repsearch::fit_standardiser(ds.test_images);
  CHECK(te.mean.item<double>() == doctest::Approx(0.2868493).epsilon(1e-5));
  CHECK(te.std.item<double>() == doctest::Approx(0.3524442).epsilon(1e-5));
  CHECK(te.mean.item<double>() != st.mean.item<double>());

  const at::Tensor z = st.apply(ds.train_images);
  CHECK((z.scalar_type() == at::kFloat));
  CHECK(z.sizes() == ds.train_images.sizes());
  const at::Tensor zd = z.to(at::kDouble);
  CHECK(std::abs(zd.mean().item<double>()) < 1e-5);
  CHECK(zd.std(/*unbiased=*/false).item<double>() == doctest::Approx(1.0).epsilon(1e-5));
}

TEST_CASE("fit_standardiser: per-channel statistics on 3-channel images") {
  // Channel c of every image holds values {c*10, c*10 + 2} (bytes), so mean c*10+1, std 1 (/255).
  at::Tensor x = at::empty({4, 3, 2, 2}, at::kByte);
  auto a = x.accessor<std::uint8_t, 4>();
  for (int n = 0; n < 4; ++n)
    for (int c = 0; c < 3; ++c)
      for (int h = 0; h < 2; ++h)
        for (int w = 0; w < 2; ++w) a[n][c][h][w] = static_cast<std::uint8_t>(c * 10 + ((n + h + w) % 2) * 2);
  const auto st = repsearch::fit_standardiser(x);
  REQUIRE(st.mean.numel() == 3);
  for (int c = 0; c < 3; ++c) {
    CHECK(st.mean[c].item<double>() == doctest::Approx((c * 10 + 1) / 255.0));
    CHECK(st.std[c].item<double>() == doctest::Approx(1 / 255.0));
  }
  const at::Tensor z = st.apply(x).to(at::kDouble);
  for (int c = 0; c < 3; ++c) {
    const at::Tensor zc = z.select(1, c);
    CHECK(std::abs(zc.mean().item<double>()) < 1e-5);
    CHECK(zc.std(false).item<double>() == doctest::Approx(1.0).epsilon(1e-5));
  }
  // A float input is taken as already scaled to [0, 1]: same result as the uint8 one.
  CHECK(at::allclose(st.apply(x.to(at::kFloat).div(255.0)), st.apply(x), 1e-5, 1e-5));
}

TEST_CASE("class_counts") {
  const at::Tensor l = at::tensor(std::vector<std::int64_t>{0, 1, 1, 3, 1}, at::kLong);
  const at::Tensor c = repsearch::class_counts(l, 5);
  CHECK((c.scalar_type() == at::kLong));
  REQUIRE(c.numel() == 5);
  const std::vector<std::int64_t> want = {1, 3, 0, 1, 0};
  for (int i = 0; i < 5; ++i) CHECK(c[i].item<std::int64_t>() == want[i]);
  // uint8 labels (as read from a file) and empty label sets work too.
  CHECK(at::equal(repsearch::class_counts(l.to(at::kByte), 5), c));
  const at::Tensor e = repsearch::class_counts(at::empty({0}, at::kLong), 4);
  CHECK(e.numel() == 4);
  CHECK(e.sum().item<std::int64_t>() == 0);
  // A label outside [0, n_classes) is an error, not an extra bin.
  const std::string m = error_of([&] { repsearch::class_counts(l, 3); });
  CHECK_ERROR_MENTIONS(m, "[0, 3)");
  CHECK_ERROR_MENTIONS(m, "found 3");
  CHECK_THROWS_AS(repsearch::class_counts(at::tensor(std::vector<std::int64_t>{0, -1}, at::kLong), 3), Error);
}
