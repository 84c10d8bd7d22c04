// profile/profile.cpp -- per-atom and whole-model latency, measured here.
//
// Method (see profile.h): rounds interleave the model run as a chain of one-atom
// blocks (each block timed on the tensors the previous blocks just produced) with
// the model run as one block; warm-up rounds are dropped; medians and quartiles.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <chrono>
#include <fstream>
#include <numeric>
#include <sstream>
#include <thread>

#include "tessera/core/error.h"
#include "tessera/profile/profile.h"
#include "tessera/graph/threads.h"

namespace tessera::profile {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Quartiles by linear interpolation (numpy's default): returns {q1, median, q3}.
std::array<double, 3> quartiles(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  auto at = [&](double q) {
    double pos = q * static_cast<double>(xs.size() - 1);
    size_t lo = static_cast<size_t>(pos);
    size_t hi = std::min(lo + 1, xs.size() - 1);
    return xs[lo] + (pos - static_cast<double>(lo)) * (xs[hi] - xs[lo]);
  };
  return {at(0.25), at(0.5), at(0.75)};
}

// Sets intra-op threads (OpenMP and OpenBLAS: graph/threads.h) for a scope and restores them.
class ThreadsGuard {
 public:
  explicit ThreadsGuard(int threads) : before_(at::get_num_threads()) {
    if (threads > 0) set_intra_op_threads(threads);
    keep_freed_memory(true);  // as servers run: no page fault per large activation (graph/threads.h)
  }
  ~ThreadsGuard() { set_intra_op_threads(before_); }

 private:
  int before_;
};

// The canary's fixed network: (depthwise 3x3, pointwise 1x1) blocks, weights from a
// private generator (seed 0) so every process builds the same one.
struct Canary {
  struct Block {
    at::Tensor dw, dw_bias, pw, pw_bias;
    int64_t stride;
  };
  at::Tensor input;
  std::vector<Block> blocks;
  Canary() {
    auto gen = at::detail::createCPUGenerator(0);
    auto randn = [&](at::IntArrayRef shape, double scale) { return at::randn(shape, gen) * scale; };
    input = randn({1, 16, 112, 112}, 1.0);
    const int64_t plan[10][2] = {{24, 2}, {24, 1}, {40, 2}, {40, 1}, {80, 2}, {80, 1}, {112, 1}, {160, 2}, {160, 1},
                                 {320, 1}};
    int64_t c = 16;
    for (const auto& [out, stride] : plan) {
      blocks.push_back({randn({c, 1, 3, 3}, 0.3), randn({c}, 0.1), randn({out, c, 1, 1}, 1.0 / std::sqrt(double(c))),
                        randn({out}, 0.1), stride});
      c = out;
    }
  }
  void run() const {
    at::Tensor x = input;
    for (const auto& b : blocks) {
      x = at::hardswish(at::conv2d(x, b.dw, b.dw_bias, {b.stride, b.stride}, {1, 1}, {1, 1}, b.dw.size(0)));
      x = at::relu(at::conv2d(x, b.pw, b.pw_bias));
    }
  }
};

const Canary& canary() {
  static const Canary c;  // built once, thread-safe
  return c;
}

}  // namespace

double canary_ms(int runs) {
  TESSERA_CHECK(runs >= 1, InvalidArgument, "canary runs = {}: at least 1", runs);
  c10::NoGradGuard no_grad;
  // One intra-op thread whatever the caller's setting: at two threads on this 2-vCPU VM
  // the canary itself was unstable (1.3-2 ms, and 16-24 ms for seconds after a large
  // model's rounds), so it would measure the thread pool rather than the machine.
  ThreadsGuard one_thread(1);
  const Canary& c = canary();
  c.run();  // warm
  std::vector<double> ms(runs);
  for (auto& v : ms) {
    auto t0 = Clock::now();
    c.run();
    v = ms_since(t0);
  }
  return quartiles(ms)[1];
}

double CostTable::sum_atom_ms() const { return std::accumulate(atom_ms.begin(), atom_ms.end(), 0.0); }

std::string CostTable::summary(const std::vector<Atom>& atoms, int top) const {
  std::vector<int> order(atom_ms.size());
  std::iota(order.begin(), order.end(), 0);
  if (top > 0) {
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return atom_ms[a] > atom_ms[b]; });
    if (static_cast<int>(order.size()) > top) order.resize(top);
  }
  std::string out = fmt::format("{:>5}  {:<32} {:>10} {:>21} {:>12}\n", "atom", "ops", "median ms", "[q1 - q3] ms",
                                "param bytes");
  for (int a : order) {
    std::string ops;
    if (a < static_cast<int>(atoms.size())) ops = fmt::format("{}", fmt::join(atoms[a].op_kinds, ","));
    if (ops.size() > 32) ops = ops.substr(0, 29) + "...";
    out += fmt::format("{:>5}  {:<32} {:>10.4f} [{:>8.4f} - {:>8.4f}] {:>12}\n", a, ops, atom_ms[a], atom_q1_ms[a],
                       atom_q3_ms[a], param_bytes.empty() ? 0 : param_bytes[a]);
  }
  out += fmt::format("{} atoms, threads {}, background load {}, {} rounds after {} warm-up: whole model {:.3f} ms "
                     "[{:.3f} - {:.3f}], sum of atoms {:.3f} ms ({:+.1f}%)",
                     atom_ms.size(), threads, background_load, repeats, warmup, model_ms, model_q1_ms, model_q3_ms,
                     sum_atom_ms(), model_ms > 0 ? 100.0 * (sum_atom_ms() / model_ms - 1) : 0.0);
  if (canary_reference_ms > 0)
    out += fmt::format("; machine state: canary {:.3f} ms (reference {:.3f}), {} rounds discarded, waited {:.1f} s{}",
                       canary_ms, canary_reference_ms, rounds_discarded, waited_ms / 1e3,
                       settled ? "" : " - the reference state was NOT reached");
  return out;
}

std::string CostTable::to_json() const {
  nlohmann::json j;
  j["format"] = "tessera-cost-table/1";
  j["model_hash"] = model_hash;
  j["label"] = label;
  j["threads"] = threads;
  j["repeats"] = repeats;
  j["warmup"] = warmup;
  j["background_load"] = background_load;
  j["atom_ms"] = atom_ms;
  j["atom_q1_ms"] = atom_q1_ms;
  j["atom_q3_ms"] = atom_q3_ms;
  j["param_bytes"] = param_bytes;
  j["value_bytes"] = value_bytes;
  j["model_ms"] = model_ms;
  j["model_q1_ms"] = model_q1_ms;
  j["model_q3_ms"] = model_q3_ms;
  j["canary_reference_ms"] = canary_reference_ms;
  j["canary_ms"] = canary_ms;
  j["rounds_discarded"] = rounds_discarded;
  j["settled"] = settled;
  j["waited_ms"] = waited_ms;
  return j.dump(1);
}

CostTable CostTable::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    TESSERA_THROW(InvalidArgument, "cost table is not valid JSON: {}", e.what());
  }
  const std::string format =
      j.is_object() && j.contains("format") && j.at("format").is_string() ? j.at("format").get<std::string>() : "";
  TESSERA_CHECK(format == "tessera-cost-table/1", InvalidArgument,
                "not a tessera cost table (format '{}', expected 'tessera-cost-table/1')", format);
  CostTable t;
  try {
    t.model_hash = j.at("model_hash").get<std::string>();
    t.label = j.value("label", "");
    t.threads = j.at("threads").get<int>();
    t.repeats = j.at("repeats").get<int>();
    t.warmup = j.at("warmup").get<int>();
    t.background_load = j.value("background_load", j.value("load", 0.0));  // "load" before 0.2
    t.atom_ms = j.at("atom_ms").get<std::vector<double>>();
    t.atom_q1_ms = j.at("atom_q1_ms").get<std::vector<double>>();
    t.atom_q3_ms = j.at("atom_q3_ms").get<std::vector<double>>();
    t.param_bytes = j.at("param_bytes").get<std::vector<int64_t>>();
    t.value_bytes = j.at("value_bytes").get<std::vector<int64_t>>();
    t.model_ms = j.at("model_ms").get<double>();
    t.model_q1_ms = j.at("model_q1_ms").get<double>();
    t.model_q3_ms = j.at("model_q3_ms").get<double>();
    t.canary_reference_ms = j.value("canary_reference_ms", 0.0);  // absent in tables written before settle
    t.canary_ms = j.value("canary_ms", 0.0);
    t.rounds_discarded = j.value("rounds_discarded", 0);
    t.settled = j.value("settled", true);
    t.waited_ms = j.value("waited_ms", 0.0);
  } catch (const nlohmann::json::exception& e) {
    TESSERA_THROW(InvalidArgument, "cost table: missing or mistyped field: {}", e.what());
  }
  const size_t A = t.atom_ms.size();
  TESSERA_CHECK(t.atom_q1_ms.size() == A && t.atom_q3_ms.size() == A && t.param_bytes.size() == A, InvalidArgument,
                "cost table: atom_ms has {} entries but atom_q1_ms {}, atom_q3_ms {}, param_bytes {}", A,
                t.atom_q1_ms.size(), t.atom_q3_ms.size(), t.param_bytes.size());
  for (size_t a = 0; a < A; ++a)
    TESSERA_CHECK(std::isfinite(t.atom_ms[a]) && t.atom_ms[a] >= 0, InvalidArgument,
                  "cost table: atom_ms[{}] = {} is not a latency", a, t.atom_ms[a]);
  return t;
}

void CostTable::write(const std::string& path) const {
  std::ofstream f(path);
  TESSERA_CHECK(f.good(), NotFound, "cannot write cost table '{}'", path);
  f << to_json();
  TESSERA_CHECK(f.good(), Engine, "failed writing cost table '{}'", path);
}

CostTable CostTable::read(const std::string& path) {
  std::ifstream f(path);
  TESSERA_CHECK(f.good(), NotFound, "cost table '{}' does not exist or cannot be read", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return from_json(ss.str());
}

CostTable profile(const Model& model, const std::vector<at::Tensor>& inputs, const ProfileOptions& o,
                  const ProgressFn& progress) {
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  TESSERA_CHECK(o.repeats >= 1, InvalidArgument, "repeats = {}: at least one timed round is needed", o.repeats);
  TESSERA_CHECK(o.warmup >= 0, InvalidArgument, "warmup = {} is negative", o.warmup);
  TESSERA_CHECK(o.threads >= 0 && o.threads <= hw, InvalidArgument,
                "threads = {}: this machine has {} hardware threads (0 keeps the current setting)", o.threads, hw);
  TESSERA_CHECK(std::isfinite(o.background_load) && o.background_load >= 0, InvalidArgument, "background_load = {} must be >= 0",
                o.background_load);
  TESSERA_CHECK(std::isfinite(o.settle) && o.settle >= 0, InvalidArgument,
                "settle = {}: a tolerance >= 0 (0 = off, 0.1 = canary within 10% of its reference)", o.settle);
  TESSERA_CHECK(std::isfinite(o.reference_ms) && o.reference_ms >= 0, InvalidArgument,
                "reference_ms = {} must be >= 0 (0 = measure it)", o.reference_ms);
  TESSERA_CHECK(std::isfinite(o.max_wait_ms) && o.max_wait_ms >= 0, InvalidArgument,
                "max_wait_ms = {} must be >= 0", o.max_wait_ms);
  TESSERA_CHECK(o.max_discarded >= -1, InvalidArgument, "max_discarded = {}: -1 (4 x repeats) or >= 0",
                o.max_discarded);
  model.check_inputs(inputs);
  const OpGraph& graph = model.graph();
  const auto& atoms = model.atoms();
  const int A = model.num_atoms();

  ThreadsGuard threads_guard(o.threads);
  c10::NoGradGuard no_grad;

  std::vector<std::vector<int>> singles(A);
  std::vector<int> all(A);
  for (int a = 0; a < A; ++a) singles[a] = {a}, all[a] = a;
  const Schedule steps = model.schedule(singles);
  std::vector<Block> step_blocks;
  for (size_t i = 0; i < steps.size(); ++i) step_blocks.push_back(steps.block(i));
  const Block whole = model.combine(all);

  CostTable t;
  t.model_hash = model.hash();
  t.threads = at::get_num_threads();
  t.repeats = o.repeats;
  t.warmup = o.warmup;
  t.background_load = o.background_load;
  t.param_bytes.resize(A);
  for (int a = 0; a < A; ++a) t.param_bytes[a] = atoms[a].param_bytes;
  t.value_bytes.resize(graph.values.size());
  for (const auto& v : graph.values) t.value_bytes[v.id] = v.is_tensor ? v.info.bytes : 0;

  std::vector<std::vector<double>> samples(A);
  std::vector<double> whole_samples;
  for (auto& s : samples) s.reserve(o.repeats);
  std::vector<at::Tensor> env(graph.values.size());
  std::vector<at::Tensor> args;
  std::vector<at::Tensor> whole_args;
  for (int v : whole.inputs()) {
    auto it = std::find(graph.inputs.begin(), graph.inputs.end(), v);
    whole_args.push_back(inputs[it - graph.inputs.begin()]);
  }
  const int total = o.warmup + o.repeats;
  const bool settle = o.settle > 0;
  const int cap = o.max_discarded >= 0 ? o.max_discarded : 4 * o.repeats;
  double before = 0, limit = 0;
  std::vector<double> canaries;
  if (settle) {
    t.canary_reference_ms = o.reference_ms;
    if (t.canary_reference_ms <= 0) {
      t.canary_reference_ms = canary_ms();
      for (int i = 0; i < 4; ++i) t.canary_reference_ms = std::min(t.canary_reference_ms, canary_ms());
    }
    limit = (1 + o.settle) * t.canary_reference_ms;
  }
  for (int round = 0; round < total;) {
    const bool timed = round >= o.warmup;
    if (settle && timed && before == 0) before = canary_ms();
    // (a) one-atom blocks in topological order, each timed on fresh inputs
    for (size_t i = 0; i < inputs.size(); ++i) env[graph.inputs[i]] = inputs[i];
    for (int a = 0; a < A; ++a) {
      const Block& blk = step_blocks[a];
      args.clear();
      for (int v : blk.inputs()) args.push_back(env[v]);
      auto t0 = Clock::now();
      auto outs = blk(args);
      double ms = ms_since(t0);
      if (timed) samples[a].push_back(ms);
      for (size_t i = 0; i < outs.size(); ++i) env[blk.outputs()[i]] = std::move(outs[i]);
      for (int v : steps.free_after(a)) env[v].reset();
    }
    for (auto& x : env) x.reset();
    // (b) the whole model as one block
    auto t0 = Clock::now();
    { auto outs = whole(whole_args); }
    double ms = ms_since(t0);
    if (timed) whole_samples.push_back(ms);
    if (settle && timed) {
      const double after = canary_ms();
      const double worst = std::max(before, after);
      before = after;
      if (worst > limit) {
        if (t.rounds_discarded < cap) {  // not the reference state: run the round again
          ++t.rounds_discarded;
          for (auto& s : samples) s.pop_back();
          whole_samples.pop_back();
          // Wait for the state to come back rather than burn rounds in the other one: poll
          // the canary every 100 ms (the machine stays almost idle), within the wait budget.
          const double waited_before = t.waited_ms;
          const auto wait_start = Clock::now();
          while (before > limit && t.waited_ms < o.max_wait_ms) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            before = canary_ms();
            t.waited_ms = waited_before + ms_since(wait_start);
          }
          continue;
        }
        t.settled = false;
      }
      canaries.push_back(worst);
    }
    ++round;
    if (progress) progress(round, total);
  }
  if (settle) t.canary_ms = quartiles(canaries)[1];
  t.atom_ms.resize(A), t.atom_q1_ms.resize(A), t.atom_q3_ms.resize(A);
  for (int a = 0; a < A; ++a) {
    auto q = quartiles(samples[a]);
    t.atom_q1_ms[a] = q[0], t.atom_ms[a] = q[1], t.atom_q3_ms[a] = q[2];
  }
  auto q = quartiles(whole_samples);
  t.model_q1_ms = q[0], t.model_ms = q[1], t.model_q3_ms = q[2];
  return t;
}

}  // namespace tessera::profile
