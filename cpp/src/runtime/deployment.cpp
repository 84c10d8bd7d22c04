// runtime/deployment.cpp -- the device side (see tessera/runtime/deployment.h).
//
// Talks to each server through a transport::Channel (a DEALER with ZMQ_IMMEDIATE,
// wrapped in an emulated link when one is given). After any failure the channel
// drops its connection, so a late reply can never be taken for a later request's.
// One server per request (select(), or select_server()'s choice); a block whose server
// fails or is Busy runs here, and later remote blocks of the request choose again.
#include "tessera/runtime/deployment.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <ATen/ATen.h>

#include "tessera/core/error.h"
#include "tessera/graph/tensor.h"
#include "tessera/transport/channel.h"

namespace tessera::runtime {

using Clock = std::chrono::steady_clock;
using transport::Emulation;
using transport::Header;
using transport::Message;
using transport::MsgType;

namespace {
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }
constexpr int kTargets = 2;            // 0 = this device, 1 = the server
constexpr size_t kMaxCheckedPlans = 256;

// The model's DAG with `codec` on every value it applies to (plans from placements carry it).
AtomDag coded_dag(const Model& model, const std::string& codec) {
  AtomDag dag = model.dag();
  const transport::Codec c = transport::parse_codec(codec);  // an unknown codec is refused here, by name
  if (c == transport::Codec::Raw) return dag;
  for (auto& v : dag.values)
    if (!v.dtype.empty() && transport::codec_applies(c, v.dtype, v.rank)) v.codec = codec;
  return dag;
}
}  // namespace

struct Deployment::Impl {
  // A plan that passed plan::validate, with its blocks combined.
  struct Active {
    plan::Plan plan;
    Schedule schedule;
    // Per block: the codecs of its inputs (a remote block's request), of its outputs (the reply).
    std::vector<std::vector<transport::Codec>> codecs_in;
    std::vector<transport::Codec> codec_out;
  };

  Model model;
  AtomDag dag;
  std::shared_ptr<const Active> active;
  std::map<std::vector<int>, std::shared_ptr<const Active>> checked;  // by placement, bounded
  DeploymentOptions opt;
  // One per server: its channel and what this device measured of it.
  struct Remote {
    std::unique_ptr<transport::Channel> channel;
    Clock::time_point down_until{}, busy_until{};
    bool probe = false;        // failed before: Ping it before the next request (several servers)
    ServerState state;
    uint64_t last_used = 0;    // request number it last served
    int samples = 0;
  };
  std::vector<Remote> remotes;
  int pinned = -1;             // select_server()'s choice, for the next run()
  int current = -1;            // the server of the request running
  uint64_t request_no = 0;
  std::mt19937_64 rng;
  std::array<uint8_t, 32> hash{};
  Timeline last;
  // One request at a time: run, ping, probe and echo share one channel (ZeroMQ sockets
  // are not thread-safe), and accessors copy under the lock.
  mutable std::mutex mu;

  Impl(Model m, plan::Plan p, DeploymentOptions o)
      : model(std::move(m)), dag(coded_dag(model, o.codec)), opt(std::move(o)) {
    TESSERA_CHECK(opt.timeout_ms > 0, InvalidArgument, "timeout_ms must be > 0, got {}", opt.timeout_ms);
    TESSERA_CHECK(opt.retry_ms >= 0, InvalidArgument, "retry_ms must be >= 0, got {}", opt.retry_ms);
    TESSERA_CHECK(opt.device_slowdown >= 1.0, InvalidArgument, "device_slowdown must be >= 1, got {}",
                  opt.device_slowdown);
    TESSERA_CHECK(opt.busy_retry_ms >= 0, InvalidArgument, "busy_retry_ms must be >= 0, got {}", opt.busy_retry_ms);
    TESSERA_CHECK(opt.probe_timeout_ms > 0, InvalidArgument, "probe_timeout_ms must be > 0, got {}",
                  opt.probe_timeout_ms);
    TESSERA_CHECK(opt.server_policy == "best" || opt.server_policy == "p2c" || opt.server_policy == "first",
                  InvalidArgument, "unknown server_policy '{}' (best, p2c, first)", opt.server_policy);
    hash = transport::hash_from_hex(model.hash());
    rng.seed(opt.seed);
    set_plan(std::move(p));
    std::vector<std::string> eps;
    if (!opt.server.empty()) eps.push_back(opt.server);
    for (const auto& e : opt.servers) {
      TESSERA_CHECK(!e.empty(), InvalidArgument, "an empty endpoint in servers");
      if (std::find(eps.begin(), eps.end(), e) == eps.end()) eps.push_back(e);
    }
    for (const auto& e : eps) {
      transport::ZmqChannelOptions co;
      co.endpoint = e;
      co.curve_server_key = opt.curve_server_key;
      co.curve_public_key = opt.curve_public_key;
      co.curve_secret_key = opt.curve_secret_key;
      co.send_timeout_ms = opt.timeout_ms;
      Remote r;
      r.channel = transport::connect_zmq(co);  // a malformed endpoint is refused here, by name
      if (opt.link) r.channel = transport::emulate(std::move(r.channel), opt.link, opt.emulation);
      r.state.endpoint = e;
      remotes.push_back(std::move(r));
    }
  }

  // Checks a plan on receipt (plan::validate over the model's DAG, two targets) and
  // combines its blocks, in its order; remembered per placement.
  void set_plan(plan::Plan p) {
    if (auto it = checked.find(p.placement); it != checked.end() && same_blocks(it->second->plan, p)) {
      active = it->second;
      return;
    }
    plan::check(p, dag, kTargets);
    std::vector<std::vector<int>> groups;
    groups.reserve(p.blocks.size());
    for (const auto& b : p.blocks) groups.push_back(b.atoms);
    auto a = std::make_shared<Active>();
    a->schedule = model.schedule(groups);  // validates and caches the blocks now, not on the first request
    // The device's own blocks are spliced now (their atoms loaded); the server's stay unloaded
    // unless a fallback runs them here: the device holds the memory of its part only.
    for (size_t s = 0; s < p.blocks.size(); ++s)
      if (p.blocks[s].target == 0) a->schedule.block(s).build();
    // Codecs per graph value, from the plan's transfers (DAG value ids).
    std::map<std::pair<int, int>, transport::Codec> by;  // (dag value, destination) -> codec
    for (const auto& tr : p.transfers) by[{tr.value, tr.to}] = transport::parse_codec(tr.codec);
    auto codec_of = [&](int graph_value, int to) {
      auto it = by.find({model.dag_value(graph_value), to});
      return it == by.end() ? transport::Codec::Raw : it->second;
    };
    for (size_t s = 0; s < p.blocks.size(); ++s) {
      const Block blk = a->schedule.block(s);
      std::vector<transport::Codec> in;
      transport::Codec out = transport::Codec::Raw;
      for (int v : blk.inputs()) in.push_back(codec_of(v, p.blocks[s].target));
      for (int v : blk.outputs())
        if (auto c = codec_of(v, 0); c != transport::Codec::Raw) out = c;
      a->codecs_in.push_back(std::move(in));
      a->codec_out.push_back(out);
    }
    a->plan = std::move(p);
    if (checked.size() >= kMaxCheckedPlans) checked.clear();
    checked[a->plan.placement] = a;
    active = std::move(a);
  }

  static bool same_blocks(const plan::Plan& a, const plan::Plan& b) {
    if (a.blocks.size() != b.blocks.size()) return false;
    for (size_t i = 0; i < a.blocks.size(); ++i)
      if (a.blocks[i].atoms != b.blocks[i].atoms || a.blocks[i].target != b.blocks[i].target) return false;
    if (a.transfers.size() != b.transfers.size()) return false;
    for (size_t i = 0; i < a.transfers.size(); ++i)
      if (a.transfers[i].codec != b.transfers[i].codec) return false;
    return true;
  }

  void set_placement(const std::vector<int>& p) {
    if (auto it = checked.find(p); it != checked.end() && it->second->plan.algorithm == "placement") {
      active = it->second;
      return;
    }
    set_plan(plan::from_placement(dag, p, kTargets));
  }

  // Waits (Sleep) or not (Account) for an emulated duration; returns it.
  double emulate(double ms) const {
    if (ms > 0 && opt.emulation == Emulation::Sleep)
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms));
    return ms;
  }
  bool accounting() const { return opt.link && opt.emulation == Emulation::Account; }

  bool usable(const Remote& r, Clock::time_point now) const { return now >= r.down_until && now >= r.busy_until; }
  bool available() const {
    const auto now = Clock::now();
    for (const auto& r : remotes)
      if (usable(r, now)) return true;
    return false;
  }

  void mark_down(int s) {
    Remote& r = remotes[static_cast<size_t>(s)];
    r.channel->reset();  // a fresh connection: a late reply is never taken for a later request's
    r.down_until = Clock::now() + std::chrono::milliseconds(opt.retry_ms);
    r.probe = remotes.size() > 1;
    ++r.state.failures;
  }

  static double ewma(double old, double x, int samples) { return samples == 0 ? x : 0.7 * old + 0.3 * x; }

  // The server for the next request (-1: none is available), by server_policy. Several
  // servers: one that failed before answers a Ping first.
  int select() {
    if (remotes.empty()) return -1;
    std::vector<int> ok;
    for (size_t s = 0; s < remotes.size(); ++s) {
      Remote& r = remotes[s];
      if (!usable(r, Clock::now())) continue;
      if (r.probe) {
        Header h;
        h.type = MsgType::Ping;
        h.model_hash = hash;
        // never waits to be sent: a server that is not connected (its reconnection goes on in
        // the background) is not back yet, and the request does not pay for finding out
        r.channel->set_send_timeout(0);
        auto rep = r.channel->call(h, "", {}, std::min(opt.probe_timeout_ms, opt.timeout_ms));
        r.channel->set_send_timeout(opt.timeout_ms);
        if (!rep || rep->reply.header.type != MsgType::Pong) {  // not back: another back-off (the
          r.down_until = Clock::now() + std::chrono::milliseconds(opt.retry_ms);  // connection is kept)
          continue;
        }
        r.probe = false;
      }
      ok.push_back(static_cast<int>(s));
    }
    if (ok.empty()) return -1;
    if (opt.server_policy == "first" || ok.size() == 1) return ok[0];
    if (opt.server_policy == "p2c") {
      std::uniform_int_distribution<size_t> pick(0, ok.size() - 1);
      const int a = ok[pick(rng)];
      int b = a;
      while (b == a) b = ok[pick(rng)];
      const auto& ra = remotes[static_cast<size_t>(a)].state;
      const auto& rb = remotes[static_cast<size_t>(b)].state;
      return ra.ewma_queue_ms <= rb.ewma_queue_ms ? a : b;
    }
    for (int s : ok) {  // best: a server never tried, or not for a while, is tried
      const Remote& r = remotes[static_cast<size_t>(s)];
      if (r.samples == 0 || request_no - r.last_used > 16) return s;
    }
    return *std::min_element(ok.begin(), ok.end(), [&](int a, int b) {
      return remotes[static_cast<size_t>(a)].state.ewma_ms < remotes[static_cast<size_t>(b)].state.ewma_ms;
    });
  }

  Expected<transport::Exchange> call(int s, Header h, const std::string& body, const std::vector<at::Tensor>& tensors,
                                     int timeout_ms, const std::vector<transport::Codec>& codecs = {}) {
    if (h.type == MsgType::Request) h.budget_us = int64_t{timeout_ms} * 1000;
    h.model_hash = hash;
    return remotes[static_cast<size_t>(s)].channel->call(h, body, tensors, timeout_ms, codecs);
  }

  // "" if a Reply carries what the block produces (count, dtypes, shapes, a finite
  // non-negative server time); else what is wrong, naming the output and the atoms.
  std::string check_reply(const Message& rep, const Block& blk) const {
    const auto& vals = model.graph().values;
    if (rep.tensors.size() != blk.outputs().size())
      return fmt::format("reply for atoms [{}] carries {} tensors, the block has {} outputs",
                         fmt::join(blk.atoms(), ", "), rep.tensors.size(), blk.outputs().size());
    for (double v : {rep.header.server_ms, rep.header.queue_ms})
      if (!std::isfinite(v) || v < 0)
        return fmt::format("reply for atoms [{}] reports server_ms = {}, queue_ms = {}", fmt::join(blk.atoms(), ", "),
                           rep.header.server_ms, rep.header.queue_ms);
    for (size_t i = 0; i < rep.tensors.size(); ++i) {
      const std::string bad = tensor_mismatch(rep.tensors[i], vals[blk.outputs()[i]].info);
      if (!bad.empty())
        return fmt::format("reply output {} (value '{}') of atoms [{}] is {}", i, vals[blk.outputs()[i]].name,
                           fmt::join(blk.atoms(), ", "), bad);
    }
    return "";
  }

  // Runs one planned-remote block on the server; fills bt and returns the outputs, or
  // nothing (bt.error says why) when the caller has to run it here.
  std::optional<std::vector<at::Tensor>> remote(const Block& blk, const std::vector<at::Tensor>& args,
                                                BlockTiming& bt, const std::vector<transport::Codec>& codecs,
                                                transport::Codec reply_codec) {
    if (current >= 0 && !usable(remotes[static_cast<size_t>(current)], Clock::now())) current = select();
    if (current < 0) {
      bt.error = remotes.empty() ? "no server configured"
                                 : remotes.size() == 1 ? "server in back-off after a failure or Busy"
                                                       : "every server is in a back-off after a failure or Busy";
      return std::nullopt;
    }
    const int s = current;
    Remote& r = remotes[static_cast<size_t>(s)];
    bt.server = s;
    Header h;
    h.type = MsgType::Request;
    h.atom_count = static_cast<uint32_t>(blk.atoms().size());
    h.reply_codec = static_cast<uint32_t>(reply_codec);
    for (auto c : codecs)
      if (c != transport::Codec::Raw) bt.codec_up = transport::codec_name(c);
    if (reply_codec != transport::Codec::Raw) bt.codec_down = transport::codec_name(reply_codec);
    const auto t0 = Clock::now();
    Expected<transport::Exchange> rep = Expected<transport::Exchange>::failure("");
    std::string err;
    try {
      rep = call(s, h, transport::encode_atoms(blk.atoms()), args, opt.timeout_ms, codecs);
      if (!rep) err = rep.error();
    } catch (const Error& e) {
      err = e.message();
    }
    const double link_ms = rep ? rep->link_ms : 0.0;
    bt.round_trip_ms = ms_since(t0) + (accounting() ? link_ms : 0.0);
    bt.link_ms = link_ms;
    if (rep) {
      const Message& m = rep->reply;
      if (m.header.type == MsgType::Busy) {  // the server is alive and full: run here now, ask it again soon
        bt.busy = true;
        bt.busy_wait_ms = std::isfinite(m.header.queue_ms) ? std::max(0.0, m.header.queue_ms) : 0.0;
        bt.error = fmt::format("{} is busy: {}", r.state.endpoint, m.body);
        ++r.state.busy;
        r.state.ewma_queue_ms = ewma(r.state.ewma_queue_ms, bt.busy_wait_ms, r.samples);
        r.busy_until = Clock::now() + std::chrono::milliseconds(opt.busy_retry_ms);
        return std::nullopt;
      }
      if (m.header.type == MsgType::Reply) err = check_reply(m, blk);
      else if (m.header.type == MsgType::Error) err = "server error: " + m.body;
      else err = fmt::format("unexpected {} reply", transport::msg_type_name(m.header.type));
      if (err.empty()) {
        bt.remote = true;
        bt.server_ms = m.header.server_ms;
        bt.queue_ms = m.header.queue_ms;
        bt.transfer_ms = std::max(0.0, bt.round_trip_ms - bt.server_ms - bt.queue_ms);
        bt.bytes_up = rep->bytes_up;
        bt.bytes_down = rep->bytes_down;
        bt.batch = static_cast<int>(transport::reply_batch_size(m.header.flags));
        return std::move(rep->reply.tensors);
      }
    }
    bt.error = remotes.size() > 1 ? r.state.endpoint + ": " + err : err;
    mark_down(s);
    return std::nullopt;
  }

  // What this request taught about each server it used: round trips and queue waits.
  void learn(const Timeline& tl) {
    std::map<int, std::pair<double, double>> by;  // server -> (round trips, queue waits)
    for (const auto& b : tl.blocks)
      if (b.remote) by[b.server].first += b.round_trip_ms, by[b.server].second += b.queue_ms;
    for (const auto& [s, v] : by) {
      Remote& r = remotes[static_cast<size_t>(s)];
      r.state.ewma_ms = ewma(r.state.ewma_ms, v.first, r.samples);
      r.state.ewma_queue_ms = ewma(r.state.ewma_queue_ms, v.second, r.samples);
      ++r.samples;
    }
  }

  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs) {
    std::lock_guard<std::mutex> lock(mu);
    model.check_inputs(inputs);
    const auto& G = model.graph();
    const auto plan_now = active;  // the plan of this request, whatever set_plan does meanwhile
    const Schedule& steps = plan_now->schedule;
    const auto t_start = Clock::now();
    Timeline tl;
    ++request_no;
    current = -1;
    for (const auto& b : plan_now->plan.blocks)
      if (b.target != 0) {  // a server only when the plan sends something
        current = pinned >= 0 ? pinned : select();
        break;
      }
    pinned = -1;
    if (current >= 0) {
      Remote& r = remotes[static_cast<size_t>(current)];
      ++r.state.requests;
      r.last_used = request_no;
    }
    tl.server = current;
    std::vector<at::Tensor> env(G.values.size());
    for (size_t i = 0; i < inputs.size(); ++i) env[G.inputs[i]] = inputs[i];
    std::vector<at::Tensor> args;
    for (size_t s = 0; s < steps.size(); ++s) {
      const Block blk = steps.block(s);
      BlockTiming bt;
      bt.atoms = blk.atoms();
      bt.target = plan_now->plan.blocks[s].target;
      args.clear();
      for (int v : blk.inputs()) args.push_back(env[v]);
      std::vector<at::Tensor> outs;
      if (bt.target != 0) {
        if (auto r = remote(blk, args, bt, plan_now->codecs_in[s], plan_now->codec_out[s])) outs = std::move(*r);
        bt.fallback = !bt.remote;
      }
      if (!bt.remote) {
        const auto t0 = Clock::now();
        outs = blk(args);
        const double ms = ms_since(t0);
        const double extra = emulate((opt.device_slowdown - 1.0) * ms);
        bt.compute_ms = opt.emulation == Emulation::Account ? ms + extra : ms_since(t0);
      }
      for (size_t i = 0; i < outs.size(); ++i) env[blk.outputs()[i]] = std::move(outs[i]);
      for (int v : steps.free_after(s)) env[v].reset();
      tl.device_ms += bt.compute_ms;
      tl.transfer_ms += bt.transfer_ms;
      tl.server_ms += bt.server_ms;
      tl.queue_ms += bt.queue_ms;
      tl.fallback |= bt.fallback;
      tl.blocks.push_back(std::move(bt));
    }
    std::vector<at::Tensor> out;
    for (int v : G.outputs) out.push_back(env[v]);
    learn(tl);
    tl.total_ms = ms_since(t_start);
    if (opt.emulation == Emulation::Account) {  // add what was accounted, not slept
      for (const auto& b : tl.blocks) {
        tl.total_ms += b.remote ? b.link_ms : 0.0;
        if (!b.remote) tl.total_ms += b.compute_ms - b.compute_ms / opt.device_slowdown;
      }
    }
    last = std::move(tl);
    return out;
  }
};

Deployment::Deployment(Model model, plan::Plan plan, DeploymentOptions options)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(plan), std::move(options))) {}
Deployment::Deployment(Model model, std::vector<int> placement, DeploymentOptions options)
    // options is copied, not moved: the argument order of evaluation is unspecified
    : Deployment(model, plan::from_placement(coded_dag(model, options.codec), placement, kTargets), options) {}
Deployment::~Deployment() = default;
Deployment::Deployment(Deployment&&) noexcept = default;
Deployment& Deployment::operator=(Deployment&&) noexcept = default;

std::vector<at::Tensor> Deployment::run(const std::vector<at::Tensor>& inputs) { return impl_->run(inputs); }
void Deployment::set_plan(plan::Plan plan) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->set_plan(std::move(plan));
}
void Deployment::set_device_slowdown(double slowdown) {
  TESSERA_CHECK(std::isfinite(slowdown) && slowdown >= 1.0, InvalidArgument, "device_slowdown must be >= 1, got {}",
                slowdown);
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->opt.device_slowdown = slowdown;
}
double Deployment::device_slowdown() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->opt.device_slowdown;
}

void Deployment::set_placement(const std::vector<int>& placement) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->set_placement(placement);
}
std::vector<int> Deployment::placement() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->active->plan.placement;
}
plan::Plan Deployment::plan() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->active->plan;
}
Timeline Deployment::last_timeline() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->last;
}
bool Deployment::server_available() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->available();
}
const Model& Deployment::model() const { return impl_->model; }

std::string Deployment::ping(int timeout_ms) {
  TESSERA_CHECK(!impl_->remotes.empty(), InvalidArgument, "no server configured");
  std::lock_guard<std::mutex> lock(impl_->mu);
  Header h;
  h.type = MsgType::Ping;
  auto rep = impl_->call(0, h, "", {}, timeout_ms);
  if (!rep || rep->reply.header.type != MsgType::Pong) {
    impl_->remotes[0].channel->reset();
    return "";
  }
  return rep->reply.body;
}

double Deployment::probe(size_t bytes) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  const int s = impl_->pinned >= 0 ? impl_->pinned : impl_->select();
  if (s < 0) return -1;
  Header h;
  h.type = MsgType::Echo;
  const auto t0 = Clock::now();
  auto rep = impl_->call(s, h, "", {at::zeros({static_cast<int64_t>(bytes)}, at::kByte)}, impl_->opt.timeout_ms);
  if (!rep || rep->reply.header.type != MsgType::Echo) {
    impl_->mark_down(s);
    return -1;
  }
  // the link's round trip: without the wait for a server worker
  const double q = rep->reply.header.queue_ms;
  const double queued = std::isfinite(q) ? std::max(0.0, q) : 0.0;
  return std::max(0.0, ms_since(t0) - queued) + (impl_->accounting() ? rep->link_ms : 0.0);
}

std::vector<at::Tensor> Deployment::echo(const std::vector<at::Tensor>& tensors) {
  TESSERA_CHECK(!impl_->remotes.empty(), InvalidArgument, "no server configured");
  std::lock_guard<std::mutex> lock(impl_->mu);
  Header h;
  h.type = MsgType::Echo;
  auto rep = impl_->call(0, h, "", tensors, impl_->opt.timeout_ms);
  if (!rep) TESSERA_THROW(Deadline, "echo failed: {}", rep.error());
  TESSERA_CHECK(rep->reply.header.type == MsgType::Echo, Engine, "echo answered with {}: {}",
                transport::msg_type_name(rep->reply.header.type), rep->reply.body);
  return std::move(rep->reply.tensors);
}

std::vector<std::string> Deployment::servers() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<std::string> out;
  for (const auto& r : impl_->remotes) out.push_back(r.state.endpoint);
  return out;
}

std::vector<ServerState> Deployment::server_states() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<ServerState> out;
  const auto now = Clock::now();
  for (const auto& r : impl_->remotes) {
    out.push_back(r.state);
    out.back().available = impl_->usable(r, now);
  }
  return out;
}

int Deployment::select_server() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->pinned = impl_->select();
  return impl_->pinned;
}

}  // namespace tessera::runtime
