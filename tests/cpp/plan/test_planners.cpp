// Tests of the plan layer: every planner against brute-force enumeration of all
// 2^n placements on random DAGs (DADS, Hu et al. INFOCOM 2019; Neurosurgeon,
// Kang et al. ASPLOS 2017; CAS/GADS, Liang et al. 2023; CIC/QDMP, Zhang et al.
// 2021), the contract checker on deliberately broken plans, schedule_blocks,
// and bad input naming the offending field.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>

#include "tessera/core/error.h"
#include "tessera/plan/local_search.h"
#include "tessera/plan/mincut.h"
#include "tessera/plan/parametric.h"
#include "tessera/plan/planners.h"

using namespace tessera::plan;

namespace {

double uniform(std::mt19937& rng, double lo, double hi) {
  return std::uniform_real_distribution<double>(lo, hi)(rng);
}
bool chance(std::mt19937& rng, double p) { return uniform(rng, 0, 1) < p; }

// A random DAG with fan-out, skip edges, multi-consumer values, dead values and
// several outputs, with random costs.
CostModel random_model(std::mt19937& rng, int n) {
  CostModel cm;
  AtomDag& dag = cm.dag;
  dag.num_atoms = n;
  const int inputs = 1 + static_cast<int>(rng() % 2);
  for (int i = 0; i < inputs; ++i) {
    DagValue v;
    v.name = "input" + std::to_string(i);
    for (int c = 0; c < n; ++c)
      if ((c == 0 && i == 0) || chance(rng, 0.15)) v.consumers.push_back(c);
    v.bytes = chance(rng, 0.1) ? 0.0 : uniform(rng, 1e3, 2e6);
    dag.values.push_back(v);
  }
  for (int a = 0; a < n; ++a) {
    const int outs = chance(rng, 0.8) ? 1 : 2;
    for (int o = 0; o < outs; ++o) {
      DagValue v;
      v.producer = a;
      v.name = "v" + std::to_string(a) + "_" + std::to_string(o);
      for (int c = a + 1; c < n; ++c)
        if ((c == a + 1 && o == 0 && chance(rng, 0.85)) || chance(rng, 0.15)) v.consumers.push_back(c);
      v.is_output = (a == n - 1 && o == 0) || chance(rng, 0.08);
      v.bytes = chance(rng, 0.1) ? 0.0 : uniform(rng, 1e3, 2e6);
      dag.values.push_back(v);
    }
    dag.param_bytes.push_back(chance(rng, 0.2) ? 0.0 : uniform(rng, 1e4, 5e6));
    dag.atom_names.push_back("layer" + std::to_string(a));
  }
  cm.compute_ms.assign(2, std::vector<double>(static_cast<size_t>(n)));
  for (int a = 0; a < n; ++a) {
    cm.compute_ms[0][a] = uniform(rng, 0.1, 40);
    cm.compute_ms[1][a] = uniform(rng, 0.01, 8);
  }
  if (chance(rng, 0.5)) {
    cm.energy_mj.assign(2, std::vector<double>(static_cast<size_t>(n), 0.0));
    for (int a = 0; a < n; ++a) {
      cm.energy_mj[0][a] = uniform(rng, 0, 20);
      cm.energy_mj[1][a] = chance(rng, 0.5) ? 0.0 : uniform(rng, 0, 2);
    }
    cm.links.assign(2, std::vector<LinkCost>(2));
    cm.links[0][1].energy_mj_per_byte = uniform(rng, 0, 1e-5);
    cm.links[1][0].energy_mj_per_byte = uniform(rng, 0, 5e-6);
  }
  return cm;
}

// An energy objective needs energy data (planners refuse it otherwise): without it, latency.
Context random_context(std::mt19937& rng, bool has_energy = true) {
  Context ctx;
  ctx.bandwidth_mbps = std::pow(10.0, uniform(rng, -1, 2));
  ctx.rtt_ms = uniform(rng, 0, 50);
  ctx.server_load = uniform(rng, 1, 3);
  ctx.device_load = chance(rng, 0.5) ? 1.0 : uniform(rng, 0.5, 3);
  const double r = uniform(rng, 0, 1);
  if (r < 0.25) {
    ctx.objective = Objective::Energy;
  } else if (r < 0.5) {
    ctx.energy_weight = uniform(rng, 0, 1);
  }
  if (!has_energy) {
    ctx.objective = Objective::Latency;
    ctx.energy_weight = 0;
  }
  return ctx;
}

// The latency / energy / memory model written out directly from cost_model.h,
// independently of the planners' min-cut view.
struct Ref {
  double latency = 0, energy = 0, memory = 0, dev = 0, srv = 0, link = 0;
  double bottleneck() const { return std::max({dev, srv, link}); }
};

Ref reference(const CostModel& cm, const Context& ctx, const std::vector<int>& x) {
  Ref r;
  for (int a = 0; a < cm.dag.num_atoms; ++a) {
    if (x[a] == 0) {
      r.dev += cm.compute_ms[0][a] * ctx.device_load;
      r.memory += cm.dag.param_bytes[a];
      if (!cm.energy_mj.empty()) r.energy += cm.energy_mj[0][a];
    } else {
      r.srv += cm.compute_ms[1][a] * ctx.server_load;
      if (!cm.energy_mj.empty()) r.energy += cm.energy_mj[1][a];
    }
  }
  double transfers = 0;
  for (const DagValue& v : cm.dag.values) {
    const int src = v.producer == kModelInput ? 0 : x[v.producer];
    std::set<int> dests;
    for (int c : v.consumers) dests.insert(x[c]);
    if (v.is_output) dests.insert(0);
    dests.erase(src);
    for (int d : dests) {
      const double ser = v.bytes * 8 / (ctx.bandwidth_mbps * 1e6) * 1e3;
      transfers += ser + ctx.rtt_ms / 2;
      r.link += ser;
      if (!cm.links.empty()) r.energy += v.bytes * cm.links[src][d].energy_mj_per_byte;
    }
  }
  r.latency = r.dev + r.srv + transfers;
  return r;
}

double objective(const Ref& r, const Context& ctx) {
  return ctx.objective == Objective::Energy ? r.energy : r.latency + ctx.energy_weight * r.energy;
}

bool near(double a, double b, double rel = 1e-9) {
  return std::abs(a - b) <= rel * std::max({std::abs(a), std::abs(b), 1e-6});
}

std::vector<int> placement_of(unsigned mask, int n) {
  std::vector<int> x(static_cast<size_t>(n));
  for (int a = 0; a < n; ++a) x[a] = (mask >> a) & 1u;
  return x;
}

bool meets_pins(const std::vector<int>& x, const std::vector<int>& pin) {
  for (size_t a = 0; a < pin.size(); ++a)
    if (pin[a] >= 0 && x[a] != pin[a]) return false;
  return true;
}

double brute_optimum(const CostModel& cm, const Context& ctx, const std::vector<int>& pin) {
  const int n = cm.dag.num_atoms;
  double best = INFINITY;
  for (unsigned m = 0; m < (1u << n); ++m) {
    auto x = placement_of(m, n);
    if (meets_pins(x, pin)) best = std::min(best, objective(reference(cm, ctx, x), ctx));
  }
  return best;
}

void expect_valid(const Plan& p, const CostModel& cm) {
  auto problems = validate(p, cm);
  EXPECT_TRUE(problems.empty()) << p.algorithm << ": " << (problems.empty() ? "" : problems[0]);
}

}  // namespace

// ---- exactness against brute force on 1000 random DAGs -----------------------

TEST(Planners, RandomDagsAgainstBruteForce) {
  std::mt19937 rng(12345);
  int throughput_exact = 0, gads_feasible_cases = 0, gads_exact = 0, cases = 0;
  double worst_gads = 1.0, worst_tp = 1.0;
  for (int iter = 0; iter < 1000; ++iter) {
    const int n = 2 + static_cast<int>(rng() % 15);  // 2..16
    CostModel cm = random_model(rng, n);
    Context ctx = random_context(rng, !cm.energy_mj.empty());
    Constraints pins;
    if (chance(rng, 0.2)) {
      pins.pin.assign(static_cast<size_t>(n), -1);
      pins.pin[rng() % n] = static_cast<int>(rng() % 2);
    }
    SCOPED_TRACE(::testing::Message() << "case " << iter << " n=" << n);
    ++cases;
    // Brute force: unconstrained optimum, best chain cut, best bottleneck, and
    // the metrics of every placement (for the constrained optimum below).
    std::vector<Ref> refs(1u << n);
    double opt = INFINITY, opt_latency = INFINITY, opt_energy = INFINITY, opt_tp = INFINITY;
    for (unsigned m = 0; m < (1u << n); ++m) {
      auto x = placement_of(m, n);
      refs[m] = reference(cm, ctx, x);
      if (!meets_pins(x, pins.pin)) continue;
      opt = std::min(opt, objective(refs[m], ctx));
      opt_latency = std::min(opt_latency, refs[m].latency);
      opt_energy = std::min(opt_energy, refs[m].energy);
      opt_tp = std::min(opt_tp, refs[m].bottleneck());
    }
    double best_chain = INFINITY;
    for (int k = 0; k <= n; ++k) {
      std::vector<int> x(static_cast<size_t>(n), 1);
      std::fill(x.begin(), x.begin() + k, 0);
      if (meets_pins(x, pins.pin)) best_chain = std::min(best_chain, objective(reference(cm, ctx, x), ctx));
    }

    for (const char* name : {"mincut", "compressed", "parametric"}) {
      Plan p = make_plan(name, cm, ctx, pins);
      ASSERT_EQ(p.status, PlanStatus::Optimal) << name << ": " << p.reason;
      const double got = objective(reference(cm, ctx, p.placement), ctx);
      ASSERT_TRUE(near(got, opt)) << name << " got " << got << " brute force " << opt;
      ASSERT_TRUE(near(p.objective, got)) << name << " evaluate " << p.objective << " reference " << got;
      expect_valid(p, cm);
    }
    {
      Plan p = make_plan("chain", cm, ctx, pins);
      if (std::isfinite(best_chain)) {
        ASSERT_TRUE(p.ok()) << p.reason;
        ASSERT_TRUE(near(objective(reference(cm, ctx, p.placement), ctx), best_chain));
      } else {
        ASSERT_EQ(p.status, PlanStatus::Infeasible);
      }
      expect_valid(p, cm);
    }
    for (const char* name : {"device_only", "server_only"}) expect_valid(make_plan(name, cm, ctx), cm);

    // Parametric at other bandwidths: one envelope, several lookups.
    if (n <= 12) {
      ParametricPlanner par(cm, ctx, pins);
      for (int k = 0; k < 3; ++k) {
        Context c = ctx;
        c.bandwidth_mbps = std::pow(10.0, uniform(rng, -2, 4));
        const auto& seg = par.lookup(c.bandwidth_mbps);
        ASSERT_TRUE(near(objective(reference(cm, c, seg.placement), c), brute_optimum(cm, c, pins.pin)))
            << "parametric at " << c.bandwidth_mbps << " Mbit/s";
        ASSERT_TRUE(near(seg.intercept + seg.slope / c.bandwidth_mbps, objective(reference(cm, c, seg.placement), c), 1e-8));
      }
    }

    // Throughput: within the stated bound, counted when exact.
    {
      Plan p = make_plan("throughput", cm, ctx, pins);
      ASSERT_TRUE(p.ok()) << p.reason;
      const double got = reference(cm, ctx, p.placement).bottleneck();
      ASSERT_LE(got, kThroughputBound * opt_tp * (1 + 1e-9) + 1e-12);
      ASSERT_TRUE(near(1000.0 / p.throughput_fps, got)) << "fps " << p.throughput_fps;
      if (near(got, opt_tp)) ++throughput_exact;
      if (p.status == PlanStatus::Optimal) ASSERT_TRUE(near(got, opt_tp));
      worst_tp = std::max(worst_tp, got / std::max(opt_tp, 1e-300));
      expect_valid(p, cm);
    }

    // gads under random memory / latency / energy constraints, from a random current plan.
    {
      Constraints cons = pins;
      double total_params = 0;
      for (double b : cm.dag.param_bytes) total_params += b;
      if (chance(rng, 0.8)) cons.device_memory_bytes = uniform(rng, 0, 1) * total_params;
      if (chance(rng, 0.3)) cons.max_latency_ms = opt_latency * uniform(rng, 1.0, 1.6);
      if (chance(rng, 0.2) && !cm.energy_mj.empty()) cons.max_energy_mj = opt_energy * uniform(rng, 1.0, 1.6);
      std::vector<int> current;
      if (chance(rng, 0.5)) current = placement_of(static_cast<unsigned>(rng()) & ((1u << n) - 1), n);
      double copt = INFINITY;
      for (unsigned m = 0; m < (1u << n); ++m) {
        const Ref& r = refs[m];
        if (!meets_pins(placement_of(m, n), cons.pin)) continue;
        if (r.memory > cons.device_memory_bytes * (1 + 1e-9) || r.latency > cons.max_latency_ms * (1 + 1e-9) ||
            r.energy > cons.max_energy_mj * (1 + 1e-9))
          continue;
        copt = std::min(copt, objective(r, ctx));
      }
      Plan p = make_plan("gads", cm, ctx, cons, current);
      expect_valid(p, cm);
      if (std::isfinite(copt)) {
        ++gads_feasible_cases;
        ASSERT_TRUE(p.ok()) << "gads: " << p.reason;
        const Ref r = reference(cm, ctx, p.placement);
        ASSERT_LE(r.memory, cons.device_memory_bytes * (1 + 1e-9));
        ASSERT_LE(r.latency, cons.max_latency_ms * (1 + 1e-9));
        ASSERT_LE(r.energy, cons.max_energy_mj * (1 + 1e-9));
        ASSERT_TRUE(meets_pins(p.placement, cons.pin));
        const double got = objective(r, ctx);
        EXPECT_LE(got, copt * 1.05 + 1e-9) << "gads objective vs constrained optimum; memory limit "
                                           << cons.device_memory_bytes << " latency limit " << cons.max_latency_ms
                                           << " energy limit " << cons.max_energy_mj << " status " << status_name(p.status);
        if (near(got, copt)) ++gads_exact;
        worst_gads = std::max(worst_gads, got / std::max(copt, 1e-300));
      } else {
        ASSERT_EQ(p.status, PlanStatus::Infeasible) << "brute force finds no feasible placement";
        ASSERT_FALSE(p.reason.empty());
      }
    }
  }
  std::printf("[ stats    ] throughput exact in %d/%d cases (worst ratio %.4f, bound %.1f); "
              "gads exact in %d/%d feasible cases (worst ratio %.4f)\n",
              throughput_exact, cases, worst_tp, kThroughputBound, gads_exact, gads_feasible_cases, worst_gads);
}

// ---- larger graphs: the variants agree ---------------------------------------

namespace {
// A ResNet-like chain with skip connections (and the last value an output).
// The incremental move evaluator of the local searches (gads, throughput) agrees
// with recomputing cut_value from scratch, for single atoms and groups, before
// and after moves are applied.
TEST(LocalSearch, MoveDeltasMatchRecomputation) {
  std::mt19937 rng(11);
  int checked = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 2 + static_cast<int>(rng() % 20);
    CostModel cm = random_model(rng, n);
    Context ctx = random_context(rng, !cm.energy_mj.empty());
    CutCosts lat, mem;
    cut_costs(cm, ctx, objective_weights(ctx), lat);
    CostWeights w;
    w.latency = 0;
    w.memory = 1;
    cut_costs(cm, ctx, w, mem);
    const std::vector<const CutCosts*> costs{&lat, &mem};
    std::vector<int> x(static_cast<size_t>(n));
    for (int& v : x) v = static_cast<int>(rng() % 2);
    MoveEvaluator moves(cm.dag);
    moves.reset(x);
    std::vector<double> d;
    for (int step = 0; step < 30; ++step) {
      std::vector<int> group{static_cast<int>(rng() % n)};
      if (chance(rng, 0.5))
        for (int b : moves.neighbours(group[0])) group.push_back(b);
      if (chance(rng, 0.2)) group.push_back(group[0]);  // duplicates count once
      const int target = static_cast<int>(rng() % 2);
      moves.group_deltas(costs, group, target, d);
      std::vector<int> y = moves.placement();
      ASSERT_EQ(y, x);
      for (int a : group) y[a] = target;
      for (size_t i = 0; i < costs.size(); ++i) {
        const double want = cut_value(cm.dag, *costs[i], y) - cut_value(cm.dag, *costs[i], x);
        ASSERT_NEAR(d[i], want, 1e-9 * (1 + std::abs(want))) << "trial " << trial << " step " << step << " cost " << i;
      }
      ++checked;
      if (chance(rng, 0.5)) {
        moves.apply(group, target);
        x = y;
      }
    }
  }
  EXPECT_EQ(checked, 200 * 30);
}

CostModel resnet_like(int n, std::mt19937& rng) {
  CostModel cm;
  cm.dag.num_atoms = n;
  DagValue in;
  in.consumers = {0};
  in.bytes = 6e5;
  cm.dag.values.push_back(in);
  for (int a = 0; a < n; ++a) {
    DagValue v;
    v.producer = a;
    if (a + 1 < n) v.consumers.push_back(a + 1);
    if (a % 5 == 0 && a + 5 < n) v.consumers.push_back(a + 5);
    v.is_output = a == n - 1;
    v.bytes = uniform(rng, 1e4, 1e6);
    cm.dag.values.push_back(v);
    cm.dag.param_bytes.push_back(uniform(rng, 0, 1e6));
  }
  cm.compute_ms.assign(2, std::vector<double>(static_cast<size_t>(n)));
  for (int a = 0; a < n; ++a) {
    cm.compute_ms[0][a] = uniform(rng, 0.1, 5);
    cm.compute_ms[1][a] = uniform(rng, 0.01, 0.5);
  }
  return cm;
}
}  // namespace

TEST(Planners, CompressedAndMincutAgreeOnLargeGraphs) {
  std::mt19937 rng(7);
  for (int n : {50, 400, 3000}) {
    CostModel cm = resnet_like(n, rng);
    auto mc = make_planner("mincut", cm);
    auto cc = make_planner("compressed", cm);
    auto pp = make_planner("parametric", cm);
    CutSolver compressed(cm.dag, true);
    EXPECT_LT(compressed.num_flow_atoms(), n);
    for (double bw : {0.13, 1.1, 5.85, 18.88, 100.0}) {
      Context ctx;
      ctx.bandwidth_mbps = bw;
      ctx.rtt_ms = 10;
      Plan a = mc->plan(ctx), b = cc->plan(ctx), c = pp->plan(ctx);
      EXPECT_TRUE(near(a.objective, b.objective)) << n << " atoms at " << bw;
      EXPECT_TRUE(near(a.objective, c.objective)) << n << " atoms at " << bw;
      Plan chain = make_plan("chain", cm, ctx);
      EXPECT_LE(a.objective, chain.objective * (1 + 1e-12));
      expect_valid(a, cm);
    }
  }
}

// ---- schedule_blocks ------------------------------------------------------------

TEST(ScheduleBlocks, ConvexOrderedMaximal) {
  std::mt19937 rng(99);
  for (int iter = 0; iter < 300; ++iter) {
    const int n = 2 + static_cast<int>(rng() % 30);
    CostModel cm = random_model(rng, n);
    std::vector<int> x(static_cast<size_t>(n));
    for (int& t : x) t = static_cast<int>(rng() % 2);
    Plan p = evaluate(cm, Context{1.0}, x);
    ASSERT_TRUE(validate(p, cm).empty()) << validate(p, cm)[0];
    std::vector<int> seen(static_cast<size_t>(n), 0);
    for (size_t b = 0; b < p.blocks.size(); ++b) {
      if (b > 0) EXPECT_NE(p.blocks[b].target, p.blocks[b - 1].target) << "consecutive blocks should merge";
      for (int a : p.blocks[b].atoms) {
        EXPECT_EQ(x[a], p.blocks[b].target);
        ++seen[a];
      }
      // inputs: model inputs or produced by an earlier block
      for (int v : p.blocks[b].inputs) {
        const int prod = cm.dag.values[v].producer;
        if (prod == kModelInput) continue;
        bool earlier = false;
        for (size_t e = 0; e < b; ++e)
          earlier |= std::count(p.blocks[e].atoms.begin(), p.blocks[e].atoms.end(), prod) > 0;
        EXPECT_TRUE(earlier) << "block " << b << " input " << v;
      }
    }
    for (int a = 0; a < n; ++a) EXPECT_EQ(seen[a], 1);
  }
  // Device-only and a chain split give 1 and 2 blocks.
  std::mt19937 r2(1);
  CostModel cm = resnet_like(20, r2);
  EXPECT_EQ(schedule_blocks(cm.dag, std::vector<int>(20, 0)).size(), 1u);
  std::vector<int> split(20, 1);
  std::fill(split.begin(), split.begin() + 7, 0);
  EXPECT_EQ(schedule_blocks(cm.dag, split).size(), 2u);
}

// ---- validate rejects broken plans ------------------------------------------

namespace {
// a -> b -> c, a -> c; value 3 (c's output) is the model output.
CostModel triangle() {
  CostModel cm;
  cm.dag.num_atoms = 3;
  cm.dag.values = {
      {kModelInput, {0}, 100, false, "x"},
      {0, {1, 2}, 1000, false, "a_out"},
      {1, {2}, 1000, false, "b_out"},
      {2, {}, 10, true, "y"},
  };
  cm.dag.param_bytes = {1, 2, 3};
  cm.dag.atom_names = {"conv", "relu", "add"};
  cm.compute_ms = {{1, 1, 1}, {0.5, 0.5, 0.5}};
  return cm;
}
bool mentions(const std::vector<std::string>& problems, const std::string& what) {
  for (const auto& p : problems)
    if (p.find(what) != std::string::npos) return true;
  return false;
}
}  // namespace

TEST(Validate, RejectsBrokenPlansWithReasons) {
  CostModel cm = triangle();
  Context ctx;
  ctx.bandwidth_mbps = 10;
  Plan good = evaluate(cm, ctx, {0, 1, 0});
  ASSERT_TRUE(validate(good, cm).empty());

  Plan p = good;
  p.placement.pop_back();
  EXPECT_TRUE(mentions(validate(p, cm), "placement has 2 entries, the model has 3 atoms"));

  p = good;
  p.placement[1] = 5;
  EXPECT_TRUE(mentions(validate(p, cm), "placement[1] (relu) = 5"));

  p = good;  // an atom missing from the blocks
  p.blocks.back().atoms.clear();
  EXPECT_TRUE(mentions(validate(p, cm), "is in no block"));

  p = good;  // a block on the wrong target
  p.blocks[1].target = 0;
  EXPECT_TRUE(mentions(validate(p, cm), "runs on target 0 but its atom 1"));

  p = good;  // blocks out of order
  std::reverse(p.blocks.begin(), p.blocks.end());
  EXPECT_TRUE(mentions(validate(p, cm), "not executable in order"));

  p = good;  // a non-convex block: {conv, add} around relu on the server
  p.blocks = {ScheduledBlock{0, {0, 2}, {}, {}}, ScheduledBlock{1, {1}, {}, {}}};
  auto problems = validate(p, cm);
  EXPECT_TRUE(mentions(problems, "not convex")) << (problems.empty() ? "" : problems[0]);

  Plan s = evaluate(cm, ctx, {0, 0, 1});  // output produced on the server must come back
  ASSERT_TRUE(validate(s, cm).empty());
  s.transfers.erase(std::remove_if(s.transfers.begin(), s.transfers.end(),
                                   [](const Transfer& t) { return t.value == 3; }),
                    s.transfers.end());
  EXPECT_TRUE(mentions(validate(s, cm), "never brought back to the device"));

  p = good;  // a missing cut transfer
  p.transfers.clear();
  EXPECT_TRUE(mentions(validate(p, cm), "receives no transfer"));

  p = good;  // a model input claimed to come from the server
  p.transfers.push_back({0, 1, 0, 100, 0});
  EXPECT_TRUE(mentions(validate(p, cm), "model inputs live on the device"));
}

// ---- explanations ----------------------------------------------------------

TEST(Plan, ExplainNamesTheCut) {
  CostModel cm = triangle();
  Context ctx;
  ctx.bandwidth_mbps = 5.85;
  ctx.rtt_ms = 10;
  Plan p = evaluate(cm, ctx, {0, 1, 1});
  p.algorithm = "mincut";
  const std::string text = p.explain(cm);
  EXPECT_NE(text.find("cut after conv (atom 0)"), std::string::npos) << text;
  EXPECT_NE(text.find("5.85 Mbit/s"), std::string::npos) << text;
  EXPECT_NE(text.find("result of add (atom 2)"), std::string::npos) << text;
  EXPECT_NE(text.find("rtt/2 (5.000 ms)"), std::string::npos) << text;
  // a_out goes to the server once although relu and add both read it there.
  int a_out = 0;
  for (const Transfer& t : p.transfers) a_out += t.value == 1;
  EXPECT_EQ(a_out, 1);
}

// ---- bad input names the field -------------------------------------------------

namespace {
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const tessera::Error& e) {
    EXPECT_EQ(e.kind(), tessera::ErrorKind::InvalidArgument);
    return e.message();
  }
  return "<no error>";
}
}  // namespace

TEST(BadInput, ErrorsNameTheField) {
  Context ctx;
  ctx.bandwidth_mbps = 10;
  {
    CostModel cm = triangle();
    cm.compute_ms[1].pop_back();
    EXPECT_NE(error_of([&] { make_plan("mincut", cm, ctx); }).find("compute_ms[1]"), std::string::npos);
  }
  {
    CostModel cm = triangle();
    cm.compute_ms[0][2] = std::nan("");
    EXPECT_NE(error_of([&] { make_plan("mincut", cm, ctx); }).find("compute_ms[0][2] (add)"), std::string::npos);
  }
  {
    CostModel cm = triangle();
    cm.compute_ms[1][0] = -1;
    EXPECT_NE(error_of([&] { make_plan("chain", cm, ctx); }).find("compute_ms[1][0]"), std::string::npos);
  }
  {
    CostModel cm = triangle();
    cm.compute_ms.pop_back();
    EXPECT_NE(error_of([&] { make_plan("mincut", cm, ctx); }).find("at least 2"), std::string::npos);
  }
  {
    CostModel cm = triangle();
    cm.dag.values[2].consumers = {0};
    EXPECT_NE(error_of([&] { make_plan("mincut", cm, ctx); }).find("values[2].consumers[0]"), std::string::npos);
  }
  {
    CostModel cm = triangle();
    cm.dag.param_bytes = {1, 2};
    EXPECT_NE(error_of([&] { make_plan("gads", cm, ctx); }).find("param_bytes"), std::string::npos);
  }
  CostModel cm = triangle();
  for (double bw : {0.0, -3.0, std::nan("")}) {
    Context c = ctx;
    c.bandwidth_mbps = bw;
    EXPECT_NE(error_of([&] { make_plan("mincut", cm, c); }).find("bandwidth_mbps"), std::string::npos);
  }
  {
    Context c = ctx;
    c.rtt_ms = -1;
    EXPECT_NE(error_of([&] { make_plan("mincut", cm, c); }).find("rtt_ms"), std::string::npos);
    c = ctx;
    c.server_load = 0;
    EXPECT_NE(error_of([&] { make_plan("mincut", cm, c); }).find("server_load"), std::string::npos);
  }
  EXPECT_NE(error_of([&] { make_plan("magic", cm, ctx); }).find("algorithm 'magic'"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_objective("speed"); }).find("objective 'speed'"), std::string::npos);
  {
    Constraints cons;
    cons.pin = {0, 7, -1};
    EXPECT_NE(error_of([&] { make_plan("mincut", cm, ctx, cons); }).find("pin[1]"), std::string::npos);
    cons.pin = {0};
    EXPECT_NE(error_of([&] { make_plan("mincut", cm, ctx, cons); }).find("Constraints.pin"), std::string::npos);
  }
  EXPECT_NE(error_of([&] { evaluate(cm, ctx, {0, 1}); }).find("placement has 2 entries"), std::string::npos);
  EXPECT_NE(error_of([&] { make_plan("gads", cm, ctx, {}, {0, 3, 0}); }).find("current placement[1]"), std::string::npos);
}

// ---- constraints: gads infeasible with a reason; pins; N targets ---------------

TEST(Gads, InfeasibleWithReason) {
  CostModel cm = triangle();
  Context ctx;
  ctx.bandwidth_mbps = 10;
  Constraints cons;
  cons.pin = {0, -1, 0};
  cons.device_memory_bytes = 2;  // atoms 0 and 2 pinned: 1 + 3 bytes
  Plan p = make_plan("gads", cm, ctx, cons);
  EXPECT_EQ(p.status, PlanStatus::Infeasible);
  EXPECT_NE(p.reason.find("device_memory_bytes"), std::string::npos) << p.reason;
  EXPECT_NE(p.reason.find("pinned"), std::string::npos) << p.reason;

  cons = {};
  cons.max_latency_ms = 0.1;
  p = make_plan("gads", cm, ctx, cons);
  EXPECT_EQ(p.status, PlanStatus::Infeasible);
  EXPECT_NE(p.reason.find("max_latency_ms"), std::string::npos) << p.reason;

  // A planner that ignores constraints says so.
  cons = {};
  cons.device_memory_bytes = 0;
  p = make_plan("device_only", cm, ctx, cons);
  EXPECT_EQ(p.status, PlanStatus::Infeasible);
  EXPECT_NE(p.reason.find("device_memory_bytes"), std::string::npos);
  p = make_plan("gads", cm, ctx, cons);
  EXPECT_TRUE(p.ok()) << p.reason;
  EXPECT_EQ(p.device_memory_bytes, 0);
}

TEST(Planners, NamesAndPurity) {
  const auto& names = planner_names();
  EXPECT_EQ(names.size(), 8u);
  std::mt19937 rng(3);
  CostModel cm = random_model(rng, 10);
  const CostModel copy = cm;
  Context ctx = random_context(rng, !cm.energy_mj.empty());
  for (const auto& name : names) {
    Plan p = make_plan(name, cm, ctx);
    EXPECT_EQ(p.algorithm, name);
    EXPECT_TRUE(validate(p, cm).empty()) << name;
  }
  EXPECT_EQ(cm.compute_ms, copy.compute_ms);
  EXPECT_EQ(cm.dag.param_bytes, copy.dag.param_bytes);
}

TEST(Planners, ThreeTargetsEvaluateAndTwoTargetPlannersReport) {
  CostModel cm = triangle();
  cm.compute_ms.push_back({0.1, 0.1, 0.1});
  cm.links.assign(3, std::vector<LinkCost>(3));
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) cm.links[i][j] = LinkCost{100, 20, 0};
  Context ctx;
  ctx.bandwidth_mbps = 10;
  Plan p = evaluate(cm, ctx, {0, 2, 1});
  EXPECT_TRUE(validate(p, cm).empty());
  EXPECT_EQ(p.target_ms.size(), 3u);
  Constraints cons;
  cons.pin = {-1, 2, -1};
  Plan q = make_plan("mincut", cm, ctx, cons);
  EXPECT_EQ(q.status, PlanStatus::BadInput);
  EXPECT_NE(q.reason.find("pin[1]"), std::string::npos);
  cm.links.clear();
  EXPECT_NE(error_of([&] { make_plan("mincut", cm, ctx); }).find("CostModel.links"), std::string::npos);
}

TEST(Parametric, BreakpointsAreSortedAndLookupIsFast) {
  std::mt19937 rng(5);
  CostModel cm = resnet_like(400, rng);
  Context ctx;
  ctx.rtt_ms = 5;
  ParametricPlanner par(cm, ctx);
  auto bps = par.breakpoints();
  EXPECT_TRUE(std::is_sorted(bps.begin(), bps.end()));
  EXPECT_EQ(par.segments().size(), bps.size() + 1);
  EXPECT_LE(par.num_cuts_solved(), 2 * static_cast<int>(par.segments().size()) + 1);
  // Every segment is optimal at its middle: compare with a fresh min cut.
  auto mc = make_planner("mincut", cm);
  for (const auto& seg : par.segments()) {
    Context c = ctx;
    c.bandwidth_mbps = std::sqrt(seg.bw_lo_mbps * seg.bw_hi_mbps);
    EXPECT_TRUE(near(evaluate(cm, c, seg.placement).objective, mc->plan(c).objective));
  }
}
