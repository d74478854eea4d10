// Synthetic classification data for the core and mpi suites: labels from a linear rule on the
// inputs, so a label-like representation is learnable and must score well.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

#include "repsearch/core/fitness.hpp"
#include "repsearch/core/rng.hpp"

namespace testing {

struct Synthetic {
  repsearch::FitnessData data;
  Synthetic(std::int64_t n_s, std::int64_t n_v, std::int64_t n_h, std::int64_t dim, std::int64_t classes,
            std::uint64_t seed) {
    const auto f32 = at::TensorOptions().dtype(at::kFloat);
    auto g = repsearch::make_generator(seed, repsearch::Stream::splits);
    auto rule = at::randn({dim, classes}, g, f32);
    auto make = [&](std::int64_t n, at::Tensor& x, at::Tensor& y) {
      x = at::randn({n, dim}, g, f32);
      y = at::matmul(x, rule).argmax(1);
    };
    make(n_s, data.x_search, data.y_search);
    make(n_v, data.x_val, data.y_val);
    make(n_h, data.x_heldout, data.y_heldout);
    data.n_classes = classes;
  }
};

}  // namespace testing
