// parametric.cpp -- all optimal min-cut plans over the bandwidth range: the
// lower envelope of the lines J_x(u) = A_x + B_x u (u = 1 / bandwidth), built
// by Eisner-Severance recursive bisection over exact DADS min cuts (Hu et al.,
// INFOCOM 2019). See tessera/plan/parametric.h.
#include "tessera/plan/parametric.h"

#include <algorithm>
#include <cmath>

#include "tessera/core/error.h"
#include "tessera/plan/mincut.h"
#include "tessera/plan/planners.h"

namespace tessera::plan {

namespace {

struct Line {
  double a = 0, b = 0;  // objective = a + b * u
  std::vector<int> x;
  double at(double u) const { return a + b * u; }
};

class Builder {
 public:
  Builder(const CostModel& cm, const Context& ctx, const Constraints& cons)
      : cm_(cm), pin_(cons.pin), solver_(cm.dag, /*compress=*/true) {
    const CostWeights w = objective_weights(ctx);
    Context fixed = ctx;
    fixed.bandwidth_mbps = std::numeric_limits<double>::infinity();  // serialisation time 0
    cut_costs(cm, fixed, w, base_);
    slope_ = base_;
    std::fill(slope_.device.begin(), slope_.device.end(), 0.0);
    std::fill(slope_.server.begin(), slope_.server.end(), 0.0);
    for (size_t v = 0; v < cm.dag.values.size(); ++v)  // d(bytes * 8e-3 / bw) / d(1/bw)
      slope_.up[v] = slope_.down[v] = w.latency * cm.dag.values[v].bytes * 8e-3;
    at_ = base_;
  }

  Line solve(double u) {
    for (size_t i = 0; i < at_.up.size(); ++i) {
      at_.up[i] = base_.up[i] + u * slope_.up[i];
      at_.down[i] = base_.down[i] + u * slope_.down[i];
    }
    ++cuts;
    Line l;
    l.x = solver_.solve(at_, pin_);
    l.a = cut_value(cm_.dag, base_, l.x);
    l.b = cut_value(cm_.dag, slope_, l.x);
    return l;
  }

  // Appends to `out` the envelope strictly between lo and hi (exclusive of lo,
  // inclusive of hi), in increasing u.
  void recurse(const Line& lo, double u_lo, const Line& hi, double u_hi, std::vector<std::pair<double, Line>>& out,
               int depth) {
    const double scale = std::max({std::abs(lo.at(u_hi)), std::abs(hi.at(u_hi)), 1e-300});
    const bool same = std::abs(lo.a - hi.a) <= 1e-12 * scale && std::abs(lo.b - hi.b) <= 1e-12 * scale;
    if (same) return;
    double u = lo.b != hi.b ? (hi.a - lo.a) / (lo.b - hi.b) : 0.5 * (u_lo + u_hi);
    if (!(u > u_lo && u < u_hi) || depth > 200 || (u_hi - u_lo) <= 1e-15 * u_hi) {
      u = std::clamp(u, u_lo, u_hi);
      out.emplace_back(u, hi);
      return;
    }
    Line mid = solve(u);
    const double line = lo.at(u);
    if (mid.at(u) >= line - 1e-11 * std::max(std::abs(line), 1e-300)) {
      out.emplace_back(u, hi);  // u is a breakpoint between lo and hi
      return;
    }
    recurse(lo, u_lo, mid, u, out, depth + 1);
    recurse(mid, u, hi, u_hi, out, depth + 1);
  }

  int cuts = 0;

 private:
  const CostModel& cm_;
  std::vector<int> pin_;
  CutSolver solver_;
  CutCosts base_, slope_, at_;
};

}  // namespace

ParametricPlanner::ParametricPlanner(const CostModel& cm, const Context& ctx, const Constraints& cons,
                                     double min_bw, double max_bw) {
  cm.validate();
  Context c = ctx;
  if (!(c.bandwidth_mbps > 0) || !std::isfinite(c.bandwidth_mbps)) c.bandwidth_mbps = 1;  // ignored
  c.validate();
  cons.validate(cm.num_atoms(), cm.num_targets());
  TESSERA_CHECK(std::isfinite(min_bw) && min_bw > 0 && std::isfinite(max_bw) && max_bw > min_bw, InvalidArgument,
                "bandwidth range [min_bw, max_bw] = [{}, {}] must satisfy 0 < min_bw < max_bw < inf", min_bw, max_bw);
  for (size_t a = 0; a < cons.pin.size(); ++a)
    TESSERA_CHECK(cons.pin[a] <= 1, InvalidArgument, "Constraints.pin[{}] = {}: parametric places on targets 0 and 1 only",
                  a, cons.pin[a]);
  cm_ = std::make_shared<const CostModel>(cm);
  ctx_ = c;
  cons_ = cons;

  Builder b(*cm_, ctx_, cons_);
  const double u_lo = 1.0 / max_bw, u_hi = 1.0 / min_bw;
  Line lo = b.solve(u_lo), hi = b.solve(u_hi);
  std::vector<std::pair<double, Line>> env;  // (u where the line starts being optimal, line)
  env.emplace_back(u_lo, lo);
  b.recurse(lo, u_lo, hi, u_hi, env, 0);
  num_cuts_ = b.cuts;
  // env is in increasing u = decreasing bandwidth; segments go by increasing bandwidth.
  for (size_t i = env.size(); i-- > 0;) {
    ParametricSegment seg;
    const double u_start = env[i].first;
    const double u_end = i + 1 < env.size() ? env[i + 1].first : u_hi;
    seg.bw_lo_mbps = 1.0 / u_end;
    seg.bw_hi_mbps = 1.0 / u_start;
    seg.intercept = env[i].second.a;
    seg.slope = env[i].second.b;
    seg.placement = std::move(env[i].second.x);
    segments_.push_back(std::move(seg));
  }
  segments_.front().bw_lo_mbps = min_bw;
  segments_.back().bw_hi_mbps = max_bw;
  for (const auto& s : segments_) upper_bw_.push_back(s.bw_hi_mbps);
}

int ParametricPlanner::lookup_index(double bandwidth_mbps) const {
  TESSERA_CHECK(bandwidth_mbps > 0 && bandwidth_mbps < kUnlimited, InvalidArgument,
                "bandwidth_mbps must be finite and > 0, got {}", bandwidth_mbps);
  auto it = std::lower_bound(upper_bw_.begin(), upper_bw_.end(), bandwidth_mbps);
  if (it == upper_bw_.end()) return static_cast<int>(upper_bw_.size()) - 1;
  return static_cast<int>(it - upper_bw_.begin());
}

std::vector<int> ParametricPlanner::lookup_indices(const std::vector<double>& bandwidths_mbps) const {
  std::vector<int> out(bandwidths_mbps.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = lookup_index(bandwidths_mbps[i]);
  return out;
}

Plan ParametricPlanner::plan_at(double bandwidth_mbps) const {
  Context c = ctx_;
  c.bandwidth_mbps = bandwidth_mbps;
  c.validate();
  Plan p = evaluate(*cm_, c, lookup(bandwidth_mbps).placement);
  const bool in_range = bandwidth_mbps >= segments_.front().bw_lo_mbps && bandwidth_mbps <= segments_.back().bw_hi_mbps;
  detail::finish_plan(p, "parametric", in_range, c, cons_);
  return p;
}

std::vector<double> ParametricPlanner::breakpoints() const {
  std::vector<double> out;
  for (size_t i = 0; i + 1 < segments_.size(); ++i) out.push_back(segments_[i].bw_hi_mbps);
  return out;
}

}  // namespace tessera::plan
