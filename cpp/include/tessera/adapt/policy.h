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

#include <functional>
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

// The machine the device's compute runs on: intra-op threads and background load (CPU cores
// kept busy by other work). adapt's copy of predict::MachineState: the adapt layer does not
// include predict, the app (or the Python package) wires a predictor in (DeviceCostPredictor).
struct DeviceState {
  int threads = 1;             // intra-op threads, >= 1
  double background_load = 0;  // CPU cores kept busy by other work, >= 0
};

// AdaMEC's runtime latency predictor in the loop: the device's per-atom costs (ms, one per atom
// in atom order) in a machine state the cost model was not profiled in. A C++ app wires a
// predict::Predictor in with one lambda:
//   opts.predictor = {p->kind(), [p, &model](const adapt::DeviceState& s) {
//     return predict::predict_atoms(*p, model.graph(), model.atoms(), model.hash(),
//                                   {s.threads, s.background_load}).ms; }};
// Called from the request loop (between requests, once per new state: answers are cached).
struct DeviceCostPredictor {
  std::string name;  // the predictor's kind, named in records ("xgboost")
  std::function<std::vector<double>(const DeviceState&)> predict;  // empty: no predictor
  // True when a predict function is set.
  explicit operator bool() const { return static_cast<bool>(predict); }
};

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
  // The machine state the cost model's device costs were profiled in (threads 0: the threads of
  // the first request). A state within state_tolerance cores of load and with the same threads
  // counts as profiled: its costs are the cost model's (times the measured device load).
  DeviceState profiled{0, 0.0};
  double state_tolerance = 0.125;  // cores of background load that still count as the same state
  // Costs in states not profiled (another thread count, background load): with a predictor the
  // device's costs there are predicted, anchored to the profile (per atom: the profiled cost x the
  // predictor's ratio between that state and the profiled one, so a predictor trained on another
  // machine or a device emulated slower is not off by their factor), and still corrected by the
  // measured device load; without one the profiled costs are scaled by the measured load, as before.
  DeviceCostPredictor predictor;
  // With a predictor and no background load declared by the app: the measured device slowdown
  // (measured / profiled compute) is mapped to the background load whose predicted slowdown is
  // closest, on a grid of load_step cores in [0, max_background_load], and costs are predicted there.
  bool infer_background_load = true;
  double max_background_load = 4;  // the inferred load's upper end, cores
  double load_step = 0.25;         // the inferred load's grid, cores
};

// Checks what make_adaptive_policy and the Controller check of the options' machine-state part
// (profiled state, state_tolerance, max_background_load, load_step); InvalidArgument naming the field.
void check_device_options(const AdaptiveOptions& options);
// InvalidArgument naming the field: threads < 1, background_load < 0 or not finite.
void check_device_state(const DeviceState& state);

// What a policy sees before request `index`.
struct Observation {
  int index = 0;               // request number, from 0
  double link_time_s = 0;      // link clock (trace time); 0 without an emulated link
  double true_bandwidth = 0;   // Mbit/s of the emulated link now (0 without one): for oracles only
  double est_bandwidth = 0;    // the controller's estimate (Mbit/s)
  double rtt_ms = 0;           // the monitor's round trip
  double server_load = 1;      // measured / predicted server compute
  double device_load = 1;      // measured / predicted device compute (against Policy::device_costs())
  int device_samples = 0;      // samples behind device_load since its costs last changed (0: not measured)
  double memory_budget_bytes = std::numeric_limits<double>::infinity();  // budget for parameters, bytes
  bool replan = false;         // something outside the estimates changed (a new memory budget)
  std::vector<int> current;    // the placement in use
  // The machine the device runs on now: threads as the app declared them (set_machine_state) or
  // the process's intra-op threads; background_load as declared, or -1 when nobody declared one
  // (the policy infers it or assumes the profiled one).
  DeviceState device_state{1, -1.0};
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
  // Where the device costs it planned with came from: "profiled", "scaled x1.31",
  // "predicted (xgboost, threads=2, load=0.5)" (x1.12 when the measured load corrects it), or
  // "" (a policy that does not plan on device costs: static, oracle).
  std::string cost_source;
  DeviceState device_state{0, 0.0};  // the machine state those costs describe (threads 0: not said)
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
  // Where the device costs of the decision came from (Decision::cost_source): "profiled",
  // "scaled x1.31", "predicted (xgboost, threads=2, load=0.5)", or "" (static, oracle).
  std::string cost_source;
  int device_threads = 0;             // the machine state those costs describe: threads (0: not said)
  double device_background_load = 0;  // ... and background load, cores
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
  // The per-atom device costs (ms, load 1) the last decision planned with, or nullptr: the cost
  // model's. The Controller measures the device's load against these.
  virtual const std::vector<double>* device_costs() const { return nullptr; }
  // Increases whenever device_costs() changes basis (profiled -> predicted, another state): the
  // Controller then carries the measured device load over (device_load_carry) or restarts it.
  virtual int device_costs_version() const { return 0; }
  // After a change of device_costs_version(): the factor that re-expresses the device load measured
  // so far against the new costs (> 0: the change came from that measurement, an inferred load), or
  // 0: measure afresh (the machine itself changed: a declared state, another thread count).
  virtual double device_load_carry() const { return 0; }
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
// Neurosurgeon). A memory budget the plan breaks hands over to gads under it. In a machine state
// the cost model was not profiled in (Observation::device_state against options.profiled) it plans
// on options.predictor's device costs for that state (see AdaptiveOptions::predictor), and
// every Decision says where its device costs came from (cost_source).
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
