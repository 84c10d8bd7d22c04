// plan/pipeline.cpp -- N-node pipeline plans: metrics, DP, exhaustive, equal layers
// (see tessera/plan/pipeline.h for the model and the DP's state and complexity).
#include "tessera/plan/pipeline.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>
#include <random>

#include "tessera/core/error.h"

#include <fmt/ranges.h>

namespace tessera::plan {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Per cut position and per atom, what every plan of this DAG reads.
struct Prefix {
  int n = 0;
  std::vector<double> cross;                 // cross[p]: bytes live across the cut before atom p (0..n)
  std::vector<double> out_bytes;             // prefix sums of the bytes of model outputs atoms produce
  std::vector<double> params;                // prefix sums of parameter bytes
  std::vector<std::vector<double>> compute;  // per node: prefix sums of compute ms (x its load)
  std::vector<int> pinned_any;                // prefix counts of pinned atoms
  std::vector<std::vector<int>> pinned_to;    // per node: prefix counts of atoms pinned to it
  // atoms of [p, q) pinned to a node other than u
  int pinned_elsewhere(int u, int p, int q) const {
    return (pinned_any[q] - pinned_any[p]) - (pinned_to[u][q] - pinned_to[u][p]);
  }

  Prefix(const AtomDag& dag, const PipelineNetwork& net) : n(dag.num_atoms) {
    cross.assign(static_cast<size_t>(n) + 2, 0.0);
    out_bytes.assign(static_cast<size_t>(n) + 1, 0.0);
    for (const auto& v : dag.values) {
      if (v.is_output && v.producer != kModelInput) out_bytes[v.producer + 1] += v.bytes;
      if (v.consumers.empty()) continue;
      const int from = v.producer + 1, to = v.consumers.back();  // live for cuts p in [producer + 1, last consumer]
      cross[from] += v.bytes;
      cross[to + 1] -= v.bytes;
    }
    for (int p = 1; p <= n; ++p) cross[p] += cross[p - 1], out_bytes[p] += out_bytes[p - 1];
    params.assign(static_cast<size_t>(n) + 1, 0.0);
    for (int a = 0; a < n; ++a) params[a + 1] = params[a] + (dag.param_bytes.empty() ? 0.0 : dag.param_bytes[a]);
    for (const auto& node : net.nodes) {
      std::vector<double> c(static_cast<size_t>(n) + 1, 0.0);
      for (int a = 0; a < n; ++a) c[a + 1] = c[a] + node.compute_ms[a] * node.load;
      compute.push_back(std::move(c));
    }
    // pins: per node, prefix counts of atoms pinned to it, and of atoms pinned anywhere
    pinned_any.assign(static_cast<size_t>(n) + 1, 0);
    pinned_to.assign(net.nodes.size(), std::vector<int>(static_cast<size_t>(n) + 1, 0));
    for (int a = 0; a < n; ++a) {
      const int to = net.pin.empty() ? -1 : net.pin[a];
      pinned_any[a + 1] = pinned_any[a] + (to >= 0);
      for (size_t u = 0; u < net.nodes.size(); ++u) pinned_to[u][a + 1] = pinned_to[u][a] + (to == static_cast<int>(u));
    }
  }
  double ret(int p, int q) const { return out_bytes[q] - out_bytes[p]; }
};

double bw(const PipelineNetwork& net, int a, int b) { return net.bandwidth_mbps[a][b]; }
double rtt(const PipelineNetwork& net, int a, int b) { return net.rtt_ms.empty() ? 0.0 : net.rtt_ms[a][b]; }
double ser_ms(double bytes, double mbps) { return bytes <= 0 ? 0.0 : bytes * 8e-3 / mbps; }

// The costs of one stage [p, q) on node u after a stage on node w (w < 0: the first stage).
struct StageCost {
  bool ok = false;
  double compute = 0, in_link = 0, in_rtt = 0, ret_link = 0, ret_rtt = 0;
  double tile_neck = 0;  // split stages: the slowest helper resource (tile compute, its links)
  double tile_lat = 0;   // split stages: the slowest helper's round (send, compute, return)
};

StageCost stage_cost(const Prefix& pf, const PipelineNetwork& net, int w, int u, int p, int q) {
  StageCost c;
  if (pf.params[q] - pf.params[p] > net.nodes[u].memory_bytes) return c;
  if (pf.pinned_elsewhere(u, p, q) > 0) return c;
  if (w >= 0 && w != u) {
    const double bytes = pf.cross[p];
    if (bytes > 0) {
      if (!(bw(net, w, u) > 0)) return c;
      c.in_link = ser_ms(bytes, bw(net, w, u));
      c.in_rtt = rtt(net, w, u) / 2;
    }
  }
  const double back = u == 0 ? 0.0 : pf.ret(p, q);
  if (back > 0) {
    if (!(bw(net, u, 0) > 0)) return c;
    c.ret_link = ser_ms(back, bw(net, u, 0));
    c.ret_rtt = rtt(net, u, 0) / 2;
  }
  c.compute = pf.compute[u][q] - pf.compute[u][p];
  c.ok = true;
  return c;
}

// The stage [p, q) on node u split by rows with `helpers` (tiling.h): each node's tile in
// proportion to its speed on the stage, its compute the stage's x its slice's share of the
// input rows (the halo is recomputed), each helper's slice and rows over its links.
// Tile shares: each node's speed on the stage (1 / its cost; a free node counts 1000x the slowest).
std::vector<double> tile_shares(const std::vector<double>& cost) {
  const double top = *std::max_element(cost.begin(), cost.end());
  std::vector<double> share;
  for (double c0 : cost) share.push_back(c0 > 0 ? 1.0 / c0 : (top > 0 ? 1e3 / top : 1.0));
  return share;
}

bool split_cost(const Prefix& pf, const PipelineNetwork& net, int u, const std::vector<int>& helpers, int p, int q,
                StageCost& c) {
  const auto& T = net.tiling;
  std::vector<RowOp> ops;
  if (helpers.empty() || q <= p || !T.range(p, q, ops)) return false;
  if (pf.pinned_any[q] - pf.pinned_any[p] > 0) return false;  // a pinned atom runs on its node alone
  std::vector<int> who = {u};
  who.insert(who.end(), helpers.begin(), helpers.end());
  std::vector<double> cost;
  for (int x : who) {
    if (pf.params[q] - pf.params[p] > net.nodes[x].memory_bytes) return false;
    cost.push_back(pf.compute[x][q] - pf.compute[x][p]);
  }
  std::vector<TileWindow> tiles;
  try {
    tiles = split_rows(ops, T.rows_in[p], tile_shares(cost));
  } catch (const Error&) {
    return false;  // fewer output rows than tiles
  }
  const double rows_in = T.rows_in[p], rows_out = T.rows_out[q - 1];
  // each operator's work on a tile: the atom's cost spread over its operators, x the tile's rows there
  auto work = [&](size_t i) {
    std::vector<double> op_ms;
    for (int a = p; a < q; ++a)
      for (size_t j = 0; j < T.ops[a].size(); ++j)
        op_ms.push_back(net.nodes[who[i]].compute_ms[a] / static_cast<double>(T.ops[a].size()));
    return tile_work(ops, T.rows_in[p], tiles[i], op_ms);
  };
  c.compute = work(0);
  for (size_t i = 1; i < who.size(); ++i) {
    const int h = who[i];
    if (!(bw(net, u, h) > 0) || !(bw(net, h, u) > 0)) return false;
    const double up = ser_ms(T.in_bytes[p] * (tiles[i].in_hi - tiles[i].in_lo) / rows_in, bw(net, u, h));
    const double down = ser_ms(T.out_bytes[q - 1] * (tiles[i].out_hi - tiles[i].out_lo) / rows_out, bw(net, h, u));
    c.tile_neck = std::max({c.tile_neck, work(i), up, down});
    c.tile_lat = std::max(c.tile_lat, up + rtt(net, u, h) / 2 + work(i) + down + rtt(net, h, u) / 2);
  }
  return true;
}

double combine(Objective obj, double before, const StageCost& c) {
  if (obj == Objective::Throughput) return std::max({before, c.compute, c.in_link, c.ret_link, c.tile_neck});
  return before + std::max(c.compute, c.tile_lat) + c.in_link + c.in_rtt + c.ret_link + c.ret_rtt;
}

// stage_cost, then the split's figures when the stage has helpers; false: the split is not possible.
StageCost any_stage_cost(const Prefix& pf, const PipelineNetwork& net, int w, int u, const std::vector<int>& helpers,
                         int p, int q) {
  StageCost c = stage_cost(pf, net, w, u, p, q);
  if (c.ok && !helpers.empty()) c.ok = split_cost(pf, net, u, helpers, p, q, c);
  return c;
}

PipelinePlan bad(std::string algorithm, PlanStatus status, std::string why) {
  PipelinePlan p;
  p.algorithm = std::move(algorithm);
  p.status = status;
  p.reason = std::move(why);
  return p;
}

}  // namespace

bool PipelineTiling::range(int p, int q, std::vector<RowOp>& out) const {
  out.clear();
  if (chain.empty() || p < 0 || q > static_cast<int>(chain.size()) || p >= q || chain[p] < 0) return false;
  for (int a = p; a < q; ++a) {
    if (chain[a] != chain[p]) return false;
    out.insert(out.end(), ops[a].begin(), ops[a].end());
  }
  return true;
}

void PipelineTiling::validate(int n) const {
  if (chain.empty()) return;
  const size_t N = static_cast<size_t>(n);
  TESSERA_CHECK(chain.size() == N && ops.size() == N && rows_in.size() == N && rows_out.size() == N &&
                    in_bytes.size() == N && out_bytes.size() == N,
                InvalidArgument, "tiling: every per-atom array needs {} entries (chain has {})", n, chain.size());
  TESSERA_CHECK(max_tiles >= 1 && max_tiles <= 8, InvalidArgument, "tiling: max_tiles = {} (1 to 8)", max_tiles);
  for (int a = 0; a < n; ++a) {
    if (chain[a] < 0) continue;
    TESSERA_CHECK(rows_in[a] >= 1 && rows_out[a] >= 1 && in_bytes[a] >= 0 && out_bytes[a] >= 0, InvalidArgument,
                  "tiling: atom {} has rows {} -> {} and bytes {} -> {}", a, rows_in[a], rows_out[a], in_bytes[a],
                  out_bytes[a]);
    TESSERA_CHECK(plan::rows_out(ops[a], rows_in[a]) == rows_out[a], InvalidArgument,
                  "tiling: atom {}'s operators make {} rows of {}, not {}", a, plan::rows_out(ops[a], rows_in[a]),
                  rows_in[a], rows_out[a]);
  }
}

int PipelineNetwork::index(const std::string& name) const {
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].name == name) return static_cast<int>(i);
  return -1;
}

void PipelineNetwork::validate(const AtomDag& dag) const {
  dag.validate();
  tiling.validate(dag.num_atoms);
  TESSERA_CHECK(pin.empty() || static_cast<int>(pin.size()) == dag.num_atoms, InvalidArgument,
                "pin has {} entries, the model has {} atoms", pin.size(), dag.num_atoms);
  for (size_t a = 0; a < pin.size(); ++a)
    TESSERA_CHECK(pin[a] >= -1 && pin[a] < static_cast<int>(nodes.size()), InvalidArgument,
                  "pin[{}] ({}) = {} is not a node in [0, {}) (or -1)", a, dag.atom_label(static_cast<int>(a)),
                  pin[a], nodes.size());
  const size_t K = nodes.size();
  TESSERA_CHECK(K >= 1, InvalidArgument, "a pipeline network needs at least the device (node 0)");
  for (size_t i = 0; i < K; ++i) {
    const auto& nd = nodes[i];
    TESSERA_CHECK(static_cast<int>(nd.compute_ms.size()) == dag.num_atoms, InvalidArgument,
                  "node {} ('{}') has {} atom costs, the model has {} atoms", i, nd.name, nd.compute_ms.size(),
                  dag.num_atoms);
    for (size_t a = 0; a < nd.compute_ms.size(); ++a)
      TESSERA_CHECK(std::isfinite(nd.compute_ms[a]) && nd.compute_ms[a] >= 0, InvalidArgument,
                    "node '{}': compute_ms[{}] = {} must be finite and >= 0", nd.name, a, nd.compute_ms[a]);
    TESSERA_CHECK(nd.memory_bytes >= 0, InvalidArgument, "node '{}': memory must be >= 0", nd.name);
    TESSERA_CHECK(std::isfinite(nd.load) && nd.load > 0, InvalidArgument, "node '{}': load = {} must be > 0",
                  nd.name, nd.load);
    for (size_t j = 0; j < i; ++j)
      TESSERA_CHECK(nodes[j].name.empty() || nodes[j].name != nd.name, InvalidArgument,
                    "two nodes are named '{}'", nd.name);
  }
  TESSERA_CHECK(bandwidth_mbps.size() == K, InvalidArgument, "bandwidth_mbps has {} rows for {} nodes",
                bandwidth_mbps.size(), K);
  TESSERA_CHECK(rtt_ms.empty() || rtt_ms.size() == K, InvalidArgument, "rtt_ms has {} rows for {} nodes",
                rtt_ms.size(), K);
  for (size_t i = 0; i < K; ++i) {
    TESSERA_CHECK(bandwidth_mbps[i].size() == K, InvalidArgument, "bandwidth_mbps[{}] has {} entries for {} nodes",
                  i, bandwidth_mbps[i].size(), K);
    TESSERA_CHECK(rtt_ms.empty() || rtt_ms[i].size() == K, InvalidArgument, "rtt_ms[{}] has {} entries", i,
                  rtt_ms.empty() ? 0 : rtt_ms[i].size());
    for (size_t j = 0; j < K; ++j) {
      const double b = bandwidth_mbps[i][j];
      TESSERA_CHECK(std::isfinite(b) && b >= 0 && b <= 1e9, InvalidArgument,
                    "bandwidth from '{}' to '{}' = {} must be in [0, 1e9] Mbit/s (0: unreachable)", nodes[i].name,
                    nodes[j].name, b);
      TESSERA_CHECK(i != j || b == 0, InvalidArgument, "node '{}' has a link to itself", nodes[i].name);
      if (!rtt_ms.empty())
        TESSERA_CHECK(std::isfinite(rtt_ms[i][j]) && rtt_ms[i][j] >= 0, InvalidArgument,
                      "rtt from '{}' to '{}' must be >= 0", nodes[i].name, nodes[j].name);
    }
  }
}

std::vector<TileWindow> stage_tiles(const PipelineNetwork& net, const Stage& stage) {
  TESSERA_CHECK(!stage.helpers.empty() && !stage.atoms.empty(), InvalidArgument, "the stage is not split");
  const int p = stage.atoms.front(), q = stage.atoms.back() + 1;
  std::vector<RowOp> ops;
  TESSERA_CHECK(net.tiling.range(p, q, ops), InvalidArgument,
                "atoms {}..{} are not one row chain of the tiling: the stage cannot be split by rows", p, q - 1);
  std::vector<double> cost;
  std::vector<int> who = {stage.node};
  who.insert(who.end(), stage.helpers.begin(), stage.helpers.end());
  for (int x : who) {
    TESSERA_CHECK(x >= 0 && x < static_cast<int>(net.nodes.size()), InvalidArgument, "node {} out of range", x);
    double ms = 0;
    for (int a = p; a < q; ++a) ms += net.nodes[x].compute_ms[a];
    cost.push_back(ms);
  }
  return split_rows(ops, net.tiling.rows_in[p], tile_shares(cost));
}

PipelinePlan evaluate_pipeline(const AtomDag& dag, const PipelineNetwork& net, const std::vector<Stage>& stages) {
  net.validate(dag);
  TESSERA_CHECK(!stages.empty() && stages.front().node == 0, InvalidArgument,
                "a pipeline starts on node 0 (the device, which holds the inputs)");
  const Prefix pf(dag, net);
  PipelinePlan plan;
  plan.algorithm = "evaluate";
  plan.stages = stages;
  int next = 0, prev = -1;
  double lat = 0, neck = 0;
  std::vector<char> used(net.nodes.size(), 0);
  for (size_t k = 0; k < stages.size(); ++k) {
    const auto& s = stages[k];
    TESSERA_CHECK(s.node >= 0 && s.node < static_cast<int>(net.nodes.size()), InvalidArgument,
                  "stage {} is on node {}: the network has {} nodes", k, s.node, net.nodes.size());
    TESSERA_CHECK(k == 0 || !s.atoms.empty(), InvalidArgument, "stage {} is empty (only the device's may be)", k);
    for (size_t i = 0; i < s.atoms.size(); ++i)
      TESSERA_CHECK(s.atoms[i] == next + static_cast<int>(i), InvalidArgument,
                    "stage {} is not the next contiguous run of the topological order (expected atom {}, got {})", k,
                    next + static_cast<int>(i), s.atoms[i]);
    const int p = next, q = next + static_cast<int>(s.atoms.size());
    for (int h : s.helpers) {
      TESSERA_CHECK(h > 0 && h < static_cast<int>(net.nodes.size()) && h != s.node, InvalidArgument,
                    "stage {}'s helper {} is not another server of the network", k, h);
      TESSERA_CHECK(!used[h], InvalidArgument, "node '{}' is in two stages", net.nodes[h].name);
      used[h] = 1;
    }
    TESSERA_CHECK(!used[s.node] || k == 0, InvalidArgument, "node '{}' is in two stages", net.nodes[s.node].name);
    used[s.node] = 1;
    std::vector<RowOp> ops;
    TESSERA_CHECK(s.helpers.empty() || (k > 0 && net.tiling.range(p, q, ops)), InvalidArgument,
                  "stage {} (atoms {}..{}) cannot be split by rows: {}", k, p, q - 1,
                  k == 0 ? "the device's stage is never split" : "its atoms are not one row chain of the tiling");
    const StageCost c = any_stage_cost(pf, net, prev, s.node, s.helpers, p, q);
    if (!c.ok && pf.pinned_elsewhere(s.node, p, q) > 0) {
      int a = p;
      while (net.pin[a] < 0 || net.pin[a] == s.node) ++a;
      plan.status = PlanStatus::Infeasible;
      plan.reason = fmt::format("stage {} on '{}' holds {}, which is pinned to '{}'", k, net.nodes[s.node].name,
                                dag.atom_label(a), net.nodes[net.pin[a]].name);
    } else if (!c.ok) {
      const bool mem = pf.params[q] - pf.params[p] > net.nodes[s.node].memory_bytes;
      plan.status = mem ? PlanStatus::Infeasible : PlanStatus::BadInput;
      plan.reason = mem ? fmt::format("node '{}' holds {:.0f} bytes of weights in stage {}, over its {:.0f}",
                                      net.nodes[s.node].name, pf.params[q] - pf.params[p], k,
                                      net.nodes[s.node].memory_bytes)
                        : fmt::format("stage {} on '{}' cannot be reached (or cannot return its results{})", k,
                                      net.nodes[s.node].name, s.helpers.empty() ? "" : ", or reach its helpers");
    }
    plan.stage_ms.push_back(c.compute);
    plan.tile_ms.push_back(c.tile_neck);
    if (k > 0) plan.link_ms.push_back(c.in_link);
    lat += std::max(c.compute, c.tile_lat) + c.in_link + c.in_rtt + c.ret_link + c.ret_rtt;
    const double here = std::max({c.compute, c.in_link, c.ret_link, c.tile_neck});
    if (here > neck) {
      neck = here;
      plan.bottleneck = here == c.compute ? fmt::format("stage {} on {}", k, net.nodes[s.node].name)
                        : here == c.in_link
                            ? fmt::format("link {} -> {}", net.nodes[prev].name, net.nodes[s.node].name)
                        : here == c.ret_link
                            ? fmt::format("results {} -> {}", net.nodes[s.node].name, net.nodes[0].name)
                            : fmt::format("a tile of stage {} (helpers of {})", k, net.nodes[s.node].name);
    }
    prev = s.node;
    next = q;
  }
  TESSERA_CHECK(next == dag.num_atoms, InvalidArgument, "the stages cover atoms [0, {}), the model has {}", next,
                dag.num_atoms);
  plan.latency_ms = lat;
  plan.bottleneck_ms = neck;
  plan.throughput_fps = neck > 0 ? 1000.0 / neck : kInf;
  return plan;
}

PipelinePlan plan_pipeline_dp(const AtomDag& dag, const PipelineNetwork& net, const std::vector<int>& order,
                              Objective objective) {
  net.validate(dag);
  TESSERA_CHECK(objective != Objective::Energy, Unsupported, "pipeline plans optimise throughput or latency");
  const int K = static_cast<int>(order.size());
  TESSERA_CHECK(K >= 1 && order[0] == 0, InvalidArgument, "the node order starts with node 0 (the device)");
  std::vector<char> seen(net.nodes.size(), 0);
  for (int u : order) {
    TESSERA_CHECK(u >= 0 && u < static_cast<int>(net.nodes.size()), InvalidArgument, "unknown node {} in the order", u);
    TESSERA_CHECK(!seen[u], InvalidArgument, "node '{}' appears twice in the order", net.nodes[u].name);
    seen[u] = 1;
  }
  const Prefix pf(dag, net);
  const int n = dag.num_atoms;
  // dp[t][k][q]: best objective with the stages covering [0, q) on positions 0..k of the order,
  // the last stage split over its node order[k - t] and t helpers order[k - t + 1 .. k] (t = 0:
  // not split); the next stage's input comes from order[k - t]. from: (p, t of the stage before).
  const int T = net.tiling.empty() ? 1 : std::max(1, net.tiling.max_tiles);
  auto grid = [&](auto init) {
    using V = decltype(init);
    return std::vector<std::vector<std::vector<V>>>(
        static_cast<size_t>(T),
        std::vector<std::vector<V>>(static_cast<size_t>(K), std::vector<V>(static_cast<size_t>(n) + 1, init)));
  };
  auto dp = grid(kInf);
  auto from = grid(std::pair<int, int>{-1, 0});
  for (int q = 0; q <= n; ++q) {
    const StageCost c = stage_cost(pf, net, -1, 0, 0, q);
    if (c.ok) dp[0][0][q] = combine(objective, 0.0, c), from[0][0][q] = {0, 0};
  }
  std::vector<int> helpers;
  for (int k0 = 0; k0 + 1 < K; ++k0)        // the stage before ends at position k0
    for (int t0 = 0; t0 < T; ++t0) {         // ... with t0 helpers
      if (k0 - t0 < 0) continue;
      const int w = order[k0 - t0];
      for (int t = 0; t < T && k0 + 1 + t < K; ++t) {  // this stage: order[k0 + 1] and t helpers
        const int k = k0 + 1 + t;
        helpers.assign(order.begin() + k0 + 2, order.begin() + k + 1);
        for (int q = 1; q <= n; ++q)
          for (int p = 0; p < q; ++p) {
            if (dp[t0][k0][p] == kInf) continue;
            const StageCost c = any_stage_cost(pf, net, w, order[k0 + 1], helpers, p, q);
            if (!c.ok) continue;
            const double v = combine(objective, dp[t0][k0][p], c);
            if (v < dp[t][k][q]) dp[t][k][q] = v, from[t][k][q] = {p, t0};
          }
      }
    }
  int best_k = -1, best_t = 0;
  for (int t = 0; t < T; ++t)
    for (int k = 0; k < K; ++k)
      if (dp[t][k][n] < kInf && (best_k < 0 || dp[t][k][n] < dp[best_t][best_k][n])) best_k = k, best_t = t;
  if (best_k < 0)
    return bad("dp", PlanStatus::Infeasible,
               "no partition over this node order meets every node's memory and pins and reaches every stage");
  std::vector<Stage> stages;
  for (int k = best_k, t = best_t, q = n; k >= 0;) {
    const auto [p, t0] = from[t][k][q];
    Stage st;
    st.node = order[k - t];
    st.helpers.assign(order.begin() + k - t + 1, order.begin() + k + 1);
    for (int a = p; a < q; ++a) st.atoms.push_back(a);
    stages.insert(stages.begin(), std::move(st));
    if (k == 0) break;
    q = p, k = k - t - 1, t = t0;
  }
  PipelinePlan plan = evaluate_pipeline(dag, net, stages);
  plan.algorithm = "dp";
  plan.status = PlanStatus::Optimal;
  plan.reason = "optimal over contiguous stages for this node order";
  return plan;
}

PipelinePlan plan_pipeline_convex_brute_force(const AtomDag& dag, const PipelineNetwork& net, const std::vector<int>& order,
                                              Objective objective, int max_atoms) {
  net.validate(dag);
  const int n = dag.num_atoms, K = static_cast<int>(order.size());
  TESSERA_CHECK(n <= max_atoms, InvalidArgument, "convex brute force over {} atoms (at most {})", n, max_atoms);
  TESSERA_CHECK(K >= 1 && order[0] == 0, InvalidArgument, "the node order starts with node 0 (the device)");
  // per atom: the values it reads (their producers bound its stage from below)
  std::vector<std::vector<int>> reads(static_cast<size_t>(n));
  for (size_t v = 0; v < dag.values.size(); ++v)
    for (int c : dag.values[v].consumers) reads[c].push_back(static_cast<int>(v));
  std::vector<int> label(static_cast<size_t>(n), 0);
  double best = kInf;
  std::vector<int> best_label;
  auto value_of = [&](int m, Objective obj) -> double {  // the labelling's objective over stages 0..m-1, kInf if not a plan
    std::vector<double> comp(m, 0), params(m, 0);
    for (int a = 0; a < n; ++a) {
      comp[label[a]] += net.nodes[order[label[a]]].compute_ms[a] * net.nodes[order[label[a]]].load;
      params[label[a]] += dag.param_bytes.empty() ? 0.0 : dag.param_bytes[a];
      if (!net.pin.empty() && net.pin[a] >= 0 && net.pin[a] != order[label[a]]) return kInf;
    }
    double neck = 0, lat = 0;
    for (int s0 = 0; s0 < m; ++s0) {
      if (params[s0] > net.nodes[order[s0]].memory_bytes) return kInf;
      neck = std::max(neck, comp[s0]);
      lat += comp[s0];
    }
    std::vector<double> cross(m, 0), back(m, 0);
    for (const auto& v : dag.values) {
      const int from = v.producer == kModelInput ? 0 : label[v.producer];
      int last = from;
      for (int c : v.consumers) last = std::max(last, label[c]);
      for (int i = from; i < last; ++i) cross[i] += v.bytes;  // carried across cuts from..last-1
      if (v.is_output && from > 0) back[from] += v.bytes;
    }
    for (int i = 0; i + 1 < m; ++i) {
      if (cross[i] <= 0) continue;
      const int a = order[i], b = order[i + 1];
      if (!(net.bandwidth_mbps[a][b] > 0)) return kInf;
      const double ms = ser_ms(cross[i], net.bandwidth_mbps[a][b]);
      neck = std::max(neck, ms);
      lat += ms + rtt(net, a, b) / 2;
    }
    for (int s0 = 1; s0 < m; ++s0) {
      if (back[s0] <= 0) continue;
      const int a = order[s0];
      if (!(net.bandwidth_mbps[a][0] > 0)) return kInf;
      const double ms = ser_ms(back[s0], net.bandwidth_mbps[a][0]);
      neck = std::max(neck, ms);
      lat += ms + rtt(net, a, 0) / 2;
    }
    return obj == Objective::Throughput ? neck : lat;
  };
  std::function<void(int, int)> rec = [&](int a, int top) {  // top: the highest stage used so far
    if (a == n) {
      std::vector<char> used(static_cast<size_t>(top) + 1, 0);
      for (int x : label) used[x] = 1;
      for (int s0 = 1; s0 <= top; ++s0)
        if (!used[s0]) return;  // server stages are non-empty and on a prefix of the order
      const double v = value_of(top + 1, objective);
      if (v < best) best = v, best_label = label;
      return;
    }
    int lo = 0;
    for (int v : reads[a])
      if (dag.values[v].producer != kModelInput) lo = std::max(lo, label[dag.values[v].producer]);
    for (int s0 = lo; s0 < K && s0 <= top + 1; ++s0) {
      label[a] = s0;
      rec(a + 1, std::max(top, s0));
    }
  };
  rec(0, 0);
  if (best_label.empty()) return bad("convex_brute_force", PlanStatus::Infeasible, "no convex partition is a plan");
  PipelinePlan plan;
  plan.algorithm = "convex_brute_force";
  plan.status = PlanStatus::Optimal;
  plan.reason = "optimal over every convex partition on a prefix of this node order";
  const int m = *std::max_element(best_label.begin(), best_label.end()) + 1;
  plan.stages.resize(static_cast<size_t>(m));
  for (int s0 = 0; s0 < m; ++s0) plan.stages[s0].node = order[s0];
  for (int a = 0; a < n; ++a) plan.stages[best_label[a]].atoms.push_back(a);
  label = best_label;
  plan.bottleneck_ms = value_of(m, Objective::Throughput);
  plan.throughput_fps = plan.bottleneck_ms > 0 ? 1000.0 / plan.bottleneck_ms : kInf;
  plan.latency_ms = value_of(m, Objective::Latency);
  return plan;
}

PipelinePlan plan_pipeline_exhaustive(const AtomDag& dag, const PipelineNetwork& net, Objective objective) {
  net.validate(dag);
  const int K = static_cast<int>(net.nodes.size());
  TESSERA_CHECK(K <= 8, InvalidArgument, "exhaustive search over {} nodes would try too many orders (at most 8)", K);
  PipelinePlan best = bad("exhaustive", PlanStatus::Infeasible, "no node order admits a plan");
  auto value = [&](const PipelinePlan& p) { return objective == Objective::Throughput ? p.bottleneck_ms : p.latency_ms; };
  std::vector<int> servers(static_cast<size_t>(K - 1));
  std::iota(servers.begin(), servers.end(), 1);
  for (int mask = 0; mask < (1 << (K - 1)); ++mask) {
    std::vector<int> subset;
    for (int i = 0; i < K - 1; ++i)
      if (mask >> i & 1) subset.push_back(servers[i]);
    do {
      std::vector<int> order = {0};
      order.insert(order.end(), subset.begin(), subset.end());
      PipelinePlan p = plan_pipeline_dp(dag, net, order, objective);
      if (p.ok() && (!best.ok() || value(p) < value(best))) best = std::move(p);
    } while (std::next_permutation(subset.begin(), subset.end()));
  }
  if (best.ok()) {
    best.algorithm = "exhaustive";
    best.reason = "optimal over contiguous stages and every node order";
  }
  return best;
}

PipelinePlan plan_pipeline_pso_dp(const AtomDag& dag, const PipelineNetwork& net, const std::vector<int>& order,
                                  Objective objective, const PsoOptions& o) {
  net.validate(dag);
  TESSERA_CHECK(o.particles >= 1 && o.iterations >= 0, InvalidArgument,
                "pso_dp needs particles >= 1 and iterations >= 0, got {} and {}", o.particles, o.iterations);
  TESSERA_CHECK(!order.empty() && order[0] == 0, InvalidArgument, "the node order starts with node 0 (the device)");
  const int S = static_cast<int>(net.nodes.size()) - 1;  // servers 1..K-1, dimension s -> node s + 1
  auto value = [&](const PipelinePlan& p) { return objective == Objective::Throughput ? p.bottleneck_ms : p.latency_ms; };
  std::map<std::vector<int>, PipelinePlan> memo;
  auto order_of = [&](const std::vector<double>& x) {
    std::vector<int> servers;
    for (int s = 0; s < S; ++s)
      if (x[s] > 0.5) servers.push_back(s);
    std::stable_sort(servers.begin(), servers.end(), [&](int a, int b) { return x[a] > x[b]; });
    std::vector<int> ord = {0};
    for (int s : servers) ord.push_back(s + 1);
    return ord;
  };
  auto eval = [&](const std::vector<int>& ord) {  // the DP of an order, memoised
    auto it = memo.find(ord);
    if (it == memo.end()) it = memo.emplace(ord, plan_pipeline_dp(dag, net, ord, objective)).first;
    return it->second.ok() ? value(it->second) : kInf;
  };
  auto fitness = [&](const std::vector<double>& x) { return eval(order_of(x)); };
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<std::vector<double>> x(o.particles, std::vector<double>(S)), v = x, pbest;
  std::vector<double> pval(o.particles, kInf);
  for (int i = 0; i < o.particles; ++i)
    for (int s = 0; s < S; ++s) x[i][s] = u(rng), v[i][s] = 0.2 * (u(rng) - 0.5);
  if (S > 0) {  // particle 0 is the given order: its servers above 0.5 by decreasing priority
    std::fill(x[0].begin(), x[0].end(), 0.25);
    for (size_t k = 1; k < order.size(); ++k) x[0][order[k] - 1] = 1.0 - 0.4 * k / order.size();
  }
  pbest = x;
  std::vector<double> gbest = x[0];
  double gval = kInf;
  for (int i = 0; i < o.particles; ++i) {
    pval[i] = fitness(x[i]);
    if (pval[i] < gval) gval = pval[i], gbest = x[i];
  }
  for (int it = 0; it < o.iterations && S > 0; ++it)
    for (int i = 0; i < o.particles; ++i) {
      for (int s = 0; s < S; ++s) {
        v[i][s] = 0.7 * v[i][s] + 1.5 * u(rng) * (pbest[i][s] - x[i][s]) + 1.5 * u(rng) * (gbest[s] - x[i][s]);
        v[i][s] = std::clamp(v[i][s], -0.5, 0.5);
        x[i][s] = std::clamp(x[i][s] + v[i][s], 0.0, 1.0);
      }
      const double f = fitness(x[i]);
      if (f < pval[i]) pval[i] = f, pbest[i] = x[i];
      if (f < gval) gval = f, gbest = x[i];
    }
  // Then a local search (swap two servers, move one, drop one, insert an unused one anywhere
  // or in place of one in use, while that improves; every order's DP memoised)
  auto local_search = [&](std::vector<int> cur) {
    double cur_val = eval(cur);
    for (bool improved = true; improved;) {
      improved = false;
      std::vector<std::vector<int>> nbrs;
      for (size_t i = 1; i < cur.size(); ++i) {
        for (size_t j = i + 1; j < cur.size(); ++j) {
          auto o2 = cur;
          std::swap(o2[i], o2[j]);
          nbrs.push_back(o2);
        }
        auto o3 = cur;
        o3.erase(o3.begin() + static_cast<std::ptrdiff_t>(i));
        nbrs.push_back(o3);
      }
      for (int u = 1; u <= S; ++u)
        if (std::find(cur.begin(), cur.end(), u) == cur.end()) {
          for (size_t at = 1; at <= cur.size(); ++at) {
            auto o4 = cur;
            o4.insert(o4.begin() + static_cast<std::ptrdiff_t>(at), u);
            nbrs.push_back(o4);
          }
          for (size_t at = 1; at < cur.size(); ++at) {  // in place of a server in use
            auto o5 = cur;
            o5[at] = u;
            nbrs.push_back(o5);
          }
        }
      for (size_t i = 1; i < cur.size(); ++i)  // move one server elsewhere in the order
        for (size_t j = 1; j < cur.size(); ++j)
          if (i != j) {
            auto o6 = cur;
            const int x = o6[i];
            o6.erase(o6.begin() + static_cast<std::ptrdiff_t>(i));
            o6.insert(o6.begin() + static_cast<std::ptrdiff_t>(j), x);
            nbrs.push_back(o6);
          }
      for (const auto& nb : nbrs) {
        const double f = eval(nb);
        if (f < cur_val) cur_val = f, cur = nb, improved = true;
      }
    }
    return std::make_pair(cur_val, cur);
  };
  // from the swarm's best few distinct orders (the landscape over orders is rugged: one start
  // gets trapped)
  std::vector<std::pair<double, std::vector<int>>> starts;
  for (int i = 0; i < o.particles; ++i) starts.emplace_back(pval[i], order_of(pbest[i]));
  starts.emplace_back(gval, order_of(gbest));
  std::sort(starts.begin(), starts.end());
  starts.erase(std::unique(starts.begin(), starts.end(),
                           [](const auto& a, const auto& b) { return a.second == b.second; }),
               starts.end());
  std::vector<int> cur = starts.front().second;
  double cur_val = kInf;
  for (size_t k = 0; k < starts.size() && k < 3; ++k) {
    auto [v, ord] = local_search(starts[k].second);
    if (v < cur_val) cur_val = v, cur = ord;
  }
  PipelinePlan best = memo.at(cur);
  if (!best.ok()) return bad("pso_dp", PlanStatus::Infeasible, "no node order the swarm tried admits a plan");
  best.algorithm = "pso_dp";
  best.status = PlanStatus::Feasible;
  best.reason = fmt::format("best of {} node orders the swarm and a local search tried (dp inside each)",
                            memo.size());
  return best;
}

PipelinePlan plan_pipeline_equal_layers(const AtomDag& dag, const PipelineNetwork& net, const std::vector<int>& order) {
  net.validate(dag);
  TESSERA_CHECK(!order.empty() && order[0] == 0, InvalidArgument, "the node order starts with node 0 (the device)");
  const int n = dag.num_atoms, K = static_cast<int>(order.size());
  std::vector<Stage> stages;
  int p = 0;
  for (int k = 0; k < K; ++k) {
    const auto& c = net.nodes[order[k]].compute_ms;
    double total = 0;
    for (int a = p; a < n; ++a) total += c[a];
    const double share = total / (K - k);
    Stage s;
    s.node = order[k];
    double acc = 0;
    while (p < n && (k == K - 1 || acc + c[p] / 2 <= share || s.atoms.empty())) {
      acc += c[p];
      s.atoms.push_back(p++);
    }
    if (!s.atoms.empty() || k == 0) stages.push_back(std::move(s));
  }
  PipelinePlan plan = evaluate_pipeline(dag, net, stages);
  plan.algorithm = "equal_layers";
  return plan;
}

std::string PipelinePlan::explain(const PipelineNetwork& net) const {
  std::string s = fmt::format("{} pipeline plan: {}", algorithm, status_name(status));
  if (!reason.empty()) s += fmt::format(" ({})", reason);
  s += fmt::format("\nthroughput {:.2f} fps (bottleneck {:.3f} ms: {}), latency {:.3f} ms\n", throughput_fps,
                   bottleneck_ms, bottleneck, latency_ms);
  for (size_t k = 0; k < stages.size(); ++k) {
    const auto& st = stages[k];
    s += fmt::format("stage {} on {}: {} atoms", k, net.nodes[st.node].name, st.atoms.size());
    if (!st.atoms.empty()) s += fmt::format(" [{}-{}]", st.atoms.front(), st.atoms.back());
    s += fmt::format(", {:.3f} ms", k < stage_ms.size() ? stage_ms[k] : 0.0);
    if (k > 0 && k - 1 < link_ms.size()) s += fmt::format(" (link in {:.3f} ms)", link_ms[k - 1]);
    if (!st.helpers.empty()) {
      std::vector<std::string> names;
      for (int h : st.helpers) names.push_back(net.nodes[h].name);
      s += fmt::format("; split by rows with {} (their slowest tile or link {:.3f} ms)", fmt::join(names, ", "),
                       k < tile_ms.size() ? tile_ms[k] : 0.0);
    }
    s += "\n";
  }
  return s;
}

const std::vector<std::string>& pipeline_planner_names() {
  static const std::vector<std::string> names{"dp", "pso_dp", "exhaustive", "equal_layers"};
  return names;
}

PipelinePlan plan_pipeline(const AtomDag& dag, const PipelineNetwork& net, const std::string& algorithm,
                           const std::vector<int>& order, Objective objective) {
  if (algorithm == "dp") return plan_pipeline_dp(dag, net, order, objective);
  if (algorithm == "pso_dp") return plan_pipeline_pso_dp(dag, net, order, objective);
  if (algorithm == "exhaustive") return plan_pipeline_exhaustive(dag, net, objective);
  if (algorithm == "equal_layers") return plan_pipeline_equal_layers(dag, net, order);
  TESSERA_THROW(InvalidArgument, "unknown pipeline planner '{}' ({})", algorithm,
                fmt::join(pipeline_planner_names(), ", "));
}

}  // namespace tessera::plan
