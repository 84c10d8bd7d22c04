// gads.cpp -- the gads planner: constrained re-planning as in CAS / GADS
// (Liang et al. 2023); its local search is local_search.h's.
//
// gads minimises the Context's additive objective J subject to device memory
// (parameter bytes on the device), latency and energy limits and pins:
//   1. exact checks: each constraint alone is tested against its own optimum
//      (pinned parameters for memory, a min cut for latency / energy); a
//      constraint nobody can meet gives status Infeasible with that reason;
//   2. Lagrangian relaxation: min cuts of J + sum_k lambda_k g_k (all terms are
//      additive, so each is exact; DADS graph, Hu et al. INFOCOM 2019). With one
//      constraint (the common case: a memory budget) the dual is maximised
//      exactly by cutting planes: the next multiplier is where the lines of the
//      best violating and the best feasible placement cross, starting from the
//      multiplier of the previous bound or re-plan (3-5 cuts on densenet121);
//      with several, multipliers are multiplied by 4 until feasible and then
//      bisected. Every solve also gives the dual bound min_x L(x, lambda) <= OPT;
//   3. the current plan, repaired to feasibility by greedy moves if it is not;
//   4. local search from the best feasible candidates with moves guided by the
//      neighbour effect: an atom alone, or an atom with all its neighbours,
//      moved to one side; a move is kept if it stays feasible and lowers J;
//   5. depth-first branch and bound over pins (branching on the heaviest atom
//      where the two sides of the multiplier disagree), pruned by the
//      Lagrangian bound of each node to a relative gap of kGap (2%), within a
//      budget of max(6, 4000 / atoms) min cuts; then a last local search if it
//      found a better plan.
// Status Optimal when the unconstrained optimum is feasible or the best plan
// meets the root dual bound; Feasible otherwise (the reason says whether the
// branch and bound completed, i.e. the plan is within 2% of the optimum).
#include <algorithm>
#include <array>
#include <cmath>

#include "tessera/core/error.h"
#include "tessera/plan/local_search.h"
#include "tessera/plan/mincut.h"
#include "tessera/plan/planners.h"

namespace tessera::plan {

// ---- the gads planner --------------------------------------------------------

namespace {

constexpr double kTol = 1e-9;
constexpr double kGap = 0.02;  // branch and bound stops within 2% of the optimum

class GadsPlanner : public Planner {
 public:
  explicit GadsPlanner(std::shared_ptr<const CostModel> cm)
      : Planner("gads", std::move(cm)), solver_(cm_->dag, /*compress=*/true), moves_(cm_->dag) {}

  Plan plan(const Context& ctx, const Constraints& cons, const std::vector<int>& current) override {
    detail::check_inputs(*cm_, ctx, cons);
    const int n = cm_->num_atoms();
    if (!current.empty()) {  // gads re-plans on targets 0 and 1
      const std::string problem = placement_problem(cm_->dag, current, 2);
      TESSERA_CHECK(problem.empty(), InvalidArgument, "current {}", problem);
    }
    for (size_t a = 0; a < cons.pin.size(); ++a)
      if (cons.pin[a] >= 2) return bad(ctx, fmt::format("pin[{}] = {}: gads places on targets 0 and 1 only", a, cons.pin[a]));
    pin_ = cons.pin;
    limit_[0] = std::min(cons.device_memory_bytes, ctx.device_memory_budget_bytes);
    limit_[1] = cons.max_latency_ms;
    limit_[2] = cons.max_energy_mj;

    cut_costs(*cm_, ctx, objective_weights(ctx), cj_);
    CostWeights w;
    w.latency = 0;
    w.memory = 1;
    cut_costs(*cm_, ctx, w, cg_[0]);
    w.memory = 0;
    w.latency = 1;
    cut_costs(*cm_, ctx, w, cg_[1]);
    w.latency = 0;
    w.energy = 1;
    cut_costs(*cm_, ctx, w, cg_[2]);
    // Only the objective and the constraints with a finite limit are evaluated.
    all_ = {&cj_};
    slot_ = {0};
    for (int k = 0; k < 3; ++k)
      if (std::isfinite(limit_[k])) all_.push_back(&cg_[k]), slot_.push_back(k + 1);

    // 1. Each constraint alone.
    double pinned_params = 0;
    std::string pinned_list;
    for (size_t a = 0; a < pin_.size(); ++a)
      if (pin_[a] == 0 && !cm_->dag.param_bytes.empty() && cm_->dag.param_bytes[a] > 0) {
        pinned_params += cm_->dag.param_bytes[a];
        if (pinned_list.size() < 120) pinned_list += (pinned_list.empty() ? "" : ", ") + cm_->atom_label(static_cast<int>(a));
      }
    if (pinned_params > limit_[0] * (1 + kTol))
      return infeasible(ctx, cons, std::vector<int>(static_cast<size_t>(n), 1),
                        fmt::format("device_memory_bytes: the budget of {:.0f} bytes is below the {:.0f} bytes of "
                                    "parameters of atoms pinned to the device ({})", limit_[0], pinned_params, pinned_list));
    const char* names[3] = {"device_memory_bytes", "max_latency_ms", "max_energy_mj"};
    for (int k = 1; k < 3; ++k) {
      if (!std::isfinite(limit_[k])) continue;
      double best = 0;
      std::vector<int> x = solver_.solve(cg_[k], pin_, &best);
      if (best > limit_[k] * (1 + kTol))
        return infeasible(ctx, cons, x,
                          fmt::format("{}: the limit {:.4g} is below {:.4g}, the minimum any placement reaches",
                                      names[k], limit_[k], best));
    }

    // 2. Unconstrained optimum; if it is feasible it is the answer.
    best_x_.clear();
    best_j_ = std::numeric_limits<double>::infinity();
    cuts_ = 0;
    std::vector<int> xj = solver_.solve(cj_, pin_);
    ++cuts_;
    if (feasible(metrics(xj))) return finish(ctx, cons, xj, true);

    // 3. Lagrangian relaxation at the root (candidates + lower bound).
    Node root = bound(pin_, &xj);
    const double root_lb = root.lb;

    // 4. The current plan, repaired if needed, and local search from the candidates.
    std::vector<std::vector<int>> starts;
    if (!best_x_.empty()) starts.push_back(best_x_);
    if (!current.empty()) {
      std::vector<int> x = current;
      for (size_t a = 0; a < pin_.size(); ++a)
        if (pin_[a] >= 0) x[a] = pin_[a];
      if (repair(x)) starts.push_back(x);
    }
    if (starts.empty()) {  // repair the unconstrained optimum as a last resort
      std::vector<int> x = xj;
      if (repair(x)) starts.push_back(x);
    }
    for (size_t i = 0; i < starts.size(); ++i) {
      if (i > 0 && starts[i] == starts[0]) continue;  // the current plan is often the best candidate
      local_search(starts[i]);
      consider(starts[i], metrics(starts[i]));
    }
    polished_ = best_x_;

    // 5. Branch and bound over pins, pruned by the Lagrangian bound to a relative
    //    gap of kGap, within a budget of min cuts.
    bool complete = branch_and_bound(std::move(root));
    if (best_x_.empty())
      return infeasible(ctx, cons, xj,
                        complete ? "no placement meets device_memory_bytes, max_latency_ms and max_energy_mj together "
                                   "(each alone can be met)"
                                 : "no placement found that meets device_memory_bytes, max_latency_ms and max_energy_mj "
                                   "together within the search budget (each alone can be met)");
    if (best_x_ != polished_) {  // branch and bound found a better plan: polish it too
      std::vector<int> x = best_x_;
      local_search(x);
      consider(x, metrics(x));
    }
    const bool proven = best_j_ <= root_lb + 1e-9 * std::max(std::abs(root_lb), 1e-12);
    Plan p = finish(ctx, cons, best_x_, proven);
    if (p.status == PlanStatus::Feasible)
      p.reason = complete ? fmt::format("within {:.0f}% of the optimum (branch and bound over {} min cuts; "
                                        "objective {:.6g}, root Lagrangian bound {:.6g})",
                                        kGap * 100, cuts_, best_j_, root_lb)
                          : fmt::format("search budget of {} min cuts exhausted; objective {:.6g}, Lagrangian "
                                        "lower bound {:.6g}", cuts_, best_j_, root_lb);
    return p;
  }

 private:
  struct Metrics {
    std::array<double, 4> v{};  // J, memory, latency, energy
  };

  Metrics metrics(const std::vector<int>& x) const {
    Metrics m;
    for (size_t i = 0; i < all_.size(); ++i) m.v[slot_[i]] = cut_value(cm_->dag, *all_[i], x);
    return m;
  }
  bool violates(const Metrics& m, int k) const { return m.v[k + 1] > limit_[k] * (1 + kTol); }
  bool feasible(const Metrics& m) const { return !violates(m, 0) && !violates(m, 1) && !violates(m, 2); }
  double violation(const std::array<double, 4>& v) const {
    double s = 0;
    for (int k = 0; k < 3; ++k)
      if (std::isfinite(limit_[k]) && v[k + 1] > limit_[k])
        s += (v[k + 1] - limit_[k]) / std::max(limit_[k], 1e-12);
    return s;
  }
  void consider(const std::vector<int>& x, const Metrics& m) {
    if (feasible(m) && m.v[0] < best_j_) {
      best_j_ = m.v[0];
      best_x_ = x;
    }
  }

  // min_x J + sum_k lam_k g_k under `pins`; returns x, fills m and the dual value.
  std::vector<int> lagrangian(const std::array<double, 3>& lam, const std::vector<int>& pins, Metrics* m,
                              double* dual) {
    comb_ = cj_;
    for (int k = 0; k < 3; ++k) {
      if (lam[k] == 0) continue;
      const CutCosts& g = cg_[k];
      for (size_t i = 0; i < comb_.device.size(); ++i) {
        comb_.device[i] += lam[k] * g.device[i];
        comb_.server[i] += lam[k] * g.server[i];
      }
      for (size_t i = 0; i < comb_.up.size(); ++i) {
        comb_.up[i] += lam[k] * g.up[i];
        comb_.down[i] += lam[k] * g.down[i];
      }
    }
    double value = 0;
    std::vector<int> x = solver_.solve(comb_, pins, &value);
    ++cuts_;
    *dual = value;
    for (int k = 0; k < 3; ++k)
      if (lam[k] > 0) *dual -= lam[k] * limit_[k];
    *m = metrics(x);
    consider(x, *m);
    return x;
  }

  struct Node {
    std::vector<int> pins;
    double lb = 0;                 // Lagrangian lower bound of the subtree
    bool solved = false;           // the relaxation's optimum is feasible: subtree done
    std::vector<int> x_viol, x_ok; // solutions on both sides of the multiplier
  };

  // Lagrangian bound of the placements meeting `pins`. `x0` is the relaxation at
  // lambda = 0 when the caller already has it. With one finite limit the dual
  // is maximised exactly by the cutting-plane (Newton) iteration on the two
  // lines that bracket the limit (a handful of cuts); with several, multipliers
  // are multiplied by 4 until feasible, then bisected. Every solve is also a
  // primal candidate. The multipliers that met the limits are remembered and
  // tried first at the next bound (the next node, or the next re-plan).
  Node bound(const std::vector<int>& pins, const std::vector<int>* x0 = nullptr) {
    Node node;
    node.pins = pins;
    Metrics m;
    double dual = 0;
    if (x0 != nullptr) {
      node.x_viol = *x0;
      m = metrics(*x0);
      dual = m.v[0];  // the relaxation's optimum at lambda = 0
    } else {
      node.x_viol = lagrangian({0, 0, 0}, pins, &m, &dual);
    }
    node.lb = dual;
    if (feasible(m)) {
      node.solved = true;
      return node;
    }
    int finite = 0, only = -1;
    for (int k = 0; k < 3; ++k)
      if (std::isfinite(limit_[k])) ++finite, only = k;
    if (finite == 1) return newton(std::move(node), m, only);

    std::array<double, 3> lam_lo{0, 0, 0}, lam_hi{0, 0, 0};
    const double j0 = m.v[0];
    bool found = false;
    for (int it = 0; it < 48 && !found; ++it) {
      lam_lo = lam_hi;
      for (int k = 0; k < 3; ++k)
        if (violates(m, k)) lam_hi[k] = lam_hi[k] == 0 ? first_multiplier(j0, m.v[k + 1]) : lam_hi[k] * 4;
      std::vector<int> x = lagrangian(lam_hi, pins, &m, &dual);
      node.lb = std::max(node.lb, dual);
      if ((found = feasible(m))) node.x_ok = std::move(x);
      else node.x_viol = std::move(x);
    }
    if (!found) {
      // No relaxation met every limit at once. With several constraints that
      // proves nothing (the relaxation can miss feasible points): keep the dual
      // bound and let branch and bound split this node further.
      return node;
    }
    for (int it = 0; it < 8; ++it) {
      std::array<double, 3> mid;
      for (int k = 0; k < 3; ++k) mid[k] = 0.5 * (lam_lo[k] + lam_hi[k]);
      std::vector<int> x = lagrangian(mid, pins, &m, &dual);
      node.lb = std::max(node.lb, dual);
      if (feasible(m)) {
        lam_hi = mid;
        node.x_ok = std::move(x);
      } else {
        lam_lo = mid;
        node.x_viol = std::move(x);
      }
    }
    return node;
  }

  // A first multiplier for a violated constraint: its term worth 5% of objective j.
  static double first_multiplier(double j, double g) { return 0.05 * std::max(std::abs(j), 1e-12) / std::max(g, 1e-300); }

  // One constraint k: the dual L(lam) = min_x J(x) + lam (g_k(x) - limit) is concave
  // and piecewise linear, one line per placement. Keep a violating placement (lo)
  // and a feasible one (hi); the next multiplier is where their two lines cross;
  // if the cut there is no lower than the crossing, that multiplier maximises L.
  Node newton(Node node, Metrics m_lo, int k) {
    const std::vector<int>& pins = node.pins;
    const double c = limit_[k];
    auto slack = [&](const Metrics& m) { return m.v[k + 1] - c; };
    Metrics m, m_hi;
    double dual = 0;
    // Bracket: the remembered multiplier first, then x4 steps.
    double lam = warm_[k] > 0 ? warm_[k] : first_multiplier(m_lo.v[0], m_lo.v[k + 1]);
    bool found = false;
    for (int it = 0; it < 48; ++it) {
      std::array<double, 3> l{0, 0, 0};
      l[k] = lam;
      std::vector<int> x = lagrangian(l, pins, &m, &dual);
      node.lb = std::max(node.lb, dual);
      if (feasible(m)) {
        node.x_ok = std::move(x);
        m_hi = m;
        found = true;
        break;
      }
      node.x_viol = std::move(x);
      m_lo = m;
      lam *= 4;
    }
    if (!found) {
      node.lb = std::numeric_limits<double>::infinity();
      return node;
    }
    for (int it = 0; it < 16; ++it) {
      const double s_lo = slack(m_lo), s_hi = slack(m_hi);  // s_lo > 0 >= s_hi
      if (s_lo - s_hi <= 0) break;
      const double cross = (m_hi.v[0] - m_lo.v[0]) / (s_lo - s_hi);
      if (!(cross > 0) || !std::isfinite(cross)) break;
      const double line = m_lo.v[0] + cross * s_lo;
      std::array<double, 3> l{0, 0, 0};
      l[k] = cross;
      std::vector<int> x = lagrangian(l, pins, &m, &dual);
      node.lb = std::max(node.lb, dual);
      warm_[k] = cross;
      if (dual >= line - 1e-9 * std::max(std::abs(line), 1e-12)) break;  // cross maximises the dual
      if (feasible(m)) {
        node.x_ok = std::move(x);
        m_hi = m;
      } else {
        node.x_viol = std::move(x);
        m_lo = m;
      }
    }
    return node;
  }

  bool pruned(const Node& node) const {
    return node.solved || node.lb >= best_j_ / (1 + kGap) - 1e-12 * std::abs(best_j_);
  }

  // Depth-first branch and bound; true if it finished within the budget.
  bool branch_and_bound(Node root) {
    const int n = cm_->num_atoms();
    const int budget = std::max(6, 4000 / std::max(n, 1));
    std::vector<Node> stack;
    stack.push_back(std::move(root));
    while (!stack.empty()) {
      Node node = std::move(stack.back());
      stack.pop_back();
      if (pruned(node)) continue;
      if (cuts_ >= budget) return false;
      // Branch on a free atom where the two sides of the multiplier disagree,
      // the heaviest in parameters first (the neighbour effect decides the rest
      // through the min cut of each child).
      // (No feasible relaxation at this node: any free atom, the heaviest first.)
      int branch = -1;
      double weight = -1;
      for (int a = 0; a < n; ++a) {
        if (node.pins.size() == static_cast<size_t>(n) && node.pins[a] >= 0) continue;
        if (!node.x_ok.empty() && node.x_ok[a] == node.x_viol[a]) continue;
        const double w = cm_->dag.param_bytes.empty() ? 0.0 : cm_->dag.param_bytes[a];
        if (w > weight) weight = w, branch = a;
      }
      if (branch < 0) continue;  // every atom pinned: the relaxation was this placement
      const int preferred = node.x_ok.empty() ? 1 - node.x_viol[branch] : node.x_ok[branch];
      for (int side : {1 - preferred, preferred}) {  // preferred is pushed last: explored first
        std::vector<int> pins = node.pins;
        if (pins.empty()) pins.assign(static_cast<size_t>(n), -1);
        pins[branch] = side;
        Node child = bound(pins);
        if (!pruned(child)) stack.push_back(std::move(child));
      }
    }
    return true;
  }

  bool movable(int a) const { return pin_.empty() || pin_[a] < 0; }

  // Greedy moves that most reduce the normalised violation (ties: lower J).
  bool repair(std::vector<int>& x) {
    Metrics m = metrics(x);
    const int n = cm_->num_atoms();
    moves_.reset(x);
    std::vector<int> one(1);
    for (int step = 0; step < std::max(64, n) && !feasible(m); ++step) {
      double best_score = violation(m.v), best_dj = 0;
      int best_a = -1;
      for (int a = 0; a < n; ++a) {
        if (!movable(a)) continue;
        one[0] = a;
        moves_.group_deltas(all_, one, 1 - x[a], deltas_);
        std::array<double, 4> v = m.v;
        for (size_t i = 0; i < all_.size(); ++i) v[slot_[i]] += deltas_[i];
        const double score = violation(v);
        if (score < best_score - 1e-15 || (best_a >= 0 && score <= best_score && deltas_[0] < best_dj)) {
          best_score = score;
          best_dj = deltas_[0];
          best_a = a;
        }
      }
      if (best_a < 0) return false;
      one[0] = best_a;
      moves_.apply(one, 1 - x[best_a]);
      x[best_a] = 1 - x[best_a];
      m = metrics(x);
    }
    return feasible(m);
  }

  // Neighbour-effect local search: a move is taken if it lowers J and stays feasible.
  void local_search(std::vector<int>& x) {
    Metrics m = metrics(x);
    moves_.reset(x);
    moves_.search(all_, pin_, 20, [&](const std::vector<double>& d) {
      if (d[0] >= -1e-12 * std::max(std::abs(m.v[0]), 1e-12)) return false;
      Metrics next = m;
      for (size_t i = 0; i < all_.size(); ++i) next.v[slot_[i]] += d[i];
      if (!feasible(next)) return false;
      m = next;
      return true;
    });
    x = moves_.placement();
  }

  Plan finish(const Context& ctx, const Constraints& cons, const std::vector<int>& x, bool optimal) {
    Plan p = evaluate(*cm_, ctx, x);
    detail::finish_plan(p, name_, optimal, ctx, cons);
    return p;
  }
  Plan infeasible(const Context& ctx, const Constraints& cons, const std::vector<int>& x, std::string why) {
    Plan p = evaluate(*cm_, ctx, x);
    detail::finish_plan(p, name_, false, ctx, cons);
    p.status = PlanStatus::Infeasible;
    p.reason = std::move(why);
    return p;
  }
  Plan bad(const Context& ctx, std::string why) {
    Plan p = evaluate(*cm_, ctx, std::vector<int>(static_cast<size_t>(cm_->num_atoms()), 0));
    p.algorithm = name_;
    p.status = PlanStatus::BadInput;
    p.reason = std::move(why);
    return p;
  }

  CutSolver solver_;
  MoveEvaluator moves_;
  std::vector<int> pin_;
  std::array<double, 3> limit_{};
  CutCosts cj_, comb_;
  std::array<CutCosts, 3> cg_;  // memory, latency, energy
  std::vector<const CutCosts*> all_;  // the objective, then the constrained metrics
  std::vector<int> slot_;             // index in Metrics::v of each entry of all_
  std::vector<double> deltas_;
  std::vector<int> best_x_, polished_;
  double best_j_ = 0;
  int cuts_ = 0;
  std::array<double, 3> warm_{0, 0, 0};  // multipliers that met the limits at the last bound
};

}  // namespace

namespace detail {
std::unique_ptr<Planner> make_gads_planner(std::shared_ptr<const CostModel> cm) {
  return std::make_unique<GadsPlanner>(std::move(cm));
}
}  // namespace detail

}  // namespace tessera::plan
