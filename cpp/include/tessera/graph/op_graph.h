// tessera/graph/op_graph.h -- the operator DAG of a model, as plain data.
//
// Built from the TorchScript graph after inlining and freezing (see
// graph/extract.cpp); shapes, dtypes and byte sizes come from one run on the
// example inputs. Ids are dense ints; everything is torch-free so that tools
// and planners can read it without LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tessera/core/dtype.h"
#include "tessera/core/tensor_info.h"

namespace tessera {

// One operator of the frozen graph (top level; control flow stays one node).
struct OpNode {
  int id = 0;                 // index in OpGraph::nodes
  std::string kind;           // "aten::conv2d", "prim::Constant", ...
  std::vector<int> inputs;    // value ids read: its arguments and what nested blocks read, sorted
  std::vector<int> args;      // value ids of its own arguments, in argument order (repeats kept)
  std::vector<int> outputs;   // value ids
  bool helper = false;        // constant-derived: duplicated into each atom that uses it
  int atom = -1;              // atom that runs it (-1 for helpers)
  std::string scope;          // source location / module path when TorchScript kept one
  // How it maps rows (height, dim 2 of NCHW) for intra-layer splits (plan/tiling.h):
  // {kernel, stride, pad, dilation} for convolutions and pooling without ceil_mode,
  // {1, 1, 0, 1} for element-wise operators; empty: not row-local (or unknown).
  std::vector<int> rows;
};

// One value of the graph (tensor or not).
struct OpValue {
  int id = 0;                 // index in OpGraph::values
  std::string name;           // TorchScript debug name
  std::string type;           // "Tensor", "int[]", ...
  bool is_tensor = false;     // a tensor (then `info` is filled); lists, ints, ... are not
  TensorInfo info;            // filled for tensors
  int producer = -1;          // node id; -1 for a model input
  std::vector<int> consumers; // node ids
};

// A model's operator DAG: nodes and values indexed by id, torch-free plain data.
struct OpGraph {
  std::vector<OpNode> nodes;    // nodes[i].id == i; in the frozen graph's (topological) order
  std::vector<OpValue> values;  // values[i].id == i
  std::vector<int> inputs;    // value ids of the model's tensor inputs
  std::vector<int> outputs;   // value ids of the model's tensor outputs (flattened)
  // How outputs nest: "0" for one tensor, "T(0,1)" for a tuple, "L(0,T(1,2))" ...;
  // numbers index into `outputs`.
  std::string output_structure = "0";

  // Nodes that run in an atom (atom >= 0): the operators, without helpers.
  int num_compute_nodes() const;
  // A table a person reads: one line per compute op with shapes and bytes.
  std::string summary(int max_rows = -1) const;
};

// Options of graph extraction (graph/extract.h; Model::load).
struct LoadOptions {
  // Fold conv+batch-norm and similar when freezing. Off by default: tessera then
  // computes exactly what the original model computes.
  bool optimize_numerics = false;
  // Keep parameters as parameters (split training, runtime/training.h): each atom's graph takes
  // its parameters as inputs after its activations (Atom::params names them) instead of holding
  // them as constants; the store keeps them in the atom's file as the module's parameters.
  // Inference runs exactly as for a frozen model. Not with optimize_numerics (its folds mix
  // parameters into new constants).
  bool trainable = false;
};

}  // namespace tessera
