#include "repsearch/core/example_search.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>

#include <ATen/Parallel.h>

#include "repsearch/core/error.hpp"
#include "repsearch/core/rng.hpp"

namespace repsearch {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<std::int64_t> cat_shape(std::initializer_list<std::int64_t> head, at::IntArrayRef tail) {
  std::vector<std::int64_t> s(head);
  s.insert(s.end(), tail.begin(), tail.end());
  return s;
}

// Rows `idx` [E, n] of x [E, m, ...] per example: [E, n, ...].
at::Tensor rows_of(const at::Tensor& x, const at::Tensor& idx) {
  const auto e = x.size(0), m = x.size(1);
  auto flat = (idx + at::arange(e, idx.options()).mul_(m).unsqueeze(1)).flatten();
  return x.flatten(0, 1).index_select(0, flat).view(cat_shape({e, idx.size(1)}, x.sizes().slice(2)));
}

// f over x's rows in calls of exactly `chunk` rows, the last one padded with zeros: a candidate's
// result never depends on how many others share its call (BLAS kernels differ with the row count).
template <class F>
at::Tensor chunked(const at::Tensor& x, std::int64_t chunk, F&& f) {
  std::vector<at::Tensor> parts;
  for (std::int64_t i = 0; i < x.size(0); i += chunk) {
    const auto j = std::min(x.size(0), i + chunk);
    auto piece = x.slice(0, i, j);
    if (j - i < chunk) {
      auto pad = cat_shape({chunk - (j - i)}, x.sizes().slice(1));
      piece = at::cat({piece, at::zeros(pad, x.options())});
    }
    parts.push_back(f(piece).slice(0, 0, j - i));
  }
  return parts.size() == 1 ? parts[0] : at::cat(parts);
}

// A candidate's spread: per channel over H, W for conv candidates [..., C, H, W]; across classes for logits.
at::Tensor spread(const at::Tensor& x, bool conv) { return conv ? channel_std(x) : x.std(-1, /*unbiased=*/false); }

// A population in two parts, the survivors and the generation's children, so that no generation copies
// its children into one tensor: rows are gathered from either part by index (survivors first).
struct Population {
  at::Tensor a, b, fa, fb;  // [E, ka, ...], [E, kb, ...] (b may be undefined), fitness [E, ka], [E, kb]

  at::Tensor fitness() const { return b.defined() ? at::cat({fa, fb}, 1) : fa; }
  at::Tensor rows(const at::Tensor& idx) const {
    if (!b.defined()) return rows_of(a, idx);
    const auto ka = a.size(1);
    auto from_a = (idx < ka).view(cat_shape({idx.size(0), idx.size(1)}, std::vector<std::int64_t>(static_cast<std::size_t>(a.dim() - 2), 1)));
    return at::where(from_a, rows_of(a, idx.clamp_max(ka - 1)), rows_of(b, (idx - ka).clamp_min(0)));
  }
  // Overwrite the rows `idx` [E, j] with `values` [E, j, ...] and their fitness [E, j].
  void put(const at::Tensor& idx, const at::Tensor& values, const at::Tensor& fit) {
    const auto e = idx.size(0), ka = a.size(1);
    auto into = [&](at::Tensor& part, at::Tensor& part_fit, const at::Tensor& mask, const at::Tensor& local) {
      const auto k = part.size(1);
      auto flat = (local + at::arange(e, idx.options()).mul_(k).unsqueeze(1)).masked_select(mask);
      auto sel = mask.flatten().nonzero().squeeze(1);
      part.flatten(0, 1).index_copy_(0, flat, values.flatten(0, 1).index_select(0, sel));
      part_fit.flatten().index_copy_(0, flat, fit.flatten().index_select(0, sel));
    };
    into(a, fa, idx < ka, idx);
    if (b.defined()) into(b, fb, idx >= ka, idx - ka);
  }
};

}  // namespace

// ---- config ------------------------------------------------------------------------------------------

bool ExampleSearchConfig::searched(std::int64_t layer) const {
  return std::find(layers.begin(), layers.end(), layer) != layers.end();
}

std::int64_t ExampleSearchConfig::ticks() const {
  std::int64_t t = 0;
  for (auto l : layers) t += 1 + schedule[static_cast<std::size_t>(l)].generations;
  return t;
}

std::vector<std::int64_t> parse_layers(const std::string& text, const char* option) {
  const auto names = frozen_layer_names();
  if (text == "all") return {0, 1, 2, 3};
  std::vector<std::int64_t> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    item.erase(std::remove_if(item.begin(), item.end(), ::isspace), item.end());
    const auto it = std::find(names.begin(), names.end(), item);
    const auto l = static_cast<std::int64_t>(it - names.begin());
    if (it == names.end() || (!out.empty() && l <= out.back()))
      fail_option(option, text, "'all' or layers of block0, block1, block2, logits in increasing order, each once",
                  "option ", option, ": expected 'all' or a comma-separated list of block0, block1, block2, logits in "
                  "increasing order (each once), found '", text, "'");
    out.push_back(l);
  }
  if (out.empty()) fail_option(option, text, "at least one layer");
  return out;
}

void validate(const ExampleSearchConfig& c) {
  if (c.layers.empty()) fail_option("layers", "", "at least one layer");
  if (c.parents < 2) fail_option("parents", c.parents, ">= 2 (children are the mean of two parents)");
  if (c.exploratory < 0) fail_option("exploratory", c.exploratory, ">= 0");
  if (c.refinement < 0) fail_option("refinement", c.refinement, ">= 0");
  if (c.exploratory + c.refinement < 1)
    fail_option("refinement", c.refinement, ">= 1 when exploratory is 0 (a generation must make a child)");
  if (!(c.init_noise >= 0) || !std::isfinite(c.init_noise)) fail_option("init-noise", c.init_noise, ">= 0");
  if (c.islands < 1) fail_option("islands", c.islands, ">= 1");
  if (c.eval_chunk < 1) fail_option("eval-chunk", c.eval_chunk, ">= 1");
  for (std::size_t l = 0; l < c.schedule.size(); ++l) {
    const auto& s = c.schedule[l];
    const auto at = " (layer " + frozen_layer_names()[l] + ")";
    if (s.generations < 0) fail_option("layer-generations", s.generations, ">= 0" + at);
    if (!(s.alpha >= 0) || !std::isfinite(s.alpha)) fail_option("layer-alpha", s.alpha, ">= 0" + at);
    if (!(s.boost > 0) || !std::isfinite(s.boost)) fail_option("layer-boost", s.boost, "> 0" + at);
    if (s.blur < 0 || s.blur > 1000) fail_option("layer-blur", s.blur, "in [0, 1000]" + at);
  }
}

// ---- operators ----------------------------------------------------------------------------------------

at::Tensor blur(const at::Tensor& x, std::int64_t passes) {
  if (passes <= 0) return x;
  const auto shape = x.sizes().vec();
  auto y = x.reshape({-1, shape[shape.size() - 3], shape[shape.size() - 2], shape[shape.size() - 1]});
  for (std::int64_t i = 0; i < passes; ++i) y = at::avg_pool2d(y, 3, 1, 1);  // zero padding counts (PyTorch's default)
  return y.reshape(shape);
}

at::Tensor normalise_candidates(const at::Tensor& x, double eps) {
  const auto d = x.dim();
  return at::layer_norm(x, {x.size(d - 3), x.size(d - 2), x.size(d - 1)}, {}, {}, eps);
}

at::Tensor channel_std(const at::Tensor& x) { return x.flatten(x.dim() - 2).std(-1, /*unbiased=*/false); }

at::Tensor cross_entropy_each(const at::Tensor& logits, const at::Tensor& labels) {
  auto z = logits.to(at::kFloat);
  return at::logsumexp(z, 1) - z.gather(1, labels.view({-1, 1})).squeeze(1);
}

// ---- a unit ---------------------------------------------------------------------------------------------

struct ExampleUnit::Island {
  IslandUnit out;
  at::Tensor input;                 // [E, ...] the current layer's fixed input
  Population pop;                   // fitness: float32 -cross-entropy
  at::Tensor made;                  // a generation's children, between operators and scoring
  std::array<at::Tensor, 4> ce;     // per layer [E] on the device
  std::vector<at::Tensor> hist;     // the current layer's mean best cross-entropy per generation (device scalars)
};

ExampleUnit::ExampleUnit(const FrozenNet& net, const ExampleSearchConfig& config, UnitInput input)
    : net_(net), config_(config), input_(std::move(input)) {
  validate(config_);
  if (input_.islands.empty()) fail("example search: a unit needs at least one island");
  if (input_.images.dim() != 4 || input_.labels.dim() != 1 || input_.labels.size(0) != input_.images.size(0))
    fail("example search: expected images [B, C, H, W] and labels [B], found ", input_.images.sizes(), " and ",
         input_.labels.sizes());
  const auto t0 = Clock::now();
  input_.labels = input_.labels.to(net_.device(), at::kLong);
  const auto stem = chunked(input_.images.to(net_.device()), config_.eval_chunk, [&](const at::Tensor& c) { return net_.stem(c); });
  const auto logits = chunked(stem, config_.eval_chunk, [&](const at::Tensor& c) { return net_.logits_from(-1, c); });
  const auto own = cross_entropy_each(logits, input_.labels).to(at::kCPU, at::kDouble);
  forward_seconds_ += since(t0);  // the network's own pass over the batch
  for (auto i : input_.islands) {
    Island s;
    s.out.batch = input_.batch;
    s.out.island = i;
    s.out.initial_ce = own;
    s.input = stem;
    islands_.push_back(std::move(s));
  }
  const auto t1 = Clock::now();
  advance_unsearched();
  forward_seconds_ += since(t1);
  seconds_ += since(t0);
}

ExampleUnit::~ExampleUnit() = default;
ExampleUnit::ExampleUnit(ExampleUnit&&) noexcept = default;

std::string ExampleUnit::layer_name() const { return done() ? "done" : frozen_layer_names()[static_cast<std::size_t>(layer_)]; }

std::int64_t ExampleUnit::evaluations() const {
  std::int64_t n = 0;
  for (const auto& s : islands_) n += s.out.evaluations;
  return n;
}

double ExampleUnit::mean_best_ce() const {
  at::Tensor sum;
  for (const auto& s : islands_) {
    auto v = s.pop.a.defined() ? -s.pop.fitness().amax(1).mean() : s.ce[static_cast<std::size_t>(std::max<std::int64_t>(layer_ - 1, 0))].mean();
    sum = sum.defined() ? sum + v : v;
  }
  return sum.item<double>() / static_cast<double>(islands_.size());
}

// Layers that are not searched take the network's own forward pass of the fixed input.
void ExampleUnit::advance_unsearched() {
  while (layer_ < FrozenNet::kLayers && !config_.searched(layer_)) {
    for (auto& s : islands_) {
      auto out = chunked(s.input, config_.eval_chunk, [&](const at::Tensor& c) { return net_.layer(layer_, c); });
      auto logits = chunked(out, config_.eval_chunk, [&](const at::Tensor& c) { return net_.logits_from(layer_, c); });
      s.ce[static_cast<std::size_t>(layer_)] = cross_entropy_each(logits, input_.labels);
      s.out.targets[static_cast<std::size_t>(layer_)] = out;
      s.input = out;
    }
    ++layer_;
  }
}

at::Tensor ExampleUnit::score(const at::Tensor& candidates, std::int64_t examples) {
  const auto t0 = Clock::now();
  const auto n = candidates.size(1);
  auto labels = input_.labels.repeat_interleave(n).repeat({examples / input_.labels.size(0)});
  auto logits = chunked(candidates.flatten(0, 1), config_.eval_chunk, [&](const at::Tensor& c) { return net_.logits_from(layer_, c); });
  auto fit = cross_entropy_each(logits, labels).neg_().view({examples, n});
  if (timed_ && fit.is_cuda()) fit.sum().item<float>();  // sampled: let the device finish before reading the clock
  forward_seconds_ += since(t0);
  return fit;
}

void ExampleUnit::init_population(Island& s) {
  const auto t0 = Clock::now();
  const auto l = static_cast<std::uint64_t>(layer_);
  auto gen = device_generator(net_.device(), config_.seed, Stream::example,
                              {static_cast<std::uint64_t>(input_.batch), static_cast<std::uint64_t>(s.out.island), l, 0});
  const auto& u = s.input;  // [E, C, H, W]: every layer's input is a conv map
  const auto e = u.size(0), p = config_.population();
  auto sigma = channel_std(u).unsqueeze(-1).unsqueeze(-1).unsqueeze(1);
  auto noise = at::randn(cat_shape({e, p - 1}, u.sizes().slice(1)), gen, u.options()).mul_(sigma * config_.init_noise);
  auto noisy = at::cat({u.unsqueeze(1), u.unsqueeze(1) + noise}, 1);  // member 0: the input itself
  operator_seconds_ += since(t0);
  const auto t1 = Clock::now();  // propagating the noisy inputs through the layer: the network's time
  auto cand = chunked(noisy.flatten(0, 1), config_.eval_chunk, [&](const at::Tensor& c) { return net_.layer(layer_, c); })
                  .contiguous();
  forward_seconds_ += since(t1);
  const auto t2 = Clock::now();
  cand = layer_ < 3 ? normalise_candidates(cand, config_.normalise_eps) : cand - cand.mean(-1, /*keepdim=*/true);
  s.pop = Population{cand.view(cat_shape({e, p}, cand.sizes().slice(1))), {}, {}, {}};
  operator_seconds_ += since(t2);
  s.pop.fa = score(s.pop.a, e);
  s.out.evaluations += e * p;
}

namespace {

// Children of conv candidates on the CPU, one child at a time in cache: the mean of its two parents plus
// the scaled noise, the blur passes and the normalisation, written channels-last (the layout the
// network's convs take), with its spread. Every step runs over contiguous channel vectors.
//   pool [E, m, H, W, C] and noise [E, n, H, W, C] contiguous; sigma [E, m, C]; idx [E, 2n] (a then b).
void breed_conv_cpu(const at::Tensor& pool, const at::Tensor& sigma, const at::Tensor& idx, const at::Tensor& noise,
                    double strength, std::int64_t passes, double eps, at::Tensor& out, at::Tensor& out_spread) {
  const auto e_n = noise.size(0) * noise.size(1), n = noise.size(1), m = pool.size(1);
  const auto h = pool.size(2), w = pool.size(3), c = pool.size(4), hw = h * w, size = hw * c;
  const float* P = pool.data_ptr<float>();
  const float* S = sigma.data_ptr<float>();
  const std::int64_t* I = idx.data_ptr<std::int64_t>();
  const float* N = noise.data_ptr<float>();
  float* O = out.data_ptr<float>();
  float* Q = out_spread.data_ptr<float>();
  at::parallel_for(0, e_n, 1, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> buf(static_cast<std::size_t>(size)), tmp(static_cast<std::size_t>(size)), sd(static_cast<std::size_t>(c));
    std::vector<double> sum(static_cast<std::size_t>(c)), sq(static_cast<std::size_t>(c));
    for (std::int64_t j = begin; j < end; ++j) {
      const auto e = j / n, k = j % n;
      const auto a = I[e * 2 * n + k], b = I[e * 2 * n + n + k];
      const float *pa = P + (e * m + a) * size, *pb = P + (e * m + b) * size, *nz = N + j * size;
      for (std::int64_t ch = 0; ch < c; ++ch)
        sd[ch] = static_cast<float>(0.5 * strength) * (S[(e * m + a) * c + ch] + S[(e * m + b) * c + ch]);
      float* x = buf.data();
      for (std::int64_t p = 0; p < hw; ++p)
        for (std::int64_t ch = 0; ch < c; ++ch)
          x[p * c + ch] = 0.5f * (pa[p * c + ch] + pb[p * c + ch]) + nz[p * c + ch] * sd[ch];
      for (std::int64_t pass = 0; pass < passes; ++pass) {  // 3x3 box, zero padding, always / 9
        float* t = tmp.data();
        for (std::int64_t r = 0; r < h; ++r)
          for (std::int64_t q = 0; q < w; ++q) {
            float* dst = t + (r * w + q) * c;
            const float* mid = x + (r * w + q) * c;
            for (std::int64_t ch = 0; ch < c; ++ch) dst[ch] = mid[ch];
            if (q > 0) for (std::int64_t ch = 0; ch < c; ++ch) dst[ch] += mid[ch - c];
            if (q + 1 < w) for (std::int64_t ch = 0; ch < c; ++ch) dst[ch] += mid[ch + c];
          }
        for (std::int64_t r = 0; r < h; ++r)
          for (std::int64_t q = 0; q < w; ++q) {
            float* dst = x + (r * w + q) * c;
            const float* mid = t + (r * w + q) * c;
            for (std::int64_t ch = 0; ch < c; ++ch) dst[ch] = mid[ch];
            if (r > 0) for (std::int64_t ch = 0; ch < c; ++ch) dst[ch] += mid[ch - w * c];
            if (r + 1 < h) for (std::int64_t ch = 0; ch < c; ++ch) dst[ch] += mid[ch + w * c];
            for (std::int64_t ch = 0; ch < c; ++ch) dst[ch] *= 1.0f / 9.0f;
          }
      }
      std::fill(sum.begin(), sum.end(), 0.0);
      std::fill(sq.begin(), sq.end(), 0.0);
      for (std::int64_t p = 0; p < hw; ++p)
        for (std::int64_t ch = 0; ch < c; ++ch) {
          const double v = x[p * c + ch];
          sum[static_cast<std::size_t>(ch)] += v;
          sq[static_cast<std::size_t>(ch)] += v * v;
        }
      double mean = 0, var = 0;
      for (std::int64_t ch = 0; ch < c; ++ch) mean += sum[static_cast<std::size_t>(ch)];
      mean /= static_cast<double>(size);
      for (std::int64_t ch = 0; ch < c; ++ch) var += sq[static_cast<std::size_t>(ch)];
      var = std::max(0.0, var / static_cast<double>(size) - mean * mean);
      const double scale = eps > 0 ? 1.0 / std::sqrt(var + eps) : 1.0, shift = eps > 0 ? mean : 0.0;
      for (std::int64_t ch = 0; ch < c; ++ch) {
        const double mu = sum[static_cast<std::size_t>(ch)] / static_cast<double>(hw);
        const double v = std::max(0.0, sq[static_cast<std::size_t>(ch)] / static_cast<double>(hw) - mu * mu);
        Q[j * c + ch] = static_cast<float>(std::sqrt(v) * scale);
      }
      float* o = O + j * size;
      const auto fs = static_cast<float>(scale), fm = static_cast<float>(shift);
      for (std::int64_t p = 0; p < size; ++p) o[p] = (x[p] - fm) * fs;
    }
  });
}

struct Brood {
  at::Tensor children, spread;  // [E, n, ...] and [E, n, C] (conv) or [E, n] (logits)
};

Brood make_brood(const at::Tensor& pool, const at::Tensor& sigma, std::int64_t n, double strength,
                 std::int64_t blur_passes, double normalise_eps, at::Generator& gen) {
  const auto e = pool.size(0), m = pool.size(1);
  auto idx = at::randint(m, {e, 2 * n}, gen, at::TensorOptions().dtype(at::kLong).device(pool.device()));
  if (pool.dim() == 5 && pool.is_cpu() && pool.scalar_type() == at::kFloat) {
    const auto c = pool.size(2), h = pool.size(3), w = pool.size(4);
    auto noise = at::randn({e, n, h, w, c}, gen, pool.options());
    auto out = at::empty({e * n, c, h, w}, pool.options().memory_format(at::MemoryFormat::ChannelsLast));
    auto spread_out = at::empty({e, n, c}, pool.options());
    breed_conv_cpu(pool.permute({0, 1, 3, 4, 2}).contiguous(), sigma.to(at::kFloat).contiguous(), idx, noise, strength,
                   blur_passes, normalise_eps, out, spread_out);
    return {out.view({e, n, c, h, w}), spread_out};
  }
  auto a = idx.slice(1, 0, n), b = idx.slice(1, n, 2 * n);
  auto child = rows_of(pool, a).add_(rows_of(pool, b)).mul_(0.5);                   // crossover: the mean of two parents
  auto sd = rows_of(sigma, a).add_(rows_of(sigma, b)).mul_(0.5 * strength);          // [E, n, C] or [E, n]
  auto noise = at::randn(child.sizes(), gen, child.options());
  if (pool.dim() == 5) {
    child.add_(noise.mul_(sd.unsqueeze(-1).unsqueeze(-1)));
    child = blur(child, blur_passes);
    if (normalise_eps > 0) child = normalise_candidates(child, normalise_eps);
    return {child, channel_std(child)};
  }
  child.add_(noise.mul_(sd.unsqueeze(-1)));
  child.sub_(child.mean(-1, /*keepdim=*/true));
  return {child, child.std(-1, /*unbiased=*/false)};
}

}  // namespace

at::Tensor breed(const at::Tensor& pool, const at::Tensor& sigma, std::int64_t n, double strength,
                 std::int64_t blur_passes, double normalise_eps, at::Generator& gen) {
  return make_brood(pool, sigma, n, strength, blur_passes, normalise_eps, gen).children;
}

void ExampleUnit::generation_step() {
  const auto t0 = Clock::now();
  const auto& sch = config_.schedule[static_cast<std::size_t>(layer_)];
  const auto eps = config_.normalise_eps;
  const bool conv = layer_ < 3;
  for (auto& s : islands_) {
    auto gen = device_generator(net_.device(), config_.seed, Stream::example,
                                {static_cast<std::uint64_t>(input_.batch), static_cast<std::uint64_t>(s.out.island),
                                 static_cast<std::uint64_t>(layer_), static_cast<std::uint64_t>(generation_ + 1)});
    auto top = s.pop.fitness().topk(config_.parents, 1);  // elitism: the k best, best first (never re-scored)
    auto parents = s.pop.rows(std::get<1>(top));
    auto sig = spread(parents, conv);
    s.pop = Population{parents, {}, std::get<0>(top), {}};
    Brood exp{parents.slice(1, 0, 0), sig.slice(1, 0, 0)}, ref = exp;
    if (config_.exploratory > 0) exp = make_brood(parents, sig, config_.exploratory, sch.alpha * sch.boost, sch.blur, eps, gen);
    if (config_.refinement > 0)  // bred from the parents and the new explorers
      ref = make_brood(at::cat({parents, exp.children}, 1), at::cat({sig, exp.spread}, 1), config_.refinement, sch.alpha,
                       sch.blur, eps, gen);
    s.made = at::cat({exp.children, ref.children}, 1);
  }
  if (timed_ && islands_.front().made.is_cuda()) islands_.front().made.sum().item<float>();
  operator_seconds_ += since(t0);
  std::vector<at::Tensor> made;
  for (auto& s : islands_) made.push_back(s.made);
  const auto e = input_.labels.size(0), n = islands_.front().made.size(1);
  auto fit = score(made.size() == 1 ? made[0] : at::cat(made), e * static_cast<std::int64_t>(islands_.size()));
  for (std::size_t i = 0; i < islands_.size(); ++i) {
    auto& s = islands_[i];
    s.pop.b = s.made;
    s.pop.fb = fit.slice(0, static_cast<std::int64_t>(i) * e, static_cast<std::int64_t>(i + 1) * e);
    s.made = at::Tensor();
    s.out.evaluations += e * n;
  }
}

// Every `interval` generations, along the topology's edges: each example's best `migrants` of the
// source replace the destination's worst (emigrants taken before anyone receives).
void ExampleUnit::migrate() {
  const auto& m = config_.migration;
  if (m.interval <= 0 || islands_.size() < 2 || generation_ % m.interval != 0) return;
  const auto edges = migration_edges(m, config_.islands,
                                     derive_seed(config_.seed, Stream::migration,
                                                 {static_cast<std::uint64_t>(input_.batch), static_cast<std::uint64_t>(layer_)}),
                                     generation_);
  const auto k = std::min<std::int64_t>(m.migrants, config_.parents);
  std::vector<std::pair<at::Tensor, at::Tensor>> out;  // per island: genomes [E, k, ...], fitness [E, k]
  for (const auto& s : islands_) {
    auto top = s.pop.fitness().topk(k, 1);
    out.emplace_back(s.pop.rows(std::get<1>(top)), std::get<0>(top));
  }
  auto where = [&](std::int64_t island) {
    for (std::size_t i = 0; i < islands_.size(); ++i)
      if (islands_[i].out.island == island) return static_cast<std::int64_t>(i);
    return std::int64_t{-1};
  };
  for (const auto& [src, dst] : edges) {
    const auto a = where(src), b = where(dst);
    if (a < 0 || b < 0) fail("example search: migration edge ", src, "->", dst, " leaves the unit's islands");
    auto& d = islands_[static_cast<std::size_t>(b)];
    auto worst = std::get<1>(d.pop.fitness().topk(k, 1, /*largest=*/false));
    d.pop.put(worst, out[static_cast<std::size_t>(a)].first, out[static_cast<std::size_t>(a)].second);
  }
}

void ExampleUnit::fix_layer() {
  const auto l = static_cast<std::size_t>(layer_);
  for (auto& s : islands_) {
    auto fit = s.pop.fitness();
    auto best = fit.argmax(1, /*keepdim=*/true);
    auto fixed = s.pop.rows(best).squeeze(1);
    s.ce[l] = -fit.gather(1, best).squeeze(1);
    s.out.targets[l] = fixed;
    s.out.history[l] = at::stack(s.hist).to(at::kCPU, at::kDouble);
    s.hist.clear();
    s.input = fixed;
    s.pop = Population{};
  }
}

void ExampleUnit::step() {
  if (done()) fail("example search: step() on a finished unit (batch ", input_.batch, ")");
  const auto t0 = Clock::now();
  timed_ = !net_.device().is_cuda() || tick_ % 16 == 0;
  if (generation_ < 0) {
    for (auto& s : islands_) init_population(s);
    generation_ = 0;
  } else {
    generation_step();
    ++generation_;
    migrate();
  }
  for (auto& s : islands_) s.hist.push_back(-s.pop.fitness().amax(1).mean());
  if (generation_ == config_.schedule[static_cast<std::size_t>(layer_)].generations) {
    fix_layer();
    ++layer_;
    generation_ = -1;
    advance_unsearched();
  }
  ++tick_;
  if (timed_) seconds_ += since(t0);
}

std::vector<IslandUnit> ExampleUnit::results() const {
  if (!done()) fail("example search: results() of an unfinished unit (batch ", input_.batch, ")");
  std::vector<IslandUnit> out;
  for (const auto& s : islands_) {
    IslandUnit u = s.out;
    for (auto& t : u.targets) t = t.to(at::kCPU, at::kFloat).contiguous();
    std::vector<at::Tensor> ce(s.ce.begin(), s.ce.end());
    u.ce = at::stack(ce, 1).to(at::kCPU, at::kDouble);
    for (std::size_t l = 0; l < u.history.size(); ++l)
      if (!u.history[l].defined()) u.history[l] = at::empty({0}, at::TensorOptions().dtype(at::kDouble));
    const double share = 1.0 / static_cast<double>(islands_.size());  // the unit's time, split evenly
    u.seconds = seconds_ * share;
    u.forward_seconds = forward_seconds_ * share;
    u.operator_seconds = operator_seconds_ * share;
    out.push_back(std::move(u));
  }
  return out;
}

MemoryPlan plan_example_memory(const FrozenNet& net, const ExampleSearchConfig& c, std::int64_t example_batch,
                               std::int64_t islands_per_unit, double data_bytes) {
  double largest = 0, widest = 0;  // a candidate at the largest searched layer; the widest activation
  for (std::int64_t l = -1; l < FrozenNet::kLayers; ++l) {
    const auto shape = l < 0 ? net.input_shape_of(0) : net.layer_shape(l);
    double n = 1;
    for (auto d : shape) n *= static_cast<double>(d);
    widest = std::max(widest, n);
    if (l >= 0 && c.searched(l)) largest = std::max(largest, n);
  }
  const double candidates = static_cast<double>(example_batch * islands_per_unit), f = 4.0;
  const double pop = candidates * static_cast<double>(c.population()) * largest * f;
  const double made = candidates * static_cast<double>(c.exploratory + c.refinement) * largest * f;
  MemoryPlan plan;
  const std::string lower = "example-batch (or islands that migrate: migration-interval 0 searches them one at a time)";
  plan.items.push_back({"populations (survivors and children, at the largest searched layer)", pop, lower});
  plan.items.push_back({"operators' temporaries (noise, breeding pool, parents' copies)", 2.0 * made, lower});
  plan.items.push_back({"initial population's noisy inputs", candidates * static_cast<double>(c.population()) * widest * f, lower});
  plan.items.push_back({"forward activations (one call of eval-chunk candidates)", 6.0 * static_cast<double>(c.eval_chunk) * widest * f,
                        "eval-chunk"});
  double params = 0;
  for (const auto* list : {&net.parameters().conv1, &net.parameters().conv2})
    for (const auto& t : *list) params += static_cast<double>(t.numel()) * f;
  plan.items.push_back({"frozen network", params + static_cast<double>(net.parameters().head.numel()) * f, "net-width"});
  plan.items.push_back({"data set and searched images", data_bytes, "search-size"});
  plan.items.push_back({"LibTorch, MPI and the process", 0.35 * 1073741824.0, ""});
  return plan;
}

}  // namespace repsearch
