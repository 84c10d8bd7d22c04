// tessera/profile/profile.h -- measure what every atom of a model costs here.
//
//   CostTable t = profile::profile(model, {x}, {.threads = 2, .repeats = 30});
//   t.atom_ms[a];            // median latency of atom a, ms
//   t.model_ms;              // the whole model (one block of all atoms), ms
//   t.sum_atom_ms();         // what a planner adds up
//
// Timing method (the state an atom runs in)
// -----------------------------------------
// 1. One untimed run of the model as a chain of one-atom blocks captures every
//    value, and builds (and caches) every one-atom block and the whole-model block.
// 2. Each round runs the model twice, interleaved: (a) as the chain of one-atom
//    blocks in topological order, each block timed on its own (steady_clock
//    around the call), its inputs being the tensors the previous blocks just
//    produced (warm caches, the same memory traffic as a real split run); and
//    (b) as one block of all atoms, timed as a whole.
// 3. The first `warmup` rounds are dropped (TorchScript profiles and optimises a
//    graph on its first runs); the rest give per atom the median and the
//    interquartile range (q1, q3) and the same for the whole model.
// A one-atom block pays one TorchScript call (~5-15 us) that the fused whole
// model does not: sum_atom_ms() - model_ms shows it, per model.
//
// Intra-op threads are set with at::set_num_threads(threads) for the run and
// restored afterwards. torch-free header (model.h brings only ATen's Tensor).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tessera/atoms/model.h"

namespace tessera::profile {

struct ProfileOptions {
  int threads = 0;   // intra-op threads; 0 = keep the current setting. 1..hardware threads
  int repeats = 20;  // timed rounds, >= 1
  int warmup = 3;    // untimed rounds before them, >= 0
  double load = 0;   // label only: background load during the run (cores busy elsewhere), >= 0
};

// What a profile measured. Per-atom arrays have num_atoms entries; per-value
// arrays follow OpGraph value ids.
struct CostTable {
  std::string model_hash;
  std::string label;                // free text (model name, machine)
  int threads = 1;                  // intra-op threads used
  int repeats = 0, warmup = 0;
  double load = 0;                  // ProfileOptions::load
  std::vector<double> atom_ms;      // median latency per atom, ms
  std::vector<double> atom_q1_ms;   // first quartile per atom, ms
  std::vector<double> atom_q3_ms;   // third quartile per atom, ms
  std::vector<int64_t> param_bytes; // per atom: bytes of weights it holds
  std::vector<int64_t> value_bytes; // per value id: tensor bytes (0 for non-tensors)
  double model_ms = 0;              // median latency of the whole model (one block), ms
  double model_q1_ms = 0, model_q3_ms = 0;

  int num_atoms() const { return static_cast<int>(atom_ms.size()); }
  double sum_atom_ms() const;
  // A table a person reads: one line per atom (the slowest first when top > 0).
  std::string summary(const std::vector<Atom>& atoms = {}, int top = -1) const;
  // JSON ("tessera-cost-table/1"); from_json throws InvalidArgument naming the field.
  std::string to_json() const;
  static CostTable from_json(const std::string& text);
  void write(const std::string& path) const;        // writes to_json()
  static CostTable read(const std::string& path);   // NotFound / InvalidArgument
};

// Called after each round: done rounds of total (warmup + repeats).
using ProgressFn = std::function<void(int done, int total)>;

// Profiles `model` on `inputs` (checked against the recorded signature).
// Throws InvalidArgument for repeats < 1, warmup < 0, threads < 0 or beyond the
// machine's hardware threads, load < 0.
CostTable profile(const Model& model, const std::vector<at::Tensor>& inputs, const ProfileOptions& options = {},
                  const ProgressFn& progress = {});

}  // namespace tessera::profile
