// Runtime in C++: wire codec checks, a real server on loopback, a device
// deployment whose split runs equal the whole model, fallback when the server
// goes away, malformed messages answered with errors.
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>
#include <sstream>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "tessera/runtime/deployment.h"
#include "tessera/runtime/server.h"
#include "tessera/runtime/wire.h"
#include "tessera/tessera.h"

namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::runtime;

namespace {

std::string net_bytes() {
  torch::manual_seed(1);
  torch::jit::Module m("Net");
  m.register_parameter("w1", torch::randn({8, 3, 3, 3}), false);
  m.register_parameter("w2", torch::randn({8, 8, 3, 3}), false);
  m.register_parameter("fc", torch::randn({10, 8}), false);
  m.define(R"(
    def forward(self, x):
        a = torch.relu(torch.conv2d(x, self.w1, None, [1, 1], [1, 1]))
        b = torch.relu(torch.conv2d(a, self.w2, None, [1, 1], [1, 1])) + a
        p = torch.flatten(torch.adaptive_avg_pool2d(b, [1, 1]), 1)
        return torch.matmul(p, self.fc.t())
  )");
  std::ostringstream os;
  m.save(os);
  return os.str();
}

struct Fixture : ::testing::Test {
  fs::path repo;
  std::unique_ptr<Model> model;
  torch::Tensor x = torch::randn({1, 3, 8, 8});
  void SetUp() override {
    at::set_num_threads(1);
    repo = fs::temp_directory_path() / fmt::format("tessera_rt_{}", ::getpid());
    fs::remove_all(repo);
    model = std::make_unique<Model>(Model::load_bytes(net_bytes(), {x}));
    model->save((repo / "net").string());
  }
  void TearDown() override { fs::remove_all(repo); }
  ServerOptions options() const {
    ServerOptions o;
    o.repository = repo.string();
    o.bind = "tcp://127.0.0.1:*";
    return o;
  }
};

}  // namespace

TEST(Wire, HeaderRoundTripAndChecks) {
  Header h;
  h.type = MsgType::Reply;
  h.request_id = 42;
  h.tensor_count = 2;
  h.server_ms = 1.5;
  auto s = encode_header(h);
  ASSERT_EQ(s.size(), kHeaderBytes);
  auto d = decode_header(s.data(), s.size());
  EXPECT_EQ(d.request_id, 42u);
  EXPECT_EQ(d.type, MsgType::Reply);
  EXPECT_DOUBLE_EQ(d.server_ms, 1.5);
  EXPECT_THROW(decode_header(s.data(), 40), Error);
  auto bad = s;
  bad[0] = 'X';
  EXPECT_THROW(decode_header(bad.data(), bad.size()), Error);
  TensorDesc t{dtype_code("float32"), {2, 3}, 24};
  auto ds = encode_descs({t});
  EXPECT_EQ(decode_descs(ds.data(), ds.size(), 1, 1 << 20)[0].dims, (std::vector<int64_t>{2, 3}));
  t.nbytes = 25;  // a lie
  ds = encode_descs({t});
  EXPECT_THROW(decode_descs(ds.data(), ds.size(), 1, 1 << 20), Error);
  EXPECT_THROW(decode_descs(ds.data(), ds.size(), 2, 1 << 20), Error);
}

TEST_F(Fixture, RemoteSplitsEqualTheWholeModel) {
  Server srv(options());
  srv.start();
  DeploymentOptions o;
  o.server = srv.endpoint();
  o.timeout_ms = 5000;
  auto whole = model->run({x});
  const int A = model->num_atoms();
  std::vector<std::vector<int>> plans = {std::vector<int>(A, 0), std::vector<int>(A, 1)};
  std::vector<int> alt(A);
  for (int i = 0; i < A; ++i) alt[i] = (i / 2) % 2;
  plans.push_back(alt);
  Deployment dep(*model, plans[0], o);
  for (const auto& p : plans) {
    dep.set_placement(p);
    auto y = dep.run({x});
    EXPECT_TRUE(torch::equal(y[0], whole[0]));
    EXPECT_FALSE(dep.last_timeline().fallback) << dep.last_timeline().blocks.back().error;
  }
  int remote = 0;
  for (const auto& b : dep.last_timeline().blocks) remote += b.remote;
  EXPECT_GE(remote, 1);
  EXPECT_NE(dep.ping().find("\"requests\""), std::string::npos);
  EXPECT_GE(srv.stats().replies, 3u);
}

TEST_F(Fixture, FallsBackWhenTheServerStops) {
  auto srv = std::make_unique<Server>(options());
  srv->start();
  DeploymentOptions o;
  o.server = srv->endpoint();
  o.timeout_ms = 300;
  o.retry_ms = 0;
  Deployment dep(*model, std::vector<int>(model->num_atoms(), 1), o);
  auto whole = model->run({x});
  EXPECT_TRUE(torch::equal(dep.run({x})[0], whole[0]));
  EXPECT_FALSE(dep.last_timeline().fallback);
  srv->stop();
  EXPECT_TRUE(torch::equal(dep.run({x})[0], whole[0]));
  EXPECT_TRUE(dep.last_timeline().fallback);
  EXPECT_FALSE(dep.last_timeline().blocks[0].error.empty());
}

TEST_F(Fixture, MalformedRequestsGetErrorReplies) {
  Server srv(options());
  srv.start();
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::req);
  s.set(zmq::sockopt::rcvtimeo, 5000);
  s.connect(srv.endpoint());
  auto ask = [&](std::vector<std::string> frames) {
    std::vector<zmq::const_buffer> bufs;
    for (auto& f : frames) bufs.push_back(zmq::buffer(f));
    zmq::send_multipart(s, bufs);
    std::vector<zmq::message_t> reply;
    EXPECT_TRUE(zmq::recv_multipart(s, std::back_inserter(reply)));
    auto h = decode_header(reply.at(0).data(), reply.at(0).size());
    return std::make_pair(h.type, reply.at(1).to_string());
  };
  auto [t1, m1] = ask({"short"});
  EXPECT_EQ(t1, MsgType::Error);
  EXPECT_NE(m1.find("header frame has 5 bytes"), std::string::npos) << m1;
  Header h;
  h.type = MsgType::Request;
  h.model_hash = hash_from_hex(std::string(64, 'a'));
  h.atom_count = 1;
  auto [t2, m2] = ask({encode_header(h), encode_atoms({0}), ""});
  EXPECT_NE(m2.find("unknown model"), std::string::npos) << m2;
  h.model_hash = hash_from_hex(model->hash());
  auto [t3, m3] = ask({encode_header(h), encode_atoms({9999}), ""});
  EXPECT_NE(m3.find("atom id 9999 out of range"), std::string::npos) << m3;
  // the server still serves a well-behaved device
  DeploymentOptions o;
  o.server = srv.endpoint();
  Deployment dep(*model, std::vector<int>(model->num_atoms(), 1), o);
  EXPECT_TRUE(torch::equal(dep.run({x})[0], model->run({x})[0]));
  EXPECT_GE(srv.stats().errors, 3u);
}
