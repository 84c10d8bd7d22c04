// tessera/graph/extract.h -- from a TorchScript module to the frozen graph tessera
// cuts, with its OpGraph (op_graph.h). Heavy: includes LibTorch's JIT headers; the
// atoms layer reads it, products usually do not need it (Model::load does it all).
#pragma once

#include <torch/script.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tessera/graph/op_graph.h"

namespace tessera {

// The frozen graph with `self` removed, in-place ops made functional where
// provably safe, and its metadata.
struct Extracted {
  std::shared_ptr<torch::jit::Graph> graph;   // the frozen graph; tensors' debug names as in meta
  OpGraph meta;  // the graph's plain data; node and value ids index node_ptr and value_ptr
  std::vector<torch::jit::Value*> value_ptr;  // value id -> Value* in graph
  std::vector<torch::jit::Node*> node_ptr;    // node id -> Node* in graph
  std::vector<int> structural;                // node ids only packing outputs (tuples)
  std::string hash;                           // sha256 over the frozen IR, the example signature and the weights
  // Trainable loads only (LoadOptions::trainable): every parameter by qualified name; each shares
  // its storage with the frozen graph's constant that holds it (param_name finds which).
  std::vector<std::pair<std::string, at::Tensor>> params;
  // The qualified name of the parameter a constant tensor of the graph is, "" if none.
  std::string param_name(const at::Tensor& t) const;
};

// Freezes `module`, records every top-level tensor's shape and dtype on one run of
// example_inputs, and numbers nodes and values. Throws InvalidArgument (inputs the
// model rejects, non-tensor inputs) or NotImplemented (freezing failed), naming `label`.
// With options.trainable, every parameter stays its own constant (freezing pools equal
// constants: a batch norm's weight of ones would merge with its running variance), found by
// Extracted::param_name; the frozen graph must compute what the module computes (checked on
// example_inputs, Unsupported otherwise: freezing folded a parameter into a new constant).
Extracted extract_graph(torch::jit::Module module, const std::vector<at::Tensor>& example_inputs,
                        const LoadOptions& options, const std::string& label);

// Every tensor a constant holds: itself, or those inside its lists, tuples and dicts
// (frozen LSTM/GRU weights are one Tensor[] constant).
void for_each_tensor(const c10::IValue& v, const std::function<void(const at::Tensor&)>& f);
// The bytes of the tensors of a prim::Constant node's value (0 for other nodes).
int64_t constant_tensor_bytes(const torch::jit::Node* n);
// A debug name TorchScript accepts for a new value ("" for purely numeric names).
inline std::string usable_name(const std::string& s) {
  if (s.empty() || s.find_first_not_of("0123456789") == std::string::npos) return "";
  return s;
}

}  // namespace tessera
