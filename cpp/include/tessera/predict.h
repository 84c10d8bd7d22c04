// tessera/predict.h -- latency predictors of atoms (lookup, analytic, XGBoost, Python), torch-free.
//
// The public API of this layer: one include for a C++ product (tessera/tessera.h includes
// every layer). Layers and their rules: docs/ARCHITECTURE.md.
#pragma once

#include "tessera/predict/features.h"
#include "tessera/predict/predictor.h"
