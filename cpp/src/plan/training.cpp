// plan/training.cpp -- split and pipeline-parallel training: the step simulator, the cost of a
// placement and the exhaustive planner (see tessera/plan/training.h for the models).
#include "tessera/plan/training.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <queue>
#include <tuple>

#include "tessera/core/error.h"

#include <fmt/format.h>

namespace tessera::plan {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

bool nonneg(double x) { return std::isfinite(x) && x >= 0; }

// x less a relative 1e-9 (x itself when infinite): what a step must beat to count as better than x.
double beat(double x) { return std::isfinite(x) ? x - 1e-9 * std::max(1.0, x) : x; }

void check_stage(const TrainingStage& s, size_t i) {
  TESSERA_CHECK(s.node >= 0 && s.node < (1 << 20), InvalidArgument, "stages[{}].node = {} must be a node index >= 0",
                i, s.node);
  const std::pair<const char*, double> fields[] = {
      {"fwd_ms", s.fwd_ms},           {"bwd_ms", s.bwd_ms},           {"send_fwd_ms", s.send_fwd_ms},
      {"send_bwd_ms", s.send_bwd_ms}, {"fwd_delay_ms", s.fwd_delay_ms}, {"bwd_delay_ms", s.bwd_delay_ms},
      {"stored_bytes", s.stored_bytes}, {"update_ms", s.update_ms}};
  for (const auto& [name, v] : fields)
    TESSERA_CHECK(nonneg(v), InvalidArgument, "stages[{}].{} = {} must be finite and >= 0", i, name, v);
}

// The stage's passes in the schedule's order: (forward?, micro-batch).
std::vector<std::pair<bool, int>> stage_order(PipeSchedule schedule, int S, int i, int m) {
  std::vector<std::pair<bool, int>> seq;
  if (schedule == PipeSchedule::GPipe) {
    for (int j = 0; j < m; ++j) seq.emplace_back(true, j);
    for (int j = m - 1; j >= 0; --j) seq.emplace_back(false, j);
    return seq;
  }
  const int w = std::min(S - i, m);
  for (int j = 0; j < w; ++j) seq.emplace_back(true, j);
  for (int k = 0; k < m; ++k) {
    seq.emplace_back(false, k);
    if (w + k < m) seq.emplace_back(true, w + k);
  }
  return seq;
}

// A stored micro-batch: from the start of its forward to the end of its backward.
struct Held {
  double start, end;      // ms
  bool instant_free;      // its backward took no time: freed in run order, not before what starts then
  int64_t f_seq, b_seq;   // the order its forward and backward ran in
  double weight;          // bytes (or 1 to count micro-batches)
};

// The peak of the weights held at once. At one instant, what a backward of positive length frees
// goes first; then allocations and the frees of backwards of no length, in the order they ran.
double peak_of(const std::vector<Held>& held) {
  std::vector<std::tuple<double, int, int64_t, double>> points;  // (time, class, run order, delta)
  for (const auto& h : held) {
    points.emplace_back(h.start, 1, h.f_seq, h.weight);
    points.emplace_back(h.end, h.instant_free ? 1 : 0, h.b_seq, -h.weight);
  }
  std::sort(points.begin(), points.end());
  double cur = 0, peak = 0;
  for (const auto& p : points) peak = std::max(peak, cur += std::get<3>(p));
  return peak;
}

double ser_ms(double bytes, double mbps) { return bytes <= 0 ? 0.0 : bytes * 8e-3 / mbps; }

bool has_gradient(const DagValue& v) {
  if (v.producer == kModelInput) return false;
  const std::string& d = v.dtype;
  return !(d.rfind("int", 0) == 0 || d.rfind("uint", 0) == 0 || d == "bool" || d.rfind("qint", 0) == 0 ||
           d.rfind("quint", 0) == 0);
}

// A run of atoms [p, q) on one node with its full-batch sums.
struct Seg {
  int node = 0, p = 0, q = 0;
  double fwd = 0, bwd = 0, upd = 0, params = 0, made = 0;  // ms, ms, ms, bytes, bytes of values made
};
// What crosses the cut between two consecutive segments (full batch).
struct Cut {
  double fwd = 0, grad = 0;
};

// Per micro-batch stage costs of segments; false (and `why`) when a link that carries bytes is missing.
bool price(const PipelineNetwork& net, const std::vector<Seg>& segs, const std::vector<Cut>& cuts, int m,
           const TrainingOptions& o, std::vector<TrainingStage>& out, std::string* why) {
  const size_t S = segs.size();
  out.assign(S, TrainingStage{});
  const double inv = 1.0 / m;
  for (size_t k = 0; k < S; ++k) {
    const Seg& g = segs[k];
    const double load = net.nodes[g.node].load, over = g.q > g.p ? o.micro_batch_overhead_ms : 0.0;
    TrainingStage& s = out[k];
    s.node = g.node;
    s.fwd_ms = g.fwd * load * inv + over;
    s.bwd_ms = g.bwd * load * inv + over;
    s.update_ms = g.upd * load;
    s.stored_bytes = (g.made + (k > 0 ? cuts[k - 1].fwd : 0.0)) * inv;
  }
  for (size_t k = 0; k + 1 < S; ++k) {
    const int a = segs[k].node, b = segs[k + 1].node;
    const double rtt_ab = net.rtt_ms.empty() ? 0.0 : net.rtt_ms[a][b];
    const double rtt_ba = net.rtt_ms.empty() ? 0.0 : net.rtt_ms[b][a];
    const double f = cuts[k].fwd * inv, g = cuts[k].grad * inv;
    if (a == b) continue;  // two runs on one node (a placement given by hand): nothing crosses a link
    if ((f > 0 && !(net.bandwidth_mbps[a][b] > 0)) || (g > 0 && !(net.bandwidth_mbps[b][a] > 0))) {
      if (why)
        *why = fmt::format("stages {} and {} need a link between '{}' and '{}', which are not linked both ways", k,
                           k + 1, net.nodes[a].name, net.nodes[b].name);
      return false;
    }
    if (f > 0) out[k].send_fwd_ms = ser_ms(f, net.bandwidth_mbps[a][b]), out[k].fwd_delay_ms = rtt_ab / 2;
    if (g > 0) out[k + 1].send_bwd_ms = ser_ms(g, net.bandwidth_mbps[b][a]), out[k + 1].bwd_delay_ms = rtt_ba / 2;
  }
  return true;
}

// A lower bound of simulate_training's makespan: every node's and link's busy time, and the
// critical path of one micro-batch (+ the first stage's update, after its last backward).
double lower_bound(const std::vector<TrainingStage>& st, int m, std::vector<double>& node_busy) {
  std::fill(node_busy.begin(), node_busy.end(), 0.0);
  double path = 0, bound = 0;
  std::map<std::pair<int, int>, double> link;
  for (size_t k = 0; k < st.size(); ++k) {
    const auto& s = st[k];
    node_busy[s.node] += m * (s.fwd_ms + s.bwd_ms) + s.update_ms;
    path += s.fwd_ms + s.bwd_ms;
    if (k + 1 < st.size()) {
      path += s.send_fwd_ms + s.fwd_delay_ms + st[k + 1].send_bwd_ms + st[k + 1].bwd_delay_ms;
      if (s.node != st[k + 1].node) {
        link[{s.node, st[k + 1].node}] += m * s.send_fwd_ms;
        link[{st[k + 1].node, s.node}] += m * st[k + 1].send_bwd_ms;
      }
    }
  }
  bound = path + st.front().update_ms;
  for (double b : node_busy) bound = std::max(bound, b);
  for (const auto& [k, b] : link) bound = std::max(bound, b);
  return bound;
}

std::string mb(double bytes) { return std::isfinite(bytes) ? fmt::format("{:.2f} MB", bytes / 1e6) : "unlimited"; }

std::string stage_text(const PipelineNetwork& net, const Stage& s) {
  if (s.atoms.empty()) return fmt::format("{} (no atoms)", net.nodes[s.node].name);
  return fmt::format("{} atoms {}-{}", net.nodes[s.node].name, s.atoms.front(), s.atoms.back());
}

// Memory of the nodes for simulated stages; returns the worst overrun (bytes over capacity, <= 0: fits).
double memory_of(const PipelineNetwork& net, const std::vector<Seg>& segs, const TrainingTimeline& tl,
                 const TrainingOptions& o, std::vector<double>& param, std::vector<double>& stored,
                 std::vector<double>& total, int* worst_node) {
  const size_t K = net.nodes.size();
  param.assign(K, 0.0), stored.assign(K, 0.0), total.assign(K, 0.0);
  for (const auto& g : segs) param[g.node] += g.params * (2 + o.optimizer_state_factor);
  double worst = -kInf;
  for (size_t u = 0; u < K; ++u) {
    stored[u] = u < tl.node_peak_stored_bytes.size() ? tl.node_peak_stored_bytes[u] : 0.0;
    total[u] = param[u] + stored[u];
    const double over = total[u] - net.nodes[u].memory_bytes;
    if (over > worst) worst = over, *worst_node = static_cast<int>(u);
  }
  return worst;
}

}  // namespace

const char* schedule_name(PipeSchedule schedule) { return schedule == PipeSchedule::GPipe ? "gpipe" : "1f1b"; }

PipeSchedule parse_schedule(const std::string& name) {
  if (name == "gpipe") return PipeSchedule::GPipe;
  if (name == "1f1b" || name == "one_f_one_b" || name == "pipedream_flush") return PipeSchedule::OneFOneB;
  TESSERA_THROW(InvalidArgument, "schedule = '{}' is not a schedule (gpipe, 1f1b)", name);
}

const char* training_op_name(TrainingOp op) {
  switch (op) {
    case TrainingOp::Forward: return "F";
    case TrainingOp::Backward: return "B";
    case TrainingOp::SendForward: return "send_F";
    case TrainingOp::SendBackward: return "send_B";
    case TrainingOp::Update: return "update";
  }
  return "?";
}

TrainingTimeline simulate_training(const std::vector<TrainingStage>& stages, int m, PipeSchedule schedule) {
  TESSERA_CHECK(!stages.empty(), InvalidArgument, "stages is empty: a training step needs at least one stage");
  TESSERA_CHECK(m >= 1 && m <= 1000000, InvalidArgument, "micro_batches = {} must be in [1, 1e6]", m);
  for (size_t i = 0; i < stages.size(); ++i) check_stage(stages[i], i);
  const int S = static_cast<int>(stages.size());
  int K = 0;
  for (const auto& s : stages) K = std::max(K, s.node + 1);

  std::vector<std::vector<std::pair<bool, int>>> seq(S);
  for (int i = 0; i < S; ++i) seq[i] = stage_order(schedule, S, i, m);
  std::vector<size_t> head(S, 0);
  std::vector<char> queued(S, 0);
  std::vector<double> stage_free(S, 0.0), node_free(K, 0.0);
  std::map<std::pair<int, int>, double> link_free;
  const double unknown = -1;
  std::vector<std::vector<double>> f_arr(S, std::vector<double>(m, unknown)), b_arr = f_arr;
  std::fill(f_arr[0].begin(), f_arr[0].end(), 0.0);

  // (ready, 0 = backward side / 1 = forward side, micro-batch, -stage, op): the smallest runs first
  using Item = std::tuple<double, int, int, int, int>;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> ready;
  auto push = [&](double t, TrainingOp op, int i, int j) {
    const bool fwd_side = op == TrainingOp::Forward || op == TrainingOp::SendForward;
    ready.emplace(t, fwd_side ? 1 : 0, j, -i, static_cast<int>(op));
  };
  auto try_head = [&](int i) {
    if (queued[i] || head[i] >= seq[i].size()) return;
    const auto [fwd, j] = seq[i][head[i]];
    const double arrival = fwd ? f_arr[i][j] : b_arr[i][j];
    if (arrival == unknown) return;
    queued[i] = 1;
    push(std::max(arrival, stage_free[i]), fwd ? TrainingOp::Forward : TrainingOp::Backward, i, j);
  };
  for (int i = 0; i < S; ++i) try_head(i);

  TrainingTimeline tl;
  tl.node_busy_ms.assign(K, 0.0);
  std::vector<std::vector<double>> f_start(S, std::vector<double>(m, 0.0)), b_start = f_start, b_end = f_start;
  std::vector<std::vector<int64_t>> f_seq(S, std::vector<int64_t>(m, 0)), b_seq = f_seq;
  int64_t seq_no = 0;  // compute events in the order they ran
  while (!ready.empty()) {
    const auto [t, side, j, neg_i, op_code] = ready.top();
    ready.pop();
    (void)side;
    const int i = -neg_i;
    const auto op = static_cast<TrainingOp>(op_code);
    const TrainingStage& s = stages[i];
    TrainingEvent e;
    e.stage = i, e.micro_batch = j, e.op = op, e.node = s.node;
    if (op == TrainingOp::SendForward || op == TrainingOp::SendBackward) {
      const int to = op == TrainingOp::SendForward ? stages[i + 1].node : stages[i - 1].node;
      double& free = link_free[{s.node, to}];
      e.to_node = to;
      e.start_ms = std::max(t, free);
      e.end_ms = e.start_ms + (op == TrainingOp::SendForward ? s.send_fwd_ms : s.send_bwd_ms);
      free = e.end_ms;
      if (op == TrainingOp::SendForward) {
        f_arr[i + 1][j] = e.end_ms + s.fwd_delay_ms;
        try_head(i + 1);
      } else {
        b_arr[i - 1][j] = e.end_ms + s.bwd_delay_ms;
        try_head(i - 1);
      }
      tl.events.push_back(e);
      continue;
    }
    double& free = node_free[s.node];
    e.start_ms = std::max(t, free);
    e.end_ms = e.start_ms + (op == TrainingOp::Forward ? s.fwd_ms : op == TrainingOp::Backward ? s.bwd_ms : s.update_ms);
    free = e.end_ms;
    tl.node_busy_ms[s.node] += e.end_ms - e.start_ms;
    if (op == TrainingOp::Update) {
      e.micro_batch = -1;
      tl.events.push_back(e);
      continue;
    }
    stage_free[i] = e.end_ms;
    queued[i] = 0;
    ++head[i];
    if (op == TrainingOp::Forward) {
      f_start[i][j] = e.start_ms, f_seq[i][j] = seq_no++;
      if (i + 1 < S) push(e.end_ms, TrainingOp::SendForward, i, j);
      else b_arr[i][j] = e.end_ms;  // the loss: the last stage's backward may start
    } else {
      b_start[i][j] = e.start_ms, b_end[i][j] = e.end_ms, b_seq[i][j] = seq_no++;
      if (i > 0) push(e.end_ms, TrainingOp::SendBackward, i, j);
      if (head[i] == seq[i].size()) push(e.end_ms, TrainingOp::Update, i, m);
    }
    tl.events.push_back(e);
    try_head(i);
  }
  for (int i = 0; i < S; ++i)
    TESSERA_CHECK(head[i] == seq[i].size(), Engine, "simulate_training: stage {} stopped after {} of {} passes", i,
                  head[i], seq[i].size());

  std::stable_sort(tl.events.begin(), tl.events.end(),  // equal starts stay in the order they ran
                   [](const TrainingEvent& a, const TrainingEvent& b) { return a.start_ms < b.start_ms; });
  for (const auto& e : tl.events) tl.makespan_ms = std::max(tl.makespan_ms, e.end_ms);
  std::vector<std::vector<Held>> node_held(K);
  for (int i = 0; i < S; ++i) {
    std::vector<Held> held;
    for (int j = 0; j < m; ++j) {
      Held h{f_start[i][j], b_end[i][j], b_end[i][j] == b_start[i][j], f_seq[i][j], b_seq[i][j], 1.0};
      held.push_back(h);
      h.weight = stages[i].stored_bytes;
      node_held[stages[i].node].push_back(h);
    }
    tl.peak_in_flight.push_back(static_cast<int>(std::lround(peak_of(held))));
    tl.peak_stored_bytes.push_back(tl.peak_in_flight.back() * stages[i].stored_bytes);
  }
  for (int u = 0; u < K; ++u) tl.node_peak_stored_bytes.push_back(peak_of(node_held[u]));
  return tl;
}

void TrainingCosts::validate(const AtomDag& dag, const PipelineNetwork& net) const {
  const size_t K = net.nodes.size(), n = static_cast<size_t>(dag.num_atoms);
  auto check = [&](const std::vector<std::vector<double>>& t, const char* field, bool optional) {
    if (optional && t.empty()) return;
    TESSERA_CHECK(t.size() == K, InvalidArgument, "{} has {} rows, the network has {} nodes", field, t.size(), K);
    for (size_t u = 0; u < K; ++u) {
      TESSERA_CHECK(t[u].size() == n, InvalidArgument, "{}[{}] ('{}') has {} atom costs, the model has {} atoms",
                    field, u, net.nodes[u].name, t[u].size(), n);
      for (size_t a = 0; a < n; ++a)
        TESSERA_CHECK(nonneg(t[u][a]), InvalidArgument, "{}[{}][{}] ({} on '{}') = {} must be finite and >= 0",
                      field, u, a, dag.atom_label(static_cast<int>(a)), net.nodes[u].name, t[u][a]);
    }
  };
  check(backward_ms, "backward_ms", false);
  check(update_ms, "update_ms", true);
}

void TrainingOptions::validate(int num_nodes) const {
  TESSERA_CHECK(batch_size >= 1, InvalidArgument,
                "batch_size = {}: give the samples per step the costs were measured at (>= 1)", batch_size);
  TESSERA_CHECK(!micro_batches.empty(), InvalidArgument, "micro_batches is empty: give at least one choice (e.g. 1)");
  for (size_t i = 0; i < micro_batches.size(); ++i)
    TESSERA_CHECK(micro_batches[i] >= 1 && micro_batches[i] <= batch_size, InvalidArgument,
                  "micro_batches[{}] = {} must be in [1, batch_size = {}]", i, micro_batches[i], batch_size);
  TESSERA_CHECK(!schedules.empty(), InvalidArgument, "schedules is empty: give gpipe, 1f1b or both");
  TESSERA_CHECK(std::isfinite(optimizer_state_factor) && optimizer_state_factor >= 0, InvalidArgument,
                "optimizer_state_factor = {} must be finite and >= 0", optimizer_state_factor);
  TESSERA_CHECK(nonneg(micro_batch_overhead_ms), InvalidArgument, "micro_batch_overhead_ms = {} must be finite and >= 0",
                micro_batch_overhead_ms);
  TESSERA_CHECK(max_candidates >= 1, InvalidArgument, "max_candidates = {} must be >= 1", max_candidates);
  TESSERA_CHECK(order.empty() || order[0] == 0, InvalidArgument, "order must start with node 0 (the device), got {}",
                order.empty() ? -1 : order[0]);
  std::vector<char> seen(static_cast<size_t>(std::max(num_nodes, 0)), 0);
  for (size_t i = 0; i < order.size(); ++i) {
    TESSERA_CHECK(order[i] >= 0 && order[i] < num_nodes, InvalidArgument, "order[{}] = {} is not a node in [0, {})", i,
                  order[i], num_nodes);
    TESSERA_CHECK(!seen[order[i]], InvalidArgument, "order[{}] = {}: the node appears twice", i, order[i]);
    seen[order[i]] = 1;
  }
}

double optimizer_state_factor(const std::string& optimizer) {
  if (optimizer == "sgd") return 0;
  if (optimizer == "sgd_momentum" || optimizer == "momentum") return 1;
  if (optimizer == "adam" || optimizer == "adamw") return 2;
  TESSERA_THROW(InvalidArgument, "optimizer = '{}' is not known (sgd, sgd_momentum, adam, adamw)", optimizer);
}

namespace {

void check_inputs(const AtomDag& dag, const PipelineNetwork& net, const TrainingCosts& costs,
                  const TrainingOptions& o) {
  net.validate(dag);
  TESSERA_CHECK(dag.num_atoms >= 1, InvalidArgument, "the model has no atoms to train");
  costs.validate(dag, net);
  o.validate(static_cast<int>(net.nodes.size()));
}

// The segments of a placement and what crosses their cuts, by a direct walk over atoms and values.
void segments_of(const AtomDag& dag, const PipelineNetwork& net, const TrainingCosts& costs,
                 const std::vector<int>& placement, bool labels_on_device, std::vector<Seg>& segs,
                 std::vector<Cut>& cuts) {
  const int n = dag.num_atoms;
  segs.clear();
  if (placement[0] != 0) segs.push_back({0, 0, 0});  // node 0 holds the inputs: it sends them
  for (int a = 0; a < n; ++a) {
    if (segs.empty() || segs.back().node != placement[a]) segs.push_back({placement[a], a, a});
    Seg& g = segs.back();
    g.q = a + 1;
    g.fwd += net.nodes[g.node].compute_ms[a];
    g.bwd += costs.backward_ms[g.node][a];
    g.upd += costs.update_ms.empty() ? 0.0 : costs.update_ms[g.node][a];
    g.params += dag.param_bytes.empty() ? 0.0 : dag.param_bytes[a];
  }
  if (labels_on_device && placement[n - 1] != 0) segs.push_back({0, n, n});  // the loss on node 0
  cuts.assign(segs.size() - 1, Cut{});
  for (const auto& v : dag.values) {
    int last = -1;
    for (int c : v.consumers) last = std::max(last, c);
    if (v.is_output) last = n;  // the loss reads it after every atom
    for (auto& g : segs)
      if (v.producer >= g.p && v.producer < g.q) g.made += v.bytes;
    for (size_t k = 0; k + 1 < segs.size(); ++k) {
      const int c = segs[k + 1].p;  // the cut before stage k + 1
      if (v.producer < c && last >= c) {
        cuts[k].fwd += v.bytes;
        if (has_gradient(v)) cuts[k].grad += v.bytes;
      }
    }
  }
}

std::vector<Stage> stages_of(const std::vector<Seg>& segs) {
  std::vector<Stage> out;
  for (const auto& g : segs) {
    Stage s;
    s.node = g.node;
    for (int a = g.p; a < g.q; ++a) s.atoms.push_back(a);
    out.push_back(std::move(s));
  }
  return out;
}

TrainingPlan finish(const AtomDag& dag, const PipelineNetwork& net, const std::vector<Seg>& segs,
                    std::vector<TrainingStage> st, int m, PipeSchedule schedule, const TrainingOptions& o) {
  TrainingPlan p;
  p.algorithm = "evaluate";
  p.stages = stages_of(segs);
  p.placement.assign(static_cast<size_t>(dag.num_atoms), 0);
  for (const auto& g : segs)
    for (int a = g.p; a < g.q; ++a) p.placement[a] = g.node;
  p.micro_batches = m;
  p.schedule = schedule;
  p.batch_size = o.batch_size;
  p.timeline = simulate_training(st, m, schedule);
  p.stage_costs = std::move(st);
  p.step_ms = p.timeline.makespan_ms;
  p.samples_per_s = p.step_ms > 0 ? o.batch_size * 1000.0 / p.step_ms : kInf;
  int worst = 0;
  const double over =
      memory_of(net, segs, p.timeline, o, p.node_param_bytes, p.node_stored_bytes, p.node_memory_bytes, &worst);
  if (over > 0) {
    p.status = PlanStatus::Infeasible;
    p.reason = fmt::format(
        "node '{}' needs {} (parameters, gradients and optimizer state {} + stored activations {}), over its {} by {}",
        net.nodes[worst].name, mb(p.node_memory_bytes[worst]), mb(p.node_param_bytes[worst]),
        mb(p.node_stored_bytes[worst]), mb(net.nodes[worst].memory_bytes), mb(over));
  }
  return p;
}

}  // namespace

std::vector<TrainingStage> training_stages(const AtomDag& dag, const PipelineNetwork& net, const TrainingCosts& costs,
                                           const std::vector<int>& placement, int micro_batches,
                                           const TrainingOptions& o, std::vector<Stage>* stages_out) {
  check_inputs(dag, net, costs, o);
  check_placement(dag, placement, static_cast<int>(net.nodes.size()));
  TESSERA_CHECK(micro_batches >= 1 && micro_batches <= o.batch_size, InvalidArgument,
                "micro_batches = {} must be in [1, batch_size = {}]", micro_batches, o.batch_size);
  std::vector<Seg> segs;
  std::vector<Cut> cuts;
  segments_of(dag, net, costs, placement, o.labels_on_device, segs, cuts);
  std::vector<TrainingStage> st;
  std::string why;
  TESSERA_CHECK(price(net, segs, cuts, micro_batches, o, st, &why), InvalidArgument, "{}", why);
  if (stages_out) *stages_out = stages_of(segs);
  return st;
}

TrainingPlan evaluate_training(const AtomDag& dag, const PipelineNetwork& net, const TrainingCosts& costs,
                               const std::vector<int>& placement, int micro_batches, PipeSchedule schedule,
                               const TrainingOptions& o) {
  std::vector<TrainingStage> st = training_stages(dag, net, costs, placement, micro_batches, o);
  std::vector<Seg> segs;
  std::vector<Cut> cuts;
  segments_of(dag, net, costs, placement, o.labels_on_device, segs, cuts);
  TrainingPlan p = finish(dag, net, segs, std::move(st), micro_batches, schedule, o);
  for (int a = 0; a < dag.num_atoms && !net.pin.empty(); ++a)
    if (net.pin[a] >= 0 && net.pin[a] != placement[a]) {
      p.status = PlanStatus::Infeasible;
      p.reason = fmt::format("{} is pinned to '{}' but placed on '{}'", dag.atom_label(a), net.nodes[net.pin[a]].name,
                             net.nodes[placement[a]].name);
      break;
    }
  return p;
}

TrainingPlan plan_training(const AtomDag& dag, const PipelineNetwork& net, const TrainingCosts& costs,
                           const TrainingOptions& o) {
  check_inputs(dag, net, costs, o);
  const int n = dag.num_atoms, K = static_cast<int>(net.nodes.size());
  std::vector<int> order = o.order;
  if (order.empty())
    for (int u = 0; u < K; ++u) order.push_back(u);
  std::vector<int> seq = order;  // the node of each segment: node 0, the servers, node 0 again in a U
  if (o.labels_on_device) seq.push_back(0);
  const int L = static_cast<int>(seq.size()) - 1;  // cuts
  std::vector<int> choices = o.micro_batches;
  std::sort(choices.begin(), choices.end());
  choices.erase(std::unique(choices.begin(), choices.end()), choices.end());
  double tuples = 1;  // C(n + L, L)
  for (int i = 1; i <= L; ++i) tuples = tuples * (n + i) / i;
  const double total = tuples * static_cast<double>(choices.size() * o.schedules.size());
  TESSERA_CHECK(total <= static_cast<double>(o.max_candidates), InvalidArgument,
                "plan_training would try {:.3g} candidates ({} atoms, {} cuts, {} micro-batch choices, {} schedules), "
                "over max_candidates = {}: give fewer nodes in order or raise it",
                total, n, L, choices.size(), o.schedules.size(), o.max_candidates);

  // prefix sums over atom ids (x load later), and the bytes across each cut position
  std::vector<std::vector<double>> F(K, std::vector<double>(n + 1, 0.0)), B = F, U = F;
  std::vector<double> params(n + 1, 0.0), made(n + 1, 0.0), cross_f(n + 2, 0.0), cross_g(n + 2, 0.0);
  std::vector<int> pinned_any(n + 1, 0);
  std::vector<std::vector<int>> pinned_to(K, std::vector<int>(n + 1, 0));
  for (int a = 0; a < n; ++a) {
    for (int u = 0; u < K; ++u) {
      F[u][a + 1] = F[u][a] + net.nodes[u].compute_ms[a];
      B[u][a + 1] = B[u][a] + costs.backward_ms[u][a];
      U[u][a + 1] = U[u][a] + (costs.update_ms.empty() ? 0.0 : costs.update_ms[u][a]);
      const int to = net.pin.empty() ? -1 : net.pin[a];
      pinned_to[u][a + 1] = pinned_to[u][a] + (to == u);
    }
    params[a + 1] = params[a] + (dag.param_bytes.empty() ? 0.0 : dag.param_bytes[a]);
    pinned_any[a + 1] = pinned_any[a] + (!net.pin.empty() && net.pin[a] >= 0);
  }
  for (const auto& v : dag.values) {
    if (v.producer != kModelInput) made[v.producer + 1] += v.bytes;
    int last = -1;
    for (int c : v.consumers) last = std::max(last, c);
    if (v.is_output) last = n;
    const int from = v.producer + 1;  // crosses the cuts c in [producer + 1, last]
    if (last < from) continue;
    cross_f[from] += v.bytes, cross_f[last + 1] -= v.bytes;
    if (has_gradient(v)) cross_g[from] += v.bytes, cross_g[last + 1] -= v.bytes;
  }
  for (int c = 1; c <= n; ++c) made[c] += made[c - 1], cross_f[c] += cross_f[c - 1], cross_g[c] += cross_g[c - 1];

  TrainingPlan best_plan;
  double best = kInf;
  std::vector<Seg> best_segs;
  int best_m = 0;
  PipeSchedule best_sched = o.schedules.front();
  std::vector<double> best_by_m(choices.size(), kInf);
  int64_t simulated = 0, pruned = 0, over_memory = 0, unreachable = 0, pinned = 0;
  double closest = kInf;  // the smallest worst overrun of a candidate over memory
  std::vector<Seg> closest_segs;
  int closest_m = 1;
  PipeSchedule closest_sched = o.schedules.front();
  std::string unreachable_why;

  std::vector<int> p(L + 2, 0);
  std::vector<Seg> segs;
  std::vector<Cut> cuts;
  std::vector<TrainingStage> st;
  std::vector<double> node_busy(K), param, stored, tot;
  for (size_t ci = 0; ci < choices.size(); ++ci) {
    const int m = choices[ci];
    double& best_m_step = best_by_m[ci];
    bool device_only_done = false;
    // every tuple 0 <= p[1] <= .. <= p[L] <= n (p[0] = 0, p[L + 1] = n)
    std::function<void(int, int)> rec = [&](int i, int lo) {
      if (i <= L) {
        for (int c = lo; c <= n; ++c) {
          p[i] = c;
          rec(i + 1, c);
        }
        return;
      }
      p[0] = 0, p[L + 1] = n;
      segs.clear();
      bool any_server = false;
      for (int k = 0; k <= L; ++k) {
        const bool server = k >= 1 && seq[k] != 0;
        if (server && p[k] == p[k + 1]) continue;  // a server with no atoms is skipped
        any_server |= server;
        segs.push_back({seq[k], p[k], p[k + 1]});
      }
      if (!any_server) {  // node 0 alone: one stage, the same for every tuple
        if (device_only_done) return;
        device_only_done = true;
        segs.assign(1, Seg{0, 0, n});
      }
      for (auto& g : segs) {
        if ((pinned_any[g.q] - pinned_any[g.p]) - (pinned_to[g.node][g.q] - pinned_to[g.node][g.p]) > 0) {
          ++pinned;
          return;
        }
        g.fwd = F[g.node][g.q] - F[g.node][g.p];
        g.bwd = B[g.node][g.q] - B[g.node][g.p];
        g.upd = U[g.node][g.q] - U[g.node][g.p];
        g.params = params[g.q] - params[g.p];
        g.made = made[g.q] - made[g.p];
      }
      cuts.resize(segs.size() - 1);
      for (size_t k = 0; k + 1 < segs.size(); ++k) cuts[k] = {cross_f[segs[k + 1].p], cross_g[segs[k + 1].p]};
      if (!price(net, segs, cuts, m, o, st, unreachable_why.empty() ? &unreachable_why : nullptr)) {
        ++unreachable;
        return;
      }
      // memory a node needs before any simulation: its parameters and one stored micro-batch of its largest stage
      double over_lb = -kInf;
      {
        std::vector<double> need(K, 0.0), one(K, 0.0);
        for (size_t k = 0; k < segs.size(); ++k) {
          need[segs[k].node] += segs[k].params * (2 + o.optimizer_state_factor);
          one[segs[k].node] = std::max(one[segs[k].node], st[k].stored_bytes);
        }
        for (int u = 0; u < K; ++u) over_lb = std::max(over_lb, need[u] + one[u] - net.nodes[u].memory_bytes);
      }
      for (PipeSchedule sched : o.schedules) {
        if (over_lb > 0) {
          ++over_memory;
          if (over_lb < closest) closest = over_lb, closest_segs = segs, closest_m = m, closest_sched = sched;
          continue;
        }
        if (lower_bound(st, m, node_busy) >= beat(best_m_step)) {
          ++pruned;
          continue;
        }
        ++simulated;
        const TrainingTimeline tl = simulate_training(st, m, sched);
        int worst = 0;
        const double over = memory_of(net, segs, tl, o, param, stored, tot, &worst);
        if (over > 0) {
          ++over_memory;
          if (over < closest) closest = over, closest_segs = segs, closest_m = m, closest_sched = sched;
          continue;
        }
        if (tl.makespan_ms < beat(best_m_step)) best_m_step = tl.makespan_ms;
        if (tl.makespan_ms < beat(best))
          best = tl.makespan_ms, best_segs = segs, best_m = m, best_sched = sched;
      }
    };
    rec(1, 0);
  }

  if (best_segs.empty()) {
    TESSERA_CHECK(!closest_segs.empty(), InvalidArgument,
                  "no placement is possible: {}{}",
                  unreachable ? unreachable_why : std::string("every candidate breaks a pin"),
                  unreachable && pinned ? " (others break a pin)" : "");
    // the closest candidate, priced exactly, names the node and by how much
    std::vector<Cut> cc(closest_segs.size() - 1);
    for (size_t k = 0; k + 1 < closest_segs.size(); ++k)
      cc[k] = {cross_f[closest_segs[k + 1].p], cross_g[closest_segs[k + 1].p]};
    price(net, closest_segs, cc, closest_m, o, st, nullptr);
    const TrainingPlan c = finish(dag, net, closest_segs, st, closest_m, closest_sched, o);
    std::vector<std::string> parts;
    for (const auto& s : c.stages) parts.push_back(stage_text(net, s));
    TESSERA_THROW(InvalidArgument,
                  "no placement fits the nodes' memory ({} candidates over it): the closest, {} with {} micro-batches "
                  "({}), has {}",
                  over_memory, fmt::join(parts, " | "), closest_m, schedule_name(closest_sched), c.reason);
  }
  cuts.resize(best_segs.size() - 1);
  for (size_t k = 0; k + 1 < best_segs.size(); ++k) cuts[k] = {cross_f[best_segs[k + 1].p], cross_g[best_segs[k + 1].p]};
  price(net, best_segs, cuts, best_m, o, st, nullptr);
  TrainingPlan plan = finish(dag, net, best_segs, st, best_m, best_sched, o);
  plan.algorithm = "exhaustive";
  plan.status = PlanStatus::Optimal;
  plan.best_step_ms = best_by_m;
  plan.micro_batch_choices = choices;
  plan.simulated = simulated, plan.pruned = pruned, plan.over_memory = over_memory;
  plan.reason = fmt::format("fastest simulated step over {} cut positions x {} micro-batch choices x {} schedules "
                            "({} simulated, {} skipped by a lower bound, {} over memory{}{})",
                            static_cast<int64_t>(tuples), choices.size(), o.schedules.size(), simulated, pruned,
                            over_memory, unreachable ? fmt::format(", {} unreachable", unreachable) : "",
                            pinned ? fmt::format(", {} breaking a pin", pinned) : "");
  return plan;
}

std::string TrainingPlan::explain(const PipelineNetwork& net) const {
  std::vector<std::string> parts;
  for (size_t k = 0; k < stages.size(); ++k) {
    TESSERA_CHECK(stages[k].node >= 0 && stages[k].node < static_cast<int>(net.nodes.size()), InvalidArgument,
                  "explain: stage {} is on node {}, the network has {} nodes", k, stages[k].node, net.nodes.size());
    std::string s = stage_text(net, stages[k]);
    if (stages[k].atoms.empty())
      s = fmt::format("{} ({})", net.nodes[stages[k].node].name,
                      k == 0 ? "no atoms: it sends the inputs" : "no atoms: the loss");
    else if (k < stage_costs.size())
      s += fmt::format(" ({:.3f} ms F + {:.3f} ms B per micro-batch{})", stage_costs[k].fwd_ms, stage_costs[k].bwd_ms,
                       k + 1 < stage_costs.size() && stage_costs[k].send_fwd_ms > 0
                           ? fmt::format(", sends {:.3f} ms", stage_costs[k].send_fwd_ms)
                           : "");
    parts.push_back(s);
  }
  std::string out = fmt::format("{} training plan: {}", algorithm, status_name(status));
  if (!reason.empty()) out += fmt::format(" ({})", reason);
  out += fmt::format(". Stages: {}. {} micro-batch{} of batch {}, {}: step {:.3f} ms = {:.1f} samples/s",
                     fmt::join(parts, " -> "), micro_batches, micro_batches == 1 ? "" : "es", batch_size,
                     schedule_name(schedule), step_ms, samples_per_s);
  if (!best_step_ms.empty() && micro_batch_choices.size() == best_step_ms.size() &&
      micro_batches != micro_batch_choices.front() && std::isfinite(best_step_ms.front()) && step_ms > 0)
    out += fmt::format(" (the best with {} micro-batch{}: {:.3f} ms; {:.2f}x faster here)", micro_batch_choices.front(),
                       micro_batch_choices.front() == 1 ? "" : "es", best_step_ms.front(), best_step_ms.front() / step_ms);
  int busiest = 0;
  for (size_t u = 0; u < timeline.node_busy_ms.size(); ++u)
    if (timeline.node_busy_ms[u] > timeline.node_busy_ms[busiest]) busiest = static_cast<int>(u);
  if (!timeline.node_busy_ms.empty() && step_ms > 0 && busiest < static_cast<int>(net.nodes.size()))
    out += fmt::format(". Busiest node: {}, {:.3f} ms ({:.0f}% of the step)", net.nodes[busiest].name,
                       timeline.node_busy_ms[busiest], 100 * timeline.node_busy_ms[busiest] / step_ms);
  std::vector<std::string> mem;
  for (size_t u = 0; u < node_memory_bytes.size() && u < net.nodes.size(); ++u)
    if (node_memory_bytes[u] > 0 || u == 0)
      mem.push_back(fmt::format("{} {} of {} (weights, gradients, optimizer state {} + stored activations {})",
                                net.nodes[u].name, mb(node_memory_bytes[u]), mb(net.nodes[u].memory_bytes),
                                mb(node_param_bytes[u]), mb(node_stored_bytes[u])));
  out += fmt::format(". Memory: {}.", fmt::join(mem, "; "));
  return out;
}

}  // namespace tessera::plan
