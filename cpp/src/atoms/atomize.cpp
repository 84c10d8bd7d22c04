// atoms/atomize.cpp -- cut the frozen operator graph into atoms, once.
//
// Union-find over compute nodes (helpers are duplicated, never grouped):
//   1. nodes joined by a non-tensor value (a list of tensors, an int computed
//      from a shape) go together, so atom boundaries are tensors only;
//   2. an in-place write that RemoveTensorMutation could not remove joins the
//      writer with every producer and reader of anything it may alias;
//   3. groups on a directed cycle of the contracted graph are merged (Tarjan
//      SCC), so every atom is convex and the atom graph is a DAG.
// Atoms are numbered by Kahn's algorithm, smallest original node first, so
// ids are a topological order that follows the model's source order.
#include <torch/csrc/jit/ir/alias_analysis.h>

#include <numeric>
#include <queue>
#include <set>
#include <unordered_map>

#include "model_impl.h"
#include "tessera/core/error.h"

namespace tessera {
namespace jit = torch::jit;

namespace {

struct UnionFind {
  std::vector<int> parent;
  explicit UnionFind(int n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
  int find(int x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  }
  void unite(int a, int b) {
    a = find(a);
    b = find(b);
    if (a != b) parent[std::max(a, b)] = std::min(a, b);
  }
};

// Tarjan's strongly connected components, iterative; returns comp id per node.
std::vector<int> scc(int n, const std::vector<std::vector<int>>& adj) {
  std::vector<int> index(n, -1), low(n, 0), comp(n, -1), stack;
  std::vector<char> on(n, 0);
  int counter = 0, ncomp = 0;
  for (int s = 0; s < n; ++s) {
    if (index[s] >= 0) continue;
    std::vector<std::pair<int, size_t>> work{{s, 0}};
    index[s] = low[s] = counter++;
    stack.push_back(s);
    on[s] = 1;
    while (!work.empty()) {
      auto& [v, i] = work.back();
      if (i < adj[v].size()) {
        int w = adj[v][i++];
        if (index[w] < 0) {
          index[w] = low[w] = counter++;
          stack.push_back(w);
          on[w] = 1;
          work.push_back({w, 0});
        } else if (on[w]) {
          low[v] = std::min(low[v], index[w]);
        }
      } else {
        if (low[v] == index[v]) {
          int w;
          do {
            w = stack.back();
            stack.pop_back();
            on[w] = 0;
            comp[w] = ncomp;
          } while (w != v);
          ++ncomp;
        }
        int done = v;
        work.pop_back();
        if (!work.empty()) low[work.back().first] = std::min(low[work.back().first], low[done]);
      }
    }
  }
  return comp;
}

}  // namespace

Atomized atomize(Extracted& ex) {
  OpGraph& G = ex.meta;
  const int N = static_cast<int>(G.nodes.size());
  std::vector<char> structural(N, 0);
  for (int s : ex.structural) structural[s] = 1;
  auto is_compute = [&](int n) { return n >= 0 && !G.nodes[n].helper && !structural[n]; };

  UnionFind uf(N);
  // 1. non-tensor edges between compute nodes
  for (const auto& v : G.values) {
    if (v.is_tensor || !is_compute(v.producer)) continue;
    for (int c : v.consumers)
      if (is_compute(c)) uf.unite(v.producer, c);
  }
  // 2. unremovable in-place writes
  {
    jit::AliasDb db(ex.graph);
    for (int n = 0; n < N; ++n) {
      if (!is_compute(n)) continue;
      jit::Node* node = ex.node_ptr[n];
      // G's inputs of a node include the free values its nested blocks read, and the
      // alias DB's writes include those of nested nodes: an `if` whose body does
      // y.add_(1) on an outside y writes to y (node->inputs() is only the condition).
      for (int vin : G.nodes[n].inputs) {
        jit::Value* in = ex.value_ptr[vin];
        if (!db.writesToAlias(node, {in})) continue;
        for (const auto& v : G.values) {
          if (!v.is_tensor || !db.mayAlias(ex.value_ptr[v.id], in)) continue;
          if (is_compute(v.producer)) uf.unite(n, v.producer);
          for (int c : v.consumers)
            if (is_compute(c)) uf.unite(n, c);
        }
      }
    }
  }
  // 3. convexity: merge groups on cycles of the contracted graph
  {
    std::vector<std::vector<int>> adj(N);
    for (const auto& v : G.values) {
      if (!is_compute(v.producer)) continue;
      int a = uf.find(v.producer);
      for (int c : v.consumers)
        if (is_compute(c) && uf.find(c) != a) adj[a].push_back(uf.find(c));
    }
    auto comp = scc(N, adj);
    std::unordered_map<int, int> first;
    for (int n = 0; n < N; ++n) {
      if (!is_compute(n)) continue;
      int r = uf.find(n);
      auto [it, fresh] = first.emplace(comp[r], r);
      if (!fresh) uf.unite(it->second, r);
    }
  }
  // Groups -> atoms in topological order (Kahn, smallest node first).
  std::map<int, std::vector<int>> groups;  // root -> nodes (ascending)
  for (int n = 0; n < N; ++n)
    if (is_compute(n)) groups[uf.find(n)].push_back(n);
  std::unordered_map<int, std::set<int>> succ;
  std::unordered_map<int, int> indeg;
  for (auto& [r, _] : groups) indeg[r] = 0;
  for (const auto& v : G.values) {
    if (!is_compute(v.producer)) continue;
    int a = uf.find(v.producer);
    for (int c : v.consumers) {
      if (!is_compute(c)) continue;
      int b = uf.find(c);
      if (a != b && succ[a].insert(b).second) ++indeg[b];
    }
  }
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;  // roots are min node ids
  for (auto& [r, d] : indeg)
    if (d == 0) ready.push(r);
  std::unordered_map<int, int> atom_of_root;
  std::vector<int> order;
  while (!ready.empty()) {
    int r = ready.top();
    ready.pop();
    atom_of_root[r] = static_cast<int>(order.size());
    order.push_back(r);
    for (int b : succ[r])
      if (--indeg[b] == 0) ready.push(b);
  }
  TESSERA_CHECK(order.size() == groups.size(), Engine, "atom graph has a cycle after SCC merge");

  Atomized out;
  const int A = static_cast<int>(order.size());
  out.atoms.resize(A);
  for (int a = 0; a < A; ++a) {
    Atom& atom = out.atoms[a];
    atom.id = a;
    atom.nodes = groups[order[a]];
    for (int n : atom.nodes) {
      G.nodes[n].atom = a;
      atom.op_kinds.push_back(G.nodes[n].kind);
    }
    atom.file = fmt::format("atom_{:04d}.pt", a);
  }
  // Inputs / outputs of each atom (tensors only; helpers are duplicated).
  std::vector<char> is_model_output(G.values.size(), 0);
  for (int v : G.outputs) is_model_output[v] = 1;
  for (auto& atom : out.atoms) {
    std::set<int> ins, outs;
    for (int n : atom.nodes) {
      for (int v : G.nodes[n].inputs) {
        int p = G.values[v].producer;
        if (p >= 0 && (G.nodes[p].helper || G.nodes[p].atom == atom.id)) continue;
        TESSERA_CHECK(G.values[v].is_tensor, Engine, "atom {} would read non-tensor value '{}' ({}) across a boundary",
                      atom.id, G.values[v].name, G.values[v].type);
        ins.insert(v);
      }
      for (int v : G.nodes[n].outputs) {
        bool used_outside = is_model_output[v];
        for (int c : G.values[v].consumers)
          if (G.nodes[c].atom != atom.id) used_outside = true;
        if (used_outside) outs.insert(v);
      }
    }
    atom.inputs.assign(ins.begin(), ins.end());
    atom.outputs.assign(outs.begin(), outs.end());
    for (int v : atom.outputs) atom.output_bytes += G.values[v].info.bytes;
    atom.name = G.values[G.nodes[atom.nodes.front()].outputs.empty() ? 0 : G.nodes[atom.nodes.front()].outputs[0]].name;
  }

  // One standalone graph per atom: clone its nodes, duplicating helpers.
  out.graphs.resize(A);
  std::unordered_map<const jit::Value*, int> vid;
  for (size_t i = 0; i < ex.value_ptr.size(); ++i) vid[ex.value_ptr[i]] = static_cast<int>(i);
  for (auto& atom : out.atoms) {
    auto g = std::make_shared<jit::Graph>();
    std::unordered_map<jit::Value*, jit::Value*> env;
    std::unordered_set<jit::Node*> weights;
    for (int v : atom.inputs) {
      auto* orig = ex.value_ptr[v];
      env[orig] = g->addInput(usable_name(orig->debugName()))->setType(orig->type());
    }
    std::function<jit::Value*(jit::Value*)> lookup = [&](jit::Value* v) -> jit::Value* {
      auto it = env.find(v);
      if (it != env.end()) return it->second;
      jit::Node* p = v->node();
      auto pid = vid.find(v);
      TESSERA_CHECK(pid != vid.end() && G.values[pid->second].producer >= 0 &&
                        G.nodes[G.values[pid->second].producer].helper,
                    Engine, "atom {}: value '{}' is neither an input nor a helper", atom.id, v->debugName());
      jit::Node* c = g->createClone(p, lookup);
      g->insertNode(c);
      for (size_t i = 0; i < p->outputs().size(); ++i) {
        c->outputs()[i]->copyMetadata(p->outputs()[i]);
        env[p->outputs()[i]] = c->outputs()[i];
      }
      if (constant_tensor_bytes(p) > 0) weights.insert(p);  // a tensor, or a list of them (LSTM)
      return env.at(v);
    };
    for (int n : atom.nodes) {
      jit::Node* p = ex.node_ptr[n];
      jit::Node* c = g->createClone(p, lookup);
      g->insertNode(c);
      for (size_t i = 0; i < p->outputs().size(); ++i) {
        c->outputs()[i]->copyMetadata(p->outputs()[i]);
        env[p->outputs()[i]] = c->outputs()[i];
      }
    }
    for (int v : atom.outputs) g->registerOutput(env.at(ex.value_ptr[v]));
    for (auto* w : weights) atom.param_bytes += constant_tensor_bytes(w);
    out.graphs[atom.id] = g;
  }
  return out;
}

}  // namespace tessera
