#include "repsearch/core/linalg.hpp"

#include <algorithm>
#include <limits>

#include "repsearch/core/error.hpp"

namespace repsearch {

namespace {
// The n-row products run in the input's precision (float32 GEMMs are the cost, e.g. the search's
// per-generation diversity); their small d x d results are squared and summed in float64.
at::Tensor centred(const at::Tensor& x) {  // [..., n, d], columns centred over n (in float64, then rounded)
  auto xd = x.to(at::kDouble);
  return (xd - xd.mean(-2, /*keepdim=*/true)).to(x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat);
}
at::Tensor gram_norm(const at::Tensor& xc) {  // ||X^T X||_F for [..., n, d]
  return at::matmul(xc.transpose(-2, -1), xc).to(at::kDouble).pow(2).sum({-2, -1}).sqrt();
}
}  // namespace

at::Tensor class_sums(const at::Tensor& x, const at::Tensor& labels, std::int64_t n_classes) {
  if (x.dim() != 3 || labels.dim() != 1 || labels.size(0) != x.size(1))
    fail("class_sums: expected X [B, n, d] and labels [n], found ", x.sizes(), " and ", labels.sizes());
  const auto B = x.size(0), n = x.size(1), d = x.size(2);
  auto out = at::zeros({B, n_classes, d}, x.options());
  // ATen's CPU index_add_ along dim 1 runs one small tensor op per row (~8 ms for a default
  // population, twice the time of this loop).
  if (!x.is_cpu() || !at::isFloatingType(x.scalar_type())) return out.index_add_(1, labels.to(x.device()), x);
  auto xc = x.contiguous();
  auto lab = labels.to(at::kLong).contiguous();
  const auto* y = lab.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i)
    if (y[i] < 0 || y[i] >= n_classes) fail("class_sums: label ", y[i], " at row ", i, " is outside [0, ", n_classes, ")");
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "class_sums", [&] {
    const auto* src = xc.data_ptr<scalar_t>();
    auto* dst = out.data_ptr<scalar_t>();
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t i = 0; i < n; ++i) {
        const scalar_t* row = src + (b * n + i) * d;
        scalar_t* acc = dst + (b * n_classes + y[i]) * d;
        for (std::int64_t k = 0; k < d; ++k) acc[k] += row[k];
      }
  });
  return out;
}

at::Tensor linear_cka_batch(const at::Tensor& x, const at::Tensor& y, const at::Tensor& which) {
  if (x.dim() != 3 || y.dim() != 2 || x.size(1) != y.size(0))
    fail("linear_cka_batch: expected X [B, n, d1] and Y [n, d2], found ", x.sizes(), " and ", y.sizes());
  auto yc = centred(y);
  const auto n = static_cast<double>(x.size(1));
  const auto yy = gram_norm(yc).item<double>();
  auto idx = which.defined() ? which.to(at::kLong).cpu().contiguous() : at::arange(x.size(0), at::TensorOptions().dtype(at::kLong));
  const auto* ix = idx.data_ptr<std::int64_t>();
  auto out = at::empty({idx.numel()}, at::TensorOptions().dtype(at::kDouble));
  auto* o = out.data_ptr<double>();
  for (std::int64_t k = 0; k < idx.numel(); ++k) {
    // X is not copied or centred: Yc^T X = Yc^T Xc, and Xc^T Xc = X^T X - n m m^T in float64. Where a
    // column's mean exceeds its spread that difference would cancel digits, so X is centred then.
    auto xb = x.select(0, ix[k]).to(yc.scalar_type());
    auto m = xb.sum(0).to(at::kDouble) / n;
    auto gram = at::mm(xb.t(), xb).to(at::kDouble) - n * at::outer(m, m);
    at::Tensor cross;
    if ((m.pow(2) > gram.diagonal() / n).any().item<bool>()) {
      auto xc = centred(xb);
      gram = at::mm(xc.t(), xc).to(at::kDouble);
      cross = at::mm(yc.t(), xc).to(at::kDouble);
    } else {
      cross = at::mm(yc.t(), xb).to(at::kDouble);
    }
    const double den = gram.pow(2).sum().sqrt().item<double>() * yy;
    // A constant representation has no similarity structure: define CKA with it as 0.
    o[k] = den > 0 ? cross.pow(2).sum().item<double>() / den : 0.0;
  }
  return out;
}

double linear_cka(const at::Tensor& x, const at::Tensor& y) {
  if (x.dim() != 2 || y.dim() != 2 || x.size(0) != y.size(0))
    fail("linear_cka: expected X [n, d1] and Y [n, d2] with the same n, found ", x.sizes(), " and ",
         y.sizes());
  return linear_cka_batch(x.unsqueeze(0), y).item<double>();
}

at::Tensor linear_cka_matrix(const at::Tensor& x) {
  if (x.dim() != 3) fail("linear_cka_matrix: expected [B, n, d], found ", x.sizes());
  const auto b = x.size(0);
  auto out = at::eye(b, at::TensorOptions().dtype(at::kDouble));
  for (int64_t i = 0; i + 1 < b; ++i) {
    auto row = linear_cka_batch(x.slice(0, i + 1, b), x[i]).cpu();
    out.select(0, i).slice(0, i + 1, b).copy_(row);
    out.select(1, i).slice(0, i + 1, b).copy_(row);
  }
  return out;
}

at::Tensor procrustes_rotation(const at::Tensor& source, const at::Tensor& target) {
  if ((source.dim() != 2 && source.dim() != 3) || source.sizes() != target.sizes())
    fail("procrustes: expected two [n, d] or [B, n, d] tensors of one shape, found ", source.sizes(), " and ",
         target.sizes());
  if (source.dim() == 2) return procrustes_rotation(source.unsqueeze(0), target.unsqueeze(0))[0];
  auto m = at::bmm(source.transpose(1, 2), target).to(at::kDouble);
  auto usv = at::linalg_svd(m, /*full_matrices=*/false);
  return at::bmm(std::get<0>(usv), std::get<2>(usv)).to(source.scalar_type());
}

at::Tensor procrustes_align(const at::Tensor& source, const at::Tensor& target) {
  return at::matmul(source, procrustes_rotation(source, target));
}

std::int64_t block_rows(std::int64_t n, std::int64_t bytes_per_row, std::int64_t budget_bytes) {
  return std::max<std::int64_t>(1, std::min<std::int64_t>(n, budget_bytes / std::max<std::int64_t>(1, bytes_per_row)));
}

at::Tensor nearest_neighbours(const at::Tensor& x, std::int64_t k, std::int64_t rows) {
  const auto n = x.size(0);
  if (n < 2 || k < 1) fail("nearest_neighbours: need at least 2 rows and k >= 1, found ", n, " rows and k = ", k);
  k = std::min<std::int64_t>(k, n - 1);
  if (rows <= 0) rows = block_rows(n, 4 * n);
  auto sq = x.pow(2).sum(1);
  auto out = at::empty({n, k}, x.options().dtype(at::kLong));
  for (std::int64_t r0 = 0; r0 < n; r0 += rows) {
    const auto r1 = std::min(n, r0 + rows);
    auto xb = x.slice(0, r0, r1);
    auto dist = sq.slice(0, r0, r1).unsqueeze(1) + sq.unsqueeze(0) - 2.0 * at::matmul(xb, x.t());  // [b, n]
    dist.diagonal(r0).fill_(std::numeric_limits<float>::infinity());  // each row's own column
    out.slice(0, r0, r1).copy_(std::get<1>(dist.topk(k, 1, /*largest=*/false)));
  }
  return out;
}

}  // namespace repsearch
