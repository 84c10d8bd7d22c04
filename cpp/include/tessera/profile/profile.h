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
// A steady machine (ProfileOptions::settle > 0)
// ---------------------------------------------
// Shared and virtual machines change speed under a running profile: on the 2-vCPU
// VM this was built on, a fixed small CNN flips between ~1.15 and ~1.65 ms for
// seconds to minutes at a time, nothing in the process changing, and models of
// many small operators follow it (mobilenet_v3_small x1.45, resnet50 x1.2; vgg16's
// large convolutions barely move). A profile taken in one state does not repeat in
// the other. With settle > 0 a canary (canary_ms(): that small CNN, depthwise and
// pointwise convolutions, ~1 ms) runs between timed rounds, and a round counts only
// if the canary on both sides of it was within (1 + settle) x the reference (the
// caller's, or the fastest of 5 canary measurements taken first); other rounds are
// discarded and run again once the canary is back within the tolerance (polled every
// 100 ms, at most max_wait_ms in all), up to max_discarded, after which rounds count
// anyway and the table says settled = false. The table records the reference, the median canary
// of the counted rounds and how many rounds were discarded.
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

// How profile() measures: threads, rounds and the steady-machine check (above).
struct ProfileOptions {
  int threads = 0;   // intra-op threads; 0 = keep the current setting. 1..hardware threads
  int repeats = 20;  // timed rounds, >= 1
  int warmup = 3;    // untimed rounds before them, >= 0
  double background_load = 0;  // label only: CPU cores kept busy by other work during the run, >= 0
  double settle = 0;        // > 0: count only rounds taken in the reference machine state (see above)
  double reference_ms = 0;  // canary reference for settle; 0 = measure it first (fastest of 5)
  int max_discarded = -1;   // cap on discarded rounds; -1 = 4 x repeats
  double max_wait_ms = 30000;  // after a discarded round, wait (canary every 100 ms) for the reference
                               // state to return, at most this long in all per profile
};

// The machine-state canary: median ms of `runs` runs of a fixed small CNN
// (1x16x112x112 input, ten depthwise 3x3 + pointwise 1x1 blocks, fixed weights) at
// one intra-op thread (the caller's setting is restored). runs >= 1.
double canary_ms(int runs = 5);

// What a profile measured. Per-atom arrays have num_atoms entries; per-value
// arrays follow OpGraph value ids.
struct CostTable {
  std::string model_hash;  // Model::hash() of the profiled model, 64 hex digits
  std::string label;                // free text (model name, machine)
  int threads = 1;                  // intra-op threads used
  int repeats = 0, warmup = 0;      // timed and untimed rounds run
  double background_load = 0;       // ProfileOptions::background_load
  std::vector<double> atom_ms;      // median latency per atom, ms
  std::vector<double> atom_q1_ms;   // first quartile per atom, ms
  std::vector<double> atom_q3_ms;   // third quartile per atom, ms
  std::vector<int64_t> param_bytes; // per atom: bytes of weights it holds
  std::vector<int64_t> value_bytes; // per value id: tensor bytes (0 for non-tensors)
  double model_ms = 0;              // median latency of the whole model (one block), ms
  double model_q1_ms = 0, model_q3_ms = 0;  // quartiles of model_ms, ms
  // Machine state (settle > 0; zeros otherwise): canary reference and median over the
  // counted rounds, rounds discarded, and whether the reference state was reached.
  double canary_reference_ms = 0, canary_ms = 0;
  int rounds_discarded = 0;  // rounds thrown away (canary outside the tolerance)
  double waited_ms = 0;  // time spent waiting for the reference state
  bool settled = true;   // false: max_discarded was reached, later rounds counted anyway

  // Atoms timed (atom_ms.size()).
  int num_atoms() const { return static_cast<int>(atom_ms.size()); }
  // Sum of atom_ms, ms: the model split into one-atom blocks (vs model_ms: unsplit).
  double sum_atom_ms() const;
  // A table a person reads: one line per atom (the slowest first when top > 0).
  std::string summary(const std::vector<Atom>& atoms = {}, int top = -1) const;
  // JSON ("tessera-cost-table/1"); from_json throws InvalidArgument naming the field.
  std::string to_json() const;
  // Parses to_json()'s text; InvalidArgument naming the field.
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
