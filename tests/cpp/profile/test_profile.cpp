// Profiler in C++: a small TorchScript module defined here is profiled; the table
// has one median per atom, the whole model beside them, and bad options are refused.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>
#include <sstream>
#include <thread>

#include "tessera/predict/predictor.h"
#include "tessera/profile/profile.h"
#include "tessera/tessera.h"

namespace {

tessera::Model small_net(at::Tensor& x) {
  torch::manual_seed(0);
  torch::jit::Module m("SmallNet");
  m.register_parameter("w1", torch::randn({16, 3, 3, 3}), false);
  m.register_parameter("w2", torch::randn({16, 16, 3, 3}), false);
  m.register_parameter("fc", torch::randn({10, 16}), false);
  m.define(R"(
    def forward(self, x):
        a = torch.relu(torch.conv2d(x, self.w1, None, [1, 1], [1, 1]))
        b = torch.conv2d(a, self.w2, None, [2, 2], [1, 1])
        p = torch.flatten(torch.adaptive_avg_pool2d(torch.relu(b), [1, 1]), 1)
        return torch.linear(p, self.fc)
  )");
  std::ostringstream os;
  m.save(os);
  x = torch::randn({1, 3, 32, 32});
  return tessera::Model::load_bytes(os.str(), {x});
}

}  // namespace

TEST(Profile, MeasuresEveryAtomAndTheWholeModel) {
  at::Tensor x;
  auto m = small_net(x);
  int calls = 0, last_total = 0;
  const int before = at::get_num_threads();
  auto t = tessera::profile::profile(m, {x}, {1, 5, 2, 0.0}, [&](int done, int total) {
    ++calls;
    EXPECT_EQ(done, calls);
    last_total = total;
  });
  EXPECT_EQ(at::get_num_threads(), before);  // restored
  EXPECT_EQ(calls, 7);
  EXPECT_EQ(last_total, 7);
  ASSERT_EQ(t.num_atoms(), m.num_atoms());
  EXPECT_EQ(t.model_hash, m.hash());
  EXPECT_EQ(t.threads, 1);
  for (int a = 0; a < t.num_atoms(); ++a) {
    EXPECT_GT(t.atom_ms[a], 0) << "atom " << a;
    EXPECT_LE(t.atom_q1_ms[a], t.atom_ms[a]);
    EXPECT_GE(t.atom_q3_ms[a], t.atom_ms[a]);
    EXPECT_EQ(t.param_bytes[a], m.atoms()[a].param_bytes);
  }
  EXPECT_GT(t.model_ms, 0);
  EXPECT_GT(t.sum_atom_ms(), 0);
  EXPECT_EQ(t.value_bytes.size(), m.graph().values.size());
  EXPECT_EQ(t.value_bytes[m.graph().inputs[0]], 3 * 32 * 32 * 4);
  EXPECT_NE(t.summary(m.atoms(), 3).find("whole model"), std::string::npos);
  // JSON round trip
  auto back = tessera::profile::CostTable::from_json(t.to_json());
  EXPECT_EQ(back.atom_ms, t.atom_ms);
  EXPECT_EQ(back.model_ms, t.model_ms);
  EXPECT_THROW(tessera::profile::CostTable::from_json("{\"format\": \"x\"}"), tessera::Error);
  EXPECT_THROW(tessera::profile::CostTable::read("/nonexistent/table.json"), tessera::Error);
}

TEST(Profile, RefusesBadOptions) {
  at::Tensor x;
  auto m = small_net(x);
  auto kind_of = [&](tessera::profile::ProfileOptions o) {
    try {
      tessera::profile::profile(m, {x}, o);
    } catch (const tessera::Error& e) {
      return std::string(tessera::error_kind_name(e.kind())) + ": " + e.message();
    }
    return std::string("no error");
  };
  EXPECT_NE(kind_of({1, 0, 0, 0}).find("repeats = 0"), std::string::npos);
  EXPECT_NE(kind_of({1, -3, 0, 0}).find("repeats = -3"), std::string::npos);
  EXPECT_NE(kind_of({1, 1, -1, 0}).find("warmup = -1"), std::string::npos);
  int hw = static_cast<int>(std::thread::hardware_concurrency());
  EXPECT_NE(kind_of({hw + 1, 1, 0, 0}).find("hardware threads"), std::string::npos);
  EXPECT_NE(kind_of({1, 1, 0, -1}).find("load"), std::string::npos);
  EXPECT_THROW(tessera::profile::profile(m, {torch::randn({1, 3, 8, 8})}, {}), tessera::Error);
}

TEST(Profile, FeedsThePredictors) {
  at::Tensor x;
  auto m = small_net(x);
  auto t = tessera::profile::profile(m, {x}, {1, 3, 1, 0.0});
  namespace pr = tessera::predict;
  auto feats = pr::atom_features(m.graph(), m.atoms(), m.hash());
  auto samples = pr::make_samples(feats, {1, 0}, t.atom_ms, "small");
  auto lookup = pr::make_predictor("lookup");
  lookup->update(samples);
  auto p = lookup->predict(samples);
  for (size_t i = 0; i < samples.size(); ++i) EXPECT_DOUBLE_EQ(p.ms[i], t.atom_ms[i]);
  // the first conv: 2 * (16*32*32) * 3 * 9 FLOPs
  EXPECT_EQ(feats[0].op_class, "conv");
  EXPECT_DOUBLE_EQ(feats[0].x[pr::kFlops], 2.0 * 16 * 32 * 32 * 27);
}

// Machine-state gating: rounds outside the canary's reference state are run again
// (up to the cap, then the table says so); inside it nothing is discarded.
TEST(Profile, SettleDiscardsRoundsOutsideTheReferenceState) {
  at::Tensor x;
  auto m = small_net(x);
  namespace pf = tessera::profile;
  const int threads_before = at::get_num_threads();
  const double c = pf::canary_ms(3);
  EXPECT_GT(c, 0);
  EXPECT_EQ(at::get_num_threads(), threads_before);  // runs at 1 thread, restores the caller's
  EXPECT_THROW(pf::canary_ms(0), tessera::Error);
  // a reference no machine meets: every timed round is discarded until the cap
  pf::ProfileOptions never{1, 4, 1, 0.0, 0.1, 1e-9, 5, 300};  // waits at most 0.3 s in all
  int last_done = 0;
  auto t = pf::profile(m, {x}, never, [&](int done, int) { last_done = done; });
  EXPECT_EQ(t.rounds_discarded, 5);
  EXPECT_FALSE(t.settled);
  EXPECT_EQ(last_done, 5);  // warmup + repeats counted rounds, discarded ones not reported
  EXPECT_GT(t.canary_ms, 0);
  EXPECT_DOUBLE_EQ(t.canary_reference_ms, 1e-9);
  EXPECT_GE(t.waited_ms, 300);  // polled until the wait budget ran out
  EXPECT_LT(t.waited_ms, 60000);  // it gave up (generous: ctest runs tests side by side)
  for (double ms : t.atom_ms) EXPECT_GT(ms, 0);
  EXPECT_NE(t.summary().find("NOT reached"), std::string::npos);
  // a reference every machine meets: nothing discarded
  auto u = pf::profile(m, {x}, {1, 4, 1, 0.0, 0.1, 1e9, 5});
  EXPECT_EQ(u.rounds_discarded, 0);
  EXPECT_TRUE(u.settled);
  // reference measured here (fastest of 5 canaries) when none is given
  auto v = pf::profile(m, {x}, {1, 2, 0, 0.0, 1e6});
  EXPECT_GT(v.canary_reference_ms, 0);
  EXPECT_EQ(v.rounds_discarded, 0);  // canary within 10^6 x its own best, even beside other tests
  // off: no canary at all
  auto w = pf::profile(m, {x}, {1, 2, 0, 0.0});
  EXPECT_EQ(w.canary_reference_ms, 0);
  EXPECT_EQ(w.canary_ms, 0);
  // the state survives JSON
  auto back = pf::CostTable::from_json(t.to_json());
  EXPECT_EQ(back.rounds_discarded, 5);
  EXPECT_DOUBLE_EQ(back.waited_ms, t.waited_ms);
  EXPECT_FALSE(back.settled);
  EXPECT_DOUBLE_EQ(back.canary_ms, t.canary_ms);
  // bad settle options are named
  auto message = [&](pf::ProfileOptions o) {
    try {
      pf::profile(m, {x}, o);
    } catch (const tessera::Error& e) {
      return e.message();
    }
    return std::string("no error");
  };
  EXPECT_NE(message({1, 1, 0, 0.0, -0.5}).find("settle = -0.5"), std::string::npos);
  EXPECT_NE(message({1, 1, 0, 0.0, 0.1, -1}).find("reference_ms = -1"), std::string::npos);
  EXPECT_NE(message({1, 1, 0, 0.0, 0.1, 0, -2}).find("max_discarded = -2"), std::string::npos);
  EXPECT_NE(message({1, 1, 0, 0.0, 0.1, 0, -1, -5}).find("max_wait_ms = -5"), std::string::npos);
}
