// Image classification data sets by name, read from their original on-disk formats.
//   fashion-mnist, mnist : IDX files (plain or gzip), train-images-idx3-ubyte[.gz] etc.
//   cifar10              : data_batch_{1..5}.bin, test_batch.bin; records of 1 label byte + 3072 bytes
//   cifar100             : train.bin, test.bin; records of coarse + fine label bytes + 3072 bytes
// Every failure throws repsearch::InputError naming the file, what was expected and what was found
// (an unknown name: OptionError for option dataset).
#pragma once
#include <ATen/ATen.h>
#include <cstdint>
#include <string>
#include <vector>

namespace repsearch::io {

struct Dataset {
  std::string name;
  std::string data_dir;
  at::Tensor train_images;  // [N, C, H, W] uint8, channel-major like the files
  at::Tensor train_labels;  // [N] int64 in [0, n_classes)
  at::Tensor test_images;   // [M, C, H, W] uint8
  at::Tensor test_labels;   // [M] int64
  std::int64_t n_classes = 0;
  std::vector<std::string> files;  // the paths that were read
};

std::vector<std::string> dataset_names();
// Where a data set lives when --data-dir is not given: $REPSEARCH_DATA_DIR/<folder> when that is set
// (folder: fashion-mnist, mnist, cifar-10-batches-bin, cifar-100-binary), else its usual place
// (e.g. /usr/share/datasets/fashion-mnist).
std::string default_data_dir(const std::string& name);
// Classes of the data set's labels (10, or 100 for cifar100), without reading it.
std::int64_t dataset_classes(const std::string& name);
// Unknown name -> Error listing the known names. Empty data_dir -> default_data_dir(name).
Dataset load_dataset(const std::string& name, const std::string& data_dir = "");

// Lower-level readers, public for tests and tools.
// IDX: big-endian magic 0x0000 0x08 <ndims>, ndims big-endian uint32 sizes, then uint8 data.
// Reads plain or gzip (detected by content, not by name). Returns uint8 with the file's dims.
at::Tensor read_idx(const std::string& path);

struct CifarRecords {
  at::Tensor images;  // [N, 3, 32, 32] uint8
  at::Tensor labels;  // [N] int64 (fine labels for CIFAR-100)
  at::Tensor coarse;  // [N] int64 for CIFAR-100, undefined for CIFAR-10
};
CifarRecords read_cifar(const std::string& path, bool cifar100);

}  // namespace repsearch::io
