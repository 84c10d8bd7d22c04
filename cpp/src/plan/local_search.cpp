// local_search.cpp -- MoveEvaluator (see tessera/plan/local_search.h).
#include "tessera/plan/local_search.h"

#include <algorithm>

#include "tessera/core/error.h"

namespace tessera::plan {

MoveEvaluator::MoveEvaluator(const AtomDag& dag)
    : dag_(&dag),
      consumes_(static_cast<size_t>(dag.num_atoms)),
      produces_(static_cast<size_t>(dag.num_atoms)),
      neighbours_(static_cast<size_t>(dag.num_atoms)),
      count_(dag.values.size(), {0, 0}),
      stamp_(dag.values.size(), 0),
      moved_in_(static_cast<size_t>(dag.num_atoms), 0),
      flips_(dag.values.size(), 0) {
  const size_t nv = dag.values.size();
  producer_.resize(nv);
  is_output_.resize(nv);
  live_.resize(nv);
  for (size_t v = 0; v < nv; ++v) {
    const DagValue& val = dag.values[v];
    producer_[v] = val.producer;
    is_output_[v] = val.is_output ? 1 : 0;
    live_[v] = (val.is_output || !val.consumers.empty()) ? 1 : 0;
    if (!live_[v]) continue;
    if (val.producer != kModelInput) produces_[val.producer].push_back(static_cast<int>(v));
    for (int c : val.consumers) {
      consumes_[c].push_back(static_cast<int>(v));
      if (val.producer != kModelInput) {
        neighbours_[val.producer].push_back(c);
        neighbours_[c].push_back(val.producer);
      }
    }
  }
  for (auto& nb : neighbours_) {
    std::sort(nb.begin(), nb.end());
    nb.erase(std::unique(nb.begin(), nb.end()), nb.end());
  }
}

void MoveEvaluator::reset(const std::vector<int>& x) {
  check_placement(*dag_, x, 2);
  x_ = x;
  for (auto& c : count_) c = {0, 0};
  for (size_t a = 0; a < x_.size(); ++a)
    for (int v : consumes_[a]) ++count_[v][x_[a]];
}

void MoveEvaluator::group_deltas(const std::vector<const CutCosts*>& costs, const std::vector<int>& group,
                                 int target, std::vector<double>& deltas) const {
  const size_t k = costs.size();
  deltas.assign(k, 0.0);
  if (++epoch_ == 0) {  // wrapped: clear the marks
    std::fill(stamp_.begin(), stamp_.end(), 0);
    std::fill(moved_in_.begin(), moved_in_.end(), 0);
    epoch_ = 1;
  }
  changing_.clear();
  for (int a : group)
    if (x_[a] != target && moved_in_[a] != epoch_) {
      moved_in_[a] = epoch_;
      changing_.push_back(a);
      for (size_t i = 0; i < k; ++i)
        deltas[i] += target == 0 ? costs[i]->device[a] - costs[i]->server[a] : costs[i]->server[a] - costs[i]->device[a];
    }
  touched_.clear();
  auto touch = [&](int v) {
    if (stamp_[v] != epoch_) {
      stamp_[v] = epoch_;
      flips_[v] = 0;
      touched_.push_back(v);
    }
  };
  for (int a : changing_) {
    for (int v : consumes_[a]) {
      touch(v);
      ++flips_[v];
    }
    for (int v : produces_[a]) touch(v);
  }
  for (int v : touched_) {
    const int p = producer_[v];
    const int side_before = p == kModelInput ? 0 : x_[p];
    const int side_after = (p != kModelInput && moved_in_[p] == epoch_) ? target : side_before;
    std::array<int, 2> after = count_[v];
    after[target] += flips_[v];
    after[1 - target] -= flips_[v];
    const int before_pat = pattern(v, side_before, count_[v][0], count_[v][1]);
    const int after_pat = pattern(v, side_after, after[0], after[1]);
    if (before_pat == after_pat) continue;
    for (size_t i = 0; i < k; ++i) {
      const CutCosts& c = *costs[i];
      deltas[i] += ((after_pat & 1) ? c.up[v] : 0.0) + ((after_pat & 2) ? c.down[v] : 0.0) -
                   ((before_pat & 1) ? c.up[v] : 0.0) - ((before_pat & 2) ? c.down[v] : 0.0);
    }
  }
}

void MoveEvaluator::apply(const std::vector<int>& group, int target) {
  for (int a : group) {
    if (x_[a] == target) continue;
    for (int v : consumes_[a]) {
      --count_[v][x_[a]];
      ++count_[v][target];
    }
    x_[a] = target;
  }
}

int MoveEvaluator::search(const std::vector<const CutCosts*>& costs, const std::vector<int>& pin, int max_passes,
                          const std::function<bool(const std::vector<double>&)>& accept) {
  const int n = dag_->num_atoms;
  auto movable = [&](int a) { return pin.empty() || pin[a] < 0; };
  std::vector<int> group;
  std::vector<double> deltas;
  int taken = 0;
  for (int pass = 0; pass < max_passes; ++pass) {
    bool improved = false;
    for (int a = 0; a < n; ++a) {
      if (!movable(a)) continue;
      for (int kind = 0; kind < 3; ++kind) {
        group.clear();
        int target;
        if (kind == 0) {
          group.push_back(a);
          target = 1 - x_[a];
        } else {
          target = kind - 1;
          if (x_[a] != target) group.push_back(a);
          for (int b : neighbours_[a])
            if (movable(b) && x_[b] != target) group.push_back(b);
          if (group.size() < 2) continue;
        }
        group_deltas(costs, group, target, deltas);
        if (!accept(deltas)) continue;
        apply(group, target);
        ++taken;
        improved = true;
      }
    }
    if (!improved) break;
  }
  return taken;
}

}  // namespace tessera::plan
