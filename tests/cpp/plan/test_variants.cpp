// Accuracy-aware variants in the plan layer (torch-free): wire codecs priced into the cost
// model (every planner sees smaller bytes and the encode/decode time), the selector's
// choice against brute force over random candidates and contexts, and its named errors.
#include <gtest/gtest.h>

#include <random>

#include "tessera/core/codec.h"
#include "tessera/core/error.h"
#include "tessera/plan/planners.h"
#include "tessera/plan/plan.h"
#include "tessera/plan/variants.h"

using namespace tessera;
using namespace tessera::plan;

namespace {
// A chain of n atoms whose values are float32 [1, C, H, W] tensors (the input is big).
CostModel chain(int n, std::mt19937& rng) {
  CostModel cm;
  cm.dag.num_atoms = n;
  std::uniform_real_distribution<double> u(0.1, 5.0);
  DagValue in;
  in.producer = kModelInput;
  in.consumers = {0};
  in.bytes = 4 * 3 * 64 * 64;
  in.dtype = "float32";
  in.rank = 4;
  cm.dag.values.push_back(in);
  for (int a = 0; a < n; ++a) {
    DagValue v;
    v.producer = a;
    if (a + 1 < n) v.consumers = {a + 1};
    v.is_output = a + 1 == n;
    v.bytes = 4.0 * static_cast<int>(1000 * u(rng));
    v.dtype = a == 2 ? "int64" : "float32";  // one value no lossy codec touches
    v.rank = 4;
    cm.dag.values.push_back(v);
  }
  cm.compute_ms = {std::vector<double>(n), std::vector<double>(n)};
  for (int a = 0; a < n; ++a) cm.compute_ms[0][a] = u(rng), cm.compute_ms[1][a] = u(rng) / 10;
  return cm;
}
}  // namespace

TEST(Variants, WithCodecPricesBytesAndTime) {
  std::mt19937 rng(1);
  auto cm = chain(6, rng);
  auto q = with_codec(cm, "int8", CodecCost{0.5, 0.25, 1});
  for (size_t v = 0; v < cm.dag.values.size(); ++v) {
    const auto& a = cm.dag.values[v];
    const auto& b = q.dag.values[v];
    if (a.dtype == "float32") {
      EXPECT_DOUBLE_EQ(b.bytes, a.bytes / 4);
      EXPECT_EQ(b.codec, "int8");
      EXPECT_NEAR(b.codec_ms, 0.75 * a.bytes / 1e6, 1e-12);
    } else {
      EXPECT_EQ(b.bytes, a.bytes);
      EXPECT_EQ(b.codec, "");
      EXPECT_EQ(b.codec_ms, 0);
    }
  }
  // evaluate() and the min cut see the same prices, and the transfers name the codec.
  Context ctx;
  ctx.bandwidth_mbps = 2;
  ctx.rtt_ms = 4;
  std::vector<int> p = {0, 0, 1, 1, 1, 1};
  auto pl = evaluate(q, ctx, p);
  ASSERT_EQ(pl.transfers.size(), 2u);
  for (const auto& tr : pl.transfers) {
    EXPECT_EQ(tr.codec, "int8");
    const auto& v = q.dag.values[tr.value];
    EXPECT_NEAR(tr.ms, v.bytes * 8e-3 / 2 + 2 + v.codec_ms, 1e-9);
  }
  CutCosts cc;
  cut_costs(q, ctx, objective_weights(ctx), cc);
  EXPECT_NEAR(cut_value(q.dag, cc, p), pl.latency_ms, 1e-9);
  // The codec moves the optimal split at low bandwidth (bytes / 4): never slower than raw.
  for (double bw : {0.5, 2.0, 20.0, 200.0}) {
    ctx.bandwidth_mbps = bw;
    auto raw = evaluate(cm, ctx, make_plan("mincut", cm, ctx).placement);
    auto coded = evaluate(q, ctx, make_plan("mincut", q, ctx).placement);
    EXPECT_LE(coded.latency_ms, raw.latency_ms + 0.75 * 1e-6 * 4 * 3 * 64 * 64 * 8 + 1e-9) << bw;
  }
  auto zs = with_codec(cm, "zstd", CodecCost{1, 1, 0.6});
  EXPECT_DOUBLE_EQ(zs.dag.values[3].bytes, cm.dag.values[3].bytes * 0.6);  // zstd: the int64 value too
  EXPECT_EQ(with_codec(cm, "raw", {}).dag.values[0].codec, "");
  EXPECT_THROW(with_codec(cm, "int4", {}), Error);
  EXPECT_THROW(with_codec(cm, "fp16", CodecCost{-1, 0, 1}), Error);
}

TEST(Variants, SelectorMatchesBruteForce) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<VariantCandidate> cs(1 + rng() % 12);
    for (size_t i = 0; i < cs.size(); ++i) {
      auto& c = cs[i];
      c.variant = static_cast<int>(i % 4);
      c.name = "v" + std::to_string(i);
      c.loss = (rng() % 5) * 0.005;
      c.device_ms = 50 * u(rng);
      c.server_ms = 10 * u(rng);
      c.bytes = 1e6 * u(rng);
      c.codec_ms = u(rng);
      c.transfers = static_cast<int>(rng() % 3);
      c.device_memory_bytes = 1e7 * u(rng);
      c.energy_mj = 100 * u(rng);
    }
    VariantSelector sel(cs);
    Context ctx;
    ctx.bandwidth_mbps = 0.1 + 50 * u(rng);
    ctx.rtt_ms = 40 * u(rng);
    ctx.device_load = 1 + 3 * u(rng);
    ctx.server_load = 1 + u(rng);
    if (trial % 3 == 0) ctx.device_memory_budget_bytes = 1e7 * u(rng);
    if (trial % 4 == 0) ctx.objective = Objective::Energy;
    const double budget = (rng() % 5) * 0.005;
    // brute force
    int best = -1;
    double best_obj = 1e300, best_lat = 1e300;
    for (size_t i = 0; i < cs.size(); ++i) {
      const auto& c = cs[i];
      if (c.loss > budget || c.device_memory_bytes > ctx.device_memory_budget_bytes) continue;
      const double lat = c.device_ms * ctx.device_load + c.server_ms * ctx.server_load +
                         c.bytes * 8e-3 / ctx.bandwidth_mbps + c.transfers * ctx.rtt_ms / 2 + c.codec_ms;
      const double obj = ctx.objective == Objective::Energy ? c.energy_mj : lat;
      if (obj < best_obj || (obj == best_obj && lat < best_lat)) best = static_cast<int>(i), best_obj = obj, best_lat = lat;
    }
    if (best < 0) {
      EXPECT_THROW(sel.select(ctx, budget), Error);
      continue;
    }
    auto ch = sel.select(ctx, budget);
    EXPECT_NEAR(ch.objective, best_obj, 1e-9 * std::max(1.0, best_obj)) << trial;
    EXPECT_LE(cs[ch.index].loss, budget);
    EXPECT_FALSE(ch.why.empty());
  }
}

TEST(Variants, NamedErrorsWhenNothingMeetsTheBudget) {
  VariantCandidate a, b;
  a.name = "int8";
  a.loss = 0.03;
  a.device_memory_bytes = 100;
  b.name = "prune50";
  b.loss = 0.021;
  b.device_memory_bytes = 500;
  VariantSelector sel({a, b});
  Context ctx;
  ctx.bandwidth_mbps = 1;
  try {
    sel.select(ctx, 0.01);
    ADD_FAILURE() << "a budget no variant meets was accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("least loss available is 2.1% (prune50)"), std::string::npos) << e.message();
  }
  ctx.device_memory_budget_bytes = 50;
  try {
    sel.select(ctx, 0.05);
    ADD_FAILURE() << "candidates that fit in no memory were accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("none fits in 50 bytes"), std::string::npos) << e.message();
  }
  ctx.device_memory_budget_bytes = 200;
  EXPECT_EQ(sel.select(ctx, 0.05).index, 0);
  EXPECT_DOUBLE_EQ(sel.best_loss(), 0.021);
  a.loss = -1;
  EXPECT_THROW(VariantSelector({a}), Error);
  EXPECT_THROW(VariantSelector({}), Error);
}

TEST(Variants, CandidateFromPlanReproducesTheLatency) {
  std::mt19937 rng(3);
  auto cm = with_codec(chain(7, rng), "fp16", CodecCost{0.1, 0.1, 1});
  Context ctx;
  ctx.bandwidth_mbps = 3;
  ctx.rtt_ms = 10;
  for (int k = 0; k <= 7; ++k) {
    std::vector<int> p(7, 1);
    for (int a = 0; a < k; ++a) p[a] = 0;
    auto pl = evaluate(cm, ctx, p);
    auto c = candidate_from_plan(0, "wire_fp16", pl, 0.001);
    for (double bw : {0.5, 3.0, 30.0}) {
      Context c2 = ctx;
      c2.bandwidth_mbps = bw;
      c2.device_load = 2;
      EXPECT_NEAR(c.latency_ms(c2), evaluate(cm, c2, p).latency_ms, 1e-9) << k << " " << bw;
    }
  }
}
