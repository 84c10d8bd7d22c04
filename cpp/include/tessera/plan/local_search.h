// tessera/plan/local_search.h -- incremental evaluation of additive two-target
// costs (CutCosts) under moves of one atom or a group of atoms, for the local
// searches of the gads (CAS / GADS, Liang et al. 2023: moves guided by the
// "neighbour effect") and throughput (DADS heavy load, Hu et al. INFOCOM 2019)
// planners. Implemented in gads.cpp.
#pragma once

#include <vector>

#include "tessera/plan/cost_model.h"

namespace tessera::plan {

class MoveEvaluator {
 public:
  explicit MoveEvaluator(const AtomDag& dag);

  // Change of cut_value(costs, x) if every atom of `group` moves to `target`
  // (0/1); x is changed during the call and restored before it returns.
  // O(size of the values touching the group).
  double group_delta(const CutCosts& costs, std::vector<int>& x, const std::vector<int>& group,
                     int target) const;
  // Several cost vectors at once: deltas[i] for costs[i] (same move).
  void group_deltas(const std::vector<const CutCosts*>& costs, std::vector<int>& x,
                    const std::vector<int>& group, int target, std::vector<double>& deltas) const;
  // The atoms adjacent to `atom` (producers of its inputs, consumers of its outputs).
  const std::vector<int>& neighbours(int atom) const { return neighbours_[atom]; }

 private:
  const AtomDag* dag_;  // not owned; must outlive the evaluator
  std::vector<std::vector<int>> touching_;    // per atom: values produced or consumed
  std::vector<std::vector<int>> neighbours_;  // per atom
  mutable std::vector<int> stamp_;            // per value, for de-duplication
  mutable std::vector<int> old_target_;       // per atom scratch
  mutable int epoch_ = 0;
};

}  // namespace tessera::plan
