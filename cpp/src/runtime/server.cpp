// runtime/server.cpp -- the edge server (see tessera/runtime/server.h).
//
// Threads: one front thread owns the ROUTER (devices), an inproc PULL (the workers'
// replies, which it passes on to the ROUTER) and, with metrics_port, a STREAM socket
// (HTTP). It answers Ping and Echo itself, refuses a Request with Busy when the queue
// is full, and queues everything else with its receipt time. `workers` threads take
// from the queue (a whole dynamic batch at a time), decode, check, run, and answer
// through their PUSH sockets; a ZAP thread when CURVE is on. stop() wakes the workers
// and shuts the context down, which wakes every blocking call with ETERM. What is not
// request handling lives elsewhere: the repository (repository.h), the ZAP allow-list
// (transport/security.h), envelopes (transport/proxy.h).
#include "tessera/runtime/server.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
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
      R"("forward_failures": {}, "tile_fallbacks": {}, "bytes_in": {}, "bytes_out": {}, "busy_ms": {:.3f}, )"
      R"("refused_busy": {}, "batches": {}, "batched": {}, "unbatchable": {}, "queued": {}, "queue_peak": {}, )"
      R"("workers_busy": {}}})",
      requests, replies, errors, late, pings, echoes, forwards, forward_failures, tile_fallbacks, bytes_in, bytes_out,
      busy_ms, refused_busy, batches, batched, unbatchable, queued, queue_peak, workers_busy);
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
  using Clock = std::chrono::steady_clock;

  // A message waiting for a worker: its routing envelope and the message, as received.
  struct Job {
    std::vector<zmq::message_t> frames;
    size_t first = 0;                // the header frame
    Clock::time_point received;
    std::string key;                 // dynamic batching: Requests with equal keys may run together ("" = alone)
  };
  // A Request that passed every check, ready to run.
  struct Prepared {
    Message m;
    Block block;
    std::vector<int> atoms;
  };
  enum class Batching { Unknown, Yes, No };

  ServerOptions opt;
  Repository models;  // hex hash -> model (atoms load on demand)
  std::unique_ptr<zmq::context_t> ctx;
  std::vector<std::thread> threads;
  std::string endpoint, metrics_ep;
  std::string backend;
  std::atomic<bool> running{false};
  std::atomic<uint64_t> requests{0}, replies{0}, errors{0}, late{0}, pings{0}, echoes{0}, bytes_in{0}, bytes_out{0};
  std::atomic<uint64_t> forwards{0}, forward_failures{0}, tile_fallbacks{0};
  std::atomic<uint64_t> busy_us{0}, refused_busy{0}, batches{0}, batched{0}, unbatchable{0};
  std::atomic<uint64_t> queue_peak{0}, workers_busy{0};
  std::atomic<uint64_t> service_us_ewma{0};  // a Request's service time (moving average): Busy's wait estimate

  // The queue between the front thread and the workers.
  mutable std::mutex qmu;
  std::condition_variable qcv;
  std::deque<Job> queue;
  std::set<std::string> forming;             // keys a worker is gathering a batch for
  int idle = 0;                              // workers waiting for something to take
  std::map<std::string, Batching> batching;  // by key (bounded: cleared when large)
  bool stopping = false;

  // Request latency from receipt to the reply leaving (Prometheus histogram, seconds).
  static constexpr std::array<double, 12> kBuckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                   0.1,   0.25,   0.5,   1.0,  2.5,   10.0};
  std::array<std::atomic<uint64_t>, kBuckets.size() + 1> latency_count{};
  std::atomic<uint64_t> latency_sum_us{0};

  // Error log lines: at most kLogPerSecond a second, the rest counted and summarised.
  static constexpr int kLogPerSecond = 50;
  std::mutex log_mu;
  int64_t log_second = 0;
  int log_lines = 0;
  uint64_t log_dropped = 0;

  void log_line(const std::string& line) {
    std::lock_guard<std::mutex> lock(log_mu);
    const int64_t sec = std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch()).count();
    if (sec != log_second) {
      if (log_dropped)
        std::fprintf(stderr, "tessera-server: %llu more error lines in the last second were not logged\n",
                     (unsigned long long)log_dropped);
      log_second = sec, log_lines = 0, log_dropped = 0;
    }
    if (++log_lines > kLogPerSecond) {
      ++log_dropped;
      return;
    }
    std::fprintf(stderr, "tessera-server: %s\n", line.c_str());
  }

  static std::string peer_of(const std::vector<zmq::message_t>* env) {
    if (!env || env->empty()) return "-";
    const auto& f = env->front();
    std::string hex;
    for (size_t i = 0; i < f.size() && i < 8; ++i) hex += fmt::format("{:02x}", static_cast<const uint8_t*>(f.data())[i]);
    return hex;
  }

  void observe_latency(Clock::time_point received) {
    const double s = std::chrono::duration<double>(Clock::now() - received).count();
    size_t b = 0;
    while (b < kBuckets.size() && s > kBuckets[b]) ++b;
    ++latency_count[b];
    latency_sum_us += static_cast<uint64_t>(s * 1e6);
  }

  void observe_service(double ms) {  // relaxed: an estimate for Busy replies
    const uint64_t us = static_cast<uint64_t>(ms * 1e3), old = service_us_ewma.load();
    service_us_ewma.store(old == 0 ? us : (old * 7 + us) / 8);
  }

  // ---- the front thread: devices, replies from workers, HTTP counters ----------------
  void front_loop(std::promise<std::string>& bound) {
    zmq::socket_t front, results, http;
    try {
      front = zmq::socket_t(*ctx, zmq::socket_type::router);
      results = zmq::socket_t(*ctx, zmq::socket_type::pull);
      front.set(zmq::sockopt::linger, 0);
      results.set(zmq::sockopt::linger, 0);
      front.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(opt.max_message_bytes + (1 << 20)));
      if (!opt.curve_secret_key.empty()) {
        front.set(zmq::sockopt::curve_server, 1);
        front.set(zmq::sockopt::curve_secretkey, opt.curve_secret_key);
      }
      front.bind(opt.bind);
      results.bind(backend);
    } catch (const zmq::error_t& e) {
      bound.set_exception(std::make_exception_ptr(
          Error(ErrorKind::InvalidArgument, fmt::format("cannot bind {}: {}", opt.bind, e.what()), "Server::start")));
      return;
    }
    const std::string ep = front.get(zmq::sockopt::last_endpoint);
    if (opt.metrics_port >= 0) {
      const std::string host = http_host(ep);
      try {
        http = zmq::socket_t(*ctx, zmq::socket_type::stream);
        http.set(zmq::sockopt::linger, 0);
        http.bind(fmt::format("tcp://{}:{}", host, opt.metrics_port == 0 ? std::string("*")
                                                                       : std::to_string(opt.metrics_port)));
        const std::string m = http.get(zmq::sockopt::last_endpoint);  // tcp://HOST:PORT
        metrics_ep = "http://" + (host == "*" || host == "0.0.0.0" ? std::string("127.0.0.1") : host) +
                     m.substr(m.rfind(':'));
      } catch (const zmq::error_t& e) {
        bound.set_exception(std::make_exception_ptr(Error(
            ErrorKind::InvalidArgument, fmt::format("cannot serve metrics on {}:{}: {}", host, opt.metrics_port, e.what()),
            "Server::start")));
        return;
      }
    }
    bound.set_value(ep);
    Outbox unused(*ctx, opt.forward_timeout_ms);  // Echo goes through handle(), which takes one
    std::map<std::string, std::string> http_in;  // connection id -> request bytes so far
    std::vector<zmq::pollitem_t> items{{static_cast<void*>(front), 0, ZMQ_POLLIN, 0},
                                       {static_cast<void*>(results), 0, ZMQ_POLLIN, 0}};
    if (http) items.push_back({static_cast<void*>(http), 0, ZMQ_POLLIN, 0});
    while (true) {
      try {
        zmq::poll(items.data(), items.size(), std::chrono::milliseconds(-1));
        // replies first: they free the devices
        for (int k = 0; k < 256 && (items[1].revents & ZMQ_POLLIN); ++k) {
          std::vector<zmq::message_t> frames;
          if (!zmq::recv_multipart(results, std::back_inserter(frames), zmq::recv_flags::dontwait)) break;
          zmq::send_multipart(front, frames);
        }
        for (int k = 0; k < 256 && (items[0].revents & ZMQ_POLLIN); ++k) {
          std::vector<zmq::message_t> frames;
          if (!zmq::recv_multipart(front, std::back_inserter(frames), zmq::recv_flags::dontwait)) break;
          take_in(front, std::move(frames), unused);
        }
        if (http && (items[2].revents & ZMQ_POLLIN)) serve_http(http, http_in);
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        break;  // ETERM: stopping
      }
    }
  }

  // A message from a device: Pings and Echoes are answered here; a Request meets a full
  // queue with Busy; everything else waits for a worker.
  void take_in(zmq::socket_t& front, std::vector<zmq::message_t>&& frames, Outbox& outbox) {
    const auto received = Clock::now();
    const size_t first = envelope_end(frames);
    if (first == 0 || first >= frames.size()) return;  // not a REQ/DEALER envelope: dropped, as REP would
    std::optional<Header> h;
    try {
      h = decode_header(frames[first].data(), frames[first].size());
    } catch (const Error&) {  // a worker answers it with the Error
    }
    if (h && h->type == MsgType::Ping) {
      ++pings;
      Header p;
      p.type = MsgType::Pong;
      p.request_id = h->request_id;
      std::vector<zmq::message_t> env(std::make_move_iterator(frames.begin()),
                                      std::make_move_iterator(frames.begin() + static_cast<std::ptrdiff_t>(first)));
      size_t out = 0;
      send_envelope(front, &env);
      send_message(front, p, stats_json(), {}, false, false, &out);
      bytes_out += out;
      return;
    }
    if (h && h->type == MsgType::Echo) {  // the link's probe: never behind the queue
      handle(front, frames, first, outbox, received);
      return;
    }
    Job j;
    j.first = first;
    j.received = received;
    if (h && h->type == MsgType::Request && h->flags == 0 && opt.batch_max > 1 && frames.size() >= first + 3) {
      j.key.assign(reinterpret_cast<const char*>(h->model_hash.data()), h->model_hash.size());
      j.key += fmt::format("|{}|", h->reply_codec);
      j.key.append(static_cast<const char*>(frames[first + 1].data()), frames[first + 1].size());
      j.key += '|';
      j.key.append(static_cast<const char*>(frames[first + 2].data()), frames[first + 2].size());
    }
    size_t waiting = 0;
    {
      std::lock_guard<std::mutex> lock(qmu);
      waiting = queue.size();
      const bool full = opt.max_queue > 0 && waiting >= static_cast<size_t>(opt.max_queue);
      if (!full || (h && h->type == MsgType::Forward)) {  // a pipeline stage is never refused
        j.frames = std::move(frames);
        queue.push_back(std::move(j));
        if (queue.size() > queue_peak) queue_peak = queue.size();
        qcv.notify_all();
        return;
      }
    }
    // Busy: the device runs the block itself now instead of waiting for its timeout
    ++refused_busy;
    Header b;
    b.type = MsgType::Busy;
    b.request_id = h ? h->request_id : 0;
    if (h) b.model_hash = h->model_hash;
    const double per_worker = static_cast<double>(waiting) / std::max(1, opt.workers);
    b.queue_ms = per_worker * static_cast<double>(service_us_ewma.load()) / 1e3;
    std::vector<zmq::message_t> env(std::make_move_iterator(frames.begin()),
                                    std::make_move_iterator(frames.begin() + static_cast<std::ptrdiff_t>(first)));
    size_t out = 0;
    send_envelope(front, &env);
    send_message(front, b, fmt::format("server busy: {} requests waiting (max_queue {})", waiting, opt.max_queue), {},
                 false, false, &out);
    bytes_out += out;
  }

  // The host part of a ZeroMQ tcp endpoint (127.0.0.1 for ipc:// and inproc://).
  static std::string http_host(const std::string& ep) {
    if (ep.rfind("tcp://", 0) != 0) return "127.0.0.1";
    const std::string rest = ep.substr(6);
    const auto colon = rest.rfind(':');
    std::string host = colon == std::string::npos ? rest : rest.substr(0, colon);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    return host.empty() ? "127.0.0.1" : host;
  }

  // HTTP/1.0-style: one request per connection, answered and closed. GET /metrics
  // (Prometheus text), /healthz (the front thread answers), /readyz (503 while the queue is full).
  void serve_http(zmq::socket_t& http, std::map<std::string, std::string>& pending) {
    for (int k = 0; k < 64; ++k) {
      zmq::message_t id, data;
      if (!http.recv(id, zmq::recv_flags::dontwait)) return;
      if (!http.recv(data, zmq::recv_flags::dontwait)) return;
      const std::string who(static_cast<const char*>(id.data()), id.size());
      if (data.size() == 0) {  // connected or disconnected
        pending.erase(who);
        continue;
      }
      std::string& buf = pending[who];
      buf.append(static_cast<const char*>(data.data()), data.size());
      if (buf.find("\r\n\r\n") == std::string::npos && buf.find("\n\n") == std::string::npos && buf.size() < 8192)
        continue;
      const std::string line = buf.substr(0, buf.find_first_of("\r\n"));
      pending.erase(who);
      int code = 200;
      std::string body, type = "text/plain; charset=utf-8";
      const auto sp1 = line.find(' '), sp2 = line.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
      const std::string method = line.substr(0, sp1);
      std::string path = sp1 == std::string::npos ? "" : line.substr(sp1 + 1, sp2 == std::string::npos ? sp2 : sp2 - sp1 - 1);
      path = path.substr(0, path.find('?'));
      if (method != "GET" && method != "HEAD") {
        code = 405, body = "only GET\n";
      } else if (path == "/metrics") {
        body = metrics_text(), type = "text/plain; version=0.0.4; charset=utf-8";
      } else if (path == "/healthz") {
        body = "ok\n";
      } else if (path == "/readyz") {
        std::lock_guard<std::mutex> lock(qmu);
        const bool full = opt.max_queue > 0 && queue.size() >= static_cast<size_t>(opt.max_queue);
        code = full ? 503 : 200;
        body = full ? fmt::format("busy: {} requests waiting (max_queue {})\n", queue.size(), opt.max_queue)
                    : fmt::format("ready: {} models\n", models.size());
      } else {
        code = 404, body = "not found: try /metrics, /healthz or /readyz\n";
      }
      const char* reason = code == 200 ? "OK" : code == 404 ? "Not Found" : code == 405 ? "Method Not Allowed"
                                                                                        : "Service Unavailable";
      const std::string resp = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n"
                                           "Connection: close\r\n\r\n{}",
                                           code, reason, type, body.size(), method == "HEAD" ? "" : body);
      http.send(zmq::buffer(who), zmq::send_flags::sndmore);
      http.send(zmq::buffer(resp), zmq::send_flags::none);
      http.send(zmq::buffer(who), zmq::send_flags::sndmore);  // an empty frame closes the connection
      http.send(zmq::message_t(), zmq::send_flags::none);
    }
  }

  // ---- workers -------------------------------------------------------------------------
  // The next thing to run: one message, or a batch of Requests with one key. Empty when stopping.
  std::vector<Job> take() {
    std::unique_lock<std::mutex> lk(qmu);
    std::deque<Job>::iterator it;
    ++idle;
    while (true) {
      if (stopping) {
        --idle;
        return {};
      }
      it = std::find_if(queue.begin(), queue.end(),
                        [&](const Job& j) { return j.key.empty() || !forming.count(j.key); });
      if (it != queue.end()) break;
      qcv.wait(lk);
    }
    --idle;
    std::vector<Job> batch;
    batch.push_back(std::move(*it));
    queue.erase(it);
    const std::string key = batch[0].key;
    if (key.empty() || opt.batch_max <= 1) return batch;
    if (auto b = batching.find(key); b != batching.end() && b->second == Batching::No) return batch;
    forming.insert(key);
    const size_t cap = static_cast<size_t>(opt.batch_max);
    const auto deadline = batch[0].received + std::chrono::microseconds(opt.batch_delay_us);
    while (!stopping) {
      for (auto q = queue.begin(); q != queue.end() && batch.size() < cap;) {
        if (q->key == key) {
          batch.push_back(std::move(*q));
          q = queue.erase(q);
        } else {
          ++q;
        }
      }
      if (batch.size() >= cap || Clock::now() >= deadline) break;
      qcv.wait_until(lk, deadline);
    }
    // The delay ran out before the batch filled and other workers wait with nothing to do:
    // keep a fair share and give the rest back (in order, at the front) for them, rather than
    // leave their cores idle while this one runs everything.
    if (batch.size() < cap && idle > 0 && batch.size() > 1) {
      const size_t keep = (batch.size() + static_cast<size_t>(idle)) / (static_cast<size_t>(idle) + 1);
      for (size_t i = batch.size(); i-- > keep;) queue.push_front(std::move(batch[i]));
      batch.erase(batch.begin() + static_cast<std::ptrdiff_t>(keep), batch.end());
    }
    forming.erase(key);
    qcv.notify_all();  // what this worker left for others
    return batch;
  }

  void worker_loop() {
    // at::set_num_threads (start()) set OpenMP's thread count for the thread that called it; a new
    // thread starts at OpenMP's default (every core) unless it takes LibTorch's count itself
    at::init_num_threads();
    zmq::socket_t s;
    try {
      s = zmq::socket_t(*ctx, zmq::socket_type::push);  // replies go out through the front thread
      s.set(zmq::sockopt::linger, 0);
      s.connect(backend);
    } catch (const zmq::error_t& e) {
      if (e.num() != ETERM) std::fprintf(stderr, "tessera-server: a worker could not start: %s\n", e.what());
      return;
    }
    Outbox outbox(*ctx, opt.forward_timeout_ms);
    while (true) {
      std::vector<Job> jobs = take();
      if (jobs.empty()) break;  // stopping
      ++workers_busy;
      try {
        if (jobs.size() == 1) handle(s, jobs[0].frames, jobs[0].first, outbox, jobs[0].received);
        else run_batch(s, jobs);
      } catch (const zmq::error_t& e) {
        --workers_busy;
        if (e.num() == EINTR) continue;
        break;
      }
      --workers_busy;
    }
  }

  // Routing frames (identity + empty delimiter) before a reply.
  static void send_envelope(zmq::socket_t& s, std::vector<zmq::message_t>* env) {
    if (!env) return;
    for (auto& f : *env) s.send(zmq::message_t(f.data(), f.size()), zmq::send_flags::sndmore);
  }

  void reply_error(zmq::socket_t& s, std::vector<zmq::message_t>* env, uint64_t rid, const std::string& msg,
                   const std::array<uint8_t, 32>* model = nullptr) {
    ++errors;
    Header h;
    h.type = MsgType::Error;
    h.request_id = rid;
    if (model) h.model_hash = *model;
    log_line(fmt::format("error: request {} from peer {}{}: {}", rid, peer_of(env),
                         model ? " model " + hash_to_hex(*model).substr(0, 16) : std::string(), msg));
    send_envelope(s, env);
    send_message(s, h, msg, {}, false);
  }

  // Every check a Request gets before its block runs; throws Error naming what was wrong.
  Prepared prepare(Message&& msg, Clock::time_point received) {
    Prepared p;
    p.m = std::move(msg);
    const Message& m = p.m;
    const std::string hex = hash_to_hex(m.header.model_hash);
    const Model* found = models.find(hex);
    TESSERA_CHECK(found, InvalidArgument, "unknown model {}: this server serves {} model(s)", hex.substr(0, 16),
                  models.size());
    TESSERA_CHECK(m.header.atom_count > 0, InvalidArgument, "request names no atoms");
    p.atoms = decode_atoms(m.body.data(), m.body.size(), m.header.atom_count);
    const Model& model = *found;
    for (int a : p.atoms)
      TESSERA_CHECK(a >= 0 && a < model.num_atoms(), InvalidArgument, "atom id {} out of range: model {} has {} atoms",
                    a, hex.substr(0, 16), model.num_atoms());
    if (m.header.budget_us > 0) {
      const auto spent_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - received).count();
      TESSERA_CHECK(spent_us <= m.header.budget_us, Deadline,
                    "the device's budget of {:.1f} ms for atoms [{}] was spent before the block started",
                    m.header.budget_us / 1e3, fmt::join(p.atoms, ", "));
    }
    p.block = model.combine(p.atoms);
    const auto& vals = model.graph().values;
    TESSERA_CHECK(m.tensors.size() == p.block.inputs().size(), InvalidArgument,
                  "block of atoms [{}] takes {} tensors, the request carries {}", fmt::join(p.block.atoms(), ", "),
                  p.block.inputs().size(), m.tensors.size());
    const bool rows = m.header.flags & kRequestRows;
    TESSERA_CHECK(!rows || m.tensors.size() == 1, InvalidArgument,
                  "a tile request (rows of one input) for a block of {} inputs", m.tensors.size());
    for (size_t i = 0; i < m.tensors.size(); ++i) {
      const std::string bad = rows ? rows_mismatch(m.tensors[i], vals[p.block.inputs()[i]].info)
                                   : tensor_mismatch(m.tensors[i], vals[p.block.inputs()[i]].info);
      TESSERA_CHECK(bad.empty(), InvalidArgument, "block input {} (value '{}') is {}", i,
                    vals[p.block.inputs()[i]].name, bad);
    }
    return p;
  }

  // Every output can go on the wire (checked before any frame is sent).
  void check_outputs(const Prepared& p, const std::vector<at::Tensor>& outputs) const {
    const auto& vals = models.find(hash_to_hex(p.m.header.model_hash))->graph().values;
    for (size_t i = 0; i < outputs.size(); ++i)
      TESSERA_CHECK(outputs[i].defined() && has_wire_dtype(outputs[i]), InvalidArgument,
                    "output {} (value '{}') of atoms [{}] cannot be sent: dtype {}", i,
                    vals[p.block.outputs()[i]].name, fmt::join(p.atoms, ", "),
                    outputs[i].defined() ? c10::toString(outputs[i].scalar_type()) : "undefined");
  }

  // Sends a Request's Reply; returns its bytes.
  size_t reply_outputs(zmq::socket_t& s, std::vector<zmq::message_t>* env, const Prepared& p,
                       const std::vector<at::Tensor>& outputs, double server_ms, double queue_ms,
                       Clock::time_point received, uint32_t flags = 0) {
    Header h;
    h.type = MsgType::Reply;
    h.request_id = p.m.header.request_id;
    h.model_hash = p.m.header.model_hash;
    h.server_ms = server_ms;
    h.queue_ms = queue_ms;
    h.flags = flags;
    if (p.m.header.budget_us > 0 &&
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - received).count() > p.m.header.budget_us)
      ++late;
    ++replies;  // counted before the reply leaves: a client that got it sees it counted
    size_t out = 0;
    send_envelope(s, env);
    // The device's choice of codec for what comes back (wire v3; 0 = raw).
    send_message(s, h, "", outputs, false, false, &out, {static_cast<transport::Codec>(p.m.header.reply_codec)});
    return out;
  }

  // A block batches when every input and output has the same first dimension (the batch).
  static bool batch_shaped(const Model& model, const Block& block) {
    const auto& vals = model.graph().values;
    int64_t b = -1;
    for (const auto* ids : {&block.inputs(), &block.outputs()})
      for (int v : *ids) {
        const auto& shape = vals[v].info.shape;
        if (shape.empty() || shape[0] < 1 || (b >= 0 && shape[0] != b)) return false;
        b = shape[0];
      }
    return b >= 1;
  }

  // Several Requests for one block with one input signature: checked one by one (a bad one
  // gets its own Error), concatenated along dimension 0, run once and split back. The
  // first batch of a block is checked against its first request run alone; a block that
  // does not batch (outputs without the batch dimension, rows that differ) runs request
  // by request from then on.
  void run_batch(zmq::socket_t& s, std::vector<Job>& jobs) {
    const auto t_take = Clock::now();
    struct Done {  // however it ends: every request's latency and the worker's busy time
      Impl& d;
      std::vector<Job>& jobs;
      Clock::time_point t0;
      ~Done() {
        for (const auto& j : jobs) d.observe_latency(j.received);
        d.busy_us += static_cast<uint64_t>(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
    } done_guard{*this, jobs, t_take};
    std::vector<Prepared> ps;
    std::vector<Job*> ok;
    std::vector<std::vector<zmq::message_t>> envs(jobs.size());
    for (size_t k = 0; k < jobs.size(); ++k) {
      Job& j = jobs[k];
      for (size_t i = 0; i < j.first; ++i) envs[k].push_back(std::move(j.frames[i]));
      uint64_t in = 0, rid = 0;
      for (size_t i = j.first; i < j.frames.size(); ++i) in += j.frames[i].size();
      bytes_in += in;
      ++requests;
      if (j.frames[j.first].size() >= 16) std::memcpy(&rid, static_cast<const char*>(j.frames[j.first].data()) + 8, 8);
      try {
        ps.push_back(prepare(decode_message(j.frames, j.first, opt.max_message_bytes), j.received));
        ok.push_back(&j);
      } catch (const Error& e) {
        reply_error(s, &envs[k], rid, e.message());
      } catch (const c10::Error& e) {
        reply_error(s, &envs[k], rid, std::string("internal error: ") + e.what_without_backtrace());
      } catch (const std::exception& e) {
        reply_error(s, &envs[k], rid, std::string("internal error: ") + e.what());
      }
    }
    auto env_of = [&](size_t i) { return &envs[static_cast<size_t>(ok[i] - jobs.data())]; };
    auto alone = [&](size_t i) {  // one request by itself
      const auto t0 = Clock::now();
      const double queue_ms = std::chrono::duration<double, std::milli>(t0 - ok[i]->received).count();
      try {
        auto outs = ps[i].block(ps[i].m.tensors);
        check_outputs(ps[i], outs);
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        observe_service(ms);
        bytes_out += reply_outputs(s, env_of(i), ps[i], outs, ms, queue_ms, ok[i]->received);
      } catch (const Error& e) {
        reply_error(s, env_of(i), ps[i].m.header.request_id, e.message(), &ps[i].m.header.model_hash);
      } catch (const c10::Error& e) {
        reply_error(s, env_of(i), ps[i].m.header.request_id,
                    std::string("internal error: ") + e.what_without_backtrace(), &ps[i].m.header.model_hash);
      } catch (const std::exception& e) {
        reply_error(s, env_of(i), ps[i].m.header.request_id, std::string("internal error: ") + e.what(),
                    &ps[i].m.header.model_hash);
      }
    };
    if (ps.empty()) return;
    const std::string& key = ok[0]->key;
    Batching state;
    {
      std::lock_guard<std::mutex> lock(qmu);
      state = batching.count(key) ? batching[key] : Batching::Unknown;
    }
    const Model& model = *models.find(hash_to_hex(ps[0].m.header.model_hash));
    auto mark = [&](Batching b, const std::string& why) {
      std::lock_guard<std::mutex> lock(qmu);
      if (batching.size() > 4096) batching.clear();
      batching[key] = b;
      if (b == Batching::No) {
        ++unbatchable;
        log_line(fmt::format("atoms [{}] of model {} run request by request: {}", fmt::join(ps[0].atoms, ", "),
                             model.hash().substr(0, 16), why));
      }
    };
    if (state == Batching::Unknown && !batch_shaped(model, ps[0].block)) {
      mark(Batching::No, "an input or output has no batch dimension");
      state = Batching::No;
    }
    if (ps.size() == 1 || state == Batching::No) {
      for (size_t i = 0; i < ps.size(); ++i) alone(i);
      return;
    }
    const size_t k = ps.size();
    std::vector<at::Tensor> first_alone;
    size_t done = 0;  // requests already answered (the first, when it ran alone to check the batch)
    try {
      const auto t0 = Clock::now();
      if (state == Batching::Unknown) first_alone = ps[0].block(ps[0].m.tensors);
      std::vector<at::Tensor> in;
      for (size_t i = 0; i < ps[0].m.tensors.size(); ++i) {
        std::vector<at::Tensor> parts;
        for (const auto& p : ps) parts.push_back(p.m.tensors[i]);
        in.push_back(at::cat(parts, 0));
      }
      auto outs = ps[0].block(in);
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      std::string why;
      const auto& vals = model.graph().values;
      for (size_t o = 0; o < outs.size() && why.empty(); ++o) {
        const int64_t b = vals[ps[0].block.outputs()[o]].info.shape[0];
        if (!outs[o].defined() || outs[o].dim() < 1 || outs[o].size(0) != b * static_cast<int64_t>(k))
          why = fmt::format("output {} of a batch of {} has {} rows, not {}", o, k,
                            outs[o].defined() && outs[o].dim() ? outs[o].size(0) : -1, b * static_cast<int64_t>(k));
        else if (state == Batching::Unknown && !at::allclose(outs[o].narrow(0, 0, b), first_alone[o], 1e-4, 1e-5))
          why = fmt::format("output {}'s rows differ from the request run alone", o);
      }
      if (!why.empty()) {
        mark(Batching::No, why);
        if (!first_alone.empty()) {  // the first request's own result is at hand
          check_outputs(ps[0], first_alone);
          bytes_out += reply_outputs(s, env_of(0), ps[0], first_alone, ms,
                                     std::chrono::duration<double, std::milli>(t0 - ok[0]->received).count(),
                                     ok[0]->received);
          done = 1;
        }
        for (size_t i = done; i < k; ++i) alone(i);
        return;
      }
      if (state == Batching::Unknown) mark(Batching::Yes, "");
      ++batches;
      batched += k;
      observe_service(ms / static_cast<double>(k));
      const uint32_t flags = kReplyBatched | (static_cast<uint32_t>(std::min<size_t>(k, 0xffff)) << 16);
      for (size_t i = 0; i < k; ++i) {
        std::vector<at::Tensor> mine;
        for (size_t o = 0; o < outs.size(); ++o) {
          const int64_t b = vals[ps[0].block.outputs()[o]].info.shape[0];
          mine.push_back(outs[o].narrow(0, static_cast<int64_t>(i) * b, b));
        }
        check_outputs(ps[i], mine);
        bytes_out += reply_outputs(s, env_of(i), ps[i], mine, ms,
                                   std::chrono::duration<double, std::milli>(t0 - ok[i]->received).count(),
                                   ok[i]->received, flags);
        done = i + 1;
      }
    } catch (const zmq::error_t&) {
      throw;
    } catch (const std::exception& e) {  // the batch as a whole failed: each request by itself
      mark(Batching::No, std::string("a batch failed: ") + e.what());
      for (size_t i = done; i < k; ++i) alone(i);
    }
  }

  // frames[first..] is the message; frames[0..first) its routing envelope.
  // `stamp`: when the front thread took the message off the network: the budget counts
  // from there, and the time until a worker started on it is reported as queue_ms.
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
    bool request = false;
    std::array<uint8_t, 32> model_hash{};
    const std::array<uint8_t, 32>* model = nullptr;  // set once the message names one
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
        case MsgType::Echo: {
          ++echoes;
          h.type = MsgType::Echo;
          h.queue_ms = queue_ms;  // probes measure the link: the device subtracts any wait
          send_envelope(s, env);
          send_message(s, h, "", m.tensors, false, false, &out);
          break;
        }
        case MsgType::Request: {
          ++requests;
          request = true;
          model_hash = m.header.model_hash;
          model = &model_hash;
          Prepared p = prepare(std::move(m), received);
          auto outputs = p.block(p.m.tensors);
          check_outputs(p, outputs);
          const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
          observe_service(ms);
          out = reply_outputs(s, env, p, outputs, ms, queue_ms, received);
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
      if (!answered) reply_error(s, env, rid, e.message(), model);
    } catch (const zmq::error_t&) {
      throw;
    } catch (const c10::Error& e) {  // LibTorch's message without its C++ backtrace
      if (!answered) reply_error(s, env, rid, std::string("internal error: ") + e.what_without_backtrace(), model);
    } catch (const std::exception& e) {
      if (!answered) reply_error(s, env, rid, std::string("internal error: ") + e.what(), model);
    }
    if (request) observe_latency(received);
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
      if (!why.empty())
        log_line(fmt::format("error: request {}: the device's result was not sent to {}: {}", h.request_id,
                             route.reply_to, why));
    };
    // r: the route with the traces of the hops run so far (this one's too, once it ran)
    auto fail = [&](Route r, uint32_t next, std::vector<int> ids, std::vector<at::Tensor> ts, const std::string& why) {
      ++forward_failures;
      ++errors;
      log_line(fmt::format("error: request {}: stage handed back to the device: {}", h.request_id, why));
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
    st.refused_busy = refused_busy;
    st.batches = batches;
    st.batched = batched;
    st.unbatchable = unbatchable;
    {
      std::lock_guard<std::mutex> lock(qmu);
      st.queued = queue.size();
    }
    st.queue_peak = queue_peak;
    st.workers_busy = workers_busy;
    return st;
  }

  std::string metrics_text() const {
    const ServerStats st = snapshot();
    std::string out;
    auto metric = [&](const char* name, const char* type, const char* help, double v) {
      out += fmt::format("# HELP tessera_{0} {1}\n# TYPE tessera_{0} {2}\ntessera_{0} {3}\n", name, help, type, v);
    };
    metric("requests_total", "counter", "Request messages taken (blocks asked for).", st.requests);
    metric("replies_total", "counter", "Requests answered with their outputs.", st.replies);
    metric("errors_total", "counter", "Messages answered with an Error, and pipeline stages handed back.", st.errors);
    metric("busy_replies_total", "counter", "Requests refused with Busy because the queue was full.",
           st.refused_busy);
    metric("late_replies_total", "counter", "Replies sent after the device's budget had run out.", st.late);
    metric("pings_total", "counter", "Pings answered.", st.pings);
    metric("echoes_total", "counter", "Echo probes answered.", st.echoes);
    metric("forwards_total", "counter", "Pipeline stages run (Forward messages).", st.forwards);
    metric("forward_failures_total", "counter", "Pipeline stages handed back to the device.", st.forward_failures);
    metric("tile_fallbacks_total", "counter", "Tiles run here because their server failed.", st.tile_fallbacks);
    metric("batches_total", "counter", "Dynamic batches of two or more Requests run.", st.batches);
    metric("batched_requests_total", "counter", "Requests that ran in dynamic batches.", st.batched);
    metric("unbatchable_blocks_total", "counter", "Blocks found not to batch.", st.unbatchable);
    metric("received_bytes_total", "counter", "Bytes of messages received.", st.bytes_in);
    metric("sent_bytes_total", "counter", "Bytes of messages sent.", st.bytes_out);
    metric("busy_seconds_total", "counter", "Time workers spent handling messages.", st.busy_ms / 1e3);
    metric("queue_length", "gauge", "Messages waiting for a worker.", st.queued);
    metric("queue_peak", "gauge", "The most messages that ever waited for a worker.", st.queue_peak);
    metric("queue_capacity", "gauge", "max_queue (0 = no bound).", opt.max_queue);
    metric("workers", "gauge", "Worker threads.", opt.workers);
    metric("workers_busy", "gauge", "Workers running something now.", st.workers_busy);
    metric("models", "gauge", "Models served.", static_cast<double>(models.size()));
    out += "# HELP tessera_request_seconds Requests from receipt to the reply leaving the worker.\n"
           "# TYPE tessera_request_seconds histogram\n";
    uint64_t cum = 0;
    for (size_t b = 0; b < kBuckets.size(); ++b) {
      cum += latency_count[b];
      out += fmt::format("tessera_request_seconds_bucket{{le=\"{}\"}} {}\n", kBuckets[b], cum);
    }
    cum += latency_count[kBuckets.size()];
    out += fmt::format("tessera_request_seconds_bucket{{le=\"+Inf\"}} {}\n", cum);
    out += fmt::format("tessera_request_seconds_sum {}\ntessera_request_seconds_count {}\n", latency_sum_us / 1e6, cum);
    return out;
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
  TESSERA_CHECK(options.batch_max >= 1 && options.batch_max <= 4096, InvalidArgument,
                "batch_max must be in [1, 4096], got {}", options.batch_max);
  TESSERA_CHECK(options.batch_delay_us >= 0 && options.batch_delay_us <= 10'000'000, InvalidArgument,
                "batch_delay_us must be in [0, 10000000], got {}", options.batch_delay_us);
  TESSERA_CHECK(options.max_queue >= 0, InvalidArgument, "max_queue must be >= 0 (0 = no bound), got {}",
                options.max_queue);
  TESSERA_CHECK(options.metrics_port >= -1 && options.metrics_port <= 65535, InvalidArgument,
                "metrics_port must be -1 (off), 0 (ephemeral) or a TCP port, got {}", options.metrics_port);
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
  d.backend = fmt::format("inproc://tessera-replies-{}", static_cast<const void*>(impl_.get()));
  {
    std::lock_guard<std::mutex> lock(d.qmu);
    d.stopping = false;
    d.queue.clear();
  }
  if (!d.opt.curve_secret_key.empty()) {
    std::promise<void> zap_ready;
    auto f = zap_ready.get_future();
    d.threads.emplace_back([&d, &zap_ready] { run_zap_handler(*d.ctx, d.opt.allowed_client_keys, zap_ready); });
    f.get();
  }
  std::promise<std::string> bound;
  auto fb = bound.get_future();
  d.threads.emplace_back([&d, &bound] { d.front_loop(bound); });
  try {
    d.endpoint = fb.get();
  } catch (...) {
    d.running = true;
    stop();
    throw;
  }
  for (int i = 0; i < d.opt.workers; ++i) d.threads.emplace_back([&d] { d.worker_loop(); });
  d.running = true;
}

void Server::stop() {
  auto& d = *impl_;
  if (!d.running.exchange(false)) return;  // one caller stops; a concurrent second returns
  {
    std::lock_guard<std::mutex> lock(d.qmu);
    d.stopping = true;
  }
  d.qcv.notify_all();
  if (d.ctx) d.ctx->shutdown();
  for (auto& t : d.threads)
    if (t.joinable()) t.join();
  d.threads.clear();
  {
    std::lock_guard<std::mutex> lock(d.qmu);
    d.queue.clear();  // messages no worker took: their frames go before the context
    d.forming.clear();
  }
  if (d.ctx) d.ctx->close();
  d.ctx.reset();
}

bool Server::running() const { return impl_->running; }
std::string Server::endpoint() const { return impl_->endpoint; }
std::string Server::metrics_endpoint() const { return impl_->metrics_ep; }
std::string Server::metrics_text() const { return impl_->metrics_text(); }
ServerStats Server::stats() const { return impl_->snapshot(); }
std::vector<std::string> Server::models() const {
  return impl_->models.hashes();
}

}  // namespace tessera::runtime
