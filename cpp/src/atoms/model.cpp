// atoms/model.cpp -- Model and Block: combination of atoms at run time.
//
// A block splices its atoms' graphs into one TorchScript graph (insertGraph),
// restores in-place activations where that is safe, and runs in the
// TorchScript graph executor: one call per block, no per-atom overhead.
// run() derives each target's blocks from a placement, orders them, and frees
// every intermediate tensor after its last use. Blocks and schedules are cached.
#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/passes/restore_mutation.h>

#include <algorithm>
#include <set>

#include "model_impl.h"
#include "tessera/atoms/manifest.h"
#include "tessera/core/error.h"

namespace tessera {
namespace jit = torch::jit;

// ---- BlockImpl ---------------------------------------------------------------------
void BlockImpl::build() const {
  if (fn_.load(std::memory_order_acquire)) return;
  std::call_once(once_, [&] {
    auto model = owner.lock();
    TESSERA_CHECK(model, InvalidArgument, "block of atoms [{}]: its model was freed before the block was built",
                  fmt::join(atoms, ", "));
    std::shared_ptr<jit::Graph> g;
    std::unique_ptr<jit::GraphFunction> f;
    model->splice(*this, g, f);
    graph_ = std::move(g);
    fn_owner_ = std::move(f);
    fn_.store(fn_owner_.get(), std::memory_order_release);
  });
}

const jit::Graph& BlockImpl::graph() const {
  build();
  return *graph_;
}

std::vector<at::Tensor> BlockImpl::run(const std::vector<at::Tensor>& in) const {
  TESSERA_CHECK(in.size() == inputs.size(), InvalidArgument, "block of atoms [{}] takes {} tensors, got {}",
                fmt::join(atoms, ", "), inputs.size(), in.size());
  build();
  jit::Stack stack(in.begin(), in.end());
  fn_.load(std::memory_order_acquire)->run(stack);
  std::vector<at::Tensor> out;
  out.reserve(outputs.size());
  for (auto& v : stack.at(0).toTupleRef().elements()) out.push_back(v.toTensor());
  return out;
}

const std::vector<int>& Block::atoms() const { return impl_->atoms; }
const std::vector<int>& Block::inputs() const { return impl_->inputs; }
const std::vector<int>& Block::outputs() const { return impl_->outputs; }
std::vector<at::Tensor> Block::operator()(const std::vector<at::Tensor>& inputs) const {
  TESSERA_CHECK(impl_, InvalidArgument, "empty Block");
  return impl_->run(inputs);
}
std::string Block::graph_str() const { return impl_ ? impl_->graph().toString() : ""; }
void Block::build() const {
  TESSERA_CHECK(impl_, InvalidArgument, "empty Block");
  impl_->build();
}
bool Block::built() const { return impl_ && impl_->built(); }

// ---- ModelImpl -----------------------------------------------------------------------
void ModelImpl::finish() {
  AtomIndex ix = index_atoms(graph, atoms);  // checked: AtomDag::validate
  value_atom = std::move(ix.value_atom);
  dag = std::move(ix.dag);
  dag_value_of = std::move(ix.dag_value_of);
  graphs.resize(atoms.size());
  lifted.resize(atoms.size());
}

void ModelImpl::check_inputs(const std::vector<at::Tensor>& in) const {
  TESSERA_CHECK(in.size() == graph.inputs.size(), InvalidArgument, "the model takes {} inputs, got {}",
                graph.inputs.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const auto& v = graph.values[graph.inputs[i]];
    TESSERA_CHECK(in[i].defined(), InvalidArgument, "input {} '{}' is undefined", i, v.name);
    auto info = tensor_info(in[i]);
    TESSERA_CHECK(info.dtype == v.info.dtype, InvalidArgument, "input {} '{}' has dtype {}, the model expects {}", i,
                  v.name, info.dtype, v.info.dtype);
    TESSERA_CHECK(info.shape == v.info.shape, InvalidArgument, "input {} '{}' has shape {}, the model expects {}", i,
                  v.name, info.shape_str(), v.info.shape_str());
  }
}

std::shared_ptr<const BlockImpl> ModelImpl::combine(std::vector<int> ids, bool lazy) const {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  TESSERA_CHECK(!ids.empty(), InvalidArgument, "cannot combine an empty set of atoms");
  const int A = static_cast<int>(atoms.size());
  for (int a : ids)
    TESSERA_CHECK(a >= 0 && a < A, InvalidArgument, "atom id {} out of range: the model has {} atoms", a, A);
  {
    std::lock_guard<std::mutex> lock(block_mu);
    if (auto* hit = blocks.find(ids)) {
      if (!lazy) (*hit)->build();
      return *hit;
    }
  }
  // Convexity: no path leaves the set and comes back. Walk forward from the
  // set through atoms outside it (ids are topological, so stop at max id).
  std::vector<char> in_set(A, 0), reached(A, 0);
  for (int a : ids) in_set[a] = 1;
  const int hi = ids.back();
  std::vector<std::vector<int>> succ(A);
  for (const auto& a : atoms)
    for (int v : a.outputs)
      for (int c : graph.values[v].consumers) {
        int ca = graph.nodes[c].atom;
        if (ca >= 0 && ca != a.id) succ[a.id].push_back(ca);
      }
  std::vector<int> parent(A, -1), stack;
  for (int a : ids)
    for (int s : succ[a])
      if (!in_set[s] && !reached[s]) reached[s] = 1, parent[s] = a, stack.push_back(s);
  while (!stack.empty()) {
    int x = stack.back();
    stack.pop_back();
    for (int s : succ[x]) {
      if (s > hi) continue;
      if (in_set[s]) {
        std::vector<int> path{s, x};
        while (parent[path.back()] >= 0 && !in_set[path.back()]) path.push_back(parent[path.back()]);
        std::reverse(path.begin(), path.end());
        TESSERA_THROW(InvalidArgument,
                      "atoms [{}] are not convex: the path {} leaves the set through atom {} and comes back",
                      fmt::join(ids, ", "), fmt::join(path, " -> "), x);
      }
      if (!reached[s]) reached[s] = 1, parent[s] = x, stack.push_back(s);
    }
  }
  // Interface: inputs produced outside the set, outputs used outside or returned.
  std::set<int> ins, outs;
  std::vector<char> model_out(graph.values.size(), 0);
  for (int v : graph.outputs) model_out[v] = 1;
  for (int a : ids) {
    for (int v : atoms[a].inputs)
      if (value_atom[v] < 0 || !in_set[value_atom[v]]) ins.insert(v);
    for (int v : atoms[a].outputs) {
      bool outside = model_out[v];
      for (int c : graph.values[v].consumers) {
        int ca = graph.nodes[c].atom;
        if (ca >= 0 && !in_set[ca]) outside = true;
      }
      if (outside) outs.insert(v);
    }
  }
  auto impl = std::make_shared<BlockImpl>();
  impl->atoms = ids;
  impl->inputs.assign(ins.begin(), ins.end());
  impl->outputs.assign(outs.begin(), outs.end());
  impl->owner = weak_from_this();
  std::shared_ptr<const BlockImpl> out;
  {
    std::lock_guard<std::mutex> lock(block_mu);
    out = blocks.put(ids, impl);
  }
  if (!lazy) out->build();  // another thread's entry won the race: built too
  return out;
}

void ModelImpl::splice(const BlockImpl& b, std::shared_ptr<jit::Graph>& out_graph,
                       std::unique_ptr<jit::GraphFunction>& out_fn) const {
  const std::vector<int>& ids = b.atoms;
  auto g = std::make_shared<jit::Graph>();
  std::unordered_map<int, jit::Value*> env;
  for (int v : b.inputs) {
    auto* x = g->addInput(usable_name(graph.values[v].name));
    x->setType(c10::TensorType::get());
    env[v] = x;
  }
  for (int a : ids) {
    auto ag = atom_graph(a);
    std::vector<jit::Value*> args;
    for (int v : atoms[a].inputs) args.push_back(env.at(v));
    auto res = jit::insertGraph(*g, *ag, args);
    for (size_t i = 0; i < res.size(); ++i) env[atoms[a].outputs[i]] = res[i];
  }
  for (int v : b.outputs) g->registerOutput(env.at(v));
  // In-place activations back (relu_ etc.), unless one would write to a block input.
  auto inplace = g->copy();
  jit::FunctionalToInplaceActivation(inplace);
  {
    jit::AliasDb db(inplace);
    bool writes_input = false;
    for (auto* x : inplace->inputs()) writes_input |= db.hasWriters(x);
    for (auto* x : inplace->outputs())
      for (auto* y : inplace->outputs())
        if (x != y && db.mayAlias(x, y)) writes_input = true;
    if (!writes_input) g = inplace;
  }
  out_graph = g;
  // A function returns one value: pack the outputs into a tuple.
  auto packed = g->copy();
  std::vector<jit::Value*> outs_v(packed->outputs().begin(), packed->outputs().end());
  while (!packed->outputs().empty()) packed->eraseOutput(0);
  packed->registerOutput(packed->insertNode(packed->createTuple(outs_v))->output());
  out_fn = std::make_unique<jit::GraphFunction>(
      c10::QualifiedName(fmt::format("tessera.block_{}_{}", ids.front(), ids.size())), packed, nullptr);
}


// Blocks of a placement come from core (schedule_blocks: greedy
// over the topological order, every block convex and runnable in order).
std::shared_ptr<const std::vector<ModelImpl::Step>> ModelImpl::schedule(const std::vector<int>& placement) const {
  check_placement(dag, placement, -1);
  {
    std::lock_guard<std::mutex> lock(block_mu);
    if (auto* hit = schedules.find(placement)) return *hit;
  }
  std::vector<std::vector<int>> groups;
  for (auto& b : schedule_blocks(dag, placement)) groups.push_back(std::move(b.atoms));
  auto steps = make_steps(groups);
  std::lock_guard<std::mutex> lock(block_mu);
  return schedules.put(placement, steps);
}

std::shared_ptr<const std::vector<ModelImpl::Step>> ModelImpl::make_steps(
    const std::vector<std::vector<int>>& groups) const {
  auto steps = std::make_shared<std::vector<Step>>();
  std::vector<int> last_use(graph.values.size(), -1);
  std::vector<char> available(graph.values.size(), 0);
  for (int v : graph.inputs) available[v] = 1;
  for (size_t s = 0; s < groups.size(); ++s) {
    Step st;
    st.block = combine(groups[s], /*lazy=*/true);  // checked now, spliced when it first runs
    for (int v : st.block->inputs) {
      TESSERA_CHECK(available[v], InvalidArgument,
                    "block {} (atoms [{}]) reads value {} '{}' before any earlier block produces it", s,
                    fmt::join(st.block->atoms, ", "), v, graph.values[v].name);
      last_use[v] = static_cast<int>(s);
    }
    for (int v : st.block->outputs) available[v] = 1;
    steps->push_back(std::move(st));
  }
  std::vector<char> model_out(graph.values.size(), 0);
  for (int v : graph.outputs) {
    model_out[v] = 1;
    TESSERA_CHECK(available[v], InvalidArgument, "the blocks never produce model output {} '{}'", v,
                  graph.values[v].name);
  }
  for (size_t v = 0; v < last_use.size(); ++v)
    if (last_use[v] >= 0 && !model_out[v]) (*steps)[last_use[v]].free_after.push_back(static_cast<int>(v));
  return steps;
}

std::vector<at::Tensor> ModelImpl::run(const std::vector<at::Tensor>& inputs, const std::vector<int>& placement) const {
  check_inputs(inputs);
  return run_steps(inputs, *schedule(placement));
}

std::vector<at::Tensor> ModelImpl::run_steps(const std::vector<at::Tensor>& inputs, const std::vector<Step>& steps) const {
  std::vector<at::Tensor> env(graph.values.size());
  for (size_t i = 0; i < inputs.size(); ++i) env[graph.inputs[i]] = inputs[i];
  std::vector<at::Tensor> args;
  for (const auto& st : steps) {
    args.clear();
    for (int v : st.block->inputs) args.push_back(env[v]);
    auto outs = st.block->run(args);
    for (size_t i = 0; i < outs.size(); ++i) env[st.block->outputs[i]] = std::move(outs[i]);
    for (int v : st.free_after) env[v].reset();
  }
  std::vector<at::Tensor> out;
  for (int v : graph.outputs) out.push_back(env[v]);
  return out;
}

// ---- Model ----------------------------------------------------------------------------
namespace {
std::shared_ptr<ModelImpl> from_module(jit::Module mod, const std::vector<at::Tensor>& ex_in, const LoadOptions& o,
                                       const std::string& label) {
  auto ex = extract_graph(std::move(mod), ex_in, o, label);
  auto at = atomize(ex);
  auto m = std::make_shared<ModelImpl>();
  if (o.trainable) {
    m->trainable = true;
    lift_params(at, ex, m->params);
    m->lifted = at.graphs;
    for (size_t a = 0; a < at.graphs.size(); ++a) {
      std::vector<at::Tensor> values;
      for (const auto& p : at.atoms[a].params) values.push_back(m->params.at(p));
      at.graphs[a] = params_as_constants(*at.graphs[a], values);
    }
  }
  m->graph = std::move(ex.meta);
  m->atoms = std::move(at.atoms);
  m->hash = ex.hash;
  m->finish();
  m->graphs = std::move(at.graphs);
  return m;
}

jit::Module read_module(std::istream& in, const std::string& label) {
  try {
    return jit::load(in);
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    TESSERA_THROW(InvalidArgument, "{} is not a TorchScript file (torch.jit.save output): {}", label,
                  msg.substr(0, msg.find('\n')));
  }
}
}  // namespace

Model Model::load(const std::string& path, const std::vector<at::Tensor>& example_inputs, const LoadOptions& o) {
  std::string bytes = read_file(path);
  return load_bytes(bytes, example_inputs, o, path);
}

Model Model::load_bytes(const std::string& bytes, const std::vector<at::Tensor>& example_inputs, const LoadOptions& o,
                        const std::string& label) {
  std::istringstream in(bytes);
  return Model(from_module(read_module(in, label), example_inputs, o, label));
}

Model Model::load_module(const void* mod, const std::vector<at::Tensor>& example_inputs, const LoadOptions& o,
                         const std::string& label) {
  TESSERA_CHECK(mod != nullptr, InvalidArgument, "null module");
  // freeze() clones; the caller's module is not modified.
  return Model(from_module(static_cast<const jit::Module*>(mod)->clone(), example_inputs, o, label));
}

Model Model::open(const std::string& store_dir, const std::optional<std::vector<int>>& atoms) {
  return Model(open_store(store_dir, atoms));
}

const OpGraph& Model::graph() const { return impl_->graph; }
const std::vector<Atom>& Model::atoms() const { return impl_->atoms; }
int Model::num_atoms() const { return static_cast<int>(impl_->atoms.size()); }
const std::string& Model::hash() const { return impl_->hash; }

AtomDag Model::dag() const { return impl_->dag; }
int Model::dag_value(int graph_value) const {
  const auto& m = impl_->dag_value_of;
  return graph_value >= 0 && static_cast<size_t>(graph_value) < m.size() ? m[graph_value] : -1;
}

std::vector<int> Model::loaded_atoms() const {
  std::lock_guard<std::mutex> lock(impl_->graph_mu);
  std::vector<int> out;
  for (size_t a = 0; a < impl_->graphs.size(); ++a)
    if (impl_->graphs[a]) out.push_back(static_cast<int>(a));
  return out;
}

int64_t Model::loaded_param_bytes() const {
  int64_t total = 0;
  for (int a : loaded_atoms()) total += impl_->atoms[a].param_bytes;
  return total;
}

void Model::save(const std::string& dir, bool overwrite) const { save_store(*impl_, dir, overwrite); }

Block Model::combine(std::vector<int> atom_ids) const { return Block(impl_->combine(std::move(atom_ids))); }

std::vector<at::Tensor> Model::run(const std::vector<at::Tensor>& inputs, const std::vector<int>& placement) const {
  return impl_->run(inputs, placement);
}

std::vector<at::Tensor> Model::run(const std::vector<at::Tensor>& inputs) const {
  return impl_->run(inputs, std::vector<int>(impl_->atoms.size(), 0));
}

Schedule Model::schedule(const std::vector<int>& placement) const { return Schedule(impl_->schedule(placement), impl_.get()); }

Schedule Model::schedule(const std::vector<std::vector<int>>& blocks) const {
  {
    std::lock_guard<std::mutex> lock(impl_->block_mu);
    if (auto* hit = impl_->explicit_schedules.find(blocks)) return Schedule(*hit, impl_.get());
  }
  // every atom exactly once (the documented contract), checked before anything runs
  const int A = num_atoms();
  std::vector<int> seen(A, -1);
  for (size_t b = 0; b < blocks.size(); ++b)
    for (int a : blocks[b]) {
      TESSERA_CHECK(a >= 0 && a < A, InvalidArgument, "block {} names atom {}: the model has {} atoms", b, a, A);
      TESSERA_CHECK(seen[a] < 0, InvalidArgument, "atom {} is in block {} and in block {}: each atom runs once", a,
                    seen[a], b);
      seen[a] = static_cast<int>(b);
    }
  for (int a = 0; a < A; ++a)
    TESSERA_CHECK(seen[a] >= 0, InvalidArgument, "atom {} is in no block: every atom must run once", a);
  auto steps = impl_->make_steps(blocks);
  std::lock_guard<std::mutex> lock(impl_->block_mu);
  return Schedule(impl_->explicit_schedules.put(blocks, steps), impl_.get());
}

std::vector<at::Tensor> Model::run(const std::vector<at::Tensor>& inputs, const Schedule& schedule) const {
  TESSERA_CHECK(schedule.valid(), InvalidArgument, "empty Schedule");
  TESSERA_CHECK(schedule.owner_ == impl_.get(), InvalidArgument,
                "the schedule was made by another model (this one: {})", impl_->hash.substr(0, 12));
  impl_->check_inputs(inputs);
  return impl_->run_steps(inputs, *schedule.steps_);
}

std::vector<at::Tensor> Model::run_blocks(const std::vector<at::Tensor>& inputs,
                                          const std::vector<std::vector<int>>& blocks) const {
  return run(inputs, schedule(blocks));
}

size_t Schedule::size() const { return steps_ ? steps_->size() : 0; }
Block Schedule::block(size_t i) const { return Block(steps_->at(i).block); }
const std::vector<int>& Schedule::free_after(size_t i) const { return steps_->at(i).free_after; }

void Model::check_inputs(const std::vector<at::Tensor>& inputs) const { impl_->check_inputs(inputs); }

// ---- training -------------------------------------------------------------------------
bool Model::trainable() const { return impl_->trainable; }

std::vector<std::pair<std::string, at::Tensor>> Model::parameters(const std::vector<int>& atom_ids) const {
  std::vector<int> ids = atom_ids;
  if (ids.empty())
    for (int a = 0; a < num_atoms(); ++a) ids.push_back(a);
  std::vector<std::pair<std::string, at::Tensor>> out;
  if (!impl_->trainable) return out;
  std::set<std::string> seen;
  for (int a : ids) {
    impl_->lifted_graph(a);  // loads it (range-checked)
    std::lock_guard<std::mutex> lock(impl_->graph_mu);
    for (const auto& name : impl_->atoms[a].params)
      if (seen.insert(name).second) out.emplace_back(name, impl_->params.at(name));
  }
  return out;
}

TrainBlock Model::train_block(std::vector<int> atom_ids) const {
  TESSERA_CHECK(impl_->trainable, InvalidArgument,
                "model {} was not loaded trainable (ts.load(..., trainable=True) / LoadOptions::trainable): its atoms "
                "hold their weights as constants",
                impl_->hash.substr(0, 12));
  return TrainBlock(impl_->train_block(std::move(atom_ids)));
}

const std::vector<int>& TrainBlock::atoms() const { return impl_->atoms; }
const std::vector<int>& TrainBlock::inputs() const { return impl_->inputs; }
const std::vector<int>& TrainBlock::outputs() const { return impl_->outputs; }
const std::vector<std::string>& TrainBlock::params() const { return impl_->params; }
std::vector<at::Tensor> TrainBlock::operator()(const std::vector<at::Tensor>& inputs,
                                               const std::vector<at::Tensor>& params) const {
  TESSERA_CHECK(impl_, InvalidArgument, "empty TrainBlock");
  return impl_->run(inputs, params);
}
std::string TrainBlock::graph_str() const { return impl_ ? impl_->graph->toString() : ""; }

}  // namespace tessera
