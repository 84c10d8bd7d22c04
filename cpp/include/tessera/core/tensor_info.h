// tessera/core/tensor_info.h -- a tensor's static description, torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

// A tensor's static description, recorded from the example run.
struct TensorInfo {
  std::vector<int64_t> shape;  // sizes per dimension
  std::string dtype;           // "float32", "int64", ... (core/dtype.h)
  int64_t bytes = 0;           // numel * element size

  std::string shape_str() const;  // "[1, 3, 224, 224]"
  std::string str() const;        // "float32 [1, 3, 224, 224]"
};

// "" if `got` has want's dtype and shape; else "float32 [1, 8], expected float32 [1, 4]".
std::string tensor_mismatch(const TensorInfo& got, const TensorInfo& want);

}  // namespace tessera
