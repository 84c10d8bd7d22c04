// runtime/server.cpp -- the edge server (see tessera/runtime/server.h).
//
// Threads: with one worker, a single thread owns the ROUTER and answers directly.
// With more, one proxy thread owns the ROUTER (devices) and an inproc DEALER
// (workers), zmq::proxy between them; `workers` threads with REP sockets that
// decode, check, run and answer; a ZAP thread when CURVE is on. stop() shuts the
// context down, which wakes every blocking call with ETERM. What is not request
// handling lives elsewhere: the repository (repository.h), the ZAP allow-list
// (transport/security.h), the stamping proxy and envelopes (transport/proxy.h).
#include "tessera/runtime/server.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <map>
#include <optional>
#include <mutex>
#include <thread>

#include "repository.h"
#include "tessera/atoms/model.h"
#include "tessera/core/error.h"
#include "tessera/graph/tensor.h"
#include "tessera/transport/message.h"
#include "tessera/transport/proxy.h"
#include "tessera/transport/security.h"

namespace tessera::runtime {
using namespace transport;

std::string ServerStats::to_json() const {
  return fmt::format(
      R"({{"requests": {}, "replies": {}, "errors": {}, "late": {}, "pings": {}, "echoes": {}, "bytes_in": {}, )"
      R"("bytes_out": {}, "busy_ms": {:.3f}}})",
      requests, replies, errors, late, pings, echoes, bytes_in, bytes_out, busy_ms);
}

std::pair<std::string, std::string> curve_keypair() { return transport::curve_keypair(); }

struct Server::Impl {
  ServerOptions opt;
  Repository models;  // hex hash -> model (atoms load on demand)
  std::unique_ptr<zmq::context_t> ctx;
  std::vector<std::thread> threads;
  std::string endpoint;
  std::string backend;
  std::atomic<bool> running{false};
  std::atomic<uint64_t> requests{0}, replies{0}, errors{0}, late{0}, pings{0}, echoes{0}, bytes_in{0}, bytes_out{0};
  std::atomic<uint64_t> busy_us{0};

  void proxy_loop(std::promise<std::string>& bound) {
    zmq::socket_t front, back;
    try {
      front = zmq::socket_t(*ctx, zmq::socket_type::router);
      back = zmq::socket_t(*ctx, zmq::socket_type::dealer);
      front.set(zmq::sockopt::linger, 0);
      back.set(zmq::sockopt::linger, 0);
      front.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(opt.max_message_bytes + (1 << 20)));
      if (!opt.curve_secret_key.empty()) {
        front.set(zmq::sockopt::curve_server, 1);
        front.set(zmq::sockopt::curve_secretkey, opt.curve_secret_key);
      }
      front.bind(opt.bind);
      back.bind(backend);
      bound.set_value(front.get(zmq::sockopt::last_endpoint));
    } catch (const zmq::error_t& e) {
      bound.set_exception(std::make_exception_ptr(
          Error(ErrorKind::InvalidArgument, fmt::format("cannot bind {}: {}", opt.bind, e.what()), "Server::start")));
      return;
    }
    if (opt.workers == 1) {
      back.close();
      direct_loop(front);
      return;
    }
    run_stamping_proxy(front, back);
  }

  // Routing frames (identity + empty delimiter) when a worker owns the ROUTER itself.
  static void send_envelope(zmq::socket_t& s, std::vector<zmq::message_t>* env) {
    if (!env) return;
    for (auto& f : *env) s.send(zmq::message_t(f.data(), f.size()), zmq::send_flags::sndmore);
  }

  void reply_error(zmq::socket_t& s, std::vector<zmq::message_t>* env, uint64_t rid, const std::string& msg) {
    ++errors;
    Header h;
    h.type = MsgType::Error;
    h.request_id = rid;
    if (opt.verbose) std::fprintf(stderr, "tessera-server: request %llu: error: %s\n", (unsigned long long)rid, msg.c_str());
    send_envelope(s, env);
    send_message(s, h, msg, {}, false);
  }

  // frames[first..] is the message; frames[0..first) its routing envelope (ROUTER mode).
  // `received`: when the server took the request off the network (the proxy's stamp
  // with several workers; now with one): the budget counts from there, and the time
  // until a worker starts on it is reported as queue_ms.
  void handle(zmq::socket_t& s, std::vector<zmq::message_t>& frames, size_t first,
              std::optional<std::chrono::steady_clock::time_point> stamp = std::nullopt) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto received = stamp ? std::min(*stamp, t0) : t0;
    const double queue_ms = std::max(0.0, std::chrono::duration<double, std::milli>(t0 - received).count());
    std::vector<zmq::message_t> env_frames;
    for (size_t i = 0; i < first; ++i) env_frames.push_back(std::move(frames[i]));
    std::vector<zmq::message_t>* env = first ? &env_frames : nullptr;
    uint64_t rid = 0;
    uint64_t in = 0;
    for (size_t i = first; i < frames.size(); ++i) in += frames[i].size();
    bytes_in += in;
    try {
      if (frames.size() > first && frames[first].size() >= 16)
        std::memcpy(&rid, static_cast<const char*>(frames[first].data()) + 8, 8);
      Message m = decode_message(frames, first, opt.max_message_bytes);
      Header h;
      h.request_id = m.header.request_id;
      h.model_hash = m.header.model_hash;
      size_t out = 0;
      switch (m.header.type) {
        case MsgType::Ping: {
          ++pings;
          h.type = MsgType::Pong;
          send_envelope(s, env);
          send_message(s, h, stats_json(), {}, false, false, &out);
          break;
        }
        case MsgType::Echo: {
          ++echoes;
          h.type = MsgType::Echo;
          h.queue_ms = queue_ms;  // probes measure the link: the device subtracts the wait
          send_envelope(s, env);
          send_message(s, h, "", m.tensors, false, false, &out);
          break;
        }
        case MsgType::Request: {
          ++requests;
          const std::string hex = hash_to_hex(m.header.model_hash);
          const Model* found = models.find(hex);
          TESSERA_CHECK(found, InvalidArgument, "unknown model {}: this server serves {} model(s)",
                        hex.substr(0, 16), models.size());
          TESSERA_CHECK(m.header.atom_count > 0, InvalidArgument, "request names no atoms");
          auto atoms = decode_atoms(m.body.data(), m.body.size(), m.header.atom_count);
          const Model& model = *found;
          for (int a : atoms)
            TESSERA_CHECK(a >= 0 && a < model.num_atoms(), InvalidArgument,
                          "atom id {} out of range: model {} has {} atoms", a, hex.substr(0, 16), model.num_atoms());
          const auto spent_us = [&] {
            return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                         received)
                .count();
          };
          if (m.header.budget_us > 0)
            TESSERA_CHECK(spent_us() <= m.header.budget_us, Timeout,
                          "the device's budget of {:.1f} ms for atoms [{}] was spent before the block started",
                          m.header.budget_us / 1e3, fmt::join(atoms, ", "));
          Block block = model.combine(atoms);
          const auto& vals = model.graph().values;
          TESSERA_CHECK(m.tensors.size() == block.inputs().size(), InvalidArgument,
                        "block of atoms [{}] takes {} tensors, the request carries {}", fmt::join(block.atoms(), ", "),
                        block.inputs().size(), m.tensors.size());
          for (size_t i = 0; i < m.tensors.size(); ++i) {
            const std::string bad = tensor_mismatch(m.tensors[i], vals[block.inputs()[i]].info);
            TESSERA_CHECK(bad.empty(), InvalidArgument, "block input {} (value '{}') is {}", i,
                          vals[block.inputs()[i]].name, bad);
          }
          auto outputs = block(m.tensors);
          for (size_t i = 0; i < outputs.size(); ++i)  // every output can go on the wire, before any frame is sent
            TESSERA_CHECK(outputs[i].defined() && has_wire_dtype(outputs[i]), InvalidArgument,
                          "output {} (value '{}') of atoms [{}] cannot be sent: dtype {}", i,
                          vals[block.outputs()[i]].name, fmt::join(atoms, ", "),
                          outputs[i].defined() ? c10::toString(outputs[i].scalar_type()) : "undefined");
          const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
          if (m.header.budget_us > 0 && spent_us() > m.header.budget_us) ++late;
          h.type = MsgType::Reply;
          h.server_ms = ms;
          h.queue_ms = queue_ms;
          ++replies;  // counted before the reply leaves: a client that got it sees it counted
          send_envelope(s, env);
          send_message(s, h, "", outputs, false, false, &out);
          break;
        }
        default:
          TESSERA_THROW(InvalidArgument, "a server does not accept {} messages", msg_type_name(m.header.type));
      }
      bytes_out += out;
    } catch (const Error& e) {
      reply_error(s, env, rid, e.message());
    } catch (const zmq::error_t&) {
      throw;
    } catch (const c10::Error& e) {  // LibTorch's message without its C++ backtrace
      reply_error(s, env, rid, std::string("internal error: ") + e.what_without_backtrace());
    } catch (const std::exception& e) {
      reply_error(s, env, rid, std::string("internal error: ") + e.what());
    }
    busy_us += static_cast<uint64_t>(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }

  std::string stats_json() const { return snapshot().to_json(); }

  ServerStats snapshot() const {
    ServerStats st;
    st.requests = requests;
    st.replies = replies;
    st.errors = errors;
    st.late = late;
    st.pings = pings;
    st.echoes = echoes;
    st.bytes_in = bytes_in;
    st.bytes_out = bytes_out;
    st.busy_ms = busy_us / 1e3;
    return st;
  }

  void worker_loop() {
    zmq::socket_t s;
    try {
      s = zmq::socket_t(*ctx, zmq::socket_type::rep);
      s.set(zmq::sockopt::linger, 0);
      s.connect(backend);
    } catch (const zmq::error_t& e) {
      if (e.num() != ETERM) std::fprintf(stderr, "tessera-server: a worker could not start: %s\n", e.what());
      return;
    }
    while (true) {
      std::vector<zmq::message_t> frames;
      if (!receive(s, frames)) break;  // ETERM: stopping
      // the proxy's receipt stamp comes first (a stamp of the wrong size: now)
      const auto received = take_stamp(frames);
      try {
        handle(s, frames, 0, received);
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        break;
      }
    }
  }

  // One worker: it owns the ROUTER and answers directly (no proxy hop).
  void direct_loop(zmq::socket_t& front) {
    while (true) {
      std::vector<zmq::message_t> frames;
      if (!receive(front, frames)) break;  // ETERM: stopping
      const size_t first = envelope_end(frames);  // after the identity frame(s) and the empty delimiter
      if (first == 0) continue;  // no delimiter: not a REQ/DEALER envelope; drop as REP would
      try {
        handle(front, frames, first);
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        break;
      }
    }
  }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>()) {
  TESSERA_CHECK(options.workers >= 1, InvalidArgument, "workers must be >= 1, got {}", options.workers);
  TESSERA_CHECK(options.intra_op_threads >= 1, InvalidArgument, "intra_op_threads must be >= 1, got {}",
                options.intra_op_threads);
  TESSERA_CHECK(options.max_message_bytes >= 1, InvalidArgument, "max_message_bytes must be >= 1, got {}",
                options.max_message_bytes);
  TESSERA_CHECK(options.curve_secret_key.empty() || !options.allowed_client_keys.empty(), InvalidArgument,
                "CURVE is on but no client key is allowed (allowed_client_keys is empty)");
  for (const auto& k : options.allowed_client_keys)
    TESSERA_CHECK(is_z85_key(k), InvalidArgument, "allowed client key '{}' is not a 40-character Z85 key", k);
  TESSERA_CHECK(options.curve_secret_key.empty() || options.curve_secret_key.size() == 40, InvalidArgument,
                "curve_secret_key must be a 40-character Z85 key");
  impl_->opt = std::move(options);
}

Server::~Server() { stop(); }

void Server::start() {
  auto& d = *impl_;
  TESSERA_CHECK(!d.running, InvalidArgument, "server already running on {}", d.endpoint);
  if (d.models.empty()) d.models.load(d.opt.repository, d.opt.verbose);
  at::set_num_threads(d.opt.intra_op_threads);
  d.ctx = std::make_unique<zmq::context_t>(1);
  d.backend = fmt::format("inproc://tessera-workers-{}", static_cast<const void*>(impl_.get()));
  if (!d.opt.curve_secret_key.empty()) {
    std::promise<void> zap_ready;
    auto f = zap_ready.get_future();
    d.threads.emplace_back([&d, &zap_ready] { run_zap_handler(*d.ctx, d.opt.allowed_client_keys, zap_ready); });
    f.get();
  }
  std::promise<std::string> bound;
  auto fb = bound.get_future();
  d.threads.emplace_back([&d, &bound] { d.proxy_loop(bound); });
  try {
    d.endpoint = fb.get();
  } catch (...) {
    d.running = true;
    stop();
    throw;
  }
  if (d.opt.workers > 1)
    for (int i = 0; i < d.opt.workers; ++i) d.threads.emplace_back([&d] { d.worker_loop(); });
  d.running = true;
}

void Server::stop() {
  auto& d = *impl_;
  if (!d.running.exchange(false)) return;  // one caller stops; a concurrent second returns
  if (d.ctx) d.ctx->shutdown();
  for (auto& t : d.threads)
    if (t.joinable()) t.join();
  d.threads.clear();
  if (d.ctx) d.ctx->close();
  d.ctx.reset();
}

bool Server::running() const { return impl_->running; }
std::string Server::endpoint() const { return impl_->endpoint; }
ServerStats Server::stats() const { return impl_->snapshot(); }
std::vector<std::string> Server::models() const {
  return impl_->models.hashes();
}

}  // namespace tessera::runtime
