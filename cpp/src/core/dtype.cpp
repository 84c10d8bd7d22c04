// core/dtype.cpp -- the one dtype table (see tessera/core/dtype.h).
#include "tessera/core/dtype.h"

#include <fmt/format.h>

#include "tessera/core/error.h"

namespace tessera {

const std::vector<DtypeInfo>& dtypes() {
  // wire codes are part of wire protocol v1: append, never renumber.
  // torch_code: c10::ScalarType (Byte 0, Char 1, Short 2, Int 3, Long 4, Half 5,
  // Float 6, Double 7, Bool 11, BFloat16 15), checked at compile time in graph/dtype.cpp.
  static const std::vector<DtypeInfo> table = {
      {"float32", 4, 1, 6}, {"float64", 8, 2, 7}, {"float16", 2, 3, 5}, {"bfloat16", 2, 4, 15}, {"int64", 8, 5, 4},
      {"int32", 4, 6, 3},   {"int16", 2, 7, 2},   {"int8", 1, 8, 1},    {"uint8", 1, 9, 0},     {"bool", 1, 10, 11},
  };
  return table;
}

const DtypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : dtypes())
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeInfo& dtype_info(const std::string& name) {
  const DtypeInfo* d = find_dtype(name);
  if (!d) {
    std::vector<std::string> known;
    for (const auto& x : dtypes()) known.emplace_back(x.name);
    TESSERA_THROW(InvalidArgument, "unknown dtype '{}' (known: {})", name, fmt::join(known, ", "));
  }
  return *d;
}

int dtype_size(const std::string& name) { return dtype_info(name).size; }

}  // namespace tessera
