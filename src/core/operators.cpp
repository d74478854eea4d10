#include "repsearch/core/operators.hpp"

#include <algorithm>
#include <cmath>

#include "repsearch/core/error.hpp"

namespace repsearch::ops {

namespace {
at::Tensor normal(at::IntArrayRef sizes, at::Generator& gen, const at::TensorOptions& like) {
  return at::randn(sizes, gen, at::TensorOptions().dtype(at::kFloat)).to(like);
}
at::Tensor on(const at::Tensor& mask, const at::Tensor& like) {  // [B,n] bool -> [B,n,1] on like's device
  return mask.to(like.device()).unsqueeze(2);
}
// The masked rows as indices [B, r] when every individual has r of them (row_mask's output), so
// operators touch r rows instead of all n; undefined otherwise.
at::Tensor rows_of(const at::Tensor& mask) {
  auto counts = mask.sum(1);
  const auto r = counts[0].item<std::int64_t>();
  if (r == 0 || !counts.eq(r).all().item<bool>()) return {};
  return mask.nonzero().select(1, 1).view({mask.size(0), r});
}
at::Tensor expand_rows(const at::Tensor& idx, const at::Tensor& like) {  // [B,r] -> [B,r,d] on like's device
  return idx.to(like.device()).unsqueeze(2).expand({idx.size(0), idx.size(1), like.size(2)});
}
// Replace the rows idx [B,r] of a copy of `parents` by `rows` [B,r,d].
at::Tensor with_rows(const at::Tensor& parents, const at::Tensor& idx, const at::Tensor& rows) {
  return parents.clone().scatter_(1, expand_rows(idx, parents), rows);
}
}  // namespace

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

at::Tensor row_mask(std::int64_t batch, std::int64_t n, std::int64_t rows, at::Generator& gen) {
  auto keys = at::rand({batch, n}, gen, at::TensorOptions().dtype(at::kFloat));
  auto picked = std::get<1>(keys.topk(rows, 1));
  return at::zeros({batch, n}, at::TensorOptions().dtype(at::kBool)).scatter_(1, picked, true);
}

at::Tensor column_std(const at::Tensor& pop) {
  const auto n = static_cast<double>(pop.size(1));
  auto mean = pop.sum(1, /*keepdim=*/true) / n;
  auto var = pop.pow(2).sum(1, /*keepdim=*/true) / n - mean.pow(2);
  return var.clamp_min(1e-12).sqrt();
}

at::Tensor crossover_rows(const at::Tensor& a, const at::Tensor& b, const at::Tensor& take_a) {
  return at::where(on(take_a, a), a, b);
}

at::Tensor gaussian_rows(const at::Tensor& parents, const at::Tensor& mask, double sigma, at::Generator& gen) {
  auto idx = rows_of(mask);
  if (!idx.defined()) return parents + normal(parents.sizes(), gen, parents.options()) * column_std(parents) * sigma * on(mask, parents);
  auto rows = parents.gather(1, expand_rows(idx, parents));
  auto noise = normal(rows.sizes(), gen, parents.options()) * column_std(parents) * sigma;
  return with_rows(parents, idx, rows + noise);
}

at::Tensor class_pull(const at::Tensor& parents, const at::Tensor& labels, std::int64_t n_classes,
                      const at::Tensor& mask, double alpha, double noise, at::Generator& gen) {
  const auto B = parents.size(0), d = parents.size(2);
  auto lab = labels.to(parents.device());
  auto sums = at::zeros({B, n_classes, d}, parents.options()).index_add_(1, lab, parents);
  auto counts = at::bincount(lab, /*weights=*/{}, n_classes).clamp_min(1).to(parents.scalar_type());
  auto class_means = sums / counts.view({1, -1, 1});  // [B, C, d]
  auto idx = rows_of(mask);
  if (!idx.defined()) {
    auto means = class_means.index_select(1, lab);
    auto moved = parents + alpha * (means - parents) + normal(parents.sizes(), gen, parents.options()) * column_std(parents) * noise;
    return at::where(on(mask, parents), moved, parents);
  }
  auto rows = parents.gather(1, expand_rows(idx, parents));                       // [B, r, d]
  auto means = class_means.gather(1, expand_rows(lab.index_select(0, idx.to(lab.device()).view(-1)).view(idx.sizes()), parents));
  auto moved = rows + alpha * (means - rows) + normal(rows.sizes(), gen, parents.options()) * column_std(parents) * noise;
  return with_rows(parents, idx, moved);
}

at::Tensor column_move(const at::Tensor& parents, const at::Tensor& phi, double scale, at::Generator& gen) {
  const auto B = parents.size(0), d = parents.size(2);
  auto cpu = at::TensorOptions().dtype(at::kFloat);
  auto r = at::randn({phi.size(1), B}, gen, cpu).to(phi.device());
  auto u = at::matmul(phi, r);                                    // [n, B]
  u = (u - u.mean(0, true)) / u.std(0, /*unbiased=*/false, /*keepdim=*/true).clamp_min(1e-12);
  auto col = at::randint(d, {B}, gen, cpu.dtype(at::kLong)).to(parents.device());
  auto spread = column_std(parents).squeeze(1).gather(1, col.view({B, 1}));   // [B, 1] std of the chosen column
  auto step = (u.t() * (scale * spread)).unsqueeze(2);                        // [B, n, 1]
  return parents.clone().scatter_add_(2, col.view({B, 1, 1}).expand({B, parents.size(1), 1}), step);
}

at::Tensor knn_smooth(const at::Tensor& parents, const at::Tensor& neighbours, const at::Tensor& mask,
                      double noise, at::Generator& gen) {
  const auto B = parents.size(0), n = parents.size(1), k = neighbours.size(1), d = parents.size(2);
  auto nb = neighbours.to(parents.device());
  auto idx = rows_of(mask);
  if (!idx.defined()) {
    auto smooth = parents.index_select(1, nb.reshape(-1)).view({B, n, k, d}).mean(2);
    smooth = smooth + normal(parents.sizes(), gen, parents.options()) * column_std(parents) * noise;
    return at::where(on(mask, parents), smooth, parents);
  }
  const auto r = idx.size(1);
  auto their = nb.index_select(0, idx.to(nb.device()).view(-1)).view({B, r * k});  // neighbours of the chosen rows
  auto smooth = parents.gather(1, expand_rows(their, parents)).view({B, r, k, d}).mean(2);
  smooth = smooth + normal(smooth.sizes(), gen, parents.options()) * column_std(parents) * noise;
  return with_rows(parents, idx, smooth);
}

at::Tensor de_rand1bin(const at::Tensor& pop, const at::Tensor& a, const at::Tensor& b, const at::Tensor& c,
                       double f, const at::Tensor& take_mutant) {
  auto dev = pop.device();
  auto mutant = pop.index_select(0, a.to(dev)) + f * (pop.index_select(0, b.to(dev)) - pop.index_select(0, c.to(dev)));
  return at::where(on(take_mutant, pop), mutant, pop);
}

at::Tensor align_batch(const at::Tensor& source, const at::Tensor& target) {
  auto m = at::bmm(source.transpose(1, 2), target).to(at::kDouble);
  auto usv = at::linalg_svd(m, /*full_matrices=*/false);
  auto rot = at::bmm(std::get<0>(usv), std::get<2>(usv)).to(source.scalar_type());
  return at::bmm(source, rot);
}

}  // namespace repsearch::ops
