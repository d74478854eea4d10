#include "repsearch/core/data.hpp"

#include <algorithm>

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

at::Tensor Standardiser::apply(const at::Tensor& images) const {
  TORCH_CHECK(images.dim() == 4, "Standardiser::apply expects [N,C,H,W]");
  auto x = images.to(at::kFloat);
  if (images.scalar_type() == at::kByte) x = x.div_(255.0);
  // mean/std are fitted on the CPU; follow the images to their device (e.g. CUDA).
  return (x - mean.to(x.device()).view({1, -1, 1, 1})) / std.to(x.device()).view({1, -1, 1, 1});
}

Standardiser fit_standardiser(const at::Tensor& train_images) {
  TORCH_CHECK(train_images.dim() == 4, "fit_standardiser expects [N,C,H,W]");
  // Sums in float64 over chunks: no float64 copy of the whole training set (1.2 GB for CIFAR-10).
  const auto n = train_images.size(0), c = train_images.size(1);
  auto sum = at::zeros({c}, at::TensorOptions().dtype(at::kDouble)), sq = at::zeros_like(sum);
  for (std::int64_t i = 0; i < n; i += 4096) {
    auto x = train_images.slice(0, i, std::min(n, i + 4096)).to(at::kDouble);
    if (train_images.scalar_type() == at::kByte) x.div_(255.0);
    sum += x.sum({0, 2, 3});
    sq += x.pow(2).sum({0, 2, 3});
  }
  const double count = static_cast<double>(n * train_images.size(2) * train_images.size(3));
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
