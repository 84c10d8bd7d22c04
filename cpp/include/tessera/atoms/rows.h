// tessera/atoms/rows.h -- which runs of atoms an intra-layer split can cut into row tiles.
//
// A row chain is a convex set of atoms whose compute operators form one path from one
// 4-D (NCHW) input tensor to one 4-D output tensor, every operator row-local: 2-D
// convolutions and pooling (their row geometry read at extraction, OpNode::rows) and
// element-wise operators. Such a block computes each output row from a window of input
// rows, so it runs unchanged on a slice of its input's rows (plan/tiling.h says which
// slice for which rows). torch-free.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tessera/atoms/atom.h"
#include "tessera/graph/op_graph.h"

namespace tessera {

// A path of row-local operators from one NCHW tensor to another (row_chain makes one).
struct RowChain {
  // The chain's input and output: OpGraph value ids of 4-D (NCHW) tensors.
  int input = -1, output = -1;          // value ids
  std::vector<std::vector<int>> rows;   // per operator on the path: {kernel, stride, pad, dilation}
  std::vector<std::string> kinds;       // per operator
  // Input and output heights, in rows.
  int rows_in = 0, rows_out = 0;        // heights (dim 2) of the input and the output
};

// The row chain of these atoms (any order), or nothing, with the first reason in *why
// ("atom 7 (aten::adaptive_avg_pool2d) is not row-local", "2 tensors enter the atoms").
std::optional<RowChain> row_chain(const OpGraph& graph, const std::vector<Atom>& atoms, std::vector<int> atom_ids,
                                  std::string* why = nullptr);

}  // namespace tessera
