// adapt/simulate.cpp -- policies over the cost model and a trace (see tessera/adapt/simulate.h).
#include "tessera/adapt/simulate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <array>
#include <random>

#include <fmt/format.h>

#include "tessera/core/error.h"
#include "tessera/plan/plan.h"

namespace tessera::adapt {

namespace {

using Clock = std::chrono::steady_clock;

// What the device would measure of the link and the loads while a policy runs.
struct SimulatedDevice {
  const plan::CostModel& cm;
  const SimulationOptions& o;
  transport::Link link;
  Monitor monitor;
  std::mt19937_64 rng;
  std::uniform_real_distribution<double> unit{-1.0, 1.0};

  SimulatedDevice(const plan::CostModel& c, const transport::LinkSpec& spec, const SimulationOptions& opt)
      : cm(c), o(opt), link(spec), monitor(opt.adaptive.monitor), rng(opt.seed) {}

  double jitter(double spread) { return spread > 0 ? 1 + spread * unit(rng) : 1.0; }
  // A sample's serialisation as the device measures it: noise, and now and then an outlier
  // (drawn only when outliers are on, so other runs keep their random stream).
  double sampled(double ser) {
    ser /= jitter(o.sample_noise);
    if (o.outlier_rate > 0 && (unit(rng) + 1) / 2 < o.outlier_rate) ser /= o.outlier_factor;
    return ser;
  }

  // An exchange of `bytes` in two messages at trace time t, as the monitor sees it: bytes
  // over the link time (each message serialised at the trace's rate from t, plus rtt/2).
  void transfer(double bytes, double t) {
    const double ser = link.serialization_ms(bytes / 2, t) * 2;
    monitor.observe_transfer(bytes, sampled(ser) + o.rtt_ms);
  }

  // A probe: an Echo of about probe_ms at the estimate; returns the sample or -1.
  double probe(double t, double bytes = 0) {
    if (bytes <= 0)
      bytes = std::clamp(estimate_bandwidth(monitor, o.adaptive) * 1e6 / 8 * o.adaptive.probe_ms / 1e3, 4096.0,
                         1048576.0);
    const int before = monitor.samples();
    transfer(2 * (bytes + 128), t);
    return monitor.samples() > before ? monitor.last_sample_mbps() : -1;
  }
};

// A piecewise-constant (time, value) series at t: the last sample at or before t (the first
// before it), or `otherwise` when empty.
double value_at(const std::vector<std::pair<double, double>>& series, double t, double otherwise) {
  if (series.empty()) return otherwise;
  double v = series.front().second;
  for (const auto& [ts, x] : series) {
    if (ts > t) break;
    v = x;
  }
  return v;
}

void check_series(const std::vector<std::pair<double, double>>& series, const char* what, bool positive) {
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& [t, v] = series[i];
    TESSERA_CHECK(std::isfinite(t) && (i == 0 || t > series[i - 1].first), InvalidArgument,
                  "{}[{}]: times must increase, got {}", what, i, t);
    TESSERA_CHECK(std::isfinite(v) && (positive ? v > 0 : v >= 0), InvalidArgument, "{}[{}] = {} must be {}", what,
                  i, v, positive ? "> 0" : ">= 0");
  }
}

}  // namespace

std::vector<RequestRecord> simulate(const plan::CostModel& cm, const transport::LinkSpec& spec, Policy& policy,
                                    const SimulationOptions& o) {
  cm.validate();
  TESSERA_CHECK(cm.num_targets() == 2, InvalidArgument, "simulate: the cost model has {} targets; it simulates a "
                "device and one server", cm.num_targets());
  TESSERA_CHECK(std::isfinite(o.period_s) && o.period_s > 0, InvalidArgument, "period_s = {} must be > 0", o.period_s);
  TESSERA_CHECK(o.requests >= 0, InvalidArgument, "requests = {} must be >= 0 (0: one trace length)", o.requests);
  TESSERA_CHECK(std::isfinite(o.rtt_ms) && o.rtt_ms >= 0, InvalidArgument, "rtt_ms = {} must be >= 0", o.rtt_ms);
  for (double l : {o.server_load, o.device_load})
    TESSERA_CHECK(std::isfinite(l) && l > 0, InvalidArgument, "loads must be > 0, got {}", l);
  TESSERA_CHECK(std::isfinite(o.outlier_rate) && o.outlier_rate >= 0 && o.outlier_rate <= 1 &&
                    std::isfinite(o.outlier_factor) && o.outlier_factor >= 1,
                InvalidArgument, "outlier_rate = {} must be in [0, 1] and outlier_factor = {} >= 1", o.outlier_rate,
                o.outlier_factor);
  for (double s : {o.compute_jitter, o.sample_noise})
    TESSERA_CHECK(std::isfinite(s) && s >= 0 && s < 1, InvalidArgument, "jitter and noise must be in [0, 1), got {}", s);
  TESSERA_CHECK(std::isfinite(o.timeout_ms) && o.timeout_ms >= 0 && std::isfinite(o.retry_ms) && o.retry_ms >= 0,
                InvalidArgument, "timeout_ms = {} and retry_ms = {} must be >= 0 (timeout 0: none)", o.timeout_ms,
                o.retry_ms);
  TESSERA_CHECK(o.adaptive.probe_every >= 1, InvalidArgument, "probe_every must be >= 1, got {}",
                o.adaptive.probe_every);
  check_series(o.server_load_trace, "server_load_trace", true);
  check_series(o.device_load_trace, "device_load_trace", true);
  check_series(o.memory_trace, "memory_trace", false);
  SimulatedDevice dev(cm, spec, o);
  const int n = o.requests > 0 ? o.requests
                               : std::max(1, static_cast<int>(std::floor(dev.link.duration_s() / o.period_s)));
  const AdaptiveOptions& ao = o.adaptive;
  dev.monitor.observe_rtt(o.rtt_ms);
  if (policy.uses_estimates() && ao.initial_bandwidth_mbps <= 0) dev.probe(0.0, 16384);

  std::vector<RequestRecord> out;
  out.reserve(static_cast<size_t>(n));
  std::vector<int> current(static_cast<size_t>(cm.num_atoms()), 0);
  int since_transfer = 0;
  double backoff_until = -1;  // trace time until which requests run on the device (after a timeout)
  for (int i = 0; i < n; ++i) {
    const double t = i * o.period_s;
    const double bw = dev.link.bandwidth_at(t);
    RequestRecord r;
    r.index = i;
    r.link_time_s = t;
    r.true_bandwidth = bw;
    Observation obs;
    obs.index = i;
    obs.link_time_s = t;
    obs.true_bandwidth = bw;
    obs.est_bandwidth = estimate_bandwidth(dev.monitor, ao);
    obs.rtt_ms = dev.monitor.rtt_ms();
    obs.server_load = dev.monitor.server_load();
    obs.device_load = dev.monitor.device_load();
    obs.device_samples = dev.monitor.device_samples();
    obs.memory_budget_bytes = std::min(ao.device_memory_bytes, value_at(o.memory_trace, t, plan::kUnlimited));
    obs.replan = i == 0 || (i > 0 && value_at(o.memory_trace, t, -1) != value_at(o.memory_trace, t - o.period_s, -1));
    obs.current = current;
    const auto t0 = Clock::now();
    const Decision d = policy.decide(obs);
    r.decide_us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    r.switched = d.placement != current;
    current = d.placement;
    r.est_bandwidth = policy.uses_estimates() ? obs.est_bandwidth : std::nan("");
    record_decision(r, d, cm.dag);

    // The request at the true context (loads, optional compute jitter), block by block: every
    // transfer is serialised at the trace's rate from the request's time, integrated across
    // the trace's samples (what the live link emulator does: the replay's virtual clock
    // holds the request's time for the whole request), plus rtt/2; each value goes once to
    // each target that needs it (the cost model's rule), so on a constant link this is
    // exactly plan::evaluate's latency.
    const double server_load = o.server_load * value_at(o.server_load_trace, t, 1.0) * dev.jitter(o.compute_jitter);
    const double device_load = o.device_load * value_at(o.device_load_trace, t, 1.0) * dev.jitter(o.compute_jitter);
    const plan::Plan p = plan::from_placement(cm.dag, current, 2);
    if (o.timeout_ms > 0 && t < backoff_until) {
      // The server is backing off after a timeout: the device runs everything (as a live
      // Deployment does in its retry window); the monitor learns only the device's load.
      double pred = 0;
      for (int a = 0; a < cm.num_atoms(); ++a) pred += cm.compute_ms[0][a];
      r.device_ms = pred * device_load;
      r.total_ms = r.device_ms;
      r.fallback = true;
      r.why += std::string(r.why.empty() ? "" : "; ") + "the server is backing off after a timeout (retry_ms)";
      dev.monitor.observe_device(r.device_ms, pred);
      since_transfer = since_transfer + 1;
      r.est_load = dev.monitor.server_load();
      r.est_device_load = dev.monitor.device_load();
      Measured m;
      m.device_ms = r.device_ms;
      m.bandwidth_mbps = bw;
      m.rtt_ms = o.rtt_ms;
      policy.observe(m, r);
      out.push_back(r);
      continue;
    }
    const auto& vals = cm.dag.values;
    std::vector<std::array<char, 2>> have(vals.size(), {0, 0});
    for (size_t v = 0; v < vals.size(); ++v)
      if (vals[v].producer == kModelInput) have[v][0] = 1;
    std::vector<int> block_of(static_cast<size_t>(cm.num_atoms()), 0);
    for (size_t b = 0; b < p.blocks.size(); ++b)
      for (int a : p.blocks[b].atoms) block_of[a] = static_cast<int>(b);
    std::vector<double> block_bytes(p.blocks.size(), 0), block_ser(p.blocks.size(), 0);  // per server block
    std::vector<double> block_link(p.blocks.size(), 0), block_ms(p.blocks.size(), 0), block_pred(p.blocks.size(), 0);
    // an operating point (energy policies): the uplink at uplink_rate_factor of the link's rate, the
    // device's compute x device_time_factor, as the live controller emulates them
    const double up_factor = d.uplink_rate_factor > 0 ? d.uplink_rate_factor : 1.0;
    const double dev_factor = d.device_time_factor > 0 ? d.device_time_factor : 1.0;
    double up_bytes = 0, down_bytes = 0;
    auto send = [&](int v, int to, int charge_block) {
      const double ser = dev.link.serialization_ms(vals[v].bytes, t) / (to == 1 ? up_factor : 1.0);
      const double ms = ser + o.rtt_ms / 2;
      r.transfer_ms += ms;
      have[v][to] = 1;
      (to == 1 ? up_bytes : down_bytes) += vals[v].bytes;
      // what the monitor learns stays the full-power bandwidth (bytes / f took ser at full power)
      if (charge_block >= 0)
        block_bytes[charge_block] += vals[v].bytes / (to == 1 ? up_factor : 1.0), block_ser[charge_block] += ser,
            block_link[charge_block] += ms;
    };
    auto producer_block = [&](int v) { return vals[v].producer == kModelInput ? -1 : block_of[vals[v].producer]; };
    for (size_t b = 0; b < p.blocks.size(); ++b) {
      const auto& blk = p.blocks[b];
      for (int v : blk.inputs)
        if (!have[v][blk.target]) send(v, blk.target, blk.target == 1 ? static_cast<int>(b) : producer_block(v));
      double pred = 0;
      for (int a : blk.atoms) pred += cm.compute_ms[blk.target][a];
      block_pred[b] = pred;
      block_ms[b] = pred * (blk.target == 0 ? device_load * dev_factor : server_load);
      (blk.target == 0 ? r.device_ms : r.server_ms) += block_ms[b];
      for (int v : blk.outputs) have[v][blk.target] = 1;
    }
    for (size_t v = 0; v < vals.size(); ++v)  // results back on the device
      if (vals[v].is_output && !have[v][0]) send(static_cast<int>(v), 0, producer_block(static_cast<int>(v)));
    r.total_ms = r.device_ms + r.server_ms + r.transfer_ms;
    // A remote block whose reply (its transfers + its compute) outlasts timeout_ms: the device
    // waited timeout_ms for it, then runs it and every later block itself.
    size_t ran = p.blocks.size();  // blocks that ran as planned
    if (o.timeout_ms > 0) {
      double elapsed = 0, dev_ms = 0, srv_ms = 0, link_ms = 0;
      for (size_t b = 0; b < p.blocks.size(); ++b) {
        const bool remote = p.blocks[b].target == 1;
        if (remote && block_ms[b] + block_link[b] > o.timeout_ms) {
          double rest = 0;
          for (size_t c = b; c < p.blocks.size(); ++c)
            for (int a : p.blocks[c].atoms) rest += cm.compute_ms[0][a];
          r.device_ms = dev_ms + rest * device_load;
          r.server_ms = srv_ms;
          r.transfer_ms = link_ms + o.timeout_ms;  // the wait is on the link's account
          r.total_ms = elapsed + o.timeout_ms + rest * device_load;
          r.fallback = true;
          r.why += std::string(r.why.empty() ? "" : "; ") +
                   fmt::format("block {} timed out ({:.0f} ms > timeout_ms {:.0f})", b, block_ms[b] + block_link[b],
                               o.timeout_ms);
          backoff_until = t + (r.total_ms + o.retry_ms) / 1e3;
          dev.monitor.observe_device(rest * device_load, rest);
          ran = b;
          break;
        }
        elapsed += block_ms[b] + block_link[b];
        (remote ? srv_ms : dev_ms) += block_ms[b];
        link_ms += block_link[b];
      }
    }
    bool transferred = false;
    double device_pred = 0;
    for (size_t b = 0; b < ran; ++b) {
      if (p.blocks[b].target == 0) {
        device_pred += block_pred[b];
      } else {
        dev.monitor.observe_server(block_ms[b], block_pred[b]);
        transferred = true;
      }
    }
    // What the device learns: per server block, the bytes it sent and received over the
    // time they took on the link (one round trip, as a live request/reply pays).
    for (size_t b = 0; b < ran; ++b)
      if (p.blocks[b].target == 1 && block_bytes[b] > 0) {
        const double noisy = dev.sampled(block_ser[b]);
        dev.monitor.observe_transfer(block_bytes[b], noisy + o.rtt_ms);
      }
    if (device_pred > 0 || ran == p.blocks.size()) dev.monitor.observe_device(device_pred * device_load, device_pred);
    since_transfer = transferred ? 0 : since_transfer + 1;
    if (policy.uses_estimates() && since_transfer >= ao.probe_every) {
      const double before = estimate_bandwidth(dev.monitor, ao);
      const double sample = dev.probe(t);
      if (sample > 0 && std::abs(sample - before) > ao.hysteresis * before)
        for (int k = 0; k < ao.monitor.window / 2; ++k) dev.probe(t);
      since_transfer = 0;
      r.probed = true;
    }
    r.est_load = dev.monitor.server_load();
    r.est_device_load = dev.monitor.device_load();
    Measured m;  // what the request cost, as the live controller tells the policy
    m.device_ms = r.device_ms;
    m.server_ms = r.server_ms;
    m.up_bytes = up_bytes;
    m.down_bytes = down_bytes;
    for (size_t b = 0; b < ran; ++b) m.remote_blocks += p.blocks[b].target == 1;
    m.bandwidth_mbps = bw;
    m.uplink_mbps = bw * up_factor;
    m.rtt_ms = o.rtt_ms;
    policy.observe(m, r);
    out.push_back(r);
  }
  return out;
}

}  // namespace tessera::adapt
