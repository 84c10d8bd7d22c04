// Atoms layer in C++: a real TorchScript module (defined from source here, so the
// test needs no Python) is frozen, atomized, saved, reopened, combined and run.
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "tessera/tessera.h"

namespace fs = std::filesystem;

namespace {

// A small DAG: two convolution branches, a skip add, concat, pooling, linear and
// a tuple of two outputs.
std::string skip_net_bytes() {
  torch::manual_seed(0);
  torch::jit::Module m("SkipNet");
  m.register_parameter("w1", torch::randn({8, 3, 3, 3}), false);
  m.register_parameter("w2", torch::randn({8, 8, 3, 3}), false);
  m.register_parameter("w3", torch::randn({8, 3, 1, 1}), false);
  m.register_parameter("fc", torch::randn({10, 16}), false);
  m.define(R"(
    def forward(self, x):
        a = torch.relu(torch.conv2d(x, self.w1, None, [1, 1], [1, 1]))
        b = torch.conv2d(a, self.w2, None, [1, 1], [1, 1])
        c = torch.conv2d(x, self.w3)
        s = torch.relu(b + c)
        cat = torch.cat([s, a], 1)
        p = torch.flatten(torch.adaptive_avg_pool2d(cat, [1, 1]), 1)
        return torch.matmul(p, self.fc.t()), s.sum()
  )");
  std::ostringstream os;
  m.save(os);
  return os.str();
}

std::string temp_dir(const std::string& name) {
  auto p = fs::temp_directory_path() / fmt::format("tessera_test_{}_{}", name, ::getpid());
  fs::remove_all(p);
  return p.string();
}

}  // namespace

TEST(Model, AtomizesIntoTensorBoundedAtoms) {
  auto x = torch::randn({1, 3, 8, 8});
  auto m = tessera::Model::load_bytes(skip_net_bytes(), {x});
  EXPECT_GE(m.num_atoms(), 8);
  for (const auto& a : m.atoms()) {
    for (int v : a.inputs) EXPECT_TRUE(m.graph().values[v].is_tensor) << "atom " << a.id;
    for (int v : a.outputs) EXPECT_TRUE(m.graph().values[v].is_tensor) << "atom " << a.id;
  }
  // shapes recorded from the example run
  const auto& in = m.graph().values[m.graph().inputs[0]];
  EXPECT_EQ(in.info.shape, (std::vector<int64_t>{1, 3, 8, 8}));
  EXPECT_EQ(in.info.bytes, 3 * 8 * 8 * 4);
  EXPECT_EQ(m.graph().output_structure, "T(0,1)");
  // cat's list of tensors is a non-tensor edge: cat and its list are one atom
  bool cat_found = false;
  for (const auto& a : m.atoms())
    for (const auto& k : a.op_kinds)
      if (k == "aten::cat") cat_found = true;
  EXPECT_TRUE(cat_found);
  // weights are counted once per atom that holds them
  int64_t params = 0;
  for (const auto& a : m.atoms()) params += a.param_bytes;
  EXPECT_EQ(params, (8 * 3 * 9 + 8 * 8 * 9 + 8 * 3 + 10 * 16) * 4);
}

TEST(Model, EverySplitMatchesTheWholeModel) {
  auto bytes = skip_net_bytes();
  std::istringstream is(bytes);
  auto orig = torch::jit::load(is);
  auto x = torch::randn({1, 3, 8, 8});
  auto m = tessera::Model::load_bytes(bytes, {x});
  auto ref = orig.forward({x}).toTuple()->elements();
  auto whole = m.run({x});
  ASSERT_EQ(whole.size(), 2u);
  EXPECT_TRUE(torch::allclose(whole[0], ref[0].toTensor(), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(whole[1], ref[1].toTensor(), 1e-4, 1e-5));
  std::mt19937 rng(7);
  for (int trial = 0; trial < 30; ++trial) {
    std::vector<int> placement(m.num_atoms());
    for (auto& p : placement) p = static_cast<int>(rng() % 2);
    auto y = m.run({x}, placement);
    for (size_t i = 0; i < y.size(); ++i) EXPECT_TRUE(torch::equal(y[i], whole[i])) << "trial " << trial;
  }
}

TEST(Model, CombineRefusesNonConvexSets) {
  auto x = torch::randn({1, 3, 8, 8});
  auto m = tessera::Model::load_bytes(skip_net_bytes(), {x});
  // atom 0 and the last atom with nothing between: not convex
  try {
    m.combine({0, m.num_atoms() - 1});
    FAIL() << "expected an error";
  } catch (const tessera::Error& e) {
    EXPECT_EQ(e.kind(), tessera::ErrorKind::InvalidArgument);
    EXPECT_NE(e.message().find("not convex"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("[0, "), std::string::npos) << e.message();
  }
  EXPECT_THROW(m.combine({m.num_atoms()}), tessera::Error);
  // a convex prefix runs and returns its outputs
  auto b = m.combine({0, 1});
  EXPECT_EQ(b.atoms(), (std::vector<int>{0, 1}));
}

TEST(Store, SaveOpenPartialAndTamper) {
  auto x = torch::randn({1, 3, 8, 8});
  auto m = tessera::Model::load_bytes(skip_net_bytes(), {x});
  auto dir = temp_dir("store");
  m.save(dir);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "manifest.json"));
  EXPECT_THROW(m.save(dir), tessera::Error);  // exists, no overwrite
  auto part = tessera::Model::open(dir, std::vector<int>{0, 1});
  EXPECT_EQ(part.loaded_atoms(), (std::vector<int>{0, 1}));
  EXPECT_EQ(part.hash(), m.hash());
  auto y = part.run({x});  // loads the rest on demand
  auto ref = m.run({x});
  EXPECT_TRUE(torch::equal(y[0], ref[0]));
  EXPECT_EQ(part.loaded_atoms().size(), static_cast<size_t>(m.num_atoms()));
  // truncate one atom file: refused by name
  auto file = fs::path(dir) / m.atoms()[2].file;
  fs::resize_file(file, fs::file_size(file) / 2);
  auto again = tessera::Model::open(dir, std::vector<int>{0});
  try {
    again.run({x});
    FAIL() << "expected an error";
  } catch (const tessera::Error& e) {
    EXPECT_NE(e.message().find(m.atoms()[2].file), std::string::npos) << e.message();
  }
  fs::remove_all(dir);
}

TEST(Errors, MissingAndBadFilesAreNamed) {
  auto x = torch::randn({1, 3, 8, 8});
  try {
    tessera::Model::load("/nonexistent/model.pt", {x});
    FAIL();
  } catch (const tessera::Error& e) {
    EXPECT_EQ(e.kind(), tessera::ErrorKind::NotFound);
    EXPECT_NE(e.message().find("/nonexistent/model.pt"), std::string::npos);
  }
  auto dir = temp_dir("bad");
  fs::create_directories(dir);
  auto bad = (fs::path(dir) / "not_a_model.pt").string();
  std::ofstream(bad) << "hello";
  try {
    tessera::Model::load(bad, {x});
    FAIL();
  } catch (const tessera::Error& e) {
    EXPECT_EQ(e.kind(), tessera::ErrorKind::InvalidArgument);
    EXPECT_NE(e.message().find(bad), std::string::npos);
  }
  // wrong example shape: the model fails on it, the error names the signature
  try {
    tessera::Model::load_bytes(skip_net_bytes(), {torch::randn({1, 5, 8, 8})});
    FAIL();
  } catch (const tessera::Error& e) {
    EXPECT_NE(e.message().find("1x5x8x8"), std::string::npos) << e.message();
  }
  fs::remove_all(dir);
}
