// tessera/plan/dag.h -- the atom DAG as planners see it: integers and arrays.
//
// This is the contract between the atoms layer (which builds an AtomDag from a
// real TorchScript model) and the plan layer (which never sees LibTorch).
//
// Atoms are numbered 0..num_atoms-1 in a topological order (every producer id
// is smaller than each of its consumers' ids). Values are the tensors that
// cross atom boundaries: model inputs (producer == kModelInput; they live on
// target 0, the device), atom outputs consumed by other atoms, and model
// outputs (is_output: they must return to target 0).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::plan {

inline constexpr int kModelInput = -1;

struct DagValue {
  int producer = kModelInput;   // atom id, or kModelInput
  std::vector<int> consumers;   // atom ids, sorted, unique
  double bytes = 0;             // size of the tensor in bytes
  bool is_output = false;       // a model output: must end on target 0
  std::string name;             // for explanations ("layer3.1.relu_out"), may be empty
};

struct AtomDag {
  int num_atoms = 0;
  std::vector<DagValue> values;
  std::vector<double> param_bytes;      // per atom: bytes of weights the atom holds
  std::vector<std::string> atom_names;  // per atom, for explanations (may be empty)

  // Throws InvalidArgument naming the field if the arrays are inconsistent
  // (wrong lengths, ids out of range, producer >= consumer, negative bytes).
  void validate() const;
};

}  // namespace tessera::plan
