// graph/extract.cpp -- from a TorchScript module to a frozen operator graph with
// shapes, dtypes and byte sizes recorded from one run on the example inputs.
//
// Steps: eval + freeze (inlines every call, folds attributes and weights into
// constants; numerics-changing folds only when asked), drop the unused `self`
// input, turn in-place ops into functional ones where provably safe
// (RemoveTensorMutation), dead-code elimination; then run a copy of the graph
// that returns every top-level tensor to record its shape and dtype.
#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/remove_mutation.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "tessera/core/error.h"
#include "tessera/core/files.h"
#include "tessera/graph/extract.h"

#include <optional>
#include <set>
#include "tessera/graph/tensor.h"

namespace tessera {
namespace jit = torch::jit;

namespace {

std::string signature(const std::vector<at::Tensor>& xs) {
  std::string s;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (i) s += ", ";
    s += fmt::format("{} {}", dtype_name(xs[i].scalar_type()), fmt::join(xs[i].sizes(), "x"));
  }
  return "(" + s + ")";
}

std::string first_line(const std::string& s) {
  auto p = s.find('\n');
  return p == std::string::npos ? s : s.substr(0, p);
}

// A fast 64-bit digest of weight bytes (multiply-xorshift over 8-byte words):
// identifies weights inside the model hash without a cryptographic pass over
// hundreds of megabytes. Atom files themselves are checked with sha256.
uint64_t fast_hash64(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h ^ (h >> 29);
}

bool is_tensor(const jit::Value* v) { return v->type()->kind() == c10::TypeKind::TensorType; }

bool is_helper_kind(const jit::Node* n) {
  auto k = n->kind();
  if (!n->blocks().empty()) return false;
  return k == c10::prim::Constant || k == c10::prim::ListConstruct ||
         k == c10::prim::TupleConstruct || k == c10::prim::DictConstruct;
}

// Trainable loads: the frozen graph, with the true parameter values back, must compute what
// the module computes (a parameter folded into a new constant would hold the perturbed value).
void check_trainable(jit::Module& module, const std::shared_ptr<jit::Graph>& g, const Extracted& ex,
                     const std::vector<at::Tensor>& example_inputs, const std::string& label) {
  c10::NoGradGuard no_grad;
  std::vector<at::Tensor> want, got;
  {
    jit::Stack st{module._ivalue()};
    st.insert(st.end(), example_inputs.begin(), example_inputs.end());
    for_each_tensor(module.get_method("forward").function()(st), [&](const at::Tensor& t) { want.push_back(t); });
  }
  {
    jit::GraphFunction fn("tessera_trainable_check", g->copy(), nullptr);
    jit::Stack st(example_inputs.begin(), example_inputs.end());
    fn.run(st);
    for_each_tensor(st.at(0), [&](const at::Tensor& t) { got.push_back(t); });
  }
  bool same = want.size() == got.size();
  for (size_t i = 0; same && i < want.size(); ++i)
    same = want[i].sizes() == got[i].sizes() &&
           (!at::isFloatingType(want[i].scalar_type()) ? want[i].equal(got[i])
                                                        : at::allclose(want[i], got[i], 1e-4, 1e-5, true));
  if (!same) {
    size_t used = 0;
    for (auto* n : g->nodes())
      if (n->kind() == c10::prim::Constant && n->outputs().size() == 1)
        if (auto iv = jit::toIValue(n->output()))
          for_each_tensor(*iv, [&](const at::Tensor& t) { used += !ex.param_name(t).empty(); });
    TESSERA_THROW(Unsupported,
                  "model {}: trainable: freezing folded a parameter into a new constant (the frozen graph no longer "
                  "computes what the module does; {} of {} parameters kept as they are), so it cannot be trained "
                  "through atoms",
                  label, used, ex.params.size());
  }
}

}  // namespace

std::string Extracted::param_name(const at::Tensor& t) const {
  if (params.empty() || !t.defined()) return "";
  for (const auto& [name, p] : params)
    if (p.storage().unsafeGetStorageImpl() == t.storage().unsafeGetStorageImpl() &&
        p.storage_offset() == t.storage_offset() && p.sizes() == t.sizes() && p.strides() == t.strides())
      return name;
  return "";
}

void for_each_tensor(const c10::IValue& v, const std::function<void(const at::Tensor&)>& f) {
  if (v.isTensor()) {
    if (v.toTensor().defined()) f(v.toTensor());
  } else if (v.isList()) {
    for (const auto& e : v.toListRef()) for_each_tensor(e, f);
  } else if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) for_each_tensor(e, f);
  } else if (v.isGenericDict()) {
    for (const auto& kv : v.toGenericDict()) {
      for_each_tensor(kv.key(), f);
      for_each_tensor(kv.value(), f);
    }
  }
}

int64_t constant_tensor_bytes(const jit::Node* n) {
  if (n->kind() != c10::prim::Constant || n->outputs().size() != 1) return 0;
  auto iv = jit::toIValue(n->output());
  int64_t bytes = 0;
  if (iv) for_each_tensor(*iv, [&](const at::Tensor& t) { bytes += static_cast<int64_t>(t.nbytes()); });
  // Packed parameters of quantized layers (custom-class objects): their weights, as unpack() returns them.
  if (iv && iv->isObject()) {
    try {
      auto obj = iv->toObject();
      if (auto* unpack = obj->type()->findMethod("unpack")) {
        std::vector<c10::IValue> stack{*iv};
        unpack->run(stack);
        for (const auto& out : stack)
          for_each_tensor(out, [&](const at::Tensor& t) { bytes += static_cast<int64_t>(t.nbytes()); });
      }
    } catch (const std::exception&) {  // an object without readable weights: counted as none
    }
  }
  return bytes;
}

// Row geometry (OpNode::rows) of an operator: windows over rows for 2-D convolutions and
// pooling, identity for element-wise operators; empty when it is neither or an argument is not
// a constant this can read (a string padding, ceil_mode, a transposed convolution).
std::vector<int> row_geometry(const jit::Node* n) {
  static const std::set<std::string> elementwise = {
      "aten::relu", "aten::relu_", "aten::relu6", "aten::hardtanh", "aten::hardtanh_", "aten::sigmoid",
      "aten::sigmoid_", "aten::tanh", "aten::tanh_", "aten::silu", "aten::silu_", "aten::hardswish",
      "aten::hardswish_", "aten::hardsigmoid", "aten::hardsigmoid_", "aten::leaky_relu", "aten::leaky_relu_",
      "aten::gelu", "aten::elu", "aten::elu_", "aten::clamp", "aten::clamp_", "aten::dropout", "aten::dropout_",
      "aten::batch_norm", "aten::contiguous"};
  const std::string k = n->kind().toQualString();
  if (elementwise.count(k)) return {1, 1, 0, 1};
  auto ints = [&](size_t i) -> std::optional<std::vector<int64_t>> {
    if (i >= n->inputs().size()) return std::nullopt;
    auto iv = jit::toIValue(n->input(i));
    if (!iv || !iv->isIntList()) return std::nullopt;
    return iv->toIntVector();
  };
  auto flag = [&](size_t i) -> std::optional<bool> {
    if (i >= n->inputs().size()) return std::nullopt;
    auto iv = jit::toIValue(n->input(i));
    if (!iv || !iv->isBool()) return std::nullopt;
    return iv->toBool();
  };
  auto first = [](const std::vector<int64_t>& v, int64_t d) { return v.empty() ? d : v[0]; };  // rows: dim 0 of 2
  if (k == "aten::conv2d" || k == "aten::_convolution") {
    if (k == "aten::_convolution" && flag(6).value_or(true)) return {};  // transposed (or unknown)
    auto w = jit::toIValue(n->input(1));
    auto stride = ints(3), pad = ints(4), dil = ints(5);
    if (!w || !w->isTensor() || w->toTensor().dim() != 4 || !stride || !pad || !dil) return {};
    return {static_cast<int>(w->toTensor().size(2)), static_cast<int>(first(*stride, 1)),
            static_cast<int>(first(*pad, 0)), static_cast<int>(first(*dil, 1))};
  }
  if (k == "aten::max_pool2d" || k == "aten::avg_pool2d") {
    auto kernel = ints(1), stride = ints(2), pad = ints(3);
    const bool max = k == "aten::max_pool2d";
    auto dil = max ? ints(4) : std::optional<std::vector<int64_t>>(std::vector<int64_t>{1});
    auto ceil = flag(max ? 5 : 4);
    if (!kernel || kernel->empty() || !stride || !pad || !dil || !ceil || *ceil) return {};
    const int64_t kh = (*kernel)[0];
    return {static_cast<int>(kh), static_cast<int>(first(*stride, kh)), static_cast<int>(first(*pad, 0)),
            static_cast<int>(first(*dil, 1))};
  }
  return {};
}

Extracted extract_graph(jit::Module module, const std::vector<at::Tensor>& example_inputs,
                        const LoadOptions& options, const std::string& label) {
  TESSERA_CHECK(module.find_method("forward").has_value(), InvalidArgument,
                "model {} has no forward method", label);
  module.eval();
  TESSERA_CHECK(!(options.trainable && options.optimize_numerics), InvalidArgument,
                "model {}: trainable cannot be combined with optimize_numerics (its folds mix parameters into new "
                "constants that could not be trained)",
                label);
  // Trainable: freeze with every parameter made unique (a small random change), so constant
  // pooling cannot merge a parameter with an equal buffer or another parameter, then put the
  // true values back into the very tensors the frozen constants share.
  std::vector<at::Tensor> true_values;
  if (options.trainable) {
    c10::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(0x7e55e7aULL);
    for (const auto& p : module.named_parameters(/*recurse=*/true)) {
      at::Tensor t = p.value.detach();
      true_values.push_back(t.clone());
      if (at::isFloatingType(t.scalar_type()) && t.numel() > 0)
        t.add_((at::rand(t.sizes(), gen, t.options()) + 0.5) * 0.05 * (t.abs() + 1e-3));
    }
  }
  jit::Module frozen;
  try {
    frozen = jit::freeze(module, c10::nullopt, options.optimize_numerics);
  } catch (const c10::Error& e) {
    TESSERA_THROW(Unsupported, "model {}: freezing failed: {}", label, first_line(e.what_without_backtrace()));
  }
  Extracted ex;
  if (options.trainable) {
    c10::NoGradGuard no_grad;
    size_t i = 0;
    for (const auto& p : module.named_parameters(/*recurse=*/true)) {
      at::Tensor t = p.value.detach();
      t.copy_(true_values.at(i++));
      ex.params.emplace_back(p.name, t);
    }
  }
  auto g = frozen.get_method("forward").graph()->copy();
  TESSERA_CHECK(g->inputs().size() >= 1 && !g->inputs()[0]->hasUses(), Unsupported,
                "model {}: forward still uses `self` after freezing (attributes it mutates?)", label);
  g->eraseInput(0);
  const auto n_in = g->inputs().size();
  TESSERA_CHECK(n_in == example_inputs.size(), InvalidArgument,
                "model {} takes {} inputs but {} example inputs were given {}", label, n_in,
                example_inputs.size(), signature(example_inputs));
  for (size_t i = 0; i < n_in; ++i) {
    TESSERA_CHECK(is_tensor(g->inputs()[i]), Unsupported,
                  "model {}: input {} '{}' is a {}, only tensor inputs are supported", label, i,
                  g->inputs()[i]->debugName(), g->inputs()[i]->type()->str());
    TESSERA_CHECK(example_inputs[i].defined(), InvalidArgument, "example input {} is undefined", i);
  }
  jit::RemoveTensorMutation(g);
  jit::EliminateDeadCode(g);

  // Run a copy that returns every top-level tensor, to record shapes and dtypes.
  auto probe = g->copy();
  std::vector<jit::Value*> orig_vals, probe_vals;
  for (size_t i = 0; i < n_in; ++i) {
    orig_vals.push_back(g->inputs()[i]);
    probe_vals.push_back(probe->inputs()[i]);
  }
  {
    auto a = g->nodes().begin();
    auto b = probe->nodes().begin();
    for (; a != g->nodes().end(); ++a, ++b) {
      for (size_t k = 0; k < a->outputs().size(); ++k) {
        if (is_tensor(a->outputs()[k])) {
          orig_vals.push_back(a->outputs()[k]);
          probe_vals.push_back(b->outputs()[k]);
        }
      }
    }
  }
  while (!probe->outputs().empty()) probe->eraseOutput(0);
  auto* tup = probe->insertNode(probe->createTuple(probe_vals));
  probe->registerOutput(tup->output());
  std::unordered_map<const jit::Value*, TensorInfo> infos;
  try {
    jit::GraphFunction fn("tessera_probe", probe, nullptr);
    jit::Stack stack(example_inputs.begin(), example_inputs.end());
    fn.run(stack);
    auto elems = stack.at(0).toTupleRef().elements();
    for (size_t i = 0; i < orig_vals.size(); ++i) {
      if (elems[i].isTensor()) infos[orig_vals[i]] = tensor_info(elems[i].toTensor());
    }
  } catch (const std::exception& e) {
    std::string msg = e.what();
    auto p = msg.rfind("RuntimeError: ");
    msg = p == std::string::npos ? first_line(msg) : first_line(msg.substr(p + 14));
    TESSERA_THROW(InvalidArgument, "model {} failed on the example inputs {}: {}", label,
                  signature(example_inputs), msg);
  }

  // Number nodes and values (top level only; control flow stays one node).
  OpGraph& meta = ex.meta;
  std::unordered_map<const jit::Value*, int> vid;
  std::unordered_map<const jit::Node*, int> nid;
  auto add_value = [&](jit::Value* v, int producer) {
    OpValue ov;
    ov.id = static_cast<int>(meta.values.size());
    ov.name = v->debugName();
    ov.type = v->type()->str();
    ov.is_tensor = is_tensor(v);
    if (auto it = infos.find(v); it != infos.end()) ov.info = it->second;
    ov.producer = producer;
    vid[v] = ov.id;
    meta.values.push_back(std::move(ov));
    ex.value_ptr.push_back(v);
  };
  for (size_t i = 0; i < n_in; ++i) {
    add_value(g->inputs()[i], -1);
    meta.inputs.push_back(static_cast<int>(i));
  }
  for (auto* n : g->nodes()) {
    OpNode on;
    on.id = static_cast<int>(meta.nodes.size());
    on.kind = n->kind().toQualString();
    if (n->scope()) on.scope = n->scope()->namesFromRoot();
    on.rows = row_geometry(n);
    nid[n] = on.id;
    meta.nodes.push_back(on);
    ex.node_ptr.push_back(n);
    for (auto* o : n->outputs()) {
      add_value(o, meta.nodes.back().id);
      meta.nodes.back().outputs.push_back(vid[o]);
    }
  }
  // Inputs of each top-level node, including free variables of nested blocks.
  std::function<void(jit::Block*, std::vector<int>&)> free_vars = [&](jit::Block* b, std::vector<int>& acc) {
    auto visit = [&](jit::Node* n) {
      for (auto* v : n->inputs()) {
        auto it = vid.find(v);
        if (it != vid.end()) acc.push_back(it->second);
      }
      for (auto* sub : n->blocks()) free_vars(sub, acc);
    };
    for (auto* n : b->nodes()) visit(n);
    visit(b->return_node());
  };
  for (auto* n : g->nodes()) {
    auto& on = meta.nodes[nid[n]];
    for (auto* v : n->inputs()) on.inputs.push_back(vid.at(v));
    on.args = on.inputs;  // argument order, before sorting (a @ b is not b @ a)
    for (auto* sub : n->blocks()) free_vars(sub, on.inputs);
    std::sort(on.inputs.begin(), on.inputs.end());
    on.inputs.erase(std::unique(on.inputs.begin(), on.inputs.end()), on.inputs.end());
    for (int v : on.inputs) meta.values[v].consumers.push_back(on.id);
  }
  // Helpers: constant-derived nodes, duplicated into each atom that uses them - but not
  // a container something writes to (l.append(...) must act on the one list its readers see).
  jit::AliasDb aliases(g);
  for (auto* n : g->nodes()) {
    bool helper = is_helper_kind(n);
    for (auto* o : n->outputs())
      if (helper && n->kind() != c10::prim::Constant && aliases.hasWriters(o)) helper = false;
    for (int v : meta.nodes[nid[n]].inputs) {
      int p = meta.values[v].producer;
      if (p < 0 || !meta.nodes[p].helper) helper = false;
    }
    meta.nodes[nid[n]].helper = helper;
  }

  // Outputs: flatten tuples/lists of tensors built only for returning.
  std::unordered_set<int> structural;
  std::function<std::string(jit::Value*)> flatten = [&](jit::Value* v) -> std::string {
    if (is_tensor(v)) {
      meta.outputs.push_back(vid.at(v));
      return std::to_string(meta.outputs.size() - 1);
    }
    auto* n = v->node();
    bool packs = (n->kind() == c10::prim::TupleConstruct || n->kind() == c10::prim::ListConstruct) &&
                 n->owningBlock() == g->block();
    if (packs) {
      for (const auto& use : v->uses()) {
        if (use.user != g->return_node() && !structural.count(nid.count(use.user) ? nid[use.user] : -1)) packs = false;
      }
    }
    TESSERA_CHECK(packs, Unsupported,
                  "model {}: output '{}' of type {} is not a tensor or a tuple/list of tensors", label,
                  v->debugName(), v->type()->str());
    structural.insert(nid[n]);
    std::string s = n->kind() == c10::prim::TupleConstruct ? "T(" : "L(";
    for (size_t i = 0; i < n->inputs().size(); ++i) {
      if (i) s += ",";
      s += flatten(n->inputs()[i]);
    }
    return s + ")";
  };
  TESSERA_CHECK(g->outputs().size() == 1, Unsupported, "model {}: {} graph outputs", label, g->outputs().size());
  meta.output_structure = flatten(g->outputs()[0]);
  ex.structural.assign(structural.begin(), structural.end());
  std::sort(ex.structural.begin(), ex.structural.end());
  for (int s : ex.structural) meta.nodes[s].helper = false;
  // A constant returned as a model output (a buffer: `return x * 2, self.b`) must be
  // produced by an atom, or no block would ever produce that output.
  for (int v : meta.outputs) {
    const int p = meta.values[v].producer;
    if (p >= 0 && meta.nodes[p].helper) meta.nodes[p].helper = false;
  }

  if (options.trainable) check_trainable(module, g, ex, example_inputs, label);

  // Hash: the graph's IR, the example signature and every weight's bytes.
  std::string h = g->toString(false) + signature(example_inputs) + (options.trainable ? " trainable" : "");
  // (tensors inside list/tuple constants too: two LSTMs differ only there)
  for (auto* n : g->nodes()) {
    if (n->kind() != c10::prim::Constant || n->outputs().size() != 1) continue;
    auto iv = jit::toIValue(n->output());
    if (!iv) continue;
    for_each_tensor(*iv, [&](const at::Tensor& t) {
      auto c = t.contiguous();
      h += fmt::format("{:016x}", fast_hash64(c.data_ptr(), c.nbytes()));
    });
  }
  ex.hash = sha256_hex(h.data(), h.size());
  ex.graph = g;
  return ex;
}

}  // namespace tessera
