// tessera/adapt/cpufreq.h -- setting the device's clock for real where the kernel lets us. torch-free.
//
// On a device whose cpufreq is writable (the userspace governor, write access to
// cpu*/cpufreq/scaling_setspeed), an energy policy's chosen frequency is set there instead of
// emulated; elsewhere (this VM: no cpufreq at all) the controller emulates it as a device
// slowdown. The sysfs root is /sys/devices/system/cpu, or $TESSERA_CPUFREQ_ROOT (tests).
#pragma once

#include <string>

namespace tessera::adapt {

// Writes `mhz` (as kHz) to every cpu*/cpufreq/scaling_setspeed under the root. Returns "" when it
// was set on at least one CPU, else why not ("no cpufreq at /sys/...", "governor is schedutil, not
// userspace", "cannot write ...: Permission denied").
std::string set_cpu_frequency_mhz(double mhz);
// Why a frequency would be emulated here ("" when set_cpu_frequency_mhz can set it).
std::string cpufreq_unavailable();

}  // namespace tessera::adapt
