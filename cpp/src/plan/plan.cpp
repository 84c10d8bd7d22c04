// plan.cpp -- metrics of a placement (evaluate), its schedule of convex blocks
// (schedule_blocks), the contract checker (validate) and explanations.
// Sequential latency model of Neurosurgeon (Kang et al., ASPLOS 2017) and DADS
// (Hu et al., INFOCOM 2019), values sent once per destination target (DADS);
// pipelined throughput as in DADS's heavy-load case; see cost_model.h.
#include "tessera/plan/plan.h"

#include "transfers.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <queue>

#include "tessera/core/codec.h"
#include "tessera/core/dtype.h"
#include "tessera/core/error.h"

namespace tessera::plan {

const char* status_name(PlanStatus status) {
  switch (status) {
    case PlanStatus::Optimal: return "optimal";
    case PlanStatus::Feasible: return "feasible";
    case PlanStatus::Infeasible: return "infeasible";
    case PlanStatus::BadInput: return "bad_input";
  }
  return "?";
}

PlanStatus parse_status(const std::string& name) {
  for (PlanStatus s : {PlanStatus::Optimal, PlanStatus::Feasible, PlanStatus::Infeasible, PlanStatus::BadInput})
    if (name == status_name(s)) return s;
  TESSERA_THROW(InvalidArgument, "plan status '{}' is unknown (optimal, feasible, infeasible, bad_input)", name);
}

namespace {

std::string target_label(int t) {
  if (t == 0) return "device";
  if (t == 1) return "server";
  return fmt::format("target {}", t);
}

// Atom -> values produced / consumed (CSR-free, small vectors are fine here).
struct Adjacency {
  std::vector<std::vector<int>> produces;  // per atom: value ids
  std::vector<std::vector<int>> consumes;  // per atom: value ids
  explicit Adjacency(const AtomDag& dag)
      : produces(static_cast<size_t>(dag.num_atoms)), consumes(static_cast<size_t>(dag.num_atoms)) {
    for (size_t v = 0; v < dag.values.size(); ++v) {
      const DagValue& val = dag.values[v];
      if (val.producer != kModelInput) produces[val.producer].push_back(static_cast<int>(v));
      for (int c : val.consumers) consumes[c].push_back(static_cast<int>(v));
    }
  }
};


std::string atom_ranges(const std::vector<int>& atoms) {
  std::string out;
  size_t i = 0;
  int shown = 0;
  while (i < atoms.size()) {
    size_t j = i;
    while (j + 1 < atoms.size() && atoms[j + 1] == atoms[j] + 1) ++j;
    if (!out.empty()) out += ",";
    if (++shown > 6) {
      out += "...";
      break;
    }
    out += j == i ? fmt::format("{}", atoms[i]) : fmt::format("{}-{}", atoms[i], atoms[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace

Plan evaluate(const CostModel& cm, const Context& ctx, const std::vector<int>& placement) {
  const AtomDag& dag = cm.dag;
  const int n = dag.num_atoms;
  const int T = cm.num_targets();
  check_placement(dag, placement, T);
  Plan plan;
  plan.placement = placement;
  plan.bandwidth_mbps = ctx.bandwidth_mbps;
  plan.rtt_ms = ctx.rtt_ms;
  plan.target_ms.assign(static_cast<size_t>(T), 0.0);
  for (int a = 0; a < n; ++a) {
    const int t = placement[a];
    plan.target_ms[t] += cm.compute_ms[t][a] * (t >= 1 ? ctx.server_load : ctx.device_load);
    if (t < static_cast<int>(cm.energy_mj.size()) && !cm.energy_mj[t].empty())
      plan.energy_mj += cm.energy_mj[t][a];
    if (t == 0 && !dag.param_bytes.empty()) plan.device_memory_bytes += dag.param_bytes[a];
  }
  double transfer_ms = 0;
  for_each_transfer(dag, placement, T, [&](int v, int p, int d) {
    const double bytes = dag.values[v].bytes;
    const LinkCost l = link_between(cm, ctx, p, d);
    const double ser = bytes * 8e-3 / l.bandwidth_mbps;
    Transfer tr{v, p, d, bytes, ser + l.rtt_ms / 2 + dag.values[v].codec_ms, dag.values[v].codec};
    transfer_ms += tr.ms;
    plan.link_ms += ser;
    plan.transfer_bytes += bytes;
    plan.energy_mj += bytes * l.energy_mj_per_byte;
    plan.transfers.push_back(tr);
  });
  double compute = 0, bottleneck = plan.link_ms;
  for (double t : plan.target_ms) compute += t, bottleneck = std::max(bottleneck, t);
  plan.latency_ms = compute + transfer_ms;
  plan.throughput_fps = bottleneck > 0 ? 1000.0 / bottleneck : std::numeric_limits<double>::infinity();
  switch (ctx.objective) {
    case Objective::Latency: plan.objective = plan.latency_ms + ctx.energy_weight * plan.energy_mj; break;
    case Objective::Energy: plan.objective = plan.energy_mj; break;
    case Objective::Throughput: plan.objective = bottleneck; break;
  }
  plan.blocks = schedule_blocks(dag, placement);
  plan.device_activation_bytes = activation_peak_bytes(dag, plan.blocks, 0);
  plan.status = PlanStatus::Feasible;
  return plan;
}

double activation_peak_bytes(const AtomDag& dag, const std::vector<ScheduledBlock>& blocks, int target) {
  const int n = dag.num_atoms;
  const int nv = static_cast<int>(dag.values.size());
  // step of each atom, first step and target of each block, block of each atom
  std::vector<int> step(static_cast<size_t>(n), -1), block_of(static_cast<size_t>(n), -1);
  std::vector<int> block_start(blocks.size());
  int s = 0;
  for (size_t b = 0; b < blocks.size(); ++b) {
    block_start[b] = s;
    for (int a : blocks[b].atoms) {
      TESSERA_CHECK(a >= 0 && a < n, InvalidArgument, "block {} holds atom {}, the DAG has {} atoms", b, a, n);
      TESSERA_CHECK(step[a] < 0, InvalidArgument, "atom {} is in two blocks", a);
      step[a] = s++;
      block_of[a] = static_cast<int>(b);
    }
  }
  TESSERA_CHECK(s == n, InvalidArgument, "the blocks hold {} of the DAG's {} atoms", s, n);
  const int last = std::max(0, n - 1);
  std::vector<double> delta(static_cast<size_t>(n) + 1, 0.0);  // difference array over steps
  for (int v = 0; v < nv; ++v) {
    const DagValue& val = dag.values[v];
    if (!(val.bytes > 0)) continue;
    const bool input = val.producer == kModelInput;
    const int ptarget = input ? 0 : blocks[block_of[val.producer]].target;
    if (!input) {
      for (int c : val.consumers)
        TESSERA_CHECK(step[c] > step[val.producer], InvalidArgument,
                      "value {} ({}) is used by atom {} before atom {} makes it: the blocks are not in an "
                      "executable order", v, val.name, c, val.producer);
    }
    int first = -1, end = -1;
    if (ptarget == target) {
      first = input ? 0 : step[val.producer];
      end = first;
      for (int c : val.consumers) {
        const ScheduledBlock& cb = blocks[block_of[c]];
        end = std::max(end, cb.target == target ? step[c] : block_start[block_of[c]]);
      }
    } else {
      for (int c : val.consumers) {
        const int b = block_of[c];
        if (blocks[b].target != target) continue;
        first = first < 0 ? block_start[b] : std::min(first, block_start[b]);
        end = std::max(end, step[c]);
      }
      if (val.is_output && target == 0 && first < 0) {  // arrives when its block has run
        const int b = input ? -1 : block_of[val.producer];
        first = input ? 0 : block_start[b] + static_cast<int>(blocks[b].atoms.size());
      }
    }
    if (first < 0) continue;
    if (val.is_output && target == 0) end = last;
    first = std::min(first, last);
    end = std::max(end, first);
    delta[first] += val.bytes;
    delta[end + 1] -= val.bytes;
  }
  double live = 0, peak = 0;
  for (int i = 0; i < n; ++i) peak = std::max(peak, live += delta[i]);
  return peak;
}

std::string constraint_violation(const Plan& plan, const Context& ctx, const Constraints& cons) {
  const double budget = std::min(cons.device_memory_bytes, ctx.device_memory_budget_bytes);
  const double tol = 1e-9;
  if (plan.device_memory_bytes > budget * (1 + tol))
    return fmt::format("device_memory_bytes: the plan keeps {:.0f} bytes of parameters on the device, "
                       "over the budget of {:.0f} bytes", plan.device_memory_bytes, budget);
  if (plan.latency_ms > cons.max_latency_ms * (1 + tol))
    return fmt::format("max_latency_ms: predicted latency {:.4g} ms exceeds {:.4g} ms", plan.latency_ms,
                       cons.max_latency_ms);
  if (plan.energy_mj > cons.max_energy_mj * (1 + tol))
    return fmt::format("max_energy_mj: predicted energy {:.4g} mJ exceeds {:.4g} mJ", plan.energy_mj,
                       cons.max_energy_mj);
  for (size_t a = 0; a < cons.pin.size() && a < plan.placement.size(); ++a)
    if (cons.pin[a] >= 0 && plan.placement[a] != cons.pin[a])
      return fmt::format("pin: atom {} is pinned to target {} but placed on target {}", a, cons.pin[a],
                         plan.placement[a]);
  return {};
}

std::vector<std::string> validate(const Plan& plan, const CostModel& cm) {
  return validate(plan, cm.dag, cm.num_targets());
}

std::vector<std::string> validate(const Plan& plan, const AtomDag& dag, int T) {
  std::vector<std::string> problems;
  const int n = dag.num_atoms;
  const std::string placement_bad = placement_problem(dag, plan.placement, T);
  if (!placement_bad.empty()) {
    problems.push_back(placement_bad);
    return problems;
  }

  // Blocks: a partition of the atoms, one target each, executable in order.
  std::vector<int> block_of(static_cast<size_t>(n), -1);
  bool partition_ok = true;
  for (size_t b = 0; b < plan.blocks.size(); ++b) {
    const ScheduledBlock& blk = plan.blocks[b];
    if (blk.atoms.empty()) problems.push_back(fmt::format("block {} is empty", b));
    for (int a : blk.atoms) {
      if (a < 0 || a >= n) {
        problems.push_back(fmt::format("block {} holds atom {}, not an atom id in [0, {})", b, a, n));
        partition_ok = false;
        continue;
      }
      if (block_of[a] >= 0) {
        problems.push_back(fmt::format("atom {} ({}) is in block {} and again in block {}", a,
                                       dag.atom_label(a), block_of[a], b));
        partition_ok = false;
      }
      block_of[a] = static_cast<int>(b);
      if (plan.placement[a] != blk.target)
        problems.push_back(fmt::format("block {} runs on target {} but its atom {} ({}) is placed on target {}",
                                       b, blk.target, a, dag.atom_label(a), plan.placement[a]));
    }
  }
  for (int a = 0; a < n; ++a)
    if (block_of[a] < 0) {
      problems.push_back(fmt::format("atom {} ({}) is in no block: every atom must be scheduled", a,
                                     dag.atom_label(a)));
      partition_ok = false;
    }
  if (partition_ok) {
    Adjacency adj(dag);
    std::vector<char> done(static_cast<size_t>(n), 0);
    for (size_t b = 0; b < plan.blocks.size(); ++b)
      for (int a : plan.blocks[b].atoms) {
        for (int v : adj.consumes[a]) {
          const int p = dag.values[v].producer;
          if (p != kModelInput && !done[p])
            problems.push_back(fmt::format(
                "block {} is not executable in order: atom {} ({}) needs value {} from atom {} ({}), "
                "which runs later (block {})", b, a, dag.atom_label(a), v, p, dag.atom_label(p), block_of[p]));
        }
        done[a] = 1;
      }
    // Convexity: no atom outside a block is both reachable from it and reaching it.
    std::vector<int> mark(static_cast<size_t>(n), 0);
    for (size_t b = 0; b < plan.blocks.size(); ++b) {
      const auto& atoms = plan.blocks[b].atoms;
      if (atoms.empty()) continue;
      const int lo = *std::min_element(atoms.begin(), atoms.end());
      const int hi = *std::max_element(atoms.begin(), atoms.end());
      std::fill(mark.begin(), mark.end(), 0);  // bit 1: reachable from block, bit 2: reaches block
      for (int a : atoms) mark[a] = 3;
      for (int a = lo; a <= hi; ++a)  // forward in topological order
        if (mark[a] & 1)
          for (int v : adj.produces[a])
            for (int c : dag.values[v].consumers)
              if (c <= hi) mark[c] |= 1;
      for (int a = hi; a >= lo; --a)  // backward
        if (mark[a] & 2)
          for (int v : adj.consumes[a]) {
            const int p = dag.values[v].producer;
            if (p != kModelInput && p >= lo) mark[p] |= 2;
          }
      for (int a = lo; a <= hi; ++a)
        if (mark[a] == 3 && block_of[a] != static_cast<int>(b)) {
          problems.push_back(fmt::format(
              "block {} is not convex: atom {} ({}) outside it lies on a path that leaves and re-enters it",
              b, a, dag.atom_label(a)));
          break;
        }
    }
  }

  // Transfers: every value reaches every target that needs it, from its producer's target.
  std::vector<std::vector<char>> have(dag.values.size(), std::vector<char>(static_cast<size_t>(T), 0));
  for (const Transfer& tr : plan.transfers) {
    if (tr.value < 0 || tr.value >= static_cast<int>(dag.values.size()) || tr.to < 0 || tr.to >= T) {
      problems.push_back(fmt::format("transfer of value {} to target {} names no such value/target",
                                     tr.value, tr.to));
      continue;
    }
    const DagValue& val = dag.values[tr.value];
    const int p = val.producer == kModelInput ? 0 : plan.placement[val.producer];
    if (tr.from != p)
      problems.push_back(fmt::format("transfer of value {} claims to leave target {} but it lives on target {}{}",
                                     tr.value, tr.from, p,
                                     val.producer == kModelInput ? " (model inputs live on the device)" : ""));
    have[tr.value][tr.to] = 1;
    if (!val.dtype.empty() && !find_dtype(val.dtype))
      problems.push_back(fmt::format("value {} ({}) is a {} tensor, which no wire carries: it cannot cross from "
                                     "target {} to target {} (cut elsewhere)",
                                     tr.value, val.name, val.dtype, tr.from, tr.to));
    const auto codecs = codec_names();
    if (!tr.codec.empty() && std::find(codecs.begin(), codecs.end(), tr.codec) == codecs.end())
      problems.push_back(fmt::format("transfer of value {} names codec '{}' (known: {})", tr.value, tr.codec,
                                     fmt::join(codecs, ", ")));
  }
  for (size_t v = 0; v < dag.values.size(); ++v) {
    const DagValue& val = dag.values[v];
    const int p = val.producer == kModelInput ? 0 : plan.placement[val.producer];
    std::string vname = val.name.empty() ? fmt::format("value {}", v) : fmt::format("value {} ({})", v, val.name);
    if (val.is_output && p != 0 && !have[v][0])
      problems.push_back(fmt::format("model output {} is produced on target {} and never brought back to the device",
                                     vname, p));
    for (int c : val.consumers) {
      const int t = plan.placement[c];
      if (t != p && !have[v][t]) {
        problems.push_back(fmt::format("{} is produced on target {} but atom {} ({}) on target {} receives no transfer of it",
                                       vname, p, c, dag.atom_label(c), t));
        have[v][t] = 1;  // report once per target
      }
    }
  }
  return problems;
}

void check(const Plan& plan, const AtomDag& dag, int num_targets) {
  const auto problems = validate(plan, dag, num_targets);
  if (problems.empty()) return;
  std::string text;
  for (size_t i = 0; i < problems.size() && i < 5; ++i) text += (i ? "; " : "") + problems[i];
  if (problems.size() > 5) text += fmt::format("; ... {} more", problems.size() - 5);
  TESSERA_THROW(InvalidArgument, "invalid {} plan: {}", plan.algorithm.empty() ? "hand-made" : plan.algorithm, text);
}

Plan from_placement(const AtomDag& dag, const std::vector<int>& placement, int num_targets) {
  TESSERA_CHECK(num_targets >= 1, InvalidArgument, "num_targets = {} must be >= 1", num_targets);
  check_placement(dag, placement, num_targets);
  Plan plan;
  plan.algorithm = "placement";
  plan.placement = placement;
  plan.status = PlanStatus::Feasible;
  plan.target_ms.assign(static_cast<size_t>(num_targets), 0.0);
  for_each_transfer(dag, placement, num_targets, [&](int v, int p, int d) {
    plan.transfers.push_back(Transfer{v, p, d, dag.values[v].bytes, 0.0, dag.values[v].codec});
    plan.transfer_bytes += dag.values[v].bytes;
  });
  for (int a = 0; a < dag.num_atoms; ++a)
    if (placement[a] == 0 && !dag.param_bytes.empty()) plan.device_memory_bytes += dag.param_bytes[a];
  plan.blocks = schedule_blocks(dag, placement);
  plan.device_activation_bytes = activation_peak_bytes(dag, plan.blocks, 0);
  return plan;
}

std::string Plan::explain(const CostModel& cm) const {
  cm.validate();
  TESSERA_CHECK(static_cast<int>(placement.size()) == cm.num_atoms(), InvalidArgument,
                "plan has {} atoms, the cost model {}", placement.size(), cm.num_atoms());
  std::string s = fmt::format("{} plan: {}", algorithm.empty() ? "hand-made" : algorithm, status_name(status));
  if (!reason.empty()) s += fmt::format(" ({})", reason);
  s += "\n";
  double transfer_ms = 0;
  for (const Transfer& tr : transfers) transfer_ms += tr.ms;
  s += fmt::format("latency {:.3f} ms =", latency_ms);
  for (size_t t = 0; t < target_ms.size(); ++t)
    s += fmt::format("{} {:.3f} ms on {}", t == 0 ? "" : " +", target_ms[t], target_label(static_cast<int>(t)));
  s += fmt::format(" + {:.3f} ms of transfers ({} transfers, {:.3f} MB); ", transfer_ms, transfers.size(),
                   transfer_bytes / 1e6);
  s += fmt::format("throughput {:.1f} fps; device parameters {:.2f} MB, activations at most {:.2f} MB at once",
                   throughput_fps, device_memory_bytes / 1e6, device_activation_bytes / 1e6);
  if (energy_mj > 0) s += fmt::format("; energy {:.3f} mJ", energy_mj);
  s += "\n";
  if (!blocks.empty()) {
    s += "blocks:";
    for (size_t b = 0; b < blocks.size(); ++b)
      s += fmt::format("{} {}[atoms {}]", b == 0 ? "" : " ->", target_label(blocks[b].target),
                       atom_ranges(blocks[b].atoms));
    s += "\n";
  }
  for (const Transfer& tr : transfers) {
    const DagValue& val = cm.dag.values[tr.value];
    std::string what;
    if (val.producer == kModelInput)
      what = val.name.empty() ? fmt::format("model input (value {})", tr.value)
                              : fmt::format("model input '{}' (value {})", val.name, tr.value);
    else if (tr.to == 0 && val.is_output)
      what = fmt::format("result of {} (atom {})", cm.atom_label(val.producer), val.producer);
    else
      what = fmt::format("cut after {} (atom {})", cm.atom_label(val.producer), val.producer);
    const bool is_01 = (tr.from + tr.to == 1);
    const double bw = is_01 ? bandwidth_mbps
                            : (cm.links.empty() ? 0.0 : cm.links[tr.from][tr.to].bandwidth_mbps);
    const double rtt = is_01 ? rtt_ms : (cm.links.empty() ? 0.0 : cm.links[tr.from][tr.to].rtt_ms);
    s += fmt::format("{} {} -> {}: {:.3f} MB at {:.4g} Mbit/s = {:.3f} ms + rtt/2 ({:.3f} ms)\n", what,
                     target_label(tr.from), target_label(tr.to), tr.bytes / 1e6, bw, tr.ms - rtt / 2, rtt / 2);
  }
  if (transfers.empty()) s += "no transfer: everything runs on one target\n";
  return s;
}

}  // namespace tessera::plan
