// cost_model.cpp -- validation of the atom DAG, cost model, context and
// constraints, and the additive two-target cost view (CutCosts) used by the
// min-cut planners (DADS, Hu et al. INFOCOM 2019; Neurosurgeon, Kang et al.
// ASPLOS 2017; energy terms as in CAS/GADS, Liang et al. 2023).
#include "tessera/plan/cost_model.h"

#include <cmath>

#include "tessera/core/error.h"

namespace tessera::plan {

namespace {
bool finite_nonneg(double x) { return std::isfinite(x) && x >= 0; }
// Bounds that keep every sum a plan makes finite (no inf, no 0 x inf = NaN): 1e12 ms is
// 31 years, 1e18 bytes an exabyte, loads within 1e6 either way, 1 bit/s to 1 Pbit/s.
constexpr double kMaxMs = 1e12, kMaxBytes = 1e18, kMaxLoad = 1e6, kMinBw = 1e-6, kMaxBw = 1e9;
}  // namespace

std::string CostModel::atom_label(int atom) const { return dag.atom_label(atom); }

void CostModel::validate() const {
  dag.validate();
  const int n = dag.num_atoms;
  const int T = num_targets();
  TESSERA_CHECK(T >= 2, InvalidArgument,
                "CostModel.compute_ms has {} targets, need at least 2 (0 = device, 1 = server)", T);
  for (int t = 0; t < T; ++t) {
    TESSERA_CHECK(static_cast<int>(compute_ms[t].size()) == n, InvalidArgument,
                  "CostModel.compute_ms[{}] has {} entries, expected num_atoms = {}", t,
                  compute_ms[t].size(), n);
    for (int a = 0; a < n; ++a)
      TESSERA_CHECK(finite_nonneg(compute_ms[t][a]) && compute_ms[t][a] <= kMaxMs, InvalidArgument,
                    "CostModel.compute_ms[{}][{}] ({}) must be in [0, 1e12] ms, got {}", t, a,
                    atom_label(a), compute_ms[t][a]);
  }
  TESSERA_CHECK(static_cast<int>(energy_mj.size()) <= T, InvalidArgument,
                "CostModel.energy_mj has {} rows, more than the {} targets", energy_mj.size(), T);
  for (size_t t = 0; t < energy_mj.size(); ++t) {
    TESSERA_CHECK(energy_mj[t].empty() || static_cast<int>(energy_mj[t].size()) == n,
                  InvalidArgument, "CostModel.energy_mj[{}] has {} entries, expected num_atoms = {}",
                  t, energy_mj[t].size(), n);
    for (size_t a = 0; a < energy_mj[t].size(); ++a)
      TESSERA_CHECK(finite_nonneg(energy_mj[t][a]) && energy_mj[t][a] <= kMaxMs, InvalidArgument,
                    "CostModel.energy_mj[{}][{}] must be in [0, 1e12], got {}", t, a,
                    energy_mj[t][a]);
  }
  if (!links.empty()) {
    TESSERA_CHECK(static_cast<int>(links.size()) == T, InvalidArgument,
                  "CostModel.links has {} rows, expected num_targets = {}", links.size(), T);
    for (int i = 0; i < T; ++i) {
      TESSERA_CHECK(static_cast<int>(links[i].size()) == T, InvalidArgument,
                    "CostModel.links[{}] has {} entries, expected num_targets = {}", i,
                    links[i].size(), T);
      for (int j = 0; j < T; ++j) {
        if (i == j) continue;
        const LinkCost& l = links[i][j];
        TESSERA_CHECK(finite_nonneg(l.energy_mj_per_byte), InvalidArgument,
                      "CostModel.links[{}][{}].energy_mj_per_byte must be finite and >= 0, got {}",
                      i, j, l.energy_mj_per_byte);
        if (i + j == 1) continue;  // device<->server: bandwidth and rtt come from the Context
        TESSERA_CHECK(std::isfinite(l.bandwidth_mbps) && l.bandwidth_mbps > 0, InvalidArgument,
                      "CostModel.links[{}][{}].bandwidth_mbps must be > 0, got {}", i, j,
                      l.bandwidth_mbps);
        TESSERA_CHECK(finite_nonneg(l.rtt_ms), InvalidArgument,
                      "CostModel.links[{}][{}].rtt_ms must be finite and >= 0, got {}", i, j,
                      l.rtt_ms);
      }
    }
  } else {
    TESSERA_CHECK(T == 2, InvalidArgument,
                  "CostModel.links is empty but there are {} targets: links between targets >= 2 "
                  "are needed", T);
  }
}

const char* objective_name(Objective objective) {
  switch (objective) {
    case Objective::Latency: return "latency";
    case Objective::Energy: return "energy";
    case Objective::Throughput: return "throughput";
  }
  return "?";
}

Objective parse_objective(const std::string& name) {
  if (name == "latency") return Objective::Latency;
  if (name == "energy") return Objective::Energy;
  if (name == "throughput") return Objective::Throughput;
  TESSERA_THROW(InvalidArgument,
                "objective '{}' is unknown (expected 'latency', 'energy' or 'throughput')", name);
}

void Context::validate() const {
  TESSERA_CHECK(bandwidth_mbps >= kMinBw && bandwidth_mbps <= kMaxBw, InvalidArgument,
                "Context.bandwidth_mbps must be in [1e-6, 1e9] Mbit/s, got {}", bandwidth_mbps);
  TESSERA_CHECK(finite_nonneg(rtt_ms) && rtt_ms <= kMaxMs, InvalidArgument,
                "Context.rtt_ms must be in [0, 1e12], got {}", rtt_ms);
  TESSERA_CHECK(server_load >= 1 / kMaxLoad && server_load <= kMaxLoad, InvalidArgument,
                "Context.server_load must be in [1e-6, 1e6], got {}", server_load);
  TESSERA_CHECK(device_load >= 1 / kMaxLoad && device_load <= kMaxLoad, InvalidArgument,
                "Context.device_load must be in [1e-6, 1e6], got {}", device_load);
  TESSERA_CHECK(!std::isnan(device_memory_budget_bytes) && device_memory_budget_bytes >= 0,
                InvalidArgument, "Context.device_memory_budget_bytes must be >= 0, got {}",
                device_memory_budget_bytes);
  TESSERA_CHECK(finite_nonneg(energy_weight), InvalidArgument,
                "Context.energy_weight must be finite and >= 0, got {}", energy_weight);
  TESSERA_CHECK(objective == Objective::Latency || objective == Objective::Energy ||
                    objective == Objective::Throughput,
                InvalidArgument, "Context.objective has an unknown value {}",
                static_cast<int>(objective));
}

void Constraints::validate(int num_atoms, int num_targets) const {
  TESSERA_CHECK(!std::isnan(device_memory_bytes) && device_memory_bytes >= 0, InvalidArgument,
                "Constraints.device_memory_bytes must be >= 0, got {}", device_memory_bytes);
  TESSERA_CHECK(!std::isnan(max_latency_ms) && max_latency_ms >= 0, InvalidArgument,
                "Constraints.max_latency_ms must be >= 0, got {}", max_latency_ms);
  TESSERA_CHECK(!std::isnan(max_energy_mj) && max_energy_mj >= 0, InvalidArgument,
                "Constraints.max_energy_mj must be >= 0, got {}", max_energy_mj);
  TESSERA_CHECK(pin.empty() || static_cast<int>(pin.size()) == num_atoms, InvalidArgument,
                "Constraints.pin has {} entries, expected num_atoms = {} (or none)", pin.size(),
                num_atoms);
  for (size_t a = 0; a < pin.size(); ++a)
    TESSERA_CHECK(pin[a] >= -1 && pin[a] < num_targets, InvalidArgument,
                  "Constraints.pin[{}] = {} is not -1 (free) or a target in [0, {})", a, pin[a],
                  num_targets);
}

LinkCost link_between(const CostModel& cm, const Context& ctx, int from, int to) {
  LinkCost l;
  if (!cm.links.empty()) l = cm.links[from][to];
  if ((from == 0 && to == 1) || (from == 1 && to == 0)) {
    l.bandwidth_mbps = ctx.bandwidth_mbps;
    l.rtt_ms = ctx.rtt_ms;
  }
  return l;
}

CostWeights objective_weights(const Context& ctx) {
  CostWeights w;
  if (ctx.objective == Objective::Energy) {
    w.latency = 0;
    w.energy = 1;
  } else {
    w.latency = 1;
    w.energy = ctx.energy_weight;
  }
  return w;
}

void cut_costs(const CostModel& cm, const Context& ctx, const CostWeights& w, CutCosts& out) {
  const int n = cm.dag.num_atoms;
  const size_t nv = cm.dag.values.size();
  out.device.assign(n, 0.0);
  out.server.assign(n, 0.0);
  out.up.assign(nv, 0.0);
  out.down.assign(nv, 0.0);
  const bool has_e0 = !cm.energy_mj.empty() && !cm.energy_mj[0].empty();
  const bool has_e1 = cm.energy_mj.size() > 1 && !cm.energy_mj[1].empty();
  const bool has_params = !cm.dag.param_bytes.empty();
  const double dev_w = (w.latency + w.device_compute) * ctx.device_load;
  const double srv_w = (w.latency + w.server_compute) * ctx.server_load;
  for (int a = 0; a < n; ++a) {
    double d = dev_w * cm.compute_ms[0][a];
    double s = srv_w * cm.compute_ms[1][a];
    if (w.energy != 0) {
      if (has_e0) d += w.energy * cm.energy_mj[0][a];
      if (has_e1) s += w.energy * cm.energy_mj[1][a];
    }
    if (w.memory != 0 && has_params) d += w.memory * cm.dag.param_bytes[a];
    out.device[a] = d;
    out.server[a] = s;
  }
  const LinkCost up = link_between(cm, ctx, 0, 1);
  const LinkCost down = link_between(cm, ctx, 1, 0);
  const double ser_up = 8e-3 / up.bandwidth_mbps;  // ms per byte
  const double ser_down = 8e-3 / down.bandwidth_mbps;
  for (size_t v = 0; v < nv; ++v) {
    const double b = cm.dag.values[v].bytes;
    const double fixed = up.rtt_ms / 2 + cm.dag.values[v].codec_ms;  // per transfer, whatever the bytes
    out.up[v] = (w.latency + w.link) * b * ser_up + w.latency * fixed + w.energy * b * up.energy_mj_per_byte;
    out.down[v] = (w.latency + w.link) * b * ser_down + w.latency * (down.rtt_ms / 2 + cm.dag.values[v].codec_ms) +
                  w.energy * b * down.energy_mj_per_byte;
  }
}

double cut_value(const AtomDag& dag, const CutCosts& costs, const std::vector<int>& x) {
  double total = 0;
  for (int a = 0; a < dag.num_atoms; ++a) total += x[a] == 0 ? costs.device[a] : costs.server[a];
  for (size_t v = 0; v < dag.values.size(); ++v) {
    const DagValue& val = dag.values[v];
    const int p = val.producer == kModelInput ? 0 : x[val.producer];
    bool to0 = val.is_output, to1 = false;
    for (int c : val.consumers) (x[c] == 0 ? to0 : to1) = true;
    if (p == 0 && to1) total += costs.up[v];
    if (p == 1 && to0) total += costs.down[v];
  }
  return total;
}

}  // namespace tessera::plan
