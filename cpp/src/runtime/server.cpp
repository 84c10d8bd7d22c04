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

#include <ATen/ATen.h>
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
#include <set>
#include <thread>

#include "emulation.h"
#include "repository.h"
#include "tessera/atoms/model.h"
#include "tessera/core/error.h"
#include "tessera/graph/tensor.h"
#include "tessera/graph/threads.h"
#include "tessera/transport/message.h"
#include "tessera/transport/proxy.h"
#include "tessera/transport/security.h"

namespace tessera::runtime {
using namespace transport;

std::string ServerStats::to_json() const {
  return fmt::format(
      R"({{"requests": {}, "replies": {}, "errors": {}, "late": {}, "pings": {}, "echoes": {}, "forwards": {}, )"
      R"("forward_failures": {}, "tile_fallbacks": {}, "bytes_in": {}, "bytes_out": {}, "busy_ms": {:.3f}}})",
      requests, replies, errors, late, pings, echoes, forwards, forward_failures, tile_fallbacks, bytes_in, bytes_out,
      busy_ms);
}

namespace {
// A tile's input: the recorded tensor but for its rows (dim 2 of 4), which may be any number >= 1.
std::string rows_mismatch(const at::Tensor& t, const TensorInfo& want) {
  TensorInfo got = tensor_info(t);
  if (got.shape.size() != 4 || want.shape.size() != 4 || got.shape[2] < 1) return tensor_mismatch(t, want);
  got.shape[2] = want.shape[2];
  if (got.dtype == want.dtype && got.shape == want.shape) return "";
  return tensor_mismatch(t, want);
}

// The outgoing DEALER sockets of one handling thread (sockets are not thread-safe):
// to the next stages of routes and to devices' reply endpoints. ZMQ_IMMEDIATE and a
// send timeout: a peer that is not there fails the send instead of queueing it. What
// comes back on them (Acks, Errors of a next stage) is drained and dropped. A peer that
// did not accept a message, or did not answer a tile in time, is not tried again for the same
// timeout (messages fail fast; tiles run on this server meanwhile).
class Outbox {
 public:
  Outbox(zmq::context_t& ctx, int timeout_ms) : ctx_(ctx), timeout_ms_(timeout_ms) {}
  // "" on success, else why not.
  std::string send(const std::string& endpoint, const Header& h, const std::string& body,
                   const std::vector<at::Tensor>& tensors, size_t* bytes) {
    const auto now = std::chrono::steady_clock::now();
    auto down = down_until_.find(endpoint);
    if (down != down_until_.end() && now < down->second)
      return fmt::format("{} did not accept a message less than {} ms ago", endpoint, timeout_ms_);
    try {
      auto it = connected(socks_, endpoint);
      zmq::message_t m;
      while (it->second.recv(m, zmq::recv_flags::dontwait)) {}
      if (send_message(it->second, h, body, tensors, true, false, bytes)) return "";
      socks_.erase(it);  // a fresh connection next time; until then, fail fast
      mark_down(endpoint);
      return fmt::format("{} did not accept the message within {} ms", endpoint, timeout_ms_);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) throw;
      socks_.erase(endpoint);
      return fmt::format("cannot send to {}: {}", endpoint, e.what());
    }
  }

 private:
  zmq::context_t& ctx_;
  int timeout_ms_;
  std::map<std::string, zmq::socket_t> socks_;
  std::map<std::string, std::chrono::steady_clock::time_point> down_until_;

  void mark_down(const std::string& endpoint) {
    down_until_[endpoint] = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
  }

  // The DEALER to `endpoint` in `socks` (connected now if there is none): ZMQ_IMMEDIATE, a send timeout.
  using Sockets = std::map<std::string, zmq::socket_t>;
  Sockets::iterator connected(Sockets& socks, const std::string& endpoint) {
    auto it = socks.find(endpoint);
    if (it != socks.end()) return it;
    zmq::socket_t s(ctx_, zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::immediate, 1);
    s.set(zmq::sockopt::sndtimeo, timeout_ms_);
    s.connect(endpoint);
    return socks.emplace(endpoint, std::move(s)).first;
  }

 public:
  // Tiles: a request whose reply this thread waits for (its own sockets, so forwards never
  // drain a tile's reply). "" on success, else why not.
  std::string request(const std::string& endpoint, const Header& h, const std::string& body,
                      const std::vector<at::Tensor>& tensors, size_t* bytes) {
    if (auto down = down_until_.find(endpoint); down != down_until_.end() && std::chrono::steady_clock::now() < down->second)
      return fmt::format("{} failed a message less than {} ms ago", endpoint, timeout_ms_);
    try {
      auto it = connected(tile_socks_, endpoint);
      if (send_message(it->second, h, body, tensors, true, false, bytes)) return "";
      tile_socks_.erase(it);
      mark_down(endpoint);
      return fmt::format("{} did not accept the tile within {} ms", endpoint, timeout_ms_);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) throw;
      tile_socks_.erase(endpoint);
      return fmt::format("cannot send a tile to {}: {}", endpoint, e.what());
    }
  }
  // The reply to request `id` from `endpoint` by `deadline` (others are dropped), or why not.
  std::string await(const std::string& endpoint, uint64_t id, std::chrono::steady_clock::time_point deadline,
                    Message& reply, size_t* bytes) {
    auto it = tile_socks_.find(endpoint);
    if (it == tile_socks_.end()) return "no connection";
    std::vector<zmq::message_t> frames;
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      zmq::pollitem_t item{it->second.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::max(left, std::chrono::milliseconds(0))) <= 0) {
        tile_socks_.erase(it);  // a late reply must never be taken for a later tile's
        mark_down(endpoint);    // and the next tiles do not wait for it either, for a while
        return fmt::format("no reply from {} in time", endpoint);
      }
      if (!receive(it->second, frames)) return "the socket closed";
      try {
        reply = decode_message(frames, frames.size() && frames[0].size() == 0 ? 1 : 0, 1ull << 34);
      } catch (const Error& e) {
        return std::string("a malformed reply: ") + e.message();
      }
      if (reply.header.request_id != id) continue;
      if (bytes) {
        *bytes = 0;
        for (const auto& f : frames) *bytes += f.size();
      }
      if (reply.header.type == MsgType::Error) return fmt::format("{} answered: {}", endpoint, reply.body);
      if (reply.header.type != MsgType::Reply || reply.tensors.size() != 1)
        return fmt::format("{} answered a {} with {} tensors", endpoint, msg_type_name(reply.header.type),
                           reply.tensors.size());
      return "";
    }
  }

 private:
  std::map<std::string, zmq::socket_t> tile_socks_;
  uint64_t next_tile_id_ = 1;

 public:
  uint64_t tile_id() { return next_tile_id_++; }
};
}  // namespace

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
  std::atomic<uint64_t> forwards{0}, forward_failures{0}, tile_fallbacks{0};
  std::atomic<uint64_t> busy_us{0};

  void proxy_loop(std::promise<std::string>& bound) {
    at::init_num_threads();  // this thread runs blocks (one worker): LibTorch's thread count applies here too
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
  void handle(zmq::socket_t& s, std::vector<zmq::message_t>& frames, size_t first, Outbox& outbox,
              std::optional<std::chrono::steady_clock::time_point> stamp = std::nullopt) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto received = stamp ? std::min(*stamp, t0) : t0;
    const double queue_ms = std::max(0.0, std::chrono::duration<double, std::milli>(t0 - received).count());
    std::vector<zmq::message_t> env_frames;
    for (size_t i = 0; i < first; ++i) env_frames.push_back(std::move(frames[i]));
    std::vector<zmq::message_t>* env = first ? &env_frames : nullptr;
    uint64_t rid = 0;
    uint64_t in = 0;
    bool answered = false;  // a Forward is acknowledged before its stage runs
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
          const bool rows = m.header.flags & kRequestRows;
          TESSERA_CHECK(!rows || m.tensors.size() == 1, InvalidArgument,
                        "a tile request (rows of one input) for a block of {} inputs", m.tensors.size());
          for (size_t i = 0; i < m.tensors.size(); ++i) {
            const std::string bad = rows ? rows_mismatch(m.tensors[i], vals[block.inputs()[i]].info)
                                         : tensor_mismatch(m.tensors[i], vals[block.inputs()[i]].info);
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
          // The device's choice of codec for what comes back (wire v3; 0 = raw).
          send_message(s, h, "", outputs, false, false, &out, {static_cast<transport::Codec>(m.header.reply_codec)});
          break;
        }
        case MsgType::Forward: {
          Route route = decode_route(m.body.data(), m.body.size(), m.header.tensor_count);
          TESSERA_CHECK(route.next < route.hops.size(), InvalidArgument,
                        "a Forward for hop {} of a {}-hop route: nothing to run", route.next, route.hops.size());
          TESSERA_CHECK(route.trace.size() == route.next, InvalidArgument,
                        "a Forward for hop {} carries {} hop traces (one per hop before it)", route.next,
                        route.trace.size());
          ++forwards;
          h.type = MsgType::Ack;  // the one answer on this socket; what follows goes elsewhere
          send_envelope(s, env);
          send_message(s, h, "", {}, false, false, &out);
          answered = true;
          bytes_out += out;
          out = 0;
          run_stage(m, std::move(route), queue_ms, outbox);
          break;
        }
        default:
          TESSERA_THROW(InvalidArgument, "a server does not accept {} messages", msg_type_name(m.header.type));
      }
      bytes_out += out;
    } catch (const Error& e) {
      if (!answered) reply_error(s, env, rid, e.message());
    } catch (const zmq::error_t&) {
      throw;
    } catch (const c10::Error& e) {  // LibTorch's message without its C++ backtrace
      if (!answered) reply_error(s, env, rid, std::string("internal error: ") + e.what_without_backtrace());
    } catch (const std::exception& e) {
      if (!answered) reply_error(s, env, rid, std::string("internal error: ") + e.what());
    }
    busy_us += static_cast<uint64_t>(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }

  // One stage of a pipeline route (wire v2): run hop `route.next`'s atoms on the values it
  // carries, send the live values on to the next hop and model outputs to the device. Never
  // throws for a bad stage: the device gets a Result with kResultFailed and the values live
  // before the stage (or before the next one, if that cannot be reached) and runs the rest.
  void run_stage(Message& m, Route route, double queue_ms, Outbox& outbox) {
    const uint32_t i = route.next;
    const Hop hop = route.hops[i];
    const bool last = i + 1 == route.hops.size();
    Header h;
    h.request_id = m.header.request_id;
    h.model_hash = m.header.model_hash;
    h.type = MsgType::Result;
    auto to_device = [&](Route r, uint32_t flags, const std::vector<at::Tensor>& ts, double hold_mbps,
                         double hold_rtt, HopTrace* tr) {
      Header rh = h;
      rh.flags = flags;
      size_t bytes = 0;
      const std::string body = encode_route(r);
      if (route.sleep) {
        const double ms = link_hold_ms(static_cast<double>(message_bytes(body, ts)), hold_mbps, hold_rtt);
        sleep_ms(ms);
        if (tr) tr->slept_ms += ms;
      }
      const std::string why = outbox.send(route.reply_to, rh, body, ts, &bytes);
      bytes_out += bytes;
      if (!why.empty() && opt.verbose)
        std::fprintf(stderr, "tessera-server: request %llu: the device's result was not sent: %s\n",
                     (unsigned long long)h.request_id, why.c_str());
    };
    // r: the route with the traces of the hops run so far (this one's too, once it ran)
    auto fail = [&](Route r, uint32_t next, std::vector<int> ids, std::vector<at::Tensor> ts, const std::string& why) {
      ++forward_failures;
      ++errors;
      if (opt.verbose)
        std::fprintf(stderr, "tessera-server: request %llu: stage handed back: %s\n", (unsigned long long)h.request_id,
                     why.c_str());
      r.next = next;
      r.values = std::move(ids);
      r.error = why;
      to_device(std::move(r), kResultFailed | kResultFinal, ts, 0, 0, nullptr);
    };
    HopTrace tr;
    tr.queue_ms = queue_ms;
    std::vector<int> fwd_ids, res_ids;
    std::vector<at::Tensor> fwd, res;
    try {
      const std::string hex = hash_to_hex(m.header.model_hash);
      const Model* found = models.find(hex);
      TESSERA_CHECK(found, InvalidArgument, "unknown model {}: this server serves {} model(s)", hex.substr(0, 16),
                    models.size());
      const Model& model = *found;
      const auto& vals = model.graph().values;
      for (size_t k = 0; k < route.hops.size(); ++k)
        for (int a : route.hops[k].atoms)
          TESSERA_CHECK(a < model.num_atoms(), InvalidArgument, "hop {} names atom {}: model {} has {} atoms", k, a,
                        hex.substr(0, 16), model.num_atoms());
      std::map<int, at::Tensor> avail;
      for (size_t k = 0; k < route.values.size(); ++k) {
        const int v = route.values[k];
        TESSERA_CHECK(v < static_cast<int>(vals.size()), InvalidArgument, "value id {} out of range ({} values)", v,
                      vals.size());
        const std::string bad = tensor_mismatch(m.tensors[k], vals[v].info);
        TESSERA_CHECK(bad.empty(), InvalidArgument, "carried value '{}' is {}", vals[v].name, bad);
        avail[v] = m.tensors[k];
      }
      Block block = model.combine(hop.atoms);
      std::vector<at::Tensor> args;
      for (int v : block.inputs()) {
        auto it = avail.find(v);
        TESSERA_CHECK(it != avail.end(), InvalidArgument, "the stage's input '{}' (value {}) was not carried to it",
                      vals[v].name, v);
        args.push_back(it->second);
      }
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = thread_cpu_ms();
      auto outputs = hop.tiles.empty() ? block(args) : run_tiles(block, args, hop, h, outbox, tr);
      tr.cpu_ms = thread_cpu_ms() - c0;
      tr.compute_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (route.sleep && hop.slowdown > 1) {
        const double extra = tr.compute_ms * (hop.slowdown - 1);
        sleep_ms(extra);
        tr.slept_ms += extra;
      }
      for (size_t k = 0; k < outputs.size(); ++k) {
        TESSERA_CHECK(outputs[k].defined() && has_wire_dtype(outputs[k]), InvalidArgument,
                      "output '{}' of the stage cannot be sent", vals[block.outputs()[k]].name);
        avail[block.outputs()[k]] = outputs[k];
      }
      std::set<int> later;  // values the hops after this one read
      for (size_t k = i + 1; k < route.hops.size(); ++k)
        for (int a : route.hops[k].atoms)
          for (int v : model.atoms()[a].inputs) later.insert(v);
      const auto& gout = model.graph().outputs;
      const std::set<int> model_outputs(gout.begin(), gout.end());
      for (auto& [v, t] : avail)
        if (later.count(v)) fwd_ids.push_back(v), fwd.push_back(t);
      for (size_t k = 0; k < outputs.size(); ++k)
        if (model_outputs.count(block.outputs()[k])) res_ids.push_back(block.outputs()[k]), res.push_back(outputs[k]);
    } catch (const zmq::error_t&) {
      throw;
    } catch (const Error& e) {
      fail(route, i, route.values, m.tensors, fmt::format("hop {} ({}) failed: {}", i, hop.endpoint, e.message()));
      return;
    } catch (const c10::Error& e) {
      fail(route, i, route.values, m.tensors,
           fmt::format("hop {} ({}) failed: {}", i, hop.endpoint, e.what_without_backtrace()));
      return;
    } catch (const std::exception& e) {
      fail(route, i, route.values, m.tensors, fmt::format("hop {} ({}) failed: {}", i, hop.endpoint, e.what()));
      return;
    }
    // The messages' sizes do not depend on the trace's figures (fixed width): measure, then fill in.
    Route fr = route, rr = route;
    fr.next = i + 1, fr.values = fwd_ids;
    rr.next = i + 1, rr.values = res_ids;
    fr.trace.push_back(tr);
    rr.trace.push_back(tr);
    if (!last) tr.bytes_forward = message_bytes(encode_route(fr), fwd);
    if (last || !res.empty()) tr.bytes_result = message_bytes(encode_route(rr), res);
    fr.trace.back() = rr.trace.back() = tr;
    if (!last) {
      const std::string& next_ep = route.hops[i + 1].endpoint;
      if (route.sleep) {
        const double ms = link_hold_ms(static_cast<double>(tr.bytes_forward), hop.next_mbps, hop.next_rtt_ms);
        sleep_ms(ms);
        fr.trace.back().slept_ms += ms;
      }
      Header fh = h;
      fh.type = MsgType::Forward;
      fh.budget_us = m.header.budget_us;
      size_t bytes = 0;
      const std::string why = outbox.send(next_ep, fh, encode_route(fr), fwd, &bytes);
      bytes_out += bytes;
      if (!why.empty()) {  // the device gets everything live after this stage, and the outputs it made
        std::vector<int> ids = fwd_ids;
        std::vector<at::Tensor> ts = fwd;
        for (size_t k = 0; k < res_ids.size(); ++k)
          if (!std::count(ids.begin(), ids.end(), res_ids[k])) ids.push_back(res_ids[k]), ts.push_back(res[k]);
        fail(fr, i + 1, ids, ts, fmt::format("hop {} ({}) cannot be reached from hop {}: {}", i + 1, next_ep, i, why));
        return;
      }
    }
    if (last || !res.empty())
      to_device(rr, kResultOutputs | (last ? kResultFinal : 0), res, hop.back_mbps, hop.back_rtt_ms, nullptr);
  }

  // An intra-layer split (issue 14): tiles 1.. go to their servers as Requests of rows
  // (kRequestRows), tile 0 runs here meanwhile, the rows come back and are concatenated. A
  // tile whose server fails or is late (forward_timeout_ms) runs here instead: the output is
  // always the whole block's.
  std::vector<at::Tensor> run_tiles(const Block& block, const std::vector<at::Tensor>& args, const Hop& hop,
                                    const Header& h, Outbox& outbox, HopTrace& tr) {
    TESSERA_CHECK(block.inputs().size() == 1 && block.outputs().size() == 1 && args[0].dim() == 4, InvalidArgument,
                  "a split stage needs one 4-D input and one output; atoms [{}] have {} and {}",
                  fmt::join(hop.atoms, ", "), block.inputs().size(), block.outputs().size());
    const at::Tensor& x = args[0];
    const int64_t H = x.size(2);
    for (const auto& t : hop.tiles)
      TESSERA_CHECK(t.in_hi <= H, InvalidArgument, "a tile reads rows [{}, {}) of an input of {} rows", t.in_lo,
                    t.in_hi, H);
    auto slice = [&](const Tile& t) { return x.narrow(2, t.in_lo, t.in_hi - t.in_lo).contiguous(); };
    auto keep = [&](const at::Tensor& y, const Tile& t) {
      TESSERA_CHECK(y.dim() == 4 && t.crop + t.out_rows <= y.size(2), InvalidArgument,
                    "a tile's output has {} rows; rows [{}, {}) were expected", y.dim() == 4 ? y.size(2) : -1, t.crop,
                    t.crop + t.out_rows);
      return y.narrow(2, t.crop, t.out_rows);
    };
    const std::string body = encode_atoms(hop.atoms);
    std::vector<uint64_t> ids(hop.tiles.size(), 0);
    std::vector<std::string> why(hop.tiles.size());
    tr.tiles.assign(hop.tiles.size() - 1, HopTrace::TileTrace{});
    for (size_t k = 1; k < hop.tiles.size(); ++k) {
      Header rq;
      rq.type = MsgType::Request;
      rq.model_hash = h.model_hash;
      rq.atom_count = static_cast<uint32_t>(hop.atoms.size());
      rq.flags = kRequestRows;
      rq.request_id = ids[k] = outbox.tile_id();
      size_t bytes = 0;
      why[k] = outbox.request(hop.tiles[k].endpoint, rq, body, {slice(hop.tiles[k])}, &bytes);
      tr.tiles[k - 1].bytes_out = bytes;
      bytes_out += bytes;
    }
    std::vector<at::Tensor> parts(hop.tiles.size());
    parts[0] = keep(block({slice(hop.tiles[0])})[0], hop.tiles[0]);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(opt.forward_timeout_ms);
    for (size_t k = 1; k < hop.tiles.size(); ++k) {
      Message reply;
      size_t bytes = 0;
      if (why[k].empty()) why[k] = outbox.await(hop.tiles[k].endpoint, ids[k], deadline, reply, &bytes);
      tr.tiles[k - 1].bytes_in = bytes;
      bytes_in += bytes;
      if (why[k].empty()) {
        try {
          parts[k] = keep(reply.tensors[0], hop.tiles[k]);
          tr.tiles[k - 1].server_ms = reply.header.server_ms;
          continue;
        } catch (const Error& e) {
          why[k] = e.message();
        }
      }
      if (opt.verbose)
        std::fprintf(stderr, "tessera-server: request %llu: tile %zu runs here: %s\n",
                     (unsigned long long)h.request_id, k, why[k].c_str());
      ++tile_fallbacks;
      tr.tiles[k - 1].fallback = 1;
      parts[k] = keep(block({slice(hop.tiles[k])})[0], hop.tiles[k]);
    }
    return {at::cat(parts, 2)};
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
    st.forwards = forwards;
    st.forward_failures = forward_failures;
    st.tile_fallbacks = tile_fallbacks;
    st.bytes_in = bytes_in;
    st.bytes_out = bytes_out;
    st.busy_ms = busy_us / 1e3;
    return st;
  }

  void worker_loop() {
    // at::set_num_threads (start()) set OpenMP's thread count for the thread that called it; a new
    // thread starts at OpenMP's default (every core) unless it takes LibTorch's count itself
    at::init_num_threads();
    zmq::socket_t s;
    try {
      s = zmq::socket_t(*ctx, zmq::socket_type::rep);
      s.set(zmq::sockopt::linger, 0);
      s.connect(backend);
    } catch (const zmq::error_t& e) {
      if (e.num() != ETERM) std::fprintf(stderr, "tessera-server: a worker could not start: %s\n", e.what());
      return;
    }
    Outbox outbox(*ctx, opt.forward_timeout_ms);
    while (true) {
      std::vector<zmq::message_t> frames;
      if (!receive(s, frames)) break;  // ETERM: stopping
      // the proxy's receipt stamp comes first (a stamp of the wrong size: now)
      const auto received = take_stamp(frames);
      try {
        handle(s, frames, 0, outbox, received);
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        break;
      }
    }
  }

  // One worker: it owns the ROUTER and answers directly (no proxy hop).
  void direct_loop(zmq::socket_t& front) {
    Outbox outbox(*ctx, opt.forward_timeout_ms);
    while (true) {
      std::vector<zmq::message_t> frames;
      if (!receive(front, frames)) break;  // ETERM: stopping
      const size_t first = envelope_end(frames);  // after the identity frame(s) and the empty delimiter
      if (first == 0) continue;  // no delimiter: not a REQ/DEALER envelope; drop as REP would
      try {
        handle(front, frames, first, outbox);
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
  TESSERA_CHECK(options.forward_timeout_ms >= 1, InvalidArgument, "forward_timeout_ms must be >= 1, got {}",
                options.forward_timeout_ms);
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
  set_intra_op_threads(d.opt.intra_op_threads);  // OpenMP and OpenBLAS (graph/threads.h)
  if (d.opt.keep_freed_memory) keep_freed_memory(true);
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
