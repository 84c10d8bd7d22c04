// Pipelines at run time (issue 14): the route codec, 3-node pipelines over real servers on
// loopback equal to the whole model for every split, stages forwarding to each other,
// servers with one and several workers, stages that fail or die mid-stream without a
// request lost or answered wrongly, and peers of another protocol version refused by name.
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "tessera/runtime/pipeline.h"
#include "tessera/runtime/server.h"
#include "tessera/transport/message.h"
#include "tessera/transport/proxy.h"
#include "tessera/transport/wire.h"
#include "tessera/tessera.h"

namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::runtime;
using namespace tessera::transport;

namespace {

std::string chain_bytes() {
  torch::manual_seed(3);
  torch::jit::Module m("Chain");
  m.register_parameter("w1", torch::randn({8, 3, 3, 3}), false);
  m.register_parameter("w2", torch::randn({8, 8, 3, 3}), false);
  m.register_parameter("w3", torch::randn({8, 8, 3, 3}), false);
  m.register_parameter("fc", torch::randn({10, 8}), false);
  // a skip connection across stages and two outputs (one mid-model), so values are forwarded
  // past a stage and results come back from more than the last stage
  m.define(R"(
    def forward(self, x):
        a = torch.relu(torch.conv2d(x, self.w1, None, [1, 1], [1, 1]))
        b = torch.relu(torch.conv2d(a, self.w2, None, [1, 1], [1, 1]))
        c = torch.relu(torch.conv2d(b, self.w3, None, [1, 1], [1, 1])) + a
        p = torch.flatten(torch.adaptive_avg_pool2d(c, [1, 1]), 1)
        return torch.matmul(p, self.fc.t()), torch.sigmoid(b)
  )");
  std::ostringstream os;
  m.save(os);
  return os.str();
}

plan::PipelineNetwork network(const Model& m, int K) {
  plan::PipelineNetwork net;
  for (int k = 0; k < K; ++k) {
    plan::PipelineNode n;
    n.name = k == 0 ? "device" : fmt::format("edge-{}", k);
    n.compute_ms.assign(m.num_atoms(), 1.0);
    net.nodes.push_back(n);
  }
  net.bandwidth_mbps.assign(K, std::vector<double>(K, 1000.0));
  net.rtt_ms.assign(K, std::vector<double>(K, 1.0));
  for (int k = 0; k < K; ++k) net.bandwidth_mbps[k][k] = 0, net.rtt_ms[k][k] = 0;
  return net;
}

std::vector<int> range(int a, int b) {
  std::vector<int> r;
  for (int i = a; i < b; ++i) r.push_back(i);
  return r;
}

plan::PipelinePlan three_stages(int a, int b, int n) {
  plan::PipelinePlan p;
  p.algorithm = "given";
  p.stages = {{0, range(0, a)}, {1, range(a, b)}, {2, range(b, n)}};
  return p;
}

struct PipelineFixture : ::testing::Test {
  fs::path repo;
  std::unique_ptr<Model> model;
  std::vector<std::vector<at::Tensor>> frames;
  void SetUp() override {
    at::set_num_threads(1);
    torch::manual_seed(7);
    for (int i = 0; i < 6; ++i) frames.push_back({torch::randn({1, 3, 8, 8})});
    repo = fs::temp_directory_path() / fmt::format("tessera_pipe_{}", ::getpid());
    fs::remove_all(repo);
    model = std::make_unique<Model>(Model::load_bytes(chain_bytes(), frames[0]));
    model->save((repo / "chain").string());
  }
  void TearDown() override { fs::remove_all(repo); }
  ServerOptions options(int workers = 1) const {
    ServerOptions o;
    o.repository = repo.string();
    o.workers = workers;
    o.forward_timeout_ms = 300;
    return o;
  }
  void expect_equal(const std::vector<std::vector<at::Tensor>>& ys) const {
    ASSERT_EQ(ys.size(), frames.size());
    for (size_t i = 0; i < ys.size(); ++i) {
      auto whole = model->run(frames[i]);
      ASSERT_EQ(ys[i].size(), whole.size());
      for (size_t k = 0; k < whole.size(); ++k) EXPECT_TRUE(torch::equal(ys[i][k], whole[k])) << "frame " << i;
    }
  }
};

}  // namespace

TEST(Wire, RouteRoundTripAndChecks) {
  Route r;
  r.reply_to = "tcp://127.0.0.1:4000";
  r.next = 1;
  r.sleep = true;
  r.hops = {{"tcp://127.0.0.1:4001", {1, 2}, {}, 2.0, 100, 1, 20, 10}, {"tcp://127.0.0.1:4002", {3}, {}, 1.0, 0, 0, 20, 10}};
  r.values = {5, 9};
  r.trace = {{0.5, 1.5, 1.25, 3, 1000, 0}};
  const std::string s = encode_route(r);
  const Route d = decode_route(s.data(), s.size(), 2);
  EXPECT_EQ(d.reply_to, r.reply_to);
  EXPECT_EQ(d.next, 1u);
  EXPECT_TRUE(d.sleep);
  ASSERT_EQ(d.hops.size(), 2u);
  EXPECT_EQ(d.hops[0].atoms, (std::vector<int>{1, 2}));
  EXPECT_DOUBLE_EQ(d.hops[0].slowdown, 2.0);
  EXPECT_DOUBLE_EQ(d.hops[1].back_rtt_ms, 10);
  EXPECT_EQ(d.values, r.values);
  ASSERT_EQ(d.trace.size(), 1u);
  EXPECT_EQ(d.trace[0].bytes_forward, 1000u);
  auto why = [](const std::string& bytes, uint32_t tensors) {
    try {
      decode_route(bytes.data(), bytes.size(), tensors);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(why(s, 3).find("2 values, the message carries 3 tensors"), std::string::npos) << why(s, 3);
  EXPECT_NE(why(s.substr(0, s.size() - 3), 2).find("truncated"), std::string::npos);
  EXPECT_NE(why(s + "x", 2).find("after its end"), std::string::npos);
  Route bad = r;
  bad.next = 3;
  EXPECT_NE(why(encode_route(bad), 2).find("past its 2 hops"), std::string::npos);
  bad = r;
  bad.hops[1].endpoint = "tcp://\n";
  EXPECT_NE(why(encode_route(bad), 2).find("not printable"), std::string::npos);
  bad = r;
  bad.hops[0].next_mbps = std::nan("");
  EXPECT_NE(why(encode_route(bad), 2).find("next link Mbit/s of hop 0"), std::string::npos);
  bad = r;
  bad.hops[0].atoms.clear();
  EXPECT_NE(why(encode_route(bad), 2).find("has no atoms"), std::string::npos);
  bad = r;
  bad.trace.assign(3, HopTrace{});
  EXPECT_NE(why(encode_route(bad), 2).find("3 hop traces for 2 hops"), std::string::npos);
  // a peer of another protocol version is refused by name
  Header h;
  std::string hb = encode_header(h);
  uint16_t v1 = 1;
  std::memcpy(&hb[4], &v1, 2);
  try {
    decode_header(hb.data(), hb.size());
    FAIL() << "a v1 header was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("speaks wire protocol v1, this side speaks v3"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("older tessera"), std::string::npos);
  }
}

TEST_F(PipelineFixture, EveryThreeStageSplitEqualsTheWholeModel) {
  const int n = model->num_atoms();
  ASSERT_GE(n, 4);
  Server s1(options(1)), s2(options(2));  // one worker (ROUTER) and two (REP behind the proxy)
  s1.start();
  s2.start();
  PipelineOptions o;
  o.endpoints = {"", s1.endpoint(), s2.endpoint()};
  o.in_flight = 3;
  int splits = 0;
  for (int a = 0; a < n - 1; ++a)
    for (int b = a + 1; b < n; ++b) {
      Pipeline pipe(*model, three_stages(a, b, n), network(*model, 3), o);
      auto ys = pipe.map(frames);
      expect_equal(ys);
      const auto st = pipe.stats();
      EXPECT_EQ(st.fallbacks, 0) << "split " << a << "/" << b << ": " << pipe.records()[0].error;
      ASSERT_EQ(st.stages.size(), 3u);
      EXPECT_EQ(st.stages[1].frames, 6);
      EXPECT_GT(st.stages[2].bytes_in, 0);
      EXPECT_GT(st.accounted_fps, 0);
      ++splits;
    }
  EXPECT_EQ(s1.stats().forwards, static_cast<uint64_t>(6 * splits));
  EXPECT_EQ(s2.stats().forwards, static_cast<uint64_t>(6 * splits));
  EXPECT_EQ(s1.stats().forward_failures + s2.stats().forward_failures, 0u);
}

TEST_F(PipelineFixture, StagesThatCannotBeReachedAreRunByTheDevice) {
  const int n = model->num_atoms();
  auto s1 = std::make_unique<Server>(options());
  auto s2 = std::make_unique<Server>(options());
  s1->start();
  s2->start();
  PipelineOptions o;
  o.endpoints = {"", s1->endpoint(), s2->endpoint()};
  o.in_flight = 2;
  o.timeout_ms = 1500;
  o.retry_ms = 0;
  o.send_timeout_ms = 200;
  Pipeline pipe(*model, three_stages(1, n / 2, n), network(*model, 3), o);
  expect_equal(pipe.map(frames));
  EXPECT_EQ(pipe.stats().fallbacks, 0);
  s2->stop();  // the last stage is gone: the middle stage hands the rest back
  expect_equal(pipe.map(frames));
  auto recs = pipe.records();
  EXPECT_EQ(pipe.stats().fallbacks, 6);
  EXPECT_NE(recs[0].error.find("hop 1"), std::string::npos) << recs[0].error;
  EXPECT_NE(recs[0].error.find("cannot be reached"), std::string::npos) << recs[0].error;
  EXPECT_TRUE(recs[0].stages[1].ran_remote);   // the middle stage still ran where planned
  EXPECT_FALSE(recs[0].stages[2].ran_remote);  // the device ran the last
  EXPECT_GE(s1->stats().forward_failures, 6u);
  s1->stop();  // the first server is gone too: everything here
  expect_equal(pipe.map(frames));
  EXPECT_EQ(pipe.stats().fallbacks, 6);
}

TEST_F(PipelineFixture, AStageKilledMidStreamLosesNoRequest) {
  const int n = model->num_atoms();
  auto s1 = std::make_unique<Server>(options());
  auto s2 = std::make_unique<Server>(options());
  s1->start();
  s2->start();
  for (int i = 0; i < 60; ++i) frames.push_back({torch::randn({1, 3, 8, 8})});
  PipelineOptions o;
  o.endpoints = {"", s1->endpoint(), s2->endpoint()};
  o.in_flight = 4;
  o.timeout_ms = 800;
  o.retry_ms = 1000;  // after the first failure the rest runs here for a second
  o.send_timeout_ms = 200;
  Pipeline pipe(*model, three_stages(0, n / 2, n), network(*model, 3), o);
  std::thread killer([&] {
    while (s2->stats().forwards < 10) std::this_thread::sleep_for(std::chrono::microseconds(200));
    s2->stop();
  });
  auto ys = pipe.map(frames);
  killer.join();
  expect_equal(ys);  // every request answered, and answered right
  const auto st = pipe.stats();
  EXPECT_GE(st.frames - st.fallbacks, 5);  // frames through the pipeline before the kill (a stopped server may drop its last Results)
  EXPECT_GE(st.fallbacks, 1);
}

TEST_F(PipelineFixture, AFailingStageHandsItsValuesToTheDevice) {
  // A raw Forward whose stage reads a value it was not given: the server acknowledges it,
  // then sends the device's reply endpoint a failed Result naming the value; a malformed
  // route gets an Error on the socket it came in on; the server goes on serving.
  Server srv(options());
  srv.start();
  zmq::context_t ctx(1);
  zmq::socket_t reply(ctx, zmq::socket_type::router), dealer(ctx, zmq::socket_type::dealer);
  reply.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::linger, 0);
  reply.bind("tcp://127.0.0.1:*");
  dealer.connect(srv.endpoint());
  Route r;
  r.reply_to = reply.get(zmq::sockopt::last_endpoint);
  r.hops = {{srv.endpoint(), {model->num_atoms() - 1}}};
  Header h;
  h.type = MsgType::Forward;
  h.request_id = 77;
  h.model_hash = hash_from_hex(model->hash());
  ASSERT_TRUE(send_message(dealer, h, encode_route(r), {}, true));
  std::vector<zmq::message_t> frames_in;
  ASSERT_TRUE(receive(dealer, frames_in));
  Message ack = decode_message(frames_in, 1, 1 << 20);
  EXPECT_EQ(ack.header.type, MsgType::Ack);
  ASSERT_TRUE(receive(reply, frames_in));
  Message res = decode_message(frames_in, envelope_end(frames_in), 1 << 20);
  EXPECT_EQ(res.header.type, MsgType::Result);
  EXPECT_EQ(res.header.request_id, 77u);
  EXPECT_TRUE(res.header.flags & kResultFailed);
  EXPECT_TRUE(res.header.flags & kResultFinal);
  Route back = decode_route(res.body.data(), res.body.size(), res.header.tensor_count);
  EXPECT_EQ(back.next, 0u);
  EXPECT_NE(back.error.find("was not carried"), std::string::npos) << back.error;
  // a route cut short: an Error on this socket, not an Ack
  const std::string body = encode_route(r);
  ASSERT_TRUE(send_message(dealer, h, body.substr(0, body.size() - 2), {}, true));
  ASSERT_TRUE(receive(dealer, frames_in));
  Message err = decode_message(frames_in, 1, 1 << 20);
  EXPECT_EQ(err.header.type, MsgType::Error);
  EXPECT_NE(err.body.find("route truncated"), std::string::npos) << err.body;
  Header ping;
  ping.type = MsgType::Ping;
  ASSERT_TRUE(send_message(dealer, ping, "", {}, true));
  ASSERT_TRUE(receive(dealer, frames_in));
  EXPECT_EQ(decode_message(frames_in, 1, 1 << 20).header.type, MsgType::Pong);
}

TEST_F(PipelineFixture, BadPipelinesAreNamed) {
  const int n = model->num_atoms();
  PipelineOptions o;
  o.endpoints = {"", "tcp://127.0.0.1:1"};  // node 2 has no endpoint
  auto msg = [&](plan::PipelinePlan p, plan::PipelineNetwork net, PipelineOptions opt) {
    try {
      Pipeline pipe(*model, std::move(p), std::move(net), std::move(opt));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg(three_stages(1, 2, n), network(*model, 3), o).find("node 'edge-2', which has no endpoint"),
            std::string::npos);
  o.endpoints.push_back("tcp://127.0.0.1:2");
  o.in_flight = 0;
  EXPECT_NE(msg(three_stages(1, 2, n), network(*model, 3), o).find("in_flight"), std::string::npos);
  o.in_flight = 2;
  o.slowdown = {1, 2};
  EXPECT_NE(msg(three_stages(1, 2, n), network(*model, 3), o).find("slowdown has 2 entries for 3 nodes"),
            std::string::npos);
  o.slowdown.clear();
  auto net = network(*model, 3);
  net.bandwidth_mbps[1][2] = net.bandwidth_mbps[2][1] = 0;  // unreachable pair
  EXPECT_FALSE(msg(three_stages(1, 2, n), net, o).empty());
  auto p = three_stages(1, 2, n);
  p.stages[2].atoms.pop_back();  // an atom no stage runs
  EXPECT_FALSE(msg(p, network(*model, 3), o).empty());
}

namespace {

std::string rows_bytes() {
  torch::manual_seed(4);
  torch::jit::Module m("Rows");
  m.register_parameter("w1", torch::randn({8, 3, 3, 3}), false);
  m.register_parameter("w2", torch::randn({8, 8, 3, 3}), false);
  m.register_parameter("w3", torch::randn({8, 8, 5, 5}), false);
  m.register_parameter("fc", torch::randn({10, 8}), false);
  // a row chain (convolutions with strides and padding, pooling, element-wise) and a head that is not
  m.define(R"(
    def forward(self, x):
        a = torch.relu(torch.conv2d(x, self.w1, None, [1, 1], [1, 1]))
        b = torch.relu(torch.conv2d(a, self.w2, None, [2, 2], [1, 1]))
        c = torch.max_pool2d(b, [3, 3], [2, 2], [1, 1])
        d = torch.sigmoid(torch.conv2d(c, self.w3, None, [1, 1], [2, 2]))
        p = torch.flatten(torch.adaptive_avg_pool2d(d, [1, 1]), 1)
        return torch.matmul(p, self.fc.t())
  )");
  std::ostringstream os;
  m.save(os);
  return os.str();
}

}  // namespace

TEST(PipelineTiles, SplitStagesEqualTheWholeModel) {
  at::set_num_threads(1);
  const fs::path repo = fs::temp_directory_path() / fmt::format("tessera_tiles_{}", ::getpid());
  fs::remove_all(repo);
  torch::manual_seed(9);
  std::vector<std::vector<at::Tensor>> frames;
  for (int i = 0; i < 4; ++i) frames.push_back({torch::randn({1, 3, 37, 29})});
  Model model = Model::load_bytes(rows_bytes(), frames[0]);
  model.save((repo / "rows").string());
  const int n = model.num_atoms();
  const auto tiling = pipeline_tiling(model, 3);
  // the chain: the atoms before the head share one chain id; the head's do not
  int chained = 0;
  for (int a = 0; a < n; ++a) chained += tiling.chain[a] == tiling.chain[0] && tiling.chain[a] >= 0;
  ASSERT_GE(chained, 5) << "the convolutions, activations and pooling form one row chain";
  int last_chain = 0;
  while (last_chain + 1 < n && tiling.chain[last_chain + 1] == tiling.chain[0]) ++last_chain;
  std::vector<std::unique_ptr<Server>> servers;
  PipelineOptions o;
  o.endpoints = {""};
  for (int k = 1; k <= 4; ++k) {
    ServerOptions so;
    so.repository = repo.string();
    so.forward_timeout_ms = 500;
    servers.push_back(std::make_unique<Server>(so));
    servers.back()->start();
    o.endpoints.push_back(servers.back()->endpoint());
  }
  auto net = network(model, 5);
  net.tiling = tiling;
  auto run = [&](const plan::PipelinePlan& p) {
    Pipeline pipe(model, p, net, o);
    auto ys = pipe.map(frames);
    for (size_t i = 0; i < frames.size(); ++i) {
      auto whole = model.run(frames[i]);
      EXPECT_TRUE(torch::allclose(ys[i][0], whole[0], 1e-4, 1e-5)) << "frame " << i;
    }
    return pipe;
  };
  // stage 1 = atoms [1, last_chain] on edge-1 with helpers edge-2 (and edge-3): tiles of rows
  for (std::vector<int> helpers : {std::vector<int>{2}, std::vector<int>{2, 3}}) {
    plan::PipelinePlan p;
    p.stages = {{0, range(0, 1)}, {1, range(1, last_chain + 1), helpers}, {4, range(last_chain + 1, n)}};
    auto pipe = run(p);
    const auto st = pipe.stats();
    EXPECT_EQ(st.fallbacks, 0) << pipe.records()[0].error;
    EXPECT_GT(st.stages[1].tile_ms, 0);
    EXPECT_EQ(st.stages[1].tile_fallbacks, 0);
  }
  EXPECT_GE(servers[1]->stats().replies, 8u);  // edge-2 computed tiles (Requests of rows)
  // a helper that is gone: its tile runs on the stage's own server, the output is still the model's
  servers[2]->stop();
  plan::PipelinePlan p;
  p.stages = {{0, range(0, 1)}, {1, range(1, last_chain + 1), {2, 3}}, {4, range(last_chain + 1, n)}};
  auto pipe = run(p);
  EXPECT_EQ(pipe.stats().fallbacks, 0);
  EXPECT_EQ(pipe.stats().stages[1].tile_fallbacks, 4);
  EXPECT_GE(servers[0]->stats().tile_fallbacks, 4u);
  // a stage that is not a row chain cannot be split, and says why
  plan::PipelinePlan bad;
  bad.stages = {{0, range(0, 1)}, {1, range(1, n), {2}}};
  try {
    Pipeline x(model, bad, net, o);
    FAIL() << "a split of a stage with the head was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot be split by rows"), std::string::npos) << e.what();
  }
  for (auto& s : servers) s->stop();
  fs::remove_all(repo);
}
