// tessera/core.h -- torch-free basics: errors, the atom DAG and its block schedule, dtypes, tensor
// descriptions, the wire codecs' table, versions.
//
// The public API of this layer: one include for a C++ product (tessera/tessera.h includes
// every layer). Layers and their rules: docs/ARCHITECTURE.md.
#pragma once

#include "tessera/core/error.h"
#include "tessera/core/expected.h"
#include "tessera/core/version.h"
#include "tessera/core/dtype.h"
#include "tessera/core/tensor_info.h"
#include "tessera/core/dag.h"
#include "tessera/core/codec.h"
#include "tessera/core/files.h"
