// tessera/runtime/training.h -- split and pipelined training over atoms (issue 22).
//
//   Model m = Model::load("net.pt", {x}, {.trainable = true});   // parameters stay parameters
//   m.save("store/net");                                        // the server opens the store
//   TrainingServer srv("store/net", {.bind = "tcp://127.0.0.1:*"}); srv.start();
//   SplitTrainer t(m, placement, {.servers = {srv.endpoint()},
//                                 .optimizer = {.kind = "sgd", .lr = 0.05, .momentum = 0.9},
//                                 .micro_batches = 4, .schedule = "1f1b"});
//   StepStats s = t.step({x}, labels);     // loss, per-node forward / backward ms, bytes, events
//   auto weights = t.state_dict();         // the whole model's weights, gathered
//
// Each node (the device, node 0; server k, node k) runs autograd for its own atoms and steps
// its own optimizer over its own parameters: only activations (forward) and their gradients
// (backward) cross, as wire messages of type Train / TrainReply (wire.h). The device drives:
// it holds the inputs and the labels, computes the loss, and relays values between nodes
// (servers do not forward to each other; the star costs one extra hop between two servers).
// With labels_on = "device" the atoms that make the loss's output must run on the device (a
// U-shaped split): neither the labels nor the logits' gradient, from which labels can be
// read, leave it.
//
// Micro-batches: the batch is cut into micro_batches equal parts along dim 0; "gpipe" runs
// every forward, then every backward; "1f1b" keeps at most as many micro-batches in flight as
// the schedule has blocks and runs a backward as soon as one is ready. Remote blocks run on
// their server while the device computes: that overlap is the pipelining. Gradients of the
// micro-batches accumulate; the loss is the batch mean, so any micro-batch count computes the
// same step (up to float summation order).
//
// A step commits in two phases: every node computes its gradients; then each server applies
// its optimizer step (commit, idempotent by version), then the device. A failure before the
// commits (a server killed, a timeout, an error) aborts the step everywhere: no weight moves,
// the step raises (DeadlineError / TransportError / EngineError naming the server) and the
// next step can retry. A commit that fails or whose answer is lost is resolved at the next step
// by asking every server its version: if any stepped, the others and the device commit too; if
// none did, everyone drops the step. After a failed step the trainer opens its sessions again (a
// server that kept running keeps its optimizer's state; one restarted from its store starts
// afresh, and must be at the device's version or be given it with load_state_dict). Training runs the model's eval semantics (batch norm with running
// statistics, no dropout): see TrainBlock.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tessera/atoms/model.h"

namespace tessera::runtime {

// An optimizer every node runs over its own parameters (LibTorch's, so it steps as PyTorch's).
struct OptimizerOptions {
  std::string kind = "sgd";   // "sgd" | "adam"
  double lr = 0.01;           // learning rate (> 0)
  double momentum = 0;        // sgd: momentum in [0, 1)
  double weight_decay = 0;    // L2 penalty (>= 0)
  double beta1 = 0.9, beta2 = 0.999;  // adam: moment decay rates in [0, 1)
  double eps = 1e-8;          // adam: denominator term (> 0)
  // Throws InvalidArgument naming the field, or the unknown kind and the known ones.
  void check() const;
};

// Parameter names -> tensors (a state dict).
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// One node's part of split training: the parameters of its atoms (the model's own tensors,
// made to require grad), their optimizer, and the activations each micro-batch keeps between
// its forward and its backward. Single-threaded; the device and every server hold one.
class TrainingNode {
 public:
  // The node runs `atoms` of a trainable `model` (else InvalidArgument).
  TrainingNode(Model model, std::vector<int> atoms, OptimizerOptions optimizer);
  ~TrainingNode();
  // Moves the node; the moved-from one may only be destroyed or assigned.
  TrainingNode(TrainingNode&&) noexcept;
  // Moves the node; the moved-from one may only be destroyed or assigned.
  TrainingNode& operator=(TrainingNode&&) noexcept;
  // Runs a block (a convex set of this node's atoms) for micro-batch `micro_batch` under
  // autograd; inputs follow the block's inputs (TrainBlock::inputs). Keeps what its backward
  // needs; returns the outputs (detached). keep = false: no autograd and nothing kept (a
  // prediction through the nodes; no backward follows).
  std::vector<at::Tensor> forward(uint64_t micro_batch, const std::vector<int>& block,
                                  const std::vector<at::Tensor>& inputs, bool keep = true);
  // Backward of that forward: gradients of its outputs (undefined = none) -> gradients of its
  // inputs (undefined where none flows: integer inputs, inputs nothing depends on). Accumulates
  // the parameters' gradients and frees the kept activations.
  std::vector<at::Tensor> backward(uint64_t micro_batch, const std::vector<int>& block,
                                   const std::vector<at::Tensor>& grad_outputs);
  // Applies the optimizer step to the accumulated gradients, then zeroes them; version + 1.
  void commit();
  // Drops the accumulated gradients and kept activations (an aborted step); weights unchanged.
  void discard();
  uint64_t version() const;                 // optimizer steps applied (set_version / load_state set it)
  void set_version(uint64_t v);             // the version the weights are known as
  NamedTensors state() const;               // copies of its parameters
  // Keep a copy of each step's gradients at commit (for checks and gradient norms; off by
  // default: it costs one more copy of the parameters).
  void set_keep_gradients(bool keep);
  NamedTensors last_gradients() const;      // the last committed step's gradients (kept ones)
  // Copies the named parameters in (those this node holds; others are ignored); clears the
  // optimizer's state. Throws InvalidArgument naming a parameter of the wrong shape.
  void load_state(const NamedTensors& state);
  const std::vector<int>& atoms() const;    // the atoms it runs, ascending
  std::vector<std::string> param_names() const;  // its parameters' qualified names
  int64_t stored_bytes() const;             // bytes of activations kept for backward now
  int64_t peak_stored_bytes() const;        // the most kept at once since the last commit/discard

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Options of a TrainingServer.
struct TrainingServerOptions {
  std::string bind = "tcp://127.0.0.1:*";  // where it listens (a wildcard port is resolved)
  uint64_t max_message_bytes = 1ull << 32;  // larger messages are refused with an Error
  int threads = 0;                          // LibTorch intra-op threads (0: leave as is)
  bool verbose = false;                     // one log line per command
};

// A server's side of split training: one trainable atom store; a trainer opens a session
// naming the atoms it runs there and the optimizer, then sends forward / backward / commit /
// abort / state / load commands (wire type Train). One session at a time: a new open replaces
// the previous one (its uncommitted gradients are dropped). Malformed messages get an Error
// reply naming what was wrong and the server goes on. The weights' version survives sessions.
class TrainingServer {
 public:
  // Opens the store (checked: trainable, else InvalidArgument naming it).
  TrainingServer(std::string store_dir, TrainingServerOptions options = {});
  ~TrainingServer();  // stops it
  void start();        // binds and serves in a thread of its own
  void stop();         // stops serving and joins
  std::string endpoint() const;  // the bound endpoint (after start)
  // Counters since start.
  struct Stats {
    uint64_t forwards = 0, backwards = 0, commits = 0, aborts = 0, errors = 0;  // commands served
    uint64_t version = 0;  // optimizer steps its weights have had
  };
  Stats stats() const;  // a copy, thread-safe

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// How a SplitTrainer trains.
struct TrainerOptions {
  std::vector<std::string> servers;  // endpoint of node k + 1 (placement value k + 1)
  OptimizerOptions optimizer;        // every node's
  std::string loss = "cross_entropy";  // "cross_entropy" (labels: int64 class ids) | "mse" (labels: the target)
  // "device": the loss's output must be made on the device (a U-shaped split: labels and the
  // logits' gradient stay there) | "server": no such constraint (the loss is still computed on
  // the device, but the logits' gradient crosses to the node that made them).
  std::string labels_on = "device";
  int output = -1;             // which model output the loss reads (-1: the only one)
  int micro_batches = 1;       // >= 1; the batch must divide into them
  std::string schedule = "gpipe";  // "gpipe" | "1f1b"
  // Micro-batches whose activations a step keeps at once, at most (bounds every node's stored
  // activations); 0: the schedule's own (gpipe: all of them; 1f1b: the schedule's block count).
  int max_in_flight = 0;
  int timeout_ms = 30000;      // per answer from a server
  bool keep_gradients = false; // every node keeps its last step's gradients (SplitTrainer::gradients)
};

// One task of a step, as the device saw it (for Gantt charts and accounting).
struct TrainEvent {
  int node = 0;          // 0 device, k server k
  int micro_batch = 0;   // which micro-batch of the step
  int block = 0;         // index in the schedule's blocks; -1 for the loss
  char kind = 'F';       // 'F' forward, 'B' backward, 'L' loss
  double start_ms = 0, end_ms = 0;  // from the step's start, on the device's clock
  double compute_ms = 0;            // the node's own compute time (the server's measurement for a remote task)
  uint64_t bytes_sent = 0, bytes_received = 0;  // on the wire (remote tasks)
};

// What one step did.
struct StepStats {
  double loss = 0;           // the batch's mean loss
  double wall_ms = 0;        // the whole step, commits included
  uint64_t version = 0;      // the weights' version after it
  std::vector<double> forward_ms, backward_ms;  // per node: compute
  uint64_t bytes_sent = 0, bytes_received = 0;  // the device's, on the wire
  int64_t device_peak_stored_bytes = 0;         // activations the device kept at once, at most
  std::vector<int64_t> peak_stored_bytes;       // per node (0 the device): activations kept at once, at most
  std::vector<TrainEvent> events;               // every task, in start order
};

// The device's side: runs its own atoms, drives the servers, owns inputs, labels and loss.
class SplitTrainer {
 public:
  // placement[i]: node of atom i (0 device, k server k = options.servers[k - 1]). Checks the
  // options and the placement (InvalidArgument naming them), opens a session on each server
  // (TransportError / DeadlineError naming an unreachable one; EngineError when a server's
  // weights are of another version than the device's).
  SplitTrainer(Model model, std::vector<int> placement, TrainerOptions options);
  ~SplitTrainer();
  // One training step on a batch: forward and backward over every node, then the commits.
  // labels: cross_entropy: int64 [batch]; mse: the shape of the loss's output. Named errors
  // for wrong shapes / dtypes; on a failure no weight moves and the error names the server.
  StepStats step(const std::vector<at::Tensor>& inputs, const at::Tensor& labels);
  // The loss's output for inputs (no training, no commit): forward through the nodes.
  at::Tensor predict(const std::vector<at::Tensor>& inputs);
  // Every parameter of the model, gathered from the nodes that hold them (copies).
  NamedTensors state_dict();
  // The last step's gradients of every parameter, gathered (needs keep_gradients; else
  // InvalidArgument). A parameter no gradient reached is absent.
  NamedTensors gradients();
  // Sets every node's parameters (and clears the optimizers' state), e.g. to resume.
  void load_state_dict(const NamedTensors& state);
  uint64_t version() const;                  // optimizer steps applied
  const std::vector<int>& placement() const;  // node per atom, as given
  // The schedule's blocks: atom ids and node of each, in execution order.
  std::vector<std::pair<std::vector<int>, int>> blocks() const;

 private:
  NamedTensors gather(const std::string& op);  // "state" | "grads" from every node
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::runtime
