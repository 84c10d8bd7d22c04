// tessera/plan/cost_model.h -- what every placement costs: the cost model, the
// run-time context and the constraints that planners read.
//
// Follows the cost models of Neurosurgeon (Kang et al., ASPLOS 2017) and DADS
// (Hu et al., INFOCOM 2019): per-atom compute latency on every target, per-value
// bytes, and a link between targets; energy as in CAS/GADS (Liang et al. 2023).
//
// Latency model (the one every planner and evaluate() use)
// ---------------------------------------------------------
// Execution is sequential (one request at a time, no overlap):
//
//   latency_ms = sum_a compute_ms[t(a)][a] * (t(a) >= 1 ? server_load : device_load)
//              + sum_{transfers} ( bytes * 8 / (bandwidth_mbps * 1e6) * 1e3 + rtt_ms / 2 )
//
// A value (tensor) lives on the target of its producer (model inputs live on
// target 0, the device). It is sent ONCE to every other target that needs it:
// the targets of its consumers, plus target 0 if it is a model output. Several
// consumers on the same target share one transfer (the auxiliary node of DADS).
// Each transfer is charged its serialisation time plus half a round trip. The
// cost is additive over atoms and values, so the two-target minimum cut is exact.
//
// Energy model: energy_mj = sum_a energy_mj[t(a)][a] + sum_{transfers} bytes *
// energy_mj_per_byte(link). Leave the server's energy row empty/zero to count
// only the device's battery.
//
// Objectives (Context::objective): Latency minimises latency_ms + energy_weight *
// energy_mj; Energy minimises energy_mj; Throughput maximises the pipelined frame
// rate 1000 / max(stage ms) (only the `throughput` planner optimises it; the
// additive planners keep minimising latency under it).
//
// Memory model: device memory = sum of param_bytes of the atoms placed on target
// 0. Peak activation memory is NOT counted (kept to parameters on purpose).
#pragma once

#include <limits>
#include <string>
#include <vector>

#include "tessera/plan/dag.h"

namespace tessera::plan {

inline constexpr double kUnlimited = std::numeric_limits<double>::infinity();  // no limit (a budget or bound left at it is not checked)

// What a network link from one target to another costs a plan (the emulated link a
// deployment sends through is tessera::transport::Link).
struct LinkCost {
  double bandwidth_mbps = 0;      // Mbit/s (1e6 bit/s), > 0 when the link is used
  double rtt_ms = 0;              // round-trip time in ms; each transfer pays rtt/2
  double energy_mj_per_byte = 0;  // energy spent per byte sent over the link (mJ/byte)
};

// plan::Link was LinkCost's name until 0.2. Removed in 0.3.
using Link [[deprecated("tessera::plan::LinkCost (tessera::transport::Link is the emulated link)")]] = LinkCost;

// Everything a placement's cost depends on but the run-time context: the DAG, per-target
// compute times, energy and links. Plain data; planners share it read-only (shared_ptr).
struct CostModel {
  AtomDag dag;  // the atoms and values (validated by validate())
  // compute_ms[target][atom]: latency in ms of the atom on the target, at server
  // load 1. Size num_targets x num_atoms; num_targets >= 2 (0 = device, 1 = edge
  // server, further targets: more servers / cloud).
  std::vector<std::vector<double>> compute_ms;
  // energy_mj[target][atom]: optional. Empty = no energy; fewer rows than targets
  // = the missing targets spend 0 (e.g. only the device row).
  std::vector<std::vector<double>> energy_mj;
  // links[from][to]: optional num_targets x num_targets matrix. The device<->server
  // link (0<->1) takes bandwidth and RTT from the Context (they change at run
  // time) and only its energy_mj_per_byte from here; links between other targets
  // are read from here entirely.
  std::vector<std::vector<LinkCost>> links;

  // Targets (rows of compute_ms): 0 = the device, 1.. = servers.
  int num_targets() const { return static_cast<int>(compute_ms.size()); }
  // dag.num_atoms.
  int num_atoms() const { return dag.num_atoms; }
  // The atom's name, or "atom <id>" if it has none.
  std::string atom_label(int atom) const;

  // Throws InvalidArgument naming the field: dag inconsistent, wrong lengths,
  // NaN / negative / infinite costs, fewer than 2 targets, bad links.
  void validate() const;
};

// What a planner optimises (the Objectives paragraph above).
enum class Objective { Latency, Energy, Throughput };
// "latency" | "energy" | "throughput".
const char* objective_name(Objective objective);
// "latency" | "energy" | "throughput"; anything else -> InvalidArgument.
Objective parse_objective(const std::string& name);

// What changes at run time.
struct Context {
  double bandwidth_mbps = 0;  // device<->server bandwidth, Mbit/s, > 0
  double rtt_ms = 0;          // device<->server round trip, ms, >= 0
  double server_load = 1;     // > 0; multiplies the compute time of targets >= 1 (2 = twice slower)
  double device_load = 1;     // > 0; multiplies the compute time of target 0 (the device is busier, throttled)
  double device_memory_budget_bytes = kUnlimited;  // free device memory for parameters
  double energy_weight = 0;   // Latency objective: minimise latency_ms + energy_weight * energy_mj
  Objective objective = Objective::Latency;        // what planners optimise

  void validate() const;  // InvalidArgument naming the field
};

// Hard limits a plan must meet; a plan over one is Infeasible, its reason naming the field.
struct Constraints {
  // Effective device memory budget = min(device_memory_bytes, Context::device_memory_budget_bytes).
  double device_memory_bytes = kUnlimited;  // bytes of parameters on target 0
  double max_latency_ms = kUnlimited;       // bound on the plan's sequential latency, ms
  double max_energy_mj = kUnlimited;        // bound on the plan's energy, mJ
  // Optional, per atom: -1 = free, otherwise the target the atom must run on
  // (privacy, an operator only the device supports, ...). Empty = no pins.
  std::vector<int> pin;

  void validate(int num_atoms, int num_targets) const;  // InvalidArgument naming the field
};

// The link used from target `from` to target `to` under `ctx` (see CostModel::links).
LinkCost link_between(const CostModel& cm, const Context& ctx, int from, int to);

// ---- additive two-target costs (the min-cut view) ---------------------------
//
// Every additive objective restricted to targets {0, 1} is
//   sum_a (t(a) == 0 ? device[a] : server[a])
//   + sum_v (up[v]   if v is on 0 and some destination is 1)
//   + sum_v (down[v] if v is on 1 and some destination is 0)
// (destinations: consumers' targets, plus 0 for model outputs).
struct CutCosts {
  std::vector<double> device;  // per atom: cost if on target 0
  std::vector<double> server;  // per atom: cost if on target 1
  std::vector<double> up;      // per value: cost of one transfer 0 -> 1
  std::vector<double> down;    // per value: cost of one transfer 1 -> 0
};

// Weights of the basic terms in an additive objective.
struct CostWeights {
  double latency = 1;   // weight of latency_ms (compute + bytes/bandwidth + rtt/2)
  double energy = 0;    // weight of energy_mj
  double memory = 0;    // weight of device parameter bytes (Lagrangian multiplier)
  double device_compute = 0;  // weight of the device stage (compute on 0, ms)
  double server_compute = 0;  // weight of the server stage (compute on 1 x load, ms)
  double link = 0;            // weight of the link stage (serialisation ms, no rtt)
};
// The weights of the Context's objective (Latency: 1, energy_weight; Energy: 0, 1;
// Throughput: treated as Latency by additive planners).
CostWeights objective_weights(const Context& ctx);
// Fills `out` (reusing its storage) with the weighted two-target costs.
void cut_costs(const CostModel& cm, const Context& ctx, const CostWeights& w, CutCosts& out);
// The value of `placement` (0/1 per atom) under `costs`.
double cut_value(const AtomDag& dag, const CutCosts& costs, const std::vector<int>& placement);

}  // namespace tessera::plan
