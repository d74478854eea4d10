// The micro-measurements behind the issue-6 changes (bench/RESULTS.md sections 1-2): each pair times
// two ways of one step, alternately in one process (the labels say which one repsearch uses), at the default sizes
// (P = 32, n_s = 3000, d = 64, C = 10), one thread; medians of 21 repetitions.
// Not part of the build (it also links the reference BLAS for ssyrk, which a CUDA LibTorch lacks):
//   c++ -O3 -std=c++17 -Iinclude bench/core/micro_kernels.cpp build/src/core/librepsearch_core.a \
//       -ltorch_cpu -lc10 -lblas -o build/micro_kernels && OPENBLAS_NUM_THREADS=1 build/micro_kernels
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <functional>
#include <vector>

#include "repsearch/core/linalg.hpp"
#include "repsearch/core/operators.hpp"
#include "repsearch/core/rng.hpp"

extern "C" void ssyrk_(const char* uplo, const char* trans, const int* n, const int* k, const float* alpha,
                       const float* a, const int* lda, const float* beta, float* c, const int* ldc);

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Alternates a and b `reps` times; prints both medians in ms.
void pair(const char* what, const char* name_a, const std::function<void()>& a, const char* name_b,
          const std::function<void()>& b, int reps = 21) {
  std::vector<double> ta, tb;
  a();
  b();
  for (int r = 0; r < reps; ++r) {
    double t0 = now();
    a();
    ta.push_back(now() - t0);
    t0 = now();
    b();
    tb.push_back(now() - t0);
  }
  std::sort(ta.begin(), ta.end());
  std::sort(tb.begin(), tb.end());
  std::printf("| %s | %s %.2f ms | %s %.2f ms |\n", what, name_a, 1e3 * ta[reps / 2], name_b, 1e3 * tb[reps / 2]);
}
}  // namespace

int main() {
  at::set_num_threads(1);
  const std::int64_t P = 32, n = 3000, d = 64, C = 10;
  auto pop = at::randn({P, n, d});
  auto labels = at::randint(C, {n}, at::TensorOptions().dtype(at::kLong));
  auto w = at::randn({P, d, C});
  std::printf("| operation (default sizes) | one way | the other |\n|---|---|---|\n");

  pair("per-class sums of a population", "index_add_ (before)",
       [&] { at::zeros({P, C, d}).index_add_(1, labels, pop); }, "class_sums (used)",
       [&] { repsearch::class_sums(pop, labels, C); });

  pair("Z W into the smoother's [n, P*C] operand", "bmm + permuted copy (used)",
       [&] { at::bmm(pop, w).permute({1, 0, 2}).reshape({n, P * C}); }, "mm_out per individual into the operand (tried, not adopted)",
       [&] {
         auto zw = at::empty({n, P, C}).permute({1, 0, 2});
         for (std::int64_t p = P - 1; p >= 0; --p) {
           auto out = zw.select(0, p);
           at::mm_out(out, pop.select(0, p), w.select(0, p));
         }
       });

  pair("Gram + class sums", "bmm, then class_sums of all (tried)",
       [&] {
         at::bmm(pop.transpose(1, 2), pop);
         repsearch::class_sums(pop, labels, C);
       },
       "per individual: mm, then its class sums (used)",
       [&] {
         auto g = at::empty({P, d, d});
         auto sums = at::empty({P, C, d});
         for (std::int64_t p = 0; p < P; ++p) {
           auto z = pop.select(0, p);
           auto gp = g.select(0, p);
           at::mm_out(gp, z.t(), z);
           sums.select(0, p).copy_(repsearch::class_sums(z.unsqueeze(0), labels, C).squeeze(0));
         }
       });

  auto gram = at::empty({P, d, d});
  pair("Gram matrices Z^T Z", "mm per individual (used)",
       [&] {
         for (std::int64_t p = 0; p < P; ++p) {
           auto z = pop.select(0, p);
           auto g = gram.select(0, p);
           at::mm_out(g, z.t(), z);
         }
       },
       "ssyrk per individual (not adopted)",
       [&] {
         const int N = static_cast<int>(d), K = static_cast<int>(n), lda = N, ldc = N;
         const float one = 1, zero = 0;
         for (std::int64_t p = 0; p < P; ++p)  // row-major Z = column-major Z^T: C = A A^T, trans 'N'
           ssyrk_("U", "N", &N, &K, &one, pop.data_ptr<float>() + p * n * d, &lda, &zero,
                  gram.data_ptr<float>() + p * d * d, &ldc);
       });

  pair("column spread of a population", "sum + pow + sum (before)",
       [&] {
         auto mean = pop.sum(1, true) / static_cast<double>(n);
         (pop.pow(2).sum(1, true) / static_cast<double>(n) - mean.pow(2)).clamp_min(1e-12).sqrt();
       },
       "column_std, one pass (used)", [&] { repsearch::ops::column_std(pop); });

  auto idx = at::randint(P, {P}, at::TensorOptions().dtype(at::kLong));
  pair("copy 32 tournament winners", "index_select (used)", [&] { pop.index_select(0, idx); }, "advanced indexing (tried)",
       [&] { pop.index({idx}); });

  auto gen = repsearch::make_generator(1, repsearch::Stream::variation);
  auto flat = pop.view({P * n, d});
  auto their = at::randint(P * n, {24000}, gen, at::TensorOptions().dtype(at::kLong));  // kNN rows of 8 individuals
  pair("gather 24000 rows of 64 floats", "index_select (used)", [&] { flat.index_select(0, their); },
       "memcpy per row (tried, not adopted)", [&] {
         auto out = at::empty({their.numel(), d});
         const auto* ix = their.data_ptr<std::int64_t>();
         const float* from = flat.data_ptr<float>();
         float* to = out.data_ptr<float>();
         for (std::int64_t m = 0; m < their.numel(); ++m) std::memcpy(to + m * d, from + ix[m] * d, d * sizeof(float));
       });
  return 0;
}
