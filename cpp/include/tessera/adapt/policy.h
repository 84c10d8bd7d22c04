// tessera/adapt/policy.h -- one interface for every way of choosing a plan per request.
//
//   auto policy = adapt::make_adaptive_policy(cost_model, {.planner = "parametric"});
//   adapt::Controller c(model, cost_model, deployment_options, policy);
//   for (...) y = c.run({frame});       // decide -> swap the plan -> run -> observe
//   c.timeline();                       // one RequestRecord per request, same for every policy
//
// A Policy sees an Observation before each request (the monitor's estimates, and
// for oracles the link's true bandwidth) and returns a Decision: the placement to run,
// the plan's id and predicted latency. Policies are plain C++ over the cost model:
// the live Controller runs them over a real deployment; a simulator can run the same
// objects over the cost model alone. Static plans, the oracle (the parametric plan for
// the true bandwidth), re-planning with any planner (Neurosurgeon's chain, min-cut,
// gads) and tessera's adaptive policy (parametric table + hysteresis) are policies;
// energy and variant controllers are meant to be more.
#pragma once

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "tessera/adapt/monitor.h"
#include "tessera/plan/cost_model.h"
#include "tessera/plan/energy.h"
#include "tessera/plan/plan.h"
#include "tessera/transport/link.h"

namespace tessera::adapt {

// How the adaptive policy estimates, plans and re-plans (make_adaptive_policy, Controller).
struct AdaptiveOptions {
  std::string planner = "parametric";  // parametric | mincut | compressed | chain | gads
  double hysteresis = 0.1;             // stay while est in [lo / (1+h), hi * (1+h)]; 0.1: chosen by the simulator
  double initial_bandwidth_mbps = 0;   // 0: probe the link before the first request
  double rtt_ms = -1;                  // < 0: measure with small probes
  int probe_every = 1;                 // requests without a transfer between probes
  double probe_ms = 30;                // probe size: about this long at the current estimate
  bool react_to_drops = true;          // a last sample below the median by > hysteresis is used at once
  double device_memory_bytes = std::numeric_limits<double>::infinity();  // budget for parameters, bytes
  double load_tolerance = 0.05;        // relative server- or device-load change that rebuilds the table
  // A latency requirement (ms, the plan's predicted latency): a plan that breaks it hands over to
  // gads under it; when no plan meets it, the fastest plan runs and the record says so.
  double max_latency_ms = std::numeric_limits<double>::infinity();
  // > 0: before each request the device memory budget is this fraction of the memory free on
  // the machine (Monitor::free_memory_bytes: MemAvailable, or the cgroup's limit minus its use
  // when lower), capped by device_memory_bytes and set_memory_budget.
  double free_memory_fraction = 0;
  MonitorOptions monitor;  // the bandwidth monitor's window and filters
};

// What a policy sees before request `index`.
struct Observation {
  int index = 0;               // request number, from 0
  double link_time_s = 0;      // link clock (trace time); 0 without an emulated link
  double true_bandwidth = 0;   // Mbit/s of the emulated link now (0 without one): for oracles only
  double est_bandwidth = 0;    // the controller's estimate (Mbit/s)
  double rtt_ms = 0;           // the monitor's round trip
  double server_load = 1;      // measured / predicted server compute
  double device_load = 1;      // measured / predicted device compute
  double memory_budget_bytes = std::numeric_limits<double>::infinity();  // budget for parameters, bytes
  bool replan = false;         // something outside the estimates changed (a new memory budget)
  std::vector<int> current;    // the placement in use
};

// What a policy chose for one request.
struct Decision {
  std::vector<int> placement;  // one target per atom (0 = device, 1 = server)
  int plan_id = -1;            // a parametric segment, or -1
  double predicted_ms = 0;     // the plan's predicted latency in the observed context
  // Explanations: the device atoms of the plan the estimate alone would choose (-1: the
  // policy does not plan on estimates), and why the chosen plan differs from it or
  // changed ("" when it is that plan and nothing else happened).
  int estimate_device_atoms = -1;
  std::string why;  // why it differs from the estimate's plan, or changed ("" if neither)
  // Operating point (energy policies): the device's clock and the radio's transmit power (0: not
  // chosen), emulated as a device slowdown x device_time_factor and an uplink rate x uplink_rate_factor.
  double frequency_mhz = 0, tx_power_mw = 0;
  double device_time_factor = 1, uplink_rate_factor = 1;  // device time x, uplink rate x (1: unchanged)
};

// What a request cost as the device measured it (the controller fills it from the deployment's timeline).
struct Measured {
  double device_ms = 0;             // compute here (emulated speed)
  double server_ms = 0, queue_ms = 0;   // the server's compute and queue wait (Reply), ms
  double up_bytes = 0, down_bytes = 0;  // wire bytes sent and received
  int remote_blocks = 0;            // round trips to the server
  double bandwidth_mbps = 0;        // the link's bandwidth (the emulated link's true one, else the estimate)
  double uplink_mbps = 0;           // the uplink's rate at the chosen transmit power (0: not known)
  double rtt_ms = 0;                // the monitor's round trip, ms
};

// One request as the controller saw it: the same record for every policy.
struct RequestRecord {
  int index = 0;              // request number, from 0
  double link_time_s = 0;     // link clock at the request (trace time)
  double est_bandwidth = 0;   // Mbit/s used for the decision
  double true_bandwidth = 0;  // Mbit/s of the emulated link at the request (0 without a link)
  int plan_id = -1;           // parametric segment (or -1)
  int device_atoms = 0;       // atoms on the device in the plan used
  double device_param_bytes = 0;  // weights the plan used keeps on the device
  bool switched = false;      // the plan changed before this request
  double decide_us = 0;       // time spent deciding
  double total_ms = 0, device_ms = 0, transfer_ms = 0, server_ms = 0;  // ms: end to end, device, link, server
  double queue_ms = 0;        // waits for a server worker (counted as server load)
  double predicted_ms = 0;    // the plan's predicted latency at the estimate
  bool fallback = false;      // some block planned remote ran on the device
  bool probed = false;        // the link was probed after this request
  int server = -1;            // the server it went to (Deployment::servers(); -1: none)
  bool busy = false;          // a server answered Busy (the block ran on the device)
  double est_load = 1;         // server load estimate after the request
  double est_device_load = 1;  // device load estimate after the request
  int estimate_device_atoms = -1;  // device atoms of the plan the estimate alone would choose (-1: n/a)
  std::string why;             // the policy's reason when its plan is not that one, or changed
  // Energy policies: the operating point, the request's energy by part (mJ, from what was measured)
  // and the virtual energy queue before the request; 0 otherwise.
  double frequency_mhz = 0, tx_power_mw = 0, tx_rate_mbps = 0;
  double energy_mj = 0, compute_mj = 0, tx_mj = 0, rx_mj = 0, idle_mj = 0;  // mJ: total, then by part
  double energy_queue = 0;        // CutEdge's virtual energy queue Q before the request, mJ
  std::string frequency_applied;  // "cpufreq" (set for real), "emulated (why)", or "" (no clock chosen)
};

// Chooses the plan of each request (above). Called by one controller, one request at a time:
// implementations need not be thread-safe.
class Policy {
 public:
  virtual ~Policy() = default;
  // The policy's name in records and reports ("adaptive", "oracle", "static", ...).
  virtual std::string name() const = 0;
  // The placement for the next request, given what is observed now.
  virtual Decision decide(const Observation& obs) = 0;
  // True if the controller should measure the link for it (probes before the first
  // request and after requests that sent nothing): policies that plan on estimates.
  virtual bool uses_estimates() const { return false; }
  // Breakpoints (Mbit/s) of a parametric table in use (empty otherwise).
  virtual std::vector<double> breakpoints() const { return {}; }
  // After the request: what it cost; a policy may learn from it and annotate its record (energy).
  virtual void observe(const Measured& /*measured*/, RequestRecord& /*record*/) {}
  // The uplink's rate at a transmit power relative to the rate at max power, on a link of this
  // bandwidth (what an emulated link applies for the true channel); 1 for policies without a radio.
  virtual double uplink_rate_factor(double /*tx_power_mw*/, double /*bandwidth_mbps*/) const { return 1; }
};

// The same plan for every request ("device_only", "server_only", "static", ...).
std::shared_ptr<Policy> make_static_policy(std::string name, std::vector<int> placement);
// The optimal parametric plan for the link's TRUE bandwidth at each request (loads 1,
// the given rtt): the best any policy planning on this cost model could do.
std::shared_ptr<Policy> make_oracle_policy(const plan::CostModel& cm, double rtt_ms);
// The same oracle told the bandwidth `lag_s` earlier on the same trace (the link's bandwidth
// at link_time_s - lag_s): what a policy that knew the previous request's bandwidth exactly
// reaches, the ceiling of any policy planning on past measurements alone.
std::shared_ptr<Policy> make_lagged_oracle_policy(const plan::CostModel& cm, double rtt_ms,
                                                  const transport::LinkSpec& link, double lag_s);
// tessera's adaptive policy: with planner "parametric", every optimal plan over the
// bandwidth range precomputed, the plan kept while the estimate stays in its validity
// interval widened by the hysteresis, a lookup otherwise, the table rebuilt when a load
// moves beyond load_tolerance; other planners re-plan on every request (chain =
// Neurosurgeon). A memory budget the plan breaks hands over to gads under it.
std::shared_ptr<Policy> make_adaptive_policy(const plan::CostModel& cm, const AdaptiveOptions& options);

// CutEdge's controller as a policy (plan::EnergyController): per request the (split, clock,
// transmit power) minimising V x latency + Q x energy under the deadline, at the estimated
// bandwidth; after it, the energy of what was measured (device ms at that clock's power, bytes
// over the emulated rates at the radio's power, waits at idle power) feeds the virtual queue.
std::shared_ptr<Policy> make_energy_policy(const plan::CostModel& cm, const plan::PowerModel& power,
                                           const plan::ControllerOptions& options);

// Fills what a record says of a decision: plan id, prediction, explanation, and the device's
// share of the placement (atoms, weights). Shared by the live Controller and the simulator.
void record_decision(RequestRecord& r, const Decision& d, const AtomDag& dag);

// The bandwidth estimate a controller plans with: the median of the monitor's window, but
// a last sample below it by more than the hysteresis at once (react_to_drops): staying
// offloaded through a drop costs up to bytes / bandwidth (unbounded), staying on the
// device through a rise only the difference of two bounded plans, so drops are believed
// before rises. initial_bandwidth_mbps (or 1) before any sample. Shared by the live
// Controller and the simulator.
double estimate_bandwidth(const Monitor& monitor, const AdaptiveOptions& options);

}  // namespace tessera::adapt
