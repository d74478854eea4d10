#include "repsearch/core/example_search.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>

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
  auto flat = x.flatten(x.dim() - 3);
  auto mean = flat.mean(-1, /*keepdim=*/true);
  auto var = (flat - mean).square().mean(-1, /*keepdim=*/true);
  return ((flat - mean) * (var + eps).rsqrt()).view(x.sizes());
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
  at::Tensor pop, fit;              // [E, P, ...], [E, P] float32 (-cross-entropy)
  at::Tensor parents, parent_fit, made;  // a generation's survivors and its children, between operators and scoring
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
  for (auto i : input_.islands) {
    Island s;
    s.out.batch = input_.batch;
    s.out.island = i;
    s.out.initial_ce = own;
    s.input = stem;
    islands_.push_back(std::move(s));
  }
  advance_unsearched();
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
    auto v = s.fit.defined() ? -s.fit.amax(1).mean() : s.ce[static_cast<std::size_t>(std::max<std::int64_t>(layer_ - 1, 0))].mean();
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
  auto cand = chunked(noisy.flatten(0, 1), config_.eval_chunk, [&](const at::Tensor& c) { return net_.layer(layer_, c); })
                  .contiguous();
  cand = layer_ < 3 ? normalise_candidates(cand, config_.normalise_eps) : cand - cand.mean(-1, /*keepdim=*/true);
  s.pop = cand.view(cat_shape({e, p}, cand.sizes().slice(1)));
  operator_seconds_ += since(t0);
  s.fit = score(s.pop, e);
  s.out.evaluations += e * p;
}

at::Tensor breed(const at::Tensor& pool, const at::Tensor& sigma, std::int64_t n, double strength,
                 std::int64_t blur_passes, double normalise_eps, at::Generator& gen) {
  const auto e = pool.size(0), m = pool.size(1);
  auto idx = at::randint(m, {e, 2 * n}, gen, at::TensorOptions().dtype(at::kLong).device(pool.device()));
  auto a = idx.slice(1, 0, n), b = idx.slice(1, n, 2 * n);
  auto child = rows_of(pool, a).add_(rows_of(pool, b)).mul_(0.5);                   // crossover: the mean of two parents
  auto sd = rows_of(sigma, a).add_(rows_of(sigma, b)).mul_(0.5 * strength);          // [E, n, C] or [E, n]
  auto noise = at::randn(child.sizes(), gen, child.options());
  if (pool.dim() == 5) {
    child.add_(noise.mul_(sd.unsqueeze(-1).unsqueeze(-1)));
    child = blur(child, blur_passes);
    return normalise_eps > 0 ? normalise_candidates(child, normalise_eps) : child;
  }
  child.add_(noise.mul_(sd.unsqueeze(-1)));
  return child.sub_(child.mean(-1, /*keepdim=*/true));
}

void ExampleUnit::generation_step() {
  const auto t0 = Clock::now();
  const auto& sch = config_.schedule[static_cast<std::size_t>(layer_)];
  const bool conv = layer_ < 3;
  for (auto& s : islands_) {
    auto gen = device_generator(net_.device(), config_.seed, Stream::example,
                                {static_cast<std::uint64_t>(input_.batch), static_cast<std::uint64_t>(s.out.island),
                                 static_cast<std::uint64_t>(layer_), static_cast<std::uint64_t>(generation_ + 1)});
    auto top = s.fit.topk(config_.parents, 1);  // elitism: the k best, best first (never re-scored)
    s.parent_fit = std::get<0>(top);
    s.parents = rows_of(s.pop, std::get<1>(top));
    auto sig = spread(s.parents, conv);
    const auto eps = config_.normalise_eps;
    auto explorers = config_.exploratory > 0
                         ? breed(s.parents, sig, config_.exploratory, sch.alpha * sch.boost, sch.blur, eps, gen)
                         : s.parents.slice(1, 0, 0);
    auto pool = at::cat({s.parents, explorers}, 1);
    auto refiners = config_.refinement > 0
                        ? breed(pool, at::cat({sig, spread(explorers, conv)}, 1), config_.refinement, sch.alpha, sch.blur, eps, gen)
                        : s.parents.slice(1, 0, 0);
    s.made = at::cat({explorers, refiners}, 1);
    s.pop = at::Tensor();
  }
  if (timed_ && islands_.front().made.is_cuda()) islands_.front().made.sum().item<float>();
  operator_seconds_ += since(t0);
  std::vector<at::Tensor> made;
  for (auto& s : islands_) made.push_back(s.made);
  const auto e = input_.labels.size(0), n = islands_.front().made.size(1);
  auto fit = score(made.size() == 1 ? made[0] : at::cat(made), e * static_cast<std::int64_t>(islands_.size()));
  for (std::size_t i = 0; i < islands_.size(); ++i) {
    auto& s = islands_[i];
    s.pop = at::cat({s.parents, s.made}, 1);
    s.fit = at::cat({s.parent_fit, fit.slice(0, static_cast<std::int64_t>(i) * e, static_cast<std::int64_t>(i + 1) * e)}, 1);
    s.parents = s.parent_fit = s.made = at::Tensor();
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
    auto top = s.fit.topk(k, 1);
    out.emplace_back(rows_of(s.pop, std::get<1>(top)), std::get<0>(top));
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
    auto worst = std::get<1>(d.fit.topk(k, 1, /*largest=*/false));
    auto base = at::arange(d.fit.size(0), worst.options()).mul_(d.fit.size(1)).unsqueeze(1);
    auto flat = (worst + base).flatten();
    d.pop.flatten(0, 1).index_copy_(0, flat, out[static_cast<std::size_t>(a)].first.flatten(0, 1));
    d.fit.flatten().index_copy_(0, flat, out[static_cast<std::size_t>(a)].second.flatten());
  }
}

void ExampleUnit::fix_layer() {
  const auto l = static_cast<std::size_t>(layer_);
  for (auto& s : islands_) {
    auto best = s.fit.argmax(1, /*keepdim=*/true);
    auto fixed = rows_of(s.pop, best).squeeze(1);
    s.ce[l] = -s.fit.gather(1, best).squeeze(1);
    s.out.targets[l] = fixed;
    s.out.history[l] = at::stack(s.hist).to(at::kCPU, at::kDouble);
    s.hist.clear();
    s.input = fixed;
    s.pop = s.fit = at::Tensor();
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
  for (auto& s : islands_) s.hist.push_back(-s.fit.amax(1).mean());
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

}  // namespace repsearch
