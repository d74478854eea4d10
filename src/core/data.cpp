#include "repsearch/core/data.hpp"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "repsearch/core/error.hpp"
#include "repsearch/core/rng.hpp"

namespace repsearch {

Splits make_splits(std::int64_t n_train, SplitSizes s, std::uint64_t seed) {
  if (s.search == SplitSizes::kAll) {
    s.search = n_train - s.val - s.heldout;
    if (s.search <= 0)
      fail("splits: search-size all leaves no examples: val-size + heldout-size = ", s.val + s.heldout,
           " of the ", n_train, " training examples");
  }
  if (s.search <= 0 || s.val <= 0 || s.heldout <= 0)
    fail("splits: search-size, val-size and heldout-size must be positive, found ", s.search, ", ", s.val,
         ", ", s.heldout);
  const std::int64_t need = s.search + s.val + s.heldout;
  if (need > n_train)
    fail("splits: search-size + val-size + heldout-size = ", need, " exceeds the ", n_train,
         " training examples");
  auto gen = make_generator(seed, Stream::splits);
  at::Tensor perm = at::randperm(n_train, gen, at::TensorOptions().dtype(at::kLong));
  Splits out;
  out.search = perm.slice(0, 0, s.search).clone();
  out.val = perm.slice(0, s.search, s.search + s.val).clone();
  out.heldout = perm.slice(0, s.search + s.val, need).clone();
  return out;
}

at::Tensor example_indices(std::int64_t n_train, std::int64_t n, std::uint64_t seed) {
  if (n == SplitSizes::kAll) n = n_train;
  if (n < 1 || n > n_train)
    fail_option("search-size", n, detail::cat("in [1, ", n_train, "] or 'all' (the training set has ", n_train, " examples)"));
  if (n == n_train) return at::arange(n_train, at::TensorOptions().dtype(at::kLong));
  auto gen = make_generator(seed, Stream::splits, {0xE8A3u});
  return std::get<0>(at::randperm(n_train, gen, at::TensorOptions().dtype(at::kLong)).slice(0, 0, n).sort());
}

at::Tensor Standardiser::apply(const at::Tensor& images) const {
  TORCH_CHECK(images.dim() == 4, "Standardiser::apply expects [N,C,H,W]");
  auto x = images.to(at::kFloat);
  if (images.scalar_type() == at::kByte) x = x.div_(255.0);
  // mean/std are fitted on the CPU; follow the images to their device (e.g. CUDA).
  return (x - mean.to(x.device()).view({1, -1, 1, 1})) / std.to(x.device()).view({1, -1, 1, 1});
}

namespace {

// Per-channel sums of x and x^2 over every pixel, in float64.
std::pair<at::Tensor, at::Tensor> channel_sums(const at::Tensor& images) {
  const auto n = images.size(0), c = images.size(1), hw = images.size(2) * images.size(3);
  auto sum = at::zeros({c}, at::TensorOptions().dtype(at::kDouble)), sq = at::zeros_like(sum);
  if (images.scalar_type() == at::kByte) {
    // Bytes: count each of the 256 values per channel, then weight; no float copy of the images at all
    // (each process loading a data set saved ~0.1 s CPU against the float64 chunks).
    const auto bytes = images.contiguous().cpu();
    const auto* p = bytes.data_ptr<std::uint8_t>();
    std::vector<std::int64_t> counts(static_cast<std::size_t>(c) * 256, 0);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t ch = 0; ch < c; ++ch, p += hw) {
        auto* h = counts.data() + ch * 256;
        for (std::int64_t k = 0; k < hw; ++k) ++h[p[k]];
      }
    auto s = sum.accessor<double, 1>(), q = sq.accessor<double, 1>();
    for (std::int64_t ch = 0; ch < c; ++ch)
      for (int v = 0; v < 256; ++v) {
        const double x = v / 255.0, m = static_cast<double>(counts[static_cast<std::size_t>(ch * 256 + v)]);
        s[ch] += m * x;
        q[ch] += m * x * x;
      }
    return {sum, sq};
  }
  // Other types: chunks, so that no float64 copy of the whole training set exists (1.2 GB for CIFAR-10).
  for (std::int64_t i = 0; i < n; i += 4096) {
    auto x = images.slice(0, i, std::min(n, i + 4096)).to(at::kDouble);
    sum += x.sum({0, 2, 3});
    sq += x.pow(2).sum({0, 2, 3});
  }
  return {sum, sq};
}

}  // namespace

Standardiser fit_standardiser(const at::Tensor& train_images) {
  TORCH_CHECK(train_images.dim() == 4, "fit_standardiser expects [N,C,H,W]");
  auto [sum, sq] = channel_sums(train_images);
  const double count = static_cast<double>(train_images.size(0) * train_images.size(2) * train_images.size(3));
  auto mean = sum / count;
  Standardiser s;
  s.mean = mean.to(at::kFloat);
  s.std = (sq / count - mean.pow(2)).clamp_min(0).sqrt().clamp_min(1e-8).to(at::kFloat);
  return s;
}

at::Tensor class_counts(const at::Tensor& labels, std::int64_t n_classes) {
  // bincount would silently return more than n_classes bins for a label >= n_classes.
  const at::Tensor l = labels.to(at::kLong);
  if (l.numel() > 0) {
    const std::int64_t lo = l.min().item<std::int64_t>(), hi = l.max().item<std::int64_t>();
    if (lo < 0 || hi >= n_classes)
      fail("class_counts: expected labels in [0, ", n_classes, "), found ", lo < 0 ? lo : hi);
  }
  return at::bincount(l, /*weights=*/{}, n_classes);
}

}  // namespace repsearch
