#include "repsearch/core/operators.hpp"

#include <algorithm>
#include <cmath>

#include "repsearch/core/error.hpp"
#include "repsearch/core/linalg.hpp"

namespace repsearch::ops {

namespace {
at::Tensor normal(at::IntArrayRef sizes, at::Generator& gen, const at::TensorOptions& like) {
  return at::randn(sizes, gen, at::TensorOptions().dtype(at::kFloat)).to(like);
}
at::Tensor on(const at::Tensor& mask, const at::Tensor& like) {  // [B,n] bool -> [B,n,1] on like's device
  return mask.to(like.device()).unsqueeze(2);
}
// Row r of individual who[b] is row who[b] * n + r of pop viewed as [P * n, d].
at::Tensor flat_rows(const at::Tensor& pop, const at::Tensor& who, const at::Tensor& rows) {
  auto dev = pop.device();
  return (who.to(dev).view({-1, 1}) * pop.size(1) + rows.to(dev)).view(-1);
}
at::Tensor rows_view(at::Tensor& pop) { return pop.view({-1, pop.size(2)}); }
void check_batch(const at::Tensor& pop, const at::Tensor& who, const at::Tensor& rows, const char* op) {
  if (pop.dim() != 3 || !pop.is_contiguous() || who.dim() != 1 || (rows.defined() && (rows.dim() != 2 || rows.size(0) != who.size(0))))
    fail(op, ": expected a contiguous population [P, n, d], who [B] and rows [B, r], found ", pop.sizes(), ", ",
         who.sizes(), " and ", rows.defined() ? rows.sizes() : at::IntArrayRef{});
}
}  // namespace

at::Tensor pick(const at::Tensor& pop, const at::Tensor& idx) { return pop.index_select(0, idx.to(pop.device())); }

at::Tensor tournament(const at::Tensor& fitness, std::int64_t count, std::int64_t size, at::Generator& gen) {
  if (size < 1) fail("tournament: size must be >= 1, found ", size);
  const auto P = fitness.size(0);
  auto entrants = at::randint(P, {count, size}, gen, at::TensorOptions().dtype(at::kLong));
  auto fit = fitness.to(at::kDouble).cpu().index_select(0, entrants.view(-1)).view({count, size});
  // Highest fitness wins; among equal scores the first entrant drawn.
  auto best = std::get<1>(fit.max(1, /*keepdim=*/true));
  return entrants.gather(1, best).squeeze(1);
}

std::int64_t rows_for_fraction(double fraction, std::int64_t n) {
  return std::max<std::int64_t>(1, std::min<std::int64_t>(n, std::llround(fraction * static_cast<double>(n))));
}

at::Tensor random_rows(std::int64_t batch, std::int64_t n, std::int64_t rows, at::Generator& gen) {
  auto keys = at::rand({batch, n}, gen, at::TensorOptions().dtype(at::kFloat));
  return std::get<0>(std::get<1>(keys.topk(rows, 1)).sort(1));
}

at::Tensor column_std(const at::Tensor& pop) {
  const auto B = pop.size(0), n = pop.size(1), d = pop.size(2);
  if (!pop.is_cpu() || pop.scalar_type() != at::kFloat) {
    auto mean = pop.sum(1, /*keepdim=*/true) / static_cast<double>(n);
    auto var = pop.pow(2).sum(1, /*keepdim=*/true) / static_cast<double>(n) - mean.pow(2);
    return var.clamp_min(1e-12).sqrt();
  }
  // One pass with float64 sums: ATen's sum, pow and sum read the population three times and
  // allocate a squared copy (~10 ms of a ~45 ms variation step at the default sizes).
  auto x = pop.contiguous();
  auto sum = at::zeros({B, d}, at::TensorOptions().dtype(at::kDouble));
  auto sq = at::zeros({B, d}, at::TensorOptions().dtype(at::kDouble));
  const float* src = x.data_ptr<float>();
  double *s1 = sum.data_ptr<double>(), *s2 = sq.data_ptr<double>();
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t i = 0; i < n; ++i) {
      const float* row = src + (b * n + i) * d;
      for (std::int64_t k = 0; k < d; ++k) {
        const double v = row[k];
        s1[b * d + k] += v;
        s2[b * d + k] += v * v;
      }
    }
  auto mean = sum / static_cast<double>(n);
  auto var = sq / static_cast<double>(n) - mean.pow(2);
  return var.clamp_min(1e-12).sqrt().to(at::kFloat).unsqueeze(1);
}

at::Tensor crossover_rows(const at::Tensor& a, const at::Tensor& b, const at::Tensor& take_a) {
  return at::where(on(take_a, a), a, b);
}

void gaussian_rows_(at::Tensor& pop, const at::Tensor& who, const at::Tensor& rows, const at::Tensor& spread,
                    double sigma, at::Generator& gen) {
  check_batch(pop, who, rows, "gaussian");
  auto flat = flat_rows(pop, who, rows);
  auto x = rows_view(pop).index_select(0, flat).view({rows.size(0), rows.size(1), pop.size(2)});
  auto noise = normal(x.sizes(), gen, pop.options()) * spread.index_select(0, who.to(pop.device())) * sigma;
  rows_view(pop).index_copy_(0, flat, (x + noise).view({-1, pop.size(2)}));
}

void class_pull_(at::Tensor& pop, const at::Tensor& who, const at::Tensor& rows, const at::Tensor& spread,
                 const at::Tensor& labels, std::int64_t n_classes, double alpha, double noise, at::Generator& gen) {
  check_batch(pop, who, rows, "pull");
  const auto B = who.size(0), r = rows.size(1), d = pop.size(2);
  auto dev = pop.device();
  auto lab = labels.to(dev);
  auto w = who.to(dev);
  auto counts = at::bincount(lab, /*weights=*/{}, n_classes).clamp_min(1).to(pop.scalar_type());
  auto class_means = (class_sums(pick(pop, w), lab, n_classes) / counts.view({1, -1, 1})).view({B * n_classes, d});
  auto flat = flat_rows(pop, who, rows);
  auto x = rows_view(pop).index_select(0, flat).view({B, r, d});
  auto row_class = at::arange(B, lab.options()).view({B, 1}) * n_classes + lab.index_select(0, rows.to(dev).view(-1)).view({B, r});
  auto means = class_means.index_select(0, row_class.view(-1)).view({B, r, d});
  auto moved = x + alpha * (means - x) + normal(x.sizes(), gen, pop.options()) * spread.index_select(0, w) * noise;
  rows_view(pop).index_copy_(0, flat, moved.view({-1, d}));
}

void column_move_(at::Tensor& pop, const at::Tensor& who, const at::Tensor& spread, const at::Tensor& phi,
                  double scale, at::Generator& gen) {
  check_batch(pop, who, {}, "column");
  const auto B = who.size(0), n = pop.size(1), d = pop.size(2);
  auto cpu = at::TensorOptions().dtype(at::kFloat);
  auto r = at::randn({phi.size(1), B}, gen, cpu).to(phi.device());
  auto u = at::matmul(phi, r);                                    // [n, B]
  u = (u - u.mean(0, true)) / u.std(0, /*unbiased=*/false, /*keepdim=*/true).clamp_min(1e-12);
  auto col = at::randint(d, {B}, gen, cpu.dtype(at::kLong)).to(pop.device());
  auto w = who.to(pop.device());
  auto s = spread.squeeze(1).index_select(0, w).gather(1, col.view({B, 1}));    // [B, 1] std of the chosen column
  auto step = u.t() * (scale * s);                                              // [B, n]
  // Element (who[b], i, col[b]) of pop viewed flat: one strided column per individual.
  auto at_col = (w.view({B, 1}) * (n * d) + at::arange(n, w.options()).view({1, n}) * d + col.view({B, 1})).view(-1);
  auto flat = pop.view(-1);
  flat.index_copy_(0, at_col, flat.index_select(0, at_col) + step.reshape(-1));
}

void knn_smooth_(at::Tensor& pop, const at::Tensor& who, const at::Tensor& rows, const at::Tensor& spread,
                 const at::Tensor& neighbours, double noise, at::Generator& gen) {
  check_batch(pop, who, rows, "knn");
  const auto B = who.size(0), r = rows.size(1), k = neighbours.size(1), d = pop.size(2);
  auto nb = neighbours.to(pop.device());
  auto their = nb.index_select(0, rows.to(nb.device()).view(-1)).view({B, r * k});  // neighbours of the chosen rows
  auto smooth = rows_view(pop).index_select(0, flat_rows(pop, who, their)).view({B, r, k, d}).mean(2);
  smooth = smooth + normal(smooth.sizes(), gen, pop.options()) * spread.index_select(0, who.to(pop.device())) * noise;
  rows_view(pop).index_copy_(0, flat_rows(pop, who, rows), smooth.view({-1, d}));
}

at::Tensor de_rand1bin(const at::Tensor& pop, const at::Tensor& a, const at::Tensor& b, const at::Tensor& c,
                       double f, const at::Tensor& take_mutant) {
  auto mutant = pick(pop, a) + f * (pick(pop, b) - pick(pop, c));
  return at::where(on(take_mutant, pop), mutant, pop);
}

}  // namespace repsearch::ops
