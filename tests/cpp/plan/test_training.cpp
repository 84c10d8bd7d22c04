// Split and pipeline-parallel training (issue 22, the planning side): the step simulator
// against hand-computed schedules and invariants, the planner against brute force.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "tessera/core/error.h"
#include "tessera/plan/training.h"

using namespace tessera;
using namespace tessera::plan;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<TrainingStage> equal_stages(int S, double f, double b, const std::vector<int>& nodes = {}) {
  std::vector<TrainingStage> st(S);
  for (int i = 0; i < S; ++i) st[i].node = nodes.empty() ? i : nodes[i], st[i].fwd_ms = f, st[i].bwd_ms = b;
  return st;
}

// The InvalidArgument message of f(), "" if it does not throw.
template <class F>
std::string invalid(F f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument) << e.what();
    return e.what();
  }
  return "";
}

}  // namespace

TEST(TrainingSimulator, EqualStagesMakeTheBubblePattern) {
  // S equal stages on S nodes, no links: (m + S - 1)(f + b) for GPipe and for 1F1B
  for (int S = 1; S <= 4; ++S)
    for (int m : {1, 2, 4, 8}) {
      const double f = 1, b = 2;
      const auto st = equal_stages(S, f, b);
      const auto g = simulate_training(st, m, PipeSchedule::GPipe);
      const auto o = simulate_training(st, m, PipeSchedule::OneFOneB);
      EXPECT_DOUBLE_EQ(g.makespan_ms, (m + S - 1) * (f + b)) << "gpipe S=" << S << " m=" << m;
      EXPECT_DOUBLE_EQ(o.makespan_ms, (m + S - 1) * (f + b)) << "1f1b S=" << S << " m=" << m;
      for (int i = 0; i < S; ++i) {
        EXPECT_EQ(g.peak_in_flight[i], m);                   // GPipe holds every micro-batch
        EXPECT_EQ(o.peak_in_flight[i], std::min(S - i, m));  // 1F1B at most S - i
        EXPECT_DOUBLE_EQ(g.node_busy_ms[i], m * (f + b));
      }
    }
}

TEST(TrainingSimulator, TwoStagesFourMicroBatchesByHand) {
  const auto st = equal_stages(2, 1, 2);
  const auto o = simulate_training(st, 4, PipeSchedule::OneFOneB);
  // stage 0: F0 [0,1] F1 [1,2] B0 [4,6] F2 [6,7] B1 [7,9] F3 [9,10] B2 [10,12] B3 [13,15]
  std::vector<std::pair<double, double>> s0;
  for (const auto& e : o.events)
    if (e.stage == 0 && (e.op == TrainingOp::Forward || e.op == TrainingOp::Backward)) s0.emplace_back(e.start_ms, e.end_ms);
  const std::vector<std::pair<double, double>> want = {{0, 1}, {1, 2}, {4, 6}, {6, 7}, {7, 9}, {9, 10}, {10, 12}, {13, 15}};
  EXPECT_EQ(s0, want);
  EXPECT_DOUBLE_EQ(o.makespan_ms, 15);
  EXPECT_EQ(o.peak_in_flight, (std::vector<int>{2, 1}));
}

TEST(TrainingSimulator, StagesOnOneNodeShareIt) {
  // a U-shaped split on one node: never idle, the step is all the work
  const auto st = equal_stages(3, 1, 2, {0, 0, 0});
  for (auto sched : {PipeSchedule::GPipe, PipeSchedule::OneFOneB}) {
    const auto tl = simulate_training(st, 4, sched);
    EXPECT_DOUBLE_EQ(tl.makespan_ms, 3 * 4 * 3.0);
    EXPECT_DOUBLE_EQ(tl.node_busy_ms[0], 36);
  }
}

TEST(TrainingSimulator, LinksAndDelays) {
  auto st = equal_stages(2, 1, 2);
  st[0].send_fwd_ms = 0.5, st[0].fwd_delay_ms = 0.25, st[1].send_bwd_ms = 0.75, st[1].bwd_delay_ms = 0.125;
  st[0].update_ms = 3;
  const auto tl = simulate_training(st, 1, PipeSchedule::OneFOneB);
  EXPECT_DOUBLE_EQ(tl.makespan_ms, 1 + 0.5 + 0.25 + 1 + 2 + 0.75 + 0.125 + 2 + 3);
  // two micro-batches: the second activation waits for the link, not for the first's delay
  auto st2 = equal_stages(2, 0, 0);
  st2[0].send_fwd_ms = 1, st2[0].fwd_delay_ms = 10;
  const auto t2 = simulate_training(st2, 2, PipeSchedule::GPipe);
  EXPECT_DOUBLE_EQ(t2.makespan_ms, 12);  // sends [0,1] [1,2], arrivals 11 and 12
}

TEST(TrainingSimulator, StoredBytesPerNode) {
  auto st = equal_stages(3, 1, 1, {0, 1, 0});  // U shape: stages 0 and 2 on node 0
  st[0].stored_bytes = 100, st[1].stored_bytes = 10, st[2].stored_bytes = 1;
  const auto g = simulate_training(st, 4, PipeSchedule::GPipe);
  EXPECT_DOUBLE_EQ(g.peak_stored_bytes[0], 400);
  EXPECT_DOUBLE_EQ(g.node_peak_stored_bytes[0], 404);  // all of stage 0's and stage 2's at once
  EXPECT_DOUBLE_EQ(g.node_peak_stored_bytes[1], 40);
  const auto o = simulate_training(st, 4, PipeSchedule::OneFOneB);
  EXPECT_LE(o.node_peak_stored_bytes[0], 301);
  EXPECT_LT(o.node_peak_stored_bytes[0], g.node_peak_stored_bytes[0]);
}

namespace {

// Every invariant of a simulated step, recomputed from its events.
void check_timeline(const std::vector<TrainingStage>& st, int m, PipeSchedule sched, const TrainingTimeline& tl) {
  const int S = static_cast<int>(st.size());
  std::map<std::tuple<int, int, int>, TrainingEvent> ev;  // (op, stage, micro-batch)
  for (const auto& e : tl.events) {
    EXPECT_LE(e.start_ms, e.end_ms);
    EXPECT_TRUE(ev.emplace(std::make_tuple(static_cast<int>(e.op), e.stage, e.micro_batch), e).second) << "twice";
  }
  auto at = [&](TrainingOp op, int i, int j) { return ev.at({static_cast<int>(op), i, j}); };
  const double eps = 1e-9;
  for (int i = 0; i < S; ++i) {
    double last_b = 0;
    for (int j = 0; j < m; ++j) {
      const auto f = at(TrainingOp::Forward, i, j), b = at(TrainingOp::Backward, i, j);
      EXPECT_NEAR(f.end_ms - f.start_ms, st[i].fwd_ms, eps);
      EXPECT_NEAR(b.end_ms - b.start_ms, st[i].bwd_ms, eps);
      EXPECT_LE(f.end_ms, b.start_ms + eps) << "F before its B";
      if (i + 1 < S) {
        const auto s = at(TrainingOp::SendForward, i, j);
        EXPECT_EQ(s.node, st[i].node);
        EXPECT_EQ(s.to_node, st[i + 1].node);
        EXPECT_LE(f.end_ms, s.start_ms + eps);
        EXPECT_LE(s.end_ms + st[i].fwd_delay_ms, at(TrainingOp::Forward, i + 1, j).start_ms + eps);
        const auto g = at(TrainingOp::SendBackward, i + 1, j);
        EXPECT_LE(at(TrainingOp::Backward, i + 1, j).end_ms, g.start_ms + eps);
        EXPECT_LE(g.end_ms + st[i + 1].bwd_delay_ms, b.start_ms + eps);
      } else {
        EXPECT_EQ(ev.count({static_cast<int>(TrainingOp::SendForward), i, j}), 0u);
      }
      last_b = std::max(last_b, b.end_ms);
    }
    EXPECT_LE(last_b, at(TrainingOp::Update, i, -1).start_ms + eps);
    // the stage's passes in the schedule's order, one at a time
    std::vector<TrainingEvent> mine;
    for (const auto& e : tl.events)
      if (e.stage == i && (e.op == TrainingOp::Forward || e.op == TrainingOp::Backward)) mine.push_back(e);
    std::stable_sort(mine.begin(), mine.end(), [](const auto& a, const auto& b) { return a.start_ms < b.start_ms; });
    const int w = std::min(S - i, m);
    int nf = 0, nb = 0;
    for (size_t k = 0; k < mine.size(); ++k) {
      if (k) EXPECT_LE(mine[k - 1].end_ms, mine[k].start_ms + eps);
      if (sched == PipeSchedule::GPipe) {
        EXPECT_EQ(mine[k].op == TrainingOp::Forward, static_cast<int>(k) < m);
      } else if (mine[k].op == TrainingOp::Forward) {
        EXPECT_LE(nf - nb, w - 1) << "1F1B: at most S - i in flight";
      }
      (mine[k].op == TrainingOp::Forward ? nf : nb)++;
    }
    EXPECT_LE(tl.peak_in_flight[i], sched == PipeSchedule::GPipe ? m : w);
  }
  // resources: no two events overlap on a node or on a directed link
  std::map<std::pair<int, int>, std::vector<std::pair<double, double>>> busy;  // (node, to_node or -1)
  std::vector<double> node_busy(tl.node_busy_ms.size(), 0);
  double end = 0;
  for (const auto& e : tl.events) {
    busy[{e.node, e.to_node}].emplace_back(e.start_ms, e.end_ms);
    if (e.to_node < 0) node_busy[e.node] += e.end_ms - e.start_ms;
    end = std::max(end, e.end_ms);
  }
  for (auto& [r, v] : busy) {
    std::sort(v.begin(), v.end());
    for (size_t k = 1; k < v.size(); ++k) EXPECT_LE(v[k - 1].second, v[k].first + eps) << "overlap on a resource";
  }
  EXPECT_NEAR(tl.makespan_ms, end, eps);
  for (size_t u = 0; u < node_busy.size(); ++u) EXPECT_NEAR(tl.node_busy_ms[u], node_busy[u], 1e-6);
  // stored bytes per node, recounted at each forward's start from the event list's order (by start,
  // equal starts in the order they ran): a micro-batch is held from its F until its B has ended
  std::map<std::pair<int, int>, size_t> pos_f, pos_b;
  for (size_t k = 0; k < tl.events.size(); ++k) {
    const auto& e = tl.events[k];
    if (e.op == TrainingOp::Forward) pos_f[{e.stage, e.micro_batch}] = k;
    if (e.op == TrainingOp::Backward) pos_b[{e.stage, e.micro_batch}] = k;
  }
  for (size_t u = 0; u < tl.node_peak_stored_bytes.size(); ++u) {
    double peak = 0;
    for (int i0 = 0; i0 < S; ++i0)
      for (int j0 = 0; j0 < m; ++j0) {
        if (st[i0].node != static_cast<int>(u)) continue;
        const double t = at(TrainingOp::Forward, i0, j0).start_ms;
        const size_t here = pos_f[{i0, j0}];
        double held = 0;
        for (int i = 0; i < S; ++i)
          for (int j = 0; j < m; ++j) {
            if (st[i].node != static_cast<int>(u) || pos_f[{i, j}] > here) continue;
            const double e = at(TrainingOp::Backward, i, j).end_ms;
            if (e < t || (e == t && pos_b[{i, j}] < here)) continue;  // freed already
            held += st[i].stored_bytes;
          }
        peak = std::max(peak, held);
      }
    EXPECT_NEAR(tl.node_peak_stored_bytes[u], peak, 1e-6) << "node " << u;
  }
}

}  // namespace

TEST(TrainingSimulator, InvariantsOnRandomStages) {
  std::mt19937 rng(22);
  std::uniform_real_distribution<double> u(0, 1);
  for (int trial = 0; trial < 400; ++trial) {
    const int S = 1 + static_cast<int>(u(rng) * 5), m = 1 + static_cast<int>(u(rng) * 8);
    std::vector<TrainingStage> st(S);
    for (auto& s : st) {
      s.node = static_cast<int>(u(rng) * 3);
      auto c = [&] { return u(rng) < 0.15 ? 0.0 : std::round(u(rng) * 40) / 8; };  // ties and zeros happen
      s.fwd_ms = c(), s.bwd_ms = c(), s.send_fwd_ms = c(), s.send_bwd_ms = c();
      s.fwd_delay_ms = u(rng) < 0.5 ? 0 : c(), s.bwd_delay_ms = u(rng) < 0.5 ? 0 : c();
      s.update_ms = u(rng) < 0.5 ? 0 : c();
      s.stored_bytes = std::round(u(rng) * 1000);
    }
    for (auto sched : {PipeSchedule::GPipe, PipeSchedule::OneFOneB}) {
      SCOPED_TRACE("trial " + std::to_string(trial) + " " + schedule_name(sched));
      check_timeline(st, m, sched, simulate_training(st, m, sched));
    }
  }
}

TEST(TrainingSimulator, BadInputIsNamed) {
  EXPECT_NE(invalid([] { simulate_training({}, 2, PipeSchedule::GPipe); }).find("stages is empty"), std::string::npos);
  EXPECT_NE(invalid([] { simulate_training(equal_stages(2, 1, 1), 0, PipeSchedule::GPipe); }).find("micro_batches = 0"),
            std::string::npos);
  auto st = equal_stages(2, 1, 1);
  st[1].bwd_ms = -1;
  EXPECT_NE(invalid([&] { simulate_training(st, 2, PipeSchedule::GPipe); }).find("stages[1].bwd_ms = -1"),
            std::string::npos);
  st[1].bwd_ms = 1, st[0].stored_bytes = std::nan("");
  EXPECT_NE(invalid([&] { simulate_training(st, 2, PipeSchedule::GPipe); }).find("stages[0].stored_bytes"),
            std::string::npos);
  EXPECT_NE(invalid([] { parse_schedule("zigzag"); }).find("zigzag"), std::string::npos);
  EXPECT_EQ(parse_schedule("1f1b"), PipeSchedule::OneFOneB);
  EXPECT_EQ(parse_schedule(schedule_name(PipeSchedule::GPipe)), PipeSchedule::GPipe);
}

// ---- the planner ------------------------------------------------------------------------------

namespace {

AtomDag random_dag(std::mt19937& rng, int n, bool chain) {
  std::uniform_real_distribution<double> bytes(1e3, 1e6), params(0, 2e5), u(0, 1);
  AtomDag d;
  d.num_atoms = n;
  d.values.push_back({kModelInput, {0}, bytes(rng), false, "x"});
  if (!chain && n > 2 && u(rng) < 0.5) d.values.back().consumers.push_back(n - 1);  // the input read at the end
  for (int a = 0; a < n; ++a) {
    std::vector<int> consumers;
    if (a + 1 < n) consumers.push_back(a + 1);
    if (!chain && a + 3 < n && u(rng) < 0.3) consumers.push_back(a + 3);  // a skip connection
    d.values.push_back({a, consumers, bytes(rng), a + 1 == n || (!chain && u(rng) < 0.1), ""});
    if (u(rng) < 0.1) d.values.back().dtype = "int64";  // no gradient
    d.param_bytes.push_back(u(rng) < 0.3 ? 0.0 : params(rng));
  }
  return d;
}

struct Problem {
  AtomDag dag;
  PipelineNetwork net;
  TrainingCosts costs;
};

Problem random_problem(std::mt19937& rng, int n, int K, bool chain) {
  std::uniform_real_distribution<double> ms(0.1, 5), u(0, 1);
  Problem pr;
  pr.dag = random_dag(rng, n, chain);
  for (int k = 0; k < K; ++k) {
    PipelineNode node;
    node.name = k == 0 ? "device" : "server-" + std::to_string(k);
    const double slow = k == 0 ? 4 + 6 * u(rng) : 0.5 + u(rng);
    std::vector<double> b, up;
    for (int a = 0; a < n; ++a) {
      node.compute_ms.push_back(ms(rng) * slow);
      b.push_back(node.compute_ms.back() * (1 + 2 * u(rng)));
      up.push_back(u(rng) * 0.2);
    }
    if (u(rng) < 0.3) node.memory_bytes = 1e6 + 4e6 * u(rng);
    if (u(rng) < 0.2) node.load = 1 + u(rng);
    pr.net.nodes.push_back(node);
    pr.costs.backward_ms.push_back(b);
    pr.costs.update_ms.push_back(up);
  }
  pr.net.bandwidth_mbps.assign(K, std::vector<double>(K, 0));
  pr.net.rtt_ms.assign(K, std::vector<double>(K, 0));
  for (int i = 0; i < K; ++i)
    for (int j = 0; j < K; ++j)
      if (i != j) pr.net.bandwidth_mbps[i][j] = 50 + 1000 * u(rng), pr.net.rtt_ms[i][j] = 2 * u(rng);
  if (u(rng) < 0.2) {  // one atom must stay on the device
    pr.net.pin.assign(n, -1);
    pr.net.pin[static_cast<int>(u(rng) * n)] = 0;
  }
  return pr;
}

// The best feasible step over every placement the planner searches, priced by evaluate_training;
// per micro-batch choice in best_by_m.
double brute_force(const Problem& pr, const TrainingOptions& o, std::vector<double>& best_by_m) {
  const int n = pr.dag.num_atoms, K = static_cast<int>(pr.net.nodes.size());
  std::vector<int> seq;
  for (int k = 0; k < K; ++k) seq.push_back(k);
  if (o.labels_on_device) seq.push_back(0);
  const int L = static_cast<int>(seq.size()) - 1;
  std::vector<int> choices = o.micro_batches;
  std::sort(choices.begin(), choices.end());
  best_by_m.assign(choices.size(), kInf);
  std::vector<int> p(L + 2, 0);
  std::function<void(int, int)> rec = [&](int i, int lo) {
    if (i <= L) {
      for (int c = lo; c <= n; ++c) p[i] = c, rec(i + 1, c);
      return;
    }
    p[L + 1] = n;
    std::vector<int> placement(n);
    for (int k = 0; k <= L; ++k)
      for (int a = p[k]; a < p[k + 1]; ++a) placement[a] = seq[k];
    for (size_t ci = 0; ci < choices.size(); ++ci)
      for (auto sched : o.schedules) {
        const TrainingPlan t = evaluate_training(pr.dag, pr.net, pr.costs, placement, choices[ci], sched, o);
        if (t.ok()) best_by_m[ci] = std::min(best_by_m[ci], t.step_ms);
      }
  };
  rec(1, 0);
  return *std::min_element(best_by_m.begin(), best_by_m.end());
}

}  // namespace

TEST(TrainingPlanner, EqualsBruteForceOverCutsAndMicroBatches) {
  std::mt19937 rng(2022);
  int trials = 0, infeasible = 0, pipelined = 0, u_shape = 0;
  for (int trial = 0; trial < 240; ++trial) {
    const int K = trial % 4 == 3 ? 3 : 2, n = K == 3 ? 2 + trial % 5 : 1 + trial % 9;
    Problem pr = random_problem(rng, n, K, trial % 2 == 0);
    TrainingOptions o;
    o.batch_size = 8;
    o.micro_batches = {4, 1, 2};
    o.labels_on_device = trial % 3 != 2;
    o.micro_batch_overhead_ms = trial % 5 == 0 ? 0.3 : 0.0;
    o.optimizer_state_factor = trial % 7 == 0 ? 2 : 1;
    SCOPED_TRACE("trial " + std::to_string(trial));
    std::vector<double> by_m;
    const double want = brute_force(pr, o, by_m);
    if (want == kInf) {
      ++infeasible;
      EXPECT_NE(invalid([&] { plan_training(pr.dag, pr.net, pr.costs, o); }), "");
      continue;
    }
    const TrainingPlan got = plan_training(pr.dag, pr.net, pr.costs, o);
    ASSERT_TRUE(got.ok()) << got.reason;
    EXPECT_NEAR(got.step_ms, want, 1e-9 * want);
    ASSERT_EQ(got.best_step_ms.size(), by_m.size());
    for (size_t i = 0; i < by_m.size(); ++i)
      if (by_m[i] == kInf) EXPECT_EQ(got.best_step_ms[i], kInf);
      else EXPECT_NEAR(got.best_step_ms[i], by_m[i], 1e-9 * by_m[i]) << "micro-batch choice " << i;
    // the plan is what evaluate_training says of its placement
    const TrainingPlan again =
        evaluate_training(pr.dag, pr.net, pr.costs, got.placement, got.micro_batches, got.schedule, o);
    EXPECT_TRUE(again.ok());
    EXPECT_NEAR(again.step_ms, got.step_ms, 1e-9 * want);
    EXPECT_NEAR(got.samples_per_s, 8 * 1000 / got.step_ms, 1e-9 * got.samples_per_s);
    if (o.labels_on_device) EXPECT_EQ(got.stages.back().node, 0) << "the loss on the device";
    EXPECT_EQ(got.stages.front().node, 0);
    ++trials;
    pipelined += got.micro_batches > 1;
    u_shape += got.stages.size() >= 3;
  }
  EXPECT_GT(trials, 150);
  EXPECT_GT(pipelined, 10);  // the search space is used, not only its corners
  EXPECT_GT(u_shape, 10);
  EXPECT_GT(infeasible, 0);
}

TEST(TrainingPlanner, MemoryForcesAnotherCut) {
  // 4 atoms in a chain; the server is 10x faster, the last atom holds the weights
  AtomDag dag;
  dag.num_atoms = 4;
  dag.values.push_back({kModelInput, {0}, 1000, false, "x"});
  for (int a = 0; a < 4; ++a) dag.values.push_back({a, a + 1 < 4 ? std::vector<int>{a + 1} : std::vector<int>{}, 1000, a == 3, ""});
  dag.param_bytes = {0, 0, 0, 1e6};
  PipelineNetwork net;
  net.nodes.resize(2);
  net.nodes[0].name = "device", net.nodes[0].compute_ms = {10, 10, 10, 10};
  net.nodes[1].name = "server", net.nodes[1].compute_ms = {1, 1, 1, 1};
  net.bandwidth_mbps = {{0, 1000}, {1000, 0}};
  TrainingCosts costs;
  costs.backward_ms = {{20, 20, 20, 20}, {2, 2, 2, 2}};
  TrainingOptions o;
  o.batch_size = 4;
  o.micro_batches = {1, 2, 4};
  const TrainingPlan free = plan_training(dag, net, costs, o);
  EXPECT_EQ(free.placement, (std::vector<int>{1, 1, 1, 1}));
  EXPECT_EQ(free.stages.size(), 3u);  // device source, server, the loss on the device
  net.nodes[1].memory_bytes = 2.5e6;  // weights + gradients + momentum of atom 3: 3e6
  const TrainingPlan bound = plan_training(dag, net, costs, o);
  EXPECT_EQ(bound.placement, (std::vector<int>{1, 1, 1, 0}));
  EXPECT_LE(bound.node_memory_bytes[1], 2.5e6);
  EXPECT_GT(bound.step_ms, free.step_ms);
  EXPECT_NE(bound.explain(net).find("server"), std::string::npos);
  // no room anywhere: named, with the node and by how much
  net.nodes[0].memory_bytes = 1e6;
  const std::string why = invalid([&] { plan_training(dag, net, costs, o); });
  EXPECT_NE(why.find("no placement fits"), std::string::npos) << why;
  EXPECT_NE(why.find(" by "), std::string::npos) << why;
  EXPECT_TRUE(why.find("'device'") != std::string::npos || why.find("'server'") != std::string::npos) << why;
}

namespace {

// Two atoms x -> 0 -> h -> 1 -> y on a device and a server; atom 0 costs `fast` on the device and
// `slow` on the server, atom 1 the reverse; backward = 2 x forward; links of `mbps` both ways.
Problem two_halves(double fast, double slow, double h_bytes, double io_bytes, double mbps) {
  Problem pr;
  pr.dag.num_atoms = 2;
  pr.dag.values = {{kModelInput, {0}, io_bytes, false, "x"}, {0, {1}, h_bytes, false, "h"}, {1, {}, io_bytes, true, "y"}};
  pr.dag.param_bytes = {0, 0};
  pr.net.nodes.resize(2);
  pr.net.nodes[0].name = "device", pr.net.nodes[0].compute_ms = {fast, slow};
  pr.net.nodes[1].name = "server", pr.net.nodes[1].compute_ms = {slow, fast};
  pr.net.bandwidth_mbps = {{0, mbps}, {mbps, 0}};
  pr.costs.backward_ms = {{2 * fast, 2 * slow}, {2 * slow, 2 * fast}};
  return pr;
}

}  // namespace

TEST(TrainingPlanner, OneFOneBFitsWhereGPipeDoesNot) {
  Problem pr = two_halves(1, 1e6, 4e6, 1e3, 1e5);
  TrainingOptions o;
  o.batch_size = 8;
  o.micro_batches = {4};
  o.labels_on_device = false;
  o.schedules = {PipeSchedule::GPipe, PipeSchedule::OneFOneB};
  // device stores atom 0's 4 MB output: 1 MB per micro-batch; GPipe holds 4, 1F1B 2
  const auto g = evaluate_training(pr.dag, pr.net, pr.costs, {0, 1}, 4, PipeSchedule::GPipe, o);
  const auto f = evaluate_training(pr.dag, pr.net, pr.costs, {0, 1}, 4, PipeSchedule::OneFOneB, o);
  EXPECT_DOUBLE_EQ(g.node_stored_bytes[0], 4e6);
  EXPECT_DOUBLE_EQ(f.node_stored_bytes[0], 2e6);
  pr.net.nodes[0].memory_bytes = 3e6;
  const TrainingPlan p = plan_training(pr.dag, pr.net, pr.costs, o);
  EXPECT_EQ(p.schedule, PipeSchedule::OneFOneB);
  EXPECT_EQ(p.placement, (std::vector<int>{0, 1}));
  const auto g2 = evaluate_training(pr.dag, pr.net, pr.costs, {0, 1}, 4, PipeSchedule::GPipe, o);
  EXPECT_EQ(g2.status, PlanStatus::Infeasible);
  EXPECT_NE(g2.reason.find("'device'"), std::string::npos) << g2.reason;
}

TEST(TrainingPlanner, PipeliningTwoEqualStagesGivesTheBubbleBound) {
  // two equal halves on equal nodes, free links, labels on the server: 4 micro-batches give 1.6x
  const Problem pr = two_halves(10, 1e3, 0, 0, 100);
  TrainingOptions o;
  o.batch_size = 32;
  o.labels_on_device = false;
  o.micro_batches = {1, 4};
  const TrainingPlan p = plan_training(pr.dag, pr.net, pr.costs, o);
  EXPECT_EQ(p.micro_batches, 4);
  EXPECT_EQ(p.placement, (std::vector<int>{0, 1}));
  EXPECT_NEAR(p.best_step_ms[0] / p.step_ms, 1.6, 1e-12);  // 60 ms against (4 + 1) x 7.5 ms
  EXPECT_NE(p.explain(pr.net).find("1.60x"), std::string::npos) << p.explain(pr.net);
}

TEST(TrainingPlanner, BadInputIsNamed) {
  std::mt19937 rng(5);
  Problem pr = random_problem(rng, 4, 2, true);
  pr.net.nodes[0].memory_bytes = pr.net.nodes[1].memory_bytes = kInf;
  pr.net.pin.clear();
  TrainingOptions o;
  o.batch_size = 8;
  auto msg = [&](const Problem& p, const TrainingOptions& opt) {
    return invalid([&] { plan_training(p.dag, p.net, p.costs, opt); });
  };
  EXPECT_EQ(msg(pr, o), "");
  Problem bad = pr;
  bad.costs.backward_ms[1][2] = -1;
  EXPECT_NE(msg(bad, o).find("backward_ms[1][2]"), std::string::npos);
  bad = pr;
  bad.costs.backward_ms[0].pop_back();
  EXPECT_NE(msg(bad, o).find("backward_ms[0]"), std::string::npos);
  bad = pr;
  bad.costs.update_ms.pop_back();
  EXPECT_NE(msg(bad, o).find("update_ms has 1 rows"), std::string::npos);
  bad = pr;
  bad.net.nodes[1].compute_ms[0] = -2;
  EXPECT_NE(msg(bad, o).find("compute_ms[0]"), std::string::npos);
  TrainingOptions ob = o;
  ob.micro_batches = {1, 0};
  EXPECT_NE(msg(pr, ob).find("micro_batches[1] = 0"), std::string::npos);
  ob = o;
  ob.micro_batches = {16};
  EXPECT_NE(msg(pr, ob).find("batch_size = 8"), std::string::npos);
  ob = o;
  ob.batch_size = 0;
  EXPECT_NE(msg(pr, ob).find("batch_size = 0"), std::string::npos);
  ob = o;
  ob.order = {1, 0};
  EXPECT_NE(msg(pr, ob).find("order must start with node 0"), std::string::npos);
  ob = o;
  ob.optimizer_state_factor = -1;
  EXPECT_NE(msg(pr, ob).find("optimizer_state_factor"), std::string::npos);
  ob = o;
  ob.max_candidates = 10;
  EXPECT_NE(msg(pr, ob).find("max_candidates"), std::string::npos);
  EXPECT_NE(invalid([] { optimizer_state_factor("lion"); }).find("lion"), std::string::npos);
  EXPECT_EQ(optimizer_state_factor("adam"), 2);
  EXPECT_NE(invalid([&] { evaluate_training(pr.dag, pr.net, pr.costs, {0, 1, 2, 1}, 2, PipeSchedule::GPipe, o); })
                .find("placement[2]"),
            std::string::npos);
  // an unreachable server: the planner keeps to the device, a placement on it is named
  Problem cut = pr;
  cut.net.bandwidth_mbps[0][1] = 0;
  EXPECT_EQ(plan_training(cut.dag, cut.net, cut.costs, o).placement, (std::vector<int>(4, 0)));
  EXPECT_NE(invalid([&] { evaluate_training(cut.dag, cut.net, cut.costs, {0, 1, 1, 0}, 1, PipeSchedule::GPipe, o); })
                .find("not linked"),
            std::string::npos);
}
