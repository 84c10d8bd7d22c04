// atoms/trainable.cpp -- atoms that keep their parameters as parameters (split training).
//
// A trainable load (LoadOptions::trainable) atomizes the same frozen graph as an inference
// load; then every constant of an atom graph that is a model parameter (Extracted::param_name)
// becomes an input of that graph after its activations (Atom::params names them, in order).
// Two forms of each atom then exist, sharing the parameter tensors:
//   lifted      forward(activations..., params...): what training blocks splice and run
//               under autograd (TrainBlock), and what the store saves (the parameters as
//               the atom module's parameters p0, p1, ...);
//   inference   the lifted graph with the parameters put back as constants that alias the
//               same tensors: what Block, Schedule and the runtime run, unchanged; an
//               optimizer's in-place update is seen by both.
// A parameter two atoms use (tied weights) is one tensor in ModelImpl::params.
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <unordered_map>

#include "model_impl.h"
#include "tessera/core/error.h"

namespace tessera {
namespace jit = torch::jit;

namespace {

// Every node of a graph, nested blocks included (a constant may sit inside an If).
void for_each_node(jit::Block* b, const std::function<void(jit::Node*)>& f) {
  for (auto* n : b->nodes()) {
    f(n);
    for (auto* sub : n->blocks()) for_each_node(sub, f);
  }
}

}  // namespace

void lift_params(Atomized& at, const Extracted& ex, std::map<std::string, at::Tensor>& params) {
  for (size_t a = 0; a < at.graphs.size(); ++a) {
    auto& g = at.graphs[a];
    Atom& atom = at.atoms[a];
    std::map<std::string, jit::Value*> input_of;  // parameter name -> the graph input made for it
    auto param_input = [&](const std::string& name, const at::Tensor& t) {
      auto it = input_of.find(name);
      if (it != input_of.end()) return it->second;
      auto* x = g->addInput();
      x->setType(c10::TensorType::create(t));
      atom.params.push_back(name);
      params.emplace(name, t);
      return input_of[name] = x;
    };
    std::vector<jit::Node*> dead;
    for_each_node(g->block(), [&](jit::Node* n) {
      if (n->kind() != c10::prim::Constant || n->outputs().size() != 1) return;
      auto iv = jit::toIValue(n->output());
      if (!iv) return;
      if (iv->isTensor()) {
        const std::string name = ex.param_name(iv->toTensor());
        if (name.empty()) return;
        n->output()->replaceAllUsesWith(param_input(name, iv->toTensor()));
        dead.push_back(n);
      } else if (iv->isTensorList()) {  // LSTM/GRU weights: one Tensor[] constant
        auto list = iv->toTensorVector();
        std::vector<std::string> names;
        for (const auto& t : list) names.push_back(ex.param_name(t));
        size_t known = 0;
        for (const auto& s : names) known += !s.empty();
        if (known == 0) return;
        TESSERA_CHECK(known == names.size(), Unsupported,
                      "atom {} ({}): a list constant holds {} parameters and {} other tensors; it cannot be "
                      "trained as it stands",
                      atom.id, atom.name, known, names.size() - known);
        std::vector<jit::Value*> elems;
        for (size_t i = 0; i < list.size(); ++i) elems.push_back(param_input(names[i], list[i]));
        jit::WithInsertPoint guard(n);
        auto* lc = g->insertNode(g->createList(c10::TensorType::get(), elems));
        n->output()->replaceAllUsesWith(lc->output());
        dead.push_back(n);
      }
    });
    for (auto* n : dead) n->destroy();
  }
}

std::shared_ptr<jit::Graph> params_as_constants(const jit::Graph& lifted, const std::vector<at::Tensor>& values) {
  auto g = const_cast<jit::Graph&>(lifted).copy();
  const size_t n_act = g->inputs().size() - values.size();
  TESSERA_CHECK(g->inputs().size() >= values.size(), Engine, "a lifted atom graph has fewer inputs than parameters");
  jit::WithInsertPoint guard(g->block()->nodes().front());
  for (size_t k = 0; k < values.size(); ++k) {
    auto* c = g->insertConstant(values[k].detach());
    g->inputs()[n_act + k]->replaceAllUsesWith(c);
  }
  for (size_t k = values.size(); k-- > 0;) g->eraseInput(n_act + k);
  return g;
}

std::shared_ptr<jit::Graph> ModelImpl::lifted_graph(int atom) const {
  TESSERA_CHECK(trainable, InvalidArgument,
                "the model was not loaded trainable (ts.load(..., trainable=True) / LoadOptions::trainable): its atoms "
                "hold their weights as constants");
  atom_graph(atom);  // loads (and checks) it
  std::lock_guard<std::mutex> lock(graph_mu);
  return lifted.at(atom);
}

std::vector<at::Tensor> TrainBlockImpl::run(const std::vector<at::Tensor>& in, const std::vector<at::Tensor>& ps) const {
  TESSERA_CHECK(in.size() == inputs.size(), InvalidArgument, "training block of atoms [{}] takes {} tensors, got {}",
                fmt::join(atoms, ", "), inputs.size(), in.size());
  TESSERA_CHECK(ps.size() == params.size(), InvalidArgument,
                "training block of atoms [{}] takes {} parameters ({}), got {}", fmt::join(atoms, ", "), params.size(),
                fmt::join(params, ", "), ps.size());
  jit::Stack stack(in.begin(), in.end());
  stack.insert(stack.end(), ps.begin(), ps.end());
  fn->run(stack);
  std::vector<at::Tensor> out;
  out.reserve(outputs.size());
  for (auto& v : stack.at(0).toTupleRef().elements()) out.push_back(v.toTensor());
  return out;
}

std::shared_ptr<const TrainBlockImpl> ModelImpl::train_block(std::vector<int> ids) const {
  auto shape = combine(std::move(ids), /*lazy=*/true);  // checked: range, convexity; interface
  {
    std::lock_guard<std::mutex> lock(block_mu);
    if (auto* hit = train_blocks.find(shape->atoms)) return *hit;
  }
  auto b = std::make_shared<TrainBlockImpl>();
  b->atoms = shape->atoms;
  b->inputs = shape->inputs;
  b->outputs = shape->outputs;
  auto g = std::make_shared<jit::Graph>();
  std::unordered_map<int, jit::Value*> env;
  for (int v : b->inputs) {
    auto* x = g->addInput(usable_name(graph.values[v].name));
    x->setType(c10::TensorType::get());
    env[v] = x;
  }
  std::map<std::string, jit::Value*> param_in;
  std::vector<std::pair<int, std::shared_ptr<jit::Graph>>> parts;
  for (int a : b->atoms) parts.emplace_back(a, lifted_graph(a));
  for (auto& [a, ag] : parts)  // parameters after every activation, in first-use order
    for (const auto& name : atoms[a].params)
      if (!param_in.count(name)) {
        auto* x = g->addInput();
        x->setType(c10::TensorType::get());
        param_in[name] = x;
        b->params.push_back(name);
      }
  for (auto& [a, ag] : parts) {
    std::vector<jit::Value*> args;
    for (int v : atoms[a].inputs) args.push_back(env.at(v));
    for (const auto& name : atoms[a].params) args.push_back(param_in.at(name));
    auto res = jit::insertGraph(*g, *ag, args);
    for (size_t i = 0; i < res.size(); ++i) env[atoms[a].outputs[i]] = res[i];
  }
  std::vector<jit::Value*> outs;
  for (int v : b->outputs) outs.push_back(env.at(v));
  g->registerOutput(g->insertNode(g->createTuple(outs))->output());
  b->graph = g;
  // The simple executor: the graph's own aten ops run under autograd, as eager PyTorch runs
  // them (no autodiff subgraphs whose backward formulas could differ from eager's).
  b->fn = std::make_unique<jit::GraphFunction>(
      c10::QualifiedName(fmt::format("tessera.train_block_{}_{}", b->atoms.front(), b->atoms.size())), g, nullptr,
      jit::ExecutorExecutionMode::SIMPLE);
  std::lock_guard<std::mutex> lock(block_mu);
  return train_blocks.put(b->atoms, b);
}

}  // namespace tessera
