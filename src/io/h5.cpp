// HDF5 archives and checkpoints (layout in DESIGN.md, "HDF5 archive") over a small RAII layer on the
// HDF5 C API. Every hid_t/herr_t is checked; a failure becomes a repsearch::Error that names the file,
// the object and HDF5's most specific reason ("[HDF5] archive a.h5: cannot create dataset ... (...)").
// HDF5's own error printing is turned off so that message is the only one.
//
// Files use only standard little-endian types and variable-length UTF-8 string attributes, so h5py,
// h5dump and HDFView read them without this code. Writes go to `<path>.tmp-<pid>`, are flushed, closed,
// fsync'ed and renamed onto `path`; any failure removes the temporary file and leaves `path` as it was.
#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "repsearch/core/error.hpp"
#include "repsearch/io/archive.hpp"

namespace repsearch::io {
namespace {

namespace fs = std::filesystem;

constexpr const char* kCheckpointRng =
    "counter-based: every stream derives from (seed, island, generation); no generator state";

// Per call, not once: in a thread-safe HDF5 build the automatic error handler is per thread.
void quiet_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// The most specific description on HDF5's error stack; call before the next HDF5 call clears it.
std::string hdf5_reason() {
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

// ---- element types --------------------------------------------------------------------------------

struct H5Types {
  hid_t memory, file;
  H5T_class_t cls;
};

H5Types h5_types(at::ScalarType type) {
  switch (type) {
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
H5Types h5_types_of<double>() { return h5_types(at::kDouble); }
template <>
H5Types h5_types_of<std::int64_t>() { return h5_types(at::kLong); }
template <>
H5Types h5_types_of<std::int32_t>() { return h5_types(at::kInt); }
template <>
H5Types h5_types_of<std::uint64_t>() { return {H5T_NATIVE_UINT64, H5T_STD_U64LE, H5T_INTEGER}; }

const char* class_name(H5T_class_t cls) {
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

std::string dims_text(const std::vector<hsize_t>& dims) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < dims.size(); ++i) os << (i ? ", " : "") << dims[i];
  os << ']';
  return os.str();
}

std::string join(const std::vector<std::int64_t>& values) {
  std::ostringstream os;
  for (std::size_t i = 0; i < values.size(); ++i) os << (i ? ", " : "") << values[i];
  return os.str();
}

// ---- writing --------------------------------------------------------------------------------------

class Writer {
 public:
  Writer(hid_t file, std::string label) : file_(file), label_(std::move(label)) {}
  const std::string& label() const { return label_; }

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

  // `chunk` empty: contiguous, no filters. Otherwise chunked with shuffle + gzip level 4.
  void dataset(const std::string& path, const H5Types& types, const std::vector<hsize_t>& dims, const void* data,
               const std::vector<hsize_t>& chunk = {}) {
    Handle space = dims.empty()
                       ? own(H5Screate(H5S_SCALAR), H5Sclose, label_, "cannot create a dataspace for ", path)
                       : own(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose, label_,
                             "cannot create dataspace ", dims_text(dims), " for ", path);
    Handle dcpl = own(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, label_, "cannot create a property list for ", path);
    if (!chunk.empty()) {
      check(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), label_, "cannot set chunks ",
            dims_text(chunk), " on ", path);
      if (H5Zfilter_avail(H5Z_FILTER_SHUFFLE) > 0)
        check(H5Pset_shuffle(dcpl.get()), label_, "cannot set the shuffle filter on ", path);
      if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0)
        check(H5Pset_deflate(dcpl.get(), 4), label_, "cannot set gzip compression on ", path);
    }
    Handle dataset = own(H5Dcreate2(file_, path.c_str(), types.file, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                         H5Dclose, label_, "cannot create dataset ", path, " ", dims_text(dims));
    hsize_t count = 1;
    for (hsize_t n : dims) count *= n;
    if (count == 0) return;  // nothing to write (and H5Dwrite refuses a null buffer)
    check(H5Dwrite(dataset.get(), types.memory, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), label_, "cannot write dataset ",
          path);
  }

  // The tensor, on any device and of any dtype, converted to `type` on the CPU.
  void tensor(const std::string& path, const at::Tensor& tensor, at::ScalarType type, bool compress_rows = false) {
    const at::Tensor cpu = tensor.detach().to(at::kCPU, type).contiguous();
    std::vector<hsize_t> dims(cpu.sizes().begin(), cpu.sizes().end());
    std::vector<hsize_t> chunk;
    const bool empty = std::any_of(dims.begin(), dims.end(), [](hsize_t n) { return n == 0; });
    if (compress_rows && !empty && dims.size() >= 2) {
      chunk = dims;
      chunk[0] = 1;  // one row (one elite) per chunk
      // HDF5 chunks must stay under 4 GiB: split the second axis when one row is larger.
      hsize_t rest = cpu.element_size();
      for (std::size_t i = 2; i < dims.size(); ++i) rest *= dims[i];
      const hsize_t max_bytes = hsize_t{1} << 30;
      if (chunk[1] * rest > max_bytes) chunk[1] = std::max<hsize_t>(1, max_bytes / rest);
    }
    dataset(path, h5_types(type), dims, cpu.data_ptr(), chunk);
  }

  template <class T>
  void vector(const std::string& path, const std::vector<T>& values) {
    dataset(path, h5_types_of<T>(), {static_cast<hsize_t>(values.size())}, values.data());
  }

 private:
  hid_t file_;
  std::string label_;
};

// Creates the parent directories, writes through `body(Writer&)` into `<path>.tmp-<pid>`, flushes,
// closes, fsyncs and renames onto `path`. Any failure removes the temporary file and rethrows.
template <class Body>
void write_atomically(const std::string& path, const std::string& label, Body&& body) {
  quiet_hdf5();
  if (path.empty()) fail(label, ": empty file name");
  const fs::path target(path);
  if (target.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(target.parent_path(), ec);
    if (ec) fail(label, ": cannot create directory ", target.parent_path().string(), ": ", ec.message());
  }
  const std::string temp = path + ".tmp-" + std::to_string(::getpid());
  try {
    {
      Handle fapl = own(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, label, "cannot create a file access property list");
      Handle file = own(H5Fcreate(temp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose, label,
                        "cannot create temporary file ", temp);
      {
        Writer writer(file.get(), label);
        body(writer);
      }  // every object closed before the file
      check(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), label, "cannot flush temporary file ", temp);
      check(file.close(), label, "cannot close temporary file ", temp);
    }
    const int fd = ::open(temp.c_str(), O_RDONLY);
    if (fd < 0 || ::fsync(fd) != 0) {
      const int error = errno;
      if (fd >= 0) ::close(fd);
      fail(label, ": cannot sync temporary file ", temp, ": ", std::strerror(error));
    }
    ::close(fd);
    if (std::rename(temp.c_str(), path.c_str()) != 0)
      fail(label, ": cannot rename ", temp, " onto ", path, ": ", std::strerror(errno));
  } catch (...) {
    std::error_code ec;
    fs::remove(temp, ec);
    throw;
  }
}

void write_provenance(Writer& w, hid_t root, const char* format, const Provenance& p) {
  w.attr_string(root, "/", "format", format);
  w.attr<std::int64_t>(root, "/", "format_version", kFormatVersion);
  w.attr_string(root, "/", "repsearch_version", p.repsearch_version);
  w.attr_string(root, "/", "git_commit", p.git_commit);
  w.attr_string(root, "/", "created", p.created);
  w.attr_string(root, "/", "command_line", p.command_line);
  w.attr_string(root, "/", "config", p.config);
  w.attr_string(root, "/", "config_sha256", p.config_sha256);
  w.attr<std::uint64_t>(root, "/", "seed", p.seed);
  w.attr<std::int64_t>(root, "/", "n_islands", p.n_islands);
  w.attr<std::int64_t>(root, "/", "n_ranks", p.n_ranks);
  w.attr_string(root, "/", "hosts", p.hosts);
  w.attr_string(root, "/", "devices", p.devices);
  w.attr_string(root, "/", "fitness", p.fitness);
  w.attr_string(root, "/", "fitness_parameters", p.fitness_parameters);
}

template <class T, class F>
std::vector<T> column(const std::vector<HistoryRow>& rows, F field) {
  std::vector<T> out;
  out.reserve(rows.size());
  for (const HistoryRow& row : rows) out.push_back(field(row));
  return out;
}

void write_history(Writer& w, const std::string& group, const std::vector<HistoryRow>& rows) {
  w.group(group);
  using R = const HistoryRow&;
  w.vector(group + "/generation", column<std::int64_t>(rows, [](R r) { return r.generation; }));
  w.vector(group + "/best", column<double>(rows, [](R r) { return r.best; }));
  w.vector(group + "/mean", column<double>(rows, [](R r) { return r.mean; }));
  w.vector(group + "/std", column<double>(rows, [](R r) { return r.std; }));
  w.vector(group + "/heldout", column<double>(rows, [](R r) { return r.heldout; }));
  w.vector(group + "/diversity", column<double>(rows, [](R r) { return r.diversity; }));
  w.vector(group + "/evaluations", column<std::int64_t>(rows, [](R r) { return r.evaluations; }));
  w.vector(group + "/seconds", column<double>(rows, [](R r) { return r.seconds; }));
  w.vector(group + "/nonfinite", column<std::int64_t>(rows, [](R r) { return r.nonfinite; }));
}

void write_migrations(Writer& w, const std::vector<MigrationEvent>& events) {
  w.group("/migrations");
  std::vector<std::int64_t> generation, source, destination;
  std::vector<std::uint64_t> uid;
  std::vector<double> fitness;
  for (const MigrationEvent& e : events) {
    generation.push_back(e.generation);
    source.push_back(e.source);
    destination.push_back(e.destination);
    uid.push_back(e.uid);
    fitness.push_back(e.fitness);
  }
  w.vector("/migrations/generation", generation);
  w.vector("/migrations/source", source);
  w.vector("/migrations/destination", destination);
  w.vector("/migrations/uid", uid);
  w.vector("/migrations/fitness", fitness);
}

// Write-side validation: `name` must be a defined tensor of `rank` dimensions.
void require_rank(const std::string& label, const char* name, const at::Tensor& t, std::int64_t rank,
                  const char* expected) {
  if (!t.defined()) fail(label, ": cannot write: ", name, " is undefined (expected ", expected, ")");
  if (t.dim() != rank)
    fail(label, ": cannot write: ", name, " has shape ", t.sizes(), ", expected ", expected);
}
void require_length(const std::string& label, const char* name, std::int64_t found, std::int64_t expected,
                    const char* what) {
  if (found != expected)
    fail(label, ": cannot write: ", name, " has ", found, " entries, expected ", expected, " (", what, ")");
}

// ---- reading --------------------------------------------------------------------------------------

class Reader {
 public:
  Reader(hid_t file, std::string label) : file_(file), label_(std::move(label)) {}
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
    if (count == 0) return;
    check(H5Dread(dataset.get(), memory, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), label_, "cannot read dataset ", path);
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

  // The island indices named by the groups under /islands, sorted.
  std::vector<std::int64_t> island_indices() const {
    std::vector<std::int64_t> indices;
    for (const std::string& name : children("/islands")) {
      const bool digits = !name.empty() && name.size() <= 18 &&
                          std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (!digits || std::to_string(std::stoll(name)) != name)
        fail(label_, ": unexpected object /islands/", name, " (expected groups named by decimal island index)");
      indices.push_back(std::stoll(name));
    }
    std::sort(indices.begin(), indices.end());
    return indices;
  }

 private:
  hid_t file_;
  std::string label_;
};

Handle open_for_read(const std::string& path, const std::string& label, const char* expected_format) {
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

// Refuses a file whose root `format`/`format_version` are not `expected`/kFormatVersion.
void check_format(const Reader& r, const char* expected, const char* kind) {
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
  if (version != kFormatVersion)
    fail(r.label(), ": unsupported format_version ", version, " (expected format_version ", kFormatVersion,
         "; written by another repsearch version?)");
}

Provenance read_provenance(const Reader& r) {
  Handle root = r.group("/");
  const hid_t g = root.get();
  Provenance p;
  p.repsearch_version = r.attr_string(g, "/", "repsearch_version");
  p.git_commit = r.attr_string(g, "/", "git_commit");
  p.created = r.attr_string(g, "/", "created");
  p.command_line = r.attr_string(g, "/", "command_line");
  p.config = r.attr_string(g, "/", "config");
  p.config_sha256 = r.attr_string(g, "/", "config_sha256");
  p.seed = r.attr<std::uint64_t>(g, "/", "seed");
  p.n_islands = r.attr<std::int64_t>(g, "/", "n_islands");
  p.n_ranks = r.attr<std::int64_t>(g, "/", "n_ranks");
  p.hosts = r.attr_string(g, "/", "hosts");
  p.devices = r.attr_string(g, "/", "devices");
  p.fitness = r.attr_string(g, "/", "fitness");
  p.fitness_parameters = r.attr_string(g, "/", "fitness_parameters");
  return p;
}

// Checks that every named column of `group` has `n` entries.
void require_columns(const Reader& r, const std::string& group, std::size_t n,
                     const std::vector<std::pair<const char*, std::size_t>>& columns) {
  for (const auto& [name, size] : columns)
    if (size != n)
      fail(r.label(), ": dataset ", group, "/", name, " has ", size, " entries, expected ", n, " (as ", group, "/",
           columns.front().first, ")");
}

std::vector<HistoryRow> read_history(const Reader& r, const std::string& group) {
  r.group(group);  // a clear "missing group" before any missing column
  const auto generation = r.vector<std::int64_t>(group + "/generation");
  const auto best = r.vector<double>(group + "/best");
  const auto mean = r.vector<double>(group + "/mean");
  const auto stdev = r.vector<double>(group + "/std");
  const auto heldout = r.vector<double>(group + "/heldout");
  const auto diversity = r.vector<double>(group + "/diversity");
  const auto evaluations = r.vector<std::int64_t>(group + "/evaluations");
  const auto seconds = r.vector<double>(group + "/seconds");
  const auto nonfinite = r.vector<std::int64_t>(group + "/nonfinite");
  const std::size_t n = generation.size();
  require_columns(r, group, n,
                  {{"generation", n}, {"best", best.size()}, {"mean", mean.size()}, {"std", stdev.size()},
                   {"heldout", heldout.size()}, {"diversity", diversity.size()}, {"evaluations", evaluations.size()},
                   {"seconds", seconds.size()}, {"nonfinite", nonfinite.size()}});
  std::vector<HistoryRow> rows(n);
  for (std::size_t i = 0; i < n; ++i) {
    rows[i].generation = generation[i];
    rows[i].best = best[i];
    rows[i].mean = mean[i];
    rows[i].std = stdev[i];
    rows[i].heldout = heldout[i];
    rows[i].diversity = diversity[i];
    rows[i].evaluations = evaluations[i];
    rows[i].seconds = seconds[i];
    rows[i].nonfinite = nonfinite[i];
  }
  return rows;
}

std::vector<MigrationEvent> read_migrations(const Reader& r) {
  r.group("/migrations");
  const auto generation = r.vector<std::int64_t>("/migrations/generation");
  const auto source = r.vector<std::int64_t>("/migrations/source");
  const auto destination = r.vector<std::int64_t>("/migrations/destination");
  const auto uid = r.vector<std::uint64_t>("/migrations/uid");
  const auto fitness = r.vector<double>("/migrations/fitness");
  const std::size_t m = generation.size();
  require_columns(r, "/migrations", m,
                  {{"generation", m}, {"source", source.size()}, {"destination", destination.size()},
                   {"uid", uid.size()}, {"fitness", fitness.size()}});
  std::vector<MigrationEvent> events(m);
  for (std::size_t i = 0; i < m; ++i) events[i] = {generation[i], source[i], destination[i], uid[i], fitness[i]};
  return events;
}

void require_size(const Reader& r, const std::string& path, std::int64_t found, std::int64_t expected,
                  const char* what) {
  if (found != expected)
    fail(r.label(), ": dataset ", path, " has ", found, " entries along an axis that should have ", expected, " (",
         what, ")");
}

std::string archive_label(const std::string& path) { return "archive " + path; }
std::string checkpoint_label(const std::string& path) { return "checkpoint " + path; }

}  // namespace

// ---- archive --------------------------------------------------------------------------------------

void write_archive(const std::string& path, const Archive& a) {
  const std::string label = archive_label(path);
  write_atomically(path, label, [&](Writer& w) {
    {
      Handle root = w.open_group("/");
      write_provenance(w, root.get(), kArchiveFormat, a.provenance);
    }
    // Each section is validated as it is written: a failure midway removes the temporary file.
    require_rank(label, "search_indices", a.search_indices, 1, "int64 [n_s]");
    require_rank(label, "search_labels", a.search_labels, 1, "int32 [n_s]");
    require_rank(label, "val_indices", a.val_indices, 1, "int64 [n_val]");
    require_rank(label, "heldout_indices", a.heldout_indices, 1, "int64 [n_heldout]");
    const std::int64_t n_s = a.search_indices.size(0);
    require_length(label, "search_labels", a.search_labels.size(0), n_s, "one label per search index");
    {
      Handle data = w.group("/data");
      w.attr_string(data.get(), "/data", "dataset", a.dataset);
      w.attr_string(data.get(), "/data", "data_dir", a.data_dir);
      w.attr_string(data.get(), "/data", "normalisation", a.normalisation);
    }
    w.tensor("/data/search_indices", a.search_indices, at::kLong);
    w.tensor("/data/search_labels", a.search_labels, at::kInt);
    w.tensor("/data/val_indices", a.val_indices, at::kLong);
    w.tensor("/data/heldout_indices", a.heldout_indices, at::kLong);

    require_rank(label, "representations", a.representations, 3, "float32 [k, n_s, d]");
    const std::int64_t k = a.representations.size(0);
    require_length(label, "representations (axis 1)", a.representations.size(1), n_s,
                   "n_s, the length of search_indices");
    require_rank(label, "fitness", a.fitness, 1, "float64 [k]");
    require_rank(label, "heldout", a.heldout, 1, "float64 [k]");
    require_rank(label, "island", a.island, 1, "int32 [k]");
    require_rank(label, "generation", a.generation, 1, "int32 [k]");
    require_rank(label, "cka", a.cka, 2, "float64 [k, k]");
    require_length(label, "fitness", a.fitness.size(0), k, "one per elite");
    require_length(label, "heldout", a.heldout.size(0), k, "one per elite");
    require_length(label, "island", a.island.size(0), k, "one per elite");
    require_length(label, "generation", a.generation.size(0), k, "one per elite");
    require_length(label, "uid", static_cast<std::int64_t>(a.uid.size()), k, "one per elite");
    require_length(label, "cka (rows)", a.cka.size(0), k, "one per elite");
    require_length(label, "cka (columns)", a.cka.size(1), k, "one per elite");
    w.group("/elites");
    w.tensor("/elites/representations", a.representations, at::kFloat, /*compress_rows=*/true);
    w.tensor("/elites/fitness", a.fitness, at::kDouble);
    w.tensor("/elites/heldout", a.heldout, at::kDouble);
    w.tensor("/elites/island", a.island, at::kInt);
    w.tensor("/elites/generation", a.generation, at::kInt);
    w.vector("/elites/uid", a.uid);
    w.tensor("/elites/cka", a.cka, at::kDouble);

    w.group("/islands");
    for (std::size_t i = 0; i < a.histories.size(); ++i) {
      const std::string group = "/islands/" + std::to_string(i);
      w.group(group);
      write_history(w, group + "/history", a.histories[i]);
    }
    write_migrations(w, a.migrations);
  });
}

Archive read_archive(const std::string& path) {
  const std::string label = archive_label(path);
  Handle file = open_for_read(path, label, kArchiveFormat);
  const Reader r(file.get(), label);
  check_format(r, kArchiveFormat, "archive");
  Archive a;
  a.provenance = read_provenance(r);
  {
    Handle data = r.group("/data");
    a.dataset = r.attr_string(data.get(), "/data", "dataset");
    a.data_dir = r.attr_string(data.get(), "/data", "data_dir");
    a.normalisation = r.attr_string(data.get(), "/data", "normalisation");
  }
  a.search_indices = r.tensor("/data/search_indices", at::kLong, 1, "[n_s]");
  a.search_labels = r.tensor("/data/search_labels", at::kInt, 1, "[n_s]");
  a.val_indices = r.tensor("/data/val_indices", at::kLong, 1, "[n_val]");
  a.heldout_indices = r.tensor("/data/heldout_indices", at::kLong, 1, "[n_heldout]");
  const std::int64_t n_s = a.search_indices.size(0);
  require_size(r, "/data/search_labels", a.search_labels.size(0), n_s, "n_s, the length of /data/search_indices");

  r.group("/elites");
  a.representations = r.tensor("/elites/representations", at::kFloat, 3, "[k, n_s, d]");
  const std::int64_t k = a.representations.size(0);
  require_size(r, "/elites/representations", a.representations.size(1), n_s,
               "axis 1 is n_s, the length of /data/search_indices");
  a.fitness = r.tensor("/elites/fitness", at::kDouble, 1, "[k]");
  a.heldout = r.tensor("/elites/heldout", at::kDouble, 1, "[k]");
  a.island = r.tensor("/elites/island", at::kInt, 1, "[k]");
  a.generation = r.tensor("/elites/generation", at::kInt, 1, "[k]");
  a.uid = r.vector<std::uint64_t>("/elites/uid");
  a.cka = r.tensor("/elites/cka", at::kDouble, 2, "[k, k]");
  const char* per_elite = "k, the number of elites in /elites/representations";
  require_size(r, "/elites/fitness", a.fitness.size(0), k, per_elite);
  require_size(r, "/elites/heldout", a.heldout.size(0), k, per_elite);
  require_size(r, "/elites/island", a.island.size(0), k, per_elite);
  require_size(r, "/elites/generation", a.generation.size(0), k, per_elite);
  require_size(r, "/elites/uid", static_cast<std::int64_t>(a.uid.size()), k, per_elite);
  require_size(r, "/elites/cka", a.cka.size(0), k, per_elite);
  require_size(r, "/elites/cka", a.cka.size(1), k, per_elite);

  const std::vector<std::int64_t> islands = r.island_indices();
  for (std::size_t i = 0; i < islands.size(); ++i)
    if (islands[i] != static_cast<std::int64_t>(i))
      fail(label, ": /islands holds groups ", join(islands), ", expected 0..", islands.size() - 1);
  for (std::size_t i = 0; i < islands.size(); ++i)
    a.histories.push_back(read_history(r, "/islands/" + std::to_string(i) + "/history"));
  a.migrations = read_migrations(r);
  return a;
}

// ---- checkpoint -----------------------------------------------------------------------------------

void write_checkpoint(const std::string& path, const Checkpoint& c) {
  const std::string label = checkpoint_label(path);
  std::set<std::int64_t> seen;
  for (const IslandState& s : c.islands) {
    if (s.island < 0) fail(label, ": cannot write: island index ", s.island, " is negative");
    if (!seen.insert(s.island).second) fail(label, ": cannot write: island ", s.island, " appears twice");
  }
  write_atomically(path, label, [&](Writer& w) {
    {
      Handle root = w.open_group("/");
      write_provenance(w, root.get(), kCheckpointFormat, c.provenance);
      w.attr<std::int64_t>(root.get(), "/", "generation", c.generation);
      w.attr_string(root.get(), "/", "rng", kCheckpointRng);
      w.attr<std::int64_t>(root.get(), "/", "pending_migrants", 0);
    }
    w.group("/islands");
    for (const IslandState& s : c.islands) {
      const std::string group = "/islands/" + std::to_string(s.island);
      const std::string island = "island " + std::to_string(s.island) + " ";
      if (s.generation != c.generation)
        fail(label, ": cannot write: island ", s.island, " is at generation ", s.generation, ", the checkpoint at ",
             c.generation, " (a checkpoint holds one generation for all islands)");
      require_rank(label, (island + "population").c_str(), s.population, 3, "float32 [P, n, d]");
      const std::int64_t p = s.population.size(0);
      require_rank(label, (island + "fitness").c_str(), s.fitness, 1, "float64 [P]");
      require_length(label, (island + "fitness").c_str(), s.fitness.size(0), p, "one per individual");
      require_length(label, (island + "uid").c_str(), static_cast<std::int64_t>(s.uid.size()), p,
                     "one per individual");
      require_length(label, (island + "born").c_str(), static_cast<std::int64_t>(s.born.size()), p,
                     "one per individual");
      {
        Handle g = w.group(group);
        w.attr<std::int64_t>(g.get(), group, "island", s.island);
        w.attr<std::int64_t>(g.get(), group, "generation", s.generation);
        w.attr<std::uint64_t>(g.get(), group, "next_serial", s.next_serial);
        w.attr<double>(g.get(), group, "sigma", s.sigma);
        w.attr<std::int64_t>(g.get(), group, "evaluations", s.evaluations);
        w.attr<std::int64_t>(g.get(), group, "nonfinite", s.nonfinite);
        w.attr<double>(g.get(), group, "seconds", s.seconds);
      }
      w.tensor(group + "/population", s.population, at::kFloat);  // contiguous, unfiltered: speed
      w.tensor(group + "/fitness", s.fitness, at::kDouble);
      w.vector(group + "/uid", s.uid);
      w.vector(group + "/born", s.born);
      w.vector(group + "/op_weights", s.op_weights);
      write_history(w, group + "/history", s.history);
    }
    write_migrations(w, c.migrations);
  });
}

namespace {

Checkpoint read_header(const Reader& r) {
  check_format(r, kCheckpointFormat, "checkpoint");
  Checkpoint c;
  c.provenance = read_provenance(r);
  Handle root = r.group("/");
  c.generation = r.attr<std::int64_t>(root.get(), "/", "generation");
  return c;
}

IslandState read_island(const Reader& r, std::int64_t index, std::int64_t generation, const at::Device& device) {
  const std::string group = "/islands/" + std::to_string(index);
  IslandState s;
  {
    Handle g = r.group(group);
    s.island = r.attr<std::int64_t>(g.get(), group, "island");
    s.generation = r.attr<std::int64_t>(g.get(), group, "generation");
    s.next_serial = r.attr<std::uint64_t>(g.get(), group, "next_serial");
    s.sigma = r.attr<double>(g.get(), group, "sigma");
    s.evaluations = r.attr<std::int64_t>(g.get(), group, "evaluations");
    s.nonfinite = r.attr<std::int64_t>(g.get(), group, "nonfinite");
    s.seconds = r.attr<double>(g.get(), group, "seconds");
  }
  if (s.island != index)
    fail(r.label(), ": group ", group, " says island=", s.island, ", expected ", index, " (its name)");
  if (s.generation != generation)
    fail(r.label(), ": island ", index, " is at generation ", s.generation, ", the checkpoint at ", generation,
         ": an inconsistent checkpoint");
  const at::Tensor population = r.tensor(group + "/population", at::kFloat, 3, "[P, n, d]");
  const std::int64_t p = population.size(0);
  s.fitness = r.tensor(group + "/fitness", at::kDouble, 1, "[P]");
  s.uid = r.vector<std::uint64_t>(group + "/uid");
  s.born = r.vector<std::int32_t>(group + "/born");
  s.op_weights = r.vector<double>(group + "/op_weights");
  const char* per_individual = "P, the population size of its population dataset";
  require_size(r, group + "/fitness", s.fitness.size(0), p, per_individual);
  require_size(r, group + "/uid", static_cast<std::int64_t>(s.uid.size()), p, per_individual);
  require_size(r, group + "/born", static_cast<std::int64_t>(s.born.size()), p, per_individual);
  s.history = read_history(r, group + "/history");
  s.population = population.to(device);
  return s;
}

}  // namespace

Checkpoint read_checkpoint(const std::string& path, const std::vector<std::int64_t>& islands,
                           const at::Device& device) {
  const std::string label = checkpoint_label(path);
  Handle file = open_for_read(path, label, kCheckpointFormat);
  const Reader r(file.get(), label);
  Checkpoint c = read_header(r);
  const std::vector<std::int64_t> available = r.island_indices();
  const std::vector<std::int64_t> wanted = islands.empty() ? available : islands;
  std::vector<std::int64_t> missing;
  for (std::int64_t i : wanted)
    if (!std::binary_search(available.begin(), available.end(), i)) missing.push_back(i);
  if (!missing.empty())
    fail(label, ": no island ", join(missing), " in this checkpoint (it holds islands ",
         available.empty() ? std::string("none") : join(available), ")");
  for (std::int64_t i : wanted) c.islands.push_back(read_island(r, i, c.generation, device));
  c.migrations = read_migrations(r);
  return c;
}

Checkpoint read_checkpoint_header(const std::string& path) {
  const std::string label = checkpoint_label(path);
  Handle file = open_for_read(path, label, kCheckpointFormat);
  const Reader r(file.get(), label);
  return read_header(r);
}

}  // namespace repsearch::io
