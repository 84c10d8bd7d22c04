// core/tensor_info.cpp -- see tessera/core/tensor_info.h.
#include "tessera/core/tensor_info.h"

#include <fmt/format.h>

namespace tessera {

std::string TensorInfo::shape_str() const { return fmt::format("[{}]", fmt::join(shape, ", ")); }
std::string TensorInfo::str() const { return dtype + " " + shape_str(); }

std::string tensor_mismatch(const TensorInfo& got, const TensorInfo& want) {
  if (got.dtype == want.dtype && got.shape == want.shape) return "";
  return fmt::format("{}, expected {}", got.str(), want.str());
}

}  // namespace tessera
