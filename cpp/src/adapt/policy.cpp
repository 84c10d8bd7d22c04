// adapt/policy.cpp -- static, oracle and adaptive policies (see tessera/adapt/policy.h).
#include "tessera/adapt/policy.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

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
  AdaptivePolicy(const plan::CostModel& cm, const AdaptiveOptions& o)
      : cm_(cm), opt_(o), profiled_(cm.compute_ms.empty() ? std::vector<double>{} : cm.compute_ms[0]),
        prof_(o.profiled), basis_state_(o.profiled) {
    cm_.validate();
    check_device_options(opt_);
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
  const std::vector<double>* device_costs() const override { return &cm_.compute_ms[0]; }
  int device_costs_version() const override { return version_; }

  double device_load_carry() const override { return carry_; }

  Decision decide(const Observation& obs) override {
    const std::vector<double> before = cm_.compute_ms[0];
    const bool declared = obs.device_state.background_load >= 0;
    const bool same_machine = !declared && !declared_before_ && obs.device_state.threads == threads_before_;
    declared_before_ = declared;
    threads_before_ = obs.device_state.threads;
    const bool changed = choose_costs(obs);
    // The device load was measured against the costs planned with before. When the change came
    // from that measurement (an inferred load on the same machine) it carries over, re-expressed
    // against the new costs over the atoms the device ran; otherwise (a declared state, another
    // thread count) the machine changed: the prediction is believed until measured against (the
    // Controller restarts the monitor's device load alike).
    carry_ = 0;
    double device_load = obs.device_load;
    if (changed) {
      const double b_new = sum_over(cm_.compute_ms[0], obs.current), b_old = sum_over(before, obs.current);
      carry_ = same_machine && obs.device_samples > 0 && b_new > 0 && b_old > 0 ? b_old / b_new : 0;
      device_load = carry_ > 0 ? obs.device_load * carry_ : 1.0;
    }
    Decision d = decide_with(obs, device_load, changed);
    d.cost_source = source(device_load);
    d.device_state = basis_state_;
    return d;
  }

 private:
  // ---- device costs: profiled, scaled or predicted (see policy.h, AdaptiveOptions::predictor) ----
  bool same_state(const DeviceState& a, const DeviceState& b) const {
    return a.threads == b.threads && std::abs(a.background_load - b.background_load) <= opt_.state_tolerance;
  }

  // The device's per-atom costs in a state, predicted and anchored to the profile: per atom, the
  // profiled cost x the predictor's ratio between that state and the profiled one (its ratio over
  // the whole model for an atom it prices at 0 in the profiled state). The predictor says how the state
  // changes an atom; the profile says what the atom costs on this device (a predictor trained on
  // another machine, or a device emulated slower, is off by a factor the anchor removes; in the
  // profiled state it gives the profile itself).
  const std::vector<double>& predicted(const DeviceState& s) {
    const auto key = std::make_pair(s.threads, std::llround(s.background_load * 1000));
    auto it = anchored_.find(key);
    if (it != anchored_.end()) return it->second;
    const std::vector<double> p = raw_predicted(s);  // copies: the cache may grow below
    const std::vector<double> p0 = raw_predicted(prof_);
    const double total0 = sum_over(p0, {});
    const double state_ratio = total0 > 0 ? sum_over(p, {}) / total0 : 1.0;
    std::vector<double> out(p.size());
    for (size_t a = 0; a < p.size(); ++a)
      out[a] = profiled_[a] * (p0[a] > 0 ? p[a] / p0[a] : state_ratio);
    return anchored_.emplace(key, std::move(out)).first->second;
  }

  // The predictor's own per-atom costs in a state, asked once per state.
  const std::vector<double>& raw_predicted(const DeviceState& s) {
    const auto key = std::make_pair(s.threads, std::llround(s.background_load * 1000));
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    std::vector<double> ms = opt_.predictor.predict(s);
    TESSERA_CHECK(static_cast<int>(ms.size()) == cm_.num_atoms(), InvalidArgument,
                  "predictor '{}' returned {} costs for a model of {} atoms (threads={}, load={})",
                  opt_.predictor.name, ms.size(), cm_.num_atoms(), s.threads, s.background_load);
    for (size_t a = 0; a < ms.size(); ++a)
      TESSERA_CHECK(std::isfinite(ms[a]) && ms[a] >= 0, InvalidArgument,
                    "predictor '{}' returned {} ms for atom {} (threads={}, load={}): costs must be finite and >= 0",
                    opt_.predictor.name, ms[a], a, s.threads, s.background_load);
    return cache_.emplace(key, std::move(ms)).first->second;
  }

  static double sum_over(const std::vector<double>& ms, const std::vector<int>& placement) {
    double t = 0;
    for (size_t a = 0; a < ms.size(); ++a)
      if (placement.empty() || (a < placement.size() && placement[a] == 0)) t += ms[a];
    return t;
  }

  // The background load the measured device slowdown points to: the measured compute against
  // the reference state's (same threads, the profiled load: the profile itself when the threads
  // are the profile's, else the prediction there) is matched to the predictor's own slowdown
  // from the reference state, over the atoms the device ran, on the load grid. The load in use
  // stays while its predicted slowdown is within load_tolerance of the measured one.
  double infer_load(const Observation& obs, int threads) {
    const double current = inferred_ >= 0 ? inferred_ : prof_.background_load;
    if (obs.device_samples <= 0) return current;  // not measured against the costs in use yet
    const std::vector<int>& dev = obs.current;
    const DeviceState ref{threads, prof_.background_load};
    const std::vector<double>& pref = predicted(ref);
    const double r = same_state(ref, prof_) ? sum_over(profiled_, dev) : sum_over(pref, dev);
    const double b = sum_over(cm_.compute_ms[0], dev), pr = sum_over(pref, dev);
    if (!(r > 0) || !(b > 0) || !(pr > 0)) return current;  // nothing ran on the device
    const double slowdown = obs.device_load * b / r;
    const auto miss = [&](double load) {
      return std::abs(std::log(sum_over(predicted({threads, load}), dev) / pr) - std::log(slowdown));
    };
    if (miss(current) <= std::log1p(opt_.load_tolerance)) return current;
    double best = prof_.background_load, best_miss = miss(best);
    const int steps = static_cast<int>(std::floor(opt_.max_background_load / opt_.load_step + 1e-9));
    for (int k = 0; k <= steps; ++k) {
      const double load = k * opt_.load_step;
      const double m = miss(load);
      if (m < best_miss - 1e-12) best = load, best_miss = m;
    }
    return best;
  }

  // Chooses the device costs for this request; true when they changed basis.
  bool choose_costs(const Observation& obs) {
    if (prof_.threads <= 0) prof_.threads = std::max(1, obs.device_state.threads);  // "the first request's"
    DeviceState s{obs.device_state.threads >= 1 ? obs.device_state.threads : prof_.threads, prof_.background_load};
    inferred_now_ = false;
    if (obs.device_state.background_load >= 0) {
      s.background_load = obs.device_state.background_load;  // declared by the app
      inferred_ = -1;
    } else if (opt_.predictor && opt_.infer_background_load) {
      s.background_load = inferred_ = infer_load(obs, s.threads);
      inferred_now_ = !same_state(s, {s.threads, prof_.background_load});
    }
    want_state_ = s;
    const bool profiled = same_state(s, prof_);
    const bool predict = !profiled && static_cast<bool>(opt_.predictor);
    const DeviceState basis = predict ? s : prof_;
    if (predict == predicted_ && (predict ? same_state(basis, basis_state_) : true)) return false;
    cm_.compute_ms[0] = predict ? predicted(basis) : profiled_;
    predicted_ = predict;
    basis_state_ = basis;
    ++version_;
    table_.reset();  // planners hold their own copy of the cost model: rebuilt on the new costs
    if (opt_.planner != "parametric") planner_ = plan::make_planner(opt_.planner, cm_);
    gads_ = plan::make_planner("gads", cm_);
    return true;
  }

  // Where this request's device costs came from, in words the timeline keeps.
  std::string source(double device_load) const {
    const bool scaled = std::abs(device_load - 1) > opt_.load_tolerance;
    const std::string load = fmt::format("{:.3g}{}", want_state_.background_load, inferred_now_ ? " inferred" : "");
    if (predicted_) {
      std::string r = fmt::format("predicted ({}, threads={}, load={})", opt_.predictor.name, basis_state_.threads, load);
      return scaled ? r + fmt::format(" x{:.3g}", device_load) : r;
    }
    if (!same_state(want_state_, prof_))  // a state not profiled, no predictor: today's scaling
      return fmt::format("scaled x{:.3g} (threads={}, load={} not profiled, no predictor)", device_load,
                         want_state_.threads, load);
    return scaled ? fmt::format("scaled x{:.3g}", device_load) : "profiled";
  }

 public:
  Decision decide_with(const Observation& obs, double device_load, bool changed) {
    Decision d;
    const double est = obs.est_bandwidth;
    const plan::Context ctx = context_of(est, obs.rtt_ms, obs.server_load, device_load);
    plan::Constraints cons;
    cons.device_memory_bytes = obs.memory_budget_bytes;
    cons.max_latency_ms = opt_.max_latency_ms;
    if (opt_.planner == "parametric") {
      const bool rebuilt = !table_ || std::abs(obs.server_load - table_load_) > opt_.load_tolerance * table_load_ ||
                           std::abs(device_load - table_device_load_) > opt_.load_tolerance * table_device_load_;
      if (rebuilt) {
        table_ = std::make_unique<plan::ParametricPlanner>(cm_, context_of(1.0, obs.rtt_ms, obs.server_load,
                                                                              device_load));
        table_load_ = obs.server_load;
        table_device_load_ = device_load;
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
      if (changed && d.why.empty())
        d.why = fmt::format("table rebuilt on {} device costs (threads={}, load={:.3g})",
                            predicted_ ? "predicted" : "profiled", basis_state_.threads, basis_state_.background_load);
      else if (rebuilt && d.why.empty())
        d.why = fmt::format("table rebuilt for server load {:.3g}, device load {:.3g}", obs.server_load,
                            device_load);
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

  plan::CostModel cm_;  // device costs: the profiled ones, or predicted ones for the state in use
  AdaptiveOptions opt_;
  std::vector<double> profiled_;   // the cost model's device costs as given
  DeviceState prof_;               // the state they were profiled in (threads resolved at the first request)
  DeviceState basis_state_;        // the state cm_'s device costs describe
  DeviceState want_state_{1, 0.0};  // the state of the last request (declared, read or inferred)
  bool predicted_ = false;         // cm_'s device costs are predicted
  bool inferred_now_ = false;      // want_state_'s load was inferred from the measured slowdown
  double inferred_ = -1;           // the load inferred last (-1: none)
  int version_ = 0;                // bumped when cm_'s device costs change basis
  double carry_ = 0;               // device_load_carry() of the last change
  bool declared_before_ = false;   // the previous request had a declared load
  int threads_before_ = -1;        // ... and these threads
  std::map<std::pair<int, long long>, std::vector<double>> cache_;  // (threads, load x 1000) -> predicted ms
  std::map<std::pair<int, long long>, std::vector<double>> anchored_;  // the same, anchored to the profile
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
  r.cost_source = d.cost_source;
  r.device_threads = d.device_state.threads;
  r.device_background_load = d.device_state.background_load;
  r.device_atoms = 0;
  r.device_param_bytes = 0;
  for (size_t a = 0; a < d.placement.size(); ++a)
    if (d.placement[a] == 0) {
      ++r.device_atoms;
      if (!dag.param_bytes.empty()) r.device_param_bytes += dag.param_bytes[a];
    }
}

void check_device_state(const DeviceState& s) {
  TESSERA_CHECK(s.threads >= 1, InvalidArgument, "threads must be >= 1, got {}", s.threads);
  TESSERA_CHECK(std::isfinite(s.background_load) && s.background_load >= 0, InvalidArgument,
                "background_load must be a finite number of cores >= 0, got {}", s.background_load);
}

void check_device_options(const AdaptiveOptions& o) {
  TESSERA_CHECK(o.profiled.threads >= 0, InvalidArgument,
                "profiled.threads must be >= 1 (0: the first request's threads), got {}", o.profiled.threads);
  TESSERA_CHECK(std::isfinite(o.profiled.background_load) && o.profiled.background_load >= 0, InvalidArgument,
                "profiled.background_load must be a finite number of cores >= 0, got {}",
                o.profiled.background_load);
  TESSERA_CHECK(std::isfinite(o.state_tolerance) && o.state_tolerance >= 0, InvalidArgument,
                "state_tolerance must be >= 0 cores, got {}", o.state_tolerance);
  TESSERA_CHECK(std::isfinite(o.load_step) && o.load_step > 0, InvalidArgument, "load_step must be > 0 cores, got {}",
                o.load_step);
  TESSERA_CHECK(std::isfinite(o.max_background_load) && o.max_background_load >= 0 &&
                    o.max_background_load / o.load_step <= 1000,
                InvalidArgument, "max_background_load must be in [0, 1000 x load_step] cores, got {}",
                o.max_background_load);
  TESSERA_CHECK(!o.predictor || !o.predictor.name.empty(), InvalidArgument,
                "a device cost predictor needs a name (its kind, for the records)");
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
