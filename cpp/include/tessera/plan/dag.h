// tessera/plan/dag.h -- the atom DAG as planners see it. The types live in the
// torch-free core (tessera/core/dag.h); the plan layer uses them under its own
// names (plan::Block is a scheduled block).
#pragma once

#include "tessera/core/dag.h"

namespace tessera::plan {

using ::tessera::AtomDag;
using ::tessera::check_placement;
using ::tessera::DagValue;
using ::tessera::kModelInput;
using ::tessera::placement_problem;
using ::tessera::schedule_blocks;
using Block = ::tessera::ScheduledBlock;

}  // namespace tessera::plan
