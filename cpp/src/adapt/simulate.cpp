// adapt/simulate.cpp -- policies over the cost model and a trace (see tessera/adapt/simulate.h).
#include "tessera/adapt/simulate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

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

  // A transfer of `bytes` at the true bandwidth now, as the monitor sees it: bytes over
  // the link time (serialisation + a round trip).
  void transfer(double bytes, double bw) {
    const double ms = bytes * 8e-3 / (bw * jitter(o.sample_noise)) + o.rtt_ms;
    monitor.observe_transfer(bytes, ms);
  }

  // A probe: an Echo of about probe_ms at the estimate; returns the sample or -1.
  double probe(double bw, double bytes = 0) {
    if (bytes <= 0)
      bytes = std::clamp(estimate_bandwidth(monitor, o.adaptive) * 1e6 / 8 * o.adaptive.probe_ms / 1e3, 4096.0,
                         1048576.0);
    const int before = monitor.samples();
    transfer(2 * (bytes + 128), bw);
    return monitor.samples() > before ? monitor.last_sample_mbps() : -1;
  }
};

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
  for (double s : {o.compute_jitter, o.sample_noise})
    TESSERA_CHECK(std::isfinite(s) && s >= 0 && s < 1, InvalidArgument, "jitter and noise must be in [0, 1), got {}", s);
  TESSERA_CHECK(o.adaptive.probe_every >= 1, InvalidArgument, "probe_every must be >= 1, got {}",
                o.adaptive.probe_every);
  SimulatedDevice dev(cm, spec, o);
  const int n = o.requests > 0 ? o.requests
                               : std::max(1, static_cast<int>(std::floor(dev.link.duration_s() / o.period_s)));
  const AdaptiveOptions& ao = o.adaptive;
  dev.monitor.observe_rtt(o.rtt_ms);
  if (policy.uses_estimates() && ao.initial_bandwidth_mbps <= 0) dev.probe(dev.link.bandwidth_at(0), 16384);

  std::vector<RequestRecord> out;
  out.reserve(static_cast<size_t>(n));
  std::vector<int> current(static_cast<size_t>(cm.num_atoms()), 0);
  int since_transfer = 0;
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
    obs.memory_budget_bytes = ao.device_memory_bytes;
    obs.replan = i == 0;
    obs.current = current;
    const auto t0 = Clock::now();
    const Decision d = policy.decide(obs);
    r.decide_us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    r.switched = d.placement != current;
    current = d.placement;
    r.est_bandwidth = policy.uses_estimates() ? obs.est_bandwidth : std::nan("");
    r.plan_id = d.plan_id;
    r.predicted_ms = d.predicted_ms;
    r.estimate_device_atoms = d.estimate_device_atoms;
    r.why = d.why;
    for (int x : current) r.device_atoms += x == 0;

    // The request at the true context (loads, optional compute jitter).
    plan::Context truth;
    truth.bandwidth_mbps = bw;
    truth.rtt_ms = o.rtt_ms;
    truth.server_load = o.server_load * dev.jitter(o.compute_jitter);
    truth.device_load = o.device_load * dev.jitter(o.compute_jitter);
    const plan::Plan p = plan::evaluate(cm, truth, current);
    r.total_ms = p.latency_ms;
    r.device_ms = p.target_ms[0];
    r.server_ms = p.target_ms[1];
    for (const auto& tr : p.transfers) r.transfer_ms += tr.ms;

    // What the device learns: per remote block its bytes and link time, and the compute.
    bool transferred = false;
    double device_pred = 0;
    for (const auto& b : p.blocks) {
      double pred = 0;
      for (int a : b.atoms) pred += cm.compute_ms[b.target][a];
      if (b.target == 0) {
        device_pred += pred;
        continue;
      }
      double bytes = 0;
      for (int v : b.inputs) bytes += cm.dag.values[v].bytes;
      for (int v : b.outputs) bytes += cm.dag.values[v].bytes;
      dev.transfer(bytes, bw);
      dev.monitor.observe_server(pred * truth.server_load, pred);
      transferred = true;
    }
    dev.monitor.observe_device(device_pred * truth.device_load, device_pred);
    since_transfer = transferred ? 0 : since_transfer + 1;
    if (policy.uses_estimates() && since_transfer >= ao.probe_every) {
      const double before = estimate_bandwidth(dev.monitor, ao);
      const double sample = dev.probe(bw);
      if (sample > 0 && std::abs(sample - before) > ao.hysteresis * before)
        for (int k = 0; k < ao.monitor.window / 2; ++k) dev.probe(bw);
      since_transfer = 0;
      r.probed = true;
    }
    r.est_load = dev.monitor.server_load();
    r.est_device_load = dev.monitor.device_load();
    out.push_back(r);
  }
  return out;
}

}  // namespace tessera::adapt
