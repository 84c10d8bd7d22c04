#include "tessera/graph/op_graph.h"

#include <fmt/format.h>

#include "tessera/core/error.h"

namespace tessera {

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

}  // namespace tessera
