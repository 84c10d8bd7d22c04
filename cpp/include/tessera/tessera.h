// tessera/tessera.h -- everything a C++ product needs: #include <tessera/tessera.h>
//
// One umbrella header per layer, from the bottom up (docs/ARCHITECTURE.md). A product that
// needs one layer includes only that one (tessera/plan.h and tessera/predict.h are torch-free:
// planning needs no LibTorch). The names are Python's: tessera::Model is ts.Model,
// tessera::plan::plan_* are ts.plan(...) and ts.Planner, tessera::runtime::Server is ts.Server.
#pragma once

#include "tessera/core.h"
#include "tessera/graph.h"
#include "tessera/atoms.h"
#include "tessera/plan.h"
#include "tessera/predict.h"
#include "tessera/profile.h"
#include "tessera/transport.h"
#include "tessera/runtime.h"
#include "tessera/adapt.h"
