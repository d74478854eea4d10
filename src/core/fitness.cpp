#include "repsearch/core/fitness.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <sstream>

#include "repsearch/core/error.hpp"
#include "repsearch/core/linalg.hpp"
#include "repsearch/core/registry.hpp"
#include "repsearch/core/rng.hpp"

namespace repsearch {

namespace {

at::Tensor sanitise(at::Tensor s, std::int64_t* nonfinite) {
  s = s.to(at::kDouble).cpu();
  auto finite = at::isfinite(s);
  if (nonfinite) *nonfinite += s.numel() - finite.sum().item<std::int64_t>();
  return at::where(finite, s, at::full_like(s, -std::numeric_limits<double>::infinity()));
}

void check_population(const at::Tensor& pop, std::int64_t n_s, const char* who) {
  if (pop.dim() != 3 || pop.size(1) != n_s)
    fail(who, ": expected a population [P, ", n_s, ", d], found ", pop.sizes());
}

}  // namespace

at::Tensor Fitness::score(const at::Tensor& population, const at::Tensor& val_rows, std::int64_t* nonfinite) const {
  return sanitise(self_->score(population, val_rows), nonfinite);
}

at::Tensor Fitness::score(const at::Tensor& population, const at::Tensor& val_rows, std::int64_t* nonfinite,
                          at::Tensor* predictions) const {
  if (!predictions) return score(population, val_rows, nonfinite);
  auto [s, pred] = self_->score_predict(population, val_rows);
  *predictions = pred.to(at::kLong).cpu();
  return sanitise(s, nonfinite);
}

at::Tensor Fitness::predict(const at::Tensor& population, const at::Tensor& val_rows) const {
  return self_->score_predict(population, val_rows).second.to(at::kLong).cpu();
}

void Fitness::no_predictions(const std::string& name) {
  fail("fitness ", name, ": cannot predict classes (the plug-in has no score_predict), so the functional ",
       "diversity and qd-distance=disagreement are unavailable with it");
}

at::Tensor Fitness::heldout(const at::Tensor& population, std::int64_t* nonfinite) const {
  return sanitise(self_->heldout(population), nonfinite);
}

at::Tensor RandomFeatures::operator()(const at::Tensor& x) const {
  auto h = at::relu(at::addmm(b, x, w)).div_(std::sqrt(static_cast<double>(w.size(1))));
  return at::cat({h, at::ones({x.size(0), 1}, h.options())}, 1);
}

RandomFeatures make_random_features(std::int64_t input_dim, std::int64_t p, std::uint64_t seed,
                                    const at::Device& device) {
  if (p <= 0) fail("random features: the feature count must be positive, found ", p);
  auto gen = make_generator(seed, Stream::fitness_features, {static_cast<std::uint64_t>(p)});
  auto cpu = at::TensorOptions().dtype(at::kFloat);
  RandomFeatures f;
  f.w = at::randn({input_dim, p}, gen, cpu).div_(std::sqrt(static_cast<double>(input_dim))).to(device);
  f.b = at::randn({p}, gen, cpu).to(device);
  return f;
}

namespace {

// G = phi_S^T phi_S (float64) accumulated over row blocks of S, its regularised Cholesky factor, and
// optionally phi_S^T Z: the kernel-ridge smoother's pieces without any [n, q] float64 matrix.
struct SmootherGram {
  at::Tensor gram, chol, phi_t_z;
  double lambda_abs = 0;
  std::int64_t rows = 0;
};
SmootherGram smoother_gram(const RandomFeatures& features, const at::Tensor& x, double lambda, std::int64_t rows,
                           const at::Tensor& z = {}) {
  const auto n = x.size(0), q = features.w.size(1) + 1;
  SmootherGram s;
  s.rows = rows > 0 ? rows : block_rows(n, 8 * q);
  s.gram = at::zeros({q, q}, x.options().dtype(at::kDouble));
  if (z.defined()) s.phi_t_z = at::zeros({q, z.size(1)}, s.gram.options());
  for (std::int64_t r0 = 0; r0 < n; r0 += s.rows) {
    const auto r1 = std::min(n, r0 + s.rows);
    auto phi = features(x.slice(0, r0, r1)).to(at::kDouble);
    s.gram.addmm_(phi.t(), phi);
    if (z.defined()) s.phi_t_z.addmm_(phi.t(), z.slice(0, r0, r1).to(at::kDouble));
  }
  s.lambda_abs = std::max(lambda, 1e-3) * s.gram.trace().item<double>() / static_cast<double>(q);
  s.chol = at::linalg_cholesky(s.gram + s.lambda_abs * at::eye(q, s.gram.options()));
  return s;
}

}  // namespace

at::Tensor smoother_extend(const FitnessConfig& c, const at::Tensor& x_search, const at::Tensor& z,
                           const at::Tensor& x_query) {
  if (x_search.dim() != 2 || z.dim() != 2 || z.size(0) != x_search.size(0) || x_query.dim() != 2 ||
      x_query.size(1) != x_search.size(1))
    fail("smoother_extend: expected X_S [n, D], Z [n, d] and X_Q [m, D], found ", x_search.sizes(), ", ", z.sizes(),
         " and ", x_query.sizes());
  const auto features = make_random_features(x_search.size(1), c.features, c.seed, x_search.device());
  const auto s = smoother_gram(features, x_search, c.lambda, c.setup_rows, z);
  const auto coef = at::cholesky_solve(s.phi_t_z, s.chol);  // (G + lambda I)^-1 phi_S^T Z [q, d]
  const auto m = x_query.size(0);
  auto out = at::empty({m, z.size(1)}, z.options().dtype(at::kFloat));
  for (std::int64_t r0 = 0; r0 < m; r0 += s.rows) {
    const auto r1 = std::min(m, r0 + s.rows);
    out.slice(0, r0, r1).copy_(at::matmul(features(x_query.slice(0, r0, r1)).to(at::kDouble), coef));
  }
  return out;
}

namespace detail {

RidgeWeights ridge_weights(const at::Tensor& pop, const at::Tensor& labels, std::int64_t n_classes, double ridge) {
  const auto P = pop.size(0), n = pop.size(1), d = pop.size(2);
  auto dbl = pop.options().dtype(at::kDouble);
  // Centred Gram without a centred copy of the population: Z^T Z - n m m^T.
  // Z^T Y as per-class row sums (no one-hot matrix, no copy); their total gives the column means.
  at::Tensor gram, sums;                                                      // [P, d, d], [P, C, d]
  if (pop.is_cpu()) {
    // One individual at a time: its class sums then read Z_p from the cache the Gram product just
    // filled (a separate pass over the population costs ~3 ms more at the default sizes).
    gram = at::empty({P, d, d}, pop.options());
    sums = at::empty({P, n_classes, d}, pop.options());
    for (std::int64_t p = 0; p < P; ++p) {
      auto z = pop.select(0, p);
      auto g = gram.select(0, p);
      at::mm_out(g, z.t(), z);
      sums.select(0, p).copy_(class_sums(z.unsqueeze(0), labels, n_classes).squeeze(0));
    }
  } else {
    gram = at::bmm(pop.transpose(1, 2), pop);
    sums = class_sums(pop, labels, n_classes);
  }
  gram = gram.to(at::kDouble);
  sums = sums.to(at::kDouble);
  auto mean = sums.sum(1) / static_cast<double>(n);                          // [P, d]
  gram -= static_cast<double>(n) * mean.unsqueeze(2) * mean.unsqueeze(1);
  auto counts = at::bincount(labels, /*weights=*/{}, n_classes).to(dbl);    // [C]
  auto ybar = counts / static_cast<double>(n);                               // [C]
  auto cross = sums.transpose(1, 2) - static_cast<double>(n) * mean.unsqueeze(2) * ybar.view({1, 1, -1});
  auto trace = gram.diagonal(0, 1, 2).sum(1);                                 // [P]
  auto mu = (ridge * trace / static_cast<double>(d)).clamp_min(1e-12);
  auto reg = gram + mu.view({P, 1, 1}) * at::eye(d, dbl).unsqueeze(0);
  auto chol = at::linalg_cholesky_ex(reg);
  auto ok = std::get<1>(chol).eq(0);
  // A failed factor (NaN/Inf or degenerate Z) is replaced by I so the batch stays finite; `ok` marks it.
  auto factor = at::where(ok.view({P, 1, 1}), std::get<0>(chol), at::eye(d, dbl).expand({P, d, d}));
  RidgeWeights r;
  r.w = at::cholesky_solve(cross, factor);                                    // [P, d, C]
  r.bias = (ybar.unsqueeze(0) - at::bmm(mean.unsqueeze(1), r.w).squeeze(1));
  r.ok = ok & at::isfinite(r.bias).all(1);
  return r;
}

Readout ridge_readout(const at::Tensor& pop, const at::Tensor& labels, std::int64_t n_classes, double ridge) {
  auto rw = ridge_weights(pop, labels, n_classes, ridge);
  Readout r;
  r.bias = rw.bias.to(pop.scalar_type());
  r.zw = at::bmm(pop, rw.w.to(pop.scalar_type()));                           // [P, n, C]
  r.ok = rw.ok;
  return r;
}

at::Tensor neg_cross_entropy(const at::Tensor& logits, const at::Tensor& labels, double beta) {
  auto z = logits * beta;
  auto lse = at::logsumexp(z, -1);                                            // [P, b]
  auto idx = labels.view({1, -1, 1}).expand({z.size(0), labels.size(0), 1});
  auto picked = z.gather(-1, idx).squeeze(-1);
  return -(lse - picked).to(at::kDouble).mean(-1);
}

}  // namespace detail

namespace {

// ridge-probe: how well labels are read from Z once Z is predicted from the inputs.
// M = phi_V (phi_S^T phi_S + lambda I)^-1 phi_S^T maps S's representation to V's (kernel ridge with
// random ReLU features); a ridge readout Z -> labels fitted on S is applied to M Z. The score is
// -CE(softmax(beta logits)) on a V minibatch drawn fresh every generation. M (Z W) replaces (M Z) W:
// the same value for about d/C of the work.
class RidgeProbe {
 public:
  RidgeProbe(const FitnessConfig& c, const FitnessData& data, bool with_hat = false)
      : cfg_(c), n_classes_(data.n_classes), y_search_(data.y_search), y_val_(data.y_val),
        y_heldout_(data.y_heldout) {
    check_data(data);
    const auto dev = data.x_search.device();
    features_ = make_random_features(data.x_search.size(1), c.features, c.seed, dev);
    // Everything over S in row blocks of phi_S (float32 features, float64 products): the [n, q]
    // float64 features and [q, n] smoother of a one-shot set-up do not fit at n_s = 60,000.
    const auto n = data.x_search.size(0);
    const auto sg = smoother_gram(features_, data.x_search, c.lambda, c.setup_rows);
    const auto rows = sg.rows;
    const auto& g = sg.gram;
    const auto& chol = sg.chol;
    lambda_abs_ = sg.lambda_abs;
    auto phi_block = [&](std::int64_t r0) {
      return features_(data.x_search.slice(0, r0, std::min(n, r0 + rows))).to(at::kDouble);
    };
    // M = phi_Q (G + lambda I)^-1 phi_S^T, as (phi_S A)^T with A = (G + lambda I)^-1 phi_Q^T [q, |Q|].
    const auto n_val = data.x_val.size(0);
    auto a = at::cholesky_solve(at::cat({features_(data.x_val), features_(data.x_heldout)}).to(at::kDouble).t(), chol);
    auto m = at::empty({a.size(1), n}, data.x_search.options());
    for (std::int64_t r0 = 0; r0 < n; r0 += rows) {
      auto phi = phi_block(r0);
      m.slice(1, r0, r0 + phi.size(0)).copy_(at::matmul(phi, a).t());
    }
    m_val_ = m.slice(0, 0, n_val).contiguous();
    m_heldout_ = m.slice(0, n_val).contiguous();
    m = at::Tensor();
    if (!with_hat) return;
    // Hat matrix H = phi_S (G + lambda I)^-1 phi_S^T = U diag(s) U^T with G = V diag(L) V^T,
    // U = phi_S V L^-1/2, s = L / (L + lambda); directions with s ~ 0 are dropped from the products.
    auto eig = at::linalg_eigh(g);
    auto evals = std::get<0>(eig).clamp_min(0.0), evecs = std::get<1>(eig);
    auto s = evals / (evals + lambda_abs_);
    auto keep = s.gt(1e-6).nonzero().squeeze(1);
    auto basis = evecs / evals.clamp_min(1e-300).sqrt();                          // [q, q]
    hat_s_ = s.index_select(0, keep).to(at::kFloat);                              // [k]
    hat_u_ = at::empty({n, keep.size(0)}, data.x_search.options());
    hat_diag_ = at::empty({n}, data.x_search.options());
    for (std::int64_t r0 = 0; r0 < n; r0 += rows) {
      auto u = at::matmul(phi_block(r0), basis);  // [b, q] float64
      const auto r1 = r0 + u.size(0);
      hat_diag_.slice(0, r0, r1).copy_((u.pow(2) * s).sum(1));
      hat_u_.slice(0, r0, r1).copy_(u.index_select(1, keep));
    }
  }

  at::Tensor score(const at::Tensor& pop, const at::Tensor& val_rows) const {
    check_population(pop, y_search_.size(0), name().c_str());
    auto rows = val_rows.to(m_val_.device());
    return probe(pop, m_val_.index_select(0, rows), y_val_.index_select(0, rows));
  }
  at::Tensor heldout(const at::Tensor& pop) const {
    check_population(pop, y_search_.size(0), name().c_str());
    return probe(pop, m_heldout_, y_heldout_);
  }
  std::pair<at::Tensor, at::Tensor> score_predict(const at::Tensor& pop, const at::Tensor& val_rows) const {
    check_population(pop, y_search_.size(0), name().c_str());
    auto rows = val_rows.to(m_val_.device());
    at::Tensor pred;
    auto s = probe(pop, m_val_.index_select(0, rows), y_val_.index_select(0, rows), &pred);
    return {s, pred};
  }
  std::string name() const { return "ridge-probe"; }
  std::string parameters() const {
    std::ostringstream os;
    os << "features=" << cfg_.features << " lambda=" << cfg_.lambda << " lambda_abs=" << lambda_abs_
       << " readout_ridge=" << cfg_.readout_ridge << " beta=" << cfg_.beta << " seed=" << cfg_.seed;
    return os.str();
  }

  // Mean over columns of the leave-one-out R^2 of Z predicted from phi_S by kernel ridge:
  // residual_i = (z_i - (H z)_i) / (1 - H_ii). [P] float64.
  at::Tensor loo_r2(const at::Tensor& pop) const {
    TORCH_CHECK(hat_u_.defined(), "loo_r2 needs a RidgeProbe built with_hat");
    const auto P = pop.size(0), n = pop.size(1), k = hat_u_.size(1);
    auto coef = at::bmm(hat_u_.t().expand({P, k, n}), pop) * hat_s_.view({1, k, 1});  // [P, k, d]
    auto fit = at::bmm(hat_u_.expand({P, n, k}), coef);                                // [P, n, d]
    auto resid = (pop - fit) / (1.0 - hat_diag_).clamp_min(1e-6).view({1, n, 1});
    auto ss_res = resid.pow(2).sum(1).to(at::kDouble);
    auto mean = pop.mean(1).to(at::kDouble);
    auto ss_tot = (pop.pow(2).sum(1).to(at::kDouble) - static_cast<double>(n) * mean.pow(2)).clamp_min(1e-12);
    return (1.0 - ss_res / ss_tot).mean(1);
  }

 private:
  static void check_data(const FitnessData& d) {
    if (!d.x_search.defined() || d.x_search.dim() != 2 || d.y_search.size(0) != d.x_search.size(0) ||
        d.x_val.size(0) != d.y_val.size(0) || d.x_heldout.size(0) != d.y_heldout.size(0))
      fail("ridge-probe: inconsistent fitness data (inputs [n, D] with one label per row expected)");
  }
  at::Tensor probe(const at::Tensor& pop, const at::Tensor& m, const at::Tensor& y, at::Tensor* pred = nullptr) const {
    const auto P = pop.size(0), n = pop.size(1), C = n_classes_;
    auto r = detail::ridge_readout(pop, y_search_, C, cfg_.readout_ridge);
    auto flat = r.zw.permute({1, 0, 2}).reshape({n, P * C});                  // one GEMM for all P
    auto logits = at::matmul(m, flat).view({m.size(0), P, C}).permute({1, 0, 2}) + r.bias.unsqueeze(1);
    auto s = detail::neg_cross_entropy(logits, y, cfg_.beta);
    if (pred) *pred = logits.argmax(-1).cpu();                                // [P, b]
    return at::where(r.ok, s, at::full_like(s, std::numeric_limits<double>::quiet_NaN()));
  }

  FitnessConfig cfg_;
  std::int64_t n_classes_;
  at::Tensor y_search_, y_val_, y_heldout_;
  RandomFeatures features_;
  double lambda_abs_ = 0;
  at::Tensor m_val_, m_heldout_;
  at::Tensor hat_diag_, hat_u_, hat_s_;
};

// ridge-probe-learnable: ridge-probe + w * LOO R^2, so every direction of Z must be predictable from
// the inputs, not only the label-bearing span.
class RidgeProbeLearnable {
 public:
  RidgeProbeLearnable(const FitnessConfig& c, const FitnessData& d) : base_(c, d, /*with_hat=*/true), weight_(c.learnable_weight) {}
  at::Tensor score(const at::Tensor& pop, const at::Tensor& rows) const {
    return base_.score(pop, rows) + weight_ * base_.loo_r2(pop);
  }
  at::Tensor heldout(const at::Tensor& pop) const { return base_.heldout(pop) + weight_ * base_.loo_r2(pop); }
  std::pair<at::Tensor, at::Tensor> score_predict(const at::Tensor& pop, const at::Tensor& rows) const {
    auto [s, pred] = base_.score_predict(pop, rows);
    return {s + weight_ * base_.loo_r2(pop), pred};
  }
  std::string name() const { return "ridge-probe-learnable"; }
  std::string parameters() const { return base_.parameters() + " learnable_weight=" + std::to_string(weight_); }

 private:
  RidgeProbe base_;
  double weight_;
};

using Factory = std::function<Fitness(const FitnessConfig&, const FitnessData&)>;

const std::map<std::string, Factory>& factories() {
  static const std::map<std::string, Factory> r = {
      {"ridge-probe", [](const FitnessConfig& c, const FitnessData& d) { return Fitness{RidgeProbe{c, d}}; }},
      {"ridge-probe-learnable",
       [](const FitnessConfig& c, const FitnessData& d) { return Fitness{RidgeProbeLearnable{c, d}}; }},
  };
  return r;
}

}  // namespace

std::vector<std::string> fitness_names() { return registry::names(factories()); }

Fitness make_fitness(const FitnessConfig& config, const FitnessData& data) {
  return registry::find(factories(), config.name, "fitness", "fitness").second(config, data);
}

}  // namespace repsearch
