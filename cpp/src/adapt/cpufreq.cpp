// adapt/cpufreq.cpp -- see tessera/adapt/cpufreq.h.
#include "tessera/adapt/cpufreq.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include <fmt/format.h>

namespace tessera::adapt {

namespace fs = std::filesystem;

namespace {
fs::path root() {
  const char* env = std::getenv("TESSERA_CPUFREQ_ROOT");
  return env && *env ? fs::path(env) : fs::path("/sys/devices/system/cpu");
}

// The cpufreq directories of every CPU, or why there are none usable.
std::vector<fs::path> cpus(std::string& why) {
  std::vector<fs::path> out;
  std::error_code ec;
  const fs::path r = root();
  if (!fs::is_directory(r, ec)) {
    why = fmt::format("no cpufreq at {}", r.string());
    return out;
  }
  for (const auto& e : fs::directory_iterator(r, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("cpu", 0) != 0 || name.size() < 4 || name.find_first_not_of("0123456789", 3) != std::string::npos)
      continue;
    if (fs::exists(e.path() / "cpufreq" / "scaling_setspeed", ec)) out.push_back(e.path() / "cpufreq");
  }
  if (out.empty()) {
    why = fmt::format("no cpufreq at {} (no cpu*/cpufreq/scaling_setspeed)", r.string());
    return out;
  }
  std::sort(out.begin(), out.end());
  for (const auto& d : out) {  // every CPU must take a set speed, or the clock is not what we say
    std::ifstream g(d / "scaling_governor");
    std::string governor;
    if (g >> governor && governor != "userspace") {
      why = fmt::format("the cpufreq governor is {}, not userspace", governor);
      out.clear();
      break;
    }
  }
  return out;
}
}  // namespace

std::string cpufreq_unavailable() {
  std::string why;
  const auto dirs = cpus(why);
  if (dirs.empty()) return why;
  std::ofstream probe(dirs.front() / "scaling_setspeed", std::ios::app);
  if (!probe) return fmt::format("cannot write {}: {}", (dirs.front() / "scaling_setspeed").string(),
                                 std::strerror(errno));
  return "";
}

std::string set_cpu_frequency_mhz(double mhz) {
  if (!(std::isfinite(mhz) && mhz > 0)) return fmt::format("frequency {} MHz is not > 0", mhz);
  std::string why;
  const auto dirs = cpus(why);
  if (dirs.empty()) return why;
  int set = 0;
  for (const auto& d : dirs) {
    std::ofstream f(d / "scaling_setspeed", std::ios::trunc);
    if (!f) {
      why = fmt::format("cannot write {}: {}", (d / "scaling_setspeed").string(), std::strerror(errno));
      continue;
    }
    f << static_cast<long long>(std::llround(mhz * 1000)) << "\n";
    f.close();  // sysfs reports a refused value (EINVAL) at the write, which a buffered stream defers to here
    if (!f) {
      why = fmt::format("{} refused {} kHz", (d / "scaling_setspeed").string(), std::llround(mhz * 1000));
      continue;
    }
    ++set;
  }
  return set > 0 ? "" : why;
}

}  // namespace tessera::adapt
