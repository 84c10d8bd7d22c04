// tessera/predict/features.h -- what an atom is, as numbers a predictor reads.
//
// Features come from the torch-free op graph alone (shapes recorded on the
// example run, weight constants included), so a predictor can estimate a model
// that was never run on the target machine. Per atom: the op kinds, the op
// class of its dominant operator, FLOPs and bytes moved derived from shapes,
// and the structural parameters that decide how a kernel behaves (kernel size,
// stride, groups, channels, spatial size). Then the context the atom runs in:
// intra-op threads and the background load of the machine (AdaMEC conditions
// its latency predictor on this dynamic context).
//
// FLOPs (multiply and add counted as 2):
//   convolution  2 * numel(out) * (c_in / groups) * kh * kw   (+ numel(out) with bias)
//   linear       2 * numel(out) * in_features                  (weight [out, in])
//   matmul / mm / bmm / addmm / baddbmm   2 * numel(out) * K   (K: last dim of the first operand)
//   lstm / gru   2 * weights * steps                           (weights from param bytes)
//   batch/layer/group norm 4 * numel, softmax 5 * numel, pooling numel(in),
//   element-wise numel(out) * tensor operands, everything else numel(out).
// torch-free.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "tessera/atoms/atom.h"
#include "tessera/graph/op_graph.h"

namespace tessera::predict {

// Op classes, the coarse kinds predictors generalise over.
// "conv" "linear" "matmul" "norm" "pool" "eltwise" "softmax" "reduce" "memory" (cat,
// view, transpose, ...) "rnn" (lstm, gru) "other".
const std::vector<std::string>& op_classes();
// The class of one op kind ("aten::_convolution" -> "conv"); unknown kinds -> "other".
std::string op_class(const std::string& kind);

// Numeric features of an atom, in this order (see feature_names()).
enum Feature : int {
  kNumOps = 0,   // compute ops in the atom (prim:: helpers excluded)
  kFlops,        // FLOPs of the whole atom
  kMainFlops,    // FLOPs of its dominant op
  kInBytes,      // bytes of the tensors it reads from other atoms / model inputs
  kOutBytes,     // bytes of the tensors it hands on
  kParamBytes,   // bytes of the weights it holds
  kKernel,       // kh * kw of a convolution, window of a pooling (estimated), else 1
  kStride,       // input height / output height of a conv or pooling, else 1
  kGroups,       // convolution groups, else 1
  kCin,          // input channels (dim 1) of the dominant op's data input
  kCout,         // output channels (dim 1) of its output
  kOutSpatial,   // output elements per channel (h * w, or sequence length)
  kInNumel,      // elements of the dominant op's data inputs
  kOutNumel,     // elements of its output
  kNumFeatures
};
// The features' names in Feature order ("num_ops", "flops", ...): CSV columns, reports.
const std::vector<std::string>& feature_names();

// An atom's identity, op kinds and numeric features, the predictors' input.
struct AtomFeatures {
  std::string model;      // model hash (identity for lookups)
  int atom = -1;          // atom id in that model
  std::string main_kind;  // the dominant op ("aten::_convolution")
  std::string op_class;   // its class ("conv")
  std::string kinds;      // every op kind of the atom, joined by '+'
  std::array<double, kNumFeatures> x{};  // the features, indexed by Feature
};

// The state of the machine an atom runs on: how many threads it gets and how busy the machine
// is with other work. (A plan's Context, plan/cost_model.h, is what changes at run time
// between device and server; its server_load / device_load are slowdown factors.)
struct MachineState {
  int threads = 1;             // intra-op threads, >= 1
  double background_load = 0;  // CPU cores kept busy by other work, >= 0
};
// predict::Context was MachineState's name until 0.2. Removed in 0.3.
using Context [[deprecated("tessera::predict::MachineState")]] = MachineState;

// One atom in one context, with its measured latency when known.
struct Sample {
  AtomFeatures f;     // the atom
  MachineState ctx;   // the machine it runs on
  double ms = -1;     // measured median latency, ms (< 0: unknown)
  std::string label;  // human name of the model ("resnet18"), for reports
};

// Features of every atom of a model (atoms.size() entries, in atom order).
std::vector<AtomFeatures> atom_features(const OpGraph& graph, const std::vector<Atom>& atoms,
                                        const std::string& model_hash);

// Samples of a profiled model: ms[a] is atom a's measured median (size atoms.size()).
// Throws InvalidArgument on a size mismatch, negative or non-finite ms, bad context.
std::vector<Sample> make_samples(const std::vector<AtomFeatures>& features, const MachineState& ctx,
                                 const std::vector<double>& ms = {}, const std::string& label = "");

// CSV of samples (header: model,label,atom,main_kind,op_class,kinds,threads,load,ms,<features>).
void write_samples_csv(const std::string& path, const std::vector<Sample>& samples);
// Throws NotFound for a missing file, InvalidArgument naming the line for a bad row.
std::vector<Sample> read_samples_csv(const std::string& path);

void check_machine_state(const MachineState& state);  // InvalidArgument naming the field

}  // namespace tessera::predict
