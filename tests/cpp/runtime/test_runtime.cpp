// Runtime in C++: wire codec checks (v3 codecs: bounds, corrupt frames, split runs), a real server on loopback, a device
// deployment whose split runs equal the whole model, fallback when the server
// goes away, malformed messages answered with errors, aligned zero-copy tensors,
// time budgets, thread safety, signals.
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <sstream>
#include <algorithm>
#include <cstring>
#include <random>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "tessera/runtime/deployment.h"
#include "tessera/runtime/server.h"
#include "tessera/plan/plan.h"
#include "tessera/transport/channel.h"
#include "tessera/transport/wire.h"
#include "tessera/tessera.h"
#include "net_fixture.h"

namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::runtime;
using namespace tessera::transport;
using tessera_test::Fixture;

namespace {

// Sends raw frames on a REQ socket and returns the reply's type and body (frame 1).
std::pair<MsgType, std::string> ask_raw(zmq::socket_t& s, const std::vector<std::string>& frames) {
  std::vector<zmq::const_buffer> bufs;
  for (auto& f : frames) bufs.push_back(zmq::buffer(f));
  zmq::send_multipart(s, bufs);
  std::vector<zmq::message_t> reply;
  EXPECT_TRUE(zmq::recv_multipart(s, std::back_inserter(reply)));
  auto h = decode_header(reply.at(0).data(), reply.at(0).size());
  return {h.type, reply.at(1).to_string()};
}

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
  for (int workers : {1, 2}) {  // the direct ROUTER loop, and REP workers behind the proxy
    SCOPED_TRACE(fmt::format("workers={}", workers));
    auto opt = options();
    opt.workers = workers;
    Server srv(opt);
    srv.start();
    zmq::context_t ctx;
    zmq::socket_t s(ctx, zmq::socket_type::req);
    s.set(zmq::sockopt::rcvtimeo, 5000);
    s.connect(srv.endpoint());
    auto ask = [&](std::vector<std::string> frames) { return ask_raw(s, frames); };
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
}

// Small frames land inside libzmq's shared receive buffer (or inside the message
// itself) at any offset: received tensors must still be aligned for their dtype.
TEST_F(Fixture, ReceivedTensorsAreAligned) {
  Server srv(options());
  srv.start();
  DeploymentOptions o;
  o.server = srv.endpoint();
  Deployment dep(*model, std::vector<int>(model->num_atoms(), 0), o);
  std::vector<at::Tensor> sent = {torch::arange(5, torch::kUInt8),     torch::randn({3}, torch::kFloat64),
                                  torch::randn({7}),                   torch::arange(3, torch::kInt64),
                                  torch::randn({100}),                 torch::randn({3, 5}, torch::kFloat64),
                                  torch::arange(1001, torch::kUInt8),  torch::randn({2000})};
  for (int round = 0; round < 3; ++round) {
    auto back = dep.echo(sent);
    ASSERT_EQ(back.size(), sent.size());
    for (size_t i = 0; i < sent.size(); ++i) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(back[i].data_ptr()) % 16, 0u)
          << "tensor " << i << " (" << sent[i].nbytes() << " bytes) at a misaligned address";
      EXPECT_TRUE(torch::equal(back[i], sent[i])) << "tensor " << i;
    }
  }
}

// The request carries a time budget, not a time of day: the server counts it from its
// own receipt, so a device whose clock disagrees with the server's is still served.
TEST_F(Fixture, BudgetIsCountedFromTheServersReceipt) {
  Server srv(options());
  srv.start();
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::req);
  s.set(zmq::sockopt::rcvtimeo, 10000);
  s.set(zmq::sockopt::linger, 0);
  s.connect(srv.endpoint());
  auto ask = [&](int64_t budget_us) {
    auto f = whole_model_request(1, budget_us);
    std::array<zmq::const_buffer, 4> frames = {zmq::buffer(f[0]), zmq::buffer(f[1]), zmq::buffer(f[2]),
                                               zmq::buffer(x.data_ptr(), x.nbytes())};
    zmq::send_multipart(s, frames);
    std::vector<zmq::message_t> reply;
    EXPECT_TRUE(zmq::recv_multipart(s, std::back_inserter(reply)));
    auto rh = decode_header(reply.at(0).data(), reply.at(0).size());
    return std::make_pair(rh.type, reply.at(1).to_string());
  };
  // 10 s: as a wall-clock deadline this would be 1970 and long past
  auto [t1, m1] = ask(10'000'000);
  EXPECT_EQ(t1, MsgType::Reply) << m1;
  auto [t2, m2] = ask(0);  // no budget
  EXPECT_EQ(t2, MsgType::Reply) << m2;
  EXPECT_EQ(srv.stats().late, 0u);
  EXPECT_EQ(srv.stats().errors, 0u);
}

// One Deployment shared by threads: requests take turns on its one socket, and
// the accessors read consistent copies while requests run.
TEST_F(Fixture, DeploymentIsSafeAcrossThreads) {
  Server srv(options());
  srv.start();
  DeploymentOptions o;
  o.server = srv.endpoint();
  o.timeout_ms = 10000;
  const int A = model->num_atoms();
  std::vector<int> split(A, 1);
  for (int a = 0; a < A / 2; ++a) split[a] = 0;
  Deployment dep(*model, split, o);
  const auto want = model->run({x})[0];
  std::atomic<int> wrong{0}, fallbacks{0}, done{0};
  auto worker = [&] {
    for (int i = 0; i < 15; ++i) {
      auto y = dep.run({x})[0];
      wrong += !torch::allclose(y, want, 1e-5, 1e-6);
    }
    ++done;
  };
  std::thread t1(worker), t2(worker);
  while (done < 2) {
    auto tl = dep.last_timeline();
    fallbacks += tl.fallback;
    EXPECT_EQ(dep.placement().size(), static_cast<size_t>(A));
    (void)dep.server_available();
  }
  t1.join();
  t2.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(fallbacks.load(), 0);
  EXPECT_EQ(srv.stats().replies, 30u);
  EXPECT_THROW(dep.set_placement(std::vector<int>(A, 2)), Error);  // two targets only: 0 and 1
}

namespace {
void on_usr1(int) {}

// SIGUSR1 to every other thread of this process (the server's among them; libzmq's
// own threads block all signals, so it stays pending there).
void signal_other_threads() {
  const pid_t self = static_cast<pid_t>(::syscall(SYS_gettid));
  for (const auto& e : fs::directory_iterator("/proc/self/task")) {
    const pid_t tid = static_cast<pid_t>(std::stol(e.path().filename().string()));
    if (tid != self) ::syscall(SYS_tgkill, ::getpid(), tid, SIGUSR1);
  }
}
}  // namespace

// A signal landing on a server thread interrupts its blocking receive (EINTR): the
// server must go on serving, not lose the thread. And two stop() calls at once are safe.
TEST_F(Fixture, ServerSurvivesSignalsAndConcurrentStops) {
  struct sigaction sa {}, old {};
  sa.sa_handler = on_usr1;  // no SA_RESTART: blocking calls return EINTR
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  for (int workers : {1, 2}) {
    auto opt = options();
    opt.workers = workers;
    Server srv(opt);
    srv.start();
    for (int i = 0; i < 5; ++i) {
      signal_other_threads();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    DeploymentOptions o;
    o.server = srv.endpoint();
    o.timeout_ms = 5000;
    Deployment dep(*model, std::vector<int>(model->num_atoms(), 1), o);
    for (int i = 0; i < 4; ++i) {
      EXPECT_TRUE(torch::allclose(dep.run({x})[0], model->run({x})[0], 1e-5, 1e-6));
      EXPECT_FALSE(dep.last_timeline().fallback) << "workers=" << workers << ": "
                                                 << dep.last_timeline().blocks.back().error;
    }
    std::thread a([&] { srv.stop(); }), b([&] { srv.stop(); });
    a.join();
    b.join();
    EXPECT_FALSE(srv.running());
  }
  sigaction(SIGUSR1, &old, nullptr);
}

// Empty and rank-0 tensors cross the wire; a stopped server starts again on request.
TEST_F(Fixture, EdgeTensorsAndRestart) {
  Server srv(options());
  srv.start();
  DeploymentOptions o;
  o.server = srv.endpoint();
  {
    Deployment dep(*model, std::vector<int>(model->num_atoms(), 0), o);
    std::vector<at::Tensor> sent = {torch::zeros({0}), torch::zeros({2, 0, 3}, torch::kInt64),
                                    torch::scalar_tensor(3.5), torch::scalar_tensor(7, torch::kInt64)};
    auto back = dep.echo(sent);
    ASSERT_EQ(back.size(), sent.size());
    for (size_t i = 0; i < sent.size(); ++i) {
      EXPECT_EQ(back[i].sizes(), sent[i].sizes()) << i;
      EXPECT_EQ(back[i].scalar_type(), sent[i].scalar_type()) << i;
      EXPECT_TRUE(torch::equal(back[i], sent[i])) << i;
    }
  }
  srv.stop();
  EXPECT_FALSE(srv.running());
  srv.start();  // binds a fresh ephemeral port
  ASSERT_TRUE(srv.running());
  o.server = srv.endpoint();
  Deployment dep(*model, std::vector<int>(model->num_atoms(), 1), o);
  EXPECT_TRUE(torch::equal(dep.run({x})[0], model->run({x})[0]));
  EXPECT_FALSE(dep.last_timeline().fallback) << dep.last_timeline().blocks.back().error;
}

// The front thread stamps each request on receipt: six requests sent at once to one or
// two workers make at least three wait, and their replies say for how long (a device
// subtracts it from the link time).
TEST_F(Fixture, RepliesReportTheWaitForAWorker) {
  for (int workers : {1, 2}) {
    SCOPED_TRACE(fmt::format("workers={}", workers));
    auto opt = options();
    opt.workers = workers;
    Server srv(opt);
    srv.start();
    zmq::context_t ctx;
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    s.set(zmq::sockopt::rcvtimeo, 10000);
    s.set(zmq::sockopt::linger, 0);
    s.connect(srv.endpoint());
    const int n = 6;
    for (int i = 0; i < n; ++i) {
      auto f = whole_model_request(static_cast<uint64_t>(i + 1), 0);
      std::array<zmq::const_buffer, 5> frames = {zmq::const_buffer(nullptr, 0), zmq::buffer(f[0]), zmq::buffer(f[1]),
                                                 zmq::buffer(f[2]), zmq::buffer(x.data_ptr(), x.nbytes())};
      zmq::send_multipart(s, frames);
    }
    int waited = 0;
    for (int i = 0; i < n; ++i) {
      std::vector<zmq::message_t> reply;
      ASSERT_TRUE(zmq::recv_multipart(s, std::back_inserter(reply)));
      auto h = decode_header(reply.at(1).data(), reply.at(1).size());
      ASSERT_EQ(h.type, MsgType::Reply) << reply.at(2).to_string();
      EXPECT_TRUE(std::isfinite(h.queue_ms) && h.queue_ms >= 0) << h.queue_ms;
      waited += h.queue_ms > 0;
    }
    EXPECT_GE(waited, n - workers - 1);  // one worker's queue is observable too (the front thread stamps)
  }
}

// A deployment runs checked plans: a plan whose blocks are out of order, or that
// leaves an atom out, is refused with the problems named, and the plan in use stays.
TEST_F(Fixture, DeploymentRunsOnlyCheckedPlans) {
  Server srv(options());
  srv.start();
  DeploymentOptions o;
  o.server = srv.endpoint();
  o.timeout_ms = 5000;
  const int A = model->num_atoms();
  ASSERT_GE(A, 3);
  const AtomDag dag = model->dag();
  std::vector<int> split(A, 0);
  for (int a = A / 2; a < A; ++a) split[a] = 1;
  const plan::Plan good = plan::from_placement(dag, split);
  ASSERT_TRUE(plan::validate(good, dag, 2).empty());
  Deployment dep(*model, good, o);
  const auto whole = model->run({x});
  EXPECT_TRUE(torch::equal(dep.run({x})[0], whole[0]));

  plan::Plan reversed = good;
  std::reverse(reversed.blocks.begin(), reversed.blocks.end());
  try {
    dep.set_plan(reversed);
    FAIL() << "a plan whose blocks run out of order was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument);
    EXPECT_NE(e.message().find("not executable in order"), std::string::npos) << e.message();
  }
  plan::Plan missing = good;
  missing.blocks.back().atoms.pop_back();
  EXPECT_THROW(Deployment(*model, missing, o), Error);
  plan::Plan three_targets = plan::from_placement(dag, std::vector<int>(A, 2), 3);
  EXPECT_THROW(dep.set_plan(three_targets), Error);  // a deployment has targets 0 and 1
  EXPECT_EQ(dep.placement(), split);                 // the checked plan stays in use
  EXPECT_TRUE(torch::equal(dep.run({x})[0], whole[0]));
}

// What runs is the plan's blocks in the plan's order, not a schedule of its own: a plan
// that cuts the device's atoms into three blocks runs as three blocks.
TEST_F(Fixture, DeploymentRunsThePlansOwnBlocks) {
  const int A = model->num_atoms();
  ASSERT_GE(A, 3);
  const AtomDag dag = model->dag();
  plan::Plan p = plan::from_placement(dag, std::vector<int>(A, 0));
  ASSERT_EQ(p.blocks.size(), 1u);
  std::vector<std::vector<int>> parts = {{0}, {}, {}};
  for (int a = 1; a < A; ++a) parts[a < A / 2 + 1 ? 1 : 2].push_back(a);
  p.blocks.clear();
  for (const auto& atoms : parts) p.blocks.push_back(plan::Block{0, atoms, {}, {}});
  fill_block_io(dag, p.blocks);
  ASSERT_TRUE(plan::validate(p, dag, 2).empty());
  Deployment dep(*model, p, DeploymentOptions{});
  EXPECT_TRUE(torch::equal(dep.run({x})[0], model->run({x})[0]));
  const auto tl = dep.last_timeline();
  ASSERT_EQ(tl.blocks.size(), 3u);
  for (size_t b = 0; b < 3; ++b) EXPECT_EQ(tl.blocks[b].atoms, parts[b]);
}

// Channels answer with values: a server that is not there is an Expected without a
// value naming the endpoint, not an exception; an emulated link adds its time.
TEST_F(Fixture, ChannelsReturnOutcomesAsValues) {
  transport::ZmqChannelOptions co;
  co.endpoint = "tcp://127.0.0.1:1";  // nothing listens on port 1
  co.send_timeout_ms = 100;
  auto dead = transport::connect_zmq(co);
  transport::Header h;
  h.type = transport::MsgType::Ping;
  auto r = dead->call(h, "", {}, 100);
  EXPECT_FALSE(r);
  EXPECT_NE(r.error().find("tcp://127.0.0.1:1"), std::string::npos) << r.error();

  Server srv(options());
  srv.start();
  co.endpoint = srv.endpoint();
  transport::LinkSpec spec;
  spec.bandwidth_mbps = 8;  // 1 MB/s
  spec.rtt_ms = 10;
  auto link = std::make_shared<transport::Link>(spec);
  auto ch = transport::emulate(transport::connect_zmq(co), link, transport::Emulation::Account);
  h.type = transport::MsgType::Echo;
  const auto t = torch::zeros({10000}, torch::kByte);
  auto e = ch->call(h, "", {t}, 5000);
  ASSERT_TRUE(e) << e.error();
  EXPECT_EQ(e->reply.header.type, transport::MsgType::Echo);
  EXPECT_GT(e->bytes_up, 10000u);
  EXPECT_GT(e->bytes_down, 10000u);
  // two 10 KB messages at 1 MB/s (~10 ms each) + rtt/2 each way (10 ms): ~30 ms accounted
  EXPECT_GT(e->link_ms, 25.0);
  EXPECT_LT(e->link_ms, 40.0);
  EXPECT_THROW(connect_zmq(transport::ZmqChannelOptions{"not an endpoint"}), Error);
}

// ---- wire codecs (protocol v3, issue 17) ---------------------------------------------

namespace {
// The per-element bound each codec states (core/codec.h), for reference values x.
torch::Tensor codec_bound(const torch::Tensor& x, Codec c) {
  auto range = [](const torch::Tensor& t) {
    const double lo = std::min(0.0, t.min().item<double>()), hi = std::max(0.0, t.max().item<double>());
    return (hi - lo) / 255.0;
  };
  switch (c) {
    case Codec::Fp16: return x.abs() * std::ldexp(1.0, -11) + 6e-8;
    case Codec::Bf16: return x.abs() * std::ldexp(1.0, -8) + 1e-38;
    case Codec::Int8: return torch::full_like(x, range(x) / 2 * (1 + 1e-4) + 1e-6 * x.abs().max().item<double>());
    case Codec::Int8Channel: {
      auto b = torch::empty_like(x);
      for (int64_t k = 0; k < x.size(1); ++k) {
        auto ch = x.select(1, k);
        b.select(1, k).fill_(range(ch) / 2 * (1 + 1e-4) + 1e-6 * ch.abs().max().item<double>());
      }
      return b;
    }
    default: return torch::zeros_like(x);
  }
}
}  // namespace

TEST(Codecs, RoundTripWithinTheirStatedBounds) {
  torch::manual_seed(3);
  std::vector<std::pair<std::string, torch::Tensor>> cases = {
      {"normal", torch::randn({2, 16, 5, 7}) * 3},
      {"relu", torch::relu(torch::randn({1, 32, 9, 9}))},
      {"constant", torch::full({1, 4, 3, 3}, 2.5)},
      {"all negative", -torch::rand({1, 8, 4, 4}) - 1},
      {"large", torch::randn({1, 3, 20, 20}) * 1e3},
      {"rank 2", torch::randn({4, 10})},
      {"rank 1", torch::randn({100})},
  };
  for (const auto& [name, x] : cases)
    for (uint8_t k = 0; k <= kMaxCodec; ++k) {
      const auto c = static_cast<Codec>(k);
      SCOPED_TRACE(fmt::format("{} / {}", name, codec_name(c)));
      auto y = codec_round_trip(x, c);
      ASSERT_EQ(y.sizes(), x.sizes());
      ASSERT_EQ(y.scalar_type(), at::kFloat);
      auto e = encode_tensor(x, c);
      const bool applies = codec_applies(c, "float32", static_cast<int>(x.dim()));
      EXPECT_EQ(e.desc.codec, applies ? c : Codec::Raw);
      if (codec_lossless(c) || !applies) {
        EXPECT_TRUE(torch::equal(y, x));  // bit-exact
        continue;
      }
      auto over = ((y - x).abs() - codec_bound(x, c)).max().item<double>();
      EXPECT_LE(over, 0.0) << "max error beyond the bound by " << over;
      if (c == Codec::Int8 || c == Codec::Int8Channel) EXPECT_EQ(e.desc.nbytes, static_cast<uint64_t>(x.numel()));
    }
  // Other dtypes travel raw under a lossy codec, bit-exact under zstd; empty tensors too.
  auto ids = torch::arange(0, 1000, torch::kLong);
  EXPECT_EQ(encode_tensor(ids, Codec::Int8).desc.codec, Codec::Raw);
  EXPECT_TRUE(torch::equal(codec_round_trip(ids, Codec::Int8), ids));
  EXPECT_EQ(encode_tensor(ids, Codec::Zstd).desc.codec, Codec::Zstd);
  EXPECT_LT(encode_tensor(ids, Codec::Zstd).desc.nbytes, ids.nbytes());
  EXPECT_TRUE(torch::equal(codec_round_trip(ids, Codec::Zstd), ids));
  auto none = torch::empty({0, 3});
  EXPECT_EQ(codec_round_trip(none, Codec::Fp16).sizes(), none.sizes());
  // Descriptors carry the codec and its parameters and are checked on receipt.
  auto e = encode_tensor(torch::randn({1, 4, 2, 2}), Codec::Int8Channel);
  auto ds = encode_descs({e.desc});
  auto back = decode_descs(ds.data(), ds.size(), 1, 1 << 20);
  EXPECT_EQ(back[0].codec, Codec::Int8Channel);
  EXPECT_EQ(back[0].params, e.desc.params);
  auto bad = e.desc;
  bad.params.resize(bad.params.size() - 4);
  ds = encode_descs({bad});
  EXPECT_THROW(decode_descs(ds.data(), ds.size(), 1, 1 << 20), Error);
  ds = encode_descs({e.desc});
  ds[2] = 9;  // an unknown codec
  try {
    decode_descs(ds.data(), ds.size(), 1, 1 << 20);
    ADD_FAILURE() << "an unknown codec was accepted";
  } catch (const Error& err) {
    EXPECT_NE(err.message().find("unknown codec 9"), std::string::npos) << err.message();
  }
  EXPECT_THROW(parse_codec("int4"), Error);
}

TEST_F(Fixture, CorruptCompressedFramesGetErrorReplies) {
  Server srv(options());
  srv.start();
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::req);
  s.set(zmq::sockopt::rcvtimeo, 5000);
  s.connect(srv.endpoint());
  auto ask = [&](std::vector<std::string> frames) { return ask_raw(s, frames); };
  auto req = whole_model_request(1, 0);
  auto z = encode_tensor(x, Codec::Zstd);
  std::string good(static_cast<const char*>(z.frame.data_ptr()), z.frame.nbytes());
  std::mt19937 rng(5);
  int errors = 0;
  for (int trial = 0; trial < 50; ++trial) {
    std::string frame = good;
    if (trial % 3 == 0) frame.resize(frame.size() / 2);              // truncated
    else if (trial % 3 == 1) frame[rng() % frame.size()] ^= 0x5a;    // a flipped byte
    else frame = std::string(frame.size(), static_cast<char>(rng()));  // garbage
    auto d = z.desc;
    d.nbytes = frame.size();
    auto [type, msg] = ask({req[0], req[1], encode_descs({d}), frame});
    if (type == MsgType::Error) {
      ++errors;
      EXPECT_TRUE(msg.find("zstd") != std::string::npos || msg.find("expected") != std::string::npos) << msg;
    } else {
      EXPECT_EQ(type, MsgType::Reply);  // a flip zstd cannot see (no checksum) decodes to other numbers
    }
  }
  EXPECT_GE(errors, 33);  // every truncated (17) and garbage (16) frame at least
  // int8 parameters that lie: a zero scale
  auto q = encode_tensor(x, Codec::Int8);
  auto d = q.desc;
  const double zero = 0;
  std::memcpy(&d.params[0], &zero, 8);
  auto [t2, m2] = ask({req[0], req[1], encode_descs({d}),
                       std::string(static_cast<const char*>(q.frame.data_ptr()), q.frame.nbytes())});
  EXPECT_EQ(t2, MsgType::Error);
  EXPECT_NE(m2.find("scale 0 must be > 0"), std::string::npos) << m2;
  // the server still serves, and decodes a good compressed request
  auto [t3, m3] = ask({req[0], req[1], encode_descs({z.desc}), good});
  EXPECT_EQ(t3, MsgType::Reply) << m3;
  EXPECT_TRUE(srv.running());
}

TEST_F(Fixture, SplitRunsWithInt8CutTensorsEqualTheModelFedTheDecodedCut) {
  Server srv(options());
  srv.start();
  const int A = model->num_atoms();
  auto whole = model->run({x});
  for (const std::string codec : {"int8", "int8_channel", "fp16", "bf16", "zstd"}) {
    for (int k = 1; k < A; ++k) {
      SCOPED_TRACE(fmt::format("{} cut after atom {}", codec, k - 1));
      std::vector<int> placement(A, 1);
      for (int a = 0; a < k; ++a) placement[a] = 0;
      DeploymentOptions o;
      o.server = srv.endpoint();
      o.timeout_ms = 5000;
      o.codec = codec;
      Deployment dep(*model, placement, o);
      auto y = dep.run({x});
      const auto& tl = dep.last_timeline();
      ASSERT_FALSE(tl.fallback) << tl.blocks.back().error;
      // The reference: the device's block here, its outputs through the codec, the rest here.
      auto p = plan::from_placement(model->dag(), placement);
      std::vector<std::vector<int>> groups;
      for (const auto& b : p.blocks) groups.push_back(b.atoms);
      auto sched = model->schedule(groups);
      ASSERT_EQ(sched.size(), 2u);
      auto dev = sched.block(0)({x});
      for (auto& t : dev) t = codec_round_trip(t, parse_codec(codec));
      std::vector<at::Tensor> args;
      for (int v : sched.block(1).inputs()) {
        if (v == model->graph().inputs[0]) {
          args.push_back(codec_round_trip(x, parse_codec(codec)));
          continue;
        }
        auto it = std::find(sched.block(0).outputs().begin(), sched.block(0).outputs().end(), v);
        ASSERT_NE(it, sched.block(0).outputs().end());
        args.push_back(dev[it - sched.block(0).outputs().begin()]);
      }
      auto ref = sched.block(1)(args);
      auto expect = codec_round_trip(ref[0], parse_codec(codec));  // the reply travels with the codec too
      EXPECT_TRUE(torch::equal(y[0], expect)) << (y[0] - expect).abs().max().item<double>();
      EXPECT_LT(((y[0] - whole[0]).abs().max() / whole[0].abs().max()).item<double>(), 0.1);
      EXPECT_EQ(tl.blocks[1].codec_up, codec);
      EXPECT_EQ(tl.blocks[1].codec_down, codec);
      // the plan's transfers name the codec of every float value that crosses
      for (const auto& tr : dep.plan().transfers) EXPECT_EQ(tr.codec, codec);
    }
  }
  EXPECT_THROW(([&] {
                 DeploymentOptions o;
                 o.codec = "int3";
                 Deployment dep(*model, std::vector<int>(A, 0), o);
               }()),
               Error);
}
