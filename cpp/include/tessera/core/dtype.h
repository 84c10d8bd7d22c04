// tessera/core/dtype.h -- the one table of tensor element types, torch-free.
//
// Every layer names dtypes the same way ("float32", "int64", ...): the op graph,
// the atom store's manifest, the wire protocol (one byte code per dtype) and the
// LibTorch side (graph/dtype.h maps c10::ScalarType through torch_code). Adding a
// dtype is one row here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

// One row of the dtype table (dtypes()); rows are static, pointers to them stay valid.
struct DtypeInfo {
  const char* name;   // "float32"
  int size;           // bytes per element
  uint8_t wire_code;  // code on the wire (docs/wire-protocol.md), 1-based, never reused
  int torch_code;     // c10::ScalarType's value (checked against c10 in graph/dtype.cpp)
};

// Every known dtype, in wire-code order.
const std::vector<DtypeInfo>& dtypes();
// The row of a dtype name; nullptr if unknown.
const DtypeInfo* find_dtype(const std::string& name);
// The row of a name; throws InvalidArgument naming it (and the known ones) if unknown.
const DtypeInfo& dtype_info(const std::string& name);
// Element size in bytes of a dtype name; throws InvalidArgument for unknown names.
int dtype_size(const std::string& name);

}  // namespace tessera
