// tessera/adapt/stream.h -- light load and heavy load (DADS): the latency plan one request at
// a time while it keeps up, the throughput plan with requests in flight when it does not.
//
//   StreamController sc(model, cost_model, {.bandwidth_mbps = 20, .rtt_ms = 20}, deployment_options,
//                        pipeline_options, {.in_flight = 4});
//   auto ys = sc.serve(frames, arrivals_s);  // frame i arrives arrivals_s[i] s after the call
//   sc.records();                            // per request: mode, wait, latency, why the mode
//   sc.stats();                              // served fps, latency percentiles, switches
//
// Two engines over the same server: a runtime::Deployment running the latency-optimal
// two-party plan (min-cut) one request at a time, and a runtime::Pipeline running the
// throughput-optimal two-stage plan (plan_pipeline_dp over {device, server}) with up to
// in_flight requests travelling, the device's next stage 0 overlapping the uplink and the
// server. A LoadSwitch decides between them before every request from the arrival rate
// (over the last arrivals) and the queue: heavy load when requests arrive faster than the
// latency plan serves them (its measured service time, the prediction until measured), back
// to light load when the rate falls below switch_down of it and nothing waits. Requests in
// flight finish on the pipeline before the latency plan takes over; nothing is dropped.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tessera/adapt/load_switch.h"
#include "tessera/plan/cost_model.h"
#include "tessera/plan/pipeline.h"
#include "tessera/plan/plan.h"
#include "tessera/runtime/deployment.h"
#include "tessera/runtime/pipeline.h"

namespace tessera::adapt {

// One request of a serve() run: when it arrived, waited, ran, and which mode served it.
struct StreamRecord {
  int index = 0;           // frame number, from 0
  double arrival_s = 0, start_s = 0, done_s = 0;  // since serve() began
  double wait_ms = 0;      // arrival -> start
  double latency_ms = 0;   // arrival -> outputs here
  double service_ms = 0;   // start -> outputs here
  std::string mode;        // "latency" | "throughput"
  bool switched = false;   // the mode changed for this request
  bool fallback = false;   // some part ran on the device instead of the server
  int queued = 0;          // requests waiting when it was decided (itself included)
  double arrival_rate = 0; // the switch's estimate then (requests/s)
  double latency_rate = 0; // the latency plan's service rate then (requests/s)
  std::string why;         // why that mode
};

// What a serve() run achieved; times in ms, rates in frames/s.
struct StreamStats {
  int frames = 0, fallbacks = 0, switches = 0;  // served; fell back to the device; mode changes
  int latency_frames = 0, throughput_frames = 0;  // frames served by each mode
  double served_fps = 0;        // frames / (last completion - first arrival)
  double steady_fps = 0;        // the completions after the first quarter over their span (no ramp-up)
  double arrival_fps = 0;       // frames / (last arrival - first arrival) x (n-1)/n
  double latency_ms_p50 = 0, latency_ms_p99 = 0, wait_ms_p50 = 0;  // median, 99th percentile
  double latency_plan_ms = 0;   // predicted latency of the latency plan
  double latency_plan_fps = 0;  // 1000 / that
  double throughput_plan_fps = 0;  // predicted rate of the throughput plan
  // The stats as one JSON object (the field names above).
  std::string to_json() const;
};

// The link both plans are made for.
struct StreamContext {
  double bandwidth_mbps = 0;  // the device-server link the plans are made for (> 0)
  double rtt_ms = 0;          // its round trip, ms (>= 0)
};

// Serves a stream of frames with a latency plan (Deployment) under light load and a
// pipelined throughput plan (Pipeline) under heavy load, switched by a LoadSwitch (above).
class StreamController {
 public:
  // Plans both engines from the cost model (compute_ms[0] device, [1] server) for the link;
  // deployment.server must be the server's endpoint (pipeline.endpoints is filled from it).
  // Throws InvalidArgument naming the problem.
  StreamController(Model model, plan::CostModel cost_model, StreamContext context,
                   runtime::DeploymentOptions deployment, runtime::PipelineOptions pipeline,
                   LoadSwitchOptions options = {});
  ~StreamController();
  // Serves frames arriving at arrivals_s (seconds after the call, non-decreasing), in
  // arrival order; returns every frame's outputs, in frame order.
  std::vector<std::vector<at::Tensor>> serve(const std::vector<std::vector<at::Tensor>>& frames,
                                             const std::vector<double>& arrivals_s);
  std::vector<StreamRecord> records() const;  // of the last serve(), in frame order
  // What the last serve() achieved.
  StreamStats stats() const;
  // The latency plan (two targets), as planned at construction.
  const plan::Plan& latency_plan() const;
  // The throughput plan (pipeline stages), as planned at construction.
  const plan::PipelinePlan& throughput_plan() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::adapt
