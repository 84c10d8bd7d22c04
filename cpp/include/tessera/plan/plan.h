// tessera/plan/plan.h -- a placement of atoms on targets, its predicted metrics,
// its execution schedule (blocks) and the contract checker.
//
// evaluate() computes the metrics with the latency / energy / memory model of
// cost_model.h (sequential latency as in Neurosurgeon, Kang et al. ASPLOS 2017,
// and DADS, Hu et al. INFOCOM 2019; pipelined throughput as in DADS's heavy-load
// case). validate() checks the contract every plan must meet, whoever built it
// (the ExecuTorch lesson: the framework checks partitioners, not the reverse).
#pragma once

#include <string>
#include <vector>

#include "tessera/plan/cost_model.h"

namespace tessera::plan {

// How good a plan is; ok() for Optimal and Feasible.
enum class PlanStatus {
  Optimal,     // provably optimal for the objective, constraints met
  Feasible,    // constraints met, not proven optimal (heuristic or restricted family)
  Infeasible,  // the plan violates a constraint (reason says which); it may still run
  BadInput,    // the planner could not produce a plan for this input (reason says why)
};
const char* status_name(PlanStatus status);  // "optimal" | "feasible" | "infeasible" | "bad_input"
// The inverse of status_name; any other name -> InvalidArgument naming it and the four.
PlanStatus parse_status(const std::string& name);

// A plan's blocks are tessera::ScheduledBlock (core/dag.h): a convex set of atoms on one target.

// One value sent once from one target to another.
struct Transfer {
  int value = 0;      // DAG value id
  int from = 0;       // target index it is sent from (its producer's)
  int to = 0;         // target index it is sent to
  double bytes = 0;   // bytes on the wire (encoded size when a codec applies)
  double ms = 0;  // bytes * 8 / (bandwidth * 1e6) * 1e3 + rtt / 2 (+ codec_ms)
  std::string codec;  // the wire codec the value travels with ("" = raw): its DagValue's
};

// A placement with its predicted metrics, schedule and transfers (evaluate() fills them).
// Plain data, cheap to copy; times in ms, energy in mJ, bytes in bytes.
struct Plan {
  std::string algorithm;        // planner that produced it ("" if built by hand)
  std::vector<int> placement;   // per atom: target index
  PlanStatus status = PlanStatus::Feasible;  // Infeasible / BadInput: see reason
  std::string reason;           // why Infeasible / BadInput, or a note (approximation bound, ...)
  double latency_ms = 0;        // sequential latency
  double throughput_fps = 0;    // pipelined: 1000 / max(target stages, link stage)
  double transfer_bytes = 0;    // sum of bytes of all transfers
  double device_memory_bytes = 0;  // param bytes on target 0
  // Peak bytes of activations the device holds at once along the plan's schedule
  // (activation_peak_bytes(dag, blocks, 0)). The device's memory as AdaMEC counts it is
  // device_memory_bytes + device_activation_bytes (+ the runtime's own buffers).
  double device_activation_bytes = 0;
  double energy_mj = 0;         // device (+ server rows given) energy, mJ
  double objective = 0;         // value of the Context's objective (Throughput: bottleneck ms)
  std::vector<double> target_ms;  // per target: compute ms (x server_load for targets >= 1)
  double link_ms = 0;           // link stage: serialisation ms of all transfers (no rtt)
  double bandwidth_mbps = 0;    // context the metrics were computed for
  double rtt_ms = 0;            // round trip the metrics were computed for, ms
  std::vector<ScheduledBlock> blocks;  // schedule_blocks(dag, placement)
  std::vector<Transfer> transfers; // sorted by value id, then destination

  // Optimal or Feasible: the plan meets its constraints.
  bool ok() const { return status == PlanStatus::Optimal || status == PlanStatus::Feasible; }
  // Several lines a person can read: metrics, blocks, and one line per cut
  // ("cut after layer3.1.relu (atom 41): 0.20 MB at 5.85 Mbit/s = 273.5 ms + rtt/2 (5.00 ms)").
  // Checks the cost model and that it has the plan's atom count (InvalidArgument).
  std::string explain(const CostModel& cm) const;
};

// schedule_blocks(dag, placement): core/dag.h.

// The peak of live activation bytes on `target` when `blocks` run one after another, each
// block's atoms in order (one step per atom). A value is held on the target from the step
// that makes it (model inputs on target 0: from the start; a value received from another
// target: from the first step of the first block there that reads it) to its last use
// there, to the first step of a block elsewhere that reads it (it is sent then), and to the
// end for model outputs (they end on target 0). At a step an atom's inputs and outputs are
// held together. Values with 0 bytes count 0. Blocks must partition the DAG's atoms in an
// executable order (schedule_blocks gives one); else InvalidArgument.
double activation_peak_bytes(const AtomDag& dag, const std::vector<ScheduledBlock>& blocks, int target = 0);

// Computes every metric of `placement` (one target per atom) under `ctx`, with its
// blocks and transfers. Status Feasible, reason empty; throws InvalidArgument if
// the placement has the wrong length or a target out of range. Does not check
// constraints: see constraint_violation().
Plan evaluate(const CostModel& cm, const Context& ctx, const std::vector<int>& placement);

// "" if `plan` meets the constraints (memory budget = min of constraint and
// context, latency, energy, pins), otherwise a reason naming the field and numbers.
std::string constraint_violation(const Plan& plan, const Context& ctx, const Constraints& cons);

// The contract: every atom placed, targets in range, blocks partition the atoms,
// each block on one target, convex, and executable in order; transfers bring
// every value to every target that needs it (model outputs back to the device).
// Returns one readable problem per violation (empty = valid).
std::vector<std::string> validate(const Plan& plan, const CostModel& cm);
// The same without costs: over `num_targets` targets of `dag`. This is what the
// runtime checks when a plan is handed to it (runtime::Deployment).
std::vector<std::string> validate(const Plan& plan, const AtomDag& dag, int num_targets);
// Throws InvalidArgument listing every problem validate() finds (at most 5 shown).
void check(const Plan& plan, const AtomDag& dag, int num_targets);

// A plan from a placement alone, without costs: its blocks (schedule_blocks) and
// transfers (bytes; ms 0), algorithm "placement", status Feasible. Checks the
// placement against num_targets (one wording, core/dag.h).
Plan from_placement(const AtomDag& dag, const std::vector<int>& placement, int num_targets = 2);

}  // namespace tessera::plan
