// Precompiled header for targets that use LibTorch: ATen + the linalg API, not all of torch/torch.h.
#pragma once
#include <ATen/ATen.h>
#include <torch/types.h>
#include <torch/linalg.h>
#include <cstdint>
#include <string>
#include <vector>
