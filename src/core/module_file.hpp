// Writing a torch::save archive to a file with every error reported (core's torch::nn translation units).
#pragma once
#include <torch/serialize.h>

#include <string>

namespace repsearch::detail {

// Serialised in memory, then written and checked here: LibTorch's file writer finishes the file in its
// destructor, where a full disk's error ends the process (std::terminate) instead of reaching us.
void write_module_archive(torch::serialize::OutputArchive& archive, const std::string& path);

}  // namespace repsearch::detail
