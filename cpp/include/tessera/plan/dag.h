// tessera/plan/dag.h -- the atom DAG as planners see it. The types live in the
// torch-free core (tessera/core/dag.h); the plan layer uses them under the same names.
#pragma once

#include "tessera/core/dag.h"

namespace tessera::plan {

using ::tessera::AtomDag;
using ::tessera::check_placement;
using ::tessera::DagValue;
using ::tessera::kModelInput;
using ::tessera::placement_problem;
using ::tessera::schedule_blocks;
using ::tessera::ScheduledBlock;
// plan::Block was ScheduledBlock's name in the plan layer until 0.2; tessera::Block (atoms/model.h)
// is the executable block. Removed in 0.3.
using Block [[deprecated("tessera::ScheduledBlock (a plan's block); tessera::Block is the executable one")]] =
    ::tessera::ScheduledBlock;

}  // namespace tessera::plan
