// transport/link.cpp -- the emulated link (see tessera/transport/link.h).
#include "tessera/transport/link.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "tessera/core/error.h"

namespace tessera::transport {

std::vector<std::pair<double, double>> read_trace(const std::string& path) {
  std::ifstream in(path);
  TESSERA_CHECK(in.good(), NotFound, "cannot read bandwidth trace {}", path);
  std::vector<std::pair<double, double>> out;
  std::string line;
  int no = 0;
  while (std::getline(in, line)) {
    ++no;
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream ss(line);
    double t, bw;
    if (!(ss >> t)) continue;  // blank
    TESSERA_CHECK(static_cast<bool>(ss >> bw), InvalidArgument, "{}:{}: expected 'time_s bandwidth_mbps'", path, no);
    TESSERA_CHECK(std::isfinite(t) && std::isfinite(bw) && bw >= 0, InvalidArgument,
                  "{}:{}: bad sample '{}'", path, no, line);
    TESSERA_CHECK(out.empty() || t > out.back().first, InvalidArgument, "{}:{}: time {} does not increase", path, no,
                  t);
    out.emplace_back(t, bw);
  }
  TESSERA_CHECK(!out.empty(), InvalidArgument, "bandwidth trace {} has no samples", path);
  // times from 0
  const double t0 = out.front().first;
  for (auto& s : out) s.first -= t0;
  return out;
}

Link::Link(LinkSpec spec) : spec_(std::move(spec)), start_(std::chrono::steady_clock::now()) {
  TESSERA_CHECK(!spec_.trace.empty() || spec_.bandwidth_mbps > 0, InvalidArgument,
                "link needs bandwidth_mbps > 0 or a trace (got bandwidth {})", spec_.bandwidth_mbps);
  TESSERA_CHECK(spec_.rtt_ms >= 0 && std::isfinite(spec_.rtt_ms), InvalidArgument, "rtt_ms must be >= 0, got {}",
                spec_.rtt_ms);
  TESSERA_CHECK(spec_.time_scale > 0, InvalidArgument, "time_scale must be > 0, got {}", spec_.time_scale);
  TESSERA_CHECK(spec_.burst_bytes >= 0, InvalidArgument, "burst_bytes must be >= 0, got {}", spec_.burst_bytes);
  TESSERA_CHECK(spec_.min_bandwidth_mbps > 0, InvalidArgument, "min_bandwidth_mbps must be > 0");
  for (size_t i = 1; i < spec_.trace.size(); ++i)
    TESSERA_CHECK(spec_.trace[i].first > spec_.trace[i - 1].first, InvalidArgument,
                  "trace times must increase (sample {})", i);
  tokens_ = spec_.burst_bytes;
}

double Link::now_s() const {
  if (virtual_.load(std::memory_order_acquire)) return virtual_t_.load(std::memory_order_relaxed);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count() * spec_.time_scale;
}

void Link::set_virtual_time(double t_s) {
  TESSERA_CHECK(std::isfinite(t_s) && t_s >= 0, InvalidArgument, "link time must be >= 0 s, got {}", t_s);
  std::lock_guard<std::mutex> lock(mu_);
  virtual_t_.store(t_s, std::memory_order_relaxed);
  virtual_.store(true, std::memory_order_release);
}

void Link::use_wall_clock() {
  std::lock_guard<std::mutex> lock(mu_);
  virtual_ = false;
}

double Link::duration_s() const {
  if (spec_.trace.empty()) return 0;
  const auto& tr = spec_.trace;
  // the last sample holds for the mean spacing of the samples
  const double step = tr.size() > 1 ? tr.back().first / static_cast<double>(tr.size() - 1) : 1.0;
  return tr.back().first + step;
}

double Link::bandwidth_at(double t) const {
  if (spec_.trace.empty()) return spec_.bandwidth_mbps;
  const double d = duration_s();
  t = std::fmod(std::max(0.0, t), d);
  const auto& tr = spec_.trace;
  auto it = std::upper_bound(tr.begin(), tr.end(), t, [](double v, const auto& s) { return v < s.first; });
  const double bw = (it == tr.begin() ? tr.front() : *std::prev(it)).second;
  return std::max(bw, spec_.min_bandwidth_mbps);
}

double Link::serialization_ms(double bytes, double t) const {
  if (bytes <= 0) return 0;
  double bits = bytes * 8;
  if (spec_.trace.empty()) return bits / (spec_.bandwidth_mbps * 1e6) * 1e3;
  const double d = duration_s();
  const auto& tr = spec_.trace;
  double elapsed = 0;
  for (int guard = 0; guard < 10'000'000 && bits > 0; ++guard) {
    const double tm = std::fmod(std::max(0.0, t), d);
    auto it = std::upper_bound(tr.begin(), tr.end(), tm, [](double v, const auto& s) { return v < s.first; });
    const double seg_end = it == tr.end() ? d : it->first;
    const double rate = bandwidth_at(tm) * 1e6;  // bit/s
    const double span = std::max(seg_end - tm, 1e-9);
    if (rate * span >= bits) {
      elapsed += bits / rate;
      bits = 0;
    } else {
      bits -= rate * span;
      elapsed += span;
      t += span;
    }
  }
  return elapsed * 1e3;
}

void Link::set_uplink_rate_factor(double factor) {
  TESSERA_CHECK(std::isfinite(factor) && factor > 0, InvalidArgument, "uplink rate factor = {} must be > 0", factor);
  uplink_factor_.store(factor);
}

double Link::transmit(double bytes, bool uplink) {
  double ms;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const double t = now_s();
    // refill the bucket (at the rate of the moment) up to its depth
    if (spec_.burst_bytes > 0) {
      tokens_ = std::min(spec_.burst_bytes, tokens_ + bandwidth_at(t) * 1e6 / 8 * std::max(0.0, t - last_refill_));
    }
    last_refill_ = t;
    double need = bytes;
    const double from_bucket = std::min(tokens_, need);
    tokens_ -= from_bucket;
    need -= from_bucket;
    ms = serialization_ms(need, t) / (uplink ? uplink_factor_.load() : 1.0) + spec_.rtt_ms / 2;
  }
  return ms;
}

double Link::mean_bandwidth() const {
  if (spec_.trace.empty()) return spec_.bandwidth_mbps;
  double sum = 0;
  for (const auto& s : spec_.trace) sum += std::max(s.second, spec_.min_bandwidth_mbps);
  return sum / static_cast<double>(spec_.trace.size());
}

}  // namespace tessera::transport
