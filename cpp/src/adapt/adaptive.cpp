// adapt/adaptive.cpp -- the Controller: observe, ask the policy, swap, run, learn
// (see tessera/adapt/adaptive.h).
#include "tessera/adapt/adaptive.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <map>
#include <optional>

#include <ATen/Parallel.h>

#include "tessera/adapt/cpufreq.h"
#include "tessera/core/error.h"

namespace tessera::adapt {

using Clock = std::chrono::steady_clock;

struct Controller::Impl {
  std::shared_ptr<transport::Link> link;  // the deployment's emulated link (true bandwidth), may be null
  double base_slowdown = 1;               // the device's emulated speed at its reference clock
  plan::CostModel cm;
  AdaptiveOptions opt;
  std::shared_ptr<Policy> policy;
  runtime::Deployment dep;
  Monitor monitor;
  double memory_budget;
  bool replan_now = true;
  int since_transfer = 0;
  // Runs per placement: a plan's first two runs are cold (atoms loaded; TorchScript's profiling
  // executor profiles a graph's first call and optimises it on the second, on the device and on
  // the server alike) and say nothing about load. Measured: a digits CNN's blocks took 1.8 and
  // 2.1 ms on their first two runs, 0.08-0.12 ms after; taken as a device load of 23, the first
  // sent every later request away.
  static constexpr int kColdRuns = 2;
  std::map<std::vector<int>, int> runs;
  std::vector<RequestRecord> records;
  // The machine state the app declared (set_machine_state); empty: the process's intra-op
  // threads, and a background load the policy infers or assumes.
  std::optional<int> declared_threads;
  std::optional<double> declared_load;
  int costs_version = 0;  // the policy's device_costs_version() the monitor's device load is measured against
  mutable std::mutex mu;  // run() against the accessors and set_memory_budget from other threads

  Impl(Model model, plan::CostModel cost_model, runtime::DeploymentOptions o, std::shared_ptr<Policy> p,
       AdaptiveOptions a)
      : link(o.link),
        base_slowdown(o.device_slowdown),
        cm(std::move(cost_model)),
        opt(std::move(a)),
        policy(std::move(p)),
        dep(model, std::vector<int>(model.num_atoms(), 0), std::move(o)),
        monitor(opt.monitor),
        memory_budget(opt.device_memory_bytes) {
    TESSERA_CHECK(policy != nullptr, InvalidArgument, "a controller needs a policy");
    cm.validate();
    check_device_options(opt);
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
    TESSERA_CHECK(std::isfinite(opt.free_memory_fraction) && opt.free_memory_fraction >= 0 &&
                      opt.free_memory_fraction <= 1,
                  InvalidArgument, "free_memory_fraction must be in [0, 1] (0: off), got {}", opt.free_memory_fraction);
    if (opt.rtt_ms >= 0) monitor.observe_rtt(opt.rtt_ms);
    if (!policy->uses_estimates()) return;  // static plans and oracles: no probes
    // The first exchange also sets the connection up: never measure with it.
    const double warm = dep.probe(64);
    if (opt.rtt_ms < 0 && warm >= 0) {
      for (int i = 0; i < 3; ++i) {
        const double rt = dep.probe(64);
        if (rt >= 0) monitor.observe_rtt(rt);
      }
    }
    if (opt.initial_bandwidth_mbps <= 0 && warm >= 0) probe(16384);
  }

  // An Echo of about probe_ms at the current estimate (or `bytes`). Returns the
  // sample (Mbit/s) or -1.
  double probe(double bytes = 0) {
    if (bytes <= 0) bytes = std::clamp(estimate() * 1e6 / 8 * opt.probe_ms / 1e3, 4096.0, 1048576.0);
    // probes measure the channel at full transmit power (what estimates and energy plans assume)
    const double factor = link ? link->uplink_rate_factor() : 1.0;
    if (factor != 1.0) link->set_uplink_rate_factor(1.0);
    const double rt = dep.probe(static_cast<size_t>(bytes));
    if (factor != 1.0) link->set_uplink_rate_factor(factor);
    if (rt < 0) return -1;
    const int before = monitor.samples();
    monitor.observe_transfer(2 * (bytes + 128), rt);
    return monitor.samples() > before ? monitor.last_sample_mbps() : -1;
  }

  double estimate() const { return estimate_bandwidth(monitor, opt); }

  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs) {
    std::lock_guard<std::mutex> lock(mu);
    RequestRecord r;
    r.index = static_cast<int>(records.size());
    if (link) {
      r.link_time_s = link->now_s();
      r.true_bandwidth = link->bandwidth_now();
    }
    const auto t0 = Clock::now();
    Observation obs;
    obs.index = r.index;
    obs.link_time_s = r.link_time_s;
    obs.true_bandwidth = r.true_bandwidth;
    obs.est_bandwidth = estimate();
    obs.rtt_ms = monitor.rtt_ms();
    // several servers: plan for the load of the one this request will go to
    const int server = dep.servers().size() > 1 ? dep.select_server() : 0;
    obs.server_load = monitor.server_load(std::max(server, 0));
    obs.device_load = monitor.device_load();
    obs.device_samples = monitor.device_samples();
    obs.device_state.threads = declared_threads.value_or(at::get_num_threads());
    obs.device_state.background_load = declared_load.value_or(-1.0);
    obs.memory_budget_bytes = memory_budget;
    if (opt.free_memory_fraction > 0) {  // what the machine has free now, read before every request
      const double free = Monitor::free_memory_bytes();
      if (free > 0) obs.memory_budget_bytes = std::min(memory_budget, opt.free_memory_fraction * free);
    }
    obs.replan = replan_now;
    obs.current = dep.placement();
    const Decision d = policy->decide(obs);
    if (policy->device_costs_version() != costs_version) {  // new device costs: carried over, or measured afresh
      const double carry = policy->device_load_carry();
      if (carry > 0)
        monitor.rescale_device_load(carry);
      else
        monitor.restart_device_load();
      costs_version = policy->device_costs_version();
    }
    const std::vector<double>& device_costs = policy->device_costs() ? *policy->device_costs() : cm.compute_ms[0];
    r.switched = d.placement != obs.current;
    if (r.switched) dep.set_placement(d.placement);  // checked plans are cached per placement
    // an operating point (energy policies): the clock as the device's emulated speed, the
    // transmit power as the uplink's emulated rate
    double slow = std::max(1.0, base_slowdown * d.device_time_factor);
    if (d.frequency_mhz > 0) {  // set for real where the kernel lets us, else emulated
      const std::string why = set_cpu_frequency_mhz(d.frequency_mhz);
      r.frequency_applied = why.empty() ? "cpufreq" : "emulated (" + why + ")";
      if (why.empty()) slow = base_slowdown;
    }
    if (slow != dep.device_slowdown()) dep.set_device_slowdown(slow);
    double up_factor = d.uplink_rate_factor;
    if (link && d.tx_power_mw > 0) up_factor = policy->uplink_rate_factor(d.tx_power_mw, link->bandwidth_now());
    if (link && link->uplink_rate_factor() != up_factor) link->set_uplink_rate_factor(up_factor);
    replan_now = false;
    r.decide_us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    r.est_bandwidth = policy->uses_estimates() ? obs.est_bandwidth : std::nan("");
    record_decision(r, d, cm.dag);
    const bool cold = runs[dep.placement()]++ < kColdRuns;
    auto out = dep.run(inputs);
    const auto tl = dep.last_timeline();
    bool transferred = false;
    double device_pred_ms = 0;  // the policy's device ms (load 1) of what ran here
    for (const auto& b : tl.blocks) {
      double pred = 0;
      for (int a : b.atoms) pred += b.remote ? cm.compute_ms[1][a] : device_costs[a];
      if (b.busy) {  // a full queue is server load: the wait it announced (at least one more block's
        double spred = 0;  // worth: a full queue has one running and one waiting), over the block's compute there
        for (int a : b.atoms) spred += cm.compute_ms[1][a];
        monitor.observe_server(spred + std::max(b.busy_wait_ms, spred), spred, std::max(b.server, 0));
      }
      if (!b.remote) {
        device_pred_ms += pred;
        continue;
      }
      transferred = true;
      // at an uplink rate factor f the bytes sent took as long as bytes / f at full power: the
      // monitor keeps estimating the full-power bandwidth
      monitor.observe_transfer(static_cast<double>(b.bytes_up) / up_factor + static_cast<double>(b.bytes_down),
                               b.transfer_ms);
      if (!cold)  // waiting for a worker is server load too
        monitor.observe_server(b.server_ms + b.queue_ms, pred, std::max(b.server, 0));
    }
    if (!cold) monitor.observe_device(tl.device_ms, device_pred_ms);
    since_transfer = transferred ? 0 : since_transfer + 1;
    if (policy->uses_estimates() && since_transfer >= opt.probe_every && dep.server_available()) {
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
    r.server = tl.server;
    for (const auto& b : tl.blocks) r.busy |= b.busy;
    r.est_load = monitor.server_load(std::max(tl.server, 0));
    r.est_device_load = monitor.device_load();
    Measured m;
    m.device_ms = tl.device_ms;
    m.server_ms = tl.server_ms;
    m.queue_ms = tl.queue_ms;
    for (const auto& b : tl.blocks)
      if (b.remote) m.up_bytes += static_cast<double>(b.bytes_up), m.down_bytes += static_cast<double>(b.bytes_down),
          ++m.remote_blocks;
    m.bandwidth_mbps = link ? r.true_bandwidth : obs.est_bandwidth;
    m.uplink_mbps = link ? r.true_bandwidth * up_factor : 0.0;
    m.rtt_ms = obs.rtt_ms;
    policy->observe(m, r);
    records.push_back(r);
    return out;
  }
};

Controller::Controller(Model model, plan::CostModel cost_model, runtime::DeploymentOptions options,
                       std::shared_ptr<Policy> policy, AdaptiveOptions adaptive)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(cost_model), std::move(options), std::move(policy),
                                   std::move(adaptive))) {}
Controller::~Controller() = default;

std::vector<at::Tensor> Controller::run(const std::vector<at::Tensor>& inputs) { return impl_->run(inputs); }

void Controller::set_memory_budget(double bytes) {
  TESSERA_CHECK(bytes >= 0, InvalidArgument, "memory budget must be >= 0 bytes, got {}", bytes);
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->memory_budget = bytes;
  impl_->replan_now = true;
}

void Controller::set_machine_state(std::optional<int> threads, std::optional<double> background_load) {
  TESSERA_CHECK(!threads || *threads >= 1, InvalidArgument,
                "threads must be >= 1 (None: the process's intra-op threads), got {}", threads.value_or(0));
  TESSERA_CHECK(!background_load || (std::isfinite(*background_load) && *background_load >= 0), InvalidArgument,
                "background_load must be a finite number of cores >= 0 (None: not declared), got {}",
                background_load.value_or(0));
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->declared_threads = threads;
  impl_->declared_load = background_load;
}

std::vector<RequestRecord> Controller::timeline() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->records;
}
std::vector<int> Controller::placement() const { return impl_->dep.placement(); }
Monitor Controller::monitor() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->monitor;
}
runtime::Deployment& Controller::deployment() { return impl_->dep; }
std::vector<double> Controller::breakpoints() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->policy->breakpoints();
}
Policy& Controller::policy() { return *impl_->policy; }

namespace {
// profiled.threads 0: the intra-op threads of the process that builds the deployment.
AdaptiveOptions resolved(AdaptiveOptions a) {
  if (a.profiled.threads == 0) a.profiled.threads = at::get_num_threads();
  return a;
}
}  // namespace

AdaptiveDeployment::AdaptiveDeployment(Model model, plan::CostModel cost_model, runtime::DeploymentOptions options,
                                       AdaptiveOptions adaptive)
    : Controller(std::move(model), cost_model, std::move(options),
                 make_adaptive_policy(cost_model, resolved(adaptive)), resolved(adaptive)) {}

}  // namespace tessera::adapt
