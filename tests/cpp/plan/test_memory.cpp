// Device memory as AdaMEC counts it: parameters + the peak of live activations along the
// plan's schedule (plan::activation_peak_bytes), against hand-computed cases and a step-by-step
// recount over random DAGs and placements.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "tessera/core/error.h"
#include "tessera/plan/plan.h"

using namespace tessera;
using namespace tessera::plan;

namespace {
// x -> a0 -> v0 -> a1 -> v1 -> a2 -> y, with a skip edge x -> a2.
AtomDag chain_with_skip() {
  AtomDag d;
  d.num_atoms = 3;
  d.values = {DagValue{kModelInput, {0, 2}, 100, false, "x"}, DagValue{0, {1}, 1000, false, "v0"},
              DagValue{1, {2}, 10, false, "v1"}, DagValue{2, {}, 1, true, "y"}};
  d.param_bytes = {0, 0, 0};
  return d;
}

// The same quantity recounted step by step (not by intervals): at each step, a value counts
// if the target holds it (made there at or before, a model input on target 0, or received by a
// block there that has started) and still needs it (a use there at or after the step, a block
// elsewhere reading it that has not started, or a model output on target 0).
double recount(const AtomDag& d, const std::vector<ScheduledBlock>& blocks, int target) {
  std::vector<int> step(d.num_atoms), blk(d.num_atoms), start(blocks.size()), end(blocks.size());
  int s = 0;
  for (size_t b = 0; b < blocks.size(); ++b) {
    start[b] = s;
    for (int a : blocks[b].atoms) step[a] = s++, blk[a] = static_cast<int>(b);
    end[b] = s;  // one past the block's last step
  }
  double peak = 0;
  for (int i = 0; i < d.num_atoms; ++i) {
    double live = 0;
    for (const DagValue& v : d.values) {
      const bool input = v.producer == kModelInput;
      const int pt = input ? 0 : blocks[blk[v.producer]].target;
      bool held = false, needed = false;
      if (pt == target) {
        held = input || step[v.producer] <= i;
        for (int c : v.consumers) {
          const int ct = blocks[blk[c]].target;
          needed |= ct == target ? step[c] >= i : start[blk[c]] >= i;
        }
        needed |= !input && step[v.producer] == i;
      } else {
        for (int c : v.consumers)
          if (blocks[blk[c]].target == target) {
            held |= start[blk[c]] <= i;
            needed |= step[c] >= i;
          }
        if (v.is_output && target == 0 && (input || end[blk[v.producer]] <= i)) held = true;
        if (!input && v.is_output && target == 0 && end[blk[v.producer]] == d.num_atoms && i == d.num_atoms - 1)
          held = true;  // made by the last block elsewhere: it arrives after the last step
      }
      if (v.is_output && target == 0) needed = true;
      if (held && needed) live += v.bytes;
    }
    peak = std::max(peak, live);
  }
  return peak;
}
}  // namespace

TEST(Memory, AllOnTheDeviceHoldsTheSkipInputAcrossTheChain) {
  const AtomDag d = chain_with_skip();
  const auto blocks = schedule_blocks(d, {0, 0, 0});
  // step 0: x + v0 = 1100; step 1: x + v0 + v1 = 1110; step 2: x + v1 + y = 111
  EXPECT_DOUBLE_EQ(activation_peak_bytes(d, blocks, 0), 1110);
}

TEST(Memory, OffloadingTheBigMiddleFreesTheDevice) {
  const AtomDag d = chain_with_skip();
  // a0 on the server: the device holds x (sent to a0, needed again by a2), then v1 and y.
  const auto blocks = schedule_blocks(d, {1, 1, 0});
  EXPECT_DOUBLE_EQ(activation_peak_bytes(d, blocks, 0), 111);
  EXPECT_DOUBLE_EQ(activation_peak_bytes(d, blocks, 1), 1100);  // x + v0 at a0, then v0 + v1 at a1
  CostModel cm;
  cm.dag = d;
  cm.compute_ms = {{1, 1, 1}, {1, 1, 1}};
  Context ctx;
  ctx.bandwidth_mbps = 10;
  const Plan p = evaluate(cm, ctx, {1, 1, 0});
  EXPECT_DOUBLE_EQ(p.device_activation_bytes, 111);
  EXPECT_NE(p.explain(cm).find("activations at most"), std::string::npos);
}

TEST(Memory, PeakEqualsAStepByStepRecountOnRandomDagsAndPlacements) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    AtomDag d;
    d.num_atoms = 2 + static_cast<int>(rng() % 9);
    std::uniform_real_distribution<double> bytes(0, 1e4);
    d.values.push_back(DagValue{kModelInput, {0}, bytes(rng), false, "x"});
    for (int a = 0; a < d.num_atoms; ++a) {
      DagValue v{a, {}, rng() % 5 == 0 ? 0.0 : bytes(rng), a == d.num_atoms - 1 || rng() % 7 == 0, ""};
      for (int c = a + 1; c < d.num_atoms; ++c)
        if (c == a + 1 || rng() % 4 == 0) v.consumers.push_back(c);
      d.values.push_back(v);
    }
    d.param_bytes.assign(d.num_atoms, 0);
    std::vector<int> placement(d.num_atoms);
    for (int& t : placement) t = static_cast<int>(rng() % 3);
    const auto blocks = schedule_blocks(d, placement);
    for (int t = 0; t < 3; ++t)
      ASSERT_NEAR(activation_peak_bytes(d, blocks, t), recount(d, blocks, t), 1e-6)
          << "trial " << trial << " target " << t;
  }
}

TEST(Memory, BlocksThatDoNotPartitionTheAtomsAreRefused) {
  const AtomDag d = chain_with_skip();
  std::vector<ScheduledBlock> blocks = schedule_blocks(d, {0, 0, 0});
  blocks[0].atoms.pop_back();
  try {
    activation_peak_bytes(d, blocks, 0);
    FAIL() << "expected InvalidArgument";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.message()).find("2 of the DAG's 3 atoms"), std::string::npos) << e.what();
  }
}
