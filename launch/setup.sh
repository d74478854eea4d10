#!/usr/bin/env bash
# Install the Debian packages repsearch needs (only those missing), make sure LibTorch uses OpenBLAS,
# then configure and build repsearch (CMake + Ninja, Release). Safe to run again: a second run only
# checks the packages and rebuilds what changed.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build git pkg-config
  libtorch-dev libopenblas0-pthread
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  libboost-program-options-dev doctest-dev nlohmann-json3-dev libssl-dev zlib1g-dev
  dataset-fashion-mnist
  iproute2 util-linux  # tests/multihost: ip netns, nsenter, unshare
  slurmctld slurmd slurm-client munge  # tests/slurm/harness.sh: a private Slurm (it installs nothing itself)
  python3 python3-h5py python3-matplotlib python3-numpy
  python3-torch  # analysis/repsearch_h5.py load_network only; the C++ build uses libtorch-dev
)

usage() {
  cat <<'EOF'
Usage: launch/setup.sh [--no-build] [--help]

Sets up repsearch on Debian 12:
  1. installs the Debian packages that are missing (apt-get, non-interactive; needs root, or sudo);
  2. checks that the system BLAS/LAPACK is OpenBLAS (pthread) and selects it if not: LibTorch on
     Debian otherwise multiplies matrices with reference BLAS, about 35-40x slower;
  3. configures and builds repsearch with CMake + Ninja in Release mode, with -j$(nproc).

Options:
  --no-build   install and check packages only; do not configure or build
  -h, --help   show this help

Environment:
  REPSEARCH_BUILD_DIR   build directory (default: build, relative to the repository root)
  CMAKE_PREFIX_PATH     honoured as is: point it at your own LibTorch (e.g. a CUDA one) to build
                        against it instead of Debian's libtorch-dev (use a fresh build directory:
                        an existing one keeps the LibTorch it was configured with)
EOF
}

log() { echo "[setup] $*"; }
die() {
  echo "[setup] error: $*" >&2
  exit 1
}

build=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-build) build=0 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script supports Debian 12 (bookworm) only"

# Run a command as root: directly when root, through sudo when available, else fail clearly.
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run '$*': run this script as root, or install and configure sudo"
  fi
}

installed() {
  local status
  status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" || return 1
  [[ "$status" == *" ok installed" ]]
}

# ---- 1. packages -------------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  log "all ${#PACKAGES[@]} packages present"
else
  log "missing ${#missing[@]} of ${#PACKAGES[@]} packages: ${missing[*]}"
  log "running apt-get update"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update
  log "installing: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  still=()
  for p in "${missing[@]}"; do
    installed "$p" || still+=("$p")
  done
  [[ ${#still[@]} -eq 0 ]] || die "still missing after apt-get install: ${still[*]}"
  log "all ${#PACKAGES[@]} packages present"
fi

# ---- 2. BLAS / LAPACK: OpenBLAS (pthread), not the reference implementation ---------------------
multiarch="$(gcc -print-multiarch 2>/dev/null || true)"
[[ -n "$multiarch" ]] || multiarch="$(uname -m)-linux-gnu"
for lib in libblas.so.3 liblapack.so.3; do
  name="${lib}-${multiarch}"
  want="/usr/lib/${multiarch}/openblas-pthread/${lib}"
  current="$(update-alternatives --query "$name" 2>/dev/null | sed -n 's/^Value: //p')"
  if [[ "$current" != *openblas* ]]; then
    [[ -e "$want" ]] || die "$want not found (is libopenblas0-pthread installed?)"
    log "${lib} is '${current:-unset}', not OpenBLAS: selecting $want"
    as_root update-alternatives --set "$name" "$want"
    current="$(update-alternatives --query "$name" 2>/dev/null | sed -n 's/^Value: //p')"
    [[ "$current" == *openblas* ]] || die "could not select OpenBLAS for $lib (now '$current')"
  fi
  log "${lib} in use: $current"
done

[[ $build -eq 1 ]] || {
  log "--no-build: not building"
  exit 0
}

# ---- 3. configure and build ---------------------------------------------------------------------
build_dir="${REPSEARCH_BUILD_DIR:-build}"
cmake_args=(-S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release)
# Ninja for a new build directory; an existing one keeps the generator it was configured with.
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake_args+=(-G Ninja)
fi
if [[ -n "${CMAKE_PREFIX_PATH:-}" ]]; then
  log "using CMAKE_PREFIX_PATH=$CMAKE_PREFIX_PATH"
  cmake_args+=("-DCMAKE_PREFIX_PATH=$CMAKE_PREFIX_PATH")
fi
jobs="$(nproc)"
log "configuring: cmake ${cmake_args[*]}"
cmake "${cmake_args[@]}"
log "building: cmake --build $build_dir -j$jobs"
cmake --build "$build_dir" -j"$jobs"
log "built $build_dir/repsearch"
