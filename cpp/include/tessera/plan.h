// tessera/plan.h -- planning, torch-free: cost models, contexts and constraints; min-cut, local
// search, parametric tables, pipelines over N nodes, energy, tiling, variants and training.
//
// The public API of this layer: one include for a C++ product (tessera/tessera.h includes
// every layer). Layers and their rules: docs/ARCHITECTURE.md.
#pragma once

#include "tessera/plan/dag.h"
#include "tessera/plan/cost_model.h"
#include "tessera/plan/plan.h"
#include "tessera/plan/mincut.h"
#include "tessera/plan/local_search.h"
#include "tessera/plan/parametric.h"
#include "tessera/plan/planners.h"
#include "tessera/plan/pipeline.h"
#include "tessera/plan/energy.h"
#include "tessera/plan/tiling.h"
#include "tessera/plan/variants.h"
#include "tessera/plan/training.h"
