// runtime/server.cpp -- the edge server (see tessera/runtime/server.h).
//
// Threads: with one worker, a single thread owns the ROUTER and answers directly.
// With more, one proxy thread owns the ROUTER (devices) and an inproc DEALER
// (workers), zmq::proxy between them; `workers` threads with REP sockets that
// decode, check, run and answer; a ZAP thread when CURVE is on. stop() shuts the
// context down, which wakes every blocking call with ETERM.
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

#include "tensor_msg.h"
#include "tessera/atoms/model.h"
#include "tessera/core/error.h"

namespace tessera::runtime {
namespace fs = std::filesystem;

std::string ServerStats::to_json() const {
  return fmt::format(
      R"({{"requests": {}, "replies": {}, "errors": {}, "late": {}, "pings": {}, "echoes": {}, "bytes_in": {}, )"
      R"("bytes_out": {}, "busy_ms": {:.3f}}})",
      requests, replies, errors, late, pings, echoes, bytes_in, bytes_out, busy_ms);
}

std::pair<std::string, std::string> curve_keypair() {
  char pub[41] = {0}, sec[41] = {0};
  TESSERA_CHECK(zmq_curve_keypair(pub, sec) == 0, NotImplemented, "this libzmq has no CURVE support");
  return {pub, sec};
}

struct Server::Impl {
  ServerOptions opt;
  std::map<std::string, Model> models;  // hex hash -> model (atoms load on demand)
  std::unique_ptr<zmq::context_t> ctx;
  std::vector<std::thread> threads;
  std::string endpoint;
  std::string backend;
  std::atomic<bool> running{false};
  std::atomic<uint64_t> requests{0}, replies{0}, errors{0}, late{0}, pings{0}, echoes{0}, bytes_in{0}, bytes_out{0};
  std::atomic<uint64_t> busy_us{0};

  void load_repository() {
    const fs::path root(opt.repository);
    std::error_code ec;
    TESSERA_CHECK(fs::is_directory(root, ec), NotFound, "model repository {} is not a directory", opt.repository);
    std::vector<fs::path> stores;
    if (fs::exists(root / "manifest.json")) {
      stores.push_back(root);
    } else {
      for (const auto& e : fs::directory_iterator(root))
        if (e.is_directory() && fs::exists(e.path() / "manifest.json")) stores.push_back(e.path());
    }
    std::sort(stores.begin(), stores.end());
    TESSERA_CHECK(!stores.empty(), InvalidArgument, "model repository {} holds no atom store (no manifest.json)",
                  opt.repository);
    for (const auto& p : stores) {
      auto m = Model::open(p.string(), std::vector<int>{});
      if (opt.verbose)
        std::fprintf(stderr, "tessera-server: serving %s (%s, %d atoms)\n", m.hash().substr(0, 12).c_str(),
                     p.filename().c_str(), m.num_atoms());
      models.emplace(m.hash(), std::move(m));
    }
  }

  void zap_loop(std::promise<void>& ready) {
    zmq::socket_t zap;
    try {
      zap = zmq::socket_t(*ctx, zmq::socket_type::rep);
      zap.set(zmq::sockopt::linger, 0);
      zap.bind("inproc://zeromq.zap.01");
    } catch (const zmq::error_t& e) {
      ready.set_exception(std::make_exception_ptr(
          Error(ErrorKind::Runtime, fmt::format("cannot start the CURVE authenticator: {}", e.what()), "Server::start")));
      return;
    }
    ready.set_value();
    std::vector<std::array<uint8_t, 32>> allowed;
    for (const auto& k : opt.allowed_client_keys) {
      std::array<uint8_t, 32> raw{};
      if (k.size() == 40 && zmq_z85_decode(raw.data(), k.c_str())) allowed.push_back(raw);  // checked in the constructor
    }
    while (true) {
      std::vector<zmq::message_t> f;
      try {
        if (!zmq::recv_multipart(zap, std::back_inserter(f))) continue;
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        break;
      }
      bool ok = false;
      if (f.size() >= 7 && f[5].to_string() == "CURVE" && f[6].size() == 32) {
        for (const auto& a : allowed) ok |= std::memcmp(a.data(), f[6].data(), 32) == 0;
      }
      std::string version = f.size() > 0 ? f[0].to_string() : "1.0";
      std::string rid = f.size() > 1 ? f[1].to_string() : "";
      std::array<zmq::const_buffer, 6> reply = {zmq::buffer(version), zmq::buffer(rid),
                                                zmq::str_buffer(ok ? "200" : "400"),
                                                ok ? zmq::str_buffer("OK") : zmq::str_buffer("client key not allowed"),
                                                zmq::str_buffer(""), zmq::str_buffer("")};
      try {
        zmq::send_multipart(zap, reply);
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        break;
      }
    }
  }

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
    stamping_proxy(front, back);
  }

  // ZeroMQ's proxy, plus a receipt stamp: each request from a device gets a frame with
  // the steady-clock time (ns) it left the network, right after the routing envelope,
  // so a worker can tell how long it waited (queue_ms) and count the budget from there.
  void stamping_proxy(zmq::socket_t& front, zmq::socket_t& back) {
    zmq::pollitem_t items[] = {{static_cast<void*>(front), 0, ZMQ_POLLIN, 0},
                               {static_cast<void*>(back), 0, ZMQ_POLLIN, 0}};
    while (true) {
      try {
        zmq::poll(items, 2, std::chrono::milliseconds(-1));
        std::vector<zmq::message_t> frames;
        if (items[0].revents & ZMQ_POLLIN) {
          const int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
          if (zmq::recv_multipart(front, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
            size_t d = 0;  // the empty delimiter ends the envelope
            while (d < frames.size() && frames[d].size() != 0) ++d;
            if (d < frames.size()) {  // no delimiter: not a REQ/DEALER envelope; drop as REP would
              frames.insert(frames.begin() + static_cast<std::ptrdiff_t>(d) + 1, zmq::message_t(&now, sizeof now));
              zmq::send_multipart(back, frames);
            }
          }
        }
        frames.clear();
        if ((items[1].revents & ZMQ_POLLIN) &&
            zmq::recv_multipart(back, std::back_inserter(frames), zmq::recv_flags::dontwait))
          zmq::send_multipart(front, frames);
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;  // a signal: go on proxying
        break;                           // ETERM: the context shut down
      }
    }
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
          auto it = models.find(hex);
          TESSERA_CHECK(it != models.end(), InvalidArgument, "unknown model {}: this server serves {} model(s)",
                        hex.substr(0, 16), models.size());
          TESSERA_CHECK(m.header.atom_count > 0, InvalidArgument, "request names no atoms");
          auto atoms = decode_atoms(m.body.data(), m.body.size(), m.header.atom_count);
          const Model& model = it->second;
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
      try {
        if (!zmq::recv_multipart(s, std::back_inserter(frames))) continue;
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        break;  // ETERM: stopping
      }
      // the proxy's receipt stamp comes first (a stamp of the wrong size: now)
      std::optional<std::chrono::steady_clock::time_point> received;
      if (!frames.empty() && frames.front().size() == sizeof(int64_t)) {
        int64_t ns = 0;
        std::memcpy(&ns, frames.front().data(), sizeof ns);
        received = std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(ns));
      }
      if (!frames.empty()) frames.erase(frames.begin());
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
      try {
        if (!zmq::recv_multipart(front, std::back_inserter(frames))) continue;
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        break;
      }
      size_t first = 0;  // after the identity frame(s) and the empty delimiter
      while (first < frames.size() && frames[first].size() != 0) ++first;
      if (first >= frames.size()) continue;  // no delimiter: not a REQ/DEALER envelope; drop as REP would
      ++first;
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
  for (const auto& k : options.allowed_client_keys) {
    std::array<uint8_t, 32> raw{};
    TESSERA_CHECK(k.size() == 40 && zmq_z85_decode(raw.data(), k.c_str()), InvalidArgument,
                  "allowed client key '{}' is not a 40-character Z85 key", k);
  }
  TESSERA_CHECK(options.curve_secret_key.empty() || options.curve_secret_key.size() == 40, InvalidArgument,
                "curve_secret_key must be a 40-character Z85 key");
  impl_->opt = std::move(options);
}

Server::~Server() { stop(); }

void Server::start() {
  auto& d = *impl_;
  TESSERA_CHECK(!d.running, InvalidArgument, "server already running on {}", d.endpoint);
  if (d.models.empty()) d.load_repository();
  at::set_num_threads(d.opt.intra_op_threads);
  d.ctx = std::make_unique<zmq::context_t>(1);
  d.backend = fmt::format("inproc://tessera-workers-{}", static_cast<const void*>(impl_.get()));
  if (!d.opt.curve_secret_key.empty()) {
    std::promise<void> zap_ready;
    auto f = zap_ready.get_future();
    d.threads.emplace_back([&d, &zap_ready] { d.zap_loop(zap_ready); });
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
  std::vector<std::string> out;
  for (const auto& [h, _] : impl_->models) out.push_back(h);
  return out;
}

}  // namespace tessera::runtime
