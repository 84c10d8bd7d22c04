// adapt/policy.cpp -- static, oracle and adaptive policies (see tessera/adapt/policy.h).
#include "tessera/adapt/policy.h"

#include <algorithm>
#include <cmath>

#include "tessera/core/error.h"
#include "tessera/plan/parametric.h"
#include "tessera/plan/planners.h"

namespace tessera::adapt {

namespace {

// Estimates are measurements: keep them inside what a planning context accepts
// (a loopback transfer can look near-infinitely fast, a stalled one near zero).
plan::Context context_of(double bw, double rtt, double server_load, double device_load) {
  plan::Context c;
  c.bandwidth_mbps = std::clamp(bw, 1e-3, 1e6);
  c.rtt_ms = std::clamp(rtt, 0.0, 1e6);
  c.server_load = std::clamp(server_load, 1e-3, 1e3);
  c.device_load = std::clamp(device_load, 1e-3, 1e3);
  return c;
}

class StaticPolicy final : public Policy {
 public:
  StaticPolicy(std::string name, std::vector<int> placement) : name_(std::move(name)) {
    d_.placement = std::move(placement);
  }
  std::string name() const override { return name_; }
  Decision decide(const Observation&) override { return d_; }

 private:
  std::string name_;
  Decision d_;
};

class OraclePolicy final : public Policy {
 public:
  OraclePolicy(const plan::CostModel& cm, double rtt_ms) : table_(cm, context_of(1.0, rtt_ms, 1.0, 1.0)) {}
  std::string name() const override { return "oracle"; }
  Decision decide(const Observation& obs) override {
    TESSERA_CHECK(obs.true_bandwidth > 0, InvalidArgument,
                  "the oracle policy needs the link's true bandwidth: run it over an emulated link");
    Decision d;
    d.plan_id = table_.lookup_index(obs.true_bandwidth);
    const auto& s = table_.segments()[static_cast<size_t>(d.plan_id)];
    d.placement = s.placement;
    d.predicted_ms = s.intercept + s.slope / obs.true_bandwidth;
    return d;
  }
  std::vector<double> breakpoints() const override { return table_.breakpoints(); }

 private:
  plan::ParametricPlanner table_;
};

class LaggedOraclePolicy final : public Policy {
 public:
  LaggedOraclePolicy(const plan::CostModel& cm, double rtt_ms, const transport::LinkSpec& spec, double lag_s)
      : table_(cm, context_of(1.0, rtt_ms, 1.0, 1.0)), link_(spec), lag_s_(lag_s) {}
  std::string name() const override { return "oracle_prev"; }
  Decision decide(const Observation& obs) override {
    const double bw = link_.bandwidth_at(std::max(0.0, obs.link_time_s - lag_s_));
    Decision d;
    d.plan_id = table_.lookup_index(bw);
    const auto& s = table_.segments()[static_cast<size_t>(d.plan_id)];
    d.placement = s.placement;
    d.predicted_ms = s.intercept + s.slope / bw;
    return d;
  }

 private:
  plan::ParametricPlanner table_;
  transport::Link link_;
  double lag_s_;
};

class AdaptivePolicy final : public Policy {
 public:
  AdaptivePolicy(const plan::CostModel& cm, const AdaptiveOptions& o) : cm_(cm), opt_(o) {
    cm_.validate();
    TESSERA_CHECK(opt_.hysteresis >= 0, InvalidArgument, "hysteresis must be >= 0, got {}", opt_.hysteresis);
    TESSERA_CHECK(!(opt_.device_memory_bytes < 0), InvalidArgument, "device_memory_bytes must be >= 0, got {}",
                  opt_.device_memory_bytes);
    TESSERA_CHECK(opt_.max_latency_ms > 0, InvalidArgument, "max_latency_ms must be > 0 (inf: none), got {}",
                  opt_.max_latency_ms);
    TESSERA_CHECK(opt_.planner == "parametric" || opt_.planner == "mincut" || opt_.planner == "chain" ||
                      opt_.planner == "gads" || opt_.planner == "compressed",
                  InvalidArgument, "unknown adaptive planner '{}' (parametric, mincut, compressed, chain, gads)",
                  opt_.planner);
    if (opt_.planner != "parametric") planner_ = plan::make_planner(opt_.planner, cm_);
    gads_ = plan::make_planner("gads", cm_);
  }
  std::string name() const override { return opt_.planner == "parametric" ? "adaptive" : opt_.planner; }
  bool uses_estimates() const override { return true; }
  std::vector<double> breakpoints() const override { return table_ ? table_->breakpoints() : std::vector<double>{}; }

  Decision decide(const Observation& obs) override {
    Decision d;
    const double est = obs.est_bandwidth;
    const plan::Context ctx = context_of(est, obs.rtt_ms, obs.server_load, obs.device_load);
    plan::Constraints cons;
    cons.device_memory_bytes = obs.memory_budget_bytes;
    cons.max_latency_ms = opt_.max_latency_ms;
    if (opt_.planner == "parametric") {
      const bool rebuilt = !table_ || std::abs(obs.server_load - table_load_) > opt_.load_tolerance * table_load_ ||
                           std::abs(obs.device_load - table_device_load_) > opt_.load_tolerance * table_device_load_;
      if (rebuilt) {
        table_ = std::make_unique<plan::ParametricPlanner>(cm_, context_of(1.0, obs.rtt_ms, obs.server_load,
                                                                              obs.device_load));
        table_load_ = obs.server_load;
        table_device_load_ = obs.device_load;
        segment_ = -1;
        // keep hysteresis across a rebuild: the plan in use, if the new table has it
        const auto& segs = table_->segments();
        for (size_t i = 0; i < segs.size(); ++i)
          if (segs[i].placement == obs.current) segment_ = static_cast<int>(i);
      }
      const int fresh = table_->lookup_index(est);
      d.estimate_device_atoms = device_atoms(table_->segments()[static_cast<size_t>(fresh)].placement);
      bool keep = false;
      if (segment_ >= 0 && !obs.replan && segment_ != fresh) {
        const auto& s = table_->segments()[static_cast<size_t>(segment_)];
        keep = est >= s.bw_lo_mbps / (1 + opt_.hysteresis) && est <= s.bw_hi_mbps * (1 + opt_.hysteresis);
        if (keep)
          d.why = fmt::format("hysteresis: {:.3g} Mbit/s is within [{:.3g}, {:.3g}] of the plan in use", est,
                              s.bw_lo_mbps / (1 + opt_.hysteresis), s.bw_hi_mbps * (1 + opt_.hysteresis));
      }
      if (rebuilt && d.why.empty())
        d.why = fmt::format("table rebuilt for server load {:.3g}, device load {:.3g}", obs.server_load,
                            obs.device_load);
      if (!keep) segment_ = fresh;
      const auto& s = table_->segments()[static_cast<size_t>(segment_)];
      double mem = 0;
      for (int a = 0; a < cm_.num_atoms(); ++a)
        if (s.placement[a] == 0) mem += cm_.dag.param_bytes.empty() ? 0 : cm_.dag.param_bytes[a];
      const double predicted = s.intercept + s.slope / est;
      if (mem <= obs.memory_budget_bytes && predicted <= opt_.max_latency_ms) {
        d.plan_id = segment_;
        d.placement = s.placement;
        d.predicted_ms = predicted;
        return d;
      }
      if (mem <= obs.memory_budget_bytes) {  // only the deadline binds
        const plan::Plan p = gads_->plan(ctx, cons, obs.current);
        if (p.ok()) {
          Decision g = fallback(p);
          g.estimate_device_atoms = d.estimate_device_atoms;
          g.why = fmt::format("deadline {:.4g} ms: the table's plan predicts {:.4g} ms, gads re-planned",
                              opt_.max_latency_ms, predicted);
          return g;
        }
        d.plan_id = segment_;  // no plan meets the deadline: the fastest one runs
        d.placement = s.placement;
        d.predicted_ms = predicted;
        d.why = fmt::format("deadline {:.4g} ms: no plan meets it at {:.3g} Mbit/s; the fastest ({:.4g} ms) runs",
                            opt_.max_latency_ms, est, predicted);
        return d;
      }
      Decision g = fallback(gads_->plan(ctx, cons, obs.current));  // the budget binds: constrained re-plan
      g.estimate_device_atoms = d.estimate_device_atoms;
      g.why = fmt::format("memory budget {:.3g} MB: the table's plan keeps {:.3g} MB on the device, gads re-planned",
                          obs.memory_budget_bytes / 1e6, mem / 1e6);
      return g;
    }
    const bool budget = (obs.memory_budget_bytes < plan::kUnlimited || opt_.max_latency_ms < plan::kUnlimited) &&
                        opt_.planner != "gads";
    Decision r = fallback((budget ? gads_ : planner_)->plan(ctx, cons, obs.current));
    if (budget) r.why = fmt::format("constraints (memory {:.3g} MB, deadline {:.4g} ms): gads re-planned",
                                    obs.memory_budget_bytes / 1e6, opt_.max_latency_ms);
    return r;
  }

 private:
  static int device_atoms(const std::vector<int>& placement) {
    int n = 0;
    for (int t : placement) n += t == 0;
    return n;
  }

  Decision fallback(const plan::Plan& p) const {
    Decision d;
    d.predicted_ms = p.latency_ms;
    d.placement = p.ok() ? p.placement : std::vector<int>(cm_.num_atoms(), 1);
    d.estimate_device_atoms = device_atoms(d.placement);
    if (!p.ok()) d.why = fmt::format("{} found no plan ({}): all on the server", p.algorithm, p.reason);
    return d;
  }

  plan::CostModel cm_;
  AdaptiveOptions opt_;
  std::unique_ptr<plan::ParametricPlanner> table_;
  double table_load_ = 1.0, table_device_load_ = 1.0;
  std::unique_ptr<plan::Planner> planner_;  // non-parametric planners
  std::unique_ptr<plan::Planner> gads_;     // under a memory budget
  int segment_ = -1;
};

}  // namespace

void record_decision(RequestRecord& r, const Decision& d, const AtomDag& dag) {
  r.plan_id = d.plan_id;
  r.predicted_ms = d.predicted_ms;
  r.estimate_device_atoms = d.estimate_device_atoms;
  r.why = d.why;
  r.device_atoms = 0;
  r.device_param_bytes = 0;
  for (size_t a = 0; a < d.placement.size(); ++a)
    if (d.placement[a] == 0) {
      ++r.device_atoms;
      if (!dag.param_bytes.empty()) r.device_param_bytes += dag.param_bytes[a];
    }
}

double estimate_bandwidth(const Monitor& monitor, const AdaptiveOptions& opt) {
  const auto med = monitor.bandwidth_mbps();
  if (!med) return opt.initial_bandwidth_mbps > 0 ? opt.initial_bandwidth_mbps : 1.0;
  const double last = monitor.last_sample_mbps();
  if (opt.react_to_drops && last > 0 && last < *med / (1 + opt.hysteresis)) return last;
  return *med;
}

std::shared_ptr<Policy> make_static_policy(std::string name, std::vector<int> placement) {
  return std::make_shared<StaticPolicy>(std::move(name), std::move(placement));
}
std::shared_ptr<Policy> make_oracle_policy(const plan::CostModel& cm, double rtt_ms) {
  cm.validate();
  TESSERA_CHECK(std::isfinite(rtt_ms) && rtt_ms >= 0, InvalidArgument, "rtt_ms must be >= 0, got {}", rtt_ms);
  return std::make_shared<OraclePolicy>(cm, rtt_ms);
}
std::shared_ptr<Policy> make_lagged_oracle_policy(const plan::CostModel& cm, double rtt_ms,
                                                  const transport::LinkSpec& link, double lag_s) {
  cm.validate();
  TESSERA_CHECK(std::isfinite(rtt_ms) && rtt_ms >= 0, InvalidArgument, "rtt_ms must be >= 0, got {}", rtt_ms);
  TESSERA_CHECK(std::isfinite(lag_s) && lag_s >= 0, InvalidArgument, "lag_s must be >= 0, got {}", lag_s);
  return std::make_shared<LaggedOraclePolicy>(cm, rtt_ms, link, lag_s);
}

std::shared_ptr<Policy> make_adaptive_policy(const plan::CostModel& cm, const AdaptiveOptions& options) {
  return std::make_shared<AdaptivePolicy>(cm, options);
}

}  // namespace tessera::adapt
