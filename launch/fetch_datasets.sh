#!/usr/bin/env bash
# Download MNIST, CIFAR-10 and CIFAR-100 in their original binary formats, verify their MD5
# checksums, unpack them and print the --data-dir to pass to repsearch.
# Needs internet access. Fashion-MNIST comes from the Debian package dataset-fashion-mnist.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: launch/fetch_datasets.sh [--dir DIR] [DATASET...]

Downloads image classification data sets in their original binary formats, verifies their MD5
checksums, unpacks them under DIR and prints the --data-dir to pass to repsearch for each.

DATASET is any of:
  mnist     4 IDX .gz files from https://ossci-datasets.s3.amazonaws.com/mnist/   -> DIR/mnist
            (kept compressed: repsearch reads .gz IDX files directly)
  cifar10   https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz   -> DIR/cifar-10-batches-bin
  cifar100  https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz  -> DIR/cifar-100-binary
Default: all three.

Options:
  -d, --dir DIR   target directory (default: ./data; repsearch's defaults for cifar10/cifar100
                  are data/cifar-10-batches-bin and data/cifar-100-binary relative to the
                  current directory, so running this from the directory you run repsearch in
                  with the default DIR needs no --data-dir for them)
  -h, --help      show this help

This script needs internet access (curl or wget). It cannot run on machines without it, such as
the development machines: run it on a machine that has access and copy DIR over.
Files already present with the right checksum are not downloaded again.

Fashion-MNIST is not fetched here: it comes from the Debian package dataset-fashion-mnist
(apt install dataset-fashion-mnist), installed in /usr/share/datasets/fashion-mnist, which is
repsearch's default directory for it.
EOF
}

die() {
  echo "fetch_datasets.sh: error: $*" >&2
  exit 1
}

dir=data
datasets=()
while (($#)); do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    -d | --dir)
      (($# >= 2)) || die "$1 needs a directory argument"
      dir=$2
      shift 2
      ;;
    --dir=*)
      dir=${1#--dir=}
      shift
      ;;
    mnist | cifar10 | cifar100)
      datasets+=("$1")
      shift
      ;;
    fashion-mnist)
      die "fashion-mnist is not downloaded by this script; install the Debian package dataset-fashion-mnist"
      ;;
    *)
      die "unknown argument '$1' (expected mnist, cifar10, cifar100, --dir DIR or --help)"
      ;;
  esac
done
((${#datasets[@]})) || datasets=(mnist cifar10 cifar100)
[[ -n "$dir" ]] || die "--dir must not be empty"

command -v md5sum >/dev/null || die "md5sum not found (coreutils)"
if command -v curl >/dev/null; then
  fetch() { curl --fail --location --retry 3 --show-error --output "$2" "$1"; }
elif command -v wget >/dev/null; then
  fetch() { wget --tries=3 --output-document="$2" "$1"; }
else
  die "neither curl nor wget found"
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# md5_ok FILE MD5: whether FILE exists and has checksum MD5.
md5_ok() {
  [[ -f "$1" ]] && [[ "$(md5sum "$1" | cut -d' ' -f1)" == "$2" ]]
}

# download URL FILE MD5: FILE with the right checksum, downloading it if needed.
download() {
  local url=$1 out=$2 md5=$3
  if md5_ok "$out" "$md5"; then
    echo "have $out (md5 ok)"
    return
  fi
  echo "downloading $url"
  rm -f "$out.part"
  fetch "$url" "$out.part" || die "download of $url failed (this script needs internet access)"
  local got
  got=$(md5sum "$out.part" | cut -d' ' -f1)
  if [[ "$got" != "$md5" ]]; then
    rm -f "$out.part"
    die "$url: expected md5 $md5, found $got (corrupt or changed download; removed)"
  fi
  mv "$out.part" "$out"
  echo "  md5 ok: $md5"
}

# check_size FILE BYTES: the unpacked file exists with the size its record format implies.
check_size() {
  [[ -f "$1" ]] || die "expected $1 after unpacking, found no such file"
  local size
  size=$(stat -c %s "$1")
  [[ "$size" == "$2" ]] || die "$1: expected $2 bytes, found $size"
}

printed=()

fetch_mnist() {
  local base=https://ossci-datasets.s3.amazonaws.com/mnist
  local out=$dir/mnist
  mkdir -p "$out"
  download "$base/train-images-idx3-ubyte.gz" "$out/train-images-idx3-ubyte.gz" f68b3c2dcbeaaa9fbdd348bbdeb94873
  download "$base/train-labels-idx1-ubyte.gz" "$out/train-labels-idx1-ubyte.gz" d53e105ee54ea40749a09fcbcd1e9432
  download "$base/t10k-images-idx3-ubyte.gz" "$out/t10k-images-idx3-ubyte.gz" 9fb629c4189551a2d022fa330f9573f3
  download "$base/t10k-labels-idx1-ubyte.gz" "$out/t10k-labels-idx1-ubyte.gz" ec29112dd5afa0611ce80d1b7f02629c
  printed+=("mnist:    --data-dir $out")
}

fetch_cifar10() {
  local tgz=$dir/cifar-10-binary.tar.gz out=$dir/cifar-10-batches-bin
  download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz "$tgz" c32a1d4ab5d03f1284b67883e8d87530
  echo "unpacking $tgz"
  tar -xzf "$tgz" -C "$dir"
  local i
  for i in 1 2 3 4 5; do check_size "$out/data_batch_$i.bin" $((10000 * 3073)); done
  check_size "$out/test_batch.bin" $((10000 * 3073))
  printed+=("cifar10:  --data-dir $out")
}

fetch_cifar100() {
  local tgz=$dir/cifar-100-binary.tar.gz out=$dir/cifar-100-binary
  download https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz "$tgz" 03b5dce01913d631647c71ecec9e9cb8
  echo "unpacking $tgz"
  tar -xzf "$tgz" -C "$dir"
  check_size "$out/train.bin" $((50000 * 3074))
  check_size "$out/test.bin" $((10000 * 3074))
  printed+=("cifar100: --data-dir $out")
}

for d in "${datasets[@]}"; do
  "fetch_$d"
done

echo
echo "Done. Pass to repsearch:"
for line in "${printed[@]}"; do
  echo "  $line"
done
