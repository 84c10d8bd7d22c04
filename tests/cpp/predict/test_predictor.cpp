// Predictors without LibTorch: features from a hand-built op graph, and the
// lookup / analytic / xgboost predictors on synthetic samples with a known law.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "tessera/core/error.h"
#include "tessera/predict/features.h"
#include "tessera/predict/predictor.h"

namespace fs = std::filesystem;
namespace pr = tessera::predict;
using tessera::Atom;
using tessera::OpGraph;

namespace {

// x [1,3,8,8] -> conv (w [8,3,3,3], bias [8]) -> y [1,8,4,4] -> relu -> z -> linear (w [10,128]) on flat
OpGraph tiny_graph(std::vector<Atom>& atoms) {
  OpGraph g;
  auto tensor = [&](std::vector<int64_t> shape, int producer) {
    tessera::OpValue v;
    v.id = static_cast<int>(g.values.size());
    v.is_tensor = true;
    v.type = "Tensor";
    v.info.shape = shape;
    v.info.dtype = "float32";
    int64_t n = 1;
    for (auto d : shape) n *= d;
    v.info.bytes = 4 * n;
    v.producer = producer;
    g.values.push_back(v);
    return v.id;
  };
  auto node = [&](const std::string& kind, std::vector<int> in, std::vector<int> out, bool helper) {
    tessera::OpNode n;
    n.id = static_cast<int>(g.nodes.size());
    n.kind = kind;
    n.inputs = in;
    n.outputs = out;
    n.helper = helper;
    g.nodes.push_back(n);
    return n.id;
  };
  int x = tensor({1, 3, 8, 8}, -1);
  int w = tensor({8, 3, 3, 3}, 0);
  node("prim::Constant", {}, {w}, true);
  int b = tensor({8}, 1);
  node("prim::Constant", {}, {b}, true);
  int y = tensor({1, 8, 4, 4}, 2);
  node("aten::_convolution", {x, w, b}, {y}, false);
  int z = tensor({1, 8, 4, 4}, 3);
  node("aten::relu", {y}, {z}, false);
  int f = tensor({1, 128}, 4);
  node("aten::flatten", {z}, {f}, false);
  int fw = tensor({10, 128}, 5);
  node("prim::Constant", {}, {fw}, true);
  int o = tensor({1, 10}, 6);
  node("aten::linear", {f, fw}, {o}, false);
  g.inputs = {x};
  g.outputs = {o};
  auto atom = [&](int id, std::vector<int> nodes, std::vector<int> in, std::vector<int> out, int64_t params) {
    Atom a;
    a.id = id;
    a.nodes = nodes;
    for (int n : nodes) a.op_kinds.push_back(g.nodes[n].kind);
    a.inputs = in;
    a.outputs = out;
    for (int v : out) a.output_bytes += g.values[v].info.bytes;
    a.param_bytes = params;
    atoms.push_back(a);
  };
  atom(0, {2}, {x}, {y}, (8 * 27 + 8) * 4);
  atom(1, {3}, {y}, {z}, 0);
  atom(2, {4}, {z}, {f}, 0);
  atom(3, {6}, {f}, {o}, 1280 * 4);
  return g;
}

// Synthetic atoms of several classes, latency = a known law of FLOPs and bytes (+ noise).
std::vector<pr::Sample> synthetic(int n, unsigned seed, double noise = 0.02, const std::string& cls = "") {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> eps(0, noise);
  const char* kinds[][2] = {{"aten::_convolution", "conv"}, {"aten::linear", "linear"}, {"aten::relu", "eltwise"},
                            {"aten::batch_norm", "norm"}};
  std::vector<pr::Sample> out;
  for (int i = 0; i < n; ++i) {
    pr::Sample s;
    int k = i % 4;
    s.f.model = "m" + std::to_string(seed);
    s.f.atom = i;
    s.f.main_kind = kinds[k][0];
    s.f.op_class = cls.empty() ? kinds[k][1] : cls;
    s.f.kinds = s.f.main_kind;
    s.f.x[pr::kNumOps] = 1;
    s.f.x[pr::kFlops] = s.f.x[pr::kMainFlops] = std::pow(10, 5 + 4 * u(rng));
    s.f.x[pr::kInBytes] = std::pow(10, 4 + 3 * u(rng));
    s.f.x[pr::kOutBytes] = s.f.x[pr::kInBytes];
    s.ctx.threads = 1 + (i / 4) % 2;
    s.ctx.background_load = (i / 8) % 2 ? 0.5 : 0.0;
    double gf = s.f.x[pr::kFlops] * 1e-9, mb = 2 * s.f.x[pr::kInBytes] * 1e-6;
    double rate = k == 0 ? 20.0 : 5.0;  // ms per GFLOP differs per class
    s.ms = (0.01 + rate * gf / s.ctx.threads + 0.3 * mb) * (1 + 0.4 * s.ctx.background_load) * std::exp(eps(rng));
    out.push_back(s);
  }
  return out;
}

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("tessera_pred_" + std::to_string(::getpid()) + "_" + name)).string();
}

}  // namespace

TEST(Features, FlopsAndBytesFromShapes) {
  std::vector<Atom> atoms;
  auto g = tiny_graph(atoms);
  auto f = pr::atom_features(g, atoms, "hash");
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[0].op_class, "conv");
  EXPECT_EQ(f[0].main_kind, "aten::_convolution");
  // 2 * numel(out) * cin/groups * kh * kw + bias
  EXPECT_DOUBLE_EQ(f[0].x[pr::kFlops], 2.0 * 128 * 3 * 9 + 128);
  EXPECT_DOUBLE_EQ(f[0].x[pr::kKernel], 9);
  EXPECT_DOUBLE_EQ(f[0].x[pr::kStride], 2);
  EXPECT_DOUBLE_EQ(f[0].x[pr::kGroups], 1);
  EXPECT_DOUBLE_EQ(f[0].x[pr::kCin], 3);
  EXPECT_DOUBLE_EQ(f[0].x[pr::kCout], 8);
  EXPECT_DOUBLE_EQ(f[0].x[pr::kInBytes], 3 * 64 * 4);
  EXPECT_DOUBLE_EQ(f[0].x[pr::kParamBytes], (8 * 27 + 8) * 4);
  EXPECT_EQ(f[1].op_class, "eltwise");
  EXPECT_DOUBLE_EQ(f[1].x[pr::kFlops], 128);
  EXPECT_EQ(f[2].op_class, "memory");
  EXPECT_EQ(f[3].op_class, "linear");
  EXPECT_DOUBLE_EQ(f[3].x[pr::kFlops], 2.0 * 10 * 128);
  EXPECT_EQ(pr::op_class("aten::relu_"), "eltwise");
  EXPECT_EQ(pr::op_class("aten::something_new"), "other");
}

TEST(Predictor, LookupReturnsMeasuredValuesAndFallsBack) {
  auto train = synthetic(40, 1);
  auto p = pr::make_predictor("lookup");
  p->update(train);
  auto r = p->predict(train);
  for (size_t i = 0; i < train.size(); ++i) {
    EXPECT_DOUBLE_EQ(r.ms[i], train[i].ms);
    EXPECT_EQ(r.fallback[i], 0);
  }
  auto other = synthetic(8, 2);
  auto r2 = p->predict(other);
  for (size_t i = 0; i < other.size(); ++i) {
    EXPECT_EQ(r2.fallback[i], 1);
    EXPECT_GT(r2.ms[i], 0);
  }
}

TEST(Predictor, AnalyticCalibratesFromAFewMeasurements) {
  auto p = pr::make_predictor("analytic");
  auto test = synthetic(200, 4, 0.0);
  auto before = pr::accuracy(test, p->predict(test));  // built-in constants
  p->update(synthetic(200, 3, 0.0));
  auto after = pr::accuracy(test, p->predict(test));
  EXPECT_GT(after.atoms_within, 0.9) << after.mape;
  EXPECT_LT(after.mape, before.mape);
}

TEST(Predictor, XGBoostLearnsAndSavesAndFlagsUnseenOps) {
  auto p = pr::make_predictor("xgboost");
  EXPECT_EQ(p->predict(synthetic(4, 5)).fallback[0], 1);  // untrained: analytic, flagged
  p->update(synthetic(400, 5));
  auto test = synthetic(200, 6);
  auto r = p->predict(test);
  auto acc = pr::accuracy(test, r);
  EXPECT_GT(acc.atoms_within, 0.7) << "mape " << acc.mape;
  EXPECT_EQ(acc.fallbacks, 0);
  // an op kind never seen in training: analytic estimate + flag, no crash
  auto odd = synthetic(4, 7);
  for (auto& s : odd) s.f.main_kind = "aten::never_seen", s.f.op_class = "other";
  auto ro = p->predict(odd);
  for (size_t i = 0; i < odd.size(); ++i) {
    EXPECT_EQ(ro.fallback[i], 1);
    EXPECT_GT(ro.ms[i], 0);
  }
  // save / load gives the same predictions
  auto path = temp_path("xgb.json");
  p->save(path);
  auto q = pr::load_predictor(path);
  EXPECT_EQ(q->kind(), "xgboost");
  auto rq = q->predict(test);
  for (size_t i = 0; i < test.size(); ++i) EXPECT_NEAR(rq.ms[i], r.ms[i], 1e-6 * r.ms[i]);
  // a loaded model keeps learning (new machine: a few samples)
  q->update(synthetic(40, 8));
  EXPECT_EQ(q->predict(test).ms.size(), test.size());
  fs::remove(path);
}

TEST(Predictor, SaveLoadEveryKind) {
  auto train = synthetic(60, 9);
  for (const auto& kind : pr::predictor_kinds()) {
    auto p = pr::make_predictor(kind);
    p->update(train);
    auto path = temp_path(kind + ".json");
    p->save(path);
    auto q = pr::load_predictor(path);
    EXPECT_EQ(q->kind(), kind);
    auto a = p->predict(train), b = q->predict(train);
    for (size_t i = 0; i < train.size(); ++i) EXPECT_NEAR(a.ms[i], b.ms[i], 1e-6 * a.ms[i]) << kind;
    fs::remove(path);
  }
}

TEST(Predictor, BadInputIsRefusedClearly) {
  auto msg = [](auto fn) {
    try {
      fn();
    } catch (const tessera::Error& e) {
      EXPECT_EQ(e.kind(), tessera::ErrorKind::InvalidArgument) << e.what();
      return e.message();
    }
    return std::string("no error");
  };
  EXPECT_NE(msg([] { pr::make_predictor("forest"); }).find("unknown predictor kind 'forest'"), std::string::npos);
  // corrupt files
  auto path = temp_path("corrupt.json");
  { std::ofstream(path) << "{\"format\": \"tessera-predictor/1\", \"kind\": \"xgb"; }
  EXPECT_NE(msg([&] { pr::load_predictor(path); }).find("corrupt"), std::string::npos);
  { std::ofstream(path) << "[1, 2, 3]"; }
  EXPECT_NE(msg([&] { pr::load_predictor(path); }).find("not a tessera predictor"), std::string::npos);
  {
    std::ofstream(path) << R"({"format": "tessera-predictor/1", "kind": "xgboost", "analytic": {"fits": [], "beta": []},
      "xgboost": {"seen_kinds": [], "feature_names": [], "options": {"rounds": 1, "max_depth": 1, "eta": 0.1,
      "subsample": 1, "min_child_weight": 1, "nthread": 1, "seed": 0}}})";
  }
  EXPECT_NE(msg([&] { pr::load_predictor(path); }).find("other features"), std::string::npos);
  fs::remove(path);
  try {
    pr::load_predictor(temp_path("missing.json"));
    FAIL();
  } catch (const tessera::Error& e) {
    EXPECT_EQ(e.kind(), tessera::ErrorKind::NotFound);
  }
  // samples without measurements, bad contexts
  auto s = synthetic(2, 1);
  s[1].ms = -1;
  EXPECT_NE(msg([&] { pr::make_predictor("xgboost")->update(s); }).find("no measured ms"), std::string::npos);
  s = synthetic(2, 1);
  s[0].ctx.threads = 0;
  EXPECT_NE(msg([&] { pr::make_predictor("analytic")->update(s); }).find("threads = 0"), std::string::npos);
  EXPECT_NE(msg([] { pr::make_predictor("xgboost")->update({}); }).find("no samples"), std::string::npos);
  EXPECT_NE(msg([] { pr::make_samples({}, {1, -1}); }).find("load"), std::string::npos);
}

TEST(Predictor, SamplesCsvRoundTrip) {
  auto s = synthetic(10, 11);
  s[0].label = "a,b \"quoted\"";
  auto path = temp_path("samples.csv");
  pr::write_samples_csv(path, s);
  auto back = pr::read_samples_csv(path);
  ASSERT_EQ(back.size(), s.size());
  EXPECT_EQ(back[0].label, s[0].label);
  for (size_t i = 0; i < s.size(); ++i) {
    EXPECT_DOUBLE_EQ(back[i].ms, s[i].ms);
    EXPECT_EQ(back[i].ctx.threads, s[i].ctx.threads);
    EXPECT_EQ(back[i].f.x, s[i].f.x);
  }
  { std::ofstream(path) << "model,label\nx,y\n"; }
  try {
    pr::read_samples_csv(path);
    FAIL();
  } catch (const tessera::Error& e) {
    EXPECT_NE(e.message().find("no column"), std::string::npos);
  }
  fs::remove(path);
}
