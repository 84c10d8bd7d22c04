// tessera/atoms/model.h -- a model cut once into atoms, combined at run time.
//
//   Model m = Model::load("resnet50.pt", {x});      // freeze, record shapes, atomize
//   m.graph(); m.atoms();                             // plain data (op_graph.h, atom.h)
//   m.save("store/resnet50");                         // manifest.json + atom_NNNN.pt
//   Model d = Model::open("store/resnet50", {0,1,2}); // loads only these atoms' files
//   Block b = m.combine({3, 4, 5});                   // one spliced TorchScript function
//   auto y = m.run({x}, placement);                   // every block of every target, here
//
// Follows AdaMEC's once-for-all pre-partition and dynamically combinable atoms.
// Thread-safe for concurrent run()/combine() after construction.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tessera/atoms/atom.h"
#include "tessera/graph/op_graph.h"
#include "tessera/core/dag.h"

namespace tessera {

class ModelImpl;
class BlockImpl;
struct ScheduleStep;  // internal

// A convex set of atoms spliced into one executable TorchScript function.
class Block {
 public:
  Block() = default;
  // Atom ids of the block, ascending (its execution order). Only on a valid() block.
  const std::vector<int>& atoms() const;
  const std::vector<int>& inputs() const;   // value ids, in call order
  const std::vector<int>& outputs() const;  // value ids, in return order
  // Runs the block. inputs follow inputs(); returns tensors following outputs().
  std::vector<at::Tensor> operator()(const std::vector<at::Tensor>& inputs) const;
  // The spliced graph in TorchScript IR, for inspection (splices the block if not yet).
  std::string graph_str() const;
  // Splices the block's atoms into its function now (loading their files). A block from
  // Model::combine is built already; the blocks of a Schedule are built when they first run,
  // so a process holds only the atoms of the blocks it runs. Thread-safe; a failure (a
  // missing or corrupt atom file) throws and the next call tries again.
  void build() const;
  bool built() const;  // false until the block has been spliced
  // False for a default-constructed Block (any other call on it is undefined).
  bool valid() const { return impl_ != nullptr; }

 private:
  friend class ModelImpl;
  friend class Model;
  friend class Schedule;
  explicit Block(std::shared_ptr<const BlockImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const BlockImpl> impl_;
};

class TrainBlockImpl;

// A convex set of atoms of a trainable model (LoadOptions::trainable) spliced for training:
// it takes the block's activations, then its parameters (params(), by qualified name), and
// runs under autograd: outputs of inputs or parameters that require grad carry a grad_fn.
// Batch norm uses its running statistics and dropout is off (the model's eval semantics,
// which freezing keeps): the training a frozen backbone's fine-tuning does.
class TrainBlock {
 public:
  TrainBlock() = default;
  const std::vector<int>& atoms() const;    // atom ids, ascending
  const std::vector<int>& inputs() const;   // activation value ids, in call order
  const std::vector<int>& outputs() const;  // value ids, in return order
  // Qualified names of the parameters it takes after the inputs ("layer1.0.conv1.weight").
  const std::vector<std::string>& params() const;
  // Runs the block: inputs follow inputs(), params follow params(); throws InvalidArgument
  // on wrong counts. Records autograd when grad mode is on and something requires grad.
  std::vector<at::Tensor> operator()(const std::vector<at::Tensor>& inputs,
                                     const std::vector<at::Tensor>& params) const;
  // The spliced graph in TorchScript IR, parameters as inputs.
  std::string graph_str() const;
  // False for a default-constructed TrainBlock.
  bool valid() const { return impl_ != nullptr; }

 private:
  friend class Model;
  explicit TrainBlock(std::shared_ptr<const TrainBlockImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const TrainBlockImpl> impl_;
};

// An executable order of blocks, each with the values whose last use it is: what
// Model::run and the runtime execute. Built once per placement (or block list),
// cached by the model, cheap to copy.
class Schedule {
 public:
  Schedule() = default;
  // Number of blocks; 0 for a default-constructed Schedule.
  size_t size() const;
  // Block i, in execution order; throws std::out_of_range for i >= size().
  Block block(size_t i) const;
  // Value ids whose last use is block i (a runner frees them after it).
  const std::vector<int>& free_after(size_t i) const;
  // False for a default-constructed Schedule.
  bool valid() const { return steps_ != nullptr; }

 private:
  friend class Model;
  Schedule(std::shared_ptr<const std::vector<ScheduleStep>> steps, const ModelImpl* owner)
      : steps_(std::move(steps)), owner_(owner) {}
  std::shared_ptr<const std::vector<ScheduleStep>> steps_;
  const ModelImpl* owner_ = nullptr;
};

// A model cut into atoms: loads, saves, combines and runs them. Cheap to copy (shared state);
// thread-safe for concurrent const calls.
class Model {
 public:
  // Loads a TorchScript file, freezes it, records shapes on example_inputs and
  // atomizes it. Throws NotFound for a missing file, InvalidArgument for a file
  // that is not TorchScript or inputs the model rejects.
  static Model load(const std::string& path, const std::vector<at::Tensor>& example_inputs,
                    const LoadOptions& options = {});
  // Same from the bytes of a TorchScript file (what torch.jit.save writes).
  static Model load_bytes(const std::string& bytes, const std::vector<at::Tensor>& example_inputs,
                          const LoadOptions& options = {}, const std::string& label = "<bytes>");
  // Same from a module already in memory (a torch::jit::Module passed as void*
  // to keep LibTorch's JIT headers out of this header).
  static Model load_module(const void* torch_jit_module, const std::vector<at::Tensor>& example_inputs,
                           const LoadOptions& options = {}, const std::string& label = "<module>");
  // Opens an atom store written by save(). With `atoms`, only those atoms' files
  // are loaded now; the others are loaded (and checked) on first use.
  static Model open(const std::string& store_dir, const std::optional<std::vector<int>>& atoms = {});

  // The operator graph the atoms were cut from (plain data, lives as long as the Model).
  const OpGraph& graph() const;
  // All atoms, atoms()[i].id == i, in topological order.
  const std::vector<Atom>& atoms() const;
  // Same as atoms().size().
  int num_atoms() const;
  // sha256 identifying the atomized model (the frozen graph and the example signature).
  const std::string& hash() const;
  // The atom DAG for planners (values crossing atom boundaries, bytes, params).
  AtomDag dag() const;
  // The id in dag() of a graph value (OpGraph value id), -1 if it crosses no atom boundary.
  int dag_value(int graph_value) const;
  // Atoms whose executable graph is in memory now.
  std::vector<int> loaded_atoms() const;
  // Bytes of weights held in memory by loaded atoms.
  int64_t loaded_param_bytes() const;

  // Writes the atom store: a fresh directory with manifest.json and one
  // TorchScript file per atom, written beside `dir` and renamed into place.
  // An existing `dir` is replaced only when overwrite is true.
  void save(const std::string& dir, bool overwrite = false) const;

  // One block from a convex set of atom ids (any order). Cached per set.
  Block combine(std::vector<int> atom_ids) const;

  // The blocks of a placement (core's schedule_blocks: greedy over the topological
  // order, every block convex and runnable in order), combined. Cached per placement.
  Schedule schedule(const std::vector<int>& placement) const;
  // The given blocks (sets of atom ids) in the given order, combined: every atom
  // exactly once, each block reading only values earlier blocks produce (else
  // InvalidArgument naming the block and value). Cached per block list.
  Schedule schedule(const std::vector<std::vector<int>>& blocks) const;
  // Runs a schedule of this model here.
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs, const Schedule& schedule) const;

  // Runs the model with placement[i] = target of atom i (all blocks run here,
  // in an executable order). Returns the flattened outputs (graph().outputs).
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs,
                              const std::vector<int>& placement) const;
  // Runs the given blocks (sets of atom ids) in the given order; every atom once.
  // Throws InvalidArgument if a block reads a value no earlier block produced.
  std::vector<at::Tensor> run_blocks(const std::vector<at::Tensor>& inputs,
                                     const std::vector<std::vector<int>>& blocks) const;
  // Runs the model unsplit (one block of all atoms).
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs) const;

  // Checks inputs against the recorded signature (count, dtype, shape);
  // throws InvalidArgument naming the input.
  void check_inputs(const std::vector<at::Tensor>& inputs) const;

  // True when loaded with LoadOptions::trainable (or opened from a store saved so).
  bool trainable() const;
  // A trainable model's parameters used by these atoms (every atom when empty), by qualified
  // name, each once, in atom order; loads those atoms. The very tensors the atoms run with: an
  // in-place update (an optimizer step) changes what inference and training compute. Empty for
  // a model that is not trainable.
  std::vector<std::pair<std::string, at::Tensor>> parameters(const std::vector<int>& atom_ids = {}) const;
  // The training block of a convex set of atom ids (checked as combine checks them), cached.
  // Throws InvalidArgument for a model that is not trainable.
  TrainBlock train_block(std::vector<int> atom_ids) const;

 private:
  explicit Model(std::shared_ptr<ModelImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<ModelImpl> impl_;
};

}  // namespace tessera
