// Private to repsearch::io: the small RAII layer over the HDF5 C API that every HDF5 file of
// repsearch (archives, checkpoints, results) is written and read through. Every hid_t/herr_t is
// checked; a failure becomes a repsearch::Error that names the file, the object and HDF5's most
// specific reason ("[HDF5] archive a.h5: cannot create dataset ... (...)"). HDF5's own error
// printing is turned off (quiet_hdf5) so that message is the only one.
//
// Files use only standard little-endian types and variable-length UTF-8 strings, so h5py, h5dump
// and HDFView read them without this code. write_atomically writes `<path>.tmp-<pid>`, flushes,
// closes, fsyncs and renames it onto `path`; any failure removes the temporary file and leaves
// `path` as it was.
#pragma once
#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>
#include <zlib.h>

#include <ATen/ATen.h>
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "repsearch/core/error.hpp"
#include "repsearch/io/provenance.hpp"
#include "repsearch/io/rundir.hpp"

namespace repsearch::io::detail {

namespace fs = std::filesystem;

// Per call, not once: in a thread-safe HDF5 build the automatic error handler is per thread.
// No library shutdown at exit: every file is closed explicitly, and after a failed write (a full
// disk) HDF5's atexit close of the file it could not close crashed the process (exit 139).
inline void quiet_hdf5() {
  static const bool no_atexit = [] { return H5dont_atexit() >= 0; }();
  (void)no_atexit;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

// The most specific description on HDF5's error stack; call before the next HDF5 call clears it.
inline std::string hdf5_reason() {
  std::string reason;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned, const H5E_error2_t* e, void* data) -> herr_t {
        if (e->desc != nullptr && e->desc[0] != '\0') {
          *static_cast<std::string*>(data) = e->desc;
          return 1;  // stop: the innermost record with a description
        }
        return 0;
      },
      &reason);
  return reason;
}

// Inside a catch: any failure while reading `file` leaves as an InputError about it (what() unchanged);
// one while writing it, as an OutputError. Other exceptions (LibTorch's, std::bad_alloc) pass unchanged.
[[noreturn]] inline void rethrow_as_input(const std::string& file) {
  try {
    throw;
  } catch (const InputError&) {
    throw;
  } catch (const OptionError&) {
    throw;
  } catch (const Error& e) {
    throw InputError(file, repsearch::detail::reason_after(e.what(), file), e.what());
  }
}
[[noreturn]] inline void rethrow_as_output(const std::string& file) {
  try {
    throw;
  } catch (const OutputError&) {
    throw;
  } catch (const Error& e) {
    throw OutputError(file, repsearch::detail::reason_after(e.what(), file), e.what());
  }
}

template <class... Args>
[[noreturn]] void h5fail(const std::string& label, Args&&... what) {
  const std::string reason = hdf5_reason();
  fail("[HDF5] ", label, ": ", std::forward<Args>(what)..., reason.empty() ? std::string() : " (HDF5: " + reason + ")");
}

template <class... Args>
void check(herr_t status, const std::string& label, Args&&... what) {
  if (status < 0) h5fail(label, std::forward<Args>(what)...);
}

// Owns one HDF5 identifier and closes it with the matching H5?close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, -1)), closer_(other.closer_) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, -1);
      closer_ = other.closer_;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  hid_t get() const { return id_; }
  // Closes now and reports the status (a file's close writes its metadata: it can fail).
  herr_t close() {
    herr_t status = 0;
    if (id_ >= 0 && closer_ != nullptr) status = closer_(id_);
    id_ = -1;
    return status;
  }

 private:
  void reset() noexcept {
    if (id_ >= 0 && closer_ != nullptr) closer_(id_);
    id_ = -1;
  }
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

template <class... Args>
Handle own(hid_t id, Handle::Closer closer, const std::string& label, Args&&... what) {
  if (id < 0) h5fail(label, std::forward<Args>(what)...);
  return Handle(id, closer);
}

// CRC-32 (zlib) of `bytes` bytes, fed in pieces below zlib's 4 GiB length limit.
inline std::uint64_t crc32_of(const void* data, std::size_t bytes) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(data);
  while (bytes > 0) {
    const std::size_t n = std::min<std::size_t>(bytes, std::size_t{1} << 30);
    crc = ::crc32(crc, p, static_cast<uInt>(n));
    p += n;
    bytes -= n;
  }
  return crc;
}
inline constexpr const char* kChecksumAttr = "crc32";

// ---- element types --------------------------------------------------------------------------------

struct H5Types {
  hid_t memory, file;
  H5T_class_t cls;
};

// IEEE binary16, which HDF5 1.10 has no predefined type for (h5py reads it as float16). Never closed.
inline hid_t half_type() {
  static const hid_t type = [] {
    const hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0 || H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0)
      fail("[HDF5] cannot make the IEEE half-precision type");
    return t;
  }();
  return type;
}

inline H5Types h5_types(at::ScalarType type) {
  switch (type) {
    case at::kHalf: return {half_type(), half_type(), H5T_FLOAT};
    case at::kFloat: return {H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, H5T_FLOAT};
    case at::kDouble: return {H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, H5T_FLOAT};
    case at::kLong: return {H5T_NATIVE_INT64, H5T_STD_I64LE, H5T_INTEGER};
    case at::kInt: return {H5T_NATIVE_INT32, H5T_STD_I32LE, H5T_INTEGER};
    default: fail("internal: no HDF5 type for tensor dtype ", type);
  }
}

template <class T>
H5Types h5_types_of();
template <>
inline H5Types h5_types_of<double>() { return h5_types(at::kDouble); }
template <>
inline H5Types h5_types_of<std::int64_t>() { return h5_types(at::kLong); }
template <>
inline H5Types h5_types_of<std::int32_t>() { return h5_types(at::kInt); }
template <>
inline H5Types h5_types_of<std::uint64_t>() { return {H5T_NATIVE_UINT64, H5T_STD_U64LE, H5T_INTEGER}; }

inline const char* class_name(H5T_class_t cls) {
  switch (cls) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "floating-point";
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "variable-length sequence";
    case H5T_OPAQUE: return "opaque";
    case H5T_REFERENCE: return "reference";
    case H5T_BITFIELD: return "bitfield";
    case H5T_TIME: return "time";
    default: return "unknown";
  }
}

inline std::string dims_text(const std::vector<hsize_t>& dims) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < dims.size(); ++i) os << (i ? ", " : "") << dims[i];
  os << ']';
  return os.str();
}

inline std::string join(const std::vector<std::int64_t>& values) {
  std::ostringstream os;
  for (std::size_t i = 0; i < values.size(); ++i) os << (i ? ", " : "") << values[i];
  return os.str();
}

// ---- writing --------------------------------------------------------------------------------------

class Writer {
 public:
  // checksums: every numeric dataset gets a `crc32` attribute (zlib CRC-32 of its little-endian bytes).
  Writer(hid_t file, std::string label, bool checksums = false)
      : file_(file), label_(std::move(label)), checksums_(checksums) {}
  const std::string& label() const { return label_; }
  hid_t file() const { return file_; }

  Handle group(const std::string& path) {
    return own(H5Gcreate2(file_, path.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose, label_,
               "cannot create group ", path);
  }
  Handle open_group(const std::string& path) {
    return own(H5Gopen2(file_, path.c_str(), H5P_DEFAULT), H5Gclose, label_, "cannot open group ", path);
  }

  void attr_string(hid_t object, const std::string& object_path, const char* name, const std::string& value) {
    Handle type = own(H5Tcopy(H5T_C_S1), H5Tclose, label_, "cannot copy the string type");
    check(H5Tset_size(type.get(), H5T_VARIABLE), label_, "cannot make a variable-length string type");
    check(H5Tset_cset(type.get(), H5T_CSET_UTF8), label_, "cannot set the UTF-8 character set");
    Handle space = own(H5Screate(H5S_SCALAR), H5Sclose, label_, "cannot create a scalar dataspace");
    Handle attr = own(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose, label_,
                      "cannot create attribute ", name, " of ", object_path);
    const char* text = value.c_str();
    check(H5Awrite(attr.get(), type.get(), &text), label_, "cannot write attribute ", name, " of ", object_path);
  }

  template <class T>
  void attr(hid_t object, const std::string& object_path, const char* name, T value) {
    const H5Types types = h5_types_of<T>();
    Handle space = own(H5Screate(H5S_SCALAR), H5Sclose, label_, "cannot create a scalar dataspace");
    Handle attr = own(H5Acreate2(object, name, types.file, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose, label_,
                      "cannot create attribute ", name, " of ", object_path);
    check(H5Awrite(attr.get(), types.memory, &value), label_, "cannot write attribute ", name, " of ", object_path);
  }

  // `chunk` empty: contiguous, no filters. Otherwise chunked with gzip level 4, after the shuffle
  // filter when `shuffle` (each filter only where this HDF5 build has it).
  void dataset(const std::string& path, const H5Types& types, const std::vector<hsize_t>& dims, const void* data,
               const std::vector<hsize_t>& chunk = {}, bool shuffle = true) {
    Handle space = dims.empty()
                       ? own(H5Screate(H5S_SCALAR), H5Sclose, label_, "cannot create a dataspace for ", path)
                       : own(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose, label_,
                             "cannot create dataspace ", dims_text(dims), " for ", path);
    Handle dcpl = own(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, label_, "cannot create a property list for ", path);
    if (!chunk.empty()) {
      check(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), label_, "cannot set chunks ",
            dims_text(chunk), " on ", path);
      if (shuffle && H5Zfilter_avail(H5Z_FILTER_SHUFFLE) > 0)
        check(H5Pset_shuffle(dcpl.get()), label_, "cannot set the shuffle filter on ", path);
      if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0)
        check(H5Pset_deflate(dcpl.get(), 4), label_, "cannot set gzip compression on ", path);
    }
    Handle dataset = own(H5Dcreate2(file_, path.c_str(), types.file, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                         H5Dclose, label_, "cannot create dataset ", path, " ", dims_text(dims));
    hsize_t count = 1;
    for (hsize_t n : dims) count *= n;
    if (count > 0)  // H5Dwrite refuses a null buffer
      check(H5Dwrite(dataset.get(), types.memory, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), label_,
            "cannot write dataset ", path);
    if (checksums_)
      attr<std::uint64_t>(dataset.get(), path, kChecksumAttr,
                          count > 0 ? crc32_of(data, count * H5Tget_size(types.memory)) : crc32_of(nullptr, 0));
  }

  // The tensor, on any device and of any dtype, converted to `type` on the CPU. `compress_rows`
  // (rank >= 2, no empty axis; otherwise contiguous and unfiltered): chunks of `rows_per_chunk` rows
  // along axis 0 (one elite, one recorded step), compressed as `dataset` does.
  void tensor(const std::string& path, const at::Tensor& tensor, at::ScalarType type, bool compress_rows = false,
              hsize_t rows_per_chunk = 1, bool shuffle = true) {
    const at::Tensor cpu = tensor.detach().to(at::kCPU, type).contiguous();
    std::vector<hsize_t> dims(cpu.sizes().begin(), cpu.sizes().end());
    std::vector<hsize_t> chunk;
    const bool empty = std::any_of(dims.begin(), dims.end(), [](hsize_t n) { return n == 0; });
    if (compress_rows && !empty && dims.size() >= 2) {
      chunk = dims;
      chunk[0] = std::clamp<hsize_t>(rows_per_chunk, 1, dims[0]);
      // HDF5 chunks must stay under 4 GiB: split the second axis when one row is larger.
      hsize_t rest = cpu.element_size();
      for (std::size_t i = 2; i < dims.size(); ++i) rest *= dims[i];
      const hsize_t max_bytes = hsize_t{1} << 30;
      if (chunk[0] * chunk[1] * rest > max_bytes) chunk[0] = std::max<hsize_t>(1, max_bytes / (chunk[1] * rest));
      if (chunk[1] * rest > max_bytes) chunk[1] = std::max<hsize_t>(1, max_bytes / rest);
    }
    dataset(path, h5_types(type), dims, cpu.data_ptr(), chunk, shuffle);
  }

  template <class T>
  void vector(const std::string& path, const std::vector<T>& values) {
    dataset(path, h5_types_of<T>(), {static_cast<hsize_t>(values.size())}, values.data());
  }

  // A 1-D dataset of variable-length UTF-8 strings (h5py reads it as str/bytes objects).
  void strings(const std::string& path, const std::vector<std::string>& values) {
    Handle type = own(H5Tcopy(H5T_C_S1), H5Tclose, label_, "cannot copy the string type");
    check(H5Tset_size(type.get(), H5T_VARIABLE), label_, "cannot make a variable-length string type");
    check(H5Tset_cset(type.get(), H5T_CSET_UTF8), label_, "cannot set the UTF-8 character set");
    const hsize_t dims[1] = {static_cast<hsize_t>(values.size())};
    Handle space = own(H5Screate_simple(1, dims, nullptr), H5Sclose, label_, "cannot create dataspace ",
                       dims_text({dims[0]}), " for ", path);
    Handle dataset =
        own(H5Dcreate2(file_, path.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose,
            label_, "cannot create dataset ", path, " ", dims_text({dims[0]}));
    if (values.empty()) return;
    std::vector<const char*> text;
    text.reserve(values.size());
    for (const std::string& value : values) text.push_back(value.c_str());
    check(H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, text.data()), label_,
          "cannot write dataset ", path);
  }

 private:
  hid_t file_;
  std::string label_;
  bool checksums_ = false;
};

struct AtomicWrite {
  bool checksums = false;           // crc32 attribute on every numeric dataset (Writer)
  bool metadata_checksums = false;  // HDF5 1.8+ object headers, which carry checksums of their own
  // Called on the complete, synced temporary file before it replaces `path` (e.g. read it back).
  std::function<void(const std::string& temp)> verify;
  std::string keep_previous;  // if set, the file being replaced is kept under this name
  // Called after `verify`, just before the rename onto `path` (e.g. to put a companion file in place first).
  std::function<void()> before_rename;
};

inline void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// A file written under `<path>.tmp-<pid>`: commit() flushes, closes, fsyncs, runs `how.verify`, keeps
// the file it replaces (how.keep_previous) and renames onto `path`, so `path` is always either the
// old or the new complete file. Destroyed without commit (an exception midway): the temporary file
// is removed and `path` is left as it was.
class AtomicFile {
 public:
  AtomicFile(std::string path, std::string label, AtomicWrite how)
      : path_(std::move(path)), label_(std::move(label)), how_(std::move(how)) {
    quiet_hdf5();
    if (path_.empty()) fail(label_, ": empty file name");
    const fs::path target(path_);
    if (target.has_parent_path()) {
      std::error_code ec;
      fs::create_directories(target.parent_path(), ec);
      if (ec) fail(label_, ": cannot create directory ", target.parent_path().string(), ": ", ec.message());
    }
    temp_ = path_ + ".tmp-" + std::to_string(::getpid());
    Handle fapl = own(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, label_, "cannot create a file access property list");
    if (how_.metadata_checksums)
      check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST), label_,
            "cannot ask for checksummed metadata");
    file_ = own(H5Fcreate(temp_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose, label_,
                "cannot create temporary file ", temp_);
    writer_ = std::make_unique<Writer>(file_.get(), label_, how_.checksums);
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() {
    if (committed_) return;
    writer_.reset();
    file_ = Handle();
    std::error_code ec;
    fs::remove(temp_, ec);
  }
  Writer& writer() { return *writer_; }

  void commit() {  // every object the body opened must be closed before
    writer_.reset();
    check(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), label_, "cannot flush temporary file ", temp_);
    check(file_.close(), label_, "cannot close temporary file ", temp_);
    if (const int error = fsync_path(temp_)) fail(label_, ": cannot sync temporary file ", temp_, ": ", std::strerror(error));
    if (how_.verify) how_.verify(temp_);
    if (!how_.keep_previous.empty() && fs::exists(path_)) {
      const std::string prev_temp = how_.keep_previous + ".tmp-" + std::to_string(::getpid());
      std::remove(prev_temp.c_str());
      if (::link(path_.c_str(), prev_temp.c_str()) != 0 ||
          std::rename(prev_temp.c_str(), how_.keep_previous.c_str()) != 0) {
        const int error = errno;
        std::remove(prev_temp.c_str());
        fail(label_, ": cannot keep the previous file as ", how_.keep_previous, ": ", std::strerror(error));
      }
      // rename() of two links to one file (left so by a kill between the two renames) does nothing.
      std::remove(prev_temp.c_str());
    }
    if (how_.before_rename) how_.before_rename();
    if (std::rename(temp_.c_str(), path_.c_str()) != 0)
      fail(label_, ": cannot rename ", temp_, " onto ", path_, ": ", std::strerror(errno));
    committed_ = true;
    sync_directory(fs::path(path_).parent_path());
  }

 private:
  std::string path_, label_, temp_;
  AtomicWrite how_;
  Handle file_;
  std::unique_ptr<Writer> writer_;
  bool committed_ = false;
};

// Writes through `body(Writer&)` into an AtomicFile and commits it.
template <class Body>
void write_atomically(const std::string& path, const std::string& label, Body&& body, const AtomicWrite& how = {}) {
  AtomicFile file(path, label, how);
  body(file.writer());
  file.commit();
}

// Write-side validation: `name` must be a defined tensor of `rank` dimensions.
inline void require_rank(const std::string& label, const char* name, const at::Tensor& t, std::int64_t rank,
                  const char* expected) {
  if (!t.defined()) fail(label, ": cannot write: ", name, " is undefined (expected ", expected, ")");
  if (t.dim() != rank)
    fail(label, ": cannot write: ", name, " has shape ", t.sizes(), ", expected ", expected);
}
inline void require_length(const std::string& label, const char* name, std::int64_t found, std::int64_t expected,
                    const char* what) {
  if (found != expected)
    fail(label, ": cannot write: ", name, " has ", found, " entries, expected ", expected, " (", what, ")");
}

// ---- reading --------------------------------------------------------------------------------------

class Reader {
 public:
  // require_checksums: every numeric dataset read must carry a matching crc32 attribute. Without it,
  // a crc32 that is present is still verified.
  Reader(hid_t file, std::string label, bool require_checksums = false)
      : file_(file), label_(std::move(label)), require_checksums_(require_checksums) {}
  const std::string& label() const { return label_; }

  // Whether every component of the absolute `path` exists (H5Lexists fails on a missing parent).
  bool exists(const std::string& path) const {
    std::string prefix;
    std::size_t start = 1;
    while (start <= path.size()) {
      std::size_t end = path.find('/', start);
      if (end == std::string::npos) end = path.size();
      if (end > start) {
        prefix += "/" + path.substr(start, end - start);
        if (H5Lexists(file_, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
      }
      start = end + 1;
    }
    return true;
  }

  Handle group(const std::string& path) const {
    if (path != "/" && !exists(path)) fail(label_, ": missing group ", path);
    return own(H5Gopen2(file_, path.c_str(), H5P_DEFAULT), H5Gclose, label_, "cannot open ", path,
               " as a group (expected a group)");
  }

  Handle dataset(const std::string& path) const {
    if (!exists(path)) fail(label_, ": missing dataset ", path);
    return own(H5Dopen2(file_, path.c_str(), H5P_DEFAULT), H5Dclose, label_, "cannot open ", path,
               " as a dataset (expected a dataset)");
  }

  // Opens `path`, checks its element class and returns its dims.
  std::vector<hsize_t> shape(const Handle& dataset, const std::string& path, H5T_class_t expected) const {
    Handle type = own(H5Dget_type(dataset.get()), H5Tclose, label_, "cannot get the type of ", path);
    const H5T_class_t cls = H5Tget_class(type.get());
    if (cls != expected)
      fail(label_, ": dataset ", path, " holds ", class_name(cls), " values, expected ", class_name(expected));
    Handle space = own(H5Dget_space(dataset.get()), H5Sclose, label_, "cannot get the dataspace of ", path);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    if (rank < 0) h5fail(label_, "cannot get the rank of ", path);
    std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
    if (rank > 0 && H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0)
      h5fail(label_, "cannot get the dimensions of ", path);
    return dims;
  }

  void read(const Handle& dataset, const std::string& path, hid_t memory, void* data, hsize_t count) const {
    if (count > 0)
      check(H5Dread(dataset.get(), memory, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), label_, "cannot read dataset ", path);
    const htri_t has = H5Aexists(dataset.get(), kChecksumAttr);
    if (has < 0) h5fail(label_, "cannot look up attribute ", kChecksumAttr, " of ", path);
    if (has == 0) {
      if (require_checksums_) fail(label_, ": dataset ", path, " has no ", kChecksumAttr, " checksum attribute");
      return;
    }
    const auto stored = attr<std::uint64_t>(dataset.get(), path, kChecksumAttr);
    const auto found = crc32_of(data, count * H5Tget_size(memory));
    if (stored != found)
      fail(label_, ": dataset ", path, " is corrupt (CRC-32 ", found, ", its ", kChecksumAttr, " attribute says ",
           stored, "): the file was damaged after it was written");
  }

  at::Tensor tensor(const std::string& path, at::ScalarType type, std::size_t rank, const char* expected) const {
    const H5Types types = h5_types(type);
    Handle ds = dataset(path);
    const std::vector<hsize_t> dims = shape(ds, path, types.cls);
    if (dims.size() != rank)
      fail(label_, ": dataset ", path, " has shape ", dims_text(dims), ", expected ", rank, " dimensions ", expected);
    std::vector<std::int64_t> sizes(dims.begin(), dims.end());
    at::Tensor out = at::empty(sizes, at::TensorOptions().dtype(type));
    read(ds, path, types.memory, out.data_ptr(), static_cast<hsize_t>(out.numel()));
    return out;
  }

  template <class T>
  std::vector<T> vector(const std::string& path) const {
    const H5Types types = h5_types_of<T>();
    Handle ds = dataset(path);
    const std::vector<hsize_t> dims = shape(ds, path, types.cls);
    if (dims.size() != 1)
      fail(label_, ": dataset ", path, " has shape ", dims_text(dims), ", expected one dimension");
    std::vector<T> out(dims[0]);
    read(ds, path, types.memory, out.data(), dims[0]);
    return out;
  }

  // A 1-D dataset of strings, variable-length (as Writer::strings writes them) or fixed-length.
  std::vector<std::string> strings(const std::string& path) const {
    Handle ds = dataset(path);
    const std::vector<hsize_t> dims = shape(ds, path, H5T_STRING);
    if (dims.size() != 1)
      fail(label_, ": dataset ", path, " has shape ", dims_text(dims), ", expected one dimension");
    const std::size_t n = dims[0];
    std::vector<std::string> out(n);
    if (n == 0) return out;
    Handle type = own(H5Dget_type(ds.get()), H5Tclose, label_, "cannot get the type of ", path);
    Handle memory = own(H5Tcopy(H5T_C_S1), H5Tclose, label_, "cannot copy the string type");
    check(H5Tset_cset(memory.get(), H5Tget_cset(type.get())), label_, "cannot set a character set");
    const htri_t variable = H5Tis_variable_str(type.get());
    if (variable < 0) h5fail(label_, "cannot inspect the string type of ", path);
    if (variable > 0) {
      check(H5Tset_size(memory.get(), H5T_VARIABLE), label_, "cannot make a variable-length string type");
      std::vector<char*> text(n, nullptr);
      check(H5Dread(ds.get(), memory.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, text.data()), label_,
            "cannot read dataset ", path);
      for (std::size_t i = 0; i < n; ++i) out[i] = text[i] != nullptr ? text[i] : "";
      Handle space = own(H5Dget_space(ds.get()), H5Sclose, label_, "cannot get the dataspace of ", path);
      check(H5Dvlen_reclaim(memory.get(), space.get(), H5P_DEFAULT, text.data()), label_,
            "cannot free the strings read from ", path);
      return out;
    }
    const std::size_t size = H5Tget_size(type.get());
    if (size == 0) h5fail(label_, "cannot get the string size of ", path);
    check(H5Tset_size(memory.get(), size), label_, "cannot size a string type");
    std::vector<char> buffer(n * size + 1, '\0');
    check(H5Dread(ds.get(), memory.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()), label_,
          "cannot read dataset ", path);
    for (std::size_t i = 0; i < n; ++i) {
      const char* begin = buffer.data() + i * size;
      out[i].assign(begin, std::find(begin, begin + size, '\0'));  // fixed-length strings are NUL-padded
    }
    return out;
  }

  // A single-valued attribute's handle, type and class; missing → error naming object and attribute.
  Handle attribute(hid_t object, const std::string& object_path, const char* name) const {
    const htri_t present = H5Aexists(object, name);
    if (present < 0) h5fail(label_, "cannot look up attribute ", name, " of ", object_path);
    if (present == 0) fail(label_, ": missing attribute ", name, " of ", object_path);
    Handle attr = own(H5Aopen(object, name, H5P_DEFAULT), H5Aclose, label_, "cannot open attribute ", name, " of ",
                      object_path);
    Handle space = own(H5Aget_space(attr.get()), H5Sclose, label_, "cannot get the dataspace of attribute ", name);
    const hssize_t count = H5Sget_simple_extent_npoints(space.get());
    if (count != 1)
      fail(label_, ": attribute ", name, " of ", object_path, " holds ", count, " values, expected one");
    return attr;
  }

  std::string attr_string(hid_t object, const std::string& object_path, const char* name) const {
    Handle attr = attribute(object, object_path, name);
    Handle type = own(H5Aget_type(attr.get()), H5Tclose, label_, "cannot get the type of attribute ", name);
    const H5T_class_t cls = H5Tget_class(type.get());
    if (cls != H5T_STRING)
      fail(label_, ": attribute ", name, " of ", object_path, " holds ", class_name(cls), " values, expected a string");
    Handle memory = own(H5Tcopy(H5T_C_S1), H5Tclose, label_, "cannot copy the string type");
    check(H5Tset_cset(memory.get(), H5Tget_cset(type.get())), label_, "cannot set a character set");
    const htri_t variable = H5Tis_variable_str(type.get());
    if (variable < 0) h5fail(label_, "cannot inspect the string type of attribute ", name);
    if (variable > 0) {
      check(H5Tset_size(memory.get(), H5T_VARIABLE), label_, "cannot make a variable-length string type");
      char* text = nullptr;
      check(H5Aread(attr.get(), memory.get(), &text), label_, "cannot read attribute ", name, " of ", object_path);
      std::string out = text != nullptr ? text : "";
      H5free_memory(text);
      return out;
    }
    const std::size_t size = H5Tget_size(type.get());
    if (size == 0) h5fail(label_, "cannot get the size of attribute ", name);
    check(H5Tset_size(memory.get(), size), label_, "cannot size a string type");
    std::string out(size, '\0');
    check(H5Aread(attr.get(), memory.get(), out.data()), label_, "cannot read attribute ", name, " of ", object_path);
    out.resize(std::strlen(out.c_str()));  // fixed-length strings are NUL-padded
    return out;
  }

  template <class T>
  T attr(hid_t object, const std::string& object_path, const char* name) const {
    const H5Types types = h5_types_of<T>();
    Handle attr = attribute(object, object_path, name);
    Handle type = own(H5Aget_type(attr.get()), H5Tclose, label_, "cannot get the type of attribute ", name);
    const H5T_class_t cls = H5Tget_class(type.get());
    if (cls != types.cls)
      fail(label_, ": attribute ", name, " of ", object_path, " holds ", class_name(cls), " values, expected ",
           class_name(types.cls));
    T value{};
    check(H5Aread(attr.get(), types.memory, &value), label_, "cannot read attribute ", name, " of ", object_path);
    return value;
  }

  // Names of the links in group `path`.
  std::vector<std::string> children(const std::string& path) const {
    Handle g = group(path);
    H5G_info_t info;
    check(H5Gget_info(g.get(), &info), label_, "cannot list group ", path);
    std::vector<std::string> names;
    for (hsize_t i = 0; i < info.nlinks; ++i) {
      const ssize_t length =
          H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
      if (length < 0) h5fail(label_, "cannot list group ", path);
      std::string name(static_cast<std::size_t>(length) + 1, '\0');
      if (H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT) < 0)
        h5fail(label_, "cannot list group ", path);
      name.resize(static_cast<std::size_t>(length));
      names.push_back(name);
    }
    return names;
  }

 private:
  hid_t file_;
  std::string label_;
  bool require_checksums_ = false;
};

inline Handle open_for_read(const std::string& path, const std::string& label, const char* expected_format) {
  quiet_hdf5();
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) fail(label, ": no such file (expected a ", expected_format, " HDF5 file)");
  if (fs::is_directory(status)) fail(label, ": is a directory, expected a ", expected_format, " HDF5 file");
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 < 0) h5fail(label, "cannot read the file (expected a ", expected_format, " HDF5 file)");
  if (is_hdf5 == 0)
    fail(label, ": not an HDF5 file (no HDF5 signature; expected a ", expected_format, " HDF5 file)");
  Handle fapl = own(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, label, "cannot create a file access property list");
#if H5_VERSION_GE(1, 10, 7)
  // Read-only opens need no lock; on file systems without flock (some cluster mounts) go on without.
  check(H5Pset_file_locking(fapl.get(), false, true), label, "cannot configure file locking");
#endif
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (file < 0) {
    const std::string reason = hdf5_reason();
    if (reason.find("truncated") != std::string::npos)
      fail("[HDF5] ", label, ": truncated HDF5 file, an interrupted write or copy? (HDF5: ", reason, ")");
    fail("[HDF5] ", label, ": cannot open as an HDF5 file (expected a ", expected_format, " file)",
         reason.empty() ? std::string() : " (HDF5: " + reason + ")");
  }
  return Handle(file, H5Fclose);
}

// Refuses a file whose root `format` is not `expected` or whose `format_version` is outside
// [min_version, expected_version]; returns the version found.
inline std::int64_t check_format(const Reader& r, const char* expected, const char* kind, std::int64_t expected_version,
                                 std::int64_t min_version = -1) {
  if (min_version < 0) min_version = expected_version;
  Handle root = r.group("/");
  const htri_t present = H5Aexists(root.get(), "format");
  if (present < 0) h5fail(r.label(), "cannot look up attribute format of /");
  if (present == 0)
    fail(r.label(), ": no format attribute: not a repsearch file (expected a repsearch ", kind, ", format=", expected,
         ")");
  const std::string found = r.attr_string(root.get(), "/", "format");
  if (found != expected)
    fail(r.label(), ": expected a repsearch ", kind, " (format=", expected, "), found format='", found, "'");
  const auto version = r.attr<std::int64_t>(root.get(), "/", "format_version");
  if (version < min_version || version > expected_version)
    fail(r.label(), ": unsupported format_version ", version, " (expected format_version ",
         min_version == expected_version ? std::to_string(expected_version)
                                         : std::to_string(min_version) + " to " + std::to_string(expected_version),
         "; written by another repsearch version?)");
  return version;
}

// Checks that every named column of `group` has `n` entries.
inline void require_columns(const Reader& r, const std::string& group, std::size_t n,
                     const std::vector<std::pair<const char*, std::size_t>>& columns) {
  for (const auto& [name, size] : columns)
    if (size != n)
      fail(r.label(), ": dataset ", group, "/", name, " has ", size, " entries, expected ", n, " (as ", group, "/",
           columns.front().first, ")");
}


inline void require_size(const Reader& r, const std::string& path, std::int64_t found, std::int64_t expected,
                  const char* what) {
  if (found != expected)
    fail(r.label(), ": dataset ", path, " has ", found, " entries along an axis that should have ", expected, " (",
         what, ")");
}

// ---- generic reads -------------------------------------------------------------------------------

// A dataset of whatever numeric type it was written with (float16/32/64, int32/64), checksum verified.
inline at::Tensor read_any(const Reader& r, const std::string& path) {
  Handle ds = r.dataset(path);
  Handle type = own(H5Dget_type(ds.get()), H5Tclose, r.label(), "cannot get the type of ", path);
  const auto cls = H5Tget_class(type.get());
  const auto size = H5Tget_size(type.get());
  at::ScalarType t;
  if (cls == H5T_FLOAT) t = size == 2 ? at::kHalf : size == 4 ? at::kFloat : at::kDouble;
  else if (cls == H5T_INTEGER) t = size == 4 ? at::kInt : at::kLong;
  else fail(r.label(), ": dataset ", path, " holds ", class_name(cls), " values, expected numbers");
  Handle space = own(H5Dget_space(ds.get()), H5Sclose, r.label(), "cannot get the dataspace of ", path);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) h5fail(r.label(), "cannot get the rank of ", path);
  return r.tensor(path, t, static_cast<std::size_t>(rank), "");
}

// ---- the Origin attributes of `/`: one writer and one reader for every kind of file ---------------

inline void write_origin(Writer& w, hid_t root, const Origin& o) {
  w.attr_string(root, "/", "repsearch_version", o.repsearch_version);
  w.attr_string(root, "/", "git_commit", o.git_commit);
  w.attr_string(root, "/", "created", o.created);
  w.attr_string(root, "/", "command_line", o.command_line);
  w.attr_string(root, "/", "config", o.config);
  w.attr_string(root, "/", "config_sha256", o.config_sha256);
  w.attr<std::uint64_t>(root, "/", "seed", o.seed);
}

inline Origin read_origin(const Reader& r, hid_t root) {
  Origin o;
  o.repsearch_version = r.attr_string(root, "/", "repsearch_version");
  o.git_commit = r.attr_string(root, "/", "git_commit");
  o.created = r.attr_string(root, "/", "created");
  o.command_line = r.attr_string(root, "/", "command_line");
  o.config = r.attr_string(root, "/", "config");
  o.config_sha256 = r.attr_string(root, "/", "config_sha256");
  o.seed = r.attr<std::uint64_t>(root, "/", "seed");
  return o;
}

// ---- the Provenance attributes of `/` (archives and checkpoints of both search spaces) ----------------

inline void write_provenance(Writer& w, hid_t root, const char* format, const Provenance& p, std::int64_t version) {
  w.attr_string(root, "/", "format", format);
  w.attr<std::int64_t>(root, "/", "format_version", version);
  write_origin(w, root, p);
  w.attr<std::int64_t>(root, "/", "n_islands", p.n_islands);
  w.attr<std::int64_t>(root, "/", "n_ranks", p.n_ranks);
  w.attr_string(root, "/", "hosts", p.hosts);
  w.attr_string(root, "/", "devices", p.devices);
  w.attr_string(root, "/", "fitness", p.fitness);
  w.attr_string(root, "/", "fitness_parameters", p.fitness_parameters);
}

inline Provenance read_provenance(const Reader& r) {
  Handle root = r.group("/");
  const hid_t g = root.get();
  Provenance p;
  static_cast<Origin&>(p) = read_origin(r, g);
  p.n_islands = r.attr<std::int64_t>(g, "/", "n_islands");
  p.n_ranks = r.attr<std::int64_t>(g, "/", "n_ranks");
  p.hosts = r.attr_string(g, "/", "hosts");
  p.devices = r.attr_string(g, "/", "devices");
  p.fitness = r.attr_string(g, "/", "fitness");
  p.fitness_parameters = r.attr_string(g, "/", "fitness_parameters");
  return p;
}

// ---- /data's attributes (every archive): the data set, its directory, the inputs' normalisation ------

inline void write_data_group(Writer& w, const std::string& dataset, const std::string& data_dir,
                             const std::string& normalisation) {
  Handle data = w.group("/data");
  w.attr_string(data.get(), "/data", "dataset", dataset);
  w.attr_string(data.get(), "/data", "data_dir", data_dir);
  w.attr_string(data.get(), "/data", "normalisation", normalisation);
}

inline void read_data_group(const Reader& r, std::string& dataset, std::string& data_dir, std::string& normalisation) {
  Handle data = r.group("/data");
  dataset = r.attr_string(data.get(), "/data", "dataset");
  data_dir = r.attr_string(data.get(), "/data", "data_dir");
  normalisation = r.attr_string(data.get(), "/data", "normalisation");
}

// ---- /data/identity: the data a file was computed from (provenance.hpp, DataIdentity) -------------
// attrs dataset, data_dir, columns; one uint64 dataset per split, [examples, labels_crc32, images_crc32].

inline constexpr const char* kIdentityGroup = "/data/identity";

inline void write_data_identity(Writer& w, const DataIdentity& id) {
  if (!id.recorded()) return;
  if (H5Lexists(w.file(), "/data", H5P_DEFAULT) <= 0) w.group("/data");
  Handle g = w.group(kIdentityGroup);
  w.attr_string(g.get(), kIdentityGroup, "dataset", id.dataset);
  w.attr_string(g.get(), kIdentityGroup, "data_dir", id.data_dir);
  w.attr_string(g.get(), kIdentityGroup, "columns",
                "examples, CRC-32 (zlib) of the labels as int64 little-endian, CRC-32 of the uint8 images "
                "[n, C, H, W]; both in split order");
  for (const auto& s : id.splits)
    w.vector(std::string(kIdentityGroup) + "/" + s.name,
             std::vector<std::uint64_t>{static_cast<std::uint64_t>(s.examples), s.labels_crc32, s.images_crc32});
}

// Empty (recorded() false) for files written before identities existed.
inline DataIdentity read_data_identity(const Reader& r) {
  DataIdentity id;
  if (!r.exists(kIdentityGroup)) return id;
  Handle g = r.group(kIdentityGroup);
  id.dataset = r.attr_string(g.get(), kIdentityGroup, "dataset");
  id.data_dir = r.attr_string(g.get(), kIdentityGroup, "data_dir");
  for (const std::string& name : r.children(kIdentityGroup)) {
    const std::string path = std::string(kIdentityGroup) + "/" + name;
    const auto v = r.vector<std::uint64_t>(path);
    if (v.size() != 3)
      fail(r.label(), ": dataset ", path, " has ", v.size(), " entries, expected 3 (examples, labels_crc32, images_crc32)");
    id.splits.push_back({name, static_cast<std::int64_t>(v[0]), v[1], v[2]});
  }
  if (id.splits.empty()) fail(r.label(), ": group ", kIdentityGroup, " holds no split");
  auto order = [](const DataIdentity::Split& s) {  // the order written, not HDF5's by name
    const char* names[] = {"search", "val", "heldout", "test", "train"};
    return std::find(std::begin(names), std::end(names), s.name) - std::begin(names);
  };
  std::stable_sort(id.splits.begin(), id.splits.end(), [&](const auto& a, const auto& b) { return order(a) < order(b); });
  return id;
}

}  // namespace repsearch::io::detail
