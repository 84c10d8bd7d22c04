// tessera/runtime/pipeline.h -- the device side of an N-node pipeline: stream inputs
// through a device and several servers, stages overlapping (issue 14, the runtime).
//
//   PipelineOptions o;  o.endpoints = {"", "tcp://edge-a:5555", "tcp://edge-b:5555"};  // per node
//   o.in_flight = 4;
//   Pipeline pipe(model, plan, network, o);         // plan::plan_pipeline_dp(...) over `network`
//   auto ys = pipe.map(frames);                     // ys[i] == model.run(frames[i])
//   pipe.stats();                                   // per stage: compute, queue, link; fps
//
// The device runs the first stage (node 0) and sends the values live after it to the
// second stage's server in a Forward (wire v2) that carries the whole route; each
// server runs its stage and forwards the live values straight to the next stage's
// server; model outputs go from the stage that made them to the device's reply
// endpoint (a ROUTER this object binds). Up to `in_flight` requests travel at once, so
// the stages work on different inputs at the same time.
//
// Intra-layer splits: a stage with helpers (plan::Stage::helpers) is cut into row tiles
// (plan::stage_tiles); its server sends the helpers their rows and gathers theirs.
//
// Failures: a stage that fails, or that cannot reach the next stage, sends the device
// the values live at that point and the device runs what is left; a request not
// complete `timeout_ms` after it left (a server killed mid-stream) is run here from its
// inputs; results that arrive for a request already answered are dropped (counted as
// late). No request is lost or answered twice. After any failure, requests run here
// for retry_ms before the servers are tried again.
//
// Emulation on one machine: node speeds are emulated by `slowdown` per node (the
// device's compute is stretched here; servers stretch theirs when emulation is
// Sleep), links by the network's bandwidth and rtt per hop (slept at each sender
// when Sleep; the device's uplink is its own resource: a Forward crosses it while the device
// computes the next request's stage 0). Either way the stats report the accounted figures: each stage's
// thread CPU time x its node's slowdown and each hop's wire bytes over its link, as if
// every node and link were its own machine; and the wall-clock frames per second on
// this machine. Not thread-safe: one caller at a time (calls take a lock).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tessera/atoms/model.h"
#include "tessera/plan/pipeline.h"
#include "tessera/transport/link.h"

namespace tessera::runtime {

// The model's row chains for the planners (plan::PipelineTiling): maximal runs of consecutive
// atoms that atoms/rows.h accepts as one chain (a stage inside one may be split by rows).
plan::PipelineTiling pipeline_tiling(const Model& model, int max_tiles = 2);

// How a Pipeline reaches its servers, waits, recovers and emulates nodes.
struct PipelineOptions {
  std::vector<std::string> endpoints;            // per network node; [0] (the device) unused
  std::string reply_bind = "tcp://127.0.0.1:*";  // the device's reply endpoint (the last stage connects here)
  std::string reply_advertise;                   // what servers connect to, if not the bound endpoint
  int in_flight = 4;                             // requests travelling at once
  int timeout_ms = 5000;                         // a request not complete this long after it left: run here
  int retry_ms = 1000;                           // after a failure, run here this long before trying again
  int send_timeout_ms = 1000;                    // the first server must accept a Forward within this
  // Emulation: per node, how many times slower than this machine (empty = all 1).
  std::vector<double> slowdown;
  transport::Emulation emulation = transport::Emulation::Account;  // Account: computed, not slept
};

// One stage of one request as the device saw it.
struct StageRecord {
  int node = 0;             // index in the network's nodes
  double compute_ms = 0;    // wall time of the stage's block where it ran
  double cpu_ms = 0;        // thread CPU time of the block
  double accounted_ms = 0;  // cpu_ms x the node's slowdown
  double queue_ms = 0;      // waiting for a worker at the server (0 with one worker: not observable)
  double link_in_ms = 0;    // accounted: wire bytes into this stage over the link from the previous stage
  double link_back_ms = 0;  // accounted: wire bytes of its results over its link to the device
  uint64_t bytes_in = 0, bytes_back = 0;  // wire bytes into the stage and of its results back to the device
  bool ran_remote = true;   // false: the device ran it (stage 0, or a fallback)
  // A split stage: its slowest helper (tile server time x the helper's slowdown), its slowest
  // tile link (accounted), and tiles its own node ran because their helper failed or was late.
  double tile_ms = 0, tile_link_ms = 0;
  int tile_fallbacks = 0;  // tiles run here because their helper failed or was late
};

// One request through the pipeline as the device saw it; times in ms.
struct FrameRecord {
  uint64_t request_id = 0;  // the request id its messages carried
  double total_ms = 0;      // wall: from the start of stage 0 to the last result
  bool fallback = false;    // some stage ran on the device instead
  std::string error;        // why
  std::vector<StageRecord> stages;  // one per stage of the plan, in pipeline order
};

// One stage over the frames of the last map(); times in ms.
struct PipelineStageStats {
  std::string node;               // the stage's node's name
  int frames = 0;                 // frames whose stage ran where planned
  double compute_ms = 0;          // median wall
  double cpu_ms = 0;              // median CPU
  double accounted_ms = 0;        // mean accounted compute per frame
  double queue_ms = 0;            // median
  double link_in_ms = 0;          // mean accounted link time into the stage
  double link_back_ms = 0;        // mean accounted link time of its results to the device
  double bytes_in = 0;            // mean
  double tile_ms = 0;             // split stages: mean slowest helper (accounted)
  double tile_link_ms = 0;        // split stages: mean slowest tile link (accounted)
  int tile_fallbacks = 0;         // tiles run by the stage's own node (total)
};

// Throughput and latency of the last map() (or run()); times in ms.
struct PipelineStats {
  // Frames run; of them, those that fell back to the device; Results that came after their
  // frame was done.
  int frames = 0, fallbacks = 0, late = 0;
  std::vector<PipelineStageStats> stages;  // one per stage of the plan
  double wall_fps = 0;            // frames / wall seconds of the last map() on this machine
  double accounted_fps = 0;       // 1000 / the busiest resource's mean ms per frame (stages, links)
  double accounted_bottleneck_ms = 0;  // the busiest resource's mean ms per frame
  std::string bottleneck;         // "stage 2 on edge-b" or "link edge-a -> edge-b"
  double latency_ms_median = 0;   // wall per frame
  // The stats as one JSON object (the field names above).
  std::string to_json() const;
};

// A request finished by the streaming interface (Pipeline::submit / poll).
struct PipelineDone {
  uint64_t ticket = 0;               // what submit() returned
  std::vector<at::Tensor> outputs;   // the model's flattened outputs
  FrameRecord record;                // how the request went
};

// Runs a PipelinePlan for real: stage 0 here, the others on their servers, each server
// forwarding to the next, results back to this device's reply endpoint. Calls take turns.
class Pipeline {
 public:
  // Throws InvalidArgument naming the problem: a plan that is not ok or does not fit the
  // network and model, a server stage on a node without an endpoint, bad options.
  Pipeline(Model model, plan::PipelinePlan plan, plan::PipelineNetwork network, PipelineOptions options);
  ~Pipeline();
  // Moves the pipeline; the moved-from one may only be destroyed or assigned.
  Pipeline(Pipeline&&) noexcept;
  // Moves the pipeline; the moved-from one may only be destroyed or assigned.
  Pipeline& operator=(Pipeline&&) noexcept;

  // One request alone: map({inputs})[0].
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs);
  // Every frame through the pipeline, up to in_flight at once; outputs in the frames' order.
  std::vector<std::vector<at::Tensor>> map(const std::vector<std::vector<at::Tensor>>& frames);
  // Streaming, for inputs that arrive over time (adapt::StreamController): submit() runs
  // stage 0 here now and returns a ticket; the request completes in a later poll(), or is
  // complete at once when it ran here (a fallback, or no server stage). poll() waits up to
  // timeout_ms for at least one completion (0: only what is ready) and returns every request
  // completed since the last call. The caller keeps in_flight() at what it wants.
  uint64_t submit(const std::vector<at::Tensor>& inputs);
  // The requests completed since the last call, waiting up to timeout_ms (ms) for one.
  std::vector<PipelineDone> poll(int timeout_ms);
  int in_flight() const;                       // submitted and not yet returned by poll()
  PipelineStats stats() const;                 // over the frames of the last map() (or run)
  std::vector<FrameRecord> records() const;    // of the last map(), in frame order
  // The endpoint servers send Results to (resolved: "tcp://127.0.0.1:40213").
  std::string reply_endpoint() const;
  // The plan it runs.
  const plan::PipelinePlan& plan() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::runtime
