// Fitness plug-ins: a population [P, n_s, d] in, a score [P] (higher is better) out.
//
// A plug-in is a plain struct (pagmo's `problem` idiom) with
//   at::Tensor score(const at::Tensor& population, const at::Tensor& val_rows) const;
//       // [P] float64 on CPU; val_rows: int64 indices into the validation pool V (this generation's
//       // minibatch)
//   at::Tensor heldout(const at::Tensor& population) const;  // [P] float64, on the held-out split H
//   std::string name() const;
//   std::string parameters() const;  // "key=value ..." recorded in the archive
// and optionally
//   std::pair<at::Tensor, at::Tensor> score_predict(const at::Tensor& population, const at::Tensor& val_rows) const;
//       // the score and, on the same rows, the readout's predicted classes [P, b] int64 (the
//       // functional diversity and the `disagreement` distance of selection=dns need it)
// wrapped by `Fitness f{MyFitness{...}}`. To add one, write the struct in fitness.cpp and add a line
// to its registry (make_fitness); nothing else changes.
#pragma once
#include <ATen/ATen.h>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace repsearch {

// The split data a fitness sees, already standardised and flattened to [n, D], on the search device.
struct FitnessData {
  at::Tensor x_search, y_search;    // S: [n_s, D] float32, [n_s] int64
  at::Tensor x_val, y_val;          // V pool
  at::Tensor x_heldout, y_heldout;  // H
  std::int64_t n_classes = 10;
};

struct FitnessConfig {
  std::string name = "ridge-probe";  // ridge-probe | ridge-probe-learnable
  std::int64_t features = 2048;      // p random ReLU features of the input
  double lambda = 0.1;               // kernel ridge, relative to tr(phi^T phi)/p
  double readout_ridge = 1e-3;       // ridge of the Z -> labels readout, relative to tr(Z^T Z)/d
  double beta = 10.0;                // logit scale (inverse temperature): softmax(beta * logits)
  double learnable_weight = 0.1;     // ridge-probe-learnable: weight of the LOO R^2 term
  std::uint64_t seed = 0;            // draws the random features
  std::int64_t setup_rows = 0;       // rows of S per set-up block (0: as many as fit in 128 MiB); tests
};

class Fitness {
 public:
  template <class T, class = std::enable_if_t<!std::is_same_v<std::decay_t<T>, Fitness>>>
  Fitness(T impl) : self_(std::make_shared<Model<T>>(std::move(impl))) {}  // NOLINT: wrap by value

  // Non-finite scores become -inf (never propagate); `nonfinite` counts them when given.
  at::Tensor score(const at::Tensor& population, const at::Tensor& val_rows, std::int64_t* nonfinite = nullptr) const;
  // With `predictions`: also the readout's predicted classes [P, b] int64 CPU (needs score_predict).
  at::Tensor score(const at::Tensor& population, const at::Tensor& val_rows, std::int64_t* nonfinite,
                   at::Tensor* predictions) const;
  at::Tensor heldout(const at::Tensor& population, std::int64_t* nonfinite = nullptr) const;
  bool can_predict() const { return self_->can_predict(); }
  // Predicted classes [P, b] int64 CPU on `val_rows`; Error naming the plug-in when it cannot predict.
  at::Tensor predict(const at::Tensor& population, const at::Tensor& val_rows) const;
  std::string name() const { return self_->name(); }
  std::string parameters() const { return self_->parameters(); }

 private:
  struct Concept {
    virtual ~Concept() = default;
    virtual at::Tensor score(const at::Tensor&, const at::Tensor&) const = 0;
    virtual at::Tensor heldout(const at::Tensor&) const = 0;
    virtual std::pair<at::Tensor, at::Tensor> score_predict(const at::Tensor&, const at::Tensor&) const = 0;
    virtual bool can_predict() const = 0;
    virtual std::string name() const = 0;
    virtual std::string parameters() const = 0;
  };
  template <class T, class = void>
  struct HasScorePredict : std::false_type {};
  template <class T>
  struct HasScorePredict<T, std::void_t<decltype(std::declval<const T&>().score_predict(std::declval<const at::Tensor&>(),
                                                                                        std::declval<const at::Tensor&>()))>>
      : std::true_type {};
  [[noreturn]] static void no_predictions(const std::string& name);
  template <class T>
  struct Model final : Concept {
    explicit Model(T v) : impl(std::move(v)) {}
    at::Tensor score(const at::Tensor& p, const at::Tensor& r) const override { return impl.score(p, r); }
    at::Tensor heldout(const at::Tensor& p) const override { return impl.heldout(p); }
    std::pair<at::Tensor, at::Tensor> score_predict(const at::Tensor& p, const at::Tensor& r) const override {
      if constexpr (HasScorePredict<T>::value) return impl.score_predict(p, r);
      else no_predictions(impl.name());
    }
    bool can_predict() const override { return HasScorePredict<T>::value; }
    std::string name() const override { return impl.name(); }
    std::string parameters() const override { return impl.parameters(); }
    T impl;
  };
  std::shared_ptr<const Concept> self_;
};

std::vector<std::string> fitness_names();
// Unknown name -> Error listing the known ones.
Fitness make_fitness(const FitnessConfig& config, const FitnessData& data);

// Random ReLU features phi(x) = [relu(x W + b) / sqrt(p), 1] with W ~ N(0, 1/D), b ~ N(0, 1): the
// input-side view used by ridge-probe and by the column-move operator. Returns [n, p + 1].
struct RandomFeatures {
  at::Tensor w, b;
  at::Tensor operator()(const at::Tensor& x) const;
};
RandomFeatures make_random_features(std::int64_t input_dim, std::int64_t p, std::uint64_t seed,
                                    const at::Device& device);

// A representation Z [n, d] of inputs X_S [n, D] carried to other inputs X_Q [m, D] by the fitness's
// own kernel-ridge smoother (the same random features, seed and lambda as ridge-probe):
// phi_Q (G + lambda I)^-1 phi_S^T Z, in row blocks. [m, d] float32.
at::Tensor smoother_extend(const FitnessConfig& config, const at::Tensor& x_search, const at::Tensor& z,
                           const at::Tensor& x_query);

namespace detail {
// Exposed for tests: the ridge readout of each individual, Z [P,n,d] -> (Z W [P,n,C], b [P,C]) such
// that the readout of a representation row z is z W + b; `ok` [P] bool is false where the solve failed.
struct Readout {
  at::Tensor zw, bias, ok;
};
// Ridge weights W [P, d, C] (float64) and bias [P, C] with an unpenalised intercept, and `ok` [P].
struct RidgeWeights {
  at::Tensor w, bias, ok;
};
RidgeWeights ridge_weights(const at::Tensor& population, const at::Tensor& labels, std::int64_t n_classes,
                           double ridge);
Readout ridge_readout(const at::Tensor& population, const at::Tensor& labels, std::int64_t n_classes,
                      double ridge);
// -mean cross-entropy of softmax(beta * logits) [P, b, C] against labels [b].
at::Tensor neg_cross_entropy(const at::Tensor& logits, const at::Tensor& labels, double beta);
}  // namespace detail

}  // namespace repsearch
