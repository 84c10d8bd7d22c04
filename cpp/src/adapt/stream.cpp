// adapt/stream.cpp -- light load and heavy load over two engines (see tessera/adapt/stream.h).
#include "tessera/adapt/stream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "tessera/core/error.h"
#include "tessera/plan/planners.h"

namespace tessera::adapt {
using Clock = std::chrono::steady_clock;

const char* mode_name(LoadMode mode) { return mode == LoadMode::Latency ? "latency" : "throughput"; }

LoadSwitch::LoadSwitch(double latency_ms, double throughput_fps, LoadSwitchOptions options)
    : opt_(std::move(options)), service_ms_(latency_ms), throughput_fps_(throughput_fps) {
  TESSERA_CHECK(std::isfinite(latency_ms) && latency_ms > 0, InvalidArgument,
                "the latency plan's latency = {} ms must be > 0", latency_ms);
  TESSERA_CHECK(std::isfinite(throughput_fps) && throughput_fps > 0, InvalidArgument,
                "the throughput plan's rate = {} fps must be > 0", throughput_fps);
  TESSERA_CHECK(opt_.policy == "auto" || opt_.policy == "latency" || opt_.policy == "throughput", InvalidArgument,
                "policy must be auto, latency or throughput, got '{}'", opt_.policy);
  TESSERA_CHECK(opt_.switch_up > 0 && opt_.switch_down > 0 && opt_.switch_down <= opt_.switch_up, InvalidArgument,
                "need 0 < switch_down <= switch_up, got switch_down = {}, switch_up = {}", opt_.switch_down,
                opt_.switch_up);
  TESSERA_CHECK(opt_.queue_up >= 2, InvalidArgument, "queue_up = {} must be >= 2", opt_.queue_up);
  TESSERA_CHECK(opt_.rate_window >= 2, InvalidArgument, "rate_window = {} must be >= 2", opt_.rate_window);
  TESSERA_CHECK(opt_.service_ewma > 0 && opt_.service_ewma <= 1, InvalidArgument, "service_ewma = {} must be in (0, 1]",
                opt_.service_ewma);
  if (opt_.policy == "throughput") mode_ = LoadMode::Throughput;
}

void LoadSwitch::arrive(double t_s) {
  arrivals_.push_back(t_s);
  while (static_cast<int>(arrivals_.size()) > opt_.rate_window) arrivals_.pop_front();
}

void LoadSwitch::served_latency_mode(double service_ms) {
  if (std::isfinite(service_ms) && service_ms > 0)
    service_ms_ = (1 - opt_.service_ewma) * service_ms_ + opt_.service_ewma * service_ms;
}

double LoadSwitch::arrival_rate() const {
  if (arrivals_.size() < 2) return 0;
  const double span = arrivals_.back() - arrivals_.front();
  return span > 0 ? static_cast<double>(arrivals_.size() - 1) / span : std::numeric_limits<double>::infinity();
}

LoadMode LoadSwitch::decide(int queued) {
  if (opt_.policy != "auto") {
    why_ = fmt::format("policy {}: the {} plan only", opt_.policy, opt_.policy);
    return mode_;
  }
  const double lam = arrival_rate(), mu = latency_rate();
  if (mode_ == LoadMode::Latency) {
    if (throughput_fps_ <= mu) {
      why_ = fmt::format("the throughput plan ({:.2f}/s) serves no more than the latency plan ({:.2f}/s)",
                         throughput_fps_, mu);
    } else if (lam > opt_.switch_up * mu) {
      mode_ = LoadMode::Throughput;
      why_ = fmt::format("heavy load: {:.2f} arrivals/s > {:.2f} x {:.2f}/s the latency plan serves", lam,
                         opt_.switch_up, mu);
    } else if (queued >= opt_.queue_up) {
      mode_ = LoadMode::Throughput;
      why_ = fmt::format("heavy load: {} requests wait (queue_up {})", queued, opt_.queue_up);
    } else {
      why_ = "";
    }
  } else {
    if (lam < opt_.switch_down * mu && queued <= 1) {
      mode_ = LoadMode::Latency;
      why_ = fmt::format("light load: {:.2f} arrivals/s < {:.2f} x {:.2f}/s the latency plan serves, nothing waits",
                         lam, opt_.switch_down, mu);
    } else {
      why_ = "";
    }
  }
  return mode_;
}

namespace {
double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}
}  // namespace

std::string StreamStats::to_json() const {
  return fmt::format(
      R"({{"frames": {}, "fallbacks": {}, "switches": {}, "latency_frames": {}, "throughput_frames": {}, )"
      R"("served_fps": {:.4f}, "steady_fps": {:.4f}, "arrival_fps": {:.4f}, "latency_ms_p50": {:.3f}, "latency_ms_p99": {:.3f}, )"
      R"("wait_ms_p50": {:.3f}, "latency_plan_ms": {:.3f}, "latency_plan_fps": {:.4f}, "throughput_plan_fps": {:.4f}}})",
      frames, fallbacks, switches, latency_frames, throughput_frames, served_fps, steady_fps, arrival_fps, latency_ms_p50,
      latency_ms_p99, wait_ms_p50, latency_plan_ms, latency_plan_fps, throughput_plan_fps);
}

struct StreamController::Impl {
  explicit Impl(Model m) : model(std::move(m)) {}
  Model model;
  plan::Plan lat;
  plan::PipelinePlan thr;
  LoadSwitchOptions opt;
  int in_flight = 4;
  std::unique_ptr<runtime::Deployment> dep;
  std::unique_ptr<runtime::Pipeline> pipe;
  mutable std::mutex mu;
  std::vector<StreamRecord> records;
};

StreamController::StreamController(Model model, plan::CostModel cm, StreamContext context,
                                   runtime::DeploymentOptions deployment, runtime::PipelineOptions pipeline,
                                   LoadSwitchOptions options)
    : impl_(std::make_unique<Impl>(std::move(model))) {
  auto& d = *impl_;
  cm.validate();
  TESSERA_CHECK(cm.num_atoms() == d.model.num_atoms(), InvalidArgument,
                "the cost model has {} atoms, the model has {}", cm.num_atoms(), d.model.num_atoms());
  TESSERA_CHECK(std::isfinite(context.bandwidth_mbps) && context.bandwidth_mbps > 0, InvalidArgument,
                "bandwidth_mbps = {} must be > 0", context.bandwidth_mbps);
  TESSERA_CHECK(std::isfinite(context.rtt_ms) && context.rtt_ms >= 0, InvalidArgument, "rtt_ms = {} must be >= 0",
                context.rtt_ms);
  TESSERA_CHECK(!deployment.server.empty(), InvalidArgument, "a stream controller needs the server's endpoint");
  plan::Context ctx;
  ctx.bandwidth_mbps = context.bandwidth_mbps;
  ctx.rtt_ms = context.rtt_ms;
  d.lat = plan::plan_mincut(cm, ctx);
  TESSERA_CHECK(d.lat.ok(), InvalidArgument, "no latency plan: {}", d.lat.reason);
  plan::PipelineNetwork net;
  net.nodes.resize(2);
  net.nodes[0].name = "device";
  net.nodes[0].compute_ms = cm.compute_ms[0];
  net.nodes[1].name = "server";
  net.nodes[1].compute_ms = cm.compute_ms[1];
  net.bandwidth_mbps = {{0, context.bandwidth_mbps}, {context.bandwidth_mbps, 0}};
  net.rtt_ms = {{0, context.rtt_ms}, {context.rtt_ms, 0}};
  d.thr = plan::plan_pipeline_dp(cm.dag, net, {0, 1}, plan::Objective::Throughput);
  TESSERA_CHECK(d.thr.ok(), InvalidArgument, "no throughput plan: {}", d.thr.reason);
  d.opt = options;
  LoadSwitch check(d.lat.latency_ms, d.thr.throughput_fps, options);  // the options' errors, now
  d.in_flight = pipeline.in_flight;
  pipeline.endpoints = {"", deployment.server};
  if (pipeline.slowdown.empty()) pipeline.slowdown = {deployment.device_slowdown, 1.0};
  pipeline.emulation = deployment.emulation;
  d.pipe = std::make_unique<runtime::Pipeline>(d.model, d.thr, net, pipeline);
  d.dep = std::make_unique<runtime::Deployment>(d.model, d.lat, std::move(deployment));
}

StreamController::~StreamController() = default;

std::vector<std::vector<at::Tensor>> StreamController::serve(const std::vector<std::vector<at::Tensor>>& frames,
                                                             const std::vector<double>& arrivals_s) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto& d = *impl_;
  const size_t n = frames.size();
  TESSERA_CHECK(arrivals_s.size() == n, InvalidArgument, "{} frames but {} arrival times", n, arrivals_s.size());
  for (size_t i = 0; i < n; ++i) {
    TESSERA_CHECK(std::isfinite(arrivals_s[i]) && arrivals_s[i] >= 0, InvalidArgument,
                  "arrival time {} = {} s must be >= 0", i, arrivals_s[i]);
    TESSERA_CHECK(i == 0 || arrivals_s[i] >= arrivals_s[i - 1], InvalidArgument,
                  "arrival times must not decrease: [{}] = {} s after [{}] = {} s", i, arrivals_s[i], i - 1,
                  arrivals_s[i - 1]);
    try {
      d.model.check_inputs(frames[i]);
    } catch (const Error& e) {
      TESSERA_THROW(InvalidArgument, "frame {}: {}", i, e.message());
    }
  }
  d.pipe->poll(0);  // nothing of an earlier stream is left
  LoadSwitch sw(d.lat.latency_ms, d.thr.throughput_fps, d.opt);
  std::vector<std::vector<at::Tensor>> results(n);
  std::vector<StreamRecord> recs(n);
  const auto t0 = Clock::now();
  auto now_s = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  std::deque<size_t> queue;
  std::map<uint64_t, size_t> ticket_of;
  size_t next = 0, finished = 0;
  LoadMode last = sw.mode();
  LoadMode decided = sw.mode();
  std::string reason;  // why the mode last changed, kept for the first request served in it
  bool first_request = true;
  auto admit = [&] {
    const double t = now_s();
    while (next < n && arrivals_s[next] <= t) {
      queue.push_back(next);
      sw.arrive(arrivals_s[next]);
      ++next;
    }
  };
  auto ms_to_next_arrival = [&](int cap_ms) {
    if (next >= n) return cap_ms;
    const double ms = (arrivals_s[next] - now_s()) * 1e3;
    return std::clamp(static_cast<int>(std::ceil(ms)), 0, cap_ms);
  };
  auto complete = [&](size_t i, std::vector<at::Tensor> outputs, bool fallback) {
    results[i] = std::move(outputs);
    auto& r = recs[i];
    r.done_s = now_s();
    r.service_ms = (r.done_s - r.start_s) * 1e3;
    r.latency_ms = (r.done_s - r.arrival_s) * 1e3;
    r.fallback = fallback;
    ++finished;
  };
  auto collect = [&](std::vector<runtime::PipelineDone> done) {
    for (auto& x : done) {
      auto it = ticket_of.find(x.ticket);
      if (it == ticket_of.end()) continue;
      const size_t i = it->second;
      ticket_of.erase(it);
      complete(i, std::move(x.outputs), x.record.fallback);
    }
  };
  auto begin = [&](size_t i, LoadMode m) {
    auto& r = recs[i];
    r.index = static_cast<int>(i);
    r.arrival_s = arrivals_s[i];
    r.start_s = now_s();
    r.wait_ms = (r.start_s - r.arrival_s) * 1e3;
    r.mode = mode_name(m);
    r.switched = !first_request && m != last;
    r.queued = static_cast<int>(queue.size());
    r.arrival_rate = sw.arrival_rate();
    r.latency_rate = sw.latency_rate();
    r.why = reason.empty() ? sw.why() : reason;
    reason.clear();
    last = m;
    first_request = false;
    queue.pop_front();
  };
  while (finished < n) {
    admit();
    if (queue.empty()) {
      if (d.pipe->in_flight() > 0)
        collect(d.pipe->poll(ms_to_next_arrival(50)));
      else if (next < n)
        std::this_thread::sleep_for(std::chrono::milliseconds(ms_to_next_arrival(1000)));
      continue;
    }
    const LoadMode m = sw.decide(static_cast<int>(queue.size()));
    if (m != decided) reason = sw.why(), decided = m;
    if (m == LoadMode::Latency) {
      if (d.pipe->in_flight() > 0) {  // the pipeline's requests finish first
        collect(d.pipe->poll(50));
        continue;
      }
      const size_t i = queue.front();
      begin(i, m);
      auto y = d.dep->run(frames[i]);
      complete(i, std::move(y), d.dep->last_timeline().fallback);
      if (!recs[i].fallback) sw.served_latency_mode(recs[i].service_ms);
      continue;
    }
    if (d.pipe->in_flight() < d.in_flight) {
      const size_t i = queue.front();
      begin(i, m);
      ticket_of[d.pipe->submit(frames[i])] = i;
      collect(d.pipe->poll(0));
    } else {
      collect(d.pipe->poll(ms_to_next_arrival(50)));
    }
  }
  d.records = std::move(recs);
  return results;
}

std::vector<StreamRecord> StreamController::records() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->records;
}

StreamStats StreamController::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  const auto& d = *impl_;
  StreamStats s;
  s.latency_plan_ms = d.lat.latency_ms;
  s.latency_plan_fps = d.lat.latency_ms > 0 ? 1000.0 / d.lat.latency_ms : 0;
  s.throughput_plan_fps = d.thr.throughput_fps;
  const auto& r = d.records;
  s.frames = static_cast<int>(r.size());
  if (r.empty()) return s;
  std::vector<double> lat, wait;
  double last_done = 0;
  for (const auto& x : r) {
    lat.push_back(x.latency_ms);
    wait.push_back(x.wait_ms);
    last_done = std::max(last_done, x.done_s);
    s.fallbacks += x.fallback;
    s.switches += x.switched;
    (x.mode == "latency" ? s.latency_frames : s.throughput_frames) += 1;
  }
  const double first = r.front().arrival_s, span = r.back().arrival_s - first;
  s.served_fps = last_done > first ? s.frames / (last_done - first) : 0;
  s.arrival_fps = span > 0 ? (s.frames - 1) / span : 0;
  std::vector<double> done;
  for (const auto& x : r) done.push_back(x.done_s);
  std::sort(done.begin(), done.end());
  const size_t q = done.size() / 4;
  if (done.size() >= 4 && done.back() > done[q]) s.steady_fps = static_cast<double>(done.size() - 1 - q) / (done.back() - done[q]);
  s.latency_ms_p50 = percentile(lat, 0.5);
  s.latency_ms_p99 = percentile(lat, 0.99);
  s.wait_ms_p50 = percentile(wait, 0.5);
  return s;
}

const plan::Plan& StreamController::latency_plan() const { return impl_->lat; }
const plan::PipelinePlan& StreamController::throughput_plan() const { return impl_->thr; }

}  // namespace tessera::adapt
