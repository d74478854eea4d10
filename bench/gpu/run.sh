#!/usr/bin/env bash
# The example space on a GPU: builds repsearch::core and bench_example against the LibTorch of the
# machine's PyTorch (a CUDA one) and measures candidate evaluations/s at the paper's CIFAR shapes
# (32x32x3 inputs, width 256, population 240 = 20 + 100 + 120) for each searched layer, and the
# share of a generation outside the frozen network's forward passes. Writes $OUT/gpu.txt (or ./gpu.txt).
#   bench/gpu/run.sh [--device cuda|cpu] [--examples B] [--generations G] [--chunk N]
# On a machine without CUDA, `--device cpu` runs the same script (the check that it works), with the
# system's LibTorch when PyTorch's is absent. Needs CMake, a C++17 compiler and Ninja or make.
set -euo pipefail
cd "$(dirname "$0")/../.."
device=cuda examples=8 generations=3 chunk=4096
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --examples) examples="$2"; shift 2 ;;
    --generations) generations="$2"; shift 2 ;;
    --chunk) chunk="$2"; shift 2 ;;
    -h|--help) sed -n 2,9p "$0"; exit 0 ;;
    *) echo "bench/gpu/run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
out="${OUT:-.}"
mkdir -p "$out"
prefix="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)"
build="${BUILD:-build-gpu}"
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B "$build" "${gen[@]}" -DREPSEARCH_CORE_ONLY=ON -DREPSEARCH_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
  ${prefix:+-DCMAKE_PREFIX_PATH="$prefix"} >"$out/gpu-cmake.log" 2>&1 || { tail -30 "$out/gpu-cmake.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" --target bench_example >"$out/gpu-build.log" 2>&1 || { tail -30 "$out/gpu-build.log"; exit 1; }
bench="$build/bench/core/bench_example"
{
  echo "# $(date -u +%FT%TZ) $(uname -n) device=$device; $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
  for threads in 1; do
    "$bench" --device "$device" --threads "$threads" --width 256 --size 32 --channels 3 --classes 10 \
      --examples "$examples" --generations "$generations" --chunk "$chunk"
  done
  # the reduced Fashion-MNIST shapes of configs/fashion_mnist.ini, for comparison with the CPU's numbers
  "$bench" --device "$device" --threads 1 --width 32 --size 28 --channels 1 --classes 10 --examples 50 \
    --parents 4 --exploratory 10 --refinement 10 --generations 20 --chunk "$chunk"
} 2>&1 | tee "$out/gpu.txt"
