// tessera/atoms.h -- a model cut once into atoms (files in a store) and combined at run time into
// blocks.
//
// The public API of this layer: one include for a C++ product (tessera/tessera.h includes
// every layer). Layers and their rules: docs/ARCHITECTURE.md.
#pragma once

#include "tessera/atoms/atom.h"
#include "tessera/atoms/manifest.h"
#include "tessera/atoms/rows.h"
#include "tessera/atoms/model.h"
