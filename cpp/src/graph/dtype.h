// Internal: the one table between LibTorch scalar types and tessera's dtype names
// ("float32", "int64", ...) used in the op graph, the atom store and the wire.
#pragma once

#include <c10/core/ScalarType.h>

#include <string>

namespace tessera {

// "float32", ...; a type outside the table gets c10's own name.
std::string dtype_name(c10::ScalarType t);
// Inverse of dtype_name; throws InvalidArgument for a name outside the table.
c10::ScalarType scalar_type_of(const std::string& name);
// True if `t` has a name in the table (can be stored and sent).
bool has_dtype_name(c10::ScalarType t);

}  // namespace tessera
