// runtime/deployment.cpp -- the device side (see tessera/runtime/deployment.h).
//
// One DEALER socket (ZMQ_IMMEDIATE: messages go only to a live connection, so a
// dead server is noticed at send time; send and receive bounded by the block's
// timeout). Request ids tie replies to requests; after any failure the socket is
// dropped, so a late reply can never be taken for a later request's.
#include "tessera/runtime/deployment.h"

#include <chrono>
#include <cmath>
#include <mutex>
#include <optional>
#include <thread>

#include "../atoms/model_impl.h"
#include "tensor_msg.h"
#include "tessera/core/error.h"

namespace tessera::runtime {

using Clock = std::chrono::steady_clock;

namespace {
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }
}  // namespace

struct Deployment::Impl {
  Model model;
  std::vector<int> placement;
  DeploymentOptions opt;
  zmq::context_t ctx{1};
  std::unique_ptr<zmq::socket_t> sock;
  uint64_t next_id = 1;
  std::array<uint8_t, 32> hash{};
  Clock::time_point down_until{};
  Timeline last;
  // One request at a time: run, ping, probe and echo share one socket (ZeroMQ sockets
  // are not thread-safe), and accessors copy under the lock.
  mutable std::mutex mu;

  Impl(Model m, std::vector<int> p, DeploymentOptions o) : model(std::move(m)), opt(std::move(o)) {
    TESSERA_CHECK(opt.timeout_ms > 0, InvalidArgument, "timeout_ms must be > 0, got {}", opt.timeout_ms);
    TESSERA_CHECK(opt.retry_ms >= 0, InvalidArgument, "retry_ms must be >= 0, got {}", opt.retry_ms);
    TESSERA_CHECK(opt.device_slowdown >= 1.0, InvalidArgument, "device_slowdown must be >= 1, got {}",
                  opt.device_slowdown);
    const bool curve = !opt.curve_server_key.empty() || !opt.curve_public_key.empty() || !opt.curve_secret_key.empty();
    TESSERA_CHECK(!curve || (opt.curve_server_key.size() == 40 && opt.curve_public_key.size() == 40 &&
                             opt.curve_secret_key.size() == 40),
                  InvalidArgument, "CURVE needs the server's public key and this client's key pair (40-char Z85 each)");
    hash = hash_from_hex(model.hash());
    set_placement(std::move(p));
    if (!opt.server.empty()) socket();  // a malformed endpoint is refused here, by name
  }

  ~Impl() {
    sock.reset();
    ctx.close();
  }

  void set_placement(std::vector<int> p) {
    TESSERA_CHECK(static_cast<int>(p.size()) == model.num_atoms(), InvalidArgument,
                  "placement has {} entries, the model has {} atoms", p.size(), model.num_atoms());
    for (size_t a = 0; a < p.size(); ++a)
      TESSERA_CHECK(p[a] == 0 || p[a] == 1, InvalidArgument,
                    "placement[{}] = {}: a deployment has two targets, 0 (this device) and 1 (the server)", a, p[a]);
    model.impl()->schedule(p);  // validates and caches the blocks now, not on the first request
    placement = std::move(p);
  }

  // Waits (Sleep) or not (Account) for an emulated duration; returns it.
  double emulate(double ms) {
    if (ms > 0 && opt.emulation == adapt::Emulation::Sleep)
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms));
    return ms;
  }

  static size_t message_bytes(const std::string& body, const std::vector<at::Tensor>& tensors) {
    size_t n = kHeaderBytes + body.size();
    for (const auto& t : tensors) n += t.nbytes() + 8 + 8 * t.dim() + 8;
    return n;
  }

  bool available() const { return !opt.server.empty() && Clock::now() >= down_until; }

  void mark_down() {
    sock.reset();
    down_until = Clock::now() + std::chrono::milliseconds(opt.retry_ms);
  }

  zmq::socket_t& socket() {
    if (!sock) {
      sock = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
      sock->set(zmq::sockopt::linger, 0);
      sock->set(zmq::sockopt::immediate, 1);
      sock->set(zmq::sockopt::sndtimeo, opt.timeout_ms);
      if (!opt.curve_server_key.empty()) {
        sock->set(zmq::sockopt::curve_serverkey, opt.curve_server_key);
        sock->set(zmq::sockopt::curve_publickey, opt.curve_public_key);
        sock->set(zmq::sockopt::curve_secretkey, opt.curve_secret_key);
      }
      try {
        sock->connect(opt.server);
      } catch (const zmq::error_t& e) {
        sock.reset();
        TESSERA_THROW(InvalidArgument, "cannot connect to server endpoint '{}': {}", opt.server, e.what());
      }
    }
    return *sock;
  }

  // Sends one message and waits for the reply with the same id until the deadline.
  // Returns nullopt (and sets err) on timeout, disconnection or a malformed reply.
  std::optional<Message> call(Header h, const std::string& body, const std::vector<at::Tensor>& tensors,
                              int timeout_ms, std::string& err, size_t* up = nullptr, size_t* down = nullptr,
                              double* link_ms = nullptr) {
    double lm = 0;
    if (opt.link) lm += emulate(opt.link->transmit(static_cast<double>(message_bytes(body, tensors))));
    if (h.type == MsgType::Request) h.budget_us = int64_t{timeout_ms} * 1000;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    h.request_id = next_id++;
    h.model_hash = hash;
    auto& s = socket();
    try {
      return exchange(s, h, body, tensors, timeout_ms, deadline, err, up, down, lm, link_ms);
    } catch (const zmq::error_t& e) {  // EINTR, a closed context, ...: the caller falls back
      err = fmt::format("ZeroMQ error talking to {}: {}", opt.server, e.what());
      return std::nullopt;
    }
  }

  std::optional<Message> exchange(zmq::socket_t& s, const Header& h, const std::string& body,
                                  const std::vector<at::Tensor>& tensors, int timeout_ms, Clock::time_point deadline,
                                  std::string& err, size_t* up, size_t* down, double lm, double* link_ms) {
    if (!send_message(s, h, body, tensors, /*delimiter=*/true, false, up)) {
      err = fmt::format("server {} not reachable within {} ms", opt.server, timeout_ms);
      return std::nullopt;
    }
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      zmq::pollitem_t items[] = {{static_cast<void*>(s), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 1, std::chrono::milliseconds(left));
      if (!(items[0].revents & ZMQ_POLLIN)) break;
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(s, std::back_inserter(frames), zmq::recv_flags::dontwait)) continue;
      size_t bytes = 0;
      for (const auto& f : frames) bytes += f.size();
      try {
        Message m = decode_message(frames, 1, 1ull << 34);
        if (m.header.request_id != h.request_id) continue;  // a late reply to an earlier request
        if (down) *down = bytes;
        if (opt.link) lm += emulate(opt.link->transmit(static_cast<double>(bytes)));
        if (link_ms) *link_ms = lm;
        return m;
      } catch (const Error& e) {
        err = "malformed reply: " + e.message();
        return std::nullopt;
      }
    }
    err = fmt::format("no reply from {} within {} ms", opt.server, timeout_ms);
    return std::nullopt;
  }

  // "" if a Reply carries what the block produces (count, dtypes, shapes, a finite
  // non-negative server time); else what is wrong, naming the output and the atoms.
  std::string check_reply(const Message& rep, const BlockImpl& blk) const {
    const auto& vals = model.graph().values;
    if (rep.tensors.size() != blk.outputs.size())
      return fmt::format("reply for atoms [{}] carries {} tensors, the block has {} outputs", fmt::join(blk.atoms, ", "),
                         rep.tensors.size(), blk.outputs.size());
    for (double v : {rep.header.server_ms, rep.header.queue_ms})
      if (!std::isfinite(v) || v < 0)
        return fmt::format("reply for atoms [{}] reports server_ms = {}, queue_ms = {}", fmt::join(blk.atoms, ", "),
                           rep.header.server_ms, rep.header.queue_ms);
    for (size_t i = 0; i < rep.tensors.size(); ++i) {
      const std::string bad = tensor_mismatch(rep.tensors[i], vals[blk.outputs[i]].info);
      if (!bad.empty())
        return fmt::format("reply output {} (value '{}') of atoms [{}] is {}", i, vals[blk.outputs[i]].name,
                           fmt::join(blk.atoms, ", "), bad);
    }
    return "";
  }

  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs) {
    std::lock_guard<std::mutex> lock(mu);
    model.check_inputs(inputs);
    const auto& G = model.graph();
    auto steps = model.impl()->schedule(placement);
    const auto t_start = Clock::now();
    Timeline tl;
    std::vector<at::Tensor> env(G.values.size());
    for (size_t i = 0; i < inputs.size(); ++i) env[G.inputs[i]] = inputs[i];
    std::vector<at::Tensor> args;
    for (const auto& st : *steps) {
      const auto& blk = *st.block;
      BlockTiming bt;
      bt.atoms = blk.atoms;
      bt.target = placement[blk.atoms.front()];
      args.clear();
      for (int v : blk.inputs) args.push_back(env[v]);
      std::vector<at::Tensor> outs;
      if (bt.target != 0) {
        if (available()) {
          Header h;
          h.type = MsgType::Request;
          h.atom_count = static_cast<uint32_t>(blk.atoms.size());
          size_t up = 0, down = 0;
          std::string err;
          const auto t0 = Clock::now();
          std::optional<Message> rep;
          double link_ms = 0;
          try {
            rep = call(h, encode_atoms(blk.atoms), args, opt.timeout_ms, err, &up, &down, &link_ms);
          } catch (const Error& e) {
            err = e.message();
          }
          bt.round_trip_ms = ms_since(t0) + (opt.emulation == adapt::Emulation::Account ? link_ms : 0.0);
          bt.link_ms = link_ms;
          if (rep && rep->header.type == MsgType::Reply) err = check_reply(*rep, blk);
          if (rep && rep->header.type == MsgType::Reply && err.empty()) {
            outs = std::move(rep->tensors);
            bt.remote = true;
            bt.server_ms = rep->header.server_ms;
            bt.queue_ms = rep->header.queue_ms;
            bt.transfer_ms = std::max(0.0, bt.round_trip_ms - bt.server_ms - bt.queue_ms);
            bt.bytes_up = up;
            bt.bytes_down = down;
          } else {
            if (rep && rep->header.type == MsgType::Error) err = "server error: " + rep->body;
            else if (rep && err.empty()) err = fmt::format("unexpected {} reply", msg_type_name(rep->header.type));
            bt.error = err;
            mark_down();
          }
        } else {
          bt.error = opt.server.empty() ? "no server configured" : "server in back-off after a failure";
        }
        bt.fallback = !bt.remote;
      }
      if (!bt.remote) {
        const auto t0 = Clock::now();
        outs = blk.run(args);
        const double ms = ms_since(t0);
        const double extra = emulate((opt.device_slowdown - 1.0) * ms);
        bt.compute_ms = opt.emulation == adapt::Emulation::Account ? ms + extra : ms_since(t0);
      }
      for (size_t i = 0; i < outs.size(); ++i) env[blk.outputs[i]] = std::move(outs[i]);
      for (int v : st.free_after) env[v].reset();
      tl.device_ms += bt.compute_ms;
      tl.transfer_ms += bt.transfer_ms;
      tl.server_ms += bt.server_ms;
      tl.queue_ms += bt.queue_ms;
      tl.fallback |= bt.fallback;
      tl.blocks.push_back(std::move(bt));
    }
    std::vector<at::Tensor> out;
    for (int v : G.outputs) out.push_back(env[v]);
    tl.total_ms = ms_since(t_start);
    if (opt.emulation == adapt::Emulation::Account) {  // add what was accounted, not slept
      for (const auto& b : tl.blocks) {
        tl.total_ms += b.remote ? b.link_ms : 0.0;
        if (!b.remote) tl.total_ms += b.compute_ms - b.compute_ms / opt.device_slowdown;
      }
    }
    last = std::move(tl);
    return out;
  }
};

Deployment::Deployment(Model model, std::vector<int> placement, DeploymentOptions options)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(placement), std::move(options))) {}
Deployment::~Deployment() = default;
Deployment::Deployment(Deployment&&) noexcept = default;
Deployment& Deployment::operator=(Deployment&&) noexcept = default;

std::vector<at::Tensor> Deployment::run(const std::vector<at::Tensor>& inputs) { return impl_->run(inputs); }
void Deployment::set_placement(std::vector<int> placement) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->set_placement(std::move(placement));
}
std::vector<int> Deployment::placement() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->placement;
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
  TESSERA_CHECK(!impl_->opt.server.empty(), InvalidArgument, "no server configured");
  std::lock_guard<std::mutex> lock(impl_->mu);
  Header h;
  h.type = MsgType::Ping;
  std::string err;
  auto rep = impl_->call(h, "", {}, timeout_ms, err);
  if (!rep || rep->header.type != MsgType::Pong) {
    impl_->sock.reset();
    return "";
  }
  return rep->body;
}

double Deployment::probe(size_t bytes) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->opt.server.empty() || !impl_->available()) return -1;
  Header h;
  h.type = MsgType::Echo;
  std::string err;
  double link_ms = 0;
  const auto t0 = Clock::now();
  auto rep = impl_->call(h, "", {at::zeros({static_cast<int64_t>(bytes)}, at::kByte)}, impl_->opt.timeout_ms, err,
                         nullptr, nullptr, &link_ms);
  if (!rep || rep->header.type != MsgType::Echo) {
    impl_->mark_down();
    return -1;
  }
  // the link's round trip: without the wait for a server worker
  const double queued = std::isfinite(rep->header.queue_ms) ? std::max(0.0, rep->header.queue_ms) : 0.0;
  return std::max(0.0, ms_since(t0) - queued) + (impl_->opt.emulation == adapt::Emulation::Account ? link_ms : 0.0);
}

std::vector<at::Tensor> Deployment::echo(const std::vector<at::Tensor>& tensors) {
  TESSERA_CHECK(!impl_->opt.server.empty(), InvalidArgument, "no server configured");
  std::lock_guard<std::mutex> lock(impl_->mu);
  Header h;
  h.type = MsgType::Echo;
  std::string err;
  auto rep = impl_->call(h, "", tensors, impl_->opt.timeout_ms, err);
  if (!rep) {
    impl_->sock.reset();
    TESSERA_THROW(Timeout, "echo failed: {}", err);
  }
  TESSERA_CHECK(rep->header.type == MsgType::Echo, Runtime, "echo answered with {}: {}",
                msg_type_name(rep->header.type), rep->body);
  return std::move(rep->tensors);
}

}  // namespace tessera::runtime
