// planners.cpp -- the planner dispatcher and the simple and exact planners:
// device_only / server_only (baselines), chain (Neurosurgeon, Kang et al.
// ASPLOS 2017: best single split point along the topological order), mincut
// (DADS, Hu et al. INFOCOM 2019: exact min cut), compressed (CIC / QDMP, Zhang
// et al. 2021: exact min cut on the chain-contracted graph) and parametric
// (Eisner-Severance envelope over bandwidth; see parametric.h).
#include "tessera/plan/planners.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "tessera/core/error.h"
#include "tessera/plan/mincut.h"
#include "tessera/plan/parametric.h"

namespace tessera::plan {

const std::vector<std::string>& planner_names() {
  static const std::vector<std::string> names = {"device_only", "server_only", "chain",      "mincut",
                                                 "compressed",  "parametric",  "throughput", "gads"};
  return names;
}

namespace detail {

void check_inputs(const CostModel& cm, const Context& ctx, const Constraints& cons) {
  ctx.validate();
  cons.validate(cm.num_atoms(), cm.num_targets());
  // An energy objective over a model without energy would be "optimal" at 0 mJ for any plan.
  if (ctx.objective == Objective::Energy || ctx.energy_weight > 0 || std::isfinite(cons.max_energy_mj)) {
    bool any = false;
    for (const auto& row : cm.energy_mj)
      for (double e : row) any = any || e > 0;
    for (const auto& row : cm.links)
      for (const auto& l : row) any = any || l.energy_mj_per_byte > 0;
    TESSERA_CHECK(any, InvalidArgument,
                  "the {} has no energy data (CostModel.energy_mj and the links' energy_mj_per_byte are all 0): give "
                  "a power model (plan/energy.h: plan_energy, ts.plan_energy) or per-atom energy",
                  ctx.objective == Objective::Energy ? "energy objective" : "energy weight or limit");
  }
}

void finish_plan(Plan& plan, const std::string& algorithm, bool optimal, const Context& ctx,
                 const Constraints& cons) {
  plan.algorithm = algorithm;
  std::string why = constraint_violation(plan, ctx, cons);
  if (!why.empty()) {
    plan.status = PlanStatus::Infeasible;
    plan.reason = algorithm == "gads" ? why : why + " (" + algorithm + " does not search under constraints; use gads)";
  } else {
    plan.status = optimal ? PlanStatus::Optimal : PlanStatus::Feasible;
  }
}

}  // namespace detail

namespace {

// A two-target planner cannot honour a pin to a target >= 2.
std::optional<Plan> reject_far_pins(const CostModel& cm, const Context& ctx, const Constraints& cons,
                                    const std::string& algorithm) {
  for (size_t a = 0; a < cons.pin.size(); ++a)
    if (cons.pin[a] >= 2) {
      Plan p = evaluate(cm, ctx, std::vector<int>(static_cast<size_t>(cm.num_atoms()), 0));
      p.algorithm = algorithm;
      p.status = PlanStatus::BadInput;
      p.reason = fmt::format("pin[{}] = {}: {} places on targets 0 and 1 only", a, cons.pin[a], algorithm);
      return p;
    }
  return std::nullopt;
}

class SingleTargetPlanner : public Planner {
 public:
  SingleTargetPlanner(std::string name, std::shared_ptr<const CostModel> cm, int target)
      : Planner(std::move(name), std::move(cm)), target_(target) {}
  Plan plan(const Context& ctx, const Constraints& cons, const std::vector<int>&) override {
    detail::check_inputs(*cm_, ctx, cons);
    Plan p = evaluate(*cm_, ctx, std::vector<int>(static_cast<size_t>(cm_->num_atoms()), target_));
    detail::finish_plan(p, name_, false, ctx, cons);
    return p;
  }

 private:
  int target_;
};

class ChainPlanner : public Planner {
 public:
  explicit ChainPlanner(std::shared_ptr<const CostModel> cm) : Planner("chain", std::move(cm)) {
    const AtomDag& dag = cm_->dag;
    max_consumer_.assign(dag.values.size(), -1);
    for (size_t v = 0; v < dag.values.size(); ++v)
      for (int c : dag.values[v].consumers) max_consumer_[v] = std::max(max_consumer_[v], c);
  }
  Plan plan(const Context& ctx, const Constraints& cons, const std::vector<int>&) override {
    detail::check_inputs(*cm_, ctx, cons);
    if (auto bad = reject_far_pins(*cm_, ctx, cons, name_)) return *bad;
    const AtomDag& dag = cm_->dag;
    const int n = dag.num_atoms;
    cut_costs(*cm_, ctx, objective_weights(ctx), costs_);
    // J(k) for split k in [0, n]: atoms < k on the device, >= k on the server.
    std::vector<double> diff(static_cast<size_t>(n) + 2, 0.0);
    auto add_range = [&](int lo, int hi, double w) {  // k in [lo, hi]
      if (lo > hi) return;
      diff[lo] += w;
      diff[hi + 1] -= w;
    };
    double server_all = 0;
    for (int a = 0; a < n; ++a) server_all += costs_.server[a];
    for (size_t v = 0; v < dag.values.size(); ++v) {
      const DagValue& val = dag.values[v];
      const int p = val.producer;  // -1 for model inputs: always on the device
      if (max_consumer_[v] >= 0) add_range(p + 1, max_consumer_[v], costs_.up[v]);
      if (p != kModelInput && val.is_output) add_range(0, p, costs_.down[v]);
    }
    int lo = 0, hi = n;  // pins: device-pinned atoms < k <= server-pinned atoms
    for (size_t a = 0; a < cons.pin.size(); ++a) {
      if (cons.pin[a] == 0) lo = std::max(lo, static_cast<int>(a) + 1);
      if (cons.pin[a] == 1) hi = std::min(hi, static_cast<int>(a));
    }
    double run = 0, compute = server_all, best = std::numeric_limits<double>::infinity();
    int best_k = -1;
    for (int k = 0; k <= n; ++k) {
      run += diff[k];
      if (k > 0) compute += costs_.device[k - 1] - costs_.server[k - 1];
      const double j = compute + run;
      if (k >= lo && k <= hi && j < best) best = j, best_k = k;
    }
    if (best_k < 0) {
      Plan p = evaluate(*cm_, ctx, std::vector<int>(static_cast<size_t>(n), 0));
      p.algorithm = name_;
      p.status = PlanStatus::Infeasible;
      p.reason = "pin: no single split point puts every device-pinned atom before every server-pinned atom";
      return p;
    }
    std::vector<int> x(static_cast<size_t>(n), 1);
    std::fill(x.begin(), x.begin() + best_k, 0);
    Plan p = evaluate(*cm_, ctx, x);
    detail::finish_plan(p, name_, false, ctx, cons);
    if (p.ok()) p.reason = best_k == 0 ? "split before atom 0 (all on the server)"
                           : best_k == n ? "split after the last atom (all on the device)"
                                         : fmt::format("split after {} (atom {})", cm_->atom_label(best_k - 1), best_k - 1);
    return p;
  }

 private:
  std::vector<int> max_consumer_;
  CutCosts costs_;
};

class CutPlanner : public Planner {
 public:
  CutPlanner(std::string name, std::shared_ptr<const CostModel> cm, bool compress)
      : Planner(std::move(name), std::move(cm)), solver_(cm_->dag, compress) {}
  Plan plan(const Context& ctx, const Constraints& cons, const std::vector<int>&) override {
    detail::check_inputs(*cm_, ctx, cons);
    if (auto bad = reject_far_pins(*cm_, ctx, cons, name_)) return *bad;
    cut_costs(*cm_, ctx, objective_weights(ctx), costs_);
    Plan p = evaluate(*cm_, ctx, solver_.solve(costs_, cons.pin));
    detail::finish_plan(p, name_, true, ctx, cons);
    return p;
  }

 private:
  CutSolver solver_;
  CutCosts costs_;
};

class ParametricWrapper : public Planner {
 public:
  explicit ParametricWrapper(std::shared_ptr<const CostModel> cm) : Planner("parametric", std::move(cm)) {}
  Plan plan(const Context& ctx, const Constraints& cons, const std::vector<int>&) override {
    detail::check_inputs(*cm_, ctx, cons);
    if (auto bad = reject_far_pins(*cm_, ctx, cons, name_)) return *bad;
    const bool same = built_ && ctx.rtt_ms == ctx_.rtt_ms && ctx.server_load == ctx_.server_load &&
                      ctx.device_load == ctx_.device_load &&
                      ctx.objective == ctx_.objective && ctx.energy_weight == ctx_.energy_weight &&
                      cons.pin == pin_;
    if (!same) {
      Constraints pins_only;
      pins_only.pin = cons.pin;
      planner_.emplace(*cm_, ctx, pins_only);
      ctx_ = ctx;
      pin_ = cons.pin;
      built_ = true;
    }
    Plan p = evaluate(*cm_, ctx, planner_->lookup(ctx.bandwidth_mbps).placement);
    const bool in_range = ctx.bandwidth_mbps >= ParametricPlanner::kMinBandwidth &&
                          ctx.bandwidth_mbps <= ParametricPlanner::kMaxBandwidth;
    detail::finish_plan(p, name_, in_range, ctx, cons);
    if (p.ok() && !in_range)
      p.reason = fmt::format("bandwidth {} Mbit/s is outside the parametric range [{}, {}]: plan of the nearest end",
                             ctx.bandwidth_mbps, ParametricPlanner::kMinBandwidth, ParametricPlanner::kMaxBandwidth);
    return p;
  }

 private:
  bool built_ = false;
  Context ctx_;
  std::vector<int> pin_;
  std::optional<ParametricPlanner> planner_;
};

}  // namespace

std::unique_ptr<Planner> make_planner(const std::string& algorithm, const CostModel& cm) {
  const auto& names = planner_names();
  TESSERA_CHECK(std::find(names.begin(), names.end(), algorithm) != names.end(), InvalidArgument,
                "algorithm '{}' is unknown (known: device_only, server_only, chain, mincut, compressed, "
                "parametric, throughput, gads)", algorithm);
  cm.validate();
  auto shared = std::make_shared<const CostModel>(cm);
  if (algorithm == "device_only") return std::make_unique<SingleTargetPlanner>(algorithm, shared, 0);
  if (algorithm == "server_only") return std::make_unique<SingleTargetPlanner>(algorithm, shared, 1);
  if (algorithm == "chain") return std::make_unique<ChainPlanner>(shared);
  if (algorithm == "mincut") return std::make_unique<CutPlanner>(algorithm, shared, false);
  if (algorithm == "compressed") return std::make_unique<CutPlanner>(algorithm, shared, true);
  if (algorithm == "parametric") return std::make_unique<ParametricWrapper>(shared);
  if (algorithm == "throughput") return detail::make_throughput_planner(shared);
  return detail::make_gads_planner(shared);
}

Plan make_plan(const std::string& algorithm, const CostModel& cm, const Context& ctx, const Constraints& cons,
               const std::vector<int>& current) {
  return make_planner(algorithm, cm)->plan(ctx, cons, current);
}

Plan plan_device_only(const CostModel& cm, const Context& ctx, const Constraints& cons) {
  return make_plan("device_only", cm, ctx, cons);
}
Plan plan_server_only(const CostModel& cm, const Context& ctx, const Constraints& cons) {
  return make_plan("server_only", cm, ctx, cons);
}
Plan plan_chain(const CostModel& cm, const Context& ctx, const Constraints& cons) {
  return make_plan("chain", cm, ctx, cons);
}
Plan plan_mincut(const CostModel& cm, const Context& ctx, const Constraints& cons) {
  return make_plan("mincut", cm, ctx, cons);
}
Plan plan_compressed(const CostModel& cm, const Context& ctx, const Constraints& cons) {
  return make_plan("compressed", cm, ctx, cons);
}
Plan plan_parametric(const CostModel& cm, const Context& ctx, const Constraints& cons) {
  return make_plan("parametric", cm, ctx, cons);
}
Plan plan_throughput(const CostModel& cm, const Context& ctx, const Constraints& cons) {
  return make_plan("throughput", cm, ctx, cons);
}
Plan plan_gads(const CostModel& cm, const Context& ctx, const Constraints& cons, const std::vector<int>& current) {
  return make_plan("gads", cm, ctx, cons, current);
}

}  // namespace tessera::plan
