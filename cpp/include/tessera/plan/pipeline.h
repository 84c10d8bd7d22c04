// tessera/plan/pipeline.h -- a model over N nodes in a pipeline (issue 14, the planner part).
//
// Nodes are machines in pipeline order candidates: node 0 is the device (it holds the
// inputs; the results return to it), the others edge servers or a cloud. Each has a cost
// per atom (ms) and a memory capacity for weights; links between nodes have a bandwidth
// (0 = unreachable) and a round trip. A pipeline plan is an ordered list of stages, each a
// contiguous segment of the atoms' topological order on one node; the values live across a
// cut between two stages travel on the link between them (values a later stage needs are
// forwarded stage to stage), and the model's outputs travel from their stage's node back to
// node 0.
//
//   throughput: every stage busy at once on a stream of inputs; the bottleneck is the
//               slowest of the stages' compute and the links' serialisation (DADS's
//               heavy-load model, PipeEdge's objective); fps = 1000 / bottleneck ms
//   latency:    one input alone: the sum of compute and transfers (serialisation + rtt/2)
//
// plan_pipeline_dp: exact for a given node order over the partitions it searches (every
// split of the topological order into contiguous stages on a prefix of the order, the
// device's own stage possibly empty): dp[k][q] = best objective with the first k stages
// covering atoms [0, q); O(K n^2) transitions with prefix sums, K nodes, n atoms.
// With net.tiling, dp also tries each server stage split by rows over the stage's node and
// the next 1 .. max_tiles - 1 nodes of the order (state: how many helpers the last stage
// took, since the next stage's input comes from the stage's own node): O(K n^2 T).
// plan_pipeline_exhaustive: every order of every subset of the servers after the device,
// DP inside (the test oracle and the best for small K). equal_layers: the naive baseline
// (stages of equal compute on each node's costs). torch-free.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "tessera/plan/cost_model.h"
#include "tessera/plan/plan.h"
#include "tessera/plan/tiling.h"

namespace tessera::plan {

// A machine of the pipeline: its per-atom costs, memory for weights and current load.
struct PipelineNode {
  std::string name;  // for plans and explanations ("edge-a"); PipelineNetwork::index finds it
  std::vector<double> compute_ms;                                    // per atom, unloaded
  double memory_bytes = std::numeric_limits<double>::infinity();    // weights it may hold
  double load = 1;                                                   // compute_ms x load (2: twice slower now)
};

// Which runs of atoms an intra-layer split may cut into row tiles (tiling.h), per atom:
// runtime::pipeline_tiling(model) fills it from the model's row chains. Empty = no splits.
struct PipelineTiling {
  std::vector<int> chain;                 // row chain id of the atom, -1: not in one
  std::vector<std::vector<RowOp>> ops;    // its row operators, in order
  // Heights (rows, dim 2) of the atom's chain input and output.
  std::vector<int> rows_in, rows_out;     // rows of its chain input and output
  // Bytes of the atom's chain input and output.
  std::vector<double> in_bytes, out_bytes;// bytes of its chain input and output
  int max_tiles = 2;                      // nodes per split stage the planners try (1: none)
  // No tiling given: the planners try no splits.
  bool empty() const { return chain.empty(); }
  // The row operators of atoms [p, q) when they lie in one chain (else false).
  bool range(int p, int q, std::vector<RowOp>& ops_out) const;
  void validate(int num_atoms) const;     // InvalidArgument naming the field
};

// The machines (node 0: the device) and the links between them, K nodes. Plain data.
struct PipelineNetwork {
  std::vector<PipelineNode> nodes;                 // nodes[0] = the device
  std::vector<std::vector<double>> bandwidth_mbps;  // K x K; 0 = unreachable (the diagonal is unused)
  std::vector<std::vector<double>> rtt_ms;          // K x K (empty = 0)
  PipelineTiling tiling;                            // intra-layer splits (empty: none)
  // Per atom: the node it must run on (privacy, an operator only one node has), -1: any.
  // Empty: no pins. A stage holding an atom pinned elsewhere is not a plan; split stages hold none.
  std::vector<int> pin;
  // Throws InvalidArgument naming the node or pair: wrong sizes, costs, a node linked to itself...
  void validate(const AtomDag& dag) const;
  int index(const std::string& name) const;        // -1 if unknown
};

// One stage of a pipeline plan: a run of atoms on one node (and its helpers when split).
struct Stage {
  int node = 0;            // index in PipelineNetwork::nodes
  std::vector<int> atoms;  // contiguous in the topological order
  // Intra-layer split: the stage's output rows also computed on these nodes (tiles in
  // proportion to each node's speed on the stage, with the halo each tile's kernels read);
  // `node` runs the first tile and gathers. Empty: not split. Server stages only.
  std::vector<int> helpers;
};

// Stages over nodes with their metrics (evaluate_pipeline fills them); times in ms.
struct PipelinePlan {
  std::string algorithm;                     // planner that made it ("dp", "pso_dp", ...)
  PlanStatus status = PlanStatus::Feasible;  // Infeasible / BadInput: see reason
  std::string reason;                   // why Infeasible / BadInput, or a note
  std::vector<Stage> stages;            // in pipeline order; the first is on node 0
  double throughput_fps = 0;            // 1000 / bottleneck_ms
  double latency_ms = 0;                // one input alone: compute + transfers (serialisation + rtt/2)
  double bottleneck_ms = 0;             // the slowest stage's compute or link's serialisation, ms
  std::string bottleneck;               // "stage 2 on edge-b" or "link edge-a -> edge-b"
  std::vector<double> stage_ms;         // per stage: compute
  std::vector<double> link_ms;          // per cut after stage i (and the last: results back): serialisation
  std::vector<double> tile_ms;          // per stage: its slowest helper resource (tile compute or a
                                        // tile's link), 0 when not split
  // Optimal or Feasible.
  bool ok() const { return status == PlanStatus::Optimal || status == PlanStatus::Feasible; }
  // Several lines a person reads: stages with their nodes, ms and the bottleneck.
  std::string explain(const PipelineNetwork& net) const;
};

// The row tiles of a split stage as the planners price them: tiles[0] for stage.node, then
// one per helper, in proportion to each node's speed on the stage. Throws InvalidArgument when
// the stage is not split or its atoms are not one row chain of net.tiling.
std::vector<TileWindow> stage_tiles(const PipelineNetwork& net, const Stage& stage);

// Metrics of given stages (checked: contiguous, in order, every atom once, first on node 0,
// reachable links, memory). A violated memory limit gives status Infeasible with the reason.
PipelinePlan evaluate_pipeline(const AtomDag& dag, const PipelineNetwork& net, const std::vector<Stage>& stages);

// Exact over contiguous stages on a prefix of `order` (node indices, starting with 0; see above).
// Throws InvalidArgument for a bad network or order.
PipelinePlan plan_pipeline_dp(const AtomDag& dag, const PipelineNetwork& net, const std::vector<int>& order,
                              Objective objective = Objective::Throughput);
// dp over every order of every subset of the servers: exact, K! orders (small K only).
PipelinePlan plan_pipeline_exhaustive(const AtomDag& dag, const PipelineNetwork& net,
                                      Objective objective = Objective::Throughput);
// The multi-device seed's approach: a particle swarm over which servers to use and in what
// order (each particle a priority per server: the servers above 0.5, by decreasing priority,
// follow the device), the DP inside; fitness memoised per order; then a local search from the
// swarm's three best distinct orders (swap, move, drop, insert or substitute a server) while it
// improves. One
// particle starts at the given order, so the result is never worse than dp over it.
// Deterministic for a seed.
struct PsoOptions {
  int particles = 24;   // swarm size, >= 1
  int iterations = 20;  // swarm rounds, >= 0
  uint64_t seed = 1;  // random seed: the same seed, the same plan
};
// The particle swarm described at PsoOptions, from `order`.
PipelinePlan plan_pipeline_pso_dp(const AtomDag& dag, const PipelineNetwork& net, const std::vector<int>& order,
                                  Objective objective = Objective::Throughput, const PsoOptions& options = {});
// The best over every convex partition into stages on a prefix of `order` (each atom labelled
// with a stage, a producer's stage never after its consumers', the server stages non-empty),
// not only contiguous runs of one topological order: how much dp's restriction gives up on
// DAGs with parallel branches. Exhaustive over monotone labellings: for small instances only
// (at most max_atoms atoms, else InvalidArgument). Stages come back as atom sets (possibly
// not contiguous); the metrics follow evaluate_pipeline's model.
PipelinePlan plan_pipeline_convex_brute_force(const AtomDag& dag, const PipelineNetwork& net, const std::vector<int>& order,
                                              Objective objective = Objective::Throughput, int max_atoms = 12);
// The naive baseline: stages of equal compute on the nodes of `order`, in order.
PipelinePlan plan_pipeline_equal_layers(const AtomDag& dag, const PipelineNetwork& net, const std::vector<int>& order);

// One of the planners above by name: "dp" | "pso_dp" | "exhaustive" | "equal_layers" (the
// order is ignored by exhaustive, the objective by equal_layers); any other name ->
// InvalidArgument listing them.
PipelinePlan plan_pipeline(const AtomDag& dag, const PipelineNetwork& net, const std::string& algorithm,
                           const std::vector<int>& order, Objective objective = Objective::Throughput);
// The names plan_pipeline accepts, in the order above.
const std::vector<std::string>& pipeline_planner_names();

}  // namespace tessera::plan
