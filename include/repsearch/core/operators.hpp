// Variation operators on populations [B, n_s, d]. Batched over B; random numbers are drawn on the CPU
// from the given generator (so CPU and CUDA runs draw alike) and moved to the population's device.
#pragma once
#include <ATen/ATen.h>
#include <ATen/core/Generator.h>
#include <cstdint>

namespace repsearch::ops {

// Winners of `count` tournaments of `size` entrants drawn with replacement; fitness [P] (compared in
// float64 on the CPU). Among equal scores the entrant drawn first wins (not the lower index, which
// would favour low indices). Returns [count] int64 on CPU.
at::Tensor tournament(const at::Tensor& fitness, std::int64_t count, std::int64_t size, at::Generator& gen);

// The rows each of `batch` individuals changes: [batch, rows] int64 on CPU, ascending within an
// individual, `rows` of n chosen uniformly.
at::Tensor random_rows(std::int64_t batch, std::int64_t n, std::int64_t rows, at::Generator& gen);
// Rows touched by a fraction: max(1, round(fraction * n)).
std::int64_t rows_for_fraction(double fraction, std::int64_t n);

// Per-column spread of each individual, [B, 1, d]; a floor keeps collapsed columns mutable.
at::Tensor column_std(const at::Tensor& pop);

// Row-wise uniform crossover: row r of child b comes from a[b] where take_a[b, r], else from b[b].
at::Tensor crossover_rows(const at::Tensor& a, const at::Tensor& b, const at::Tensor& take_a);

// The mutation operators change, in place, individuals `who` [B] (int64) of pop [P, n, d]; `rows`
// [B, r] are the rows each changes and `spread` = column_std(pop) [P, 1, d] sets the step sizes. Only
// the touched rows are read and written: no copy of an individual is made.

// Gaussian mutation: + sigma * column_std * N(0, 1).
void gaussian_rows_(at::Tensor& pop, const at::Tensor& who, const at::Tensor& rows, const at::Tensor& spread,
                    double sigma, at::Generator& gen);

// Class-aware pull: a row moves `alpha` of the way to its class mean within the same individual,
// plus noise * column_std * N(0, 1).
void class_pull_(at::Tensor& pop, const at::Tensor& who, const at::Tensor& rows, const at::Tensor& spread,
                 const at::Tensor& labels, std::int64_t n_classes, double alpha, double noise, at::Generator& gen);

// Column move: add an input-predictable direction u = phi r (standardised, r ~ N(0, I)) scaled by
// scale * std of one random column to that column (all rows). phi [n, q].
void column_move_(at::Tensor& pop, const at::Tensor& who, const at::Tensor& spread, const at::Tensor& phi,
                  double scale, at::Generator& gen);

// kNN smoothing: a row becomes the mean of its input-space neighbours' rows [n, k] in the same
// individual, plus noise * column_std * N(0, 1).
void knn_smooth_(at::Tensor& pop, const at::Tensor& who, const at::Tensor& rows, const at::Tensor& spread,
                 const at::Tensor& neighbours, double noise, at::Generator& gen);

// pop[idx] for individuals idx [k] (int64, any device), on pop's device.
at::Tensor pick(const at::Tensor& pop, const at::Tensor& idx);

// DE rand/1/bin over rows: mutant = pop[a] + f (pop[b] - pop[c]); row r of trial i comes from the
// mutant where take_mutant[i, r], else from pop[i].
at::Tensor de_rand1bin(const at::Tensor& pop, const at::Tensor& a, const at::Tensor& b, const at::Tensor& c,
                       double f, const at::Tensor& take_mutant);

}  // namespace repsearch::ops
