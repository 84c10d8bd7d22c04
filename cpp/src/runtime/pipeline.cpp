// runtime/pipeline.cpp -- the device side of an N-node pipeline (see tessera/runtime/pipeline.h).
//
// One thread, two sockets: a DEALER to the first server stage (Forwards out, its Acks and
// Errors back) and a ROUTER bound on the reply endpoint (Results from any stage). With Sleep
// emulation the uplink is a resource of its own: a Forward waits in `outgoing` until its bytes
// have crossed the emulated link, while the device computes the next request. submit()/poll()
// are the streaming interface; map() is a loop over them that
// keeps up to in_flight requests travelling, polls both sockets until the nearest
// deadline, and completes a request when its last stage's Result (kResultFinal) has come
// and every model output is held; a kResultFailed Result or a deadline runs the rest here.
#include "tessera/runtime/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>
#include <utility>

#include "tessera/atoms/rows.h"
#include "tessera/core/error.h"
#include "tessera/graph/tensor.h"
#include "tessera/transport/message.h"
#include "tessera/transport/proxy.h"

#include "emulation.h"

namespace tessera::runtime {
using namespace transport;
using Clock = std::chrono::steady_clock;

namespace {
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
double mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}
}  // namespace

plan::PipelineTiling pipeline_tiling(const Model& model, int max_tiles) {
  const auto& g = model.graph();
  const auto& atoms = model.atoms();
  const int n = model.num_atoms();
  plan::PipelineTiling t;
  t.max_tiles = max_tiles;
  t.chain.assign(n, -1);
  t.ops.assign(n, {});
  t.rows_in.assign(n, 0);
  t.rows_out.assign(n, 0);
  t.in_bytes.assign(n, 0);
  t.out_bytes.assign(n, 0);
  int chains = 0;
  for (int a = 0; a < n; ++a) {
    auto rc = row_chain(g, atoms, {a});
    if (!rc) continue;
    for (size_t i = 0; i < rc->rows.size(); ++i) {
      const auto& r = rc->rows[i];
      t.ops[a].push_back({r[0], r[1], r[2], r[3], rc->kinds[i]});
    }
    t.rows_in[a] = rc->rows_in, t.rows_out[a] = rc->rows_out;
    t.in_bytes[a] = static_cast<double>(g.values[rc->input].info.bytes);
    t.out_bytes[a] = static_cast<double>(g.values[rc->output].info.bytes);
    // one chain with the atom before when the two are one chain together
    t.chain[a] = a > 0 && t.chain[a - 1] >= 0 && row_chain(g, atoms, {a - 1, a}) ? t.chain[a - 1] : chains++;
  }
  return t;
}

std::string PipelineStats::to_json() const {
  std::string st;
  for (size_t i = 0; i < stages.size(); ++i) {
    const auto& s = stages[i];
    st += fmt::format(
        R"({}{{"node": "{}", "frames": {}, "compute_ms": {:.4f}, "cpu_ms": {:.4f}, "accounted_ms": {:.4f}, )"
        R"("queue_ms": {:.4f}, "link_in_ms": {:.4f}, "link_back_ms": {:.4f}, "bytes_in": {:.1f}}})",
        i ? ", " : "", s.node, s.frames, s.compute_ms, s.cpu_ms, s.accounted_ms, s.queue_ms, s.link_in_ms,
        s.link_back_ms, s.bytes_in);
  }
  return fmt::format(
      R"({{"frames": {}, "fallbacks": {}, "late": {}, "wall_fps": {:.4f}, "accounted_fps": {:.4f}, )"
      R"("accounted_bottleneck_ms": {:.4f}, "bottleneck": "{}", "latency_ms_median": {:.4f}, "stages": [{}]}})",
      frames, fallbacks, late, wall_fps, accounted_fps, accounted_bottleneck_ms, bottleneck, latency_ms_median, st);
}

struct Pipeline::Impl {
  explicit Impl(Model m) : model(std::move(m)) {}
  Model model;
  plan::PipelinePlan plan;
  plan::PipelineNetwork net;
  PipelineOptions opt;
  std::vector<double> slow;             // per node
  std::vector<int> stage0;              // the device's atoms (may be empty)
  std::vector<Hop> hops;                // the server stages
  std::vector<int> hop_node;
  std::vector<std::vector<int>> hop_helpers;  // per hop: its split's helper nodes
  std::vector<int> send_ids;            // values the device sends to the first server
  std::array<uint8_t, 32> hash{};
  std::unique_ptr<zmq::context_t> ctx;
  zmq::socket_t reply;                  // ROUTER: Results from every stage
  zmq::socket_t first;                  // DEALER to the first server stage
  std::string reply_ep;
  uint64_t next_id = 1;
  Clock::time_point backoff_until{};
  mutable std::mutex mu;
  std::vector<FrameRecord> records;
  double wall_s = 0;
  int late = 0;

  struct Pending {
    uint64_t ticket = 0;
    std::map<int, at::Tensor> env;  // values held here: inputs, stage-0 values, results
    Clock::time_point start, deadline;
    bool final = false;
    uint64_t bytes_sent = 0;
    std::vector<HopTrace> trace;
    FrameRecord rec;
  };
  // A Forward waiting for the emulated uplink (Sleep): it leaves at `at`, when its last byte
  // has crossed the link and half a round trip has passed.
  struct Outgoing {
    Clock::time_point at;
    uint64_t id = 0;
    Header header;
    std::string body;
    std::vector<at::Tensor> tensors;
  };
  std::map<uint64_t, Pending> pending;   // travelling, by request id
  std::deque<Outgoing> outgoing;          // in leaving order (the link is FIFO)
  std::vector<std::pair<uint64_t, std::string>> send_failed;  // ids whose Forward could not be sent
  std::vector<PipelineDone> done;         // completed, not yet returned by poll()
  Clock::time_point link_free{};          // the emulated uplink is busy until then
  uint64_t next_ticket = 1;

  double bw(int a, int b) const { return net.bandwidth_mbps[a][b]; }
  double rtt(int a, int b) const { return net.rtt_ms.empty() ? 0.0 : net.rtt_ms[a][b]; }

  void connect_first() {
    first = zmq::socket_t(*ctx, zmq::socket_type::dealer);
    first.set(zmq::sockopt::linger, 0);
    first.set(zmq::sockopt::immediate, 1);
    first.set(zmq::sockopt::sndtimeo, opt.send_timeout_ms);
    try {
      first.connect(hops[0].endpoint);
    } catch (const zmq::error_t& e) {
      TESSERA_THROW(InvalidArgument, "cannot connect to the first server stage at '{}': {}", hops[0].endpoint,
                    e.what());
    }
  }

  // The device busy for `ms` of emulated compute (Sleep): Forwards that fall due meanwhile
  // still leave on time (the radio sends while the CPU computes); Results wait in the socket
  // until the device is free, as they would in a single-threaded app.
  void device_busy(double ms) {
    const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(ms));
    while (true) {
      if (!outgoing.empty() && outgoing.front().at < until) {
        std::this_thread::sleep_until(outgoing.front().at);
        send_due();
        continue;
      }
      std::this_thread::sleep_until(until);
      return;
    }
  }

  // Runs atoms here on the values held; their outputs join env. Returns {wall, cpu} ms.
  std::pair<double, double> run_here(const std::vector<int>& atoms, std::map<int, at::Tensor>& env) {
    Block b = model.combine(atoms);
    const auto& vals = model.graph().values;
    std::vector<at::Tensor> args;
    for (int v : b.inputs()) {
      auto it = env.find(v);
      TESSERA_CHECK(it != env.end(), Engine, "the device lacks value '{}' (id {}) to run atoms [{}]", vals[v].name, v,
                    fmt::join(atoms, ", "));
      args.push_back(it->second);
    }
    const auto t0 = Clock::now();
    const double c0 = thread_cpu_ms();
    auto outs = b(args);
    const double cpu = thread_cpu_ms() - c0, wall = ms_since(t0);
    if (opt.emulation == Emulation::Sleep && slow[0] > 1) device_busy(wall * (slow[0] - 1));
    for (size_t i = 0; i < outs.size(); ++i) env[b.outputs()[i]] = std::move(outs[i]);
    return {wall, cpu};
  }

  // Runs the hops from `from` on here and marks the frame as a fallback.
  void run_rest(Pending& p, uint32_t from, const std::string& why) {
    if (opt.retry_ms > 0) backoff_until = Clock::now() + std::chrono::milliseconds(opt.retry_ms);
    std::vector<int> atoms;
    for (size_t k = from; k < hops.size(); ++k) atoms.insert(atoms.end(), hops[k].atoms.begin(), hops[k].atoms.end());
    p.rec.fallback = true;
    p.rec.error = why;
    if (atoms.empty()) return;
    auto [wall, cpu] = run_here(atoms, p.env);
    auto& st = p.rec.stages[1 + from];
    st.ran_remote = false;
    st.compute_ms = wall;
    st.cpu_ms = cpu;
    st.accounted_ms = cpu * slow[0];
    for (size_t s = 2 + from; s < p.rec.stages.size(); ++s) p.rec.stages[s].ran_remote = false;
  }

  bool has_outputs(const Pending& p) const {
    for (int v : model.graph().outputs)
      if (!p.env.count(v)) return false;
    return true;
  }

  void finish(Pending& p) {
    for (size_t k = 0; k < p.trace.size() && k < hops.size(); ++k) {
      auto& st = p.rec.stages[1 + k];
      if (!st.ran_remote) continue;
      const auto& t = p.trace[k];
      const int u = hop_node[k], w = k == 0 ? 0 : hop_node[k - 1];
      st.compute_ms = t.compute_ms;
      st.cpu_ms = t.cpu_ms;
      st.accounted_ms = t.cpu_ms * slow[u];
      st.queue_ms = t.queue_ms;
      st.bytes_in = k == 0 ? p.bytes_sent : p.trace[k - 1].bytes_forward;
      st.link_in_ms = serialization_ms(static_cast<double>(st.bytes_in), bw(w, u));
      st.bytes_back = t.bytes_result;
      st.link_back_ms = serialization_ms(static_cast<double>(t.bytes_result), bw(u, 0));
      for (size_t j = 0; j < t.tiles.size() && j < hop_helpers[k].size(); ++j) {
        const int hn = hop_helpers[k][j];
        const auto& x = t.tiles[j];
        st.tile_ms = std::max(st.tile_ms, x.server_ms * slow[hn]);
        st.tile_link_ms = std::max({st.tile_link_ms, serialization_ms(static_cast<double>(x.bytes_out), bw(u, hn)),
                                    serialization_ms(static_cast<double>(x.bytes_in), bw(hn, u))});
        st.tile_fallbacks += static_cast<int>(x.fallback);
      }
    }
    for (size_t k = p.trace.size(); k < hops.size(); ++k)
      if (p.rec.stages[1 + k].ran_remote) p.rec.stages[1 + k].ran_remote = false;  // never reported
    p.rec.total_ms = ms_since(p.start);
    PipelineDone d;
    d.ticket = p.ticket;
    for (int v : model.graph().outputs) d.outputs.push_back(p.env.at(v));
    d.record = std::move(p.rec);
    done.push_back(std::move(d));
  }

  // Sends one Forward now. Returns "" or why it could not be sent.
  std::string send_now(Outgoing& o, size_t& bytes) {
    std::string why;
    try {
      if (!send_message(first, o.header, o.body, o.tensors, true, false, &bytes))
        why = fmt::format("{} did not accept the request within {} ms", hops[0].endpoint, opt.send_timeout_ms);
    } catch (const zmq::error_t& e) {
      why = fmt::format("cannot send to {}: {}", hops[0].endpoint, e.what());
    }
    if (!why.empty()) {
      backoff_until = Clock::now() + std::chrono::milliseconds(opt.retry_ms);
      connect_first();  // drop what the dead connection holds
      return why;
    }
    return "";
  }

  // Sends the Forwards whose emulated link time has passed; after a failed send, the ones
  // queued behind it fail with it (they go to the same server).
  void send_due() {
    const auto now = Clock::now();
    while (!outgoing.empty() && outgoing.front().at <= now) {
      Outgoing o = std::move(outgoing.front());
      outgoing.pop_front();
      size_t bytes = 0;
      std::string why = send_now(o, bytes);
      if (why.empty()) {
        auto it = pending.find(o.id);
        if (it != pending.end()) {
          it->second.bytes_sent = bytes;
          it->second.deadline = Clock::now() + std::chrono::milliseconds(opt.timeout_ms);
        }
        continue;
      }
      send_failed.emplace_back(o.id, why);
      while (!outgoing.empty()) {
        send_failed.emplace_back(outgoing.front().id, why);
        outgoing.pop_front();
      }
    }
  }

  // Stage 0 here, then a Forward to the first server (or everything here when there is
  // none or it is backing off). Returns true if the request is now travelling.
  bool start(Pending& p, const std::vector<at::Tensor>& inputs) {
    const auto& g = model.graph();
    for (size_t i = 0; i < inputs.size(); ++i) p.env[g.inputs[i]] = inputs[i];
    p.start = Clock::now();
    p.rec.request_id = next_id++;
    p.rec.stages.assign(1 + hops.size(), StageRecord{});
    p.rec.stages[0].node = 0;
    p.rec.stages[0].ran_remote = false;
    for (size_t k = 0; k < hops.size(); ++k) p.rec.stages[1 + k].node = hop_node[k];
    if (!stage0.empty()) {
      auto [wall, cpu] = run_here(stage0, p.env);
      p.rec.stages[0].compute_ms = wall;
      p.rec.stages[0].cpu_ms = cpu;
      p.rec.stages[0].accounted_ms = cpu * slow[0];
    }
    if (hops.empty()) return false;
    if (Clock::now() < backoff_until) {
      run_rest(p, 0, "the pipeline is backing off after a failure (retry_ms)");
      return false;
    }
    Route r;
    r.reply_to = reply_ep;
    r.sleep = opt.emulation == Emulation::Sleep;
    r.hops = hops;
    r.values = send_ids;
    Outgoing o;
    o.id = p.rec.request_id;
    for (int v : send_ids) o.tensors.push_back(p.env.at(v));
    o.header.type = MsgType::Forward;
    o.header.request_id = p.rec.request_id;
    o.header.model_hash = hash;
    o.body = encode_route(r);
    const auto now = Clock::now();
    p.deadline = now + std::chrono::milliseconds(opt.timeout_ms);
    if (opt.emulation == Emulation::Sleep && bw(0, hop_node[0]) > 0) {
      // The uplink is its own resource: the Forward starts when the link is free, occupies it
      // for its serialisation, and reaches the server half a round trip later.
      using Ms = std::chrono::duration<double, std::milli>;
      const double ser = serialization_ms(static_cast<double>(message_bytes(o.body, o.tensors)), bw(0, hop_node[0]));
      const auto begin = std::max(now, link_free);
      link_free = begin + std::chrono::duration_cast<Clock::duration>(Ms(ser));
      o.at = link_free + std::chrono::duration_cast<Clock::duration>(Ms(rtt(0, hop_node[0]) / 2));
      p.deadline = o.at + std::chrono::milliseconds(opt.timeout_ms);
      outgoing.push_back(std::move(o));
      return true;
    }
    size_t bytes = 0;
    const std::string why = send_now(o, bytes);
    if (!why.empty()) {
      run_rest(p, 0, why);
      return false;
    }
    p.bytes_sent = bytes;
    return true;
  }

  // A Result from a stage. Returns the request id it completed, or 0.
  uint64_t on_result(std::vector<zmq::message_t>& frames) {
    const size_t first_frame = envelope_end(frames);
    if (first_frame == 0) return 0;
    Message m;
    Route route;
    try {
      m = decode_message(frames, first_frame, 1ull << 34);
      if (m.header.type != MsgType::Result) return 0;
      auto it = pending.find(m.header.request_id);
      if (it == pending.end()) {
        ++late;
        return 0;
      }
      route = decode_route(m.body.data(), m.body.size(), m.header.tensor_count);
      TESSERA_CHECK(route.hops.size() == hops.size(), InvalidArgument, "a Result with {} hops for a {}-hop route",
                    route.hops.size(), hops.size());
      const auto& vals = model.graph().values;
      for (size_t k = 0; k < route.values.size(); ++k) {
        const int v = route.values[k];
        TESSERA_CHECK(v < static_cast<int>(vals.size()), InvalidArgument, "a Result carries value id {}", v);
        const std::string bad = tensor_mismatch(m.tensors[k], vals[v].info);
        TESSERA_CHECK(bad.empty(), InvalidArgument, "a Result's value '{}' is {}", vals[v].name, bad);
      }
    } catch (const Error&) {
      return 0;  // a malformed Result: the request's deadline still stands
    }
    Pending& p = pending.at(m.header.request_id);
    for (size_t k = 0; k < route.values.size(); ++k) p.env[route.values[k]] = m.tensors[k];
    if (route.trace.size() > p.trace.size()) p.trace = route.trace;
    if (m.header.flags & kResultFailed) {
      run_rest(p, route.next, route.error.empty() ? "a stage failed" : route.error);
      return m.header.request_id;
    }
    if (m.header.flags & kResultFinal) p.final = true;
    return p.final && has_outputs(p) ? m.header.request_id : 0;
  }

  // What came back on the first server's socket: Acks (ignored) and Errors (that request
  // was refused: run it here).
  uint64_t on_first(std::vector<zmq::message_t>& frames) {
    try {
      Message m = decode_message(frames, frames.size() && frames[0].size() == 0 ? 1 : 0, 1ull << 20);
      if (m.header.type != MsgType::Error) return 0;
      auto it = pending.find(m.header.request_id);
      if (it == pending.end()) return 0;
      run_rest(it->second, 0, fmt::format("the first server stage refused the request: {}", m.body));
      return m.header.request_id;
    } catch (const Error&) {
      return 0;
    }
  }

  uint64_t submit(const std::vector<at::Tensor>& inputs) {
    Pending p;
    p.ticket = next_ticket++;
    const uint64_t ticket = p.ticket;
    if (start(p, inputs)) {
      const uint64_t id = p.rec.request_id;
      pending.emplace(id, std::move(p));
    } else {
      finish(p);
    }
    return ticket;
  }

  // One round: wait up to `wait_ms` (less when a Forward falls due or a deadline passes),
  // send what is due, read every reply, run the rest here of what failed or timed out.
  void step(long wait_ms) {
    send_due();
    auto nearest = Clock::now() + std::chrono::milliseconds(std::max<long>(0, wait_ms));
    for (auto& [id, p] : pending) nearest = std::min(nearest, p.deadline);
    if (!outgoing.empty()) nearest = std::min(nearest, outgoing.front().at);
    if (!send_failed.empty()) nearest = Clock::now();
    const long wait = std::max<long>(
        0, std::chrono::duration_cast<std::chrono::microseconds>(nearest - Clock::now()).count() + 999) / 1000;
    zmq::pollitem_t items[] = {{reply.handle(), 0, ZMQ_POLLIN, 0}, {first.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, hops.empty() ? 1 : 2, std::chrono::milliseconds(wait));
    send_due();
    std::vector<uint64_t> completed;
    std::vector<zmq::message_t> msg;
    for (int s = 0; s < (hops.empty() ? 1 : 2); ++s) {
      zmq::socket_t& sock = s == 0 ? reply : first;
      while (true) {
        zmq::pollitem_t one[] = {{sock.handle(), 0, ZMQ_POLLIN, 0}};
        if (zmq::poll(one, 1, std::chrono::milliseconds(0)) <= 0) break;
        if (!receive(sock, msg)) break;
        const uint64_t id = s == 0 ? on_result(msg) : on_first(msg);
        if (id) completed.push_back(id);
      }
    }
    auto failed = std::move(send_failed);
    send_failed.clear();
    for (auto& [id, why] : failed) {
      auto it = pending.find(id);
      if (it == pending.end()) continue;
      run_rest(it->second, 0, why);
      completed.push_back(id);
    }
    const auto now = Clock::now();
    for (auto& [id, p] : pending)
      if (now >= p.deadline && std::find(completed.begin(), completed.end(), id) == completed.end()) {
        run_rest(p, 0, fmt::format("no result within {} ms (request {})", opt.timeout_ms, id));
        completed.push_back(id);
      }
    for (uint64_t id : completed) {
      auto it = pending.find(id);
      if (it == pending.end()) continue;
      finish(it->second);
      pending.erase(it);
    }
  }

  std::vector<PipelineDone> poll(int timeout_ms) {
    const auto until = Clock::now() + std::chrono::milliseconds(std::max(0, timeout_ms));
    while (done.empty()) {
      const long left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
      if (pending.empty() && outgoing.empty()) break;
      step(std::max<long>(0, left));
      if (Clock::now() >= until) break;
    }
    if (done.empty() && timeout_ms == 0) step(0);
    return std::exchange(done, {});
  }

  std::vector<std::vector<at::Tensor>> map(const std::vector<std::vector<at::Tensor>>& frames) {
    for (size_t i = 0; i < frames.size(); ++i) {
      try {
        model.check_inputs(frames[i]);
      } catch (const Error& e) {
        TESSERA_THROW(InvalidArgument, "frame {}: {}", i, e.message());
      }
    }
    TESSERA_CHECK(pending.empty() && done.empty(), InvalidArgument,
                  "map() while {} submitted request(s) are not collected: poll() them first",
                  pending.size() + done.size());
    const size_t n = frames.size();
    std::vector<std::vector<at::Tensor>> results(n);
    records.assign(n, FrameRecord{});
    late = 0;
    std::map<uint64_t, size_t> index;
    size_t next = 0, finished = 0;
    const auto t0 = Clock::now();
    while (finished < n) {
      while (pending.size() + done.size() < static_cast<size_t>(opt.in_flight) && next < n) {
        index[submit(frames[next])] = next;
        ++next;
      }
      for (auto& d : poll(opt.timeout_ms)) {
        auto it = index.find(d.ticket);
        if (it == index.end()) continue;
        results[it->second] = std::move(d.outputs);
        records[it->second] = std::move(d.record);
        index.erase(it);
        ++finished;
      }
    }
    wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
    return results;
  }

  PipelineStats stats() const {
    PipelineStats st;
    st.frames = static_cast<int>(records.size());
    st.late = late;
    const size_t S = 1 + hops.size();
    std::vector<std::vector<double>> comp(S), cpu(S), acc(S), queue(S), lin(S), lback(S), bin(S), tms(S), tlink(S);
    std::vector<int> tfb(S, 0);
    std::vector<double> lat;
    for (const auto& r : records) {
      lat.push_back(r.total_ms);
      if (r.fallback) {
        ++st.fallbacks;
        continue;
      }
      for (size_t s = 0; s < S && s < r.stages.size(); ++s) {
        const auto& x = r.stages[s];
        comp[s].push_back(x.compute_ms);
        cpu[s].push_back(x.cpu_ms);
        acc[s].push_back(x.accounted_ms);
        queue[s].push_back(x.queue_ms);
        lin[s].push_back(x.link_in_ms);
        lback[s].push_back(x.link_back_ms);
        bin[s].push_back(static_cast<double>(x.bytes_in));
        tms[s].push_back(x.tile_ms);
        tlink[s].push_back(x.tile_link_ms);
        tfb[s] += x.tile_fallbacks;
      }
    }
    st.latency_ms_median = median(lat);
    st.wall_fps = wall_s > 0 ? st.frames / wall_s : 0;
    double worst = 0;
    for (size_t s = 0; s < S; ++s) {
      PipelineStageStats x;
      const int node = s == 0 ? 0 : hop_node[s - 1];
      x.node = net.nodes[node].name;
      x.frames = static_cast<int>(comp[s].size());
      x.compute_ms = median(comp[s]);
      x.cpu_ms = median(cpu[s]);
      x.accounted_ms = mean(acc[s]);
      x.queue_ms = median(queue[s]);
      x.link_in_ms = mean(lin[s]);
      x.link_back_ms = mean(lback[s]);
      x.bytes_in = mean(bin[s]);
      x.tile_ms = mean(tms[s]);
      x.tile_link_ms = mean(tlink[s]);
      x.tile_fallbacks = tfb[s];
      const std::string on = fmt::format("stage {} on {}", s, x.node);
      if (x.tile_ms > worst) worst = x.tile_ms, st.bottleneck = fmt::format("a tile of stage {} (helpers of {})", s, x.node);
      if (x.tile_link_ms > worst)
        worst = x.tile_link_ms, st.bottleneck = fmt::format("a tile link of stage {} ({})", s, x.node);
      if (x.accounted_ms > worst) worst = x.accounted_ms, st.bottleneck = on;
      if (s > 0 && x.link_in_ms > worst)
        worst = x.link_in_ms,
        st.bottleneck = fmt::format("link {} -> {}", net.nodes[s == 1 ? 0 : hop_node[s - 2]].name, x.node);
      if (s > 0 && x.link_back_ms > worst)
        worst = x.link_back_ms, st.bottleneck = fmt::format("link {} -> {}", x.node, net.nodes[0].name);
      st.stages.push_back(std::move(x));
    }
    st.accounted_bottleneck_ms = worst;
    st.accounted_fps = worst > 0 ? 1000.0 / worst : 0;
    return st;
  }
};

Pipeline::Pipeline(Model model, plan::PipelinePlan plan, plan::PipelineNetwork network, PipelineOptions options)
    : impl_(std::make_unique<Impl>(std::move(model))) {
  auto& d = *impl_;
  const Model& m = d.model;
  TESSERA_CHECK(plan.ok(), InvalidArgument, "the pipeline plan is {}: {}", plan::status_name(plan.status), plan.reason);
  TESSERA_CHECK(!plan.stages.empty(), InvalidArgument, "the pipeline plan has no stages");
  const AtomDag dag = m.dag();
  network.validate(dag);
  const auto checked = plan::evaluate_pipeline(dag, network, plan.stages);
  TESSERA_CHECK(checked.ok(), InvalidArgument, "the pipeline plan does not fit this network: {}", checked.reason);
  TESSERA_CHECK(options.in_flight >= 1, InvalidArgument, "in_flight must be >= 1, got {}", options.in_flight);
  TESSERA_CHECK(options.timeout_ms >= 1 && options.retry_ms >= 0 && options.send_timeout_ms >= 1, InvalidArgument,
                "timeout_ms and send_timeout_ms must be >= 1 and retry_ms >= 0");
  const size_t K = network.nodes.size();
  TESSERA_CHECK(options.slowdown.empty() || options.slowdown.size() == K, InvalidArgument,
                "slowdown has {} entries for {} nodes", options.slowdown.size(), K);
  d.slow = options.slowdown.empty() ? std::vector<double>(K, 1.0) : options.slowdown;
  for (size_t u = 0; u < K; ++u)
    TESSERA_CHECK(std::isfinite(d.slow[u]) && d.slow[u] > 0, InvalidArgument, "slowdown of node '{}' = {} must be > 0",
                  network.nodes[u].name, d.slow[u]);
  TESSERA_CHECK(plan.stages[0].node == 0, InvalidArgument, "the first stage must be on the device (node 0)");
  d.stage0 = plan.stages[0].atoms;
  for (size_t s = 1; s < plan.stages.size(); ++s) {
    const int u = plan.stages[s].node;
    const std::string& name = network.nodes[u].name;
    TESSERA_CHECK(!plan.stages[s].atoms.empty(), InvalidArgument, "stage {} on '{}' has no atoms", s, name);
    TESSERA_CHECK(static_cast<size_t>(u) < options.endpoints.size() && !options.endpoints[u].empty(),
                  InvalidArgument, "stage {} runs on node '{}', which has no endpoint (endpoints has {} entries)", s,
                  name, options.endpoints.size());
    Hop h;
    h.endpoint = options.endpoints[u];
    TESSERA_CHECK(h.endpoint.size() <= kMaxEndpointBytes, InvalidArgument, "endpoint of '{}' is too long", name);
    h.atoms = plan.stages[s].atoms;
    h.slowdown = d.slow[u];
    const bool last = s + 1 == plan.stages.size();
    const int v = last ? 0 : plan.stages[s + 1].node;
    if (!last) {
      h.next_mbps = network.bandwidth_mbps[u][v];
      h.next_rtt_ms = network.rtt_ms.empty() ? 0 : network.rtt_ms[u][v];
    }
    h.back_mbps = network.bandwidth_mbps[u][0];
    h.back_rtt_ms = network.rtt_ms.empty() ? 0 : network.rtt_ms[u][0];
    if (!plan.stages[s].helpers.empty()) {
      std::string why;
      TESSERA_CHECK(row_chain(m.graph(), m.atoms(), plan.stages[s].atoms, &why), InvalidArgument,
                    "stage {} on '{}' cannot be split by rows: {}", s, name, why);
      const auto windows = plan::stage_tiles(network, plan.stages[s]);
      std::vector<int> who = {u};
      who.insert(who.end(), plan.stages[s].helpers.begin(), plan.stages[s].helpers.end());
      for (size_t i = 0; i < who.size(); ++i) {
        const int x = who[i];
        TESSERA_CHECK(static_cast<size_t>(x) < options.endpoints.size() && !options.endpoints[x].empty(),
                      InvalidArgument, "stage {}'s helper '{}' has no endpoint", s, network.nodes[x].name);
        const auto& w = windows[i];
        h.tiles.push_back({options.endpoints[x], w.in_lo, w.in_hi, w.crop, w.out_hi - w.out_lo, d.slow[x]});
      }
    }
    d.hops.push_back(std::move(h));
    d.hop_node.push_back(u);
    d.hop_helpers.push_back(plan.stages[s].helpers);
  }
  // What the device sends: model inputs and stage-0 values that the server stages read.
  std::set<int> read;
  for (const auto& h : d.hops)
    for (int a : h.atoms)
      for (int v : m.atoms()[a].inputs) read.insert(v);
  std::set<int> held(m.graph().inputs.begin(), m.graph().inputs.end());
  for (int a : d.stage0)
    for (int v : m.atoms()[a].outputs) held.insert(v);
  for (int v : held)
    if (read.count(v)) d.send_ids.push_back(v);
  d.plan = std::move(plan);
  d.net = std::move(network);
  d.opt = std::move(options);
  d.hash = hash_from_hex(d.model.hash());
  d.ctx = std::make_unique<zmq::context_t>(1);
  d.reply = zmq::socket_t(*d.ctx, zmq::socket_type::router);
  d.reply.set(zmq::sockopt::linger, 0);
  try {
    d.reply.bind(d.opt.reply_bind);
  } catch (const zmq::error_t& e) {
    TESSERA_THROW(InvalidArgument, "cannot bind the reply endpoint {}: {}", d.opt.reply_bind, e.what());
  }
  d.reply_ep = d.opt.reply_advertise.empty() ? d.reply.get(zmq::sockopt::last_endpoint) : d.opt.reply_advertise;
  if (!d.hops.empty()) d.connect_first();
}

Pipeline::~Pipeline() {
  if (!impl_) return;
  impl_->first.close();
  impl_->reply.close();
}
Pipeline::Pipeline(Pipeline&&) noexcept = default;
Pipeline& Pipeline::operator=(Pipeline&&) noexcept = default;

std::vector<at::Tensor> Pipeline::run(const std::vector<at::Tensor>& inputs) { return map({inputs}).at(0); }

std::vector<std::vector<at::Tensor>> Pipeline::map(const std::vector<std::vector<at::Tensor>>& frames) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->map(frames);
}

PipelineStats Pipeline::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats();
}

uint64_t Pipeline::submit(const std::vector<at::Tensor>& inputs) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->model.check_inputs(inputs);
  return impl_->submit(inputs);
}

std::vector<PipelineDone> Pipeline::poll(int timeout_ms) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->poll(timeout_ms);
}

int Pipeline::in_flight() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return static_cast<int>(impl_->pending.size() + impl_->done.size());
}

std::vector<FrameRecord> Pipeline::records() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->records;
}

std::string Pipeline::reply_endpoint() const { return impl_->reply_ep; }
const plan::PipelinePlan& Pipeline::plan() const { return impl_->plan; }

}  // namespace tessera::runtime
