// tessera/adapt/load_switch.h -- light load or heavy load (DADS): the decision alone, torch-free.
//
//   LoadSwitch sw(latency_plan.latency_ms, throughput_plan.throughput_fps);
//   sw.arrive(t_s);                      // every arrival
//   if (sw.decide(queued) == LoadMode::Throughput) ...   // sw.why() says why
//   sw.served_latency_mode(ms);          // what the latency plan took, measured
//
// Heavy load when requests arrive faster than the latency plan serves them one at a time
// (switch_up x its service rate: measured, the prediction until measured) or when queue_up
// requests wait; light load again below switch_down x that rate with nothing waiting. A
// throughput plan that serves no more than the latency plan is never switched to.
// adapt::StreamController (stream.h) runs it over the two engines.
#pragma once

#include <deque>
#include <string>

namespace tessera::adapt {

// Which plan serves the next request: the latency plan (light load) or the pipelined
// throughput plan (heavy load).
enum class LoadMode { Latency, Throughput };
const char* mode_name(LoadMode mode);  // "latency" | "throughput"

// When a LoadSwitch switches between the latency and the throughput plan.
struct LoadSwitchOptions {
  // "auto" switches; "latency" / "throughput" stay on one plan (the baselines).
  std::string policy = "auto";
  double switch_up = 1.0;    // heavy load: arrival rate > switch_up x the latency plan's service rate
  double switch_down = 0.7;  // light load again: arrival rate < switch_down x it, and nothing waits
  int queue_up = 3;          // heavy load too when this many requests wait
  int rate_window = 8;       // the arrival rate over the last rate_window arrivals
  double service_ewma = 0.3; // weight of each new latency-plan service time in its estimate
};

// The decision, torch-free (the live StreamController and tests drive it).
class LoadSwitch {
 public:
  // latency_ms: the latency plan's predicted service time; throughput_fps: the throughput
  // plan's predicted rate. Throws InvalidArgument naming a bad option or figure.
  LoadSwitch(double latency_ms, double throughput_fps, LoadSwitchOptions options = {});
  void arrive(double t_s);                   // a request arrived at t_s (non-decreasing)
  void served_latency_mode(double service_ms);  // one request served by the latency plan
  // The mode for the next request, `queued` requests waiting (it included). Sets why().
  LoadMode decide(int queued);
  // The mode decide() chose last (Latency to start).
  LoadMode mode() const { return mode_; }
  double arrival_rate() const;               // requests/s over the window (0 before two arrivals)
  // The latency plan's service time estimate, ms (EWMA of served_latency_mode).
  double latency_service_ms() const { return service_ms_; }
  // Requests/s the latency plan serves: 1000 / latency_service_ms().
  double latency_rate() const { return 1000.0 / service_ms_; }
  // The throughput plan's predicted rate, frames/s (as given).
  double throughput_fps() const { return throughput_fps_; }
  // Why decide() chose its mode, one line ("" before the first decide()).
  const std::string& why() const { return why_; }

 private:
  LoadSwitchOptions opt_;
  double service_ms_, throughput_fps_;
  std::deque<double> arrivals_;
  LoadMode mode_ = LoadMode::Latency;
  std::string why_;
};

}  // namespace tessera::adapt
