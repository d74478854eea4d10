// Diversity measures and the quality-diversity selection they drive.
//
// Distances between representations are computed on a fixed probe subset of S (its rows never
// change during a run), so their cost is bounded whatever n_s is:
//   - structural: 1 - linear CKA of two representations' probe rows;
//   - functional: the share of validation rows on which two individuals' readouts predict different
//     classes (linear CKA can change without what a network computes changing, Davari et al. 2023).
// Dominated Novelty Search (Bahlous-Boldi et al. 2025) turns any such distance matrix into a
// competition score: an individual's mean distance to its k nearest fitter individuals (+inf for
// the fittest, who therefore always survive).
#pragma once
#include <ATen/ATen.h>
#include <cstdint>
#include <string>
#include <vector>

namespace repsearch {

// The probe rows of S: `m` of n indices (all when m >= n), sorted, drawn from (seed, Stream::diversity).
at::Tensor diversity_probe_rows(std::int64_t n, std::int64_t m, std::uint64_t seed);

// Linear CKA between every a[i] and every b[j] ([A, m, d1], [B, m, d2], the same m rows) through
// centred Gram matrices of the m rows: O((A + B) m^2 d + A B m^2). [A, B] float64 CPU. A constant
// representation has CKA 0 with everything.
at::Tensor cka_cross(const at::Tensor& a, const at::Tensor& b);
// 1 - CKA among x [B, m, d]: [B, B] float64, zero diagonal.
at::Tensor cka_distance_matrix(const at::Tensor& x);
// Share of columns where predictions [B, r] (int64) differ, pairwise: [B, B] float64, zero diagonal.
at::Tensor disagreement_matrix(const at::Tensor& predictions);
// Mean off-diagonal entry of a [k, k] distance matrix (0 for k < 2).
double mean_pairwise(const at::Tensor& distance);

std::vector<std::string> selection_names();     // fitness | dns
std::vector<std::string> qd_distance_names();   // cka | disagreement

// DNS competition scores: fitness [N] (higher is better), distance [N, N]; for each i the mean of
// the (up to) k smallest distances to individuals j with fitness[j] > fitness[i], +inf when none is
// fitter. [N] float64 CPU.
at::Tensor dns_competition(const at::Tensor& fitness, const at::Tensor& distance, std::int64_t k);
// The `keep` survivors of a pool by DNS: highest competition first, ties by higher fitness then
// lower index. [keep] int64 CPU.
at::Tensor dns_survivors(const at::Tensor& fitness, const at::Tensor& distance, std::int64_t k, std::int64_t keep);

// Max-min ("furthest apart") choice of k of N candidates, given their distance [N, N] and an order of
// preference (index 0 first): the first candidate, then repeatedly the one whose smallest distance to
// those chosen is largest (ties: earlier in the order). Returns indices, chosen order. Deterministic.
std::vector<std::int64_t> furthest_apart(const at::Tensor& distance, std::int64_t k);

// The example space's diversity (the paper's N_eff): K = the cosine-similarity matrix of the rows of
// x [R, D] (centred over the rows first when `centre`); the collision entropy H = -log(sum_ij K_ij^2 /
// (sum_i K_ii)^2) and N_eff = exp(H), "the effective number of orthogonal solutions", in [1, R]. Rows
// of zero norm are left out. [R] orthogonal rows give R, identical rows 1.
double n_eff(const at::Tensor& x, bool centre = false);
// Per example: x [E, R, D] and keep [E, R] (bool): the rows kept of each example. pooled = false: the
// mean over the examples keeping at least one row of their n_eff; pooled = true: exp of the collision
// entropy of the sums over examples, (sum_e (sum_i K_ii)^2) / (sum_e sum_ij K_ij^2). NaN when no
// example keeps a row.
double mean_n_eff(const at::Tensor& x, const at::Tensor& keep, bool centre = false, bool pooled = false);
// The parts both variants are made of, per example: (sum_i K_ii)^2 and sum_ij K_ij^2 ([E] float64
// CPU; both 0 for an example that keeps no row), so that sums over batches give the same means.
struct NEffParts {
  at::Tensor trace_sq, sum_sq;
};
NEffParts n_eff_parts(const at::Tensor& x, const at::Tensor& keep, bool centre = false);

}  // namespace repsearch
