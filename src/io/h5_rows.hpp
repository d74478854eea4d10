// Private to repsearch::io: datasets written and read a block of rows (along axis 0) at a time, so that
// an archive larger than any process's memory streams through it. Written rows are chunked (shuffle +
// gzip, one chunk per block of rows) and their CRC-32 is accumulated in row order and stored as the
// dataset's `crc32` attribute when it is finished, as Writer does for whole datasets.
#pragma once
#include "h5_detail.hpp"

namespace repsearch::io::detail {

class RowWriter {
 public:
  RowWriter(Writer& w, const std::string& path, at::ScalarType type, std::vector<hsize_t> dims, hsize_t rows_per_chunk)
      : w_(w), path_(path), type_(type), dims_(std::move(dims)) {
    const H5Types types = h5_types(type_);
    Handle space = own(H5Screate_simple(static_cast<int>(dims_.size()), dims_.data(), nullptr), H5Sclose, w.label(),
                       "cannot create dataspace ", dims_text(dims_), " for ", path_);
    Handle dcpl = own(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, w.label(), "cannot create a property list for ", path_);
    row_bytes_ = H5Tget_size(types.memory);
    for (std::size_t i = 1; i < dims_.size(); ++i) row_bytes_ *= dims_[i];
    if (dims_[0] > 0 && row_bytes_ > 0) {
      std::vector<hsize_t> chunk = dims_;
      chunk[0] = std::clamp<hsize_t>(rows_per_chunk, 1, std::max<hsize_t>(1, (hsize_t{1} << 30) / row_bytes_));
      chunk[0] = std::min(chunk[0], dims_[0]);
      check(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), w.label(), "cannot set chunks on ", path_);
      if (H5Zfilter_avail(H5Z_FILTER_SHUFFLE) > 0) check(H5Pset_shuffle(dcpl.get()), w.label(), "cannot set shuffle on ", path_);
      if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) check(H5Pset_deflate(dcpl.get(), 4), w.label(), "cannot set gzip on ", path_);
    }
    dataset_ = own(H5Dcreate2(w.file(), path_.c_str(), types.file, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                   H5Dclose, w.label(), "cannot create dataset ", path_, " ", dims_text(dims_));
    crc_ = crc32_of(nullptr, 0);
  }

  // Rows [next, next + rows.size(0)): rows are written in order, once each.
  void write(const at::Tensor& rows) {
    const at::Tensor cpu = rows.detach().to(at::kCPU, type_).contiguous();
    const hsize_t n = static_cast<hsize_t>(cpu.size(0));
    if (n == 0) return;
    if (next_ + n > dims_[0]) fail(w_.label(), ": internal: rows past the end of ", path_);
    std::vector<hsize_t> start(dims_.size(), 0), count = dims_;
    start[0] = next_;
    count[0] = n;
    Handle file_space = own(H5Dget_space(dataset_.get()), H5Sclose, w_.label(), "cannot get the dataspace of ", path_);
    check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), w_.label(),
          "cannot select rows of ", path_);
    Handle memory = own(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose, w_.label(),
                        "cannot create a memory dataspace for ", path_);
    check(H5Dwrite(dataset_.get(), h5_types(type_).memory, memory.get(), file_space.get(), H5P_DEFAULT, cpu.data_ptr()),
          w_.label(), "cannot write rows of ", path_);
    crc_ = ::crc32_combine(crc_, crc32_of(cpu.data_ptr(), n * row_bytes_), static_cast<z_off_t>(n * row_bytes_));
    next_ += n;
  }

  void finish() {
    if (next_ != dims_[0]) fail(w_.label(), ": internal: ", path_, " finished with ", next_, " of ", dims_[0], " rows");
    w_.attr<std::uint64_t>(dataset_.get(), path_, kChecksumAttr, crc_);
    check(dataset_.close(), w_.label(), "cannot close dataset ", path_);
  }

 private:
  Writer& w_;
  std::string path_;
  at::ScalarType type_;
  std::vector<hsize_t> dims_;
  Handle dataset_;
  std::size_t row_bytes_ = 0;
  hsize_t next_ = 0;
  std::uint64_t crc_ = 0;
};

// Rows [first, first + count) of a dataset of `type` (converted to `as` when given); shape checked
// against `rank`. No checksum here: verify the whole dataset with Reader::tensor when it matters.
inline at::Tensor read_rows(const Reader& r, const std::string& path, at::ScalarType type, std::size_t rank,
                            std::int64_t first, std::int64_t count) {
  const H5Types types = h5_types(type);
  Handle ds = r.dataset(path);
  const std::vector<hsize_t> dims = r.shape(ds, path, types.cls);
  if (dims.size() != rank) fail(r.label(), ": dataset ", path, " has shape ", dims_text(dims), ", expected ", rank, " dimensions");
  if (first < 0 || count < 0 || static_cast<hsize_t>(first + count) > dims[0])
    fail(r.label(), ": rows ", first, "..", first + count, " are outside dataset ", path, " ", dims_text(dims));
  std::vector<std::int64_t> sizes(dims.begin(), dims.end());
  sizes[0] = count;
  at::Tensor out = at::empty(sizes, at::TensorOptions().dtype(type));
  if (count == 0) return out;
  std::vector<hsize_t> start(dims.size(), 0), cnt = dims;
  start[0] = static_cast<hsize_t>(first);
  cnt[0] = static_cast<hsize_t>(count);
  Handle file_space = own(H5Dget_space(ds.get()), H5Sclose, r.label(), "cannot get the dataspace of ", path);
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr), r.label(),
        "cannot select rows of ", path);
  Handle memory = own(H5Screate_simple(static_cast<int>(cnt.size()), cnt.data(), nullptr), H5Sclose, r.label(),
                      "cannot create a memory dataspace for ", path);
  check(H5Dread(ds.get(), types.memory, memory.get(), file_space.get(), H5P_DEFAULT, out.data_ptr()), r.label(),
        "cannot read rows of ", path);
  return out;
}

// The element type a float dataset was written with: at::kHalf for 2-byte floats, else at::kFloat/kDouble.
inline at::ScalarType float_type_of(const Reader& r, const std::string& path) {
  Handle ds = r.dataset(path);
  Handle type = own(H5Dget_type(ds.get()), H5Tclose, r.label(), "cannot get the type of ", path);
  if (H5Tget_class(type.get()) != H5T_FLOAT) fail(r.label(), ": dataset ", path, " is not floating-point");
  const auto size = H5Tget_size(type.get());
  return size == 2 ? at::kHalf : size == 4 ? at::kFloat : at::kDouble;
}

}  // namespace repsearch::io::detail
