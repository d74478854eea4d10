#!/usr/bin/env bash
# CTest fixture: the real Fashion-MNIST, uncompressed, as DST/fashion-mnist/ (the folder name that
# REPSEARCH_DATA_DIR expects). The same bytes the .gz files hold: every result is the one the
# default data gives, but the repsearch processes of the suite skip inflating 26 MB each (~0.15 s
# of CPU apiece, measured on `repsearch data`). Kept between runs; redone when a source is newer.
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 SOURCE_DIR DEST_ROOT" >&2; exit 2; }
src=$1
dst=$2/fashion-mnist
mkdir -p "$dst"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  if [[ -f "$src/$f.gz" ]]; then
    [[ -f "$dst/$f" && "$dst/$f" -nt "$src/$f.gz" ]] && continue
    gzip -dc "$src/$f.gz" >"$dst/$f.tmp-$$"
  elif [[ -f "$src/$f" ]]; then
    [[ -f "$dst/$f" && "$dst/$f" -nt "$src/$f" ]] && continue
    cp "$src/$f" "$dst/$f.tmp-$$"
  else
    echo "uncompressed_data.sh: no $src/$f(.gz): install dataset-fashion-mnist (launch/setup.sh)" >&2
    exit 1
  fi
  mv -f "$dst/$f.tmp-$$" "$dst/$f"
  echo "wrote $dst/$f"
done
echo "Fashion-MNIST, uncompressed, in $dst"
