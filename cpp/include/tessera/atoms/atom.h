// tessera/atoms/atom.h -- atoms: the smallest units tessera places and runs.
//
// An atom is one compute operator of the frozen graph plus the non-tensor
// helpers it needs (constants, constant lists, weights), duplicated into each
// atom that uses them. Atom boundaries are tensors only: operators connected by
// a non-tensor value (a list of tensors, an int computed from a shape), or by
// an in-place write that cannot be removed, are merged into one atom, and any
// merge that would break convexity merges the whole cycle. Control flow
// (prim::If / prim::Loop) stays inside one atom. Atoms are numbered in a
// topological order. torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

// One atom: its operators, the tensors it reads and makes, its weights and its file in a store.
struct Atom {
  int id = 0;                       // index in Model::atoms(); atoms are in topological order
  std::string name;                 // first op's output name, e.g. "input.12"
  std::vector<int> nodes;           // OpGraph node ids (compute ops, in order)
  std::vector<std::string> op_kinds;// kinds of those nodes
  std::vector<int> inputs;          // value ids (tensors) read from other atoms / model inputs
  std::vector<int> outputs;         // value ids (tensors) used by other atoms / model outputs
  int64_t output_bytes = 0;         // sum of outputs' bytes
  int64_t param_bytes = 0;          // bytes of the tensor constants (weights) it holds
  // Trainable models only (LoadOptions::trainable): the qualified names of the parameters the
  // atom's graph takes after its inputs ("layer1.0.conv1.weight"), in that order; empty otherwise.
  std::vector<std::string> params;
  std::string file;                 // file name inside an atom store ("atom_0007.pt")
  std::string sha256;               // of that file, once saved
};

}  // namespace tessera
