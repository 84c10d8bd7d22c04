#include "dtype.h"

#include <utility>

#include "tessera/core/error.h"

namespace tessera {

namespace {
constexpr std::pair<c10::ScalarType, const char*> kTable[] = {
    {c10::kFloat, "float32"}, {c10::kDouble, "float64"}, {c10::kHalf, "float16"}, {c10::kBFloat16, "bfloat16"},
    {c10::kLong, "int64"},    {c10::kInt, "int32"},      {c10::kShort, "int16"},  {c10::kChar, "int8"},
    {c10::kByte, "uint8"},    {c10::kBool, "bool"},
};
}  // namespace

std::string dtype_name(c10::ScalarType t) {
  for (const auto& [s, n] : kTable)
    if (s == t) return n;
  return c10::toString(t);
}

bool has_dtype_name(c10::ScalarType t) {
  for (const auto& e : kTable)
    if (e.first == t) return true;
  return false;
}

c10::ScalarType scalar_type_of(const std::string& name) {
  for (const auto& [s, n] : kTable)
    if (name == n) return s;
  TESSERA_THROW(InvalidArgument, "unknown dtype '{}'", name);
}

}  // namespace tessera
