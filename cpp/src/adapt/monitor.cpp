#include "tessera/adapt/monitor.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "tessera/core/error.h"

namespace tessera::adapt {

Monitor::Monitor(MonitorOptions o) : o_(o) {
  TESSERA_CHECK(o_.window >= 1, InvalidArgument, "monitor window must be >= 1, got {}", o_.window);
  TESSERA_CHECK(o_.load_alpha > 0 && o_.load_alpha <= 1, InvalidArgument, "load_alpha must be in (0, 1]");
  TESSERA_CHECK(o_.estimator == "median" || o_.estimator == "harmonic" || o_.estimator == "ewma" ||
                    o_.estimator == "kalman",
                InvalidArgument, "unknown bandwidth estimator '{}' (median, harmonic, ewma, kalman)", o_.estimator);
  TESSERA_CHECK(o_.ewma_alpha > 0 && o_.ewma_alpha <= 1, InvalidArgument, "ewma_alpha must be in (0, 1], got {}",
                o_.ewma_alpha);
  TESSERA_CHECK(std::isfinite(o_.kalman_q) && o_.kalman_q >= 0 && std::isfinite(o_.kalman_r) && o_.kalman_r > 0,
                InvalidArgument, "kalman_q must be >= 0 and kalman_r > 0, got {} and {}", o_.kalman_q, o_.kalman_r);
}

void Monitor::observe_rtt(double rtt_ms) {
  if (!(rtt_ms >= 0) || !std::isfinite(rtt_ms)) return;
  rtt_ms_ = have_rtt_ ? std::min(rtt_ms_, rtt_ms) : rtt_ms;
  have_rtt_ = true;
}

void Monitor::observe_transfer(double bytes, double transfer_ms) {
  if (bytes < o_.min_bytes || !std::isfinite(transfer_ms)) return;
  // never below 2% of the transfer: an rtt estimate slightly too large must not explode the sample
  const double wire_ms = std::max(transfer_ms - rtt_ms_, 0.02 * transfer_ms);
  if (wire_ms <= 0) return;
  last_ = bytes * 8 / (wire_ms * 1e3);
  window_.push_back(last_);
  while (static_cast<int>(window_.size()) > o_.window) window_.pop_front();
  const double x = std::log(last_);
  if (samples_ == 0) {
    ewma_ = last_;
    kalman_mean_ = x;
    kalman_var_ = o_.kalman_r;
  } else {
    ewma_ = (1 - o_.ewma_alpha) * ewma_ + o_.ewma_alpha * last_;
    kalman_var_ += o_.kalman_q;
    const double gain = kalman_var_ / (kalman_var_ + o_.kalman_r);
    kalman_mean_ += gain * (x - kalman_mean_);
    kalman_var_ *= 1 - gain;
  }
  ++samples_;
}

void Monitor::observe_server(double server_ms, double predicted_ms, int server) {
  if (!(predicted_ms > 0) || !(server_ms > 0) || !std::isfinite(server_ms)) return;
  auto [it, fresh] = load_.emplace(server, 1.0);
  it->second = (1 - o_.load_alpha) * it->second + o_.load_alpha * (server_ms / predicted_ms);
}

double Monitor::server_load(int server) const {
  auto it = load_.find(server);
  return it == load_.end() ? 1.0 : it->second;
}

void Monitor::observe_device(double device_ms, double predicted_ms) {
  if (!(predicted_ms >= o_.min_device_ms) || !(device_ms > 0) || !std::isfinite(device_ms)) return;
  const double x = device_ms / predicted_ms;
  device_load_ = device_samples_++ == 0 ? x : (1 - o_.load_alpha) * device_load_ + o_.load_alpha * x;
}

void Monitor::restart_device_load() {
  device_load_ = 1.0;
  device_samples_ = 0;
}

void Monitor::rescale_device_load(double factor) {
  if (factor > 0 && std::isfinite(factor)) device_load_ *= factor;
}

std::optional<double> Monitor::bandwidth_mbps() const {
  if (window_.empty()) return std::nullopt;
  if (o_.estimator == "ewma") return ewma_;
  if (o_.estimator == "kalman") return std::exp(kalman_mean_);
  if (o_.estimator == "harmonic") {
    double inv = 0;
    for (double v : window_) inv += 1 / v;
    return static_cast<double>(window_.size()) / inv;
  }
  std::vector<double> v(window_.begin(), window_.end());
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  if (v.size() % 2) return v[v.size() / 2];
  const double hi = v[v.size() / 2];
  const double lo = *std::max_element(v.begin(), v.begin() + v.size() / 2);
  return (lo + hi) / 2;
}

namespace {
// A number from a one-line file; nullopt when absent or "max" (no limit).
std::optional<double> read_number(const char* path) {
  std::ifstream in(path);
  std::string v;
  if (!(in >> v) || v == "max") return std::nullopt;
  try {
    return std::stod(v);
  } catch (...) {
    return std::nullopt;
  }
}
}  // namespace

double Monitor::free_memory_bytes() {
  double free = 0;
  {
    std::ifstream in("/proc/meminfo");
    std::string key, unit;
    double kb;
    while (in >> key >> kb >> unit)
      if (key == "MemAvailable:") {
        free = kb * 1024;
        break;
      }
  }
  // A container's limit can be lower than what the machine has free: cgroup v2, then v1.
  for (const auto& [limit, usage] : {std::pair{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
                                     std::pair{"/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                               "/sys/fs/cgroup/memory/memory.usage_in_bytes"}}) {
    const auto l = read_number(limit), u = read_number(usage);
    if (l && u && *l < 1e18) {  // v1 reports "no limit" as a huge number
      const double left = std::max(0.0, *l - *u);
      free = free > 0 ? std::min(free, left) : left;
      break;
    }
  }
  return free;
}

}  // namespace tessera::adapt
