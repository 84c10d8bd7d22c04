// tessera/core/dag.h -- the atom DAG, placements and their block schedule:
// integers and arrays, torch-free.
//
// The contract between the atoms layer (which builds an AtomDag from a real
// TorchScript model and runs blocks), the plan layer (which places atoms and
// never sees LibTorch) and the runtime (which runs checked plans).
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

namespace tessera {

inline constexpr int kModelInput = -1;  // DagValue::producer of a model input (no atom makes it)
// The bytes of a value whose dtype no wire carries (quantized activations): no plan cuts there.
inline constexpr double kUnsendableBytes = 1e15;

// A tensor that crosses atom boundaries: made by one atom (or a model input), read by others.
struct DagValue {
  int producer = kModelInput;   // atom id, or kModelInput
  std::vector<int> consumers;   // atom ids, sorted, unique
  double bytes = 0;             // size of the tensor in bytes
  bool is_output = false;       // a model output: must end on target 0
  std::string name;             // for explanations ("layer3.1.relu_out"), may be empty
  std::string dtype;            // element type ("float32"), may be empty (unknown)
  int rank = -1;                // number of dimensions, -1 if unknown
  // Wire codec (issue 17): the codec this value travels with when it crosses between
  // targets ("" = raw; transport/wire.h names them). `bytes` is then its encoded size
  // and codec_ms the fixed time of encoding and decoding it, paid once per transfer.
  // plan::with_codec sets them for a whole model.
  std::string codec;    // wire codec name ("" = raw)
  double codec_ms = 0;  // encode + decode time in ms of one transfer, 0 for raw
};

// The model as the planners see it: atoms in topological order and the values between them.
// Plain data: build it, call validate(), then pass it by const reference.
struct AtomDag {
  int num_atoms = 0;                    // atom ids are 0..num_atoms-1
  std::vector<DagValue> values;         // value id i is values[i]
  std::vector<double> param_bytes;      // per atom: bytes of weights the atom holds
  std::vector<std::string> atom_names;  // per atom, for explanations (may be empty)

  // Throws InvalidArgument naming the field if the arrays are inconsistent
  // (wrong lengths, ids out of range, producer >= consumer, negative bytes).
  void validate() const;
  // The atom's name, or "atom <id>" if it has none.
  std::string atom_label(int atom) const;
};

// The one check of a placement (one target index per atom), used wherever a
// placement enters tessera: "" if it fits, else the first problem in one wording
// ("placement has 3 entries, the model has 5 atoms", "placement[2] (conv1) = 7 is
// not a target in [0, 2)"). num_targets < 0 accepts any target index >= 0.
std::string placement_problem(const AtomDag& dag, const std::vector<int>& placement, int num_targets);
// Throws InvalidArgument with placement_problem's text.
void check_placement(const AtomDag& dag, const std::vector<int>& placement, int num_targets);

// A convex set of atoms, all on one target, executed as one unit.
struct ScheduledBlock {
  int target = 0;            // target index: 0 = the device, 1.. = servers
  std::vector<int> atoms;    // in execution (topological) order
  std::vector<int> inputs;   // values consumed by the block and produced outside it (or model inputs)
  std::vector<int> outputs;  // values produced in the block and needed outside it (or model outputs)
};

// Groups the atoms into maximal blocks of same-target atoms, greedily over a
// topological order: the current block grows while some ready atom (all inputs
// available) is on its target; then the next block takes the target of the
// smallest ready atom id. Blocks are contiguous segments of one topological order,
// hence convex, and executable in order (each block's inputs are model inputs or
// outputs of earlier blocks). Checks the placement (any target index >= 0).
std::vector<ScheduledBlock> schedule_blocks(const AtomDag& dag, const std::vector<int>& placement);

// Fills inputs and outputs of blocks whose atoms are set (a partition of the atoms).
void fill_block_io(const AtomDag& dag, std::vector<ScheduledBlock>& blocks);

}  // namespace tessera
