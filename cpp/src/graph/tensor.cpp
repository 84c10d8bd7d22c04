// graph/tensor.cpp -- LibTorch scalar types <-> the one dtype table (core/dtype.h).
#include "tessera/graph/tensor.h"

#include "tessera/core/error.h"

namespace tessera {

// core/dtype.cpp keeps c10's enum values as plain ints (it is torch-free): checked here.
static_assert(static_cast<int>(c10::kByte) == 0 && static_cast<int>(c10::kChar) == 1 &&
                  static_cast<int>(c10::kShort) == 2 && static_cast<int>(c10::kInt) == 3 &&
                  static_cast<int>(c10::kLong) == 4 && static_cast<int>(c10::kHalf) == 5 &&
                  static_cast<int>(c10::kFloat) == 6 && static_cast<int>(c10::kDouble) == 7 &&
                  static_cast<int>(c10::kBool) == 11 && static_cast<int>(c10::kBFloat16) == 15,
              "c10::ScalarType values differ from core/dtype.cpp's torch_code column");

const DtypeInfo* find_dtype(c10::ScalarType t) {
  for (const auto& d : dtypes())
    if (d.torch_code == static_cast<int>(t)) return &d;
  return nullptr;
}

std::string dtype_name(c10::ScalarType t) {
  const DtypeInfo* d = find_dtype(t);
  return d ? d->name : c10::toString(t);
}

bool has_dtype_name(c10::ScalarType t) { return find_dtype(t) != nullptr; }

c10::ScalarType scalar_type_of(const DtypeInfo& dtype) { return static_cast<c10::ScalarType>(dtype.torch_code); }
c10::ScalarType scalar_type_of(const std::string& name) { return scalar_type_of(dtype_info(name)); }

TensorInfo tensor_info(const at::Tensor& t) {
  TensorInfo info;
  if (!t.defined()) return info;
  info.shape.assign(t.sizes().begin(), t.sizes().end());
  info.dtype = dtype_name(t.scalar_type());
  info.bytes = static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
  return info;
}

std::string tensor_mismatch(const at::Tensor& t, const TensorInfo& want) {
  return tensor_mismatch(tensor_info(t), want);
}

}  // namespace tessera
