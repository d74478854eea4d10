// The data identity of a run (provenance.hpp, DataIdentity): computed once from the data set and
// its splits, stored in every archive, checkpoint and results file, and compared by every command
// that reads one of them together with a data set.
#pragma once
#include <ATen/ATen.h>
#include <string>

#include "repsearch/io/dataset.hpp"
#include "repsearch/io/provenance.hpp"

namespace repsearch::io {

// The identity of `d` with the search, validation and held-out splits given by their training-set
// indices (int64; an undefined tensor leaves that split out), plus the test set and the whole training
// set; data_dir made absolute.
DataIdentity data_identity(const Dataset& d, const at::Tensor& search, const at::Tensor& val,
                           const at::Tensor& heldout);

// One line per split whose number of examples, labels or images differ, each naming the split and
// both values ("  split search: labels differ (CRC-32 0x... in <a>, 0x... in <b>)"); "" when they
// agree. A split recorded on one side only is not compared (files of other commands may hold fewer).
std::string identity_differences(const DataIdentity& a, const std::string& a_name, const DataIdentity& b,
                                 const std::string& b_name);

}  // namespace repsearch::io
