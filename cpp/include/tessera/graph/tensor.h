// tessera/graph/tensor.h -- LibTorch tensors in tessera's terms: dtype names of the
// one table (core/dtype.h) and TensorInfo. Light: ATen's Tensor header only.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <string>

#include "tessera/core/dtype.h"
#include "tessera/core/tensor_info.h"

namespace tessera {

// "float32", ...; a type outside the table gets c10's own name.
std::string dtype_name(c10::ScalarType t);
// Inverse of dtype_name; throws InvalidArgument for a name outside the table.
c10::ScalarType scalar_type_of(const std::string& name);
// The c10::ScalarType of a table row (no check: every row maps to one).
c10::ScalarType scalar_type_of(const DtypeInfo& dtype);
// The table's row of `t`, or nullptr if it has none (cannot be stored or sent).
const DtypeInfo* find_dtype(c10::ScalarType t);
// Whether `t` is in the table (it can be stored in an atom store and sent on the wire).
bool has_dtype_name(c10::ScalarType t);
// Shape, dtype name and bytes of a tensor.
TensorInfo tensor_info(const at::Tensor& t);
// "" if t has want's dtype and shape; else "float32 [1, 8], expected float32 [1, 4]".
std::string tensor_mismatch(const at::Tensor& t, const TensorInfo& want);

}  // namespace tessera
