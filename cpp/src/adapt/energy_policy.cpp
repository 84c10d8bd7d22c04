// adapt/energy_policy.cpp -- CutEdge's Lyapunov controller as a Policy (see tessera/adapt/policy.h).
#include <cmath>
#include <memory>

#include <fmt/format.h>

#include "tessera/adapt/policy.h"
#include "tessera/core/error.h"

namespace tessera::adapt {

namespace {

class EnergyPolicy final : public Policy {
 public:
  EnergyPolicy(const plan::CostModel& cm, const plan::PowerModel& pm, const plan::ControllerOptions& o)
      : ctl_(cm, pm, o) {}
  std::string name() const override { return "energy"; }
  bool uses_estimates() const override { return true; }

  Decision decide(const Observation& obs) override {
    const double bw = obs.est_bandwidth > 0 ? obs.est_bandwidth : 1.0;
    last_ = ctl_.decide(bw, obs.rtt_ms);
    bw_ = bw;
    rtt_ = obs.rtt_ms;
    queue_before_ = ctl_.queue();
    const auto& pm = ctl_.power();
    Decision d;
    d.placement = last_.placement;
    d.predicted_ms = last_.parts.latency_ms;
    d.frequency_mhz = last_.op.frequency_mhz;
    d.tx_power_mw = last_.op.tx_power_mw;
    d.device_time_factor = pm.time_factor(d.frequency_mhz);
    d.uplink_rate_factor = pm.tx_rate_mbps(d.tx_power_mw, bw) / bw;
    d.why = last_.why.empty() ? fmt::format("V {} x {:.1f} ms + Q {:.1f} x {:.2f} mJ at {:g} MHz, {:.0f} mW",
                                            ctl_.options().V, last_.parts.latency_ms, queue_before_,
                                            last_.parts.total_mj, d.frequency_mhz, d.tx_power_mw)
                              : last_.why;
    return d;
  }

  // The request's energy from what was measured: compute at the clock's active power, the bytes
  // sent over the rate at the chosen transmit power and received over the estimate at rx power,
  // waiting for the server (its compute, its queue, each round trip) at idle power.
  double uplink_rate_factor(double p, double bw) const override {
    return bw > 0 ? ctl_.power().tx_rate_mbps(p, bw) / bw : 1.0;
  }

  void observe(const Measured& m, RequestRecord& r) override {
    const auto& pm = ctl_.power();
    const double f = last_.op.frequency_mhz, p = last_.op.tx_power_mw;
    const double down = m.bandwidth_mbps > 0 ? m.bandwidth_mbps : bw_;
    const double rate = m.uplink_mbps > 0 ? m.uplink_mbps : pm.tx_rate_mbps(p, down);
    r.frequency_mhz = f;
    r.tx_power_mw = p;
    r.tx_rate_mbps = rate;
    r.compute_mj = m.device_ms * pm.active_at(f) / 1e3;
    r.tx_mj = p * (m.up_bytes * 8e-3 / rate) / 1e3;
    r.rx_mj = pm.rx_mw * (m.down_bytes * 8e-3 / down) / 1e3;
    r.idle_mj = pm.idle_mw * (m.server_ms + m.queue_ms + m.remote_blocks * rtt_) / 1e3;
    r.energy_mj = r.compute_mj + r.tx_mj + r.rx_mj + r.idle_mj;
    r.energy_queue = queue_before_;
    ctl_.observe(r.energy_mj);
  }

 private:
  plan::EnergyController ctl_;
  plan::EnergyDecision last_;
  double bw_ = 1, rtt_ = 0, queue_before_ = 0;
};

}  // namespace

std::shared_ptr<Policy> make_energy_policy(const plan::CostModel& cm, const plan::PowerModel& power,
                                           const plan::ControllerOptions& options) {
  return std::make_shared<EnergyPolicy>(cm, power, options);
}

}  // namespace tessera::adapt
