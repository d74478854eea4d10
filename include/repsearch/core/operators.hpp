// Variation operators on populations [B, n_s, d]. Batched over B; random numbers are drawn on the CPU
// from the given generator (so CPU and CUDA runs draw alike) and moved to the population's device.
#pragma once
#include <ATen/ATen.h>
#include <ATen/core/Generator.h>
#include <cstdint>

namespace repsearch::ops {

// Winners of `count` tournaments of `size` entrants drawn with replacement; fitness [P] float64 CPU.
// Ties go to the lower index. Returns [count] int64 on CPU.
at::Tensor tournament(const at::Tensor& fitness, std::int64_t count, std::int64_t size, at::Generator& gen);

// [B, n] bool with exactly `rows` true entries per individual (chosen uniformly), on CPU.
at::Tensor row_mask(std::int64_t batch, std::int64_t n, std::int64_t rows, at::Generator& gen);
// Rows touched by a fraction: max(1, round(fraction * n)).
std::int64_t rows_for_fraction(double fraction, std::int64_t n);

// Per-column spread of each individual, [B, 1, d]; a floor keeps collapsed columns mutable.
at::Tensor column_std(const at::Tensor& pop);

// Row-wise uniform crossover: row r of child b comes from a[b] where take_a[b, r], else from b[b].
at::Tensor crossover_rows(const at::Tensor& a, const at::Tensor& b, const at::Tensor& take_a);

// Gaussian mutation of the masked rows: + sigma * column_std * N(0, 1).
at::Tensor gaussian_rows(const at::Tensor& parents, const at::Tensor& mask, double sigma, at::Generator& gen);

// Class-aware pull: a masked row moves `alpha` of the way to its class mean within the same
// individual, plus noise * column_std * N(0, 1).
at::Tensor class_pull(const at::Tensor& parents, const at::Tensor& labels, std::int64_t n_classes,
                      const at::Tensor& mask, double alpha, double noise, at::Generator& gen);

// Column move: add an input-predictable direction u = phi r (standardised, r ~ N(0, I)) scaled by
// scale * std of one random column to that column. phi [n, q].
at::Tensor column_move(const at::Tensor& parents, const at::Tensor& phi, double scale, at::Generator& gen);

// kNN smoothing: a masked row becomes the mean of its input-space neighbours' rows [n, k] in the same
// individual, plus noise * column_std * N(0, 1).
at::Tensor knn_smooth(const at::Tensor& parents, const at::Tensor& neighbours, const at::Tensor& mask,
                      double noise, at::Generator& gen);

// DE rand/1/bin over rows: mutant = pop[a] + f (pop[b] - pop[c]); row r of trial i comes from the
// mutant where take_mutant[i, r], else from pop[i].
at::Tensor de_rand1bin(const at::Tensor& pop, const at::Tensor& a, const at::Tensor& b, const at::Tensor& c,
                       double f, const at::Tensor& take_mutant);

// Batched orthogonal Procrustes: source[i] R_i closest to target[i]; [B, n, d] each.
at::Tensor align_batch(const at::Tensor& source, const at::Tensor& target);

}  // namespace repsearch::ops
