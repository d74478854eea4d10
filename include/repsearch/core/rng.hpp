// Counter-based seeding: every random stream is derived from (config seed, purpose, island,
// generation, ...), never from a rank or from a long-lived generator. A checkpoint therefore needs
// no generator state, and a run gives the same result on any number of ranks.
#pragma once
#include <ATen/core/Generator.h>
#include <cstdint>
#include <initializer_list>

namespace repsearch {

enum class Stream : std::uint64_t {
  splits = 1,
  fitness_features = 2,
  init = 3,
  minibatch = 4,
  variation = 5,
  migration = 6,
  operators = 7,
  diversity = 8,
  learner = 9,
  network = 10,   // the frozen network's weights (example space)
  example = 11,   // the example space's operators: (batch, island, layer, generation)
};

std::uint64_t splitmix64(std::uint64_t x);
std::uint64_t derive_seed(std::uint64_t seed, Stream stream, std::initializer_list<std::uint64_t> keys = {});
// A CPU generator: random numbers are drawn on the CPU and moved to the device, so CPU and CUDA
// runs draw the same numbers.
at::Generator make_generator(std::uint64_t seed, Stream stream, std::initializer_list<std::uint64_t> keys = {});
// A generator on `device` for draws that stay there (no host round trip): a CPU generator, or the
// device's default CUDA generator re-seeded (host-side state only). The CUDA one is shared: use it
// before making the next.
at::Generator device_generator(const at::Device& device, std::uint64_t seed, Stream stream,
                               std::initializer_list<std::uint64_t> keys = {});

}  // namespace repsearch
