// core/dag.cpp -- the atom DAG's checks, the one placement check, and the block
// schedule of a placement (see tessera/core/dag.h). torch-free.
#include "tessera/core/dag.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <queue>

#include "tessera/core/error.h"

namespace tessera {

namespace {
bool finite_nonneg(double x) { return std::isfinite(x) && x >= 0; }
constexpr double kMaxBytes = 1e18;  // an exabyte: keeps every sum a plan makes finite
}  // namespace

void AtomDag::validate() const {
  TESSERA_CHECK(num_atoms >= 0, InvalidArgument, "AtomDag.num_atoms must be >= 0, got {}", num_atoms);
  TESSERA_CHECK(param_bytes.empty() || static_cast<int>(param_bytes.size()) == num_atoms,
                InvalidArgument, "AtomDag.param_bytes has {} entries, expected num_atoms = {} (or none)",
                param_bytes.size(), num_atoms);
  for (size_t a = 0; a < param_bytes.size(); ++a)
    TESSERA_CHECK(finite_nonneg(param_bytes[a]), InvalidArgument,
                  "AtomDag.param_bytes[{}] must be finite and >= 0, got {}", a, param_bytes[a]);
  TESSERA_CHECK(atom_names.empty() || static_cast<int>(atom_names.size()) == num_atoms,
                InvalidArgument, "AtomDag.atom_names has {} entries, expected num_atoms = {} (or none)",
                atom_names.size(), num_atoms);
  for (size_t v = 0; v < values.size(); ++v) {
    const DagValue& val = values[v];
    TESSERA_CHECK(val.producer == kModelInput || (val.producer >= 0 && val.producer < num_atoms),
                  InvalidArgument, "AtomDag.values[{}].producer = {} is out of range [-1, {})", v,
                  val.producer, num_atoms);
    TESSERA_CHECK(finite_nonneg(val.bytes) && val.bytes <= kMaxBytes, InvalidArgument,
                  "AtomDag.values[{}].bytes must be in [0, 1e18], got {}", v, val.bytes);
    for (size_t i = 0; i < val.consumers.size(); ++i) {
      int c = val.consumers[i];
      TESSERA_CHECK(c >= 0 && c < num_atoms, InvalidArgument,
                    "AtomDag.values[{}].consumers[{}] = {} is out of range [0, {})", v, i, c, num_atoms);
      TESSERA_CHECK(c > val.producer, InvalidArgument,
                    "AtomDag.values[{}].consumers[{}] = {} is not after its producer {} "
                    "(atoms must be numbered in topological order)", v, i, c, val.producer);
      TESSERA_CHECK(i == 0 || val.consumers[i - 1] < c, InvalidArgument,
                    "AtomDag.values[{}].consumers must be sorted and unique (entry {} = {})", v, i, c);
    }
  }
}

std::string AtomDag::atom_label(int atom) const {
  if (atom >= 0 && atom < static_cast<int>(atom_names.size()) && !atom_names[atom].empty()) return atom_names[atom];
  return fmt::format("atom {}", atom);
}

std::string placement_problem(const AtomDag& dag, const std::vector<int>& placement, int num_targets) {
  if (static_cast<int>(placement.size()) != dag.num_atoms)
    return fmt::format("placement has {} entries, the model has {} atoms", placement.size(), dag.num_atoms);
  for (size_t a = 0; a < placement.size(); ++a) {
    const int t = placement[a];
    if (t < 0 || (num_targets >= 0 && t >= num_targets)) {
      const std::string label = dag.atom_label(static_cast<int>(a));
      const std::string who = label == fmt::format("atom {}", a) ? "" : fmt::format(" ({})", label);
      if (num_targets >= 0)
        return fmt::format("placement[{}]{} = {} is not a target in [0, {})", a, who, t, num_targets);
      return fmt::format("placement[{}]{} = {} is not a target index (>= 0)", a, who, t);
    }
  }
  return {};
}

void check_placement(const AtomDag& dag, const std::vector<int>& placement, int num_targets) {
  const std::string problem = placement_problem(dag, placement, num_targets);
  TESSERA_CHECK(problem.empty(), InvalidArgument, "{}", problem);
}

void fill_block_io(const AtomDag& dag, std::vector<ScheduledBlock>& blocks) {
  std::vector<int> block_of(static_cast<size_t>(dag.num_atoms), -1);
  for (size_t b = 0; b < blocks.size(); ++b)
    for (int a : blocks[b].atoms) block_of[a] = static_cast<int>(b);
  for (size_t v = 0; v < dag.values.size(); ++v) {
    const DagValue& val = dag.values[v];
    const int pb = val.producer == kModelInput ? -1 : block_of[val.producer];
    bool leaves = val.is_output;
    int last = -2;
    for (int c : val.consumers) {
      const int cb = block_of[c];
      if (cb == pb) continue;
      leaves = true;
      if (cb != last) {
        auto& in = blocks[cb].inputs;
        if (in.empty() || in.back() != static_cast<int>(v)) in.push_back(static_cast<int>(v));
        last = cb;
      }
    }
    if (leaves && pb >= 0) blocks[pb].outputs.push_back(static_cast<int>(v));
  }
}

std::vector<ScheduledBlock> schedule_blocks(const AtomDag& dag, const std::vector<int>& placement) {
  const int n = dag.num_atoms;
  check_placement(dag, placement, -1);
  int num_targets = 0;
  for (int t : placement) num_targets = std::max(num_targets, t + 1);
  // Flat arrays (no per-atom vectors): this runs on every plan.
  std::vector<int> indeg(static_cast<size_t>(n), 0), out_start(static_cast<size_t>(n) + 1, 0);
  for (const DagValue& val : dag.values)
    if (val.producer != kModelInput) {
      out_start[val.producer + 1] += static_cast<int>(val.consumers.size());
      for (int c : val.consumers) ++indeg[c];
    }
  for (int a = 0; a < n; ++a) out_start[a + 1] += out_start[a];
  std::vector<int> out(static_cast<size_t>(out_start[n]));
  {
    std::vector<int> fill(out_start.begin(), out_start.end() - 1);
    for (const DagValue& val : dag.values)
      if (val.producer != kModelInput)
        for (int c : val.consumers) out[fill[val.producer]++] = c;
  }
  using MinHeap = std::priority_queue<int, std::vector<int>, std::greater<int>>;
  std::vector<MinHeap> ready(static_cast<size_t>(num_targets));
  for (int a = 0; a < n; ++a)
    if (indeg[a] == 0) ready[placement[a]].push(a);

  std::vector<ScheduledBlock> blocks;
  int done = 0;
  while (done < n) {
    int cur = -1, best = n;
    for (int t = 0; t < num_targets; ++t)
      if (!ready[t].empty() && ready[t].top() < best) best = ready[t].top(), cur = t;
    TESSERA_CHECK(cur >= 0, InvalidArgument, "AtomDag has a cycle or inconsistent values");
    ScheduledBlock block;
    block.target = cur;
    while (!ready[cur].empty()) {
      const int a = ready[cur].top();
      ready[cur].pop();
      block.atoms.push_back(a);
      ++done;
      for (int i = out_start[a]; i < out_start[a + 1]; ++i)
        if (--indeg[out[i]] == 0) ready[placement[out[i]]].push(out[i]);
    }
    blocks.push_back(std::move(block));
  }
  fill_block_io(dag, blocks);
  return blocks;
}

}  // namespace tessera
