// tessera/plan/parametric.h -- every optimal min-cut plan over the whole
// bandwidth range, so a bandwidth change is a lookup.
//
// For a fixed placement x the additive objective is linear in u = 1/bandwidth:
//   J_x(u) = A_x + B_x * u   (B_x = latency weight * 8e-3 * bytes crossing the link)
// so the optimum over all placements, J*(u) = min_x J_x(u), is a concave piecewise-
// linear lower envelope. It is built by the recursive bisection of Eisner and
// Severance (1976) for parametric minimum cuts: solve the min cut (DADS graph,
// Hu et al. INFOCOM 2019; see mincut.h) at both ends of an interval, intersect the
// two lines, solve at the intersection; if nothing beats the two lines there, the
// intersection is a breakpoint, otherwise recurse on both halves. It takes
// 2 * (#segments) - 1 min cuts. lookup() is a binary search over the breakpoints.
//
// Everything except the bandwidth (rtt, server load, objective, energy weight,
// pins) is fixed at construction.
#pragma once

#include <memory>
#include <vector>

#include "tessera/plan/cost_model.h"
#include "tessera/plan/plan.h"

namespace tessera::plan {

// One piece of the envelope: one placement, optimal over a bandwidth interval.
struct ParametricSegment {
  double bw_lo_mbps = 0;   // the segment's placement is optimal for bw in [bw_lo, bw_hi]
  double bw_hi_mbps = 0;   // upper end of the interval, Mbit/s
  double intercept = 0;    // objective = intercept + slope / bandwidth_mbps
  double slope = 0;        // ms (or objective units) x Mbit/s; 0: nothing crosses the link
  std::vector<int> placement;  // per atom: 0 = device, 1 = server
};

// Every optimal two-target placement over a bandwidth range, built once, looked up per request.
// Immutable after construction: lookups are safe from several threads.
class ParametricPlanner {
 public:
  static constexpr double kMinBandwidth = 0.01;    // Mbit/s
  static constexpr double kMaxBandwidth = 10000.0; // Mbit/s

  // Builds the envelope over [min_bw, max_bw] (defaults: the whole range) for the
  // context's rtt, load, objective and energy weight (its bandwidth is ignored).
  ParametricPlanner(const CostModel& cm, const Context& ctx, const Constraints& cons = {},
                    double min_bw = kMinBandwidth, double max_bw = kMaxBandwidth);

  // Index of the segment optimal at `bandwidth_mbps` (clamped to the range). O(log #segments).
  // A bandwidth that is not a finite number > 0 -> InvalidArgument (one comparison).
  int lookup_index(double bandwidth_mbps) const;
  // The segment optimal at `bandwidth_mbps` (lookup_index's rules); valid while the planner lives.
  const ParametricSegment& lookup(double bandwidth_mbps) const {
    return segments_[static_cast<size_t>(lookup_index(bandwidth_mbps))];
  }
  // lookup_index for many bandwidths (one C++ loop; used to time lookups).
  std::vector<int> lookup_indices(const std::vector<double>& bandwidths_mbps) const;
  // The full Plan (evaluate()) of the optimal placement at `bandwidth_mbps`.
  Plan plan_at(double bandwidth_mbps) const;

  // Segments in increasing bandwidth; consecutive segments have different lines.
  const std::vector<ParametricSegment>& segments() const { return segments_; }
  // The bandwidths (Mbit/s, increasing) where the optimal plan changes.
  std::vector<double> breakpoints() const;
  // Min cuts the construction solved (2 x segments - 1 without pins' shortcuts).
  int num_cuts_solved() const { return num_cuts_; }

 private:
  std::shared_ptr<const CostModel> cm_;
  Context ctx_;
  Constraints cons_;
  std::vector<ParametricSegment> segments_;
  std::vector<double> upper_bw_;  // segments_[i].bw_hi_mbps, for the binary search
  int num_cuts_ = 0;
};

}  // namespace tessera::plan
