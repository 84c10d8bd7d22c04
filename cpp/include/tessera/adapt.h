// tessera/adapt.h -- adapting while running: monitors, policies, the adaptive and stream
// deployments, simulation, DADS's load switch, the device's clock.
//
// The public API of this layer: one include for a C++ product (tessera/tessera.h includes
// every layer). Layers and their rules: docs/ARCHITECTURE.md.
#pragma once

#include "tessera/adapt/monitor.h"
#include "tessera/adapt/policy.h"
#include "tessera/adapt/adaptive.h"
#include "tessera/adapt/stream.h"
#include "tessera/adapt/simulate.h"
#include "tessera/adapt/load_switch.h"
#include "tessera/adapt/cpufreq.h"
