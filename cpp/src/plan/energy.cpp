// plan/energy.cpp -- the device's energy, energy-aware plans, the Lyapunov controller (see
// tessera/plan/energy.h for the model).
#include "tessera/plan/energy.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include <fmt/format.h>

#include "tessera/core/error.h"
#include "tessera/plan/mincut.h"

#include "transfers.h"

namespace tessera::plan {

namespace {
bool finite_nonneg(double x) { return std::isfinite(x) && x >= 0; }
constexpr double kInf = std::numeric_limits<double>::infinity();

void check_link(double bw_mbps, double rtt_ms) {
  TESSERA_CHECK(std::isfinite(bw_mbps) && bw_mbps > 0, InvalidArgument, "bandwidth = {} Mbit/s must be > 0", bw_mbps);
  TESSERA_CHECK(finite_nonneg(rtt_ms), InvalidArgument, "rtt = {} ms must be >= 0", rtt_ms);
}

void check_model(const CostModel& cm) {
  cm.validate();
  TESSERA_CHECK(cm.num_targets() >= 2, InvalidArgument, "energy plans need a device and a server row of costs");
}

Operating resolve(const PowerModel& pm, const Operating& op) {
  Operating r = op;
  if (r.frequency_mhz <= 0) r.frequency_mhz = pm.freqs_mhz.back();
  if (r.tx_power_mw <= 0) r.tx_power_mw = pm.tx.max_power_mw;
  pm.active_at(r.frequency_mhz);  // a level of the model
  TESSERA_CHECK(r.tx_power_mw <= pm.tx.max_power_mw * (1 + 1e-12), InvalidArgument,
                "transmit power {} mW is above the radio's maximum {} mW", r.tx_power_mw, pm.tx.max_power_mw);
  return r;
}

}  // namespace

void PowerModel::validate() const {
  TESSERA_CHECK(!freqs_mhz.empty(), InvalidArgument, "the power model has no frequency levels (freqs_mhz)");
  TESSERA_CHECK(active_mw.size() == freqs_mhz.size(), InvalidArgument,
                "active_mw has {} entries for {} frequencies", active_mw.size(), freqs_mhz.size());
  for (size_t i = 0; i < freqs_mhz.size(); ++i) {
    TESSERA_CHECK(std::isfinite(freqs_mhz[i]) && freqs_mhz[i] > 0, InvalidArgument, "freqs_mhz[{}] = {} must be > 0",
                  i, freqs_mhz[i]);
    TESSERA_CHECK(i == 0 || freqs_mhz[i] > freqs_mhz[i - 1], InvalidArgument,
                  "frequencies must increase: freqs_mhz[{}] = {} after {}", i, freqs_mhz[i], freqs_mhz[i - 1]);
    TESSERA_CHECK(finite_nonneg(active_mw[i]), InvalidArgument, "active_mw[{}] = {} must be >= 0", i, active_mw[i]);
  }
  TESSERA_CHECK(finite_nonneg(idle_mw), InvalidArgument, "idle_mw = {} must be >= 0", idle_mw);
  TESSERA_CHECK(finite_nonneg(rx_mw), InvalidArgument, "rx_mw = {} must be >= 0", rx_mw);
  TESSERA_CHECK(std::isfinite(tx.max_power_mw) && tx.max_power_mw > 0, InvalidArgument,
                "the radio's max_power_mw = {} must be > 0", tx.max_power_mw);
  TESSERA_CHECK(finite_nonneg(tx.bandwidth_mhz), InvalidArgument, "the radio's bandwidth_mhz = {} must be >= 0",
                tx.bandwidth_mhz);
  for (size_t i = 0; i < tx.levels_mw.size(); ++i) {
    const double p = tx.levels_mw[i];
    TESSERA_CHECK(std::isfinite(p) && p > 0, InvalidArgument, "transmit level {} = {} mW must be > 0", i, p);
    TESSERA_CHECK(p <= tx.max_power_mw, InvalidArgument, "transmit level {} = {} mW is above the maximum {} mW", i, p,
                  tx.max_power_mw);
  }
  TESSERA_CHECK(reference_mhz == 0 || (std::isfinite(reference_mhz) && reference_mhz > 0), InvalidArgument,
                "reference_mhz = {} must be > 0 (or 0: the highest frequency)", reference_mhz);
  TESSERA_CHECK(std::isfinite(memory_bound) && memory_bound >= 0 && memory_bound < 1, InvalidArgument,
                "memory_bound = {} must be in [0, 1)", memory_bound);
}

double PowerModel::time_factor(double f) const { return memory_bound + (1 - memory_bound) * reference() / f; }

double PowerModel::active_at(double f) const {
  for (size_t i = 0; i < freqs_mhz.size(); ++i)
    if (std::abs(freqs_mhz[i] - f) <= 1e-9 * f) return active_mw[i];
  TESSERA_THROW(InvalidArgument, "{} MHz is not a frequency level of the power model ({} MHz)", f,
                fmt::join(freqs_mhz, ", "));
}

std::vector<double> PowerModel::tx_levels() const {
  return tx.levels_mw.empty() ? std::vector<double>{tx.max_power_mw} : tx.levels_mw;
}

double PowerModel::tx_rate_mbps(double p, double bw) const {
  if (tx.bandwidth_mhz <= 0 || p >= tx.max_power_mw) return bw;
  // B log2(1 + (2^x - 1) r), x = bw / B, r = p / p_max, written as B (x + log2(r + (1 - r) 2^-x)):
  // no overflow however large x is
  const double B = tx.bandwidth_mhz, x = bw / B, r = p / tx.max_power_mw;
  return B * (x + std::log2(r + (1 - r) * std::exp2(-x)));
}

std::string EnergyDecision::explain(const CostModel& cm) const {
  std::string s = fmt::format("energy plan at {:g} MHz, transmit {:g} mW ({:.3g} Mbit/s up of {:.3g} at full power)",
                              op.frequency_mhz, op.tx_power_mw, parts.tx_rate_mbps, bandwidth_mbps);
  if (lagrangian) s += " [deadline: Lagrangian bound]";
  if (!meets_deadline) s += " [misses the deadline]";
  s += "\n" + parts.explain() + "\n";
  if (placement.size() != static_cast<size_t>(cm.num_atoms())) return s;
  const auto blocks = schedule_blocks(cm.dag, placement);
  s += "blocks:";
  for (size_t b = 0; b < blocks.size(); ++b) {
    const auto& a = blocks[b].atoms;
    s += fmt::format("{} {}[{} atoms: {}..{}]", b ? " ->" : "", blocks[b].target == 0 ? "device" : "server", a.size(),
                     a.empty() ? 0 : a.front(), a.empty() ? 0 : a.back());
  }
  s += "\n";
  for_each_transfer(cm.dag, placement, 2, [&](int v, int from, int) {
    const bool up = from == 0;
    const auto& val = cm.dag.values[v];
    const std::string what = val.producer == kModelInput ? fmt::format("model input '{}'", val.name)
                             : up ? fmt::format("cut after {} (atom {})", cm.atom_label(val.producer), val.producer)
                                  : fmt::format("result of {} (atom {})", cm.atom_label(val.producer), val.producer);
    const double mbps = up ? parts.tx_rate_mbps : bandwidth_mbps;
    const double ms = val.bytes * 8e-3 / mbps;
    s += fmt::format("{} {}: {:.3f} MB = {:.1f} ms + rtt/2 at {:.3g} Mbit/s\n", up ? "up" : "down", what,
                     val.bytes / 1e6, ms, mbps);
  });
  return s;
}

double EnergyParts::throughput_fps() const {
  const double b = std::max({device_ms, link_ms, server_ms});
  return b > 0 ? 1000.0 / b : kInf;
}

std::string EnergyParts::explain() const {
  return fmt::format("{:.3f} mJ = compute {:.3f} + tx {:.3f} + rx {:.3f} + idle {:.3f}; {:.2f} ms (device {:.2f}, "
                     "link {:.2f}, server {:.2f}); up {:.0f} B at {:.3g} Mbit/s",
                     total_mj, compute_mj, tx_mj, rx_mj, idle_mj, latency_ms, device_ms, transfer_ms, server_ms,
                     up_bytes, tx_rate_mbps);
}

EnergyParts device_energy(const CostModel& cm, const PowerModel& pm, const std::vector<int>& x, const Operating& op_in,
                          double bw, double rtt) {
  check_model(cm);
  pm.validate();
  check_link(bw, rtt);
  check_placement(cm.dag, x, 2);
  const Operating op = resolve(pm, op_in);
  const double k = pm.time_factor(op.frequency_mhz), act = pm.active_at(op.frequency_mhz);
  const double rate = pm.tx_rate_mbps(op.tx_power_mw, bw);
  EnergyParts e;
  e.tx_rate_mbps = rate;
  for (int a = 0; a < cm.num_atoms(); ++a) {
    if (x[a] == 0) {
      const double ms = cm.compute_ms[0][a] * k;
      e.device_ms += ms;
      e.compute_mj += ms * act / 1e3;
    } else {
      e.server_ms += cm.compute_ms[1][a];
      e.idle_mj += cm.compute_ms[1][a] * pm.idle_mw / 1e3;
    }
  }
  // one transfer of b bytes at `mbps`, the radio at `mw` while it lasts, idle for half a round trip
  auto send = [&](double b, double mbps, double mw, double& bytes, double& radio_mj) {
    const double ser = b * 8e-3 / mbps;
    bytes += b;
    e.link_ms += ser;
    e.transfer_ms += ser + rtt / 2;
    radio_mj += mw * ser / 1e3;
    e.idle_mj += pm.idle_mw * rtt / 2 / 1e3;
  };
  for_each_transfer(cm.dag, x, 2, [&](int v, int from, int) {
    const double b = cm.dag.values[v].bytes;
    if (from == 0) send(b, rate, op.tx_power_mw, e.up_bytes, e.tx_mj);
    else send(b, bw, pm.rx_mw, e.down_bytes, e.rx_mj);
  });
  e.latency_ms = e.device_ms + e.transfer_ms + e.server_ms;
  e.total_mj = e.compute_mj + e.tx_mj + e.rx_mj + e.idle_mj;
  return e;
}

void energy_cut_costs(const CostModel& cm, const PowerModel& pm, const Operating& op_in, double bw, double rtt,
                      double lw, double ew, CutCosts& out) {
  const Operating op = resolve(pm, op_in);
  const double k = pm.time_factor(op.frequency_mhz), act = pm.active_at(op.frequency_mhz);
  const double rate = pm.tx_rate_mbps(op.tx_power_mw, bw);
  const int n = cm.num_atoms();
  const size_t nv = cm.dag.values.size();
  out.device.assign(n, 0.0);
  out.server.assign(n, 0.0);
  out.up.assign(nv, 0.0);
  out.down.assign(nv, 0.0);
  for (int a = 0; a < n; ++a) {
    const double d = cm.compute_ms[0][a] * k, s = cm.compute_ms[1][a];
    out.device[a] = lw * d + ew * d * act / 1e3;
    out.server[a] = lw * s + ew * s * pm.idle_mw / 1e3;
  }
  for (size_t v = 0; v < nv; ++v) {
    const double b = cm.dag.values[v].bytes;
    const double su = b * 8e-3 / rate, sd = b * 8e-3 / bw;
    out.up[v] = lw * (su + rtt / 2) + ew * (op.tx_power_mw * su + pm.idle_mw * rtt / 2) / 1e3;
    out.down[v] = lw * (sd + rtt / 2) + ew * (pm.rx_mw * sd + pm.idle_mw * rtt / 2) / 1e3;
  }
}

namespace {
void check_weights(const EnergyWeights& w) {
  TESSERA_CHECK(finite_nonneg(w.latency) && finite_nonneg(w.energy) && w.latency + w.energy > 0, InvalidArgument,
                "weights must be >= 0 and not both 0, got latency {} and energy {}", w.latency, w.energy);
  TESSERA_CHECK(!std::isnan(w.deadline_ms) && w.deadline_ms > 0, InvalidArgument, "deadline_ms = {} must be > 0",
                w.deadline_ms);
}

EnergyDecision make(const CostModel& cm, const PowerModel& pm, std::vector<int> x, const Operating& op, double bw,
                    double rtt, const EnergyWeights& w) {
  EnergyDecision d;
  d.placement = std::move(x);
  d.op = op;
  d.parts = device_energy(cm, pm, d.placement, op, bw, rtt);
  d.bandwidth_mbps = bw;
  d.rtt_ms = rtt;
  d.objective = w.latency * d.parts.latency_ms + w.energy * d.parts.total_mj;
  d.meets_deadline = d.parts.latency_ms <= w.deadline_ms * (1 + 1e-9);
  return d;
}

// The best plan at one (f, p) under the deadline: the weighted min cut, or, when it breaks the
// deadline, the cut with the latency weight raised just enough (bisection on the multiplier).
bool best_at(const CostModel& cm, const PowerModel& pm, CutSolver& solver, const Operating& op, double bw, double rtt,
             const EnergyWeights& w, EnergyDecision& out) {
  CutCosts c;
  energy_cut_costs(cm, pm, op, bw, rtt, w.latency, w.energy, c);
  out = make(cm, pm, solver.solve(c), op, bw, rtt, w);
  if (out.meets_deadline) return true;
  // the fastest plan at this (f, p): if it misses the deadline too, the pair cannot meet it
  energy_cut_costs(cm, pm, op, bw, rtt, 1, 0, c);
  EnergyDecision fast = make(cm, pm, solver.solve(c), op, bw, rtt, w);
  if (!fast.meets_deadline) {
    out = fast;
    return false;
  }
  // min (w.latency + mu) latency + w.energy energy: latency falls as mu grows
  double lo = 0, hi = std::max(1.0, w.energy);
  EnergyDecision best = fast;
  for (int it = 0; it < 60; ++it) {
    energy_cut_costs(cm, pm, op, bw, rtt, w.latency + hi, w.energy, c);
    EnergyDecision t = make(cm, pm, solver.solve(c), op, bw, rtt, w);
    if (t.meets_deadline) {
      best = t;
      break;
    }
    lo = hi;
    hi *= 4;
  }
  for (int it = 0; it < 40; ++it) {
    const double mid = (lo + hi) / 2;
    energy_cut_costs(cm, pm, op, bw, rtt, w.latency + mid, w.energy, c);
    EnergyDecision t = make(cm, pm, solver.solve(c), op, bw, rtt, w);
    if (t.meets_deadline) {
      if (t.objective < best.objective) best = t;
      hi = mid;
    } else {
      lo = mid;
    }
  }
  best.lagrangian = true;
  out = best;
  return true;
}
}  // namespace

EnergyDecision plan_energy(const CostModel& cm, const PowerModel& pm, double bw, double rtt, const EnergyWeights& w,
                           CutSolver* reuse) {
  check_model(cm);
  pm.validate();
  check_link(bw, rtt);
  check_weights(w);
  std::unique_ptr<CutSolver> own;
  if (!reuse) own = std::make_unique<CutSolver>(cm.dag, /*compress=*/true);
  CutSolver& solver = reuse ? *reuse : *own;
  EnergyDecision best, fastest;
  bool have = false, have_fast = false;
  int n = 0;
  for (double f : pm.freqs_mhz)
    for (double p : pm.tx_levels()) {
      ++n;
      EnergyDecision d;
      const bool ok = best_at(cm, pm, solver, {f, p}, bw, rtt, w, d);
      if (ok && (!have || d.objective < best.objective)) best = d, have = true;
      if (!ok && (!have_fast || d.parts.latency_ms < fastest.parts.latency_ms)) fastest = d, have_fast = true;
    }
  if (!have) {
    best = fastest;
    best.why = fmt::format("no plan meets the deadline of {} ms: the fastest ({:.1f} ms) runs", w.deadline_ms,
                           best.parts.latency_ms);
  } else if (best.lagrangian) {
    best.why = fmt::format("the deadline of {} ms binds: latency weight raised until it holds", w.deadline_ms);
  }
  best.candidates = n;
  return best;
}

EnergyDecision plan_energy_brute_force(const CostModel& cm, const PowerModel& pm, double bw, double rtt,
                                       const EnergyWeights& w) {
  check_model(cm);
  pm.validate();
  check_link(bw, rtt);
  check_weights(w);
  const int n = cm.num_atoms();
  TESSERA_CHECK(n <= 20, InvalidArgument, "brute force over {} atoms: at most 20", n);
  EnergyDecision best, fastest;
  bool have = false;
  fastest.parts.latency_ms = kInf;
  for (double f : pm.freqs_mhz)
    for (double p : pm.tx_levels())
      for (uint32_t mask = 0; mask < (1u << n); ++mask) {
        std::vector<int> x(n);
        for (int a = 0; a < n; ++a) x[a] = (mask >> a) & 1;
        EnergyDecision d = make(cm, pm, x, {f, p}, bw, rtt, w);
        if (d.meets_deadline && (!have || d.objective < best.objective)) best = d, have = true;
        if (d.parts.latency_ms < fastest.parts.latency_ms) fastest = d;
      }
  return have ? best : fastest;
}

EnergyController::EnergyController(CostModel cm, PowerModel pm, ControllerOptions o)
    : cm_(std::move(cm)), pm_(std::move(pm)), opt_(o), q_(o.initial_queue) {
  check_model(cm_);
  solver_ = std::make_shared<CutSolver>(cm_.dag, /*compress=*/true);  // CIC: the same optimum, a smaller graph
  pm_.validate();
  TESSERA_CHECK(std::isfinite(opt_.V) && opt_.V > 0, InvalidArgument, "V = {} must be > 0", opt_.V);
  TESSERA_CHECK(finite_nonneg(opt_.initial_queue), InvalidArgument, "initial_queue = {} must be >= 0",
                opt_.initial_queue);
  TESSERA_CHECK(!std::isnan(opt_.deadline_ms) && opt_.deadline_ms > 0, InvalidArgument, "deadline_ms = {} must be > 0",
                opt_.deadline_ms);
  // No request takes less than every atom at its fastest, nor spends less than the lowest power
  // over that time: a budget below it cannot be met by any policy.
  double ms = 0;
  const double k = pm_.time_factor(pm_.freqs_mhz.back());
  for (int a = 0; a < cm_.num_atoms(); ++a) ms += std::min(cm_.compute_ms[0][a] * k, cm_.compute_ms[1][a]);
  const double lowest = std::min(pm_.idle_mw, *std::min_element(pm_.active_mw.begin(), pm_.active_mw.end()));
  const double floor_mj = ms * lowest / 1e3;
  TESSERA_CHECK(std::isfinite(opt_.budget_mj) && opt_.budget_mj > floor_mj, InvalidArgument,
                "budget_mj = {} is below the device's idle energy over the shortest possible request ({:.4g} mJ: "
                "{:.4g} mW x {:.4g} ms): no policy can meet it",
                opt_.budget_mj, floor_mj, lowest, ms);
}

EnergyDecision EnergyController::decide(double bw, double rtt) const {
  EnergyWeights w;
  w.latency = opt_.V;
  w.energy = q_;
  w.deadline_ms = opt_.deadline_ms;
  return plan_energy(cm_, pm_, bw, rtt, w, solver_.get());
}

void EnergyController::observe(double e) {
  TESSERA_CHECK(finite_nonneg(e), InvalidArgument, "observed energy {} mJ must be >= 0", e);
  q_ = std::max(q_ + e - opt_.budget_mj, 0.0);
}

std::vector<EnergyRecord> run_controller(EnergyController& ctl, const std::vector<double>& bws, double rtt) {
  std::vector<EnergyRecord> out;
  out.reserve(bws.size());
  for (size_t i = 0; i < bws.size(); ++i) {
    EnergyRecord r;
    r.index = static_cast<int>(i);
    r.bandwidth_mbps = bws[i];
    r.queue = ctl.queue();
    r.decision = ctl.decide(bws[i], rtt);
    ctl.observe(r.decision.parts.total_mj);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<EnergyDecision> energy_hull(const CostModel& cm, const PowerModel& pm, double bw, double rtt,
                                        double deadline_ms) {
  CutSolver solver(cm.dag, /*compress=*/true);
  EnergyWeights w;
  w.deadline_ms = deadline_ms;
  w.latency = 1;
  w.energy = 0;
  EnergyDecision fast = plan_energy(cm, pm, bw, rtt, w, &solver);
  w.latency = 1e-9;
  w.energy = 1;
  EnergyDecision frugal = plan_energy(cm, pm, bw, rtt, w, &solver);
  std::vector<EnergyDecision> hull = {fast};
  // points strictly between a and b on the hull, in order of decreasing energy
  std::function<void(const EnergyDecision&, const EnergyDecision&, int)> between = [&](const EnergyDecision& a,
                                                                                      const EnergyDecision& b,
                                                                                      int depth) {
    const double de = a.parts.total_mj - b.parts.total_mj, dl = b.parts.latency_ms - a.parts.latency_ms;
    if (depth > 40 || de <= 1e-9 * std::max(1.0, a.parts.total_mj) || dl <= 0) return;
    EnergyWeights m;
    m.deadline_ms = deadline_ms;
    m.latency = 1;
    m.energy = dl / de;  // a and b tie here
    EnergyDecision c = plan_energy(cm, pm, bw, rtt, m, &solver);
    const double tie = a.parts.latency_ms + m.energy * a.parts.total_mj;
    if (c.objective >= tie * (1 - 1e-9) - 1e-12) return;  // nothing below the segment
    between(a, c, depth + 1);
    hull.push_back(c);
    between(c, b, depth + 1);
  };
  if (frugal.parts.total_mj < fast.parts.total_mj * (1 - 1e-12)) {
    between(fast, frugal, 0);
    hull.push_back(frugal);
  }
  return hull;
}

std::vector<EnergyDecision> energy_oracle_from_hulls(const std::vector<std::vector<EnergyDecision>>& hulls,
                                                     double budget_mj, double* lambda_out) {
  TESSERA_CHECK(!hulls.empty(), InvalidArgument, "the oracle needs at least one request");
  TESSERA_CHECK(std::isfinite(budget_mj) && budget_mj > 0, InvalidArgument, "budget_mj = {} must be > 0", budget_mj);
  std::vector<size_t> at(hulls.size(), 0);
  double total = 0;
  struct Move {
    double slope;  // latency added per mJ saved
    size_t req, to;
  };
  std::vector<Move> moves;
  for (size_t i = 0; i < hulls.size(); ++i) {
    TESSERA_CHECK(!hulls[i].empty(), InvalidArgument, "request {} has an empty hull", i);
    total += hulls[i][0].parts.total_mj;
    for (size_t k = 1; k < hulls[i].size(); ++k) {
      const auto &a = hulls[i][k - 1].parts, &b = hulls[i][k].parts;
      const double de = a.total_mj - b.total_mj;
      moves.push_back({de > 0 ? (b.latency_ms - a.latency_ms) / de : kInf, i, k});
    }
  }
  // per request the slopes increase along a convex hull, so the global order keeps each request's order
  std::stable_sort(moves.begin(), moves.end(), [](const Move& x, const Move& y) { return x.slope < y.slope; });
  const double cap = budget_mj * static_cast<double>(hulls.size());
  double lambda = 0;
  for (const auto& mv : moves) {
    if (total <= cap * (1 + 1e-12)) break;
    if (at[mv.req] + 1 != mv.to) continue;  // not convex at this point: keep the request's order
    total -= hulls[mv.req][mv.to - 1].parts.total_mj - hulls[mv.req][mv.to].parts.total_mj;
    at[mv.req] = mv.to;
    lambda = mv.slope;
  }
  std::vector<EnergyDecision> out;
  for (size_t i = 0; i < hulls.size(); ++i) out.push_back(hulls[i][at[i]]);
  if (lambda_out) *lambda_out = lambda;
  return out;
}

std::vector<EnergyDecision> energy_oracle(const CostModel& cm, const PowerModel& pm, const std::vector<double>& bws,
                                          double rtt, double budget_mj, double deadline_ms, double* lambda_out) {
  check_model(cm);
  pm.validate();
  TESSERA_CHECK(!bws.empty(), InvalidArgument, "the oracle needs at least one request");
  std::vector<std::vector<EnergyDecision>> hulls;
  for (double bw : bws) hulls.push_back(energy_hull(cm, pm, bw, rtt, deadline_ms));
  return energy_oracle_from_hulls(hulls, budget_mj, lambda_out);
}

}  // namespace tessera::plan
