// tessera/plan/energy.h -- the device's energy: a power model, energy-aware plans, and a
// Lyapunov controller under a long-term energy budget (CutEdge). torch-free.
//
//   PowerModel pm;  pm.freqs_mhz = {600, 1200, 1800, 2400};  pm.active_mw = {180, 420, 900, 1700};
//   pm.idle_mw = 30;  pm.rx_mw = 120;  pm.tx = {.max_power_mw = 200, .bandwidth_mhz = 10, .levels_mw = {50, 100, 200}};
//   auto parts = device_energy(cm, pm, placement, {.frequency_mhz = 1200, .tx_power_mw = 200}, 5.85, 20);
//   auto d = plan_energy(cm, pm, 5.85, 20, {.latency = 1, .energy = 0.5});   // (placement, f, p), exact
//   EnergyController ctl(cm, pm, {.budget_mj = 120, .V = 50, .deadline_ms = 300});
//   auto d = ctl.decide(bandwidth_now, rtt);  ctl.observe(d.energy_mj);
//
// Model (stated, so a reader can check every figure):
//   compute: an atom's device time at frequency f is its cost-model time (profiled at
//     reference_mhz) x (memory_bound + (1 - memory_bound) x reference_mhz / f): time ~ cycles / f
//     for the share that is compute-bound, unchanged for the memory-bound share. Energy = time x
//     active_mw at f.
//   uplink: the trace's bandwidth is the rate at max transmit power; at power p the rate is
//     Shannon's B log2(1 + g p / N) with the channel's g / N read from that rate (so
//     rate(p_max) = trace bandwidth); energy = p x serialisation time. Without a channel width
//     (bandwidth_mhz = 0) the rate does not depend on p.
//   downlink: the link's bandwidth; energy = rx_mw x serialisation time.
//   waiting (server compute, each transfer's rtt/2): idle_mw.
//   latency: as plan::evaluate (device compute at f + transfers (serialisation + rtt/2) + server).
// For a given (f, p) latency and energy are additive over atoms and values, so any weighted
// sum is minimised exactly by one min cut; plan_energy enumerates the small (f, p) set.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tessera/plan/cost_model.h"

namespace tessera::plan {

class CutSolver;

// The device's radio: how its transmit power sets the uplink rate (the Model above).
struct Radio {
  double max_power_mw = 0;        // the power the trace's bandwidth is reached at (> 0)
  double bandwidth_mhz = 0;       // channel width B for Shannon's rate; 0: the rate ignores the power
  std::vector<double> levels_mw;  // transmit powers a plan may use (empty: {max_power_mw})
};

// The device's power at each CPU frequency, receiving and waiting; mW throughout.
struct PowerModel {
  std::vector<double> freqs_mhz;  // increasing
  std::vector<double> active_mw;  // device power while computing, per frequency
  double idle_mw = 0;             // while waiting for the server or the network's delay
  double rx_mw = 0;               // while receiving
  Radio tx;                       // the transmitter
  double reference_mhz = 0;       // the frequency the cost model's device times hold at (0: the highest)
  double memory_bound = 0;        // share of compute time that does not scale with the frequency, [0, 1)
  std::string source;             // where the figures come from (a file, a paper)
  // InvalidArgument naming the field: frequencies not increasing, negative powers, a transmit
  // level above the maximum, sizes that differ...
  void validate() const;
  // The frequency the cost model's device times hold at: reference_mhz, or the highest.
  double reference() const { return reference_mhz > 0 ? reference_mhz : freqs_mhz.back(); }
  double time_factor(double f_mhz) const;  // device time at f over time at the reference
  double active_at(double f_mhz) const;    // active_mw of a frequency level (InvalidArgument if not one)
  std::vector<double> tx_levels() const;   // levels_mw, or {max_power_mw}
  // Uplink rate (Mbit/s) at transmit power p when the rate at max power is bw_mbps.
  double tx_rate_mbps(double p_mw, double bw_mbps) const;
};

// An operating point of the device: CPU frequency and transmit power.
struct Operating {
  double frequency_mhz = 0;  // 0: the highest
  double tx_power_mw = 0;    // 0: the maximum
};

// A placement's device energy by part (mJ) and its latency (ms), at one operating point.
struct EnergyParts {
  // Device energy in mJ: computing, transmitting, receiving, waiting.
  double compute_mj = 0, tx_mj = 0, rx_mj = 0, idle_mj = 0;
  double total_mj = 0;    // compute + tx + rx + idle, mJ
  double latency_ms = 0;  // end to end, as plan::evaluate, ms
  // Device compute at f, server compute (x load) and transfers, ms.
  double device_ms = 0, server_ms = 0, transfer_ms = 0;  // transfer: serialisation + rtt/2 each
  double link_ms = 0;           // serialisation alone (the link's busy time when pipelined)
  double throughput_fps() const;  // pipelined: 1000 / max(device, link, server)
  // Bytes sent up (device -> server) and down (server -> device) per request.
  double up_bytes = 0, down_bytes = 0;
  double tx_rate_mbps = 0;      // uplink rate at the chosen transmit power, Mbit/s
  std::string explain() const;  // one line: "12.3 mJ = compute 8.1 + tx 3.0 + rx 0.2 + idle 1.0; 250.1 ms"
};

// Energy and latency of a placement (0 = device, 1 = server) at an operating point, on a link
// of bw_mbps (the rate at max transmit power) and rtt_ms. Uses compute_ms rows 0 and 1.
EnergyParts device_energy(const CostModel& cm, const PowerModel& pm, const std::vector<int>& placement,
                          const Operating& op, double bw_mbps, double rtt_ms);

// The weighted objective latency x w.latency + energy x w.energy as cut costs at (f, p):
// cut_value(dag, costs, x) of any placement equals that objective of device_energy(...).
void energy_cut_costs(const CostModel& cm, const PowerModel& pm, const Operating& op, double bw_mbps, double rtt_ms,
                      double latency_weight, double energy_weight, CutCosts& out);

// What plan_energy or a controller chose: the placement, the operating point and their cost.
struct EnergyDecision {
  std::vector<int> placement;  // per atom: 0 = device, 1 = server
  Operating op;                // the CPU frequency and transmit power chosen
  EnergyParts parts;           // energy and latency of that choice
  double objective = 0;        // latency_weight x latency + energy_weight x energy
  bool meets_deadline = true;  // latency_ms <= the deadline (else the fastest plan, marked)
  bool lagrangian = false;     // the deadline bound a (f, p): its plan came from a latency multiplier
  int candidates = 0;          // (f, p) pairs evaluated
  std::string why;             // a note when the deadline binds or cannot be met; "" otherwise
  // The link it was planned for: Mbit/s at max transmit power, round trip in ms.
  double bandwidth_mbps = 0, rtt_ms = 0;  // the link it was planned for (the rate at max power)
  // Several lines: the operating point, energy by part and latency, the blocks, and one line per
  // value that crosses the link (bytes, ms and mJ at the chosen transmit power or receiving).
  std::string explain(const CostModel& cm) const;
};

// The objective plan_energy minimises: latency x latency + energy x energy, under the deadline.
struct EnergyWeights {
  double latency = 1;          // per ms
  double energy = 0;           // per mJ
  double deadline_ms = kUnlimited;  // latency bound, ms (kUnlimited: none)
};

// The (placement, f, p) minimising the weighted objective subject to latency <= deadline: for
// each (f, p) one min cut (exact); when that plan breaks the deadline, the latency weight is raised
// by bisection until it meets it (a Lagrangian bound, marked), or the pair is infeasible. When no
// pair meets the deadline, the fastest plan, marked. Throws InvalidArgument for a bad model/weights.
// solver: a CutSolver built on cm.dag to reuse (a controller's: the flow graph is built once), or null.
EnergyDecision plan_energy(const CostModel& cm, const PowerModel& pm, double bw_mbps, double rtt_ms,
                           const EnergyWeights& w, CutSolver* solver = nullptr);
// Every placement x frequency x transmit level (at most 20 atoms): the test oracle.
EnergyDecision plan_energy_brute_force(const CostModel& cm, const PowerModel& pm, double bw_mbps, double rtt_ms,
                                       const EnergyWeights& w);

// Options of EnergyController (CutEdge's Lyapunov drift-plus-penalty).
struct ControllerOptions {
  double budget_mj = 0;        // long-run average energy per request (> 0)
  double V = 50;               // weight of latency (ms) against the queue (mJ) in drift-plus-penalty
  double deadline_ms = kUnlimited;  // per-request latency bound, ms (kUnlimited: none)
  double initial_queue = 0;    // the energy queue Q at the start, mJ, >= 0
};

// CutEdge's online controller: per request, the (split, frequency, transmit power) minimising
// V x latency + Q x energy under the deadline; after the request Q <- max(Q + energy - budget, 0).
class EnergyController {
 public:
  // Throws InvalidArgument naming the problem: a budget below the device's idle energy over the
  // fastest plan's latency (no policy can meet it), a bad V, a bad power model.
  EnergyController(CostModel cm, PowerModel pm, ControllerOptions options);
  // The decision for the next request on a link of bw_mbps and rtt_ms; does not change the queue
  // (call observe() with the energy it spent). Const: safe from several threads.
  EnergyDecision decide(double bw_mbps, double rtt_ms) const;
  void observe(double energy_mj);  // the energy the request spent
  // The energy queue Q, mJ: how far the requests so far spent above the budget.
  double queue() const { return q_; }
  // The options it was built with.
  const ControllerOptions& options() const { return opt_; }
  // The cost model it plans with (its own copy).
  const CostModel& cost_model() const { return cm_; }
  // The power model it plans with (its own copy).
  const PowerModel& power() const { return pm_; }

 private:
  CostModel cm_;
  PowerModel pm_;
  ControllerOptions opt_;
  double q_ = 0;
  std::shared_ptr<CutSolver> solver_;  // built once on the model's DAG
};

// A controller or a fixed policy over a bandwidth series (one request per entry): per request
// the decision, its energy parts and the queue before it.
struct EnergyRecord {
  int index = 0;              // request number, from 0
  double bandwidth_mbps = 0;  // the link's bandwidth for this request, Mbit/s
  EnergyDecision decision;  // what the controller chose
  double queue = 0;  // the queue Q before the request, mJ
};
// Runs `ctl` over a bandwidth series (Mbit/s, one request each), observing each decision's
// energy: the queue carries over, so `ctl` ends where the series leaves it.
std::vector<EnergyRecord> run_controller(EnergyController& ctl, const std::vector<double>& bandwidth_mbps,
                                         double rtt_ms);

// The offline oracle that knows every request's bandwidth: minimise the mean latency subject to
// the mean energy <= budget_mj, by Lagrangian relaxation over each request's (energy, latency) hull
// (energy_hull, then energy_oracle_from_hulls below). *lambda_out: the multiplier (ms per mJ) where
// the budget binds, 0 when the fastest plans already meet it.
std::vector<EnergyDecision> energy_oracle(const CostModel& cm, const PowerModel& pm,
                                          const std::vector<double>& bandwidth_mbps, double rtt_ms,
                                          double budget_mj, double deadline_ms = kUnlimited,
                                          double* lambda_out = nullptr);

// One request's lower convex hull of (energy, latency) over its plans: the plans some latency +
// lambda x energy minimises, from the fastest (highest energy) to the least energy, found by
// bisecting on lambda between neighbours (Eisner-Severance); each point a plan_energy decision.
std::vector<EnergyDecision> energy_hull(const CostModel& cm, const PowerModel& pm, double bw_mbps, double rtt_ms,
                                        double deadline_ms = kUnlimited);
// The oracle over precomputed hulls (one per request): every request at its fastest plan, then the
// moves down the hulls that add the least latency per mJ saved, in that order, until the mean energy is
// within budget_mj (the last move may leave part of the budget unspent: at most one request's step).
// *lambda_out: the slope of the last move (ms per mJ), 0 when no move was needed.
std::vector<EnergyDecision> energy_oracle_from_hulls(const std::vector<std::vector<EnergyDecision>>& hulls,
                                                     double budget_mj, double* lambda_out = nullptr);

}  // namespace tessera::plan
