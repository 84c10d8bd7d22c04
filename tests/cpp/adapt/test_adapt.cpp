// Adaptation in C++: the emulated link's arithmetic and the monitor's estimate.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <cmath>

#include "tessera/adapt/policy.h"
#include "tessera/adapt/simulate.h"
#include "tessera/adapt/load_switch.h"
#include "tessera/plan/plan.h"
#include "tessera/transport/link.h"
#include "tessera/adapt/monitor.h"
#include "tessera/core/error.h"

using namespace tessera::adapt;
using namespace tessera::transport;

TEST(Link, ConstantRateAndDelay) {
  LinkSpec s;
  s.bandwidth_mbps = 8;  // 1 MB/s
  s.rtt_ms = 20;
  Link l(s);
  EXPECT_NEAR(l.serialization_ms(1e6, 0), 1000.0, 1e-6);
  EXPECT_NEAR(l.transmit(1e5), 100.0 + 10.0, 1e-6);
  EXPECT_DOUBLE_EQ(l.mean_bandwidth(), 8);
}

TEST(Link, TraceIsIntegratedAcrossSamples) {
  LinkSpec s;
  s.trace = {{0, 8}, {1, 16}, {2, 8}};  // 1 MB/s for 1 s, then 2 MB/s, then 1 MB/s (loops every 3 s)
  Link l(s);
  EXPECT_DOUBLE_EQ(l.bandwidth_at(0.5), 8);
  EXPECT_DOUBLE_EQ(l.bandwidth_at(1.5), 16);
  EXPECT_DOUBLE_EQ(l.bandwidth_at(3.5), 8);  // looped
  // 2 MB starting at 0.5 s: 0.5 MB in the first 0.5 s, 1.5 MB at 2 MB/s = 0.75 s
  EXPECT_NEAR(l.serialization_ms(2e6, 0.5), 1250.0, 1e-6);
  l.set_virtual_time(1.25);
  EXPECT_DOUBLE_EQ(l.bandwidth_now(), 16);
}

TEST(Link, ReadsTraceFilesAndRejectsBadOnes) {
  auto dir = std::filesystem::temp_directory_path();
  auto good = (dir / "tessera_trace_ok.txt").string();
  std::ofstream(good) << "# time bw\n10\t1.5\n11\t2.5\n\n12 0.5\n";
  auto tr = read_trace(good);
  ASSERT_EQ(tr.size(), 3u);
  EXPECT_DOUBLE_EQ(tr[0].first, 0);  // shifted to start at 0
  EXPECT_DOUBLE_EQ(tr[1].second, 2.5);
  auto bad = (dir / "tessera_trace_bad.txt").string();
  std::ofstream(bad) << "0 1\n1 x\n";
  try {
    read_trace(bad);
    FAIL();
  } catch (const tessera::Error& e) {
    EXPECT_NE(e.message().find("tessera_trace_bad.txt:2"), std::string::npos) << e.message();
  }
  EXPECT_THROW(read_trace((dir / "no_such_trace.txt").string()), tessera::Error);
  EXPECT_THROW(Link(LinkSpec{}), tessera::Error);  // no rate, no trace
}

TEST(Monitor, MedianIgnoresAnOutlier) {
  Monitor m({5, 1000, 0.3});
  m.observe_rtt(10);
  for (int i = 0; i < 4; ++i) m.observe_transfer(1e6, 10 + 800);  // 8 Mbit in 800 ms = 10 Mbit/s
  m.observe_transfer(1e6, 10 + 8);                                // an outlier: 1000 Mbit/s
  ASSERT_TRUE(m.bandwidth_mbps().has_value());
  EXPECT_NEAR(*m.bandwidth_mbps(), 10.0, 1e-9);
  m.observe_server(20, 10);
  EXPECT_GT(m.server_load(), 1.0);
  EXPECT_GT(Monitor::free_memory_bytes(), 0);
}

// ---- policies: one interface, plain C++ over the cost model ----------------------------
namespace {
// input (1 MB) -> a0 -> a1 -> a2 -> output (4 bytes); the device is 10x slower.
tessera::plan::CostModel chain_costs() {
  tessera::plan::CostModel cm;
  cm.dag.num_atoms = 3;
  cm.dag.values = {{tessera::kModelInput, {0}, 1e6, false, "x"},
                   {0, {1}, 1e5, false, ""},
                   {1, {2}, 1e4, false, ""},
                   {2, {}, 4, true, "y"}};
  cm.compute_ms = {{100, 100, 100}, {10, 10, 10}};
  return cm;
}
Observation at(double est, double truth, std::vector<int> current, int index = 1) {
  Observation o;
  o.index = index;
  o.est_bandwidth = est;
  o.true_bandwidth = truth;
  o.current = std::move(current);
  return o;
}
}  // namespace

TEST(Policy, StaticOracleAndAdaptiveDecideFromTheirObservations) {
  const auto cm = chain_costs();
  auto fixed = make_static_policy("static", {0, 0, 1});
  EXPECT_EQ(fixed->name(), "static");
  EXPECT_FALSE(fixed->uses_estimates());
  EXPECT_EQ(fixed->decide(at(1, 1, {0, 0, 0})).placement, (std::vector<int>{0, 0, 1}));

  // the oracle follows the TRUE bandwidth, whatever the estimate says
  auto oracle = make_oracle_policy(cm, 0.0);
  const auto slow = oracle->decide(at(1000, 0.1, {0, 0, 0}));
  const auto fast = oracle->decide(at(0.1, 1000, {0, 0, 0}));
  EXPECT_EQ(slow.placement, (std::vector<int>{0, 0, 0}));  // 1 MB at 0.1 Mbit/s: stay on the device
  EXPECT_EQ(fast.placement, (std::vector<int>{1, 1, 1}));  // 1 MB at 1 Gbit/s: 8 ms, then 30 ms on the server
  EXPECT_NEAR(fast.predicted_ms, 30 + 8 + 4 * 8e-3 / 1000, 1e-6);
  EXPECT_FALSE(oracle->breakpoints().empty());
  EXPECT_THROW(oracle->decide(at(10, 0, {0, 0, 0})), tessera::Error);  // no link: no truth

  // the adaptive policy follows the estimate, and keeps its plan inside the hysteresis band
  AdaptiveOptions ao;
  auto adaptive = make_adaptive_policy(cm, ao);
  EXPECT_TRUE(adaptive->uses_estimates());
  const auto bp = adaptive->decide(at(1000, 0, {0, 0, 0}, 0));
  EXPECT_EQ(bp.placement, (std::vector<int>{1, 1, 1}));
  const double lo = adaptive->breakpoints().back();  // the all-server plan holds above this
  const Decision kept = adaptive->decide(at(lo / 1.1, 0, bp.placement));
  EXPECT_EQ(kept.placement, bp.placement);  // within 20%: kept, and the record says why
  EXPECT_NE(kept.why.find("hysteresis"), std::string::npos) << kept.why;
  EXPECT_NE(kept.estimate_device_atoms, 0);  // the estimate alone would have moved atoms to the device
  EXPECT_NE(adaptive->decide(at(lo / 1.5, 0, bp.placement)).placement, bp.placement);  // beyond: switched
  AdaptiveOptions chain = ao;
  chain.planner = "chain";
  EXPECT_EQ(make_adaptive_policy(cm, chain)->name(), "chain");
  AdaptiveOptions bad = ao;
  bad.planner = "magic";
  EXPECT_THROW(make_adaptive_policy(cm, bad), tessera::Error);
}

// ---- the simulator: the same policies over the cost model and a trace -----------------
TEST(Simulate, AFixedPlanCostsWhatTheCostModelSays) {
  const auto cm = chain_costs();
  LinkSpec spec;  // segments long enough that no transfer outlasts its segment
  spec.trace = {{0, 5.0}, {40, 0.5}, {80, 50.0}};
  SimulationOptions o;
  o.period_s = 10;
  o.requests = 12;
  o.rtt_ms = 20;
  auto fixed = make_static_policy("static", {0, 1, 1});
  const auto recs = simulate(cm, spec, *fixed, o);
  ASSERT_EQ(recs.size(), 12u);
  Link link(spec);
  for (const auto& r : recs) {
    tessera::plan::Context c;
    c.bandwidth_mbps = link.bandwidth_at(r.link_time_s);
    c.rtt_ms = 20;
    EXPECT_DOUBLE_EQ(r.total_ms, tessera::plan::evaluate(cm, c, {0, 1, 1}).latency_ms) << "request " << r.index;
    EXPECT_EQ(r.true_bandwidth, c.bandwidth_mbps);
    EXPECT_EQ(r.device_atoms, 1);
    EXPECT_FALSE(r.probed);  // a static plan does not measure the link
  }
  // a transfer that outlasts its segment is integrated over the trace, as the live link does:
  // 0.8 Mbit of the cut at 0.5 Mbit/s for 1 s, then the rest at 50 Mbit/s
  spec.trace = {{0, 0.5}, {1, 50.0}, {100, 50.0}};
  o.requests = 1;
  const auto crossing = simulate(cm, spec, *fixed, o);
  tessera::plan::Context slow;
  slow.bandwidth_mbps = 0.5;
  slow.rtt_ms = 20;
  const double at_slow_rate = tessera::plan::evaluate(cm, slow, {0, 1, 1}).latency_ms;
  EXPECT_NEAR(crossing[0].total_ms, at_slow_rate - 1600 + 1000 + 0.3e6 / 50e6 * 1e3, 1e-6);
}

TEST(Simulate, TheOracleIsTheBestPlanAtEveryRequest) {
  const auto cm = chain_costs();
  LinkSpec spec;
  spec.trace = {{0, 0.2}, {3, 400.0}, {6, 2.0}, {9, 40.0}};
  SimulationOptions o;
  o.requests = 12;
  o.rtt_ms = 5;
  auto oracle = make_oracle_policy(cm, 5);
  const auto recs = simulate(cm, spec, *oracle, o);
  for (const auto& r : recs) {  // every placement of the chain: none beats the oracle's
    tessera::plan::Context c;
    c.bandwidth_mbps = r.true_bandwidth;
    c.rtt_ms = 5;
    double best = 1e300;
    for (int mask = 0; mask < 8; ++mask)
      best = std::min(best, tessera::plan::evaluate(cm, c, {mask & 1, (mask >> 1) & 1, (mask >> 2) & 1}).latency_ms);
    EXPECT_NEAR(r.total_ms, best, 1e-9) << "request " << r.index;
  }
}

TEST(Simulate, AdaptiveFollowsAStepWithinOneRequestAndIsDeterministic) {
  const auto cm = chain_costs();
  LinkSpec spec;
  spec.trace = {{0, 400.0}, {10, 0.2}, {20, 400.0}};
  SimulationOptions o;
  o.requests = 30;
  o.rtt_ms = 5;
  auto adaptive = make_adaptive_policy(cm, o.adaptive);
  const auto recs = simulate(cm, spec, *adaptive, o);
  EXPECT_EQ(recs[5].device_atoms, 0);   // all on the server at 400 Mbit/s
  EXPECT_EQ(recs[11].device_atoms, 3);  // the drop is believed at once: one request late at most
  EXPECT_EQ(recs[21].device_atoms, 0);  // the device-only plan probes, and comes back at once
  EXPECT_FALSE(std::isnan(recs[0].est_bandwidth));
  auto again = make_adaptive_policy(cm, o.adaptive);
  const auto recs2 = simulate(cm, spec, *again, o);
  for (size_t i = 0; i < recs.size(); ++i) EXPECT_EQ(recs[i].total_ms, recs2[i].total_ms);
  o.compute_jitter = 0.2;
  auto noisy = make_adaptive_policy(cm, o.adaptive);
  const auto recs3 = simulate(cm, spec, *noisy, o);
  bool differs = false;
  for (size_t i = 0; i < recs.size(); ++i) differs |= recs[i].total_ms != recs3[i].total_ms;
  EXPECT_TRUE(differs);
  o.period_s = 0;
  EXPECT_THROW(simulate(cm, spec, *noisy, o), tessera::Error);
}

TEST(Simulate, TheLaggedOracleDecidesAsTheOracleDidOneRequestEarlier) {
  const auto cm = chain_costs();
  LinkSpec spec;
  spec.trace = {{0, 0.2}, {2, 400.0}, {4, 2.0}, {6, 40.0}, {8, 0.1}};
  SimulationOptions o;
  o.requests = 10;
  o.rtt_ms = 5;
  auto oracle = make_oracle_policy(cm, 5);
  auto lagged = make_lagged_oracle_policy(cm, 5, spec, o.period_s);
  EXPECT_EQ(lagged->name(), "oracle_prev");
  const auto a = simulate(cm, spec, *oracle, o);
  const auto b = simulate(cm, spec, *lagged, o);
  for (size_t i = 1; i < a.size(); ++i) EXPECT_EQ(b[i].device_atoms, a[i - 1].device_atoms) << "request " << i;
  EXPECT_THROW(make_lagged_oracle_policy(cm, 5, spec, -1), tessera::Error);
}

TEST(Monitor, EstimatorsAreOptions) {
  MonitorOptions o{3, 1000, 0.3};
  auto feed = [](Monitor& m, std::initializer_list<double> mbps) {
    for (double x : mbps) m.observe_transfer(1e6, 8e3 / x);  // 8 Mbit at x Mbit/s, rtt 0
  };
  o.estimator = "harmonic";
  Monitor h(o);
  feed(h, {1, 4, 4});
  EXPECT_NEAR(*h.bandwidth_mbps(), 2.0, 1e-9);  // 3 / (1 + 1/4 + 1/4)
  o.estimator = "ewma";
  o.ewma_alpha = 0.5;
  Monitor e(o);
  feed(e, {8, 4});
  EXPECT_NEAR(*e.bandwidth_mbps(), 6.0, 1e-9);
  o.estimator = "kalman";
  Monitor k(o);
  feed(k, {10, 10, 10, 10, 10, 10});
  EXPECT_NEAR(*k.bandwidth_mbps(), 10.0, 1e-6);
  feed(k, {1});
  EXPECT_LT(*k.bandwidth_mbps(), 10.0);  // moves toward a new sample, not all the way
  EXPECT_GT(*k.bandwidth_mbps(), 1.0);
  o.estimator = "psychic";
  EXPECT_THROW(Monitor{o}, tessera::Error);
}

TEST(Policy, WithATrueEstimateAndNoLoadAdaptiveChoosesTheOraclesPlan) {
  const auto cm = chain_costs();
  AdaptiveOptions ao;
  ao.hysteresis = 0;
  auto adaptive = make_adaptive_policy(cm, ao);
  auto oracle = make_oracle_policy(cm, 0.0);
  std::vector<int> current = {0, 0, 0};
  int index = 0;
  for (double bw : {0.1, 5.0, 0.3, 80.0, 2.0, 1000.0, 0.05, 12.0}) {
    const auto a = adaptive->decide(at(bw, bw, current, index++));
    EXPECT_EQ(a.placement, oracle->decide(at(bw, bw, current)).placement) << bw << " Mbit/s";
    current = a.placement;
  }
}

TEST(Policy, ADeadlineIsAConstraint) {
  const auto cm = chain_costs();
  AdaptiveOptions ao;
  ao.max_latency_ms = 1;  // nothing runs this chain in 1 ms
  auto adaptive = make_adaptive_policy(cm, ao);
  const auto d = adaptive->decide(at(1000, 0, {0, 0, 0}, 0));
  EXPECT_NE(d.why.find("deadline"), std::string::npos) << d.why;
  ao.max_latency_ms = 0;
  EXPECT_THROW(make_adaptive_policy(cm, ao), tessera::Error);
}

TEST(Simulate, EveryContextMovesAtOnce) {
  auto cm = chain_costs();
  cm.dag.param_bytes = {1e6, 1e6, 1e6};
  LinkSpec spec;
  spec.bandwidth_mbps = 1000;  // the server is worth it: all three atoms go there at first
  SimulationOptions o;
  o.requests = 30;
  o.rtt_ms = 5;
  o.server_load_trace = {{0, 1.0}, {10, 200.0}};  // the server gets 200x slower at t = 10
  o.memory_trace = {{0, 1e9}, {20, 0.0}};         // no memory for weights from t = 20
  auto adaptive = make_adaptive_policy(cm, o.adaptive);
  const auto r = simulate(cm, spec, *adaptive, o);
  EXPECT_EQ(r[5].device_atoms, 0);
  EXPECT_EQ(r[15].device_atoms, 3);  // the monitor learned the server's load: back on the device
  EXPECT_GT(r[15].est_load, 50);
  EXPECT_EQ(r[25].device_atoms, 0);  // no memory: nothing may stay on the device
  EXPECT_NE(r[20].why.find("memory"), std::string::npos) << r[20].why;
  o.memory_trace = {{5, 1.0}, {2, 1.0}};
  EXPECT_THROW(simulate(cm, spec, *adaptive, o), tessera::Error);  // times must increase
}

// Light and heavy load (DADS): the switch follows the arrival rate against the latency plan's
// service rate, with hysteresis, and never moves to a throughput plan that serves no more.
TEST(LoadSwitch, FollowsTheArrivalRateBothWays) {
  LoadSwitchOptions o;
  o.rate_window = 4;
  LoadSwitch sw(100.0, 25.0, o);  // latency plan: 10 requests/s; throughput plan: 25/s
  for (double t : {0.0, 0.2, 0.4, 0.6}) sw.arrive(t);  // 5/s: light
  EXPECT_EQ(sw.decide(1), LoadMode::Latency);
  EXPECT_EQ(sw.why(), "");
  for (double t : {0.65, 0.70, 0.75, 0.80}) sw.arrive(t);  // 20/s > 10/s: heavy
  EXPECT_NEAR(sw.arrival_rate(), 20.0, 1e-9);
  EXPECT_EQ(sw.decide(1), LoadMode::Throughput);
  EXPECT_NE(sw.why().find("heavy load: 20.00 arrivals/s"), std::string::npos) << sw.why();
  for (double t : {0.90, 1.0, 1.1, 1.2}) sw.arrive(t);  // 10/s: inside the hysteresis band, stay
  EXPECT_EQ(sw.decide(1), LoadMode::Throughput);
  for (double t : {1.5, 1.8, 2.1, 2.4}) sw.arrive(t);  // 3.3/s < 0.7 x 10/s, but two wait: stay
  EXPECT_EQ(sw.decide(2), LoadMode::Throughput);
  EXPECT_EQ(sw.decide(1), LoadMode::Latency);
  EXPECT_NE(sw.why().find("light load"), std::string::npos) << sw.why();
  EXPECT_EQ(sw.decide(3), LoadMode::Throughput);  // a queue alone is heavy load
  EXPECT_NE(sw.why().find("3 requests wait"), std::string::npos) << sw.why();
}

TEST(LoadSwitch, LearnsTheServiceTimeAndStaysWhenThePipelineServesNoMore) {
  LoadSwitchOptions o;
  o.rate_window = 2;
  o.service_ewma = 1.0;
  LoadSwitch sw(100.0, 12.0, o);  // predicted: 10/s latency plan vs 12/s pipelined
  sw.arrive(0.0);
  sw.arrive(1.0 / 11);           // 11/s
  EXPECT_EQ(sw.decide(1), LoadMode::Throughput);
  LoadSwitch slow(100.0, 12.0, o);
  slow.served_latency_mode(50.0);  // measured: the latency plan serves 20/s
  EXPECT_NEAR(slow.latency_rate(), 20.0, 1e-9);
  slow.arrive(0.0);
  slow.arrive(1.0 / 11);
  EXPECT_EQ(slow.decide(1), LoadMode::Latency);
  EXPECT_NE(slow.why().find("serves no more than the latency plan"), std::string::npos) << slow.why();
  EXPECT_EQ(slow.decide(10), LoadMode::Latency);  // not even with a queue
  o.policy = "throughput";
  EXPECT_EQ(LoadSwitch(100.0, 12.0, o).mode(), LoadMode::Throughput);
}

TEST(LoadSwitch, BadOptionsAreNamed) {
  LoadSwitchOptions o;
  o.policy = "fastest";
  try {
    LoadSwitch(100.0, 12.0, o);
    FAIL();
  } catch (const tessera::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'fastest'"), std::string::npos) << e.what();
  }
  o = {};
  o.switch_down = 2;
  EXPECT_THROW(LoadSwitch(100.0, 12.0, o), tessera::Error);
  EXPECT_THROW(LoadSwitch(0.0, 12.0, {}), tessera::Error);
  EXPECT_THROW(LoadSwitch(100.0, std::nan(""), {}), tessera::Error);
}

// The simulator's timeout model: a remote block whose reply outlasts timeout_ms runs on the
// device after that wait, and the device runs alone for retry_ms, as a live Deployment does.
TEST(Simulate, ABlockPastTheTimeoutRunsOnTheDeviceThenTheServerRests) {
  const auto cm = chain_costs();
  LinkSpec spec;
  spec.trace = {{0, 0.5}, {100, 0.5}};  // the cut (0.1 MB) takes 1.6 s at 0.5 Mbit/s
  SimulationOptions o;
  o.period_s = 10;
  o.requests = 3;
  o.rtt_ms = 20;
  o.timeout_ms = 500;
  o.retry_ms = 15000;
  auto fixed = make_static_policy("static", {0, 1, 1});
  auto recs = simulate(cm, spec, *fixed, o);
  ASSERT_EQ(recs.size(), 3u);
  // device block 100 ms, then 500 ms of waiting, then atoms 1 and 2 on the device (2 x 100 ms)
  EXPECT_TRUE(recs[0].fallback);
  EXPECT_NEAR(recs[0].total_ms, 100 + 500 + 200, 1e-9);
  EXPECT_NE(recs[0].why.find("block 1 timed out"), std::string::npos) << recs[0].why;
  // t = 10 s is inside the back-off (0.8 s + 15 s): everything on the device
  EXPECT_TRUE(recs[1].fallback);
  EXPECT_NEAR(recs[1].total_ms, 300, 1e-9);
  EXPECT_NE(recs[1].why.find("backing off"), std::string::npos) << recs[1].why;
  // t = 20 s: the server is tried again and times out again
  EXPECT_NEAR(recs[2].total_ms, 800, 1e-9);
  o.timeout_ms = 0;  // no deadline: exactly the cost model
  recs = simulate(cm, spec, *fixed, o);
  tessera::plan::Context c;
  c.bandwidth_mbps = 0.5;
  c.rtt_ms = 20;
  EXPECT_DOUBLE_EQ(recs[0].total_ms, tessera::plan::evaluate(cm, c, {0, 1, 1}).latency_ms);
  EXPECT_FALSE(recs[0].fallback);
  o.timeout_ms = 5000;  // a deadline the reply meets changes nothing
  EXPECT_DOUBLE_EQ(simulate(cm, spec, *fixed, o)[0].total_ms, recs[0].total_ms);
  o.timeout_ms = -1;
  EXPECT_THROW(simulate(cm, spec, *fixed, o), tessera::Error);
}

// ---- device costs in machine states not profiled (a predictor in the loop) ---------------
namespace {
// chain_costs() at 10 Mbit/s: the profiled device (100 ms an atom) cuts after a0; a device twice
// as fast (50 ms an atom) cuts after a1.
Observation in_state(std::vector<int> current, int threads, double load, double device_load = 1, int samples = 0) {
  Observation o = at(10, 10, std::move(current));
  o.device_state = {threads, load};
  o.device_load = device_load;
  o.device_samples = samples;
  return o;
}
int on_device(const std::vector<int>& p) { return static_cast<int>(std::count(p.begin(), p.end(), 0)); }
}  // namespace

TEST(Policy, APredictorPlansStatesThatWereNotProfiled) {
  const auto cm = chain_costs();
  AdaptiveOptions ao;
  ao.hysteresis = 0;
  ao.profiled = {1, 0.0};
  int calls = 0;
  ao.predictor = {"fake", [&calls](const DeviceState& s) {
                    ++calls;
                    const double ms = 100.0 / s.threads * (1 + s.background_load);
                    return std::vector<double>{ms, ms, ms};
                  }};
  auto p = make_adaptive_policy(cm, ao);
  const Decision prof = p->decide(in_state({0, 0, 0}, 1, 0));
  EXPECT_EQ(on_device(prof.placement), 1);
  EXPECT_EQ(prof.cost_source, "profiled");
  EXPECT_EQ(calls, 0);  // a profiled state never asks
  const int v0 = p->device_costs_version();
  const Decision two = p->decide(in_state(prof.placement, 2, 0));
  EXPECT_EQ(on_device(two.placement), 2) << "2 threads: the predicted device is twice as fast";
  EXPECT_EQ(two.cost_source, "predicted (fake, threads=2, load=0)");
  EXPECT_EQ(two.device_state.threads, 2);
  EXPECT_NE(p->device_costs_version(), v0);
  EXPECT_EQ(p->device_load_carry(), 0);  // another machine: the Controller measures the device afresh
  EXPECT_EQ((*p->device_costs())[0], 50);
  // measured 1.5x slower than predicted: the prediction is corrected by the measured ratio
  const Decision off = p->decide(in_state(two.placement, 2, 0, 1.5, 3));
  EXPECT_EQ(off.cost_source, "predicted (fake, threads=2, load=0) x1.5");
  EXPECT_EQ(calls, 2);  // asked once per state: this one, and the profiled one its costs are anchored to
  // a declared background load within state_tolerance of the profiled one is the profiled state
  const Decision back = p->decide(in_state(off.placement, 1, 0.1));
  EXPECT_EQ(back.cost_source, "profiled");
  EXPECT_EQ(on_device(back.placement), 1);
  EXPECT_EQ((*p->device_costs())[0], 100);

  // without a predictor the same state scales the profiled costs, and says so
  AdaptiveOptions plain = ao;
  plain.predictor = {};
  auto q = make_adaptive_policy(cm, plain);
  const Decision scaled = q->decide(in_state({0, 0, 0}, 2, 0));
  EXPECT_EQ(on_device(scaled.placement), 1);
  EXPECT_EQ(scaled.cost_source, "scaled x1 (threads=2, load=0 not profiled, no predictor)");
  EXPECT_EQ(q->decide(in_state({0, 0, 0}, 1, -1, 1.31, 2)).cost_source, "scaled x1.31");
}

TEST(Policy, PredictionsAreAnchoredToTheProfile) {
  // a predictor 10x too fast everywhere (trained on a faster machine, or the device emulated
  // slower): its ratio between states is right, so the anchored costs are the profile's / 2
  const auto cm = chain_costs();
  AdaptiveOptions ao;
  ao.hysteresis = 0;
  ao.profiled = {1, 0.0};
  ao.predictor = {"fast", [](const DeviceState& s) {
                    const double ms = 10.0 / s.threads;
                    return std::vector<double>{ms, ms, 0.0};  // and one atom it prices at 0
                  }};
  auto p = make_adaptive_policy(cm, ao);
  p->decide(in_state({0, 0, 0}, 1, 0));
  const Decision two = p->decide(in_state({0, 0, 0}, 2, 0));
  EXPECT_EQ(two.cost_source, "predicted (fast, threads=2, load=0)");
  EXPECT_DOUBLE_EQ((*p->device_costs())[0], 50);
  EXPECT_DOUBLE_EQ((*p->device_costs())[1], 50);
  EXPECT_DOUBLE_EQ((*p->device_costs())[2], 50);  // priced 0: the profile x the whole model's ratio
}

TEST(Policy, AMeasuredSlowdownMapsToTheBackgroundLoadThePredictorExplainsItBy) {
  const auto cm = chain_costs();
  AdaptiveOptions ao;
  ao.profiled = {1, 0.0};
  // background load slows a0 only (1 + load) and leaves a1, a2: not a uniform scale
  ao.predictor = {"fake", [](const DeviceState& s) {
                    return std::vector<double>{100 * (1 + s.background_load), 100, 100};
                  }};
  auto p = make_adaptive_policy(cm, ao);
  EXPECT_EQ(p->decide(in_state({0, 1, 1}, 1, -1)).cost_source, "profiled");  // nothing measured yet
  // a0 alone ran on the device, 2x slower than profiled: load 1 (a0 predicted 2x)
  const Decision d = p->decide(in_state({0, 1, 1}, 1, -1, 2.0, 3));
  EXPECT_EQ(d.cost_source, "predicted (fake, threads=1, load=1 inferred)");
  EXPECT_DOUBLE_EQ(d.device_state.background_load, 1);
  EXPECT_EQ(*p->device_costs(), (std::vector<double>{200, 100, 100}));
  // the same machine, measured: the measured load carries over to the new costs (2 x 100 / 200)
  EXPECT_DOUBLE_EQ(p->device_load_carry(), 0.5);
  // restarted, not measured yet: stays; measured as predicted: stays
  EXPECT_EQ(p->decide(in_state({0, 1, 1}, 1, -1, 1.0, 0)).cost_source, d.cost_source);
  EXPECT_EQ(p->decide(in_state({0, 1, 1}, 1, -1, 1.02, 2)).cost_source, d.cost_source);
  // the load went away (half of what the load-1 costs predict): back to the profile
  EXPECT_EQ(p->decide(in_state({0, 1, 1}, 1, -1, 0.5, 2)).cost_source, "profiled");
  // a declared load wins over the inference
  EXPECT_EQ(p->decide(in_state({0, 1, 1}, 1, 0.5, 1.0, 0)).cost_source, "predicted (fake, threads=1, load=0.5)");
  // inference off: the slowdown scales the profiled costs
  AdaptiveOptions off = ao;
  off.infer_background_load = false;
  EXPECT_EQ(make_adaptive_policy(cm, off)->decide(in_state({0, 1, 1}, 1, -1, 2.0, 3)).cost_source, "scaled x2");
}

TEST(Policy, BadMachineStatesAndPredictorsAreNamed) {
  const auto cm = chain_costs();
  const auto message = [](auto&& f) {
    try {
      f();
    } catch (const tessera::Error& e) {
      return e.message();
    }
    return std::string("no error");
  };
  AdaptiveOptions ao;
  ao.profiled = {-1, 0.0};
  EXPECT_NE(message([&] { make_adaptive_policy(cm, ao); }).find("profiled.threads"), std::string::npos);
  ao.profiled = {1, -0.5};
  EXPECT_NE(message([&] { make_adaptive_policy(cm, ao); }).find("profiled.background_load"), std::string::npos);
  ao.profiled = {1, 0.0};
  ao.load_step = 0;
  EXPECT_NE(message([&] { make_adaptive_policy(cm, ao); }).find("load_step"), std::string::npos);
  ao.load_step = 0.25;
  ao.predictor = {"", [](const DeviceState&) { return std::vector<double>{1, 1, 1}; }};
  EXPECT_NE(message([&] { make_adaptive_policy(cm, ao); }).find("needs a name"), std::string::npos);
  ao.predictor = {"short", [](const DeviceState&) { return std::vector<double>{1, 1}; }};
  auto p = make_adaptive_policy(cm, ao);
  EXPECT_NE(message([&] { p->decide(in_state({0, 0, 0}, 2, 0)); }).find("predictor 'short' returned 2 costs for a model of 3 atoms"),
            std::string::npos);
  ao.predictor = {"nan", [](const DeviceState&) { return std::vector<double>{1, std::nan(""), 1}; }};
  EXPECT_NE(message([&] { make_adaptive_policy(cm, ao)->decide(in_state({0, 0, 0}, 2, 0)); }).find("atom 1"),
            std::string::npos);
  EXPECT_NE(message([] { check_device_state({0, 0.0}); }).find("threads must be >= 1"), std::string::npos);
  EXPECT_NE(message([] { check_device_state({1, -1.0}); }).find("background_load"), std::string::npos);
}
