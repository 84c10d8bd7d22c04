// tessera/plan/local_search.h -- incremental evaluation of additive two-target
// costs (CutCosts) under moves of one atom or a group of atoms, and the
// neighbour-effect local search built on it, shared by the gads (CAS / GADS,
// Liang et al. 2023) and throughput (DADS heavy load, Hu et al. INFOCOM 2019)
// planners.
//
// The evaluator is bound to one placement x. It keeps, per value, how many of
// its consumers run on each side, so the transfers a value needs are known in
// O(1) and a move is evaluated in O(values touching the atoms that change side)
// -- independent of how many consumers those values have (densenet's
// concatenated features have up to 24).
#pragma once

#include <array>
#include <functional>
#include <vector>

#include "tessera/plan/cost_model.h"

namespace tessera::plan {

// Incremental cut_value() deltas of moving atoms between targets 0 and 1, bound to one placement
// (reset()). Not thread-safe: one evaluator per thread.
class MoveEvaluator {
 public:
  // Indexes `dag`, which is not copied and must outlive the evaluator. Call reset() before use.
  explicit MoveEvaluator(const AtomDag& dag);

  // Binds the evaluator to placement x (0 = device, 1 = server, per atom).
  void reset(const std::vector<int>& x);
  // The bound placement, as moves left it (0 = device, 1 = server, per atom).
  const std::vector<int>& placement() const { return x_; }

  // deltas[i] = change of cut_value(*costs[i], placement()) if every atom of
  // `group` moves to `target` (0/1). The placement is not changed.
  void group_deltas(const std::vector<const CutCosts*>& costs, const std::vector<int>& group, int target,
                    std::vector<double>& deltas) const;
  // Moves every atom of `group` to `target`.
  void apply(const std::vector<int>& group, int target);

  // The atoms adjacent to `atom` (producers of its inputs, consumers of its outputs).
  const std::vector<int>& neighbours(int atom) const { return neighbours_[atom]; }

  // Local search from placement(), moves guided by the neighbour effect: per
  // free atom (pin < 0 or pin empty), the atom alone to the other side, then
  // the atom with all its free neighbours to the device, then to the server.
  // accept(deltas) sees the change of every cost vector for a move and returns
  // true to take it (the caller updates its own totals). Passes over all atoms
  // until one takes no move, at most max_passes. Returns the moves taken.
  int search(const std::vector<const CutCosts*>& costs, const std::vector<int>& pin, int max_passes,
             const std::function<bool(const std::vector<double>&)>& accept);

 private:
  // Transfers value v needs (bit 0 = up, bit 1 = down) with its producer on
  // side p and n0 / n1 consumers on the device / server.
  int pattern(int v, int p, int n0, int n1) const {
    const bool to0 = is_output_[v] || n0 > 0, to1 = n1 > 0;
    return (p == 0 && to1 ? 1 : 0) | (p == 1 && to0 ? 2 : 0);
  }

  const AtomDag* dag_;  // not owned; must outlive the evaluator
  std::vector<int> producer_;                 // per value (kModelInput for inputs)
  std::vector<char> is_output_, live_;        // per value; live = consumed or a model output
  std::vector<std::vector<int>> consumes_;    // per atom: live values it consumes
  std::vector<std::vector<int>> produces_;    // per atom: live values it produces
  std::vector<std::vector<int>> neighbours_;  // per atom
  std::vector<int> x_;                        // bound placement
  std::vector<std::array<int, 2>> count_;     // per value: consumers on each side under x_
  // scratch (mutable: group_deltas is logically const)
  mutable std::vector<int> stamp_, moved_in_;  // per value / per atom epoch marks
  mutable std::vector<int> flips_;             // per value: consumers changing side
  mutable std::vector<int> touched_, changing_;
  mutable int epoch_ = 0;
};

}  // namespace tessera::plan
