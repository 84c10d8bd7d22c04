// tessera/plan/variants.h -- accuracy-aware variants (issue 17), torch-free.
//
// Two levers beside the split point:
//  * a wire codec on the values that cross (fp16, bf16, int8, int8_channel, zstd;
//    core/codec.h): with_codec() prices it into a cost model, so every planner (min cut,
//    parametric, brute force) chooses the split knowing that bytes shrink and that encoding
//    and decoding cost time; the plan's transfers name the codec each cut value uses;
//  * a model variant (quantized, pruned, lower resolution): an atom store of its own with a
//    cost model of its own, planned like any model.
// A VariantSelector holds candidate (variant, placement) points, each with its measured
// accuracy (or fidelity) loss, and picks the fastest (or most frugal) point whose loss is
// within a budget under the context of the moment (bandwidth, rtt, loads, free memory):
// AdaScale's loop (Wang et al.) over tessera's exact plans. Selection is a scan over the
// candidates, microseconds for hundreds.
#pragma once

#include <string>
#include <vector>

#include "tessera/plan/cost_model.h"
#include "tessera/plan/plan.h"

namespace tessera::plan {

// What a codec costs on this pair of machines, per MB (1e6 bytes) of raw tensor.
struct CodecCost {
  double encode_ms_per_mb = 0;  // on the sender
  double decode_ms_per_mb = 0;  // on the receiver
  // Wire bytes over raw bytes for codecs whose size depends on the data (zstd: measured on
  // this model's tensors); fixed-size codecs ignore it (core/codec.h gives their size).
  double ratio = 1;
};

// `cm` with every value the codec applies to (codec_applies: its dtype and rank) priced as it
// travels: bytes = the encoded size, codec = the codec's name, codec_ms = (encode + decode)
// ms for its raw size. Values of unknown dtype stay raw. "raw" / "" returns cm unchanged.
// Throws InvalidArgument for an unknown codec or a negative / non-finite cost.
CostModel with_codec(const CostModel& cm, const std::string& codec, const CodecCost& cost);

// One point the selector may choose: a variant run with one placement.
struct VariantCandidate {
  int variant = 0;              // caller's index of the variant (model and codec)
  std::string name;             // "int8", "wire_fp16", ...
  std::vector<int> placement;   // one target per atom of the variant's model
  double loss = 0;              // measured accuracy (or fidelity) loss, a fraction (0.01 = 1 point of top-1)
  // The plan's terms at unit loads (plan::evaluate): latency = device_ms * device_load +
  // server_ms * server_load + bytes * 8e-3 / bandwidth + transfers * rtt / 2 + codec_ms.
  double device_ms = 0, server_ms = 0, bytes = 0, codec_ms = 0;  // ms, ms, bytes crossing, ms
  int transfers = 0;               // number of transfers (each pays rtt / 2)
  double device_memory_bytes = 0;  // parameters on the device
  double energy_mj = 0;            // the cost model's energy of the plan (0 without energy data)

  // Predicted latency under `ctx` (its loads, bandwidth and rtt), by the formula above.
  double latency_ms(const Context& ctx) const;
};

// The candidate's terms from a plan evaluated on the variant's cost model.
VariantCandidate candidate_from_plan(int variant, const std::string& name, const Plan& plan, double loss);

// What select() chose and why.
struct VariantChoice {
  int index = -1;               // into the selector's candidates
  double latency_ms = 0;        // predicted under the context
  double objective = 0;         // what was minimised (latency, or energy under Objective::Energy)
  int feasible = 0;             // candidates within the budget and the memory
  std::string why;              // one line: the choice, its loss and latency, the runner-up
};

// Picks the candidate (variant, placement) for the context of the moment within a loss budget.
// Immutable after construction: select() is safe from several threads.
class VariantSelector {
 public:
  // Throws InvalidArgument naming the candidate if a loss or a term is negative or not finite.
  explicit VariantSelector(std::vector<VariantCandidate> candidates);
  // The candidate of least latency (Objective::Energy: least energy, latency breaking ties)
  // among those with loss <= budget (+1e-12) whose device parameters fit the context's
  // free memory. No candidate within the budget: NotFound naming the budget and the least
  // loss available (and its variant); within the budget but none fits in memory: NotFound
  // naming the memory. O(#candidates).
  VariantChoice select(const Context& ctx, double loss_budget) const;
  // All candidates, in the order given (VariantChoice::index points here).
  const std::vector<VariantCandidate>& candidates() const { return c_; }
  // The least loss of any candidate.
  double best_loss() const;

 private:
  std::vector<VariantCandidate> c_;
};

}  // namespace tessera::plan
