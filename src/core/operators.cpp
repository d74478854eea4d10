#include "repsearch/core/operators.hpp"

#include <algorithm>
#include <cmath>

#include "repsearch/core/error.hpp"

namespace repsearch::ops {

namespace {
at::Tensor normal_like(const at::Tensor& like, at::Generator& gen) {
  return at::randn(like.sizes(), gen, at::TensorOptions().dtype(at::kFloat)).to(like.options());
}
at::Tensor on(const at::Tensor& mask, const at::Tensor& like) {  // [B,n] bool -> [B,n,1] on like's device
  return mask.to(like.device()).unsqueeze(2);
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
  return pop.std(1, /*unbiased=*/false, /*keepdim=*/true).clamp_min(1e-6);
}

at::Tensor crossover_rows(const at::Tensor& a, const at::Tensor& b, const at::Tensor& take_a) {
  return at::where(on(take_a, a), a, b);
}

at::Tensor gaussian_rows(const at::Tensor& parents, const at::Tensor& mask, double sigma, at::Generator& gen) {
  auto noise = normal_like(parents, gen) * column_std(parents) * sigma;
  return parents + noise * on(mask, parents);
}

at::Tensor class_pull(const at::Tensor& parents, const at::Tensor& labels, std::int64_t n_classes,
                      const at::Tensor& mask, double alpha, double noise, at::Generator& gen) {
  const auto B = parents.size(0), d = parents.size(2);
  auto lab = labels.to(parents.device());
  auto sums = at::zeros({B, n_classes, d}, parents.options()).index_add_(1, lab, parents);
  auto counts = at::bincount(lab, /*weights=*/{}, n_classes).clamp_min(1).to(parents.scalar_type());
  auto means = (sums / counts.view({1, -1, 1})).index_select(1, lab);  // [B, n, d] class mean of each row
  auto moved = parents + alpha * (means - parents) + normal_like(parents, gen) * column_std(parents) * noise;
  return at::where(on(mask, parents), moved, parents);
}

at::Tensor column_move(const at::Tensor& parents, const at::Tensor& phi, double scale, at::Generator& gen) {
  const auto B = parents.size(0), d = parents.size(2);
  auto cpu = at::TensorOptions().dtype(at::kFloat);
  auto r = at::randn({phi.size(1), B}, gen, cpu).to(phi.device());
  auto u = at::matmul(phi, r);                                    // [n, B]
  u = (u - u.mean(0, true)) / u.std(0, /*unbiased=*/false, /*keepdim=*/true).clamp_min(1e-12);
  auto col = at::randint(d, {B}, gen, cpu.dtype(at::kLong)).to(parents.device());
  auto onehot = at::one_hot(col, d).to(parents.scalar_type());    // [B, d]
  auto spread = (column_std(parents).squeeze(1) * onehot).sum(1);  // [B] std of the chosen column
  auto step = u.t().unsqueeze(2) * (onehot * (scale * spread).unsqueeze(1)).unsqueeze(1);  // [B, n, d]
  return parents + step;
}

at::Tensor knn_smooth(const at::Tensor& parents, const at::Tensor& neighbours, const at::Tensor& mask,
                      double noise, at::Generator& gen) {
  const auto n = parents.size(1), k = neighbours.size(1);
  auto nb = neighbours.to(parents.device()).reshape(-1);
  auto smooth = parents.index_select(1, nb).view({parents.size(0), n, k, parents.size(2)}).mean(2);
  smooth = smooth + normal_like(parents, gen) * column_std(parents) * noise;
  return at::where(on(mask, parents), smooth, parents);
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
