// tessera/adapt/adaptive.h -- a deployment that re-plans while it runs.
//
//   AdaptiveDeployment dep(model, cost_model, deployment_options, {.planner = "parametric"});
//   for (...) y = dep.run({frame});
//   dep.timeline();   // per request: estimated and true bandwidth, plan, latency parts
//
// Before each request the adapter reads the Monitor's bandwidth estimate (the
// median of its window by default - see MonitorOptions::estimator -, or the last sample if that fell by more than the
// hysteresis: drops are believed at once, rises after confirmation). With
// the parametric planner (the default) every optimal plan over the bandwidth
// range is precomputed; the current plan is kept while the estimate stays in
// its validity interval widened by the hysteresis factor, and replaced by a
// lookup (nanoseconds) when it leaves it. Other planners ("mincut", "chain",
// "gads") re-plan on every request. A memory budget (set_memory_budget) that the
// chosen plan breaks hands over to gads under that constraint; a server or
// device load (measured compute over the cost model's, see Monitor) that moves
// beyond load_tolerance rebuilds the parametric table. Plans switch
// between requests only. When the plan sends nothing for probe_every requests,
// a small Echo probes the link after the request so a device-only plan notices
// a better link; a probe that disagrees is confirmed at once by another.
//
// Device costs in contexts not profiled (AdaMEC's runtime latency predictor in the loop): the
// cost model's device costs describe one machine state (AdaptiveOptions::profiled: threads,
// background load). When the state of a request differs - the app declared another one
// (set_machine_state), the process runs another intra-op thread count, or, with a predictor and
// no declared load, the measured device slowdown points to a background load - the policy asks
// AdaptiveOptions::predictor for the device's per-atom costs in that state and re-plans on them;
// the monitor then measures the device against the predicted costs, so a prediction that is off
// is still corrected by the measured ratio. Without a predictor, profiled costs are scaled by the
// measured ratio as before. Every RequestRecord says where its device costs came from
// (cost_source: "profiled", "scaled x1.31", "predicted (xgboost, threads=2, load=0.5)").
#pragma once

#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tessera/adapt/monitor.h"
#include "tessera/adapt/policy.h"
#include "tessera/plan/cost_model.h"
#include "tessera/runtime/deployment.h"

namespace tessera::adapt {

// Runs a Policy over a real deployment: before each request it observes (monitor
// estimates, the link's true bandwidth when emulated), asks the policy, swaps the plan
// (checked by the deployment), runs, and feeds the timings back to the monitor; probes
// the link when the policy plans on estimates and the plan sent nothing. `adaptive`
// gives the estimation and probing settings (initial bandwidth, rtt, probes, window,
// react_to_drops, hysteresis of the drop rule).
class Controller {
 public:
  // Builds the deployment (DeploymentOptions) and the monitor; throws what they throw
  // (InvalidArgument naming the option).
  Controller(Model model, plan::CostModel cost_model, runtime::DeploymentOptions options,
             std::shared_ptr<Policy> policy, AdaptiveOptions adaptive = {});
  ~Controller();
  // One request: observe, decide, swap the plan, run, feed back; the outputs as Model::run.
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs);
  // The app's memory shrank (or grew): re-plan under this budget before the next request.
  void set_memory_budget(double device_memory_bytes);
  // The machine the device computes on changed (the app knows: it started a thread pool, a video
  // encoder runs beside it): threads and background load (cores kept busy by other work) from the
  // next request on. nullopt: not declared (threads: the process's intra-op threads, read before
  // every request; load: inferred from the measured slowdown with a predictor, else the profiled
  // one). InvalidArgument for threads < 1 or a negative or non-finite load.
  void set_machine_state(std::optional<int> threads, std::optional<double> background_load);
  // Thread-safe (run() from one thread, these from others): they return copies.
  std::vector<RequestRecord> timeline() const;
  // A copy of the placement in use.
  std::vector<int> placement() const;
  // A copy of the monitor (its estimates now).
  Monitor monitor() const;
  runtime::Deployment& deployment();  // the underlying deployment (its own calls are thread-safe)
  // Breakpoints (Mbit/s) of the parametric table in use (empty for other planners).
  std::vector<double> breakpoints() const;
  // The policy it runs (shared with the caller who made it).
  Policy& policy();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The adaptive policy (make_adaptive_policy) under a Controller: tessera's adaptive deployment.
class AdaptiveDeployment : public Controller {
 public:
  // Controller(model, cost_model, options, make_adaptive_policy(cost_model, adaptive), adaptive).
  AdaptiveDeployment(Model model, plan::CostModel cost_model, runtime::DeploymentOptions options,
                     AdaptiveOptions adaptive = {});
};

}  // namespace tessera::adapt
