// Data preparation that needs tensors only: deterministic splits and per-channel standardisation.
#pragma once
#include <ATen/ATen.h>
#include <cstdint>

namespace repsearch {

// Indices into the official training set; the official test set is never part of a split.
struct Splits {
  at::Tensor search;   // S  [n_s] int64, the examples whose representations are searched
  at::Tensor val;      // V  [n_v] int64, validation pool the fitness draws minibatches from
  at::Tensor heldout;  // H  [n_h] int64, never seen by the fitness; ranks the elites
};

struct SplitSizes {
  static constexpr std::int64_t kAll = -1;  // search: every training example not in V or H
  std::int64_t search = 3000;
  std::int64_t val = 2000;
  std::int64_t heldout = 2000;
};

// Disjoint random subsets of [0, n_train), a function of (seed, sizes, n_train) alone.
Splits make_splits(std::int64_t n_train, SplitSizes sizes, std::uint64_t seed);

// The example space's searched examples: the first `n` of a seeded permutation of [0, n_train), in
// increasing order (kAll: every training example). A function of (seed, n, n_train) alone.
at::Tensor example_indices(std::int64_t n_train, std::int64_t n, std::uint64_t seed);

// Per-channel statistics of images [N, C, H, W]; fitted on training images only.
struct Standardiser {
  at::Tensor mean;  // [C] float32
  at::Tensor std;   // [C] float32
  at::Tensor apply(const at::Tensor& images) const;  // [N,C,H,W] uint8 or float -> float32
};
Standardiser fit_standardiser(const at::Tensor& train_images);

// Examples per class, [n_classes] int64.
at::Tensor class_counts(const at::Tensor& labels, std::int64_t n_classes);

}  // namespace repsearch
