// tessera/runtime/deployment.h -- the device side of a split: run a plan for real.
//
//   DeploymentOptions o;  o.server = "tcp://127.0.0.1:41234";  o.timeout_ms = 500;
//   Deployment dep(model, planner->plan(ctx), o);   // or a placement: plan::from_placement
//   dep.run({x});
//   auto y = dep.run({x});          // same outputs as model.run({x})
//   dep.last_timeline();            // per block: where, compute, transfer, server time
//
// Blocks on target 0 run here in LibTorch; blocks on any other target are sent
// to the server (wire protocol v3, each value with the codec its plan transfer names) and their outputs come back. When the server
// misses the deadline, answers with an error, or cannot be reached, the block
// and the rest run here (atoms load on demand) and the caller still gets the
// correct output; the server is tried again after retry_ms. A server whose queue is
// full answers Busy at once: the block runs here without waiting for the timeout, and
// that server is left alone for busy_retry_ms.
//
// Several servers (`servers`, each able to run every block): each request goes to one,
// chosen by server_policy from what the device measured of each (its queue waits, its
// compute, its link); one that fails is skipped for retry_ms and then probed with a Ping
// (probe_timeout_ms) before a request is trusted to it again.
//
// What runs is a checked plan: every plan handed over (constructor, set_plan,
// set_placement) is checked with plan::validate against the model's atom DAG on two
// targets (0 = this device, 1 = the server) before it is used, and its blocks are
// what run, in its order. Thread-safe (calls take turns on the one channel).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tessera/atoms/model.h"
#include "tessera/plan/plan.h"
#include "tessera/transport/link.h"

namespace tessera::runtime {

// How a Deployment reaches its servers, waits, recovers and emulates a link.
struct DeploymentOptions {
  std::string server;        // ZeroMQ endpoint of the edge server ("" = run everything here)
  int timeout_ms = 1000;     // per remote block: deadline for the reply
  int retry_ms = 1000;       // after a failure, run locally this long before trying the server again
  // CURVE (all three or none): the server's public key, this client's key pair (Z85).
  std::string curve_server_key, curve_public_key, curve_secret_key;
  // Emulation (tests, notebooks, benchmarks): every message to and from the server
  // passes through `link`; local compute is stretched by `device_slowdown` (a
  // device that many times slower than this machine). Sleep waits for real;
  // Account only adds the emulated time to the timeline.
  std::shared_ptr<transport::Link> link;
  double device_slowdown = 1.0;  // >= 1; 1 = this machine's speed
  transport::Emulation emulation = transport::Emulation::Sleep;  // emulated time slept or only accounted
  // Wire codec (core/codec.h: "fp16", "bf16", "int8", "int8_channel", "zstd"; "" = raw) of
  // every value that crosses in plans made from a placement (set_placement). A plan handed
  // over whole says its own codec per transfer (Transfer::codec), which is what runs.
  std::string codec;
  // Several servers: endpoints besides (or instead of) `server`; every one serves the model.
  std::vector<std::string> servers;
  // Which server a request goes to: "best" (the least measured time: queue + compute + link,
  // moving averages; a server not tried, or not tried for 16 requests, is tried), "p2c" (the
  // less loaded by queue wait of two picked at random: Ray Serve's power of two choices),
  // "first" (in order: the others are fail-over only).
  std::string server_policy = "best";
  int busy_retry_ms = 20;       // after a Busy reply, that server is not asked for this long
  int probe_timeout_ms = 100;   // several servers: the Ping that checks a failed one before reuse
  uint64_t seed = 0;            // p2c's random picks
};

// What the device knows of one of its servers.
struct ServerState {
  std::string endpoint;         // ZeroMQ endpoint ("tcp://host:port")
  bool available = true;        // not in a back-off (failure or Busy)
  uint64_t requests = 0;        // requests it was chosen for
  uint64_t failures = 0;        // timeouts, errors, unreachable
  uint64_t busy = 0;            // Busy replies
  double ewma_ms = 0;           // moving average of its remote blocks' round trips per request
  double ewma_queue_ms = 0;     // moving average of its queue waits (Busy: the wait it estimated)
};

// What one block of one request cost.
struct BlockTiming {
  int target = 0;               // planned target
  bool remote = false;          // actually ran on the server
  bool fallback = false;        // planned remote, ran here
  std::vector<int> atoms;       // atom ids of the block, in execution order
  double compute_ms = 0;        // local compute (target 0 or fallback)
  double round_trip_ms = 0;     // send to reply received (remote)
  double server_ms = 0;         // server's compute as reported in the reply
  double queue_ms = 0;          // time the request waited in the server for a worker (reply)
  double transfer_ms = 0;       // round_trip_ms - server_ms - queue_ms: time on the link
  double link_ms = 0;           // of which the emulated link (0 without a Link)
  uint64_t bytes_up = 0, bytes_down = 0;  // wire bytes sent and received for it (0 when local)
  std::string codec_up, codec_down;  // wire codecs of the request's and the reply's tensors ("" = raw)
  std::string error;            // why it fell back
  bool busy = false;            // the server answered Busy (its queue was full)
  double busy_wait_ms = 0;      // the wait that server estimated the request would have had
  int server = -1;              // index of the server asked (servers(), -1: none)
  int batch = 0;                // the dynamic batch it ran in on the server (1 = alone; 0 = not remote)
};

// What one request (run()) cost, block by block; times in ms.
struct Timeline {
  std::vector<BlockTiming> blocks;  // one per block of the plan, in execution order
  double total_ms = 0;          // wall time of run(), from call to outputs
  double device_ms = 0;         // sum of local compute
  double transfer_ms = 0;       // sum of link time
  double server_ms = 0;         // sum of server compute
  double queue_ms = 0;          // sum of waits for a server worker
  bool fallback = false;        // some block planned remote ran here instead
  int server = -1;              // the server this request went to (index into servers(); -1: none)
};

// Runs a checked plan of a model across this device and its servers (above).
class Deployment {
 public:
  // Throws InvalidArgument listing the plan's problems (plan::validate) if it is not valid.
  Deployment(Model model, plan::Plan plan, DeploymentOptions options);
  // The same for a placement (one target per atom): plan::from_placement.
  Deployment(Model model, std::vector<int> placement, DeploymentOptions options);
  ~Deployment();
  // Moves the deployment; the moved-from one may only be destroyed or assigned.
  Deployment(Deployment&&) noexcept;
  // Moves the deployment; the moved-from one may only be destroyed or assigned.
  Deployment& operator=(Deployment&&) noexcept;

  // Runs one request: the same outputs as model().run(inputs) (flattened graph outputs). Inputs
  // are checked against the model's signature (InvalidArgument); a server failure is a fallback here.
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs);
  // Swap the plan between requests (takes effect at the next run()); checked as above.
  // Plans already checked are remembered (per placement), so a switch back costs a lookup.
  void set_plan(plan::Plan plan);
  // set_plan(plan::from_placement(...)) with options().codec on every crossing value.
  void set_placement(const std::vector<int>& placement);
  // The emulated device speed from the next run() on (a clock frequency chosen per request:
  // adapt's energy policy). >= 1.
  void set_device_slowdown(double slowdown);
  // The emulated device slowdown in force (DeploymentOptions::device_slowdown to start).
  double device_slowdown() const;
  // Thread-safe: calls from several threads take turns (one request at a time on
  // the one socket); the accessors return copies.
  std::vector<int> placement() const;
  // A copy of the plan in force.
  plan::Plan plan() const;
  // A copy of the timeline of the last run() (empty before the first).
  Timeline last_timeline() const;
  // Round trip of a Ping; returns the server's counters (JSON) or "" on timeout.
  std::string ping(int timeout_ms = 500);
  // Round trip of tensors through the server and back (transport benchmark).
  std::vector<at::Tensor> echo(const std::vector<at::Tensor>& tensors);
  // Bandwidth/RTT probe: an Echo of `bytes` bytes through the server (and the
  // emulated link, if any). Returns the round trip in ms, or -1 on failure.
  double probe(size_t bytes);
  bool server_available() const;  // false while every server is in its back-off
  // Several servers: the endpoints in order (`server` first), what the device measured of
  // each, and the one the next run() goes to (chosen now by server_policy and kept for that
  // run; -1 when none is available). The adaptive loop plans for that server's load.
  std::vector<std::string> servers() const;
  // What the device measured of each server, in servers() order.
  std::vector<ServerState> server_states() const;
  // The server the next run() goes to (see above); -1 when none is available.
  int select_server();
  // The model it runs (shared with the Model passed in).
  const Model& model() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::runtime
