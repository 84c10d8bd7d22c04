// tessera/plan/mincut.h -- exact two-target placement by minimum s-t cut.
//
// Follows DADS (Hu et al., INFOCOM 2019): the device is the source s, the server
// the sink t; an atom on the sink side runs on the server. Edges:
//   s -> a   server cost of a (paid if a is on the server), a -> t  device cost;
//            (only their difference is kept: max(0, +-(server - device)))
//   value v with producer p and consumers C (model inputs: p = s):
//     up:   |C| = 1: p -> c (up[v]);  |C| > 1: p -> u_v (up[v]), u_v -> c (inf)
//           -- the auxiliary node u_v charges a value sent to the server ONCE;
//     down: model output: + down[v] on s -> p (it must return to the device);
//           |C| = 1: c -> p (down[v]); |C| > 1: c -> w_v (inf), w_v -> p (down[v]).
//   pins: s -> a (inf) keeps a on the device, a -> t (inf) on the server.
// Every cut of this graph costs exactly cut_value() of its placement, so the
// minimum cut is the exact optimum of
// any additive objective (latency, energy, weighted mixes) over all 2^n placements.
//
// With compress = true the graph is first reduced as in CIC / QDMP (Zhang et al.
// 2021): every maximal series chain of atoms p -> a1 -> ... -> ak -> q whose inner
// atoms have one input and one output value with a single consumer is replaced by
// one edge p -> q plus unary terms on p and q: the chain's 2x2 cost table
// g(x_p, x_q) = min over the inner atoms (a dynamic programme) is submodular and
// is represented exactly; the inner atoms are recovered by back-tracking. Same
// optimum, smaller flow problem.
//
// Max-flow: push-relabel (Goldberg-Tarjan, FIFO with global relabelling, first
// phase only) on the plain DADS graph, whose long source-to-sink paths make
// augmenting-path methods pay atoms x depth; Boykov-Kolmogorov (Boost.Graph) on
// the compressed graph, where it measured faster.
//
// The flow graph is built once (per DAG); solve() only rewrites capacities.
#pragma once

#include <memory>
#include <vector>

#include "tessera/plan/cost_model.h"

namespace tessera::plan {

// Exact two-target placement by min cut of a flow graph built once per DAG (above).
// Movable, not copyable; one solver per thread.
class CutSolver {
 public:
  // Builds the flow graph of `dag` (compress: reduce series chains first, same optimum).
  // Throws InvalidArgument for an inconsistent DAG.
  explicit CutSolver(const AtomDag& dag, bool compress = false);
  ~CutSolver();
  // Moves the flow graph; the moved-from solver may only be destroyed or assigned.
  CutSolver(CutSolver&&) noexcept;
  // Moves the flow graph; the moved-from solver may only be destroyed or assigned.
  CutSolver& operator=(CutSolver&&) noexcept;

  // The placement (0 = device, 1 = server, per atom) minimising cut_value(costs)
  // subject to `pin` (per atom -1 free / 0 / 1, or empty). Costs must be finite
  // and >= 0. Reuses the graph; not thread-safe (one solver per thread).
  std::vector<int> solve(const CutCosts& costs, const std::vector<int>& pin = {});
  // The same, also returning the min-cut value (the objective of the placement).
  std::vector<int> solve(const CutCosts& costs, const std::vector<int>& pin, double* value);

  int num_nodes() const;        // flow nodes, incl. s, t and auxiliary nodes
  int num_edges() const;        // forward flow edges
  int num_flow_atoms() const;   // atoms kept as flow nodes (after compression)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::shared_ptr<const AtomDag> dag_;
};

}  // namespace tessera::plan
