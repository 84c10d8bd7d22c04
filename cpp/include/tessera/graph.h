// tessera/graph.h -- a TorchScript model's operator graph (torch-free ids and shapes), LibTorch
// tensors in tessera's terms, kernel threads. graph/extract.h (the extractor, torch/script.h) is
// left out: atoms/model.h is how a product cuts a model.
//
// The public API of this layer: one include for a C++ product (tessera/tessera.h includes
// every layer). Layers and their rules: docs/ARCHITECTURE.md.
#pragma once

#include "tessera/graph/op_graph.h"
#include "tessera/graph/tensor.h"
#include "tessera/graph/threads.h"
