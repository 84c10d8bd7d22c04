// The device's energy (plan/energy.h): accounting against hand computation, the energy-aware
// planner against brute force over every placement x frequency x transmit power, the Lyapunov
// controller keeping its budget, and bad power models named.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "tessera/core/error.h"
#include "tessera/plan/energy.h"
#include "tessera/plan/planners.h"

using namespace tessera::plan;

namespace {

double uniform(std::mt19937& rng, double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); }

// x -> a0 -> a1 -> a2 -> y: the device is slow, the input large, the middle small.
CostModel chain() {
  CostModel cm;
  cm.dag.num_atoms = 3;
  cm.dag.values = {{tessera::kModelInput, {0}, 1e6, false, "x"},
                   {0, {1}, 1e5, false, "a"},
                   {1, {2}, 1e4, false, "b"},
                   {2, {}, 400, true, "y"}};
  cm.compute_ms = {{100, 100, 100}, {10, 10, 10}};
  return cm;
}

PowerModel phone() {
  PowerModel pm;
  pm.freqs_mhz = {600, 1200, 2400};
  pm.active_mw = {200, 500, 1600};
  pm.idle_mw = 30;
  pm.rx_mw = 120;
  pm.tx.max_power_mw = 250;
  pm.tx.bandwidth_mhz = 10;
  pm.tx.levels_mw = {50, 125, 250};
  return pm;
}

CostModel random_model(std::mt19937& rng, int n) {
  CostModel cm;
  cm.dag.num_atoms = n;
  tessera::DagValue in;
  in.name = "x";
  in.consumers.push_back(0);
  for (int c = 1; c < n; ++c)
    if (uniform(rng, 0, 1) < 0.1) in.consumers.push_back(c);
  in.bytes = uniform(rng, 1e4, 1e6);
  cm.dag.values.push_back(in);
  for (int a = 0; a < n; ++a) {
    tessera::DagValue v;
    v.producer = a;
    v.name = "v" + std::to_string(a);
    for (int c = a + 1; c < n; ++c)
      if (c == a + 1 || uniform(rng, 0, 1) < 0.15) v.consumers.push_back(c);
    v.is_output = a == n - 1 || uniform(rng, 0, 1) < 0.05;
    v.bytes = uniform(rng, 1e2, 1e6);
    cm.dag.values.push_back(v);
  }
  cm.compute_ms.assign(2, std::vector<double>(n));
  for (int a = 0; a < n; ++a) {
    cm.compute_ms[0][a] = uniform(rng, 1, 80);
    cm.compute_ms[1][a] = uniform(rng, 0.1, 8);
  }
  return cm;
}

}  // namespace

TEST(Energy, AccountingEqualsHandComputation) {
  const CostModel cm = chain();
  const PowerModel pm = phone();
  // a0 on the device at 1200 MHz (time x 2400/1200 = 200 ms at 500 mW), a1 a2 on the server;
  // value a (1e5 B) up at 125 mW, y (400 B) down; 8 Mbit/s at 250 mW, rtt 20 ms.
  const double bw = 8, rtt = 20;
  const auto e = device_energy(cm, pm, {0, 1, 1}, {1200, 125}, bw, rtt);
  const double snr = std::pow(2.0, bw / 10) - 1;                     // 2^(8/10) - 1 at 250 mW
  const double rate = 10 * std::log2(1 + snr * 125 / 250);            // Mbit/s at 125 mW
  const double up_ms = 1e5 * 8e-3 / rate, down_ms = 400 * 8e-3 / bw;
  EXPECT_NEAR(e.tx_rate_mbps, rate, 1e-12);
  EXPECT_NEAR(e.device_ms, 200, 1e-9);
  EXPECT_NEAR(e.compute_mj, 200 * 500 / 1e3, 1e-9);
  EXPECT_NEAR(e.tx_mj, 125 * up_ms / 1e3, 1e-9);
  EXPECT_NEAR(e.rx_mj, 120 * down_ms / 1e3, 1e-9);
  EXPECT_NEAR(e.idle_mj, 30 * (20 + 20) / 1e3, 1e-9);  // server 2 x 10 ms, rtt/2 twice
  EXPECT_NEAR(e.total_mj, e.compute_mj + e.tx_mj + e.rx_mj + e.idle_mj, 1e-12);
  EXPECT_NEAR(e.latency_ms, 200 + up_ms + 10 + 20 + down_ms + 10, 1e-9);
  // the cut costs price every placement exactly as the accounting does
  CutCosts c;
  energy_cut_costs(cm, pm, {1200, 125}, bw, rtt, 2.0, 0.7, c);
  for (uint32_t m = 0; m < 8; ++m) {
    const std::vector<int> x = {int(m & 1), int((m >> 1) & 1), int((m >> 2) & 1)};
    const auto p = device_energy(cm, pm, x, {1200, 125}, bw, rtt);
    EXPECT_NEAR(cut_value(cm.dag, c, x), 2.0 * p.latency_ms + 0.7 * p.total_mj, 1e-9) << m;
  }
  // without a channel width the rate ignores the power; at max power it is the link's
  PowerModel flat = pm;
  flat.tx.bandwidth_mhz = 0;
  EXPECT_DOUBLE_EQ(flat.tx_rate_mbps(50, 8), 8);
  EXPECT_DOUBLE_EQ(pm.tx_rate_mbps(250, 8), 8);
  PowerModel mem = pm;
  mem.memory_bound = 0.25;  // a quarter of the time does not scale with the clock
  EXPECT_NEAR(mem.time_factor(600), 0.25 + 0.75 * 4, 1e-12);
}

TEST(Energy, PlansEqualBruteForceOverPlacementsFrequenciesAndPowers) {
  std::mt19937 rng(2024);
  const PowerModel pm = phone();
  int exact = 0, binding = 0, binding_exact = 0;
  for (int iter = 0; iter < 300; ++iter) {
    const int n = 2 + static_cast<int>(rng() % 11);  // 2..12 atoms
    const CostModel cm = random_model(rng, n);
    const double bw = std::pow(10.0, uniform(rng, -0.5, 2)), rtt = uniform(rng, 0, 60);
    EnergyWeights w;
    w.latency = uniform(rng, 0, 1) < 0.2 ? 0.0 : uniform(rng, 0.1, 100);
    w.energy = uniform(rng, 0, 50);
    if (w.latency + w.energy == 0) w.energy = 1;
    const auto got = plan_energy(cm, pm, bw, rtt, w);
    const auto ref = plan_energy_brute_force(cm, pm, bw, rtt, w);
    ASSERT_NEAR(got.objective, ref.objective, 1e-9 * std::max(1.0, ref.objective)) << "case " << iter;
    EXPECT_EQ(got.candidates, 9);
    exact += std::abs(got.objective - ref.objective) <= 1e-9 * std::max(1.0, ref.objective);
    // a deadline between the fastest and the unconstrained plan: met, never better than brute force
    w.deadline_ms = ref.parts.latency_ms * uniform(rng, 0.6, 1.0);
    const auto dref = plan_energy_brute_force(cm, pm, bw, rtt, w);
    const auto dgot = plan_energy(cm, pm, bw, rtt, w);
    if (!dref.meets_deadline) {
      EXPECT_FALSE(dgot.meets_deadline) << "case " << iter;
      continue;
    }
    ++binding;
    ASSERT_TRUE(dgot.meets_deadline) << "case " << iter << ": " << dgot.why;
    EXPECT_GE(dgot.objective, dref.objective * (1 - 1e-9));
    binding_exact += dgot.objective <= dref.objective * (1 + 1e-9);
  }
  EXPECT_EQ(exact, 300);
  std::printf("deadline-constrained (Lagrangian): %d/%d equal brute force, every one meets the deadline\n",
              binding_exact, binding);
}

TEST(Energy, TheControllerKeepsItsBudgetOnATrace) {
  const CostModel cm = chain();
  const PowerModel pm = phone();
  std::vector<double> bws;
  for (int i = 0; i < 2000; ++i) bws.push_back(i % 40 < 20 ? 2.0 : 40.0);  // regimes of 20 requests
  // the unconstrained extremes: fastest (V only) and least energy
  EnergyWeights fast, frugal;
  frugal.latency = 0;
  frugal.energy = 1;
  double e_fast = 0, e_min = 0;
  for (double bw : bws) {
    e_fast += plan_energy(cm, pm, bw, 20, fast).parts.total_mj;
    e_min += plan_energy(cm, pm, bw, 20, frugal).parts.total_mj;
  }
  e_fast /= bws.size(), e_min /= bws.size();
  const double budget = e_min + 0.3 * (e_fast - e_min);
  ASSERT_LT(budget, e_fast);
  for (double V : {1.0, 10.0, 100.0}) {
    EnergyController ctl(cm, pm, {budget, V});
    const auto recs = run_controller(ctl, bws, 20);
    double e = 0, q_max = 0;
    for (const auto& r : recs) e += r.decision.parts.total_mj, q_max = std::max(q_max, r.queue);
    e /= recs.size();
    EXPECT_LE(e, budget * 1.02) << "V " << V;
    EXPECT_LT(q_max, 1e5) << "V " << V;  // the queue stays bounded
  }
  // the oracle with the same budget meets it, and no policy does better on latency at that energy
  double lambda = -1;
  const auto oracle = energy_oracle(cm, pm, bws, 20, budget, kUnlimited, &lambda);
  double oe = 0;
  for (const auto& d : oracle) oe += d.parts.total_mj;
  EXPECT_LE(oe / oracle.size(), budget * (1 + 1e-9));
  EXPECT_GT(lambda, 0);
}

TEST(Energy, BadPowerModelsAndBudgetsAreNamed) {
  const CostModel cm = chain();
  auto fails_with = [&](PowerModel pm, const std::string& what) {
    try {
      pm.validate();
      ADD_FAILURE() << "accepted: " << what;
    } catch (const tessera::Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  PowerModel pm = phone();
  pm.freqs_mhz = {600, 600, 2400};
  fails_with(pm, "frequencies must increase");
  pm = phone();
  pm.active_mw[1] = -5;
  fails_with(pm, "active_mw[1] = -5");
  pm = phone();
  pm.tx.levels_mw = {50, 400};
  fails_with(pm, "transmit level 1 = 400 mW is above the maximum 250 mW");
  pm = phone();
  pm.active_mw.pop_back();
  fails_with(pm, "active_mw has 2 entries for 3 frequencies");
  try {
    EnergyController(cm, phone(), {0.001, 10});
    ADD_FAILURE();
  } catch (const tessera::Error& e) {
    EXPECT_NE(std::string(e.what()).find("below the device's idle energy"), std::string::npos) << e.what();
  }
  EXPECT_THROW(device_energy(cm, phone(), {0, 1, 1}, {1000, 0}, 8, 20), tessera::Error);  // not a level
  // the energy objective without energy data is an error, not an "optimal" plan
  Context ctx;
  ctx.bandwidth_mbps = 8;
  ctx.objective = Objective::Energy;
  try {
    make_plan("mincut", cm, ctx);
    ADD_FAILURE();
  } catch (const tessera::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no energy data"), std::string::npos) << e.what();
  }
}
