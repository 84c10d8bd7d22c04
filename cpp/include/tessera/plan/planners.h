// tessera/plan/planners.h -- every planner: (CostModel, Context, Constraints) -> Plan.
//
//   device_only, server_only  baselines
//   chain        Neurosurgeon (Kang et al., ASPLOS 2017): best single split point k
//                along the topological order (atoms < k on the device, >= k on the
//                server, results back); all n + 1 splits in O(atoms + values).
//   mincut       DADS light load (Hu et al., INFOCOM 2019): exact two-target optimum
//                of the additive objective by max-flow (mincut.h).
//   compressed   CIC / QDMP (Zhang et al. 2021): the same exact cut on a graph whose
//                series chains are contracted first (mincut.h).
//   parametric   all optimal min-cut plans over bandwidth (parametric.h); a plan is a lookup.
//   throughput   DADS heavy load: maximise the pipelined frame rate, i.e. minimise
//                max(device stage, link stage, server stage) (throughput.cpp).
//                Approximation: weighted min cuts (multiplicative weights on the
//                three stages) + local search. Bound: bottleneck <= 3 x optimum
//                (the equal-weight cut alone guarantees it); the Lagrangian lower
//                bound is reported in the reason, and status is Optimal when met.
//   gads         CAS / GADS (Liang et al. 2023): re-plan from the current plan under
//                memory / latency / energy constraints: Lagrangian min cuts to
//                reach feasibility, repair of the current plan, local search with
//                moves guided by the neighbour effect (an atom together with its
//                neighbours), then a budgeted branch and bound over pins pruned by
//                Lagrangian bounds (within 2% of the optimum when it completes).
//
// Planners never mutate their inputs. Constraints: gads searches under them; the
// other planners optimise without them and return status Infeasible with the
// violated constraint as reason when their plan breaks one. Pins are honoured by
// every planner (device_only / server_only / chain report Infeasible if they
// cannot). Two-target planners use targets 0 and 1 only.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tessera/plan/cost_model.h"
#include "tessera/plan/plan.h"

namespace tessera::plan {

// The names make_plan accepts, in a stable order.
const std::vector<std::string>& planner_names();

// A planner prepared for one cost model: builds its graphs once, then plan() only
// updates capacities. Not thread-safe (one per thread); the cost model is copied.
class Planner {
 public:
  virtual ~Planner() = default;
  // The algorithm's name, as make_planner takes it ("mincut", ...).
  const std::string& name() const { return name_; }
  // Its own copy of the cost model (validated).
  const CostModel& cost_model() const { return *cm_; }
  // current: the placement in use (gads starts from it); empty = none.
  virtual Plan plan(const Context& ctx, const Constraints& cons = {},
                    const std::vector<int>& current = {}) = 0;

 protected:
  // For subclasses: `cm` is validated by make_planner and shared read-only.
  Planner(std::string name, std::shared_ptr<const CostModel> cm)
      : name_(std::move(name)), cm_(std::move(cm)) {}
  std::string name_;                     // algorithm name, as name() returns it
  std::shared_ptr<const CostModel> cm_;  // validated, never null
};

// Unknown name -> InvalidArgument naming "algorithm". Validates the cost model.
std::unique_ptr<Planner> make_planner(const std::string& algorithm, const CostModel& cm);

// One-shot: make_planner(algorithm, cm)->plan(ctx, cons, current).
Plan make_plan(const std::string& algorithm, const CostModel& cm, const Context& ctx,
               const Constraints& cons = {}, const std::vector<int>& current = {});

// The pure functions (each builds what it needs and plans once).
Plan plan_device_only(const CostModel& cm, const Context& ctx, const Constraints& cons = {});
// Every atom on the server (target 1); model inputs go up, outputs come back.
Plan plan_server_only(const CostModel& cm, const Context& ctx, const Constraints& cons = {});
// Neurosurgeon: the best single split point of the topological order (exact among splits).
Plan plan_chain(const CostModel& cm, const Context& ctx, const Constraints& cons = {});
// DADS: the exact two-target optimum of the additive objective by one min cut.
Plan plan_mincut(const CostModel& cm, const Context& ctx, const Constraints& cons = {});
// The same optimum as plan_mincut, on the series-compressed graph (CIC / QDMP).
Plan plan_compressed(const CostModel& cm, const Context& ctx, const Constraints& cons = {});
// The min-cut plan at ctx.bandwidth_mbps looked up on the parametric envelope.
Plan plan_parametric(const CostModel& cm, const Context& ctx, const Constraints& cons = {});
// DADS heavy load: maximise the pipelined frame rate (bottleneck <= kThroughputBound x optimum).
Plan plan_throughput(const CostModel& cm, const Context& ctx, const Constraints& cons = {});
// CAS / GADS: search under the constraints, starting from `current` (empty: from scratch).
Plan plan_gads(const CostModel& cm, const Context& ctx, const Constraints& cons = {},
               const std::vector<int>& current = {});

// Approximation factor guaranteed by the throughput planner (bottleneck ms <= factor x optimum).
inline constexpr double kThroughputBound = 3.0;

namespace detail {
// Shared by the planners: fills status/reason from constraints and the algorithm name.
void finish_plan(Plan& plan, const std::string& algorithm, bool optimal, const Context& ctx,
                 const Constraints& cons);
// Rejects bad input (cost model, context, constraints) with InvalidArgument.
void check_inputs(const CostModel& cm, const Context& ctx, const Constraints& cons);
std::unique_ptr<Planner> make_throughput_planner(std::shared_ptr<const CostModel> cm);
std::unique_ptr<Planner> make_gads_planner(std::shared_ptr<const CostModel> cm);
}  // namespace detail

}  // namespace tessera::plan
