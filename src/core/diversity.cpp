#include "repsearch/core/diversity.hpp"

#include <algorithm>
#include <limits>
#include <numeric>

#include "repsearch/core/error.hpp"
#include "repsearch/core/rng.hpp"

namespace repsearch {

namespace {
const auto kLong = at::TensorOptions().dtype(at::kLong);
const auto kDouble = at::TensorOptions().dtype(at::kDouble);

// Centred Gram matrices K = H Z Z^T H of each member, flattened and normalised: [B, m*m] float64.
at::Tensor unit_grams(const at::Tensor& x) {
  // float32 products (the cost), centred and normalised in float64: distances need no more digits.
  auto z = x.to(at::kDouble);
  z = (z - z.mean(1, /*keepdim=*/true)).to(at::kFloat);
  auto k = at::bmm(z, z.transpose(1, 2)).reshape({x.size(0), -1}).to(at::kDouble);
  auto norm = k.norm(2, 1, /*keepdim=*/true);
  return at::where(norm > 0, k / norm.clamp_min(1e-300), at::zeros_like(k)).cpu();
}
}  // namespace

at::Tensor diversity_probe_rows(std::int64_t n, std::int64_t m, std::uint64_t seed) {
  if (n < 1 || m < 1) fail("diversity probe: need n >= 1 and m >= 1, found n = ", n, ", m = ", m);
  if (m >= n) return at::arange(n, kLong);
  auto gen = make_generator(seed, Stream::diversity, {0xd1u});
  return std::get<0>(at::randperm(n, gen, kLong).slice(0, 0, m).sort());
}

at::Tensor cka_cross(const at::Tensor& a, const at::Tensor& b) {
  if (a.dim() != 3 || b.dim() != 3 || a.size(1) != b.size(1))
    fail("cka_cross: expected [A, m, d1] and [B, m, d2] with the same m, found ", a.sizes(), " and ", b.sizes());
  if (a.size(0) == 0 || b.size(0) == 0) return at::zeros({a.size(0), b.size(0)}, kDouble);
  auto ka = unit_grams(a);
  auto kb = a.is_same(b) ? ka : unit_grams(b);
  return at::mm(ka, kb.t());
}

at::Tensor cka_distance_matrix(const at::Tensor& x) {
  auto d = (1.0 - cka_cross(x, x)).clamp_min(0.0);
  d.fill_diagonal_(0.0);
  return d;
}

at::Tensor disagreement_matrix(const at::Tensor& predictions) {
  if (predictions.dim() != 2) fail("disagreement_matrix: expected predictions [B, r], found ", predictions.sizes());
  auto p = predictions.to(at::kLong).cpu();
  const auto r = p.size(1);
  if (r == 0) return at::zeros({p.size(0), p.size(0)}, kDouble);
  const auto classes = p.max().item<std::int64_t>() + 1;
  auto onehot = at::one_hot(p.clamp_min(0), std::max<std::int64_t>(classes, 1)).to(at::kDouble).reshape({p.size(0), -1});
  auto agree = at::mm(onehot, onehot.t()) / static_cast<double>(r);
  auto d = 1.0 - agree;
  d.fill_diagonal_(0.0);
  return d;
}

double mean_pairwise(const at::Tensor& distance) {
  const auto k = distance.size(0);
  if (k < 2) return 0.0;
  return (distance.sum().item<double>() - distance.diagonal().sum().item<double>()) / static_cast<double>(k * (k - 1));
}

std::vector<std::string> selection_names() { return {"fitness", "dns"}; }
std::vector<std::string> qd_distance_names() { return {"cka", "disagreement"}; }

at::Tensor dns_competition(const at::Tensor& fitness, const at::Tensor& distance, std::int64_t k) {
  const auto n = fitness.size(0);
  if (fitness.dim() != 1 || distance.dim() != 2 || distance.size(0) != n || distance.size(1) != n)
    fail("dns_competition: expected fitness [N] and distance [N, N], found ", fitness.sizes(), " and ", distance.sizes());
  if (k < 1) fail("dns_competition: k must be >= 1, found ", k);
  auto f = fitness.to(at::kDouble).cpu();
  auto dist = at::nan_to_num(distance.to(at::kDouble).cpu(), 0.0);  // a broken individual adds no novelty
  const double inf = std::numeric_limits<double>::infinity();
  auto fitter = f.unsqueeze(0) > f.unsqueeze(1);                 // [i, j]: j is fitter than i
  auto masked = at::where(fitter, dist, at::full_like(dist, inf));
  const auto kk = std::min<std::int64_t>(k, n);
  auto near = std::get<0>(masked.topk(kk, 1, /*largest=*/false));  // [N, kk], inf where fewer fitter
  auto finite = at::isfinite(near);
  auto count = finite.sum(1).to(at::kDouble);
  auto total = at::where(finite, near, at::zeros_like(near)).sum(1);
  return at::where(count > 0, total / count.clamp_min(1.0), at::full_like(total, inf));
}

at::Tensor dns_survivors(const at::Tensor& fitness, const at::Tensor& distance, std::int64_t k, std::int64_t keep) {
  auto comp = dns_competition(fitness, distance, k);
  auto f = fitness.to(at::kDouble).cpu();
  const auto n = f.size(0);
  if (keep < 0 || keep > n) fail("dns_survivors: cannot keep ", keep, " of ", n);
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  auto c = comp.accessor<double, 1>();
  auto fa = f.accessor<double, 1>();
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    if (c[a] != c[b]) return c[a] > c[b];
    return fa[a] > fa[b];
  });
  order.resize(static_cast<std::size_t>(keep));
  return at::tensor(order, kLong);
}

std::vector<std::int64_t> furthest_apart(const at::Tensor& distance, std::int64_t k) {
  const auto n = distance.size(0);
  std::vector<std::int64_t> chosen;
  if (n == 0 || k < 1) return chosen;
  auto d = distance.to(at::kDouble).cpu().contiguous();
  auto a = d.accessor<double, 2>();
  std::vector<double> nearest(static_cast<std::size_t>(n), std::numeric_limits<double>::infinity());
  std::vector<bool> taken(static_cast<std::size_t>(n), false);
  std::int64_t next = 0;
  while (static_cast<std::int64_t>(chosen.size()) < std::min(k, n)) {
    chosen.push_back(next);
    taken[static_cast<std::size_t>(next)] = true;
    double best = -1;
    for (std::int64_t j = 0; j < n; ++j) {
      if (taken[static_cast<std::size_t>(j)]) continue;
      auto& m = nearest[static_cast<std::size_t>(j)];
      m = std::min(m, a[next][j]);
      if (m > best) {
        best = m;
        next = j;
      }
    }
  }
  return chosen;
}

NEffParts n_eff_parts(const at::Tensor& x, const at::Tensor& keep, bool centre) {
  if (x.dim() != 3 || keep.dim() != 2 || keep.size(0) != x.size(0) || keep.size(1) != x.size(1))
    fail("n_eff: expected candidates [E, R, D] and keep [E, R], found ", x.sizes(), " and ", keep.sizes());
  auto v = x.to(at::kCPU, at::kDouble);
  auto w = keep.to(at::kCPU, at::kDouble).unsqueeze(-1);                    // [E, R, 1]
  if (centre) {
    auto mean = (v * w).sum(1, /*keepdim=*/true) / w.sum(1, /*keepdim=*/true).clamp_min(1);
    v = v - mean;
  }
  auto norm = v.norm(2, -1, /*keepdim=*/true);
  auto u = at::where(norm > 1e-12, v / norm.clamp_min(1e-300), at::zeros_like(v)) * w;  // unit rows, kept only
  auto k = at::bmm(u, u.transpose(1, 2));                                    // [E, R, R]
  return {k.diagonal(0, 1, 2).sum(-1).square(), k.square().sum({1, 2})};
}

double mean_n_eff(const at::Tensor& x, const at::Tensor& keep, bool centre, bool pooled) {
  const auto parts = n_eff_parts(x, keep, centre);
  auto used = parts.sum_sq > 0;
  if (!used.any().item<bool>()) return std::numeric_limits<double>::quiet_NaN();
  if (pooled) return parts.trace_sq.sum().item<double>() / parts.sum_sq.sum().item<double>();
  return (parts.trace_sq / parts.sum_sq.clamp_min(1e-300)).masked_select(used).mean().item<double>();
}

double n_eff(const at::Tensor& x, bool centre) {
  if (x.dim() != 2) fail("n_eff: expected candidates [R, D], found ", x.sizes());
  return mean_n_eff(x.unsqueeze(0), at::ones({1, x.size(0)}, at::TensorOptions().dtype(at::kBool)), centre, false);
}

}  // namespace repsearch
