// tessera/atoms/manifest.h -- an atom store's manifest.json <-> the model's metadata, torch-free.
//
// The manifest holds everything about a model but its atoms' TorchScript files:
//
//   format            "tessera-atom-store/1"
//   model_hash        sha256 of the atomized model (64 hex digits)
//   inputs, outputs   value ids of the model's tensor inputs and (flattened) outputs
//   output_structure  how the outputs nest ("0", "T(0,1)", ...)
//   values[i]         name, type, is_tensor, producer (node id, -1 = model input),
//                     consumers (node ids), tensor {shape, dtype, bytes} for tensors
//   nodes[i]          kind, inputs, args, outputs (value ids), helper, atom, scope, rows
//   atoms[i]          id (= i), name, nodes, op_kinds, inputs, outputs (value ids),
//                     output_bytes, param_bytes, file (a plain name inside the store), sha256,
//                     params (trainable stores only: the parameters' names the atom's graph
//                     takes after its inputs; its file holds them as the module's parameters)
//
// open_store (atoms/store.cpp) reads a manifest with parse_manifest and index_atoms and only
// then loads TorchScript files, so a store's whole untrusted metadata path runs here, without
// LibTorch (fuzz/ fuzzes exactly these two functions).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tessera/atoms/atom.h"
#include "tessera/core/version.h"
#include "tessera/core/dag.h"
#include "tessera/graph/op_graph.h"

namespace tessera {

inline constexpr const char* kManifestFormat = kAtomStoreFormat;  // tessera/core/version.h

// What manifest.json holds: the model's hash, its graph and its atoms (not their TorchScript).
struct Manifest {
  std::string model_hash;   // 64 hex digits
  OpGraph graph;            // the operator graph, with shapes and dtypes
  std::vector<Atom> atoms;  // atoms[i].id == i
};

// The manifest's JSON text -> its metadata. Every field is checked for presence and type,
// every id for range (value, node and atom ids, atoms' node lists against the nodes' atoms);
// atom file names must be plain names inside the store. Throws InvalidArgument naming
// `where` (the manifest's path) and the field. `check_atom`, when given, is called for each
// atom once its own fields are checked and before the next atom is read (open_store checks
// that the atom's file exists there); what it throws propagates.
Manifest parse_manifest(const std::string& text, const std::string& where,
                        const std::function<void(const Atom&)>& check_atom = {});

// The manifest's JSON text (what save_store writes; parse_manifest reads it back).
std::string manifest_text(const Manifest& m);

// What the atoms layer derives from the graph and the atoms: the producing atom of each
// value (-1: a model input or a value inside one atom), the AtomDag the planners read
// (checked: AtomDag::validate throws InvalidArgument naming the field) and, per graph value,
// its id in that DAG (-1 if it crosses no atom boundary). The graph and atoms must have
// in-range ids (as parse_manifest leaves them, or as atomize makes them).
struct AtomIndex {
  std::vector<int> value_atom;    // graph value id -> producing atom, or -1
  AtomDag dag;                    // the atom DAG the planners read (validated)
  std::vector<int> dag_value_of;  // graph value id -> DAG value id, or -1
};
// Derives the AtomIndex of a graph and its atoms; throws InvalidArgument naming the field.
AtomIndex index_atoms(const OpGraph& graph, const std::vector<Atom>& atoms);

}  // namespace tessera
