// tessera/tessera.h -- everything a C++ product needs: #include <tessera/tessera.h>
#pragma once

#include "tessera/atoms/atom.h"
#include "tessera/atoms/model.h"
#include "tessera/core/dag.h"
#include "tessera/core/dtype.h"
#include "tessera/core/version.h"
#include "tessera/core/error.h"
#include "tessera/core/tensor_info.h"
#include "tessera/graph/op_graph.h"
#include "tessera/plan/cost_model.h"
#include "tessera/plan/dag.h"
#include "tessera/plan/parametric.h"
#include "tessera/plan/plan.h"
#include "tessera/plan/planners.h"
