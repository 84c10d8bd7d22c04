// tessera/runtime/server.h -- the edge server: runs blocks of atom stores for devices.
//
//   ServerOptions o;  o.repository = "models/";  o.bind = "tcp://127.0.0.1:*";
//   Server s(o);  s.start();  s.endpoint();   // "tcp://127.0.0.1:41234"
//
// The repository is a directory whose entries are atom stores (written by
// Model::save / `tessera atomize`), each known by its model hash; a directory
// that is itself an atom store is served alone. Atoms load on first use.
// A ROUTER socket faces the devices; one front thread owns it, answers Pings and Echoes
// itself, and puts every other message on a bounded queue that `workers` threads take
// from. A full queue answers a Request at once with Busy (the device runs the block
// itself instead of waiting for its timeout). Dynamic batching (batch_max > 1): Requests
// for the same block with the same input shapes that arrive within batch_delay_us of the
// first are concatenated along dimension 0, run once, and split back to their senders
// (a block is batched when every input and output of it has a batch dimension and a
// first batch's rows equal the rows run alone; otherwise it runs request by request).
// Counters: Ping (JSON), and on HTTP when metrics_port >= 0 (/metrics in Prometheus'
// text format, /healthz, /readyz). Every error is logged with its request id (stderr,
// at most 50 lines a second). Malformed requests, unknown models or
// atoms, and wrong tensor signatures get an Error reply naming what was wrong;
// the server goes on serving. Pipelines (wire v2): a Forward runs one stage of a
// route and sends the live values straight on to the next stage's server; model
// outputs go to the device's reply endpoint; a stage that fails, or a next stage that
// cannot be reached within forward_timeout_ms, sends the device the values live at
// that point so it can run the rest itself. Optional CURVE encryption with an allow-list of
// client public keys (a ZAP handler refuses every other key). torch-free header.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tessera::runtime {

// What a Server serves, where, with how many threads, and its limits.
struct ServerOptions {
  std::string repository;                 // directory of atom stores (or one store)
  std::string bind = "tcp://127.0.0.1:*"; // ZeroMQ endpoint; "*" port = ephemeral
  int workers = 1;                        // threads running blocks
  int intra_op_threads = 1;               // LibTorch threads per process (at::set_num_threads)
  uint64_t max_message_bytes = 1ull << 30;// larger requests are refused
  // CURVE: the server's secret key (Z85, 40 chars); empty = no encryption.
  std::string curve_secret_key;
  // Z85 public keys of clients allowed in (required when CURVE is on).
  std::vector<std::string> allowed_client_keys;
  bool verbose = false;                   // one log line per request on stderr
  // Pipelines: how long sending to the next stage (or to a device's reply endpoint)
  // may wait for it to accept before the stage gives up and hands the rest to the device.
  int forward_timeout_ms = 1000;
  // Keep freed tensors' memory in the heap (graph/threads.h: no page faults per request on
  // large activations; resident memory stays at its peak). Process-wide.
  bool keep_freed_memory = true;
  // Dynamic batching (Triton's semantics): up to batch_max Requests for the same block and
  // input shapes, the first waiting at most batch_delay_us for the others; 1 = off.
  int batch_max = 1;
  int batch_delay_us = 500;  // how long a batch's first Request waits, us
  // Requests waiting for a worker at most; one more is answered with Busy at once. 0 = no bound.
  int max_queue = 256;
  // HTTP counters and health on this TCP port of the bind address's host (0 = an ephemeral
  // port, see metrics_endpoint(); -1 = off).
  int metrics_port = -1;
};

// A server's counters since start() (Ping's JSON, /metrics).
struct ServerStats {
  // Requests taken, Replies sent, Error replies, Replies sent after the request's budget
  // (Header::budget_us), Pings and Echoes answered.
  uint64_t requests = 0, replies = 0, errors = 0, late = 0, pings = 0, echoes = 0;
  uint64_t forwards = 0;        // pipeline stages run (Forward messages taken)
  uint64_t forward_failures = 0;// stages handed back to the device (failed, or the next stage unreachable)
  uint64_t tile_fallbacks = 0;  // tiles of split stages run by the stage's own server (their server failed)
  uint64_t bytes_in = 0, bytes_out = 0;  // wire bytes received and sent
  double busy_ms = 0;           // time workers spent running blocks, ms (summed over workers)
  uint64_t refused_busy = 0;    // Requests answered with Busy (the queue was full)
  uint64_t batches = 0;         // dynamic batches of 2 or more Requests run
  uint64_t batched = 0;         // Requests that ran in those batches
  uint64_t unbatchable = 0;     // blocks found not to batch (run request by request since)
  uint64_t queued = 0;          // messages waiting for a worker now
  uint64_t queue_peak = 0;      // the most that ever waited
  uint64_t workers_busy = 0;    // workers running something now
  // The counters as one JSON object (the field names above).
  std::string to_json() const;
};

// The edge server (above). Not copyable; the destructor stops it.
class Server {
 public:
  // Takes the options; nothing is bound or started until start().
  explicit Server(ServerOptions options);
  ~Server();  // stops
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void start();                     // binds and starts the threads; throws on a bad endpoint or repository
  void stop();                      // stops the threads; idempotent
  // Between start() and stop().
  bool running() const;
  std::string endpoint() const;     // the bound endpoint, with the real port
  // "http://HOST:PORT" of the counters (metrics_port >= 0), "" otherwise.
  std::string metrics_endpoint() const;
  // The counters in Prometheus' text exposition format (what /metrics serves).
  std::string metrics_text() const;
  // A snapshot of the counters.
  ServerStats stats() const;
  std::vector<std::string> models() const;  // model hashes served

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A new CURVE key pair (Z85 strings of 40 characters): {public, secret}.
std::pair<std::string, std::string> curve_keypair();

}  // namespace tessera::runtime
