// runtime/emulation.h -- the runtime's clocks and emulated delays (private to runtime/): what
// the server's stages and the device's pipeline both measure and sleep.
#pragma once

#include <time.h>

#include <chrono>
#include <thread>

namespace tessera::runtime {

// CPU time of the calling thread (ms): a stage's work, blind to other processes on the cores.
inline double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

inline void sleep_ms(double ms) {
  if (ms > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms));
}

// ms to serialise `bytes` at `mbps` (0 when nothing is sent or the link is not emulated).
inline double serialization_ms(double bytes, double mbps) { return mbps > 0 && bytes > 0 ? bytes * 8e-3 / mbps : 0.0; }

// ms an emulated constant link holds a message of `bytes` (serialisation + rtt/2); 0 = not emulated.
inline double link_hold_ms(double bytes, double mbps, double rtt_ms) {
  return mbps > 0 ? serialization_ms(bytes, mbps) + rtt_ms / 2 : 0.0;
}

}  // namespace tessera::runtime
