// Readers for the original on-disk formats of the image classification data sets (IDX for
// (Fashion-)MNIST, the binary batches for CIFAR-10/100) and the registry that maps a data set name
// to its files. Every failure throws repsearch::Error naming the file, what was expected and what
// was found; nothing is silently truncated or padded.
#include "repsearch/io/dataset.hpp"

#include <cstdlib>

#include <ATen/ATen.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "repsearch/core/error.hpp"

namespace repsearch::io {
namespace {

namespace fs = std::filesystem;

using Bytes = std::vector<std::uint8_t>;

std::string hex_bytes(const std::uint8_t* p, std::size_t n) {
  std::ostringstream os;
  os << std::hex << std::setfill('0');
  for (std::size_t i = 0; i < n; ++i) os << (i ? " " : "") << "0x" << std::setw(2) << static_cast<unsigned>(p[i]);
  return os.str();
}

// Fails unless `path` names an existing regular file we can open. `what` describes the file
// ("IDX file", "CIFAR-10 file") for the message.
void require_readable(const std::string& path, const char* what) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec == std::errc::permission_denied)
    fail_input(path, what, " '", path, "': permission denied (a directory on the way is not searchable by this user)");
  if (ec || !fs::exists(st)) fail_input(path, what, " '", path, "': expected an existing file, found no such file");
  if (fs::is_directory(st)) fail_input(path, what, " '", path, "': expected a file, found a directory");
  // A device or FIFO would be read until memory runs out, or block forever.
  if (!fs::is_regular_file(st))
    fail_input(path, what, " '", path, "': expected a regular file, found a ",
         fs::is_fifo(st) ? "FIFO" : fs::is_character_file(st) ? "character device" : fs::is_block_file(st) ? "block device" : fs::is_socket(st) ? "socket" : "special file");
  std::ifstream probe(path, std::ios::binary);
  if (!probe) fail_input(path, what, " '", path, "': cannot open for reading (", std::strerror(errno), ")");
}

// Whether the file starts with the gzip magic 0x1f 0x8b, and a guess of its content size for
// reserving memory (a gzip member's trailer holds the uncompressed size modulo 2^32).
bool starts_with_gzip_magic(const std::string& path, std::size_t* size_hint) {
  std::ifstream in(path, std::ios::binary);
  unsigned char m[4] = {0, 0, 0, 0};
  in.read(reinterpret_cast<char*>(m), 2);
  const bool gz = in.gcount() == 2 && m[0] == 0x1f && m[1] == 0x8b;
  in.clear();
  in.seekg(0, std::ios::end);
  const std::streamoff end = in.tellg();
  *size_hint = end > 0 ? static_cast<std::size_t>(end) : 0;
  if (gz && end >= 18) {
    in.seekg(end - 4);
    in.read(reinterpret_cast<char*>(m), 4);
    if (in.gcount() == 4)
      *size_hint = std::uint32_t{m[0]} | (std::uint32_t{m[1]} << 8) | (std::uint32_t{m[2]} << 16) | (std::uint32_t{m[3]} << 24);
  }
  return gz;
}

// The whole (decompressed) content of a plain or gzip file. zlib detects gzip by content and reads
// other files unchanged. A corrupt or truncated gzip stream is an error, not a short read.
Bytes read_all(const std::string& path, const char* what) {
  require_readable(path, what);
  std::size_t hint = 0;
  const bool gz = starts_with_gzip_magic(path, &hint);
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail_input(path, what, " '", path, "': cannot open for reading (", std::strerror(errno), ")");
  gzbuffer(f, 1u << 18);
  Bytes out;
  out.reserve(std::min<std::size_t>(hint, std::size_t{1} << 32) + 1);  // +1: room for the read that finds EOF
  constexpr std::size_t kChunk = std::size_t{1} << 24;
  for (;;) {
    if (out.size() == out.capacity()) out.reserve(std::max(2 * out.capacity(), out.capacity() + (1u << 20)));
    const std::size_t old = out.size();
    const auto room = static_cast<unsigned>(std::min(out.capacity() - old, kChunk));
    out.resize(old + room);
    const int n = gzread(f, out.data() + old, room);
    if (n < 0) {
      int errnum = 0;
      const std::string msg = gzerror(f, &errnum);
      gzclose(f);
      fail_input(path, what, " '", path, "': expected ", gz ? "a valid gzip stream" : "readable data", ", found a read error after ",
           old, " bytes (", msg, ")");
    }
    out.resize(old + static_cast<std::size_t>(n));
    if (n == 0) break;
  }
  int errnum = Z_OK;
  const std::string msg = gzerror(f, &errnum);
  gzclose(f);
  if (errnum != Z_OK && errnum != Z_STREAM_END)
    fail_input(path, what, " '", path, "': expected a complete gzip stream, found a damaged or truncated one after ",
         out.size(), " decompressed bytes (", msg, ")");
  return out;
}

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

std::string shape_str(const at::Tensor& t) {
  std::ostringstream os;
  os << '[';
  for (std::int64_t d = 0; d < t.dim(); ++d) os << (d ? "," : "") << t.size(d);
  os << ']';
  return os.str();
}

// ---- registry ----

enum class Format { idx, cifar10, cifar100 };

struct Entry {
  const char* name;
  Format format;
  const char* default_dir;
  const char* hint;  // how to obtain the files
};

// mnist: /usr/share/datasets/mnist is where a Debian-style package would put it; there is no such
// package on the development machines, so users fetch it with launch/fetch_datasets.sh and pass
// --data-dir (e.g. data/mnist).
const Entry kRegistry[] = {
    {"fashion-mnist", Format::idx, "/usr/share/datasets/fashion-mnist",
     "install the Debian package dataset-fashion-mnist or pass --data-dir"},
    {"mnist", Format::idx, "/usr/share/datasets/mnist",
     "pass --data-dir (launch/fetch_datasets.sh mnist downloads it to data/mnist)"},
    {"cifar10", Format::cifar10, "data/cifar-10-batches-bin",
     "pass --data-dir (launch/fetch_datasets.sh cifar10 downloads it to data/cifar-10-batches-bin)"},
    {"cifar100", Format::cifar100, "data/cifar-100-binary",
     "pass --data-dir (launch/fetch_datasets.sh cifar100 downloads it to data/cifar-100-binary)"},
};

std::string known_names() {
  std::string s;
  for (const auto& e : kRegistry) s += (s.empty() ? "" : ", ") + std::string(e.name);
  return s;
}

const Entry& find_entry(const std::string& name) {
  for (const auto& e : kRegistry)
    if (name == e.name) return e;
  throw OptionError("dataset", name, "one of " + known_names(),
                    detail::cat("dataset '", name, "': unknown; expected one of ", known_names()));
}

std::string join(const std::string& dir, const std::string& file) { return (fs::path(dir) / file).string(); }

std::string dir_note(const std::string& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return "";
  std::string note = " (the directory " + dir + " does not exist";
  if (fs::path(dir).is_relative()) {
    const auto cwd = fs::current_path(ec);
    if (!ec) note += "; relative paths are taken from the current directory " + cwd.string();
  }
  const char* root = std::getenv("REPSEARCH_DATA_DIR");
  if (root && *root && fs::path(dir).parent_path() == (fs::path(root) / "").parent_path())
    note += std::string("; the directory comes from the environment variable REPSEARCH_DATA_DIR=") + root;
  return note + ")";
}

// `dir/base` or `dir/base.gz`, whichever exists (plain first).
std::string find_idx_file(const Entry& e, const std::string& dir, const std::string& base) {
  const std::string plain = join(dir, base), gz = plain + ".gz";
  std::error_code ec;
  if (fs::exists(plain, ec)) return plain;
  if (ec == std::errc::permission_denied)
    fail_input(plain, "dataset '", e.name, "': cannot look for ", plain, ": permission denied (the directory ", dir,
         " or one above it is not searchable by this user)");
  if (fs::exists(gz, ec)) return gz;
  fail_input(plain, "dataset '", e.name, "': expected ", plain, " or ", gz, ", found neither", dir_note(dir), "; ", e.hint);
}

std::string find_cifar_file(const Entry& e, const std::string& dir, const std::string& base) {
  const std::string p = join(dir, base);
  std::error_code ec;
  const bool present = fs::exists(p, ec);
  if (ec == std::errc::permission_denied)
    fail_input(p, "dataset '", e.name, "': cannot look for ", p, ": permission denied (the directory ", dir,
         " or one above it is not searchable by this user)");
  if (!present) fail_input(p, "dataset '", e.name, "': expected ", p, ", found no such file", dir_note(dir), "; ", e.hint);
  return p;
}

void check_labels(const at::Tensor& labels, std::int64_t n_classes, const std::string& path, const char* kind = "label") {
  const auto* p = labels.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < labels.numel(); ++i)
    if (p[i] < 0 || p[i] >= n_classes)
      fail_input(path, "file '", path, "': expected every ", kind, " in [0, ", n_classes, "), found ", kind, " ", p[i], " at index ", i);
}

// images [N,H,W] + labels [N] -> ([N,1,H,W], int64 labels), with every check.
std::pair<at::Tensor, at::Tensor> load_idx_pair(const std::string& img_path, const std::string& lbl_path,
                                                std::int64_t n_classes) {
  at::Tensor img = read_idx(img_path);
  if (img.dim() != 3)
    fail_input(img_path, "IDX file '", img_path, "': expected an images file with 3 dimensions [N,H,W], found ", img.dim(),
         " dimension(s) ", shape_str(img));
  at::Tensor lbl = read_idx(lbl_path);
  if (lbl.dim() != 1)
    fail_input(lbl_path, "IDX file '", lbl_path, "': expected a labels file with 1 dimension [N], found ", lbl.dim(),
         " dimension(s) ", shape_str(lbl));
  if (img.size(0) != lbl.size(0))
    fail_input(lbl_path, "image/label count mismatch: '", img_path, "' holds ", img.size(0), " images but '", lbl_path, "' holds ",
         lbl.size(0), " labels");
  if (img.size(0) == 0) fail_input(img_path, "IDX file '", img_path, "': expected at least one image, found 0");
  lbl = lbl.to(at::kLong);
  check_labels(lbl, n_classes, lbl_path);
  return {img.unsqueeze(1).contiguous(), lbl};
}

CifarRecords concat_cifar(const std::vector<CifarRecords>& parts) {
  std::vector<at::Tensor> im, lb;
  for (const auto& p : parts) {
    im.push_back(p.images);
    lb.push_back(p.labels);
  }
  CifarRecords r;
  r.images = at::cat(im, 0);
  r.labels = at::cat(lb, 0);
  return r;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

at::Tensor read_idx(const std::string& path) {
  const Bytes b = read_all(path, "IDX file");
  if (b.size() < 4)
    fail_input(path, "IDX file '", path, "': expected a header of at least 4 bytes (magic), found a file of ", b.size(), " bytes");
  if (b[0] != 0x00 || b[1] != 0x00)
    fail_input(path, "IDX file '", path, "': expected magic bytes 0x00 0x00 0x08 <ndims>, found ", hex_bytes(b.data(), 4),
         " (not an IDX file)");
  if (b[2] != 0x08)
    fail_input(path, "IDX file '", path, "': expected data type byte 0x08 (unsigned byte), found ", hex_bytes(b.data() + 2, 1),
         " (magic ", hex_bytes(b.data(), 4), ")");
  const unsigned ndims = b[3];
  if (ndims == 0 || ndims > 4)
    fail_input(path, "IDX file '", path, "': expected 1 to 4 dimensions, found ", ndims, " (magic ", hex_bytes(b.data(), 4), ")");
  const std::size_t header = 4 + 4 * std::size_t{ndims};
  if (b.size() < header)
    fail_input(path, "IDX file '", path, "': expected a header of ", header, " bytes for ", ndims, " dimensions, found a file of ",
         b.size(), " bytes (truncated)");
  std::vector<std::int64_t> dims(ndims);
  std::uint64_t expect = 1;
  bool overflow = false;
  for (unsigned d = 0; d < ndims; ++d) {
    dims[d] = be32(b.data() + 4 + 4 * d);
    const auto dd = static_cast<std::uint64_t>(dims[d]);
    if (dd != 0 && expect > std::numeric_limits<std::uint64_t>::max() / dd) overflow = true;
    expect *= dd;
  }
  const std::uint64_t found = b.size() - header;
  std::ostringstream dimstr;
  for (unsigned d = 0; d < ndims; ++d) dimstr << (d ? "x" : "") << dims[d];
  if (overflow || found < expect)
    fail_input(path, "IDX file '", path, "': expected ", overflow ? std::string("more than 2^64") : std::to_string(expect),
         " data bytes for dimensions ", dimstr.str(), ", found ", found, " (file truncated)");
  if (found > expect)
    fail_input(path, "IDX file '", path, "': expected ", expect, " data bytes for dimensions ", dimstr.str(), ", found ", found,
         " (", found - expect, " bytes of trailing data)");
  at::Tensor t = at::empty(dims, at::TensorOptions().dtype(at::kByte));
  if (expect) std::memcpy(t.data_ptr<std::uint8_t>(), b.data() + header, expect);
  return t;
}

CifarRecords read_cifar(const std::string& path, bool cifar100) {
  const char* what = cifar100 ? "CIFAR-100 file" : "CIFAR-10 file";
  const std::size_t n_label_bytes = cifar100 ? 2 : 1;
  constexpr std::size_t kPixels = 3 * 32 * 32;
  const std::size_t rec = n_label_bytes + kPixels;
  const Bytes b = read_all(path, what);
  if (b.empty()) fail_input(path, what, " '", path, "': expected records of ", rec, " bytes, found an empty file");
  if (b.size() % rec != 0)
    fail_input(path, what, " '", path, "': expected a size that is a multiple of the record size ", rec, " bytes (",
         n_label_bytes == 1 ? "1 label byte" : "coarse + fine label bytes", " + ", kPixels,
         " pixel bytes), found a file size of ", b.size(), " bytes (", b.size() / rec, " whole records + ",
         b.size() % rec, " bytes)");
  const auto n = static_cast<std::int64_t>(b.size() / rec);
  CifarRecords r;
  r.images = at::empty({n, 3, 32, 32}, at::TensorOptions().dtype(at::kByte));
  r.labels = at::empty({n}, at::TensorOptions().dtype(at::kLong));
  if (cifar100) r.coarse = at::empty({n}, at::TensorOptions().dtype(at::kLong));
  auto* img = r.images.data_ptr<std::uint8_t>();
  auto* lab = r.labels.data_ptr<std::int64_t>();
  auto* coarse = cifar100 ? r.coarse.data_ptr<std::int64_t>() : nullptr;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint8_t* p = b.data() + static_cast<std::size_t>(i) * rec;
    if (cifar100) {
      if (p[0] >= 20)
        fail_input(path, what, " '", path, "': expected coarse label < 20, found ", unsigned{p[0]}, " in record ", i);
      if (p[1] >= 100) fail_input(path, what, " '", path, "': expected fine label < 100, found ", unsigned{p[1]}, " in record ", i);
      coarse[i] = p[0];
      lab[i] = p[1];
    } else {
      if (p[0] >= 10) fail_input(path, what, " '", path, "': expected label < 10, found ", unsigned{p[0]}, " in record ", i);
      lab[i] = p[0];
    }
    std::memcpy(img + static_cast<std::size_t>(i) * kPixels, p + n_label_bytes, kPixels);
  }
  return r;
}

std::vector<std::string> dataset_names() {
  std::vector<std::string> v;
  for (const auto& e : kRegistry) v.emplace_back(e.name);
  return v;
}

std::string default_data_dir(const std::string& name) {
  const Entry& e = find_entry(name);
  // REPSEARCH_DATA_DIR: one directory holding every data set under its usual folder name, as
  // launch/fetch_datasets.sh --dir leaves them (a site's scratch copy, a test's uncompressed copy).
  const char* root = std::getenv("REPSEARCH_DATA_DIR");
  if (root && *root) return join(root, fs::path(e.default_dir).filename().string());
  return e.default_dir;
}

std::int64_t dataset_classes(const std::string& name) { return find_entry(name).format == Format::cifar100 ? 100 : 10; }

Dataset load_dataset(const std::string& name, const std::string& data_dir) {
  const Entry& e = find_entry(name);
  Dataset d;
  d.name = e.name;
  d.data_dir = data_dir.empty() ? default_data_dir(name) : data_dir;
  const std::string& dir = d.data_dir;

  d.n_classes = dataset_classes(name);
  switch (e.format) {
    case Format::idx: {
      // Locate all four files first so that a missing directory gives one clear message.
      const std::string tr_i = find_idx_file(e, dir, "train-images-idx3-ubyte");
      const std::string tr_l = find_idx_file(e, dir, "train-labels-idx1-ubyte");
      const std::string te_i = find_idx_file(e, dir, "t10k-images-idx3-ubyte");
      const std::string te_l = find_idx_file(e, dir, "t10k-labels-idx1-ubyte");
      std::tie(d.train_images, d.train_labels) = load_idx_pair(tr_i, tr_l, d.n_classes);
      std::tie(d.test_images, d.test_labels) = load_idx_pair(te_i, te_l, d.n_classes);
      if (d.train_images.size(2) != d.test_images.size(2) || d.train_images.size(3) != d.test_images.size(3))
        fail_input(te_i, "dataset '", e.name, "': expected training and test images of the same size, found ",
             d.train_images.size(2), "x", d.train_images.size(3), " in '", tr_i, "' and ", d.test_images.size(2), "x",
             d.test_images.size(3), " in '", te_i, "'");
      d.files = {tr_i, tr_l, te_i, te_l};
      break;
    }
    case Format::cifar10:
    case Format::cifar100: {
      const bool c100 = e.format == Format::cifar100;
      std::vector<std::string> train_files;
      std::string test_file;
      if (c100) {
        train_files = {find_cifar_file(e, dir, "train.bin")};
        test_file = find_cifar_file(e, dir, "test.bin");
      } else {
        for (int i = 1; i <= 5; ++i) train_files.push_back(find_cifar_file(e, dir, "data_batch_" + std::to_string(i) + ".bin"));
        test_file = find_cifar_file(e, dir, "test_batch.bin");
      }
      std::vector<CifarRecords> parts;
      for (const auto& f : train_files) parts.push_back(read_cifar(f, c100));
      CifarRecords train = parts.size() == 1 ? std::move(parts[0]) : concat_cifar(parts);
      CifarRecords test = read_cifar(test_file, c100);
      d.train_images = train.images;
      d.train_labels = train.labels;
      d.test_images = test.images;
      d.test_labels = test.labels;
      d.files = train_files;
      d.files.push_back(test_file);
      break;
    }
  }
  // Absolute, as archives and results record it: a relative one would mean another folder elsewhere.
  std::error_code ec;
  const fs::path absolute = fs::absolute(d.data_dir, ec);
  if (!ec) d.data_dir = absolute.lexically_normal().string();
  return d;
}

}  // namespace repsearch::io
