// adapt/adaptive.cpp -- monitor, re-plan, swap between requests (see tessera/adapt/adaptive.h).
#include "tessera/adapt/adaptive.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>

#include "tessera/core/error.h"
#include "tessera/plan/parametric.h"
#include "tessera/plan/planners.h"

namespace tessera::adapt {

using Clock = std::chrono::steady_clock;

struct AdaptiveDeployment::Impl {
  std::shared_ptr<Link> link;  // the deployment's emulated link (true bandwidth for the timeline), may be null
  plan::CostModel cm;
  AdaptiveOptions opt;
  runtime::Deployment dep;
  Monitor monitor;
  std::unique_ptr<plan::ParametricPlanner> table;
  double table_load = 1.0, table_device_load = 1.0;
  std::unique_ptr<plan::Planner> planner;  // non-parametric planners, and gads under a budget
  std::unique_ptr<plan::Planner> gads;
  int segment = -1;
  double memory_budget;
  bool replan_now = true;
  int since_transfer = 0;
  std::vector<RequestRecord> records;
  mutable std::mutex mu;  // run() against the accessors and set_memory_budget from other threads

  Impl(Model model, plan::CostModel cost_model, runtime::DeploymentOptions o, AdaptiveOptions a)
      : link(o.link),
        cm(std::move(cost_model)),
        opt(std::move(a)),
        dep(model, std::vector<int>(model.num_atoms(), 0), std::move(o)),
        monitor(opt.monitor),
        memory_budget(opt.device_memory_bytes) {
    cm.validate();
    TESSERA_CHECK(cm.num_atoms() == model.num_atoms(), InvalidArgument,
                  "cost model has {} atoms, the model has {}", cm.num_atoms(), model.num_atoms());
    TESSERA_CHECK(opt.hysteresis >= 0, InvalidArgument, "hysteresis must be >= 0, got {}", opt.hysteresis);
    TESSERA_CHECK(opt.probe_every >= 1, InvalidArgument, "probe_every must be >= 1, got {}", opt.probe_every);
    TESSERA_CHECK(std::isfinite(opt.initial_bandwidth_mbps) && opt.initial_bandwidth_mbps >= 0, InvalidArgument,
                  "initial_bandwidth_mbps must be >= 0 (0: probe first), got {}", opt.initial_bandwidth_mbps);
    TESSERA_CHECK(opt.rtt_ms == -1 || (std::isfinite(opt.rtt_ms) && opt.rtt_ms >= 0), InvalidArgument,
                  "rtt_ms must be >= 0 (or -1: measure it), got {}", opt.rtt_ms);
    TESSERA_CHECK(!(opt.device_memory_bytes < 0), InvalidArgument, "device_memory_bytes must be >= 0, got {}",
                  opt.device_memory_bytes);
    TESSERA_CHECK(opt.planner == "parametric" || opt.planner == "mincut" || opt.planner == "chain" ||
                      opt.planner == "gads" || opt.planner == "compressed",
                  InvalidArgument, "unknown adaptive planner '{}' (parametric, mincut, compressed, chain, gads)",
                  opt.planner);
    if (opt.planner != "parametric") planner = plan::make_planner(opt.planner, cm);
    gads = plan::make_planner("gads", cm);
    // The first exchange also sets the connection up: never measure with it.
    const double warm = dep.probe(64);
    if (opt.rtt_ms >= 0) {
      monitor.observe_rtt(opt.rtt_ms);
    } else if (warm >= 0) {
      for (int i = 0; i < 3; ++i) {
        const double rt = dep.probe(64);
        if (rt >= 0) monitor.observe_rtt(rt);
      }
    }
    if (opt.initial_bandwidth_mbps <= 0 && warm >= 0) probe(16384);
  }

  plan::Context context(double bw) const {
    // Estimates are measurements: keep them inside what a planning context accepts
    // (a loopback transfer can look near-infinitely fast, a stalled one near zero).
    plan::Context c;
    c.bandwidth_mbps = std::clamp(bw, 1e-3, 1e6);
    c.rtt_ms = std::clamp(monitor.rtt_ms(), 0.0, 1e6);
    c.server_load = std::clamp(monitor.server_load(), 1e-3, 1e3);
    c.device_load = std::clamp(monitor.device_load(), 1e-3, 1e3);
    return c;
  }

  void build_table() {
    table = std::make_unique<plan::ParametricPlanner>(cm, context(1.0));
    table_load = monitor.server_load();
    table_device_load = monitor.device_load();
    segment = -1;
  }

  // An Echo of about probe_ms at the current estimate (or `bytes`). Returns the
  // sample (Mbit/s) or -1.
  double probe(double bytes = 0) {
    if (bytes <= 0) bytes = std::clamp(estimate() * 1e6 / 8 * opt.probe_ms / 1e3, 4096.0, 1048576.0);
    const double rt = dep.probe(static_cast<size_t>(bytes));
    if (rt < 0) return -1;
    const int before = monitor.samples();
    monitor.observe_transfer(2 * (bytes + 128), rt);
    return monitor.samples() > before ? monitor.last_sample_mbps() : -1;
  }

  // The median of the monitor's window; but a last sample below it by more than the
  // hysteresis is taken at once: staying offloaded through a drop costs up to
  // bytes / bandwidth (unbounded), staying on the device through a rise only the
  // difference of two bounded plans, so drops are believed before rises.
  double estimate() const {
    const auto med = monitor.bandwidth_mbps();
    if (!med) return opt.initial_bandwidth_mbps > 0 ? opt.initial_bandwidth_mbps : 1.0;
    const double last = monitor.last_sample_mbps();
    if (opt.react_to_drops && last > 0 && last < *med / (1 + opt.hysteresis)) return last;
    return *med;
  }

  // Returns the placement for the next request (and the plan id).
  std::vector<int> decide(double est, int& plan_id, double& predicted) {
    plan::Constraints cons;
    cons.device_memory_bytes = memory_budget;
    if (opt.planner == "parametric") {
      if (!table || std::abs(monitor.server_load() - table_load) > opt.load_tolerance * table_load ||
          std::abs(monitor.device_load() - table_device_load) > opt.load_tolerance * table_device_load) {
        build_table();
        // keep hysteresis across a rebuild: the plan in use, if the new table has it
        const auto& segs = table->segments();
        for (size_t i = 0; i < segs.size(); ++i)
          if (segs[i].placement == dep.placement()) segment = static_cast<int>(i);
      }
      bool keep = false;
      if (segment >= 0 && !replan_now) {
        const auto& s = table->segments()[static_cast<size_t>(segment)];
        keep = est >= s.bw_lo_mbps / (1 + opt.hysteresis) && est <= s.bw_hi_mbps * (1 + opt.hysteresis);
      }
      if (!keep) segment = table->lookup_index(est);
      const auto& s = table->segments()[static_cast<size_t>(segment)];
      plan_id = segment;
      double mem = 0;
      for (int a = 0; a < cm.num_atoms(); ++a)
        if (s.placement[a] == 0) mem += cm.dag.param_bytes.empty() ? 0 : cm.dag.param_bytes[a];
      if (mem <= memory_budget) {
        predicted = s.intercept + s.slope / est;
        return s.placement;
      }
      plan_id = -1;  // the budget binds: constrained re-plan
      auto p = gads->plan(context(est), cons, dep.placement());
      predicted = p.latency_ms;
      return p.ok() ? p.placement : std::vector<int>(cm.num_atoms(), 1);
    }
    auto p = (memory_budget < plan::kUnlimited && opt.planner != "gads" ? gads : planner)
                 ->plan(context(est), cons, dep.placement());
    plan_id = -1;
    predicted = p.latency_ms;
    return p.ok() ? p.placement : std::vector<int>(cm.num_atoms(), 1);
  }

  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs) {
    std::lock_guard<std::mutex> lock(mu);
    RequestRecord r;
    r.index = static_cast<int>(records.size());
    if (link) {
      r.link_time_s = link->now_s();
      r.true_bandwidth = link->bandwidth_now();
    }
    const auto t0 = Clock::now();
    const double est = estimate();
    int plan_id = -1;
    double predicted = 0;
    auto placement = decide(est, plan_id, predicted);
    r.switched = placement != dep.placement();
    if (r.switched) dep.set_placement(placement);  // schedules are cached per placement
    replan_now = false;
    r.decide_us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    r.est_bandwidth = est;
    r.plan_id = plan_id;
    r.predicted_ms = predicted;
    for (int t : placement) r.device_atoms += t == 0;
    auto out = dep.run(inputs);
    const auto tl = dep.last_timeline();
    bool transferred = false;
    double device_pred_ms = 0;  // the cost model's device ms (load 1) of what ran here
    for (const auto& b : tl.blocks) {
      double pred = 0;
      for (int a : b.atoms) pred += cm.compute_ms[b.remote ? 1 : 0][a];
      if (!b.remote) {
        device_pred_ms += pred;
        continue;
      }
      transferred = true;
      monitor.observe_transfer(static_cast<double>(b.bytes_up + b.bytes_down), b.transfer_ms);
      monitor.observe_server(b.server_ms + b.queue_ms, pred);  // waiting for a worker is server load too
    }
    monitor.observe_device(tl.device_ms, device_pred_ms);
    since_transfer = transferred ? 0 : since_transfer + 1;
    if (since_transfer >= opt.probe_every && dep.server_available()) {
      // The plan sent nothing for probe_every requests: probe the link. A probe
      // that disagrees with the estimate by more than the hysteresis is confirmed
      // at once by window / 2 more probes, so a real change moves the median
      // before the next request and a single outlier never does.
      const double before = estimate();
      const double sample = probe();
      if (sample > 0 && std::abs(sample - before) > opt.hysteresis * before)
        for (int k = 0; k < opt.monitor.window / 2 && dep.server_available(); ++k) probe();
      since_transfer = 0;
      r.probed = true;
    }
    r.total_ms = tl.total_ms;
    r.device_ms = tl.device_ms;
    r.transfer_ms = tl.transfer_ms;
    r.server_ms = tl.server_ms;
    r.queue_ms = tl.queue_ms;
    r.fallback = tl.fallback;
    r.est_load = monitor.server_load();
    r.est_device_load = monitor.device_load();
    records.push_back(r);
    return out;
  }

};

AdaptiveDeployment::AdaptiveDeployment(Model model, plan::CostModel cost_model, runtime::DeploymentOptions options,
                                       AdaptiveOptions adaptive)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(cost_model), std::move(options),
                                   std::move(adaptive))) {}
AdaptiveDeployment::~AdaptiveDeployment() = default;

std::vector<at::Tensor> AdaptiveDeployment::run(const std::vector<at::Tensor>& inputs) { return impl_->run(inputs); }

void AdaptiveDeployment::set_memory_budget(double bytes) {
  TESSERA_CHECK(bytes >= 0, InvalidArgument, "memory budget must be >= 0 bytes, got {}", bytes);
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->memory_budget = bytes;
  impl_->replan_now = true;
}

std::vector<RequestRecord> AdaptiveDeployment::timeline() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->records;
}
std::vector<int> AdaptiveDeployment::placement() const { return impl_->dep.placement(); }
Monitor AdaptiveDeployment::monitor() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->monitor;
}
runtime::Deployment& AdaptiveDeployment::deployment() { return impl_->dep; }
std::vector<double> AdaptiveDeployment::breakpoints() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->table ? impl_->table->breakpoints() : std::vector<double>{};
}

}  // namespace tessera::adapt
