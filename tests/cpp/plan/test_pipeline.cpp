// N-node pipeline plans: DP against brute force over every partition it searches.
#include <gtest/gtest.h>

#include <functional>
#include <numeric>
#include <random>

#include "tessera/core/error.h"
#include "tessera/plan/pipeline.h"
#include "tessera/plan/planners.h"

using namespace tessera;
using namespace tessera::plan;

namespace {

AtomDag random_dag(std::mt19937& rng, int n) {
  std::uniform_real_distribution<double> bytes(1e3, 1e6), params(0, 1e6), u(0, 1);
  AtomDag d;
  d.num_atoms = n;
  d.values.push_back({kModelInput, {0}, bytes(rng), false, "x"});
  for (int a = 0; a < n; ++a) {
    std::vector<int> consumers;
    if (a + 1 < n) consumers.push_back(a + 1);
    if (a + 3 < n && u(rng) < 0.3) consumers.push_back(a + 3);  // a skip connection
    d.values.push_back({a, consumers, bytes(rng), a + 1 == n || u(rng) < 0.05, ""});
    d.param_bytes.push_back(params(rng));
  }
  return d;
}

PipelineNetwork random_net(std::mt19937& rng, int n, int K) {
  std::uniform_real_distribution<double> ms(0.1, 10), bw(1, 200), u(0, 1), rtt(0, 5);
  PipelineNetwork net;
  for (int k = 0; k < K; ++k) {
    PipelineNode node;
    node.name = k == 0 ? "device" : "edge-" + std::to_string(k);
    const double speed = k == 0 ? 10 : 1 + 3 * u(rng);
    for (int a = 0; a < n; ++a) node.compute_ms.push_back(ms(rng) * speed);
    if (u(rng) < 0.3) node.memory_bytes = 2e6 + 4e6 * u(rng);
    net.nodes.push_back(node);
  }
  net.bandwidth_mbps.assign(K, std::vector<double>(K, 0));
  net.rtt_ms.assign(K, std::vector<double>(K, 0));
  for (int i = 0; i < K; ++i)
    for (int j = 0; j < K; ++j)
      if (i != j && u(rng) < 0.85) net.bandwidth_mbps[i][j] = bw(rng), net.rtt_ms[i][j] = rtt(rng);
  return net;
}

double objective_of(const PipelinePlan& p, Objective o) {
  return o == Objective::Throughput ? p.bottleneck_ms : p.latency_ms;
}

// Every split of the atoms into contiguous stages on a prefix of `order` (the device's stage may be empty).
double brute_force(const AtomDag& dag, const PipelineNetwork& net, const std::vector<int>& order, Objective o) {
  const int n = dag.num_atoms;
  double best = std::numeric_limits<double>::infinity();
  for (size_t m = 1; m <= order.size(); ++m) {
    // cuts c_1 <= ... : stage 0 = [0, c1), stage k = [c_k, c_{k+1}) non-empty
    std::vector<int> cuts(m + 1, 0);
    cuts[m] = n;
    std::function<void(size_t, int)> rec = [&](size_t k, int start) {
      if (k == m) {
        std::vector<Stage> stages(m);
        for (size_t s = 0; s < m; ++s) {
          stages[s].node = order[s];
          for (int a = cuts[s]; a < cuts[s + 1]; ++a) stages[s].atoms.push_back(a);
        }
        for (size_t s = 1; s < m; ++s)
          if (stages[s].atoms.empty()) return;
        const auto p = evaluate_pipeline(dag, net, stages);
        if (p.ok()) best = std::min(best, objective_of(p, o));
        return;
      }
      for (int c = start; c <= n; ++c) {
        cuts[k] = c;
        rec(k + 1, k == 0 ? c : c + 1);
      }
    };
    if (m == 1) {
      rec(1, 0);
    } else {
      for (int c1 = 0; c1 <= n; ++c1) {
        cuts[1] = c1;
        std::function<void(size_t, int)> inner = [&](size_t k, int start) {
          if (k == m) {
            rec(m, 0);
            return;
          }
          for (int c = start; c <= n; ++c) {
            cuts[k] = c;
            inner(k + 1, c + 1);
          }
        };
        inner(2, c1 + 1);
      }
    }
  }
  return best;
}

}  // namespace

TEST(Pipeline, DpEqualsBruteForceOverItsPartitions) {
  std::mt19937 rng(7);
  int checked = 0, infeasible = 0;
  for (int inst = 0; inst < 500; ++inst) {
    const int n = 2 + static_cast<int>(rng() % 8), K = 1 + static_cast<int>(rng() % 4);
    const AtomDag dag = random_dag(rng, n);
    const PipelineNetwork net = random_net(rng, n, K);
    std::vector<int> order(K);
    for (int k = 0; k < K; ++k) order[k] = k;
    std::shuffle(order.begin() + 1, order.end(), rng);
    for (Objective o : {Objective::Throughput, Objective::Latency}) {
      const auto dp = plan_pipeline_dp(dag, net, order, o);
      const double bf = brute_force(dag, net, order, o);
      if (!dp.ok()) {
        EXPECT_EQ(bf, std::numeric_limits<double>::infinity()) << "instance " << inst;
        ++infeasible;
        continue;
      }
      EXPECT_NEAR(objective_of(dp, o), bf, 1e-9 * std::max(1.0, bf)) << "instance " << inst;
      ++checked;
    }
  }
  EXPECT_GT(checked, 800);
  EXPECT_LT(infeasible, 200);
}

TEST(Pipeline, ExhaustiveIsNeverWorseThanAGivenOrder) {
  std::mt19937 rng(11);
  for (int inst = 0; inst < 50; ++inst) {
    const int n = 4 + static_cast<int>(rng() % 20), K = 2 + static_cast<int>(rng() % 3);
    const AtomDag dag = random_dag(rng, n);
    const PipelineNetwork net = random_net(rng, n, K);
    std::vector<int> order(K);
    for (int k = 0; k < K; ++k) order[k] = k;
    const auto given = plan_pipeline_dp(dag, net, order);
    const auto all = plan_pipeline_exhaustive(dag, net);
    if (given.ok()) {
      ASSERT_TRUE(all.ok());
      EXPECT_LE(all.bottleneck_ms, given.bottleneck_ms * (1 + 1e-12));
    }
    const auto eq = plan_pipeline_equal_layers(dag, net, order);
    if (eq.ok() && all.ok()) EXPECT_LE(all.bottleneck_ms, eq.bottleneck_ms * (1 + 1e-12));
  }
}

TEST(Pipeline, BadNetworksAreNamed) {
  std::mt19937 rng(3);
  const AtomDag dag = random_dag(rng, 5);
  PipelineNetwork net = random_net(rng, 5, 3);
  net.bandwidth_mbps[1][1] = 10;
  try {
    plan_pipeline_dp(dag, net, {0, 1, 2});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("link to itself"), std::string::npos) << e.message();
  }
  net.bandwidth_mbps[1][1] = 0;
  EXPECT_THROW(plan_pipeline_dp(dag, net, {1, 0}), Error);     // must start on the device
  EXPECT_THROW(plan_pipeline_dp(dag, net, {0, 1, 1}), Error);  // a node twice
  EXPECT_THROW(plan_pipeline_dp(dag, net, {0, 9}), Error);     // unknown node
  for (auto& node : net.nodes) node.memory_bytes = 1;           // no node can hold any weights
  const auto p = plan_pipeline_dp(dag, net, {0, 1, 2});
  EXPECT_EQ(p.status, PlanStatus::Infeasible);
  EXPECT_NE(p.reason.find("memory"), std::string::npos);
}

TEST(Pipeline, PsoDpNearExhaustiveAndNeverWorseThanTheGivenOrder) {
  std::mt19937 rng(23);
  int within = 0, total = 0;
  for (int inst = 0; inst < 200; ++inst) {
    const int n = 4 + static_cast<int>(rng() % 20), K = 2 + static_cast<int>(rng() % 5);  // <= 6 nodes
    const AtomDag dag = random_dag(rng, n);
    const PipelineNetwork net = random_net(rng, n, K);
    std::vector<int> order(K);
    for (int k = 0; k < K; ++k) order[k] = k;
    const auto given = plan_pipeline_dp(dag, net, order);
    const auto pso = plan_pipeline_pso_dp(dag, net, order);
    const auto all = plan_pipeline_exhaustive(dag, net);
    if (given.ok()) {
      ASSERT_TRUE(pso.ok()) << "instance " << inst;
      EXPECT_LE(pso.bottleneck_ms, given.bottleneck_ms * (1 + 1e-12)) << "instance " << inst;
    }
    if (!all.ok()) continue;
    ASSERT_TRUE(pso.ok()) << "instance " << inst;
    ++total;
    within += pso.bottleneck_ms <= all.bottleneck_ms * 1.02;
  }
  EXPECT_GE(within, total * 95 / 100) << within << " of " << total << " within 2% of exhaustive";
}

// K = 2: the N-node model agrees with the two-target cost model (plan::evaluate) on every
// prefix split, and the N-node dp finds what the two-target chain planner (Neurosurgeon's
// best split point, the same family) finds. Two conventions differ, and the test pins them:
// the two-target model charges rtt/2 per value sent (DADS), a pipeline per message (all the
// values of a cut travel in one); and its throughput counts one shared link stage (up + down),
// a pipeline's links are full duplex (up and down are separate stages).
TEST(Pipeline, TwoNodesAgreeWithTheTwoTargetModel) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> u(0, 1);
  int checked = 0;
  for (int it = 0; it < 300; ++it) {
    const int n = 2 + static_cast<int>(u(rng) * 14);
    AtomDag dag = random_dag(rng, n);
    PipelineNetwork net = random_net(rng, n, 2);
    net.nodes[0].memory_bytes = net.nodes[1].memory_bytes = std::numeric_limits<double>::infinity();
    const double bw = 1 + 200 * u(rng), rtt = it % 2 ? 0.0 : 10 * u(rng);
    net.bandwidth_mbps = {{0, bw}, {bw, 0}};
    net.rtt_ms = {{0, rtt}, {rtt, 0}};
    CostModel cm;
    cm.dag = dag;
    cm.compute_ms = {net.nodes[0].compute_ms, net.nodes[1].compute_ms};
    Context ctx;
    ctx.bandwidth_mbps = bw;
    ctx.rtt_ms = rtt;
    for (int p = 0; p <= n; ++p) {
      std::vector<int> placement(n, 1);
      std::vector<Stage> stages{{0, {}}};
      for (int a = 0; a < p; ++a) placement[a] = 0, stages[0].atoms.push_back(a);
      if (p < n) {
        stages.push_back({1, {}});
        for (int a = p; a < n; ++a) stages[1].atoms.push_back(a);
      }
      const Plan two = evaluate(cm, ctx, placement);
      const PipelinePlan pipe = evaluate_pipeline(dag, net, stages);
      ASSERT_TRUE(pipe.ok()) << pipe.reason;
      double up = 0, down = 0;
      int up_n = 0, down_n = 0;
      for (const auto& t : two.transfers) (t.from == 0 ? up : down) += t.bytes * 8e-3 / bw, (t.from == 0 ? up_n : down_n)++;
      const int messages = (up_n > 0) + (down_n > 0);
      EXPECT_NEAR(two.latency_ms - pipe.latency_ms, rtt / 2 * (up_n + down_n - messages), 1e-6 * two.latency_ms)
          << "split " << p << " of " << n;
      const double D = two.target_ms[0], S = two.target_ms[1];
      EXPECT_NEAR(pipe.bottleneck_ms, std::max({D, S, up, down}), 1e-9 * (1 + pipe.bottleneck_ms));
      EXPECT_NEAR(1000.0 / two.throughput_fps, std::max({D, S, up + down}), 1e-9 * (1 + 1000.0 / two.throughput_fps));
      ++checked;
    }
    if (rtt == 0) {  // the planners: the same family, the same optimum
      const Plan chain = plan_chain(cm, ctx);
      const PipelinePlan dp = plan_pipeline_dp(dag, net, {0, 1}, Objective::Latency);
      EXPECT_NEAR(chain.latency_ms, dp.latency_ms, 1e-9 * (1 + chain.latency_ms)) << "instance " << it;
      EXPECT_LE(plan_mincut(cm, ctx).latency_ms, dp.latency_ms * (1 + 1e-9));  // mincut searches more
    }
  }
  EXPECT_GT(checked, 2000);
}

namespace {

// A chain of n conv-like atoms (one value between consecutive atoms), every atom row-local.
AtomDag chain_dag(std::mt19937& rng, int n, PipelineTiling& tiling) {
  std::uniform_int_distribution<int> k(1, 3), st(1, 2);
  std::uniform_real_distribution<double> params(0, 1e6);
  AtomDag d;
  d.num_atoms = n;
  int rows = 64;
  const double bytes_per_row = 4 * 16 * 64;
  d.values.push_back({kModelInput, {0}, rows * bytes_per_row, false, "x"});
  tiling = PipelineTiling{};
  for (int a = 0; a < n; ++a) {
    RowOp op;
    op.kernel = 2 * k(rng) - 1;
    op.stride = rows >= 8 ? st(rng) : 1;
    op.pad = op.kernel / 2;
    const int out = rows_out(op, rows);
    tiling.chain.push_back(0);
    tiling.ops.push_back({op});
    tiling.rows_in.push_back(rows);
    tiling.rows_out.push_back(out);
    tiling.in_bytes.push_back(rows * bytes_per_row);
    tiling.out_bytes.push_back(out * bytes_per_row);
    std::vector<int> consumers;
    if (a + 1 < n) consumers.push_back(a + 1);
    d.values.push_back({a, consumers, out * bytes_per_row, a + 1 == n, ""});
    d.param_bytes.push_back(params(rng));
    rows = out;
  }
  return d;
}

// Brute force over what dp searches with splits: the device's stage, then stages on consecutive
// positions of `order`, each a contiguous run of atoms on one node with 0 .. T-1 helpers (the
// next positions of the order).
double brute_force_tiles(const AtomDag& dag, const PipelineNetwork& net, const std::vector<int>& order, Objective o) {
  const int n = dag.num_atoms, K = static_cast<int>(order.size()), T = net.tiling.max_tiles;
  double best = std::numeric_limits<double>::infinity();
  std::vector<Stage> stages;
  std::function<void(int, int)> rec = [&](int pos, int start) {  // next free position, next atom
    if (start == n) {
      const auto p = evaluate_pipeline(dag, net, stages);
      if (p.ok()) best = std::min(best, objective_of(p, o));
      return;
    }
    for (int t = 0; t < T && pos + t < K; ++t)
      for (int q = start + 1; q <= n; ++q) {
        std::vector<RowOp> ops;
        if (t > 0 && !net.tiling.range(start, q, ops)) continue;
        Stage s;
        s.node = order[pos];
        s.helpers.assign(order.begin() + pos + 1, order.begin() + pos + 1 + t);
        for (int a = start; a < q; ++a) s.atoms.push_back(a);
        stages.push_back(s);
        try {
          rec(pos + 1 + t, q);
        } catch (const Error&) {  // a split with more tiles than rows: not a plan
        }
        stages.pop_back();
      }
  };
  for (int q0 = 0; q0 <= n; ++q0) {
    Stage dev;
    for (int a = 0; a < q0; ++a) dev.atoms.push_back(a);
    stages = {dev};
    rec(1, q0);
  }
  return best;
}

}  // namespace

TEST(Pipeline, DpWithRowSplitsEqualsBruteForce) {
  std::mt19937 rng(21);
  std::uniform_real_distribution<double> u(0, 1);
  int split_wins = 0;
  for (int it = 0; it < 300; ++it) {
    const int n = 2 + static_cast<int>(u(rng) * 6), K = 2 + static_cast<int>(u(rng) * 3);
    PipelineTiling tiling;
    AtomDag dag = chain_dag(rng, n, tiling);
    PipelineNetwork net = random_net(rng, n, K);
    for (auto& row : net.bandwidth_mbps)
      for (auto& b : row) b = b > 0 ? b * 20 : 0;  // tiles need fast links to pay
    net.tiling = tiling;
    net.tiling.max_tiles = 2 + it % 2;
    std::vector<int> order(K);
    std::iota(order.begin(), order.end(), 0);
    for (Objective o : {Objective::Throughput, Objective::Latency}) {
      const PipelinePlan dp = plan_pipeline_dp(dag, net, order, o);
      const double bf = brute_force_tiles(dag, net, order, o);
      if (!dp.ok()) {
        EXPECT_EQ(bf, std::numeric_limits<double>::infinity()) << "instance " << it;
        continue;
      }
      EXPECT_NEAR(objective_of(dp, o), bf, 1e-9 * (1 + bf)) << "instance " << it << " " << objective_name(o);
      PipelineNetwork plain = net;
      plain.tiling = PipelineTiling{};
      const PipelinePlan no_split = plan_pipeline_dp(dag, plain, order, o);
      EXPECT_LE(objective_of(dp, o), objective_of(no_split, o) * (1 + 1e-9));  // splits only add options
      bool split = false;
      for (const auto& s : dp.stages) split |= !s.helpers.empty();
      split_wins += split && objective_of(dp, o) < objective_of(no_split, o) * (1 - 1e-6);
    }
  }
  EXPECT_GT(split_wins, 20);  // the splits were chosen, and paid, on some instances
}

TEST(Pipeline, SplitStagesAreChecked) {
  std::mt19937 rng(3);
  PipelineTiling tiling;
  AtomDag dag = chain_dag(rng, 4, tiling);
  PipelineNetwork net = random_net(rng, 4, 3);
  net.bandwidth_mbps = {{0, 100, 100}, {100, 0, 100}, {100, 100, 0}};
  net.tiling = tiling;
  for (auto& node : net.nodes) node.memory_bytes = std::numeric_limits<double>::infinity();
  auto msg = [&](std::vector<Stage> stages) {
    try {
      evaluate_pipeline(dag, net, stages);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(msg({{0, {0}}, {1, {1, 2, 3}, {2}}}), "");
  EXPECT_NE(msg({{0, {0}, {1}}, {2, {1, 2, 3}}}).find("the device's stage is never split"), std::string::npos);
  EXPECT_NE(msg({{0, {0}}, {1, {1, 2, 3}, {1}}}).find("helper 1 is not another server"), std::string::npos);
  EXPECT_NE(msg({{0, {0}}, {1, {1}, {2}}, {2, {2, 3}}}).find("in two stages"), std::string::npos);
  PipelineNetwork no_tiles = net;
  no_tiles.tiling = PipelineTiling{};
  try {
    evaluate_pipeline(dag, no_tiles, {{0, {0}}, {1, {1, 2, 3}, {2}}});
    FAIL() << "a split without tiling information was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not one row chain"), std::string::npos) << e.what();
  }
}

namespace {
// Random DAGs with parallel branches (inception-like): a chain of blocks, each block fans out
// into 1-3 branches of 1-2 atoms that join again.
AtomDag branchy_dag(std::mt19937& rng, int max_atoms) {
  std::uniform_real_distribution<double> bytes(1e3, 1e6), params(0, 1e6);
  std::uniform_int_distribution<int> width(1, 3), depth(1, 2);
  AtomDag d;
  std::vector<std::vector<int>> consumers;  // per value
  std::vector<int> producer;
  auto value = [&](int p) {
    producer.push_back(p);
    consumers.emplace_back();
    return static_cast<int>(producer.size()) - 1;
  };
  int head = value(kModelInput), n = 0;
  auto atom = [&](std::vector<int> in) {
    const int a = n++;
    for (int v : in) consumers[v].push_back(a);
    return value(a);
  };
  while (n < max_atoms - 1) {
    std::vector<int> tails;
    const int w = width(rng);
    for (int b = 0; b < w && n < max_atoms - 1; ++b) {
      int v = atom({head});
      for (int k = 1; k < depth(rng) && n < max_atoms - 1; ++k) v = atom({v});
      tails.push_back(v);
    }
    head = atom(tails);
  }
  d.num_atoms = n;
  for (size_t v = 0; v < producer.size(); ++v)
    d.values.push_back({producer[v], consumers[v], bytes(rng), consumers[v].empty(), ""});
  for (int a = 0; a < n; ++a) d.param_bytes.push_back(params(rng));
  return d;
}
}  // namespace

TEST(Pipeline, ConvexBruteForceBoundsDp) {
  std::mt19937 rng(8);
  std::uniform_real_distribution<double> u(0, 1);
  int gaps = 0;
  for (int it = 0; it < 150; ++it) {
    const int K = 2 + static_cast<int>(u(rng) * 2);
    AtomDag dag = it % 3 == 0 ? random_dag(rng, 3 + it % 6) : branchy_dag(rng, 4 + it % 6);
    PipelineNetwork net = random_net(rng, dag.num_atoms, K);
    std::vector<int> order(K);
    std::iota(order.begin(), order.end(), 0);
    for (Objective o : {Objective::Throughput, Objective::Latency}) {
      const PipelinePlan dp = plan_pipeline_dp(dag, net, order, o);
      const PipelinePlan bf = plan_pipeline_convex_brute_force(dag, net, order, o);
      ASSERT_EQ(dp.ok(), bf.ok()) << "instance " << it;
      if (!dp.ok()) continue;
      EXPECT_LE(objective_of(bf, o), objective_of(dp, o) * (1 + 1e-9)) << "instance " << it;  // a superset
      if (it % 3 == 0 && net.pin.empty()) {  // a chain (with skips): every convex partition is contiguous
        bool chain = true;
        for (const auto& v : dag.values)
          for (int c : v.consumers) chain &= v.producer == kModelInput || c >= v.producer;
        if (chain) EXPECT_NEAR(objective_of(bf, o), objective_of(dp, o), 1e-9 * (1 + objective_of(dp, o)));
      }
      // the brute force's metrics are the pipeline model's: contiguous stages evaluate the same
      bool contiguous = true;
      for (const auto& s : bf.stages)
        for (size_t i = 1; i < s.atoms.size(); ++i) contiguous &= s.atoms[i] == s.atoms[i - 1] + 1;
      if (contiguous) {
        const PipelinePlan ev = evaluate_pipeline(dag, net, bf.stages);
        EXPECT_NEAR(ev.latency_ms, bf.latency_ms, 1e-9 * (1 + ev.latency_ms)) << "instance " << it;
        EXPECT_NEAR(ev.bottleneck_ms, bf.bottleneck_ms, 1e-9 * (1 + ev.bottleneck_ms)) << "instance " << it;
      }
      gaps += objective_of(bf, o) < objective_of(dp, o) * (1 - 1e-9);
    }
  }
  EXPECT_GT(gaps, 0);  // on branchy DAGs some convex partitions beat every contiguous one
}

TEST(Pipeline, PinsAndLoadsAreHonoured) {
  std::mt19937 rng(2);
  AtomDag dag = random_dag(rng, 6);
  PipelineNetwork net = random_net(rng, 6, 3);
  net.bandwidth_mbps = {{0, 100, 100}, {100, 0, 100}, {100, 100, 0}};
  for (auto& node : net.nodes) node.memory_bytes = std::numeric_limits<double>::infinity();
  net.pin.assign(6, -1);
  net.pin[4] = 2;  // atom 4 runs on edge-2 only
  for (Objective o : {Objective::Throughput, Objective::Latency}) {
    const PipelinePlan p = plan_pipeline_exhaustive(dag, net, o);
    ASSERT_TRUE(p.ok()) << p.reason;
    for (const auto& s : p.stages)
      for (int a : s.atoms)
        if (a == 4) EXPECT_EQ(s.node, 2);
  }
  const PipelinePlan bad = evaluate_pipeline(dag, net, {{0, {0, 1, 2, 3, 4, 5}}});
  EXPECT_EQ(bad.status, PlanStatus::Infeasible);
  EXPECT_NE(bad.reason.find("pinned to 'edge-2'"), std::string::npos) << bad.reason;
  net.pin.assign(3, -1);
  EXPECT_THROW(plan_pipeline_dp(dag, net, {0, 1}), Error);  // pins of the wrong length are named
  net.pin.clear();
  const PipelinePlan light = evaluate_pipeline(dag, net, {{0, {}}, {1, {0, 1, 2, 3, 4, 5}}});
  net.nodes[1].load = 3;  // edge-1 is three times busier now
  const PipelinePlan heavy = evaluate_pipeline(dag, net, {{0, {}}, {1, {0, 1, 2, 3, 4, 5}}});
  EXPECT_NEAR(heavy.stage_ms[1], 3 * light.stage_ms[1], 1e-9 * light.stage_ms[1]);
}
