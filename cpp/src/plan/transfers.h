// plan/transfers.h -- the cost model's transfer rule, private to plan/: every value goes once
// from its producer's target (model inputs: the device) to every other target that needs it
// (its consumers' targets, and the device for a model output).
#pragma once

#include <algorithm>
#include <vector>

#include "tessera/plan/dag.h"

namespace tessera::plan {

// Calls f(value, from, to) once per transfer of `placement`.
template <class F>
void for_each_transfer(const AtomDag& dag, const std::vector<int>& placement, int num_targets, F&& f) {
  std::vector<char> dest(static_cast<size_t>(num_targets), 0);
  for (size_t v = 0; v < dag.values.size(); ++v) {
    const DagValue& val = dag.values[v];
    const int p = val.producer == kModelInput ? 0 : placement[val.producer];
    std::fill(dest.begin(), dest.end(), 0);
    if (val.is_output) dest[0] = 1;
    for (int c : val.consumers) dest[placement[c]] = 1;
    for (int d = 0; d < num_targets; ++d)
      if (dest[d] && d != p) f(static_cast<int>(v), p, d);
  }
}

}  // namespace tessera::plan
