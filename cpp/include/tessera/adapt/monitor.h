// tessera/adapt/monitor.h -- what the device learns from its own transfers.
//
// Bandwidth: every remote block gives one sample, bytes (up + down) over the
// time on the link net of the server's compute (reported in the reply) and of
// the round-trip time: Mbit/s = 8 * bytes / (transfer_ms - rtt_ms) / 1e3. The
// estimate is the median of the last `window` samples, so one outlier never
// moves it. RTT: the smallest ping round trip seen. Server load: the ratio of
// the server's reported compute to the cost model's prediction, smoothed
// (EWMA). Device load: the same for the blocks that ran on the device (other
// apps, thermal throttling, or simply a profile taken at another moment).
// torch-free.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <string>

namespace tessera::adapt {

// How a Monitor turns samples into estimates; checked by Monitor's constructor.
struct MonitorOptions {
  int window = 3;              // samples in the median / harmonic mean (3: one outlier never moves the median)
  double min_bytes = 2048;     // smaller transfers say little about bandwidth
  double load_alpha = 0.3;     // EWMA weight of a new load sample (server and device)
  double min_device_ms = 1.0;  // device samples predicted shorter than this are ignored
  // How samples become the estimate: "median" of the window; "harmonic" mean of the window
  // (dominated by the low samples: conservative, as MPC video streaming uses it); "ewma"
  // (ewma_alpha); "kalman" (a random walk of log-bandwidth, kalman_q per sample, measured with
  // noise kalman_r, both in log units squared).
  std::string estimator = "median";
  double ewma_alpha = 0.5;  // "ewma": weight of a new sample, (0, 1]
  double kalman_q = 0.1;   // "kalman": process noise per sample, log units squared
  double kalman_r = 0.05;  // "kalman": measurement noise, log units squared
};

// Link and load estimates from what requests measured. A value: not thread-safe; the
// Controller keeps one and hands out copies.
class Monitor {
 public:
  // Throws InvalidArgument naming the bad option.
  explicit Monitor(MonitorOptions o = {});
  // One transfer: bytes both ways, link time (ms, round trip minus server compute).
  void observe_transfer(double bytes, double transfer_ms);
  // A round trip (ms); the estimate is the least seen (queueing only adds). Bad values ignored.
  void observe_rtt(double rtt_ms);
  // Server's reported ms for a block (plus its queue wait, or the wait a Busy reply
  // estimated) vs what the cost model predicts at load 1; one load per server (index).
  void observe_server(double server_ms, double predicted_ms, int server = 0);
  // Device compute of one request (ms) vs what the cost model predicts at load 1;
  // ignored below min_device_ms of prediction (too short to say anything). The
  // first sample sets the device load, later ones are smoothed (EWMA).
  void observe_device(double device_ms, double predicted_ms);
  std::optional<double> bandwidth_mbps() const;  // the estimator's value; empty until a sample
  // The least round trip seen, ms (0 before a sample).
  double rtt_ms() const { return rtt_ms_; }
  // The load of server `server`: measured / predicted compute, EWMA; 1 until measured.
  double server_load(int server = 0) const;
  // The device's load: measured / predicted compute, EWMA; 1 until measured.
  double device_load() const { return device_load_; }
  // Device samples taken since the start or the last restart_device_load().
  int device_samples() const { return device_samples_; }
  // Forgets the device load (back to 1, no samples): the costs it was measured against changed
  // (the policy now plans with predicted costs); the next sample sets it.
  void restart_device_load();
  // The device load measured so far, re-expressed against other costs: x factor (> 0), samples kept
  // (the costs changed because of what was measured: an inferred background load).
  void rescale_device_load(double factor);
  // Bandwidth samples taken so far.
  int samples() const { return samples_; }
  // The last bandwidth sample, Mbit/s (0 before one).
  double last_sample_mbps() const { return last_; }
  // Free memory of this machine (MemAvailable of /proc/meminfo), bytes; 0 if unknown.
  static double free_memory_bytes();

 private:
  MonitorOptions o_;
  std::deque<double> window_;
  double ewma_ = 0;
  double kalman_mean_ = 0, kalman_var_ = 0;  // of log-bandwidth
  double rtt_ms_ = 0;
  bool have_rtt_ = false;
  std::map<int, double> load_;  // per server; 1 until measured
  double device_load_ = 1.0;
  int device_samples_ = 0;
  int samples_ = 0;
  double last_ = 0;
};

}  // namespace tessera::adapt
