// tessera/runtime.h -- running a split for real: the server, the device's deployment, pipelines
// over several servers.
//
// The public API of this layer: one include for a C++ product (tessera/tessera.h includes
// every layer). Layers and their rules: docs/ARCHITECTURE.md.
#pragma once

#include "tessera/runtime/server.h"
#include "tessera/runtime/deployment.h"
#include "tessera/runtime/pipeline.h"
