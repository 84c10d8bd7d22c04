// plan/variants.cpp -- wire codecs priced into cost models, and the accuracy-budgeted
// selection of (variant, placement) points (see tessera/plan/variants.h).
#include "tessera/plan/variants.h"

#include <cmath>
#include <limits>

#include "tessera/core/codec.h"
#include "tessera/core/dtype.h"
#include "tessera/core/error.h"

namespace tessera::plan {

namespace {
bool finite_nonneg(double x) { return std::isfinite(x) && x >= 0; }
}  // namespace

CostModel with_codec(const CostModel& cm, const std::string& codec, const CodecCost& cost) {
  const Codec c = parse_codec(codec);
  TESSERA_CHECK(finite_nonneg(cost.encode_ms_per_mb) && finite_nonneg(cost.decode_ms_per_mb), InvalidArgument,
                "codec {}: encode / decode cost must be finite and >= 0 ms per MB, got {} / {}", codec,
                cost.encode_ms_per_mb, cost.decode_ms_per_mb);
  TESSERA_CHECK(std::isfinite(cost.ratio) && cost.ratio > 0, InvalidArgument,
                "codec {}: ratio must be finite and > 0, got {}", codec, cost.ratio);
  CostModel out = cm;
  if (c == Codec::Raw) return out;
  for (auto& v : out.dag.values) {
    if (v.dtype.empty() || !find_dtype(v.dtype) || !codec_applies(c, v.dtype, v.rank)) continue;
    const double raw = v.bytes;
    const auto numel = static_cast<uint64_t>(raw / dtype_size(v.dtype));
    v.bytes = c == Codec::Zstd ? raw * cost.ratio : static_cast<double>(codec_frame_bytes(c, v.dtype, numel));
    v.codec = codec_name(c);
    v.codec_ms = (cost.encode_ms_per_mb + cost.decode_ms_per_mb) * raw / 1e6;
  }
  return out;
}

double VariantCandidate::latency_ms(const Context& ctx) const {
  return device_ms * ctx.device_load + server_ms * ctx.server_load + bytes * 8e-3 / ctx.bandwidth_mbps +
         transfers * ctx.rtt_ms / 2 + codec_ms;
}

VariantCandidate candidate_from_plan(int variant, const std::string& name, const Plan& plan, double loss) {
  VariantCandidate c;
  c.variant = variant;
  c.name = name;
  c.placement = plan.placement;
  c.loss = loss;
  // evaluate() multiplies by the loads of its context: divide them back out through the
  // per-target figures it reports, taken at the plan's own context (loads 1 expected).
  c.device_ms = plan.target_ms.empty() ? 0 : plan.target_ms[0];
  for (size_t t = 1; t < plan.target_ms.size(); ++t) c.server_ms += plan.target_ms[t];
  for (const Transfer& tr : plan.transfers) {
    c.bytes += tr.bytes;
    c.transfers += 1;
    c.codec_ms += tr.ms - tr.bytes * 8e-3 / plan.bandwidth_mbps - plan.rtt_ms / 2;
  }
  if (c.codec_ms < 1e-12) c.codec_ms = 0;
  c.device_memory_bytes = plan.device_memory_bytes;
  c.energy_mj = plan.energy_mj;
  return c;
}

VariantSelector::VariantSelector(std::vector<VariantCandidate> candidates) : c_(std::move(candidates)) {
  TESSERA_CHECK(!c_.empty(), InvalidArgument, "a VariantSelector needs at least one candidate");
  for (size_t i = 0; i < c_.size(); ++i) {
    const auto& c = c_[i];
    for (double x : {c.loss, c.device_ms, c.server_ms, c.bytes, c.codec_ms, c.device_memory_bytes, c.energy_mj})
      TESSERA_CHECK(finite_nonneg(x), InvalidArgument,
                    "candidate {} ({}): loss, times, bytes, memory and energy must be finite and >= 0", i, c.name);
    TESSERA_CHECK(c.transfers >= 0, InvalidArgument, "candidate {} ({}): {} transfers", i, c.name, c.transfers);
  }
}

double VariantSelector::best_loss() const {
  double best = std::numeric_limits<double>::infinity();
  for (const auto& c : c_) best = std::min(best, c.loss);
  return best;
}

VariantChoice VariantSelector::select(const Context& ctx, double budget) const {
  ctx.validate();
  TESSERA_CHECK(!std::isnan(budget) && budget >= 0, InvalidArgument, "loss budget must be >= 0, got {}", budget);
  const bool energy = ctx.objective == Objective::Energy;
  VariantChoice ch;
  int second = -1;
  double best = std::numeric_limits<double>::infinity(), best_lat = best, second_obj = best;
  int within = 0;
  for (size_t i = 0; i < c_.size(); ++i) {
    const auto& c = c_[i];
    if (c.loss > budget + 1e-12) continue;
    ++within;
    if (c.device_memory_bytes > ctx.device_memory_budget_bytes * (1 + 1e-9)) continue;
    ++ch.feasible;
    const double lat = c.latency_ms(ctx);
    const double obj = energy ? c.energy_mj : lat;
    if (obj < best || (obj == best && lat < best_lat)) {
      if (ch.index >= 0) second = ch.index, second_obj = best;
      best = obj, best_lat = lat, ch.index = static_cast<int>(i);
    } else if (obj < second_obj) {
      second = static_cast<int>(i), second_obj = obj;
    }
  }
  if (ch.index < 0) {
    if (within == 0) {
      size_t b = 0;
      for (size_t i = 1; i < c_.size(); ++i)
        if (c_[i].loss < c_[b].loss) b = i;
      TESSERA_THROW(NotFound,
                    "no variant meets the accuracy budget of {:.4g}%: the least loss available is {:.4g}% ({})",
                    budget * 100, c_[b].loss * 100, c_[b].name);
    }
    TESSERA_THROW(NotFound,
                  "{} candidates meet the accuracy budget of {:.4g}% but none fits in {:.0f} bytes of free device "
                  "memory",
                  within, budget * 100, ctx.device_memory_budget_bytes);
  }
  const auto& c = c_[ch.index];
  ch.latency_ms = best_lat;
  ch.objective = best;
  std::string runner;
  if (second >= 0)
    runner = fmt::format("; next best {} (loss {:.3g}%) {:.4g} {}", c_[second].name, c_[second].loss * 100,
                         second_obj, energy ? "mJ" : "ms");
  ch.why = fmt::format("{} (loss {:.3g}% <= {:.3g}%): {:.4g} ms{} at {:.4g} Mbit/s, {:.0f} bytes cross{}", c.name,
                       c.loss * 100, budget * 100, best_lat, energy ? fmt::format(", {:.4g} mJ", c.energy_mj) : "",
                       ctx.bandwidth_mbps, c.bytes, runner);
  return ch;
}

}  // namespace tessera::plan
