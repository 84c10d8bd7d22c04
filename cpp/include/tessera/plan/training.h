// tessera/plan/training.h -- split and pipeline-parallel training, the planning side (issue 22):
// a simulator of one training step over pipeline stages, and a planner that picks the cut and
// the micro-batch count. torch-free.
//
// Simulator (simulate_training). A training step pushes `micro_batches` micro-batches through
// S stages: forward F(i, j) on stage i for micro-batch j, its activations sent to stage i + 1,
// then backward B(i, j), its gradients sent to stage i - 1. Each stage runs on a node; stages on
// the same node share its compute (a U-shaped split device -> server -> device has stages 0 and 2
// on node 0). Nodes and directed links (sender node -> receiver node) are FIFO resources: an
// operation waits for its inputs and for its stage's previous operation, then for its resource;
// among waiting operations the one ready first runs first (ties: backward first, then the lower
// micro-batch, then the later stage). A send occupies its link for send_*_ms, then arrives after
// a further *_delay_ms (rtt / 2: propagation, which does not occupy the link). Schedules fix each
// stage's order of operations:
//   GPipe: F(0) .. F(m-1), then B(m-1) .. B(0) (all forwards, then all backwards, the most recent
//          first, as in the GPipe paper's figure)
//   1F1B:  PipeDream-flush: w = min(S - i, m) warm-up forwards F(0) .. F(w-1), then one backward
//          one forward (B(0), F(w), B(1), F(w+1), ...), then the remaining backwards: at most
//          S - i micro-batches in flight on stage i
// After its last backward a stage runs its optimizer update (update_ms) on its node. A stage
// stores stored_bytes per micro-batch from the start of F(i, j) to the end of B(i, j) (at one
// instant, a backward that took time frees before a forward starting then allocates; passes of
// no length count in the order they ran).
//
// Cost model (plan_training / evaluate_training). Costs are per atom at the full batch
// (batch_size samples): forward ms = PipelineNetwork's compute_ms, backward ms and optimizer
// update ms = TrainingCosts, each x the node's load. Stages are runs of the topological order
// (atom ids) on one node. A micro-batch of 1/m of the batch costs a stage (its atoms' sum) / m +
// micro_batch_overhead_ms (per non-empty stage, forward and backward each); the update is paid
// once per step. The values live across a cut (made before it, read after it; the model's
// outputs are read by the loss, after every atom) travel forward on the link between the two
// stages' nodes (bytes / m at the link's bandwidth, + rtt / 2); their gradients travel back with
// the same bytes, except model inputs and integer or bool values (no gradient). A value needed
// several stages later is forwarded stage to stage (plan_pipeline's convention). The first stage
// is on node 0, which holds the inputs (possibly with no atoms: it only sends them); when the
// labels stay on the device the loss runs on node 0, so the last stage is node 0's (possibly with
// no atoms: it receives the outputs, computes the loss and sends their gradients back).
// Memory of a node: the parameters of its atoms x (2 + optimizer_state_factor) (weights,
// gradients, optimizer state: SGD 0, SGD with momentum 1, Adam 2) + the simulated peak of the
// activations its stages store (per stage and micro-batch: the bytes of the values its atoms
// make and of the values it receives, / m).
//
// Planner (plan_training). Over the node order {0, s1, .., sk} (default: every node in index
// order): the stages are node 0's prefix, then one run per server of the order (empty runs
// dropped: a server may be skipped), then node 0's suffix when labels_on_device (the U shape),
// every placement of k (+1) cuts 0 <= p1 <= .. <= n, x every micro-batch choice x every schedule
// given; each candidate simulated, the fastest step whose nodes fit their memory wins (ties: the
// first found, micro-batch choices ascending, then the schedules' order, then cuts in
// lexicographic order). Exact over that space: candidates are skipped only when a lower bound
// of their step (every node's and link's busy time, one micro-batch's critical path) is no
// better, or their parameters alone overflow a node. C(n + L, L) candidate cuts for L cuts:
// n^2 / 2 for a device and one server in a U, n for labels on the server; more servers grow it
// fast (max_candidates bounds it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tessera/plan/pipeline.h"

namespace tessera::plan {

// The order of a pipeline stage's forward and backward passes (the header comment).
enum class PipeSchedule { GPipe, OneFOneB };
// "gpipe" | "1f1b".
const char* schedule_name(PipeSchedule schedule);
// "gpipe" | "1f1b" (also "one_f_one_b", "pipedream_flush"); anything else -> InvalidArgument.
PipeSchedule parse_schedule(const std::string& name);

// One stage of a training pipeline as the simulator sees it; times per micro-batch, in ms.
struct TrainingStage {
  int node = 0;                // the node that runs it (stages on one node share it)
  double fwd_ms = 0;           // forward of one micro-batch
  double bwd_ms = 0;           // backward of one micro-batch
  double send_fwd_ms = 0;      // activations of one micro-batch to the next stage: link time (last stage: unused)
  double send_bwd_ms = 0;      // gradients of one micro-batch to the previous stage: link time (first: unused)
  double fwd_delay_ms = 0;     // after send_fwd_ms, before they arrive (rtt / 2), not occupying the link
  double bwd_delay_ms = 0;     // after send_bwd_ms, before they arrive (rtt / 2)
  double stored_bytes = 0;     // activations one micro-batch keeps on the stage until its backward
  double update_ms = 0;        // the optimizer step, once per training step, after the stage's last backward
};

// What an event of the timeline is.
enum class TrainingOp { Forward, Backward, SendForward, SendBackward, Update };
// "F" | "B" | "send_F" | "send_B" | "update".
const char* training_op_name(TrainingOp op);

// One operation of a simulated training step (a bar of a Gantt chart).
struct TrainingEvent {
  int stage = 0;        // the stage it belongs to (sends: the sending stage)
  int micro_batch = 0;  // -1 for Update
  TrainingOp op = TrainingOp::Forward;  // what it is
  int node = 0;         // compute: the node; sends: the sender's node
  int to_node = -1;     // sends: the receiver's node (the link is node -> to_node); -1 otherwise
  double start_ms = 0;  // when it starts occupying its node or link
  double end_ms = 0;    // when it stops (a send arrives end_ms + its delay)
};

// The result of simulate_training.
struct TrainingTimeline {
  std::vector<TrainingEvent> events;       // every operation, by start time (equal starts: in the order they ran)
  double makespan_ms = 0;                  // the step: the last event's end
  std::vector<double> node_busy_ms;        // per node index 0 .. max node: compute ms on it
  std::vector<int> peak_in_flight;         // per stage: most micro-batches between F start and B end at once
  std::vector<double> peak_stored_bytes;   // per stage: peak_in_flight x stored_bytes
  std::vector<double> node_peak_stored_bytes;  // per node: peak of the bytes its stages store at once
};

// Simulates one training step (the header comment). Throws InvalidArgument naming the field:
// no stages, micro_batches < 1, a negative or non-finite cost, a negative node.
TrainingTimeline simulate_training(const std::vector<TrainingStage>& stages, int micro_batches,
                                   PipeSchedule schedule);

// What training costs beside the network's forward costs (PipelineNode::compute_ms).
struct TrainingCosts {
  std::vector<std::vector<double>> backward_ms;  // [node][atom]: backward ms at the full batch, unloaded
  std::vector<std::vector<double>> update_ms;    // [node][atom]: optimizer update ms per step; empty = 0
  // Throws InvalidArgument naming the field: wrong sizes, negative or non-finite costs.
  void validate(const AtomDag& dag, const PipelineNetwork& net) const;
};

// The knobs of a training plan.
struct TrainingOptions {
  int batch_size = 0;                          // samples per step the costs were measured at (>= 1)
  std::vector<int> micro_batches = {1, 2, 4, 8};  // choices (each in [1, batch_size]); evaluate: ignored
  std::vector<PipeSchedule> schedules = {PipeSchedule::OneFOneB, PipeSchedule::GPipe};  // choices
  bool labels_on_device = true;                // the loss runs on node 0: a U-shaped split
  double optimizer_state_factor = 1;           // optimizer state in multiples of the parameters
  double micro_batch_overhead_ms = 0;          // per non-empty stage, micro-batch and pass (F or B)
  std::vector<int> order;                      // node order, node 0 first; empty = every node by index
  int64_t max_candidates = 20000000;           // cut tuples x micro-batch choices x schedules at most
  // Throws InvalidArgument naming the field (num_nodes: the network's).
  void validate(int num_nodes) const;
};

// The optimizer state in multiples of the parameters: "sgd" 0, "sgd_momentum" / "momentum" 1,
// "adam" / "adamw" 2; anything else -> InvalidArgument listing them.
double optimizer_state_factor(const std::string& optimizer);

// A placement for training with its simulated step.
struct TrainingPlan {
  std::string algorithm;                     // "exhaustive" (plan_training) or "evaluate"
  PlanStatus status = PlanStatus::Feasible;  // Optimal (plan_training), Feasible, Infeasible (memory: see reason)
  std::string reason;                        // why Infeasible, or what the search covered
  std::vector<int> placement;                // per atom: node index (0: the device)
  std::vector<Stage> stages;                 // in pipeline order (atoms: contiguous runs; may be empty at the ends)
  std::vector<TrainingStage> stage_costs;    // per stage: what was simulated (per micro-batch)
  int micro_batches = 1;                     // micro-batches per step
  PipeSchedule schedule = PipeSchedule::OneFOneB;  // the stages' order of passes
  int batch_size = 0;                        // samples per step
  double step_ms = 0;                        // simulated makespan of one step
  double samples_per_s = 0;                  // batch_size / step_ms x 1000
  std::vector<double> node_param_bytes;      // per node: parameters x (2 + optimizer state factor)
  std::vector<double> node_stored_bytes;     // per node: peak stored activation bytes
  std::vector<double> node_memory_bytes;     // per node: the two above summed
  TrainingTimeline timeline;                 // the simulated step (events for a Gantt chart)
  std::vector<int> micro_batch_choices;      // plan_training: the choices tried, ascending
  std::vector<double> best_step_ms;          // plan_training: per choice, the best feasible step ms (inf: none)
  int64_t simulated = 0;                     // plan_training: candidates simulated
  int64_t pruned = 0;                        // plan_training: candidates skipped by the lower bound
  int64_t over_memory = 0;                   // plan_training: candidates over some node's memory
  // Optimal or Feasible.
  bool ok() const { return status == PlanStatus::Optimal || status == PlanStatus::Feasible; }
  // One paragraph a person reads: the stages, micro-batches and schedule, the step and samples/s
  // against no micro-batching, the busiest node, each node's memory.
  std::string explain(const PipelineNetwork& net) const;
};

// The stages of a placement (runs of equal nodes along the atom ids; node 0's empty source and,
// with labels_on_device, sink added when needed) priced for `micro_batches` (the header comment).
// Throws InvalidArgument for a bad placement, costs or options, or an unreachable link.
std::vector<TrainingStage> training_stages(const AtomDag& dag, const PipelineNetwork& net, const TrainingCosts& costs,
                                           const std::vector<int>& placement, int micro_batches,
                                           const TrainingOptions& options, std::vector<Stage>* stages_out = nullptr);

// The simulated step of a given placement: status Infeasible (reason: the node and by how much)
// when a node's memory or a pin is violated. Throws InvalidArgument as training_stages.
TrainingPlan evaluate_training(const AtomDag& dag, const PipelineNetwork& net, const TrainingCosts& costs,
                               const std::vector<int>& placement, int micro_batches, PipeSchedule schedule,
                               const TrainingOptions& options);

// The fastest step over the cuts, micro-batch choices and schedules (the header comment),
// status Optimal. Throws InvalidArgument naming the field for bad input, and when no candidate
// fits the nodes' memory (naming the node and by how much, for the closest candidate) or when
// the search would exceed options.max_candidates.
TrainingPlan plan_training(const AtomDag& dag, const PipelineNetwork& net, const TrainingCosts& costs,
                           const TrainingOptions& options);

}  // namespace tessera::plan
