// Split training from C++ (runtime/training.h): trainable atoms, gradients across the cut equal
// one node's, a training server that survives malformed messages, named errors.
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <zmq.hpp>

#include "tessera/runtime/training.h"
#include "tessera/tessera.h"
#include "tessera/transport/message.h"
#include "tessera/transport/wire.h"

namespace {
namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::runtime;

// conv -> batch norm -> relu -> conv (+ skip) -> pool -> linear: every parameter kind of a CNN.
std::string trainable_net() {
  torch::manual_seed(3);
  torch::jit::Module m("TNet");
  m.register_parameter("w1", torch::randn({8, 3, 3, 3}) * 0.3, false);
  m.register_parameter("g1", torch::ones({8}), false);
  m.register_parameter("b1", torch::zeros({8}), false);
  m.register_buffer("mean1", torch::zeros({8}));
  m.register_buffer("var1", torch::ones({8}));
  m.register_parameter("w2", torch::randn({8, 8, 3, 3}) * 0.2, false);
  m.register_parameter("fc", torch::randn({8, 10}) * 0.5, false);
  m.register_parameter("fcb", torch::zeros({10}), false);
  m.define(R"(
    def forward(self, x):
        a = torch.conv2d(x, self.w1, None, [1, 1], [1, 1])
        a = torch.relu(torch.batch_norm(a, self.g1, self.b1, self.mean1, self.var1, False, 0.1, 1e-5, False))
        b = torch.relu(torch.conv2d(a, self.w2, None, [1, 1], [1, 1])) + a
        p = torch.flatten(torch.adaptive_avg_pool2d(b, [1, 1]), 1)
        return torch.matmul(p, self.fc) + self.fcb
  )");
  std::ostringstream os;
  m.save(os);
  return os.str();
}

struct Training : ::testing::Test {
  fs::path dir;
  torch::Tensor x = torch::randn({4, 3, 8, 8});
  torch::Tensor y = torch::tensor({1, 4, 7, 2}, torch::kLong);
  std::unique_ptr<Model> model;
  void SetUp() override {
    at::set_num_threads(1);
    dir = fs::temp_directory_path() / fmt::format("tessera_train_{}", ::getpid());
    fs::remove_all(dir);
    LoadOptions o;
    o.trainable = true;
    model = std::make_unique<Model>(Model::load_bytes(trainable_net(), {x}, o));
    model->save((dir / "net").string());
  }
  void TearDown() override { fs::remove_all(dir); }

  // Eager autograd of the original module: name -> gradient of the batch-mean cross-entropy.
  std::map<std::string, at::Tensor> reference_grads() {
    std::istringstream is(trainable_net());
    auto m = torch::jit::load(is);
    m.eval();
    for (auto p : m.parameters()) p.set_requires_grad(true);
    auto out = m.forward({x}).toTensor();
    torch::nn::functional::cross_entropy(out, y).backward();
    std::map<std::string, at::Tensor> g;
    for (const auto& p : m.named_parameters()) g[p.name] = p.value.grad().clone();
    return g;
  }
};

double rel(const at::Tensor& a, const at::Tensor& b) {
  const double scale = b.abs().max().item<double>();
  return (a - b).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
}

TEST_F(Training, TrainableAtomsKeepEveryParameterApart) {
  std::set<std::string> names;
  for (const auto& a : model->atoms()) names.insert(a.params.begin(), a.params.end());
  // the batch norm's weight (ones) and bias (zeros) stay parameters, not pooled with the buffers
  EXPECT_EQ(names, (std::set<std::string>{"w1", "g1", "b1", "w2", "fc", "fcb"}));
  Model opened = Model::open((dir / "net").string());
  EXPECT_TRUE(opened.trainable());
  EXPECT_TRUE(torch::equal(opened.run({x})[0], model->run({x})[0]));
  Model frozen = Model::load_bytes(trainable_net(), {x});
  EXPECT_FALSE(frozen.trainable());
  EXPECT_TRUE(torch::equal(frozen.run({x})[0], model->run({x})[0]));  // inference unchanged
  EXPECT_THROW(frozen.train_block({0}), Error);
}

TEST_F(Training, OneNodeGradientsEqualEagerAutograd) {
  std::vector<int> all(model->num_atoms());
  std::iota(all.begin(), all.end(), 0);
  TrainingNode node(*model, all, {});
  auto out = node.forward(0, all, {x});
  ASSERT_EQ(out.size(), 1u);
  auto logits = out[0].detach().requires_grad_(true);
  torch::nn::functional::cross_entropy(logits, y).backward();
  node.backward(0, all, {logits.grad()});
  auto ref = reference_grads();
  for (const auto& [name, p] : model->parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    EXPECT_LE(rel(p.grad(), ref.at(name)), 1e-6) << name;
  }
  EXPECT_GT(node.peak_stored_bytes(), 0);
  EXPECT_EQ(node.stored_bytes(), 0);  // the backward freed what the forward kept
  node.discard();
}

TEST_F(Training, SplitOverTwoServersEqualsOneNode) {
  TrainingServer s1((dir / "net").string()), s2((dir / "net").string());
  s1.start();
  s2.start();
  const int n = model->num_atoms();
  ASSERT_GE(n, 5);
  // device, server 1, server 2, device again (the head: labels stay on the device)
  std::vector<int> placement(n, 0);
  for (int a = 1; a < n - 1; ++a) placement[a] = a < n / 2 ? 1 : 2;
  TrainerOptions o;
  o.servers = {s1.endpoint(), s2.endpoint()};
  o.optimizer.lr = 0.1;
  o.micro_batches = 2;
  o.schedule = "1f1b";
  o.keep_gradients = true;
  Model device = Model::open((dir / "net").string(), std::vector<int>{});
  SplitTrainer t(device, placement, o);
  // a prediction through the nodes keeps nothing and equals the model's output
  EXPECT_TRUE(torch::allclose(t.predict({x}), model->run({x})[0], 1e-5, 1e-6));
  auto st = t.step({x}, y);
  EXPECT_EQ(st.version, 1u);
  EXPECT_GT(st.bytes_sent, 0u);
  auto ref = reference_grads();
  auto grads = t.gradients();
  ASSERT_EQ(grads.size(), ref.size());
  for (const auto& [name, g] : grads) EXPECT_LE(rel(g, ref.at(name)), 1e-5) << name;
  // plain SGD: w1 = w0 - lr g, gathered from the nodes
  std::map<std::string, at::Tensor> w0;
  for (const auto& [name, p] : model->parameters()) w0[name] = p.detach();
  for (const auto& [name, w] : t.state_dict())
    EXPECT_LE(rel(w, w0.at(name) - 0.1 * ref.at(name)), 1e-5) << name;
  EXPECT_EQ(s1.stats().commits, 1u);
  EXPECT_EQ(s2.stats().version, 1u);
}

TEST_F(Training, NamedErrors) {
  Model frozen = Model::load_bytes(trainable_net(), {x});
  frozen.save((dir / "frozen").string());
  EXPECT_THROW(TrainingServer((dir / "frozen").string()), Error);
  TrainerOptions o;
  o.optimizer.kind = "rmsprop";
  try {
    SplitTrainer t(*model, std::vector<int>(model->num_atoms(), 0), o);
    FAIL() << "an unknown optimizer was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rmsprop"), std::string::npos) << e.what();
  }
  o.optimizer.kind = "sgd";
  SplitTrainer t(*model, std::vector<int>(model->num_atoms(), 0), o);
  EXPECT_THROW(t.step({x}, y.to(torch::kFloat)), Error);       // labels: int64 class ids
  EXPECT_THROW(t.step({x}, y.slice(0, 0, 2)), Error);          // labels: one per sample
  EXPECT_EQ(t.step({x}, y).version, 1u);                       // and then it trains
}

TEST_F(Training, TheServerSurvivesMalformedMessages) {
  TrainingServer s((dir / "net").string());
  s.start();
  zmq::context_t ctx;
  zmq::socket_t d(ctx, zmq::socket_type::dealer);
  d.set(zmq::sockopt::linger, 0);
  d.set(zmq::sockopt::rcvtimeo, 5000);
  d.connect(s.endpoint());
  auto ask = [&](const std::string& body, transport::MsgType type = transport::MsgType::Train) {
    transport::Header h;
    h.type = type;
    h.request_id = 7;
    h.model_hash = transport::hash_from_hex(model->hash());
    transport::send_message(d, h, body, {}, true);
    std::vector<zmq::message_t> frames;
    EXPECT_TRUE(transport::receive(d, frames));
    return transport::decode_message(frames, 1, 1u << 20);
  };
  // garbage frames: no answer can be decoded from them, but the server goes on
  d.send(zmq::str_buffer(""), zmq::send_flags::sndmore);
  d.send(zmq::str_buffer("not a tessera message"), zmq::send_flags::none);
  std::vector<zmq::message_t> frames;
  ASSERT_TRUE(transport::receive(d, frames));
  for (const auto& [body, what] : std::vector<std::pair<std::string, std::string>>{
           {"{not json", "not JSON"},
           {"{\"op\": \"fly\"}", "unknown training command 'fly'"},
           {"{\"op\": \"forward\", \"session\": \"x\", \"mb\": 0, \"block\": [0]}", "is not open here"},
           {"{\"op\": \"open\", \"session\": \"s\", \"atoms\": [999], \"optimizer\": {}}", "command 'open'"}}) {
    auto r = ask(body);
    EXPECT_EQ(r.header.type, transport::MsgType::Error) << body;
    EXPECT_NE(r.body.find(what), std::string::npos) << r.body;
  }
  auto ok = ask("{\"op\": \"status\"}");
  EXPECT_EQ(ok.header.type, transport::MsgType::TrainReply);
  EXPECT_NE(ok.body.find("\"version\":0"), std::string::npos) << ok.body;
  EXPECT_GE(s.stats().errors, 5u);
}

}  // namespace
