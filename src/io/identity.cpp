#include "repsearch/io/identity.hpp"

#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "repsearch/core/error.hpp"

namespace repsearch::io {

namespace {

std::uint64_t crc_bytes(std::uint64_t crc, const void* data, std::size_t bytes) {
  const auto* p = static_cast<const Bytef*>(data);
  while (bytes > 0) {  // zlib takes lengths below 4 GiB
    const std::size_t n = std::min<std::size_t>(bytes, std::size_t{1} << 30);
    crc = ::crc32(static_cast<uLong>(crc), p, static_cast<uInt>(n));
    p += n;
    bytes -= n;
  }
  return crc;
}

// Rows `idx` of images [N, C, H, W] uint8 and labels [N] int64 (all rows when idx is undefined), in
// that order, without copying the images.
DataIdentity::Split split_identity(const std::string& name, const at::Tensor& images, const at::Tensor& labels,
                                   const at::Tensor& idx) {
  DataIdentity::Split s;
  s.name = name;
  const at::Tensor x = images.contiguous();
  const at::Tensor rows = idx.defined() ? idx.to(at::kCPU, at::kLong).contiguous()
                                        : at::arange(x.size(0), at::TensorOptions().dtype(at::kLong));
  s.examples = rows.numel();
  const at::Tensor y = labels.to(at::kCPU, at::kLong).index_select(0, rows).contiguous();
  s.labels_crc32 = crc_bytes(::crc32(0L, Z_NULL, 0), y.data_ptr(), static_cast<std::size_t>(y.nbytes()));
  const std::size_t row_bytes = static_cast<std::size_t>(x[0].numel());
  const auto* base = x.data_ptr<std::uint8_t>();
  const auto* r = rows.data_ptr<std::int64_t>();
  std::uint64_t crc = ::crc32(0L, Z_NULL, 0);
  for (std::int64_t i = 0; i < s.examples; ++i) {
    if (r[i] < 0 || r[i] >= x.size(0))
      fail("data identity: split ", name, " names row ", r[i], " of a set of ", x.size(0), " examples");
    crc = crc_bytes(crc, base + static_cast<std::size_t>(r[i]) * row_bytes, row_bytes);
  }
  s.images_crc32 = crc;
  return s;
}

std::string hex32(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%08llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

DataIdentity data_identity(const Dataset& d, const at::Tensor& search, const at::Tensor& val,
                           const at::Tensor& heldout) {
  DataIdentity id;
  id.dataset = d.name;
  std::error_code ec;
  const auto dir = std::filesystem::absolute(d.data_dir, ec);
  id.data_dir = ec ? d.data_dir : dir.lexically_normal().string();
  const at::Tensor train_x = d.train_images.to(at::kCPU, at::kByte).contiguous();
  for (const auto& [name, idx] : {std::pair<const char*, const at::Tensor&>{"search", search}, {"val", val}, {"heldout", heldout}})
    if (idx.defined()) id.splits.push_back(split_identity(name, train_x, d.train_labels, idx));
  id.splits.push_back(split_identity("test", d.test_images.to(at::kCPU, at::kByte), d.test_labels, {}));
  id.splits.push_back(split_identity("train", train_x, d.train_labels, {}));
  return id;
}

std::string identity_differences(const DataIdentity& a, const std::string& a_name, const DataIdentity& b,
                                 const std::string& b_name) {
  std::string out;
  if (!a.dataset.empty() && !b.dataset.empty() && a.dataset != b.dataset)
    out += "\n  data set: '" + a.dataset + "' in " + a_name + ", '" + b.dataset + "' in " + b_name;
  for (const auto& sa : a.splits)
    for (const auto& sb : b.splits) {
      if (sa.name != sb.name) continue;
      auto line = [&](const char* what, const std::string& va, const std::string& vb) {
        out += "\n  split " + sa.name + ": " + what + " differ (" + va + " in " + a_name + ", " + vb + " in " + b_name + ")";
      };
      if (sa.examples != sb.examples) {
        line("the numbers of examples", std::to_string(sa.examples), std::to_string(sb.examples));
        continue;
      }
      if (sa.labels_crc32 != sb.labels_crc32) line("labels", "CRC-32 " + hex32(sa.labels_crc32), "CRC-32 " + hex32(sb.labels_crc32));
      if (sa.images_crc32 != sb.images_crc32) line("images", "CRC-32 " + hex32(sa.images_crc32), "CRC-32 " + hex32(sb.images_crc32));
    }
  return out;
}

}  // namespace repsearch::io
