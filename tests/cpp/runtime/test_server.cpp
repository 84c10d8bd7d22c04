// The server many devices share (issue 18): dynamic batching returns each sender its own
// rows (and a block that does not batch runs request by request), a full queue answers
// Busy at once and the device runs the block itself, a deployment with several servers
// skips a dead one, HTTP counters and health, an error log line per error with its id.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "net_fixture.h"
#include "tessera/adapt/adaptive.h"
#include "tessera/runtime/deployment.h"
#include "tessera/transport/message.h"

using namespace tessera_test;

namespace {

std::string module_bytes(const std::string& body, int channels = 8) {
  torch::manual_seed(2);
  torch::jit::Module m("M");
  m.register_parameter("w1", torch::randn({channels, 3, 3, 3}) * 0.2, false);
  m.register_parameter("w2", torch::randn({channels, channels, 3, 3}) * 0.1, false);
  m.register_parameter("fc", torch::randn({10, channels}), false);
  m.define(body);
  std::ostringstream os;
  m.save(os);
  return os.str();
}

// A DEALER on `endpoint`, with a receive timeout so a lost reply fails the test instead of hanging it.
zmq::socket_t dealer(zmq::context_t& ctx, const std::string& endpoint) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::rcvtimeo, 20000);
  s.set(zmq::sockopt::linger, 0);
  s.connect(endpoint);
  return s;
}

// A Request of every atom of `m` on `x` (frames after the DEALER's empty delimiter).
void send_request(zmq::socket_t& s, const Model& m, const at::Tensor& x, uint64_t id) {
  std::vector<int> all(m.num_atoms());
  for (int a = 0; a < m.num_atoms(); ++a) all[a] = a;
  Header h;
  h.type = MsgType::Request;
  h.request_id = id;
  h.model_hash = hash_from_hex(m.hash());
  h.atom_count = static_cast<uint32_t>(all.size());
  ASSERT_TRUE(send_message(s, h, encode_atoms(all), {x}, /*delimiter=*/true));
}

Message receive_message(zmq::socket_t& s) {
  std::vector<zmq::message_t> frames;
  EXPECT_TRUE(zmq::recv_multipart(s, std::back_inserter(frames))) << "no reply within 20 s";
  if (frames.size() < 2) return {};
  return decode_message(frames, 1, 1ull << 30);
}

// A model slow enough (tens of ms a request) that a queue of one fills while it runs.
const char* kSlow = R"(
    def forward(self, x):
        a = torch.relu(torch.conv2d(x, self.w1, None, [1, 1], [1, 1]))
        b = torch.relu(torch.conv2d(a, self.w2, None, [1, 1], [1, 1]))
        b = torch.relu(torch.conv2d(b, self.w2, None, [1, 1], [1, 1]))
        p = torch.flatten(torch.adaptive_avg_pool2d(b, [1, 1]), 1)
        return torch.matmul(p, self.fc.t())
  )";

// A model whose whole-model block has a batch dimension but `body` decides whether it batches.
struct Batching : Fixture {
  Model add(const std::string& name, const std::string& body, const at::Tensor& example, int channels = 8) {
    Model m = Model::load_bytes(module_bytes(body, channels), {example});
    m.save((repo / name).string());
    return Model::open((repo / name).string());
  }
  // The slow model on a 1x3x160x160 input, and a started one-worker server with one queue slot.
  const at::Tensor big = torch::randn({1, 3, 160, 160});
  Model slow() { return add("slow", kSlow, big, 32); }
  std::unique_ptr<Server> one_slot_server() const {
    auto opt = options();
    opt.max_queue = 1;
    auto srv = std::make_unique<Server>(opt);
    srv->start();
    return srv;
  }
};

const char* kPerSample = R"(
    def forward(self, x):
        a = torch.relu(torch.conv2d(x, self.w1, None, [1, 1], [1, 1]))
        p = torch.flatten(torch.adaptive_avg_pool2d(a, [1, 1]), 1)
        return torch.matmul(p, self.fc.t())
  )";

// Requests from several devices, sent within the batching delay, run as one batch; each
// sender gets its own rows, equal to its request run alone.
TEST_F(Batching, EachSenderGetsItsOwnRows) {
  Model m = add("per_sample", kPerSample, x);
  auto opt = options();
  opt.batch_max = 8;
  opt.batch_delay_us = 300000;  // wide: every request below arrives inside it
  Server srv(opt);
  srv.start();
  zmq::context_t ctx;
  const int n = 6;
  std::vector<zmq::socket_t> devices;
  std::vector<at::Tensor> xs;
  for (int i = 0; i < n; ++i) {
    devices.push_back(dealer(ctx, srv.endpoint()));
    xs.push_back(torch::randn({1, 3, 8, 8}));
  }
  for (int i = 0; i < n; ++i) send_request(devices[i], m, xs[i], 100 + i);
  int in_batches = 0;
  for (int i = 0; i < n; ++i) {
    Message r = receive_message(devices[i]);
    ASSERT_EQ(r.header.type, MsgType::Reply) << r.body;
    EXPECT_EQ(r.header.request_id, 100u + i);
    ASSERT_EQ(r.tensors.size(), 1u);
    const at::Tensor want = m.run({xs[i]})[0];
    EXPECT_TRUE(torch::allclose(r.tensors[0], want, 1e-5, 1e-6)) << "device " << i << " got other rows";
    in_batches += reply_batch_size(r.header.flags) > 1;
  }
  const auto st = srv.stats();
  EXPECT_GE(st.batches, 1u);
  EXPECT_EQ(st.batched, static_cast<uint64_t>(in_batches));
  EXPECT_GE(in_batches, 2);
  EXPECT_EQ(st.unbatchable, 0u);
}

// Blocks that do not batch run request by request, every answer still right: an output
// without a batch dimension (found from the recorded shapes), a view that fixes the batch
// at 1 (the batched run fails), a normalisation across the batch (its rows differ from the
// request run alone).
TEST_F(Batching, BlocksThatDoNotBatchRunAlone) {
  struct Case {
    const char* name;
    const char* body;
  };
  const Case cases[] = {
      {"scalar", R"(
    def forward(self, x):
        return torch.sum(torch.relu(torch.conv2d(x, self.w1, None, [1, 1], [1, 1])))
  )"},
      {"fixed_view", R"(
    def forward(self, x):
        a = torch.relu(torch.conv2d(x, self.w1, None, [1, 1], [1, 1]))
        p = torch.adaptive_avg_pool2d(a, [1, 1]).view(1, 8)
        return torch.matmul(p, self.fc.t())
  )"},
      {"across_batch", R"(
    def forward(self, x):
        a = torch.relu(torch.conv2d(x, self.w1, None, [1, 1], [1, 1]))
        return a - torch.mean(a)
  )"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Model m = add(c.name, c.body, x);
    auto opt = options();
    opt.batch_max = 8;
    opt.batch_delay_us = 300000;
    Server srv(opt);
    srv.start();
    zmq::context_t ctx;
    std::vector<zmq::socket_t> devices;
    std::vector<at::Tensor> xs;
    for (int i = 0; i < 4; ++i) devices.push_back(dealer(ctx, srv.endpoint())), xs.push_back(torch::randn({1, 3, 8, 8}));
    for (int i = 0; i < 4; ++i) send_request(devices[i], m, xs[i], 1 + i);
    for (int i = 0; i < 4; ++i) {
      Message r = receive_message(devices[i]);
      ASSERT_EQ(r.header.type, MsgType::Reply) << r.body;
      EXPECT_EQ(reply_batch_size(r.header.flags), 1u);
      EXPECT_TRUE(torch::allclose(r.tensors.at(0), m.run({xs[i]})[0], 1e-5, 1e-6));
    }
    EXPECT_EQ(srv.stats().batches, 0u);
    EXPECT_EQ(srv.stats().unbatchable, 1u);
    srv.stop();
  }
}


// Keeps a server's one-slot queue full: a request every millisecond on its own socket
// (answers drained), until destroyed.
struct Flood {
  std::atomic<bool> stop{false};
  std::thread t;
  Flood(const std::string& endpoint, const Model& m, const at::Tensor& x) {
    t = std::thread([this, endpoint, &m, x] {
      zmq::context_t ctx;
      auto s = dealer(ctx, endpoint);
      for (uint64_t i = 1; !stop; ++i) {
        send_request(s, m, x, i);
        std::vector<zmq::message_t> frames;
        while (zmq::recv_multipart(s, std::back_inserter(frames), zmq::recv_flags::dontwait)) frames.clear();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }
  ~Flood() {
    stop = true;
    t.join();
  }
};

// With the one worker busy and the queue full, every further Request is answered Busy at
// once: each of them gets exactly one answer, and the counters agree.
TEST_F(Batching, AFullQueueAnswersBusy) {
  Model m = slow();
  auto server = one_slot_server();
  Server& srv = *server;
  zmq::context_t ctx;
  auto s = dealer(ctx, srv.endpoint());
  const int n = 8;
  for (int i = 0; i < n; ++i) send_request(s, m, big, 1 + i);
  int replies = 0, busy = 0;
  std::set<uint64_t> ids;
  for (int i = 0; i < n; ++i) {
    Message r = receive_message(s);
    ids.insert(r.header.request_id);
    if (r.header.type == MsgType::Busy) {
      ++busy;
      EXPECT_NE(r.body.find("busy"), std::string::npos) << r.body;
      EXPECT_TRUE(std::isfinite(r.header.queue_ms) && r.header.queue_ms >= 0);
    } else {
      ASSERT_EQ(r.header.type, MsgType::Reply) << r.body;
      ++replies;
    }
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(n));  // one answer per request
  EXPECT_GE(busy, 1);
  EXPECT_GE(replies, 2);  // the one running and the one queued
  EXPECT_EQ(srv.stats().refused_busy, static_cast<uint64_t>(busy));
  EXPECT_EQ(srv.stats().replies, static_cast<uint64_t>(replies));
}

// A device whose request meets a full queue runs the block itself at once (its timeout is
// a minute: waiting for it would fail the test's own time limit), with the right output,
// and its timeline says the server was busy.
TEST_F(Batching, BusyRunsTheBlockOnTheDevice) {
  Model m = slow();
  auto server = one_slot_server();
  Server& srv = *server;
  DeploymentOptions o;
  o.server = srv.endpoint();
  o.timeout_ms = 60000;
  o.busy_retry_ms = 0;
  Deployment dep(m, std::vector<int>(m.num_atoms(), 1), o);
  const at::Tensor want = m.run({big})[0];
  Flood flood(srv.endpoint(), m, big);
  int tries = 0;
  bool busy = false;
  while (!busy && tries++ < 100) {  // the queue is full nearly always: a Busy comes within a few tries
    auto y = dep.run({big});
    EXPECT_TRUE(torch::allclose(y[0], want, 1e-5, 1e-6));
    busy = dep.last_timeline().blocks.at(0).busy;
  }
  ASSERT_TRUE(busy) << "no Busy in 100 requests against a full queue";
  const auto b = dep.last_timeline().blocks.at(0);
  EXPECT_TRUE(b.fallback);
  EXPECT_FALSE(b.remote);
  EXPECT_NE(b.error.find("busy"), std::string::npos) << b.error;
  EXPECT_GE(dep.server_states().at(0).busy, 1u);
  EXPECT_EQ(dep.server_states().at(0).failures, 0u);  // busy is not a failure: no back-off of retry_ms
}

// The adaptive loop counts a Busy reply as server load: its record says busy, and the
// server's estimated load rises above 1 (the policy then plans for a slower server).
TEST_F(Batching, TheAdaptiveLoopCountsBusyAsServerLoad) {
  Model m = slow();
  auto server = one_slot_server();
  Server& srv = *server;
  plan::CostModel cm;
  cm.dag = m.dag();
  cm.compute_ms = {std::vector<double>(m.num_atoms(), 1.0), std::vector<double>(m.num_atoms(), 1.0)};
  DeploymentOptions o;
  o.server = srv.endpoint();
  o.timeout_ms = 60000;
  o.busy_retry_ms = 0;
  adapt::Controller ctl(m, cm, o, adapt::make_static_policy("static", std::vector<int>(m.num_atoms(), 1)));
  const at::Tensor want = m.run({big})[0];
  Flood flood(srv.endpoint(), m, big);
  for (int tries = 0; tries < 100; ++tries) {
    EXPECT_TRUE(torch::allclose(ctl.run({big})[0], want, 1e-5, 1e-6));
    if (ctl.timeline().back().busy) break;
  }
  const auto rec = ctl.timeline().back();
  ASSERT_TRUE(rec.busy) << "no Busy in 100 requests against a full queue";
  EXPECT_TRUE(rec.fallback);
  EXPECT_EQ(rec.server, 0);
  EXPECT_GT(ctl.monitor().server_load(0), 1.0);
}

// Three servers; the first is stopped: its request runs on the device (right output, none
// lost), and the next ones go to the others; the dead one is skipped while in back-off.
TEST_F(Fixture, ADeadServerAmongSeveralIsSkipped) {
  std::vector<std::unique_ptr<Server>> servers;
  DeploymentOptions o;
  for (int i = 0; i < 3; ++i) {
    servers.push_back(std::make_unique<Server>(options()));
    servers.back()->start();
    o.servers.push_back(servers.back()->endpoint());
  }
  o.server_policy = "first";
  o.timeout_ms = 3000;
  o.retry_ms = 60000;
  Deployment dep(*model, std::vector<int>(model->num_atoms(), 1), o);
  const at::Tensor want = model->run({x})[0];
  EXPECT_TRUE(torch::allclose(dep.run({x})[0], want, 1e-5, 1e-6));
  EXPECT_EQ(dep.last_timeline().server, 0);
  EXPECT_TRUE(dep.last_timeline().blocks[0].remote);
  servers[0]->stop();
  EXPECT_TRUE(torch::allclose(dep.run({x})[0], want, 1e-5, 1e-6));  // fell back: not lost
  EXPECT_TRUE(dep.last_timeline().fallback);
  for (int k = 0; k < 3; ++k) {
    EXPECT_TRUE(torch::allclose(dep.run({x})[0], want, 1e-5, 1e-6));
    EXPECT_EQ(dep.last_timeline().server, 1);
    EXPECT_TRUE(dep.last_timeline().blocks[0].remote) << dep.last_timeline().blocks[0].error;
  }
  const auto st = dep.server_states();
  EXPECT_FALSE(st[0].available);
  EXPECT_EQ(st[0].failures, 1u);
  EXPECT_EQ(st[1].requests, 3u);
  EXPECT_EQ(servers[1]->stats().replies, 3u);
}

// "best" tries every server, then keeps to the fastest; "p2c" spreads over them; a server
// that came back after its back-off answers a Ping first and serves again.
TEST_F(Fixture, ServerPoliciesSpreadAndProbeBack) {
  std::vector<std::unique_ptr<Server>> servers;
  std::vector<std::string> eps;
  for (int i = 0; i < 3; ++i) {
    servers.push_back(std::make_unique<Server>(options()));
    servers.back()->start();
    eps.push_back(servers.back()->endpoint());
  }
  const at::Tensor want = model->run({x})[0];
  for (const char* policy : {"best", "p2c"}) {
    SCOPED_TRACE(policy);
    DeploymentOptions o;
    o.servers = eps;
    o.server_policy = policy;
    o.timeout_ms = 3000;
    Deployment dep(*model, std::vector<int>(model->num_atoms(), 1), o);
    for (int k = 0; k < 30; ++k) {
      EXPECT_TRUE(torch::allclose(dep.run({x})[0], want, 1e-5, 1e-6));
      EXPECT_TRUE(dep.last_timeline().blocks[0].remote) << dep.last_timeline().blocks[0].error;
    }
    int used = 0;
    for (const auto& s : dep.server_states()) used += s.requests > 0;
    EXPECT_EQ(used, 3);
  }
  // probe back: a server that failed is Pinged after retry_ms before it serves again
  DeploymentOptions o;
  o.servers = {eps[0], eps[1]};
  o.server_policy = "first";
  o.timeout_ms = 3000;
  o.retry_ms = 1;
  Deployment dep(*model, std::vector<int>(model->num_atoms(), 1), o);
  dep.run({x});
  const std::string ep0 = eps[0];
  servers[0]->stop();
  dep.run({x});  // fails over
  EXPECT_TRUE(dep.last_timeline().fallback);
  auto pings_before = servers[1]->stats().pings;
  ServerOptions again = options();
  again.bind = ep0;  // the same port again
  servers[0] = std::make_unique<Server>(again);
  servers[0]->start();
  int back = -1;  // requests until it serves again (its connection comes back in the background)
  for (int k = 0; k < 500 && back < 0; ++k) {
    EXPECT_TRUE(torch::allclose(dep.run({x})[0], want, 1e-5, 1e-6));
    EXPECT_FALSE(dep.last_timeline().fallback) << dep.last_timeline().blocks[0].error;  // no request pays for it
    if (dep.last_timeline().server == 0) back = k;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_GE(back, 0) << "the restarted server was never used again";
  EXPECT_GE(servers[0]->stats().pings, 1u);  // probed before it was trusted
  EXPECT_EQ(servers[1]->stats().pings, pings_before);
}

// GET over a plain TCP socket; returns the whole response.
std::string http_get(const std::string& endpoint, const std::string& path) {
  const auto colon = endpoint.rfind(':');
  const int port = std::stoi(endpoint.substr(colon + 1));
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "connect failed";
  }
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  if (::send(fd, req.data(), req.size(), 0) < 0) {
    ::close(fd);
    return "send failed";
  }
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

TEST_F(Fixture, CountersOverHttpAndErrorsLoggedWithTheirIds) {
  auto opt = options();
  opt.metrics_port = 0;
  Server srv(opt);
  srv.start();
  ASSERT_EQ(srv.metrics_endpoint().rfind("http://127.0.0.1:", 0), 0u) << srv.metrics_endpoint();
  DeploymentOptions o;
  o.server = srv.endpoint();
  Deployment dep(*model, std::vector<int>(model->num_atoms(), 1), o);
  dep.run({x});
  testing::internal::CaptureStderr();
  {
    zmq::context_t ctx;
    auto s = dealer(ctx, srv.endpoint());
    Header h;
    h.type = MsgType::Request;
    h.request_id = 4242;
    h.atom_count = 1;  // a model nobody serves
    ASSERT_TRUE(send_message(s, h, encode_atoms({0}), {x}, true));
    Message r = receive_message(s);
    EXPECT_EQ(r.header.type, MsgType::Error);
  }
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("request 4242"), std::string::npos) << log;
  EXPECT_NE(log.find("unknown model"), std::string::npos) << log;
  const std::string metrics = http_get(srv.metrics_endpoint(), "/metrics");
  EXPECT_NE(metrics.find("HTTP/1.1 200 OK"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("tessera_requests_total 2"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("tessera_errors_total 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("tessera_request_seconds_count 2"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("# TYPE tessera_queue_length gauge"), std::string::npos) << metrics;
  EXPECT_NE(http_get(srv.metrics_endpoint(), "/healthz").find("200 OK\r\n"), std::string::npos);
  EXPECT_NE(http_get(srv.metrics_endpoint(), "/readyz").find("ready: 1 models"), std::string::npos);
  EXPECT_NE(http_get(srv.metrics_endpoint(), "/nope").find("404"), std::string::npos);
  EXPECT_NE(dep.ping().find("\"queued\": 0"), std::string::npos) << dep.ping();
}

}  // namespace
