// tessera/adapt/simulate.h -- policies judged without the machine's noise.
//
//   auto recs = adapt::simulate(cost_model, link_spec, *policy, {.period_s = 3, .rtt_ms = 20});
//
// The same Policy objects the live Controller runs, and the same estimation rule
// (estimate_bandwidth over a Monitor fed by the request's transfers and by probes),
// driven by the cost model and a bandwidth trace instead of real execution: request i
// happens at trace time i * period_s; its latency is the cost model's for the chosen
// plan at the link's true bandwidth then (plan::evaluate: compute x loads + every
// transfer's serialisation + rtt/2), and what the monitor learns is what a live device
// would measure (each remote block's bytes over its link time, the server's and the
// device's compute against the cost model's). Deterministic for a given seed:
// compute jitter and bandwidth-sample noise can be injected on purpose. torch-free.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "tessera/adapt/policy.h"
#include "tessera/plan/cost_model.h"
#include "tessera/transport/link.h"

namespace tessera::adapt {

// The context of a simulated run and the noise its monitor sees; times in trace time.
struct SimulationOptions {
  double period_s = 1.0;       // trace seconds between requests
  int requests = 0;            // 0: one trace length (at least one request)
  double rtt_ms = 0;           // the link's round trip (each transfer pays rtt/2)
  double server_load = 1;      // true multipliers of the cost model's compute
  double device_load = 1;      // true multiplier of the device's compute
  // Contexts that move with time, piecewise constant (time s, value), holding their last value;
  // empty = the constants above / no memory limit. Loads multiply the constants; memory is the
  // device's budget for weights (bytes), as set_memory_budget gives it live.
  std::vector<std::pair<double, double>> server_load_trace, device_load_trace, memory_trace;
  // A live deployment gives up on a remote block whose reply takes longer than timeout_ms (its
  // inputs' transfers, the server's compute, its outputs' transfers back), runs that block and
  // the rest on the device, and then runs every request on the device for retry_ms (trace time)
  // before trying the server again; the simulator does the same. 0: no deadline.
  double timeout_ms = 0;
  double retry_ms = 1000;      // after a fallback, device only this long, ms
  double compute_jitter = 0;   // relative spread of each request's compute (uniform +-), 0 = none
  double sample_noise = 0;     // relative spread of every bandwidth sample the monitor takes
  // Outlying samples: with this probability a sample's transfer looks outlier_factor times faster
  // than it was (a loopback-fast or cached exchange, as seen live); 0 = none.
  double outlier_rate = 0;
  double outlier_factor = 50;  // how much faster an outlying sample looks
  uint64_t seed = 1;           // random seed: the same seed, the same records
  AdaptiveOptions adaptive;    // the estimation and probing settings (as for a Controller)
};

// One policy over one trace; one RequestRecord per request, as the live Controller
// writes them (total_ms is the cost model's latency of the plan at the true context).
std::vector<RequestRecord> simulate(const plan::CostModel& cm, const transport::LinkSpec& link, Policy& policy,
                                    const SimulationOptions& options);

}  // namespace tessera::adapt
