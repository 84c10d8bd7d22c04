#include "tessera/graph/op_graph.h"

#include <fmt/format.h>

#include "tessera/core/error.h"

namespace tessera {

std::string TensorInfo::shape_str() const { return fmt::format("[{}]", fmt::join(shape, ", ")); }

int OpGraph::num_compute_nodes() const {
  int n = 0;
  for (const auto& node : nodes) n += node.atom >= 0;
  return n;
}

std::string OpGraph::summary(int max_rows) const {
  std::string s = fmt::format("{:>5}  {:<28} {:>6}  {:<22} {:>12}\n", "node", "op", "atom", "output shape", "bytes");
  int rows = 0;
  for (const auto& n : nodes) {
    if (n.atom < 0) continue;
    if (max_rows >= 0 && rows++ >= max_rows) {
      s += fmt::format("  ... {} more\n", num_compute_nodes() - max_rows);
      break;
    }
    std::string shape = "-";
    int64_t bytes = 0;
    for (int v : n.outputs) {
      if (values[v].is_tensor) {
        shape = values[v].info.shape_str();
        bytes += values[v].info.bytes;
      } else if (shape == "-") {
        shape = values[v].type;
      }
    }
    s += fmt::format("{:>5}  {:<28} {:>6}  {:<22} {:>12}\n", n.id, n.kind, n.atom, shape, bytes);
  }
  return s;
}

int dtype_size(const std::string& dtype) {
  if (dtype == "float32" || dtype == "int32") return 4;
  if (dtype == "float64" || dtype == "int64") return 8;
  if (dtype == "float16" || dtype == "bfloat16" || dtype == "int16") return 2;
  if (dtype == "int8" || dtype == "uint8" || dtype == "bool") return 1;
  TESSERA_THROW(InvalidArgument, "unknown dtype '{}'", dtype);
}

}  // namespace tessera
