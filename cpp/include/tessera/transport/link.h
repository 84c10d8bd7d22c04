// tessera/transport/link.h -- an emulated uplink/downlink, in user space.
//
// Link emulation is part of the transport: an EmulatedChannel (channel.h) passes
// every message through a Link. A token bucket whose rate follows a constant or a replayed bandwidth trace
// (one "time_s<TAB>Mbit/s" sample per line; the rate holds until the next
// sample; the trace loops), plus a fixed one-way delay (rtt/2). A Deployment
// with a Link passes every message it sends and receives through transmit(),
// which says how long the emulated link holds it; the Deployment then waits
// that long (Emulation::Sleep) or only adds it to the timeline
// (Emulation::Account, for long trace replays: the transfer over loopback is
// real, the emulated link's extra time is computed, not slept).
// Deterministic and unprivileged. The link clock is wall time since
// construction (times time_scale) or a virtual time the caller sets. torch-free.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace tessera::transport {

// An emulated link: a constant rate or a bandwidth trace, a round trip and a token bucket.
struct LinkSpec {
  double bandwidth_mbps = 0;                        // constant rate (used when trace is empty)
  std::vector<std::pair<double, double>> trace;     // (time s, Mbit/s), time increasing from 0
  double rtt_ms = 0;                                // round trip; each direction waits rtt/2
  double burst_bytes = 0;                           // bucket depth (0: every byte pays the rate)
  double time_scale = 1.0;                          // link seconds per wall second
  double min_bandwidth_mbps = 0.01;                 // trace samples below are clamped to this
  std::string label;                                // "bus.ljansbakken...txt x0.5", for plots
};

// How the time a Link holds a message is spent: slept (Sleep) or only added to the timeline
// (Account: Exchange::link_ms).
enum class Emulation { Sleep, Account };

// Reads a trace file: lines "time_s bandwidth_mbps" (tab or spaces; '#' comments).
// Throws InvalidArgument naming the file and line for a malformed sample.
std::vector<std::pair<double, double>> read_trace(const std::string& path);

// A token-bucket link emulator (above). Thread-safe: transmit() and the clock take a lock.
class Link {
 public:
  // Throws InvalidArgument naming the field: no trace and no rate > 0, rtt < 0, a trace whose
  // times do not increase, time_scale or min_bandwidth_mbps <= 0.
  explicit Link(LinkSpec spec);

  // Link clock (s): virtual time if set, else wall time since construction x time_scale.
  double now_s() const;
  // The link clock follows `t_s` (seconds) from now on, until use_wall_clock().
  void set_virtual_time(double t_s);
  // The link clock is wall time since construction x time_scale again.
  void use_wall_clock();
  // The true bandwidth at link time t (Mbit/s).
  double bandwidth_at(double t_s) const;
  // bandwidth_at(now_s()), Mbit/s.
  double bandwidth_now() const { return bandwidth_at(now_s()); }
  // ms to serialise `bytes` at the trace's rate starting at link time t (no delay, no burst).
  double serialization_ms(double bytes, double t_s) const;
  // Passes one message of `bytes` through the link now: returns the ms the link
  // holds it (token bucket serialisation + rtt/2). Does not sleep. An uplink message's
  // serialisation is divided by the uplink rate factor (a lower transmit power: energy.h).
  double transmit(double bytes, bool uplink = true);
  // The uplink's rate relative to the trace's (1: the trace; 0.5: half as fast), e.g. the
  // Shannon rate of a lower transmit power over the rate at max power. Thread-safe.
  void set_uplink_rate_factor(double factor);
  // The factor set_uplink_rate_factor set (1 by default).
  double uplink_rate_factor() const { return uplink_factor_.load(); }
  // Mean bandwidth over the trace (or the constant rate).
  double mean_bandwidth() const;
  double duration_s() const;  // trace length (0 for a constant link)
  // The spec it was built with.
  const LinkSpec& spec() const { return spec_; }

 private:
  LinkSpec spec_;
  std::chrono::steady_clock::time_point start_;
  std::atomic<bool> virtual_{false};  // read without the lock by now_s()
  std::atomic<double> virtual_t_{0};
  std::atomic<double> uplink_factor_{1.0};
  double tokens_ = 0;       // bytes available in the bucket
  double last_refill_ = 0;  // link time of the last refill
  mutable std::mutex mu_;
};

}  // namespace tessera::transport
