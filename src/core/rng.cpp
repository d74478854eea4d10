#include "repsearch/core/rng.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <mutex>

namespace repsearch {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::uint64_t derive_seed(std::uint64_t seed, Stream stream, std::initializer_list<std::uint64_t> keys) {
  std::uint64_t h = splitmix64(seed ^ splitmix64(static_cast<std::uint64_t>(stream)));
  for (auto k : keys) h = splitmix64(h ^ splitmix64(k + 0x632be59bd9b4e019ULL));
  return h;
}

at::Generator make_generator(std::uint64_t seed, Stream stream, std::initializer_list<std::uint64_t> keys) {
  return at::detail::createCPUGenerator(derive_seed(seed, stream, keys));
}

at::Generator device_generator(const at::Device& device, std::uint64_t seed, Stream stream,
                               std::initializer_list<std::uint64_t> keys) {
  if (!device.is_cuda()) return make_generator(seed, stream, keys);
  auto gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(derive_seed(seed, stream, keys));  // Philox: seed set, offset back to 0
  return gen;
}

}  // namespace repsearch
