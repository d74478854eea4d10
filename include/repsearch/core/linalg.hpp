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
// isotropic scaling. Computed in float64.
double linear_cka(const at::Tensor& x, const at::Tensor& y);
// Batched: X [B, n, d1] against one Y [n, d2] -> [B] float64; with `which` (int64 [K]) only those
// members of X, in that order -> [K] (no copy of X is made).
at::Tensor linear_cka_batch(const at::Tensor& x, const at::Tensor& y, const at::Tensor& which = {});
// Pairwise: X [B, n, d] -> [B, B] float64 symmetric with unit diagonal.
at::Tensor linear_cka_matrix(const at::Tensor& x);

// The orthogonal R [d, d] minimising ||source R - target||_F (SVD of source^T target).
at::Tensor procrustes_rotation(const at::Tensor& source, const at::Tensor& target);
// source R: an immigrant [n, d] rotated into the basis of a receiving island's best [n, d].
at::Tensor procrustes_align(const at::Tensor& source, const at::Tensor& target);

}  // namespace repsearch
