// tessera/profile.h -- measuring what each atom costs on this machine, in context.
//
// The public API of this layer: one include for a C++ product (tessera/tessera.h includes
// every layer). Layers and their rules: docs/ARCHITECTURE.md.
#pragma once

#include "tessera/profile/profile.h"
