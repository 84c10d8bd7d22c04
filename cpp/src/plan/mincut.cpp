// mincut.cpp -- exact two-target placement by minimum s-t cut on the DADS graph
// (Hu et al., INFOCOM 2019), optionally on a graph reduced first by contracting
// series chains (CIC / QDMP, Zhang et al. 2021). Max-flow: push-relabel
// (Goldberg and Tarjan 1988) on the plain graph, Boykov-Kolmogorov (Boost.Graph)
// on the compressed one. The graph is built once; solve() rewrites capacities only.
// See tessera/plan/mincut.h for the construction.
#include "tessera/plan/mincut.h"

#include <algorithm>
#include <cmath>
#include <limits>

// Boost.Graph's BK instantiation trips a false -Wmaybe-uninitialized in g++ 12.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/boykov_kolmogorov_max_flow.hpp>

#include "tessera/core/error.h"

namespace tessera::plan {

namespace {

using Traits = boost::adjacency_list_traits<boost::vecS, boost::vecS, boost::directedS>;
using Graph = boost::adjacency_list<
    boost::vecS, boost::vecS, boost::directedS,
    boost::property<boost::vertex_color_t, boost::default_color_type,
                    boost::property<boost::vertex_distance_t, long,
                                    boost::property<boost::vertex_predecessor_t, Traits::edge_descriptor>>>,
    boost::property<boost::edge_capacity_t, double,
                    boost::property<boost::edge_residual_capacity_t, double,
                                    boost::property<boost::edge_reverse_t, Traits::edge_descriptor>>>>;
using Edge = Traits::edge_descriptor;

// Push-relabel max-flow (Goldberg and Tarjan 1988), FIFO selection with global
// relabelling, first phase only (a maximum preflow is enough for a minimum cut),
// on a static CSR residual graph: arc 2e is forward edge e, arc 2e+1 its reverse.
// Why not augmenting paths (Boykov-Kolmogorov, Dinic): on the DADS graph of a
// deep DAG at low bandwidth the flow leaves s through the model input and spreads
// to every atom's sink edge along paths as long as the network is deep, so path
// augmentation costs ~ atoms x depth; push-relabel moves each node's excess as a
// whole, ~ edges. build() once; run() resets residuals from the capacities;
// sink_side() then marks the nodes that still reach t in the residual graph.
// Capacities are doubles: residuals and excesses <= eps count as zero.
class PushRelabel {
 public:
  void build(int num_nodes, const std::vector<std::pair<int, int>>& edges) {
    n_ = num_nodes;
    const size_t m = edges.size();
    head_.assign(static_cast<size_t>(n_) + 1, 0);
    for (const auto& [u, v] : edges) ++head_[u + 1], ++head_[v + 1];
    for (int i = 0; i < n_; ++i) head_[i + 1] += head_[i];
    arcs_.assign(2 * m, 0);
    to_.assign(2 * m, 0);
    std::vector<int> fill(head_.begin(), head_.end() - 1);
    for (size_t e = 0; e < m; ++e) {
      const auto [u, v] = edges[e];
      to_[2 * e] = v;
      to_[2 * e + 1] = u;
      arcs_[fill[u]++] = static_cast<int>(2 * e);
      arcs_[fill[v]++] = static_cast<int>(2 * e + 1);
    }
    res_.assign(2 * m, 0.0);
    excess_.assign(static_cast<size_t>(n_), 0.0);
    height_.assign(static_cast<size_t>(n_), 0);
    it_.assign(static_cast<size_t>(n_), 0);
    queue_.assign(static_cast<size_t>(n_), 0);
    active_.assign(static_cast<size_t>(n_), 0);
  }

  void run(const std::vector<double>& cap, int s, int t) {
    double total_cap = 0;
    for (size_t e = 0; e < cap.size(); ++e) {
      res_[2 * e] = cap[e];
      res_[2 * e + 1] = 0.0;
      total_cap += cap[e];
    }
    eps_ = 1e-13 * std::max(total_cap, 1.0);
    std::fill(excess_.begin(), excess_.end(), 0.0);
    std::fill(active_.begin(), active_.end(), 0);
    for (int i = head_[s]; i < head_[s + 1]; ++i) {  // saturate the source's arcs
      const int a = arcs_[i];
      const double f = res_[a];
      if (f <= 0) continue;
      res_[a] = 0;
      res_[a ^ 1] += f;
      excess_[to_[a]] += f;
    }
    s_ = s;
    t_ = t;
    fifo_.clear();
    global_relabel();
    size_t head = 0;
    long work = 0;
    const long relabel_every = 6L * n_ + static_cast<long>(arcs_.size());
    while (head < fifo_.size()) {
      const int u = fifo_[head++];
      active_[u] = 0;
      work += discharge(u);
      if (work > relabel_every) {
        work = 0;
        global_relabel();
        head = 0;
      }
      if (head > 4096 && head * 2 > fifo_.size()) {  // compact the queue
        fifo_.erase(fifo_.begin(), fifo_.begin() + static_cast<long>(head));
        head = 0;
      }
    }
  }

  // After run(): per node, true if it reaches t in the residual graph (sink side).
  const std::vector<char>& sink_side() {
    reach_.assign(static_cast<size_t>(n_), 0);
    int qh = 0, qt = 0;
    reach_[t_] = 1;
    queue_[qt++] = t_;
    while (qh < qt) {
      const int v = queue_[qh++];
      for (int i = head_[v]; i < head_[v + 1]; ++i) {
        const int a = arcs_[i];  // v -> u; the residual arc u -> v is a ^ 1
        const int u = to_[a];
        if (!reach_[u] && res_[a ^ 1] > eps_) {
          reach_[u] = 1;
          queue_[qt++] = u;
        }
      }
    }
    return reach_;
  }

 private:
  // Exact distances to t in the residual graph; nodes that cannot reach t get n
  // (inactive for the first phase). Rebuilds the queue of active nodes.
  void global_relabel() {
    std::fill(height_.begin(), height_.end(), n_);
    int qh = 0, qt = 0;
    height_[t_] = 0;
    queue_[qt++] = t_;
    while (qh < qt) {
      const int v = queue_[qh++];
      for (int i = head_[v]; i < head_[v + 1]; ++i) {
        const int a = arcs_[i];
        const int u = to_[a];
        if (height_[u] == n_ && u != s_ && res_[a ^ 1] > eps_) {
          height_[u] = height_[v] + 1;
          queue_[qt++] = u;
        }
      }
    }
    fifo_.clear();
    for (int u = 0; u < n_; ++u) {
      it_[u] = head_[u];
      active_[u] = 0;
      if (u != s_ && u != t_ && height_[u] < n_ && excess_[u] > eps_) {
        active_[u] = 1;
        fifo_.push_back(u);
      }
    }
  }

  // Pushes u's excess to admissible arcs, relabelling when none is left; returns work done.
  long discharge(int u) {
    long work = 0;
    while (excess_[u] > eps_ && height_[u] < n_) {
      if (it_[u] == head_[u + 1]) {  // relabel
        int h = 2 * n_;
        for (int i = head_[u]; i < head_[u + 1]; ++i) {
          const int a = arcs_[i];
          if (res_[a] > eps_) h = std::min(h, height_[to_[a]] + 1);
        }
        work += 12 + (head_[u + 1] - head_[u]);
        height_[u] = std::min(h, n_);
        it_[u] = head_[u];
        continue;
      }
      const int a = arcs_[it_[u]];
      const int v = to_[a];
      if (res_[a] > eps_ && height_[u] == height_[v] + 1) {
        const double d = std::min(excess_[u], res_[a]);
        res_[a] -= d;
        res_[a ^ 1] += d;
        excess_[u] -= d;
        excess_[v] += d;
        ++work;
        if (v != t_ && v != s_ && !active_[v] && height_[v] < n_) {
          active_[v] = 1;
          fifo_.push_back(v);
        }
        if (res_[a] <= eps_) ++it_[u];
      } else {
        ++it_[u];
      }
    }
    return work;
  }

  int n_ = 0, s_ = 0, t_ = 0;
  double eps_ = 0;
  std::vector<int> head_, arcs_, to_, height_, it_, queue_, fifo_;
  std::vector<char> active_, reach_;
  std::vector<double> res_, excess_;
};

enum class Up { None, Unary, Edge };     // Edge covers both p -> c and p -> aux
enum class Down { None, Unary, Edge };   // Unary: model output (s -> p)

struct ValueSpec {
  Up up = Up::None;
  Down down = Down::None;
  int up_edge = -1;    // flow edge carrying up[v]
  int up_atom = -1;    // Up::Unary: the consumer paying up[v] when on the server
  int down_edge = -1;  // flow edge carrying down[v]
};

// A contracted series chain p -> atoms[0] -> ... -> atoms[m-1] -> q.
struct Run {
  int p = -1, q = -1;
  std::vector<int> atoms;   // interior atoms, in order
  std::vector<int> values;  // m + 1 values: p->atoms[0], ..., atoms[m-1]->q
  int edge = -1;            // flow edge p -> q
};

}  // namespace

struct CutSolver::Impl {
  const int n;
  std::vector<int> node_of_atom;  // -1: interior of a run
  std::vector<int> kept_atoms;
  std::vector<ValueSpec> specs;
  std::vector<char> live;          // value needs handling (not dead, not run-internal)
  std::vector<Run> runs;
  std::vector<std::pair<int, int>> edge_ends;  // forward edges: (from node, to node)
  std::vector<int> src_edge, sink_edge;        // per atom (kept)
  std::vector<int> inf_edges;
  int s = -1, t = -1, num_nodes = 0;
  // Max-flow: push-relabel on the plain DADS graph (deep, long paths); Boykov-
  // Kolmogorov (Boost.Graph) on the compressed graph, where chains are already
  // contracted and BK measured faster (gads / throughput / parametric use it).
  bool use_bk = false;
  PushRelabel flow;
  Graph g;
  std::vector<Edge> fwd;
  // scratch
  std::vector<double> cap, unary, dp;

  Impl(const AtomDag& dag, bool compress) : n(dag.num_atoms) {
    const size_t nv = dag.values.size();
    std::vector<std::vector<int>> consumes(static_cast<size_t>(n)), produces_live(static_cast<size_t>(n));
    for (size_t v = 0; v < nv; ++v) {
      const DagValue& val = dag.values[v];
      for (int c : val.consumers) consumes[c].push_back(static_cast<int>(v));
      if (val.producer != kModelInput && (val.is_output || !val.consumers.empty()))
        produces_live[val.producer].push_back(static_cast<int>(v));
    }
    // Interior atoms of series chains.
    std::vector<char> interior(static_cast<size_t>(n), 0);
    if (compress) {
      for (int a = 0; a < n; ++a) {
        if (consumes[a].size() != 1 || produces_live[a].size() != 1) continue;
        const DagValue& vin = dag.values[consumes[a][0]];
        const DagValue& vout = dag.values[produces_live[a][0]];
        if (vin.producer == kModelInput || vin.is_output || vin.consumers.size() != 1) continue;
        if (vout.is_output || vout.consumers.size() != 1) continue;
        interior[a] = 1;
      }
    }
    live.assign(nv, 0);
    for (size_t v = 0; v < nv; ++v) live[v] = dag.values[v].is_output || !dag.values[v].consumers.empty();
    for (int a = 0; a < n; ++a) {
      if (!interior[a]) continue;
      const int vin = consumes[a][0];
      if (interior[dag.values[vin].producer]) continue;  // not the start of a run
      Run run;
      run.p = dag.values[vin].producer;
      run.values.push_back(vin);
      int cur = a;
      while (true) {
        run.atoms.push_back(cur);
        const int vout = produces_live[cur][0];
        run.values.push_back(vout);
        const int next = dag.values[vout].consumers[0];
        if (!interior[next]) {
          run.q = next;
          break;
        }
        cur = next;
      }
      for (int v : run.values) live[v] = 0;
      runs.push_back(std::move(run));
    }
    // Nodes.
    node_of_atom.assign(static_cast<size_t>(n), -1);
    for (int a = 0; a < n; ++a)
      if (!interior[a]) {
        node_of_atom[a] = num_nodes++;
        kept_atoms.push_back(a);
      }
    const int aux_base = num_nodes;
    int num_aux = 0;
    for (size_t v = 0; v < nv; ++v) {
      if (!live[v]) continue;
      const DagValue& val = dag.values[v];
      if (val.consumers.size() > 1) ++num_aux;                                   // up aux
      if (val.producer != kModelInput && !val.is_output && val.consumers.size() > 1) ++num_aux;  // down aux
    }
    num_nodes += num_aux;
    s = num_nodes++;
    t = num_nodes++;
    // Edges.
    auto add = [&](int from, int to) {
      edge_ends.emplace_back(from, to);
      return static_cast<int>(edge_ends.size()) - 1;
    };
    src_edge.assign(static_cast<size_t>(n), -1);
    sink_edge.assign(static_cast<size_t>(n), -1);
    for (int a : kept_atoms) {
      src_edge[a] = add(s, node_of_atom[a]);
      sink_edge[a] = add(node_of_atom[a], t);
    }
    specs.assign(nv, ValueSpec{});
    int next_aux = aux_base;
    for (size_t v = 0; v < nv; ++v) {
      if (!live[v]) continue;
      const DagValue& val = dag.values[v];
      ValueSpec& sp = specs[v];
      const bool from_input = val.producer == kModelInput;
      const int pn = from_input ? s : node_of_atom[val.producer];
      if (val.consumers.size() == 1) {
        if (from_input) {
          sp.up = Up::Unary;
          sp.up_atom = val.consumers[0];
        } else {
          sp.up = Up::Edge;
          sp.up_edge = add(pn, node_of_atom[val.consumers[0]]);
        }
      } else if (val.consumers.size() > 1) {
        const int u = next_aux++;
        sp.up = Up::Edge;
        sp.up_edge = add(pn, u);
        for (int c : val.consumers) inf_edges.push_back(add(u, node_of_atom[c]));
      }
      if (!from_input) {
        if (val.is_output) {
          sp.down = Down::Unary;
        } else if (val.consumers.size() == 1) {
          sp.down = Down::Edge;
          sp.down_edge = add(node_of_atom[val.consumers[0]], pn);
        } else if (val.consumers.size() > 1) {
          const int w = next_aux++;
          sp.down = Down::Edge;
          sp.down_edge = add(w, pn);
          for (int c : val.consumers) inf_edges.push_back(add(node_of_atom[c], w));
        }
      }
    }
    for (Run& run : runs) run.edge = add(node_of_atom[run.p], node_of_atom[run.q]);

    use_bk = compress;
    if (use_bk) {
      g = Graph(static_cast<size_t>(num_nodes));
      auto capmap = get(boost::edge_capacity, g);
      auto revmap = get(boost::edge_reverse, g);
      fwd.reserve(edge_ends.size());
      for (const auto& [from, to] : edge_ends) {
        Edge e = boost::add_edge(static_cast<size_t>(from), static_cast<size_t>(to), g).first;
        Edge r = boost::add_edge(static_cast<size_t>(to), static_cast<size_t>(from), g).first;
        put(revmap, e, r);
        put(revmap, r, e);
        put(capmap, e, 0.0);
        put(capmap, r, 0.0);
        fwd.push_back(e);
      }
    } else {
      flow.build(num_nodes, edge_ends);
    }
    cap.assign(edge_ends.size(), 0.0);
    unary.assign(static_cast<size_t>(n), 0.0);
  }

  // 2-state DP over a run's interior for a fixed x_p; fills dp (m x 2) and returns
  // the cost to reach q on each side through the last value.
  static double pair_cost(const CutCosts& c, int v, int x, int y) {
    if (x == y) return 0.0;
    return x == 0 ? c.up[v] : c.down[v];
  }
  double unary_cost(const CutCosts& c, const std::vector<int>& pin, int a, int x) const {
    if (!pin.empty() && pin[a] >= 0 && pin[a] != x) return std::numeric_limits<double>::infinity();
    return x == 0 ? c.device[a] : c.server[a];
  }
  void run_forward(const Run& run, const CutCosts& c, const std::vector<int>& pin, int xp) {
    const size_t m = run.atoms.size();
    dp.resize(2 * m);
    for (int x = 0; x < 2; ++x)
      dp[x] = unary_cost(c, pin, run.atoms[0], x) + pair_cost(c, run.values[0], xp, x);
    for (size_t k = 1; k < m; ++k)
      for (int y = 0; y < 2; ++y) {
        const int v = run.values[k];
        const double best = std::min(dp[2 * (k - 1) + 0] + pair_cost(c, v, 0, y),
                                     dp[2 * (k - 1) + 1] + pair_cost(c, v, 1, y));
        dp[2 * k + y] = unary_cost(c, pin, run.atoms[k], y) + best;
      }
  }
  // The run's cost for a fixed x_p and both x_q: {g(x_p, 0), g(x_p, 1)} (one forward pass).
  std::pair<double, double> run_table(const Run& run, const CutCosts& c, const std::vector<int>& pin, int xp) {
    run_forward(run, c, pin, xp);
    const size_t m = run.atoms.size();
    const int v = run.values[m];
    auto to = [&](int xq) {
      return std::min(dp[2 * (m - 1)] + pair_cost(c, v, 0, xq), dp[2 * (m - 1) + 1] + pair_cost(c, v, 1, xq));
    };
    return {to(0), to(1)};
  }
  void run_backtrack(const Run& run, const CutCosts& c, const std::vector<int>& pin, int xp, int xq,
                     std::vector<int>& x) {
    run_forward(run, c, pin, xp);
    const size_t m = run.atoms.size();
    int next = xq;
    for (size_t k = m; k-- > 0;) {
      const int v = run.values[k + 1];
      const double c0 = dp[2 * k] + pair_cost(c, v, 0, next);
      const double c1 = dp[2 * k + 1] + pair_cost(c, v, 1, next);
      const int xk = c1 < c0 ? 1 : 0;
      x[run.atoms[k]] = xk;
      next = xk;
    }
  }

  std::vector<int> solve(const CutCosts& c, const std::vector<int>& pin) {
    std::fill(cap.begin(), cap.end(), 0.0);
    for (int a : kept_atoms) unary[a] = c.server[a] - c.device[a];
    for (size_t v = 0; v < specs.size(); ++v) {
      if (!live[v]) continue;
      const ValueSpec& sp = specs[v];
      if (sp.up == Up::Unary) unary[sp.up_atom] += c.up[v];
      else if (sp.up == Up::Edge) cap[sp.up_edge] += c.up[v];
    }
    // Down costs: model outputs pay on their producer's server side.
    for (size_t v = 0; v < specs.size(); ++v) {
      if (!live[v]) continue;
      const ValueSpec& sp = specs[v];
      if (sp.down == Down::Unary) unary[producer_[v]] += c.down[v];
      else if (sp.down == Down::Edge) cap[sp.down_edge] += c.down[v];
    }
    for (const Run& run : runs) {
      const auto [A, B] = run_table(run, c, pin, 0);
      const auto [C, D] = run_table(run, c, pin, 1);
      unary[run.p] += C - A;
      unary[run.q] += D - C;
      cap[run.edge] += std::max(0.0, B + C - A - D);
    }
    for (int a : kept_atoms) {
      cap[src_edge[a]] = std::max(0.0, unary[a]);
      cap[sink_edge[a]] = std::max(0.0, -unary[a]);
    }
    double total = 0;
    for (double x : cap) total += x;
    const double big = 2 * total + 1;
    for (int e : inf_edges) cap[e] = big;
    if (!pin.empty())
      for (int a : kept_atoms) {
        if (pin[a] == 0) cap[src_edge[a]] += big;
        else if (pin[a] == 1) cap[sink_edge[a]] += big;
      }
    std::vector<int> x(static_cast<size_t>(n), 0);
    if (use_bk) {
      auto capmap = get(boost::edge_capacity, g);
      for (size_t e = 0; e < fwd.size(); ++e) put(capmap, fwd[e], cap[e]);
      boost::boykov_kolmogorov_max_flow(g, static_cast<size_t>(s), static_cast<size_t>(t));
      auto color = get(boost::vertex_color, g);
      for (int a : kept_atoms)
        x[a] = get(color, static_cast<size_t>(node_of_atom[a])) == boost::black_color ? 0 : 1;
    } else {
      flow.run(cap, s, t);
      const std::vector<char>& sink = flow.sink_side();  // the rest is a minimum cut's source side
      for (int a : kept_atoms) x[a] = sink[node_of_atom[a]] ? 1 : 0;
    }
    for (const Run& run : runs) run_backtrack(run, c, pin, x[run.p], x[run.q], x);
    return x;
  }

  std::vector<int> producer_;  // per value: producer atom (kModelInput for inputs)
};

CutSolver::CutSolver(const AtomDag& dag, bool compress) {
  dag.validate();
  impl_ = std::make_unique<Impl>(dag, compress);
  impl_->producer_.reserve(dag.values.size());
  for (const DagValue& v : dag.values) impl_->producer_.push_back(v.producer);
  dag_ = std::make_shared<AtomDag>(dag);
}
CutSolver::~CutSolver() = default;
CutSolver::CutSolver(CutSolver&&) noexcept = default;
CutSolver& CutSolver::operator=(CutSolver&&) noexcept = default;

std::vector<int> CutSolver::solve(const CutCosts& costs, const std::vector<int>& pin) {
  return solve(costs, pin, nullptr);
}

std::vector<int> CutSolver::solve(const CutCosts& costs, const std::vector<int>& pin, double* value) {
  const size_t n = static_cast<size_t>(impl_->n);
  TESSERA_CHECK(costs.device.size() == n && costs.server.size() == n, InvalidArgument,
                "CutCosts.device/server have {}/{} entries, expected num_atoms = {}", costs.device.size(),
                costs.server.size(), n);
  TESSERA_CHECK(costs.up.size() == impl_->specs.size() && costs.down.size() == impl_->specs.size(),
                InvalidArgument, "CutCosts.up/down have {}/{} entries, expected {} values", costs.up.size(),
                costs.down.size(), impl_->specs.size());
  TESSERA_CHECK(pin.empty() || pin.size() == n, InvalidArgument, "pin has {} entries, expected num_atoms = {}",
                pin.size(), n);
  std::vector<int> x = impl_->solve(costs, pin);
  if (value) *value = cut_value(*dag_, costs, x);
  return x;
}

int CutSolver::num_nodes() const { return impl_->num_nodes; }
int CutSolver::num_edges() const { return static_cast<int>(impl_->edge_ends.size()); }
int CutSolver::num_flow_atoms() const { return static_cast<int>(impl_->kept_atoms.size()); }

}  // namespace tessera::plan
