// Small linear-algebra tools shared by search and analysis: linear CKA, orthogonal Procrustes and
// per-class row sums.
#pragma once
#include <ATen/ATen.h>
#include <cstdint>

namespace repsearch {

// Per-class sums of the rows of each individual: X [B, n, d], labels [n] in [0, C) -> [B, C, d] in
// X's dtype (Z^T Y without a one-hot matrix). One streaming pass on the CPU; index_add_ elsewhere.
at::Tensor class_sums(const at::Tensor& x, const at::Tensor& labels, std::int64_t n_classes);

// Linear CKA (Kornblith et al. 2019) between X [n, d1] and Y [n, d2]: features are centred, then
// ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F). 1 for identical inputs, invariant to orthogonal maps and
// isotropic scaling. The products over the n rows run in the inputs' precision (float32 in the
// search); only their small d x d results are squared and summed in float64.
double linear_cka(const at::Tensor& x, const at::Tensor& y);
// Batched: X [B, n, d1] against one Y [n, d2] -> [B] float64; with `which` (int64 [K]) only those
// members of X, in that order -> [K] (no copy of X is made).
at::Tensor linear_cka_batch(const at::Tensor& x, const at::Tensor& y, const at::Tensor& which = {});
// Pairwise: X [B, n, d] -> [B, B] float64 symmetric with unit diagonal.
at::Tensor linear_cka_matrix(const at::Tensor& x);

// Rows per block when an [rows, n] float32 intermediate must stay within `budget_bytes` (at least 1):
// set-up work over n examples is done in such blocks so that no n x n (or n x features float64)
// matrix ever exists. A block of n or more rows is the one-shot computation.
std::int64_t block_rows(std::int64_t n, std::int64_t bytes_per_row, std::int64_t budget_bytes = std::int64_t{1} << 27);

// The k nearest rows of X [n, D] to each row (itself excluded) by Euclidean distance -> [n, k] int64,
// computed `rows` rows at a time (0: block_rows(n, 4 n)); exact: the same as the dense n x n search.
at::Tensor nearest_neighbours(const at::Tensor& x, std::int64_t k, std::int64_t rows = 0);

// Orthogonal Procrustes, the one implementation (crossover alignment, migrant alignment, tests):
// the orthogonal R [d, d] minimising ||source R - target||_F, for [n, d] pairs or batches [B, n, d].
// source^T target is formed in the inputs' precision and only its SVD runs in float64 (the search's
// archives depend on exactly this order).
at::Tensor procrustes_rotation(const at::Tensor& source, const at::Tensor& target);
// source R: e.g. immigrants [B, n, d] rotated into the basis of a receiving island's best.
at::Tensor procrustes_align(const at::Tensor& source, const at::Tensor& target);

}  // namespace repsearch
