// Internal: the LibTorch side of a Model. Not installed; includes torch headers.
#pragma once

#include <torch/script.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tessera/atoms/model.h"
#include "tessera/core/files.h"
#include "tessera/graph/extract.h"
#include "tessera/graph/tensor.h"

namespace tessera {

// Groups compute nodes into atoms (atoms/atomize.cpp) and builds one standalone
// graph per atom: inputs follow Atom::inputs, outputs follow Atom::outputs.
struct Atomized {
  std::vector<Atom> atoms;
  std::vector<std::shared_ptr<torch::jit::Graph>> graphs;
};
Atomized atomize(Extracted& ex);

// Store I/O (atoms/store.cpp).
// Wraps an atom graph as a TorchScript module (forward(self, inputs...) -> tuple). With
// `params` (a trainable atom), the graph's last params.size() inputs become the module's
// parameters p0, p1, ... instead (forward reads them from self).
torch::jit::Module atom_module(const torch::jit::Graph& atom_graph, int atom_id,
                               const std::vector<at::Tensor>& params = {});
// Reverse of atom_module: the standalone graph of a loaded atom module; with n_params > 0 the
// module's parameters p0 .. p{n-1} become the graph's last inputs and their tensors go to `params`.
std::shared_ptr<torch::jit::Graph> atom_graph_from_module(const torch::jit::Module& m, size_t n_params = 0,
                                                          std::vector<at::Tensor>* params = nullptr);

// Trainable atoms (atoms/trainable.cpp).
// Replaces each parameter constant of every atom graph (Extracted::param_name) by a graph input
// after the activations; sets Atom::params and fills `params` (name -> tensor).
void lift_params(Atomized& at, const Extracted& ex, std::map<std::string, at::Tensor>& params);
// A lifted atom graph with its parameter inputs made constants again (the inference form; the
// constants alias `values`, so an optimizer's in-place update shows in it).
std::shared_ptr<torch::jit::Graph> params_as_constants(const torch::jit::Graph& lifted, const std::vector<at::Tensor>& values);

class ModelImpl;

// A block: its atoms and interface are known at once (checked when it is made); its spliced
// TorchScript function is built on first use (or by build()), which loads its atoms' files. So a
// device holds in memory only the atoms of blocks it runs: a server's blocks in its schedule stay
// unloaded unless a fallback runs them.
class BlockImpl {
 public:
  std::vector<int> atoms, inputs, outputs;
  std::weak_ptr<const ModelImpl> owner;  // the model whose atoms it splices (not kept alive by it)
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& in) const;
  void build() const;  // splices now; thread-safe, once (a failed build is retried by the next call)
  bool built() const { return fn_ != nullptr; }
  const torch::jit::Graph& graph() const;

 private:
  mutable std::once_flag once_;
  mutable std::shared_ptr<torch::jit::Graph> graph_;
  mutable std::atomic<torch::jit::GraphFunction*> fn_{nullptr};
  mutable std::unique_ptr<torch::jit::GraphFunction> fn_owner_;
};

// A map that keeps at most `capacity` entries, dropping the least recently used
// (an O(n) scan, only when full). Callers hold the lock that guards it.
template <class K, class V>
class BoundedCache {
 public:
  explicit BoundedCache(size_t capacity) : capacity_(capacity) {}
  const V* find(const K& key) {
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    it->second.second = ++tick_;
    return &it->second.first;
  }
  // Inserts (or returns the entry another thread inserted first).
  V put(const K& key, V value) {
    auto [it, fresh] = map_.emplace(key, std::make_pair(std::move(value), ++tick_));
    if (fresh && map_.size() > capacity_) {
      auto victim = map_.end();
      for (auto j = map_.begin(); j != map_.end(); ++j)
        if (j != it && (victim == map_.end() || j->second.second < victim->second.second)) victim = j;
      map_.erase(victim);
    }
    return it->second.first;
  }
  size_t size() const { return map_.size(); }

 private:
  std::map<K, std::pair<V, uint64_t>> map_;
  size_t capacity_;
  uint64_t tick_ = 0;
};

struct ScheduleStep {
  std::shared_ptr<const BlockImpl> block;
  std::vector<int> free_after;  // value ids whose last use is this step
};

// A training block (TrainBlock): lifted atom graphs spliced, parameters after the activations.
class TrainBlockImpl {
 public:
  std::vector<int> atoms, inputs, outputs;
  std::vector<std::string> params;  // names, in call order after inputs
  std::shared_ptr<torch::jit::Graph> graph;
  std::unique_ptr<torch::jit::GraphFunction> fn;
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& in, const std::vector<at::Tensor>& params) const;
};

class ModelImpl : public std::enable_shared_from_this<ModelImpl> {
 public:
  OpGraph graph;
  std::vector<Atom> atoms;
  std::string hash;
  std::string store_dir;  // non-empty when opened from a store (atoms load on demand)

  // Trainable models (LoadOptions::trainable): per atom the graph that takes its parameters
  // after its activations (null = not loaded), and every loaded parameter by name (shared by
  // the atoms that use it). atom_graph() then returns the inference form made from them.
  bool trainable = false;
  mutable std::vector<std::shared_ptr<torch::jit::Graph>> lifted;     // guarded by graph_mu
  mutable std::map<std::string, at::Tensor> params;                   // guarded by graph_mu
  std::shared_ptr<torch::jit::Graph> lifted_graph(int atom) const;    // loads on demand
  std::shared_ptr<const TrainBlockImpl> train_block(std::vector<int> atom_ids) const;  // checked like combine
  mutable BoundedCache<std::vector<int>, std::shared_ptr<const TrainBlockImpl>> train_blocks{kMaxCachedBlocks};

  // value id -> producing atom (-1 for model inputs); value ids of each atom's inputs
  std::vector<int> value_atom;
  AtomDag dag;  // what planners and the scheduler read
  std::vector<int> dag_value_of;  // per graph value: its id in `dag`, -1 if it crosses no atom boundary

  std::shared_ptr<torch::jit::Graph> atom_graph(int atom) const;  // loads on demand
  // The block of these atoms (checked: in range, convex), cached; built now unless lazy.
  std::shared_ptr<const BlockImpl> combine(std::vector<int> atom_ids, bool lazy = false) const;
  // Splices a block's atoms into one graph and function (loads them on demand).
  void splice(const BlockImpl& b, std::shared_ptr<torch::jit::Graph>& graph,
              std::unique_ptr<torch::jit::GraphFunction>& fn) const;
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs,
                              const std::vector<int>& placement) const;
  void check_inputs(const std::vector<at::Tensor>& inputs) const;
  void finish();  // derive value_atom, dag, dag_value_of after atoms are known (index_atoms)

  mutable std::mutex graph_mu, block_mu;
  mutable std::vector<std::shared_ptr<torch::jit::Graph>> graphs;  // per atom, null = not loaded
  // Compiled blocks and schedules, bounded (a server asked for ever new atom sets,
  // or a device sweeping plans, must not grow without limit): least recently used
  // entries go first; whoever still holds one keeps it alive.
  static constexpr size_t kMaxCachedBlocks = 1024, kMaxCachedSchedules = 256;
  mutable BoundedCache<std::vector<int>, std::shared_ptr<const BlockImpl>> blocks{kMaxCachedBlocks};

  using Step = ScheduleStep;
  mutable BoundedCache<std::vector<int>, std::shared_ptr<const std::vector<Step>>> schedules{kMaxCachedSchedules};
  std::shared_ptr<const std::vector<Step>> schedule(const std::vector<int>& placement) const;
  std::shared_ptr<const std::vector<Step>> make_steps(const std::vector<std::vector<int>>& groups) const;
  std::vector<at::Tensor> run_steps(const std::vector<at::Tensor>& inputs, const std::vector<Step>& steps) const;
  mutable BoundedCache<std::vector<std::vector<int>>, std::shared_ptr<const std::vector<Step>>> explicit_schedules{
      kMaxCachedSchedules};
};

}  // namespace tessera

namespace tessera {
void save_store(const ModelImpl& m, const std::string& dir, bool overwrite);
std::shared_ptr<ModelImpl> open_store(const std::string& dir, const std::optional<std::vector<int>>& atoms);
}  // namespace tessera
