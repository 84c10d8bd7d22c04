// predict/features.cpp -- atom features from the op graph's shapes (torch-free).
//
// FLOPs and bytes follow the formulas in features.h. Inputs of a node are value
// ids (deduplicated, not in schema order), so operands are told apart by what
// produced them: a tensor made by a helper node (prim::Constant) is a weight, any
// other tensor is data.
#include "tessera/predict/features.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "tessera/core/error.h"

namespace tessera::predict {
namespace {

double numel(const std::vector<int64_t>& s) {
  double n = 1;
  for (auto d : s) n *= static_cast<double>(d);
  return n;
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

std::string strip(const std::string& kind) {
  auto pos = kind.find("::");
  std::string k = pos == std::string::npos ? kind : kind.substr(pos + 2);
  while (!k.empty() && k.back() == '_') k.pop_back();  // relu_ -> relu
  while (!k.empty() && k.front() == '_') k.erase(0, 1);  // _convolution -> convolution
  return k;
}

struct OpInfo {
  double flops = 0, kernel = 1, stride = 1, groups = 1, cin = 0, cout = 0, spatial = 0, in_numel = 0, out_numel = 0;
};

OpInfo op_info(const OpGraph& g, const OpNode& n) {
  OpInfo r;
  std::vector<const TensorInfo*> data, weights, args;  // args: tensor arguments in argument order
  for (int v : n.args.empty() ? n.inputs : n.args) {
    const auto& val = g.values[v];
    if (!val.is_tensor) continue;
    bool weight = val.producer >= 0 && g.nodes[val.producer].helper;
    (weight ? weights : data).push_back(&val.info);
    args.push_back(&val.info);
  }
  const TensorInfo* out = nullptr;
  for (int v : n.outputs)
    if (g.values[v].is_tensor) {
      out = &g.values[v].info;
      break;
    }
  for (auto* d : data) r.in_numel += numel(d->shape);
  r.out_numel = out ? numel(out->shape) : 0;
  const std::vector<int64_t> empty;
  const auto& in_shape = data.empty() ? empty : data[0]->shape;
  const auto& out_shape = out ? out->shape : empty;
  if (in_shape.size() >= 2) r.cin = static_cast<double>(in_shape[1]);
  if (out_shape.size() >= 2) r.cout = static_cast<double>(out_shape[1]);
  if (out_shape.size() >= 3) {
    r.spatial = 1;
    for (size_t i = 2; i < out_shape.size(); ++i) r.spatial *= static_cast<double>(out_shape[i]);
  } else if (out_shape.size() == 2) {
    r.spatial = 1;
  }
  auto stride_of = [&]() {
    if (in_shape.size() >= 3 && out_shape.size() >= 3 && out_shape[2] > 0)
      return std::max(1.0, std::round(static_cast<double>(in_shape[2]) / static_cast<double>(out_shape[2])));
    return 1.0;
  };
  const std::string cls = op_class(n.kind);
  const std::string k = strip(n.kind);
  if (cls == "conv" && starts_with(k, "conv_transpose")) {
    // weight [C_in, C_out / groups, k...]: every input element meets C_out / groups x k taps
    const TensorInfo* w = args.size() >= 2 && args[1]->shape.size() >= 3 ? args[1] : nullptr;
    if (w) {
      double kk = 1;
      for (size_t i = 2; i < w->shape.size(); ++i) kk *= static_cast<double>(w->shape[i]);
      const double cout_g = static_cast<double>(w->shape[1]);
      r.kernel = kk;
      r.groups = cout_g > 0 && r.cout > 0 ? std::max(1.0, std::round(r.cout / cout_g)) : 1;
      r.flops = 2 * r.in_numel * cout_g * kk + (args.size() >= 3 ? r.out_numel : 0);
    } else {
      r.flops = 2 * r.out_numel;
    }
    r.stride = in_shape.size() >= 3 && in_shape[2] > 0 && out_shape.size() >= 3
                   ? std::max(1.0, std::round(static_cast<double>(out_shape[2]) / static_cast<double>(in_shape[2])))
                   : 1.0;
  } else if (cls == "conv") {
    const TensorInfo* w = nullptr;
    for (auto* t : weights)
      if (t->shape.size() >= 3) w = t;
    bool has_bias = false;
    for (auto* t : weights)
      if (t->shape.size() == 1) has_bias = true;
    if (!w)  // weight computed at run time: a data operand of rank >= 3 after the first
      for (size_t i = 1; i < data.size(); ++i)
        if (data[i]->shape.size() >= 3) w = data[i];
    if (w) {
      double kk = 1;
      for (size_t i = 2; i < w->shape.size(); ++i) kk *= static_cast<double>(w->shape[i]);
      double cin_g = static_cast<double>(w->shape[1]);
      r.kernel = kk;
      r.groups = cin_g > 0 && r.cin > 0 ? std::max(1.0, std::round(r.cin / cin_g)) : 1;
      r.flops = 2 * r.out_numel * cin_g * kk + (has_bias ? r.out_numel : 0);
    } else {
      r.flops = 2 * r.out_numel;
    }
    r.stride = stride_of();
  } else if (cls == "linear") {
    const TensorInfo* w = nullptr;
    for (auto* t : weights)
      if (t->shape.size() == 2) w = t;
    double in_f = w ? static_cast<double>(w->shape[1]) : (in_shape.empty() ? 1 : static_cast<double>(in_shape.back()));
    r.flops = 2 * r.out_numel * in_f;
    r.cin = in_f;
    r.cout = out_shape.empty() ? 0 : static_cast<double>(out_shape.back());
    r.spatial = out_shape.empty() ? 0 : r.out_numel / std::max(1.0, r.cout);
  } else if (cls == "matmul") {
    // K is the last dim of the left operand: argument 0 (matmul, mm, bmm, einsum's
    // first tensor), argument 1 for addmm / baddbmm / addbmm (bias, a, b)
    double kdim = 1;
    const size_t left = (k == "addmm" || k == "baddbmm" || k == "addbmm") ? 1 : 0;
    if (args.size() > left && !args[left]->shape.empty()) kdim = static_cast<double>(args[left]->shape.back());
    r.flops = 2 * r.out_numel * kdim;
    r.cin = kdim;
  } else if (cls == "rnn") {
    double wsum = 0;
    for (auto* t : weights) wsum += numel(t->shape);
    double steps = in_shape.size() >= 2 ? static_cast<double>(std::max(in_shape[0], in_shape[1])) : 1;
    r.flops = 2 * wsum * steps;
    r.spatial = steps;
  } else if (cls == "norm") {
    r.flops = 4 * r.out_numel;
  } else if (cls == "softmax") {
    r.flops = 5 * r.out_numel;
  } else if (cls == "pool") {
    r.flops = r.in_numel;
    r.stride = stride_of();
    r.kernel = r.out_numel > 0 ? std::max(1.0, std::round(r.in_numel / r.out_numel)) : 1;
  } else if (cls == "eltwise") {
    double operands = std::max<size_t>(1, data.size() + weights.size());
    r.flops = r.out_numel * operands;
  } else if (cls == "reduce") {
    r.flops = r.in_numel;
  } else {
    r.flops = r.out_numel;
  }
  return r;
}

}  // namespace

const std::vector<std::string>& op_classes() {
  static const std::vector<std::string> c = {"conv",    "linear", "matmul", "norm", "pool", "eltwise",
                                             "softmax", "reduce", "memory", "rnn",  "other"};
  return c;
}

std::string op_class(const std::string& kind) {
  static const std::map<std::string, std::string> m = {
      {"convolution", "conv"}, {"conv1d", "conv"}, {"conv2d", "conv"}, {"conv3d", "conv"},
      {"conv_transpose1d", "conv"}, {"conv_transpose2d", "conv"}, {"conv_transpose3d", "conv"},
      {"linear", "linear"}, {"matmul", "matmul"}, {"mm", "matmul"}, {"bmm", "matmul"}, {"addmm", "matmul"},
      {"baddbmm", "matmul"}, {"einsum", "matmul"},
      {"batch_norm", "norm"}, {"layer_norm", "norm"}, {"group_norm", "norm"}, {"instance_norm", "norm"},
      {"native_layer_norm", "norm"}, {"native_batch_norm", "norm"},
      {"max_pool1d", "pool"}, {"max_pool2d", "pool"}, {"max_pool3d", "pool"}, {"avg_pool1d", "pool"},
      {"avg_pool2d", "pool"}, {"avg_pool3d", "pool"}, {"adaptive_avg_pool1d", "pool"},
      {"adaptive_avg_pool2d", "pool"}, {"adaptive_avg_pool3d", "pool"}, {"adaptive_max_pool2d", "pool"},
      {"relu", "eltwise"}, {"relu6", "eltwise"}, {"hardtanh", "eltwise"}, {"hardswish", "eltwise"},
      {"hardsigmoid", "eltwise"}, {"sigmoid", "eltwise"}, {"silu", "eltwise"}, {"gelu", "eltwise"},
      {"tanh", "eltwise"}, {"elu", "eltwise"}, {"leaky_relu", "eltwise"}, {"add", "eltwise"},
      {"sub", "eltwise"}, {"mul", "eltwise"}, {"div", "eltwise"}, {"rsub", "eltwise"}, {"clamp", "eltwise"},
      {"dropout", "eltwise"}, {"feature_dropout", "eltwise"}, {"pow", "eltwise"}, {"sqrt", "eltwise"},
      {"exp", "eltwise"}, {"neg", "eltwise"}, {"where", "eltwise"}, {"masked_fill", "eltwise"},
      {"softmax", "softmax"}, {"log_softmax", "softmax"},
      {"mean", "reduce"}, {"sum", "reduce"}, {"amax", "reduce"}, {"max", "reduce"}, {"norm", "reduce"},
      {"cat", "memory"}, {"stack", "memory"}, {"flatten", "memory"}, {"view", "memory"}, {"reshape", "memory"},
      {"transpose", "memory"}, {"permute", "memory"}, {"contiguous", "memory"}, {"chunk", "memory"},
      {"split", "memory"}, {"slice", "memory"}, {"select", "memory"}, {"unsqueeze", "memory"},
      {"squeeze", "memory"}, {"expand", "memory"}, {"size", "memory"}, {"t", "memory"},
      {"channel_shuffle", "memory"}, {"pad", "memory"}, {"constant_pad_nd", "memory"}, {"to", "memory"},
      {"lstm", "rnn"}, {"gru", "rnn"}, {"rnn_tanh", "rnn"}, {"rnn_relu", "rnn"},
  };
  auto it = m.find(strip(kind));
  return it == m.end() ? "other" : it->second;
}

const std::vector<std::string>& feature_names() {
  static const std::vector<std::string> n = {"num_ops", "flops",  "main_flops", "in_bytes",   "out_bytes",
                                             "param_bytes", "kernel", "stride", "groups",     "c_in",
                                             "c_out",   "out_spatial", "in_numel", "out_numel"};
  return n;
}

void check_machine_state(const MachineState& ctx) {
  TESSERA_CHECK(ctx.threads >= 1, InvalidArgument, "context threads = {} must be >= 1", ctx.threads);
  TESSERA_CHECK(std::isfinite(ctx.background_load) && ctx.background_load >= 0, InvalidArgument, "background_load = {} must be a finite number >= 0",
                ctx.background_load);
}

std::vector<AtomFeatures> atom_features(const OpGraph& g, const std::vector<Atom>& atoms,
                                        const std::string& model_hash) {
  std::vector<AtomFeatures> out;
  out.reserve(atoms.size());
  for (const auto& a : atoms) {
    AtomFeatures f;
    f.model = model_hash;
    f.atom = a.id;
    double best = -1;
    const OpNode* main = nullptr;
    OpInfo main_info;
    int ops = 0;
    std::string kinds;
    for (int nid : a.nodes) {
      TESSERA_CHECK(nid >= 0 && nid < static_cast<int>(g.nodes.size()), InvalidArgument,
                    "atom {} names node {}, the graph has {} nodes", a.id, nid, g.nodes.size());
      const auto& n = g.nodes[nid];
      if (starts_with(n.kind, "prim::")) continue;
      ++ops;
      kinds += (kinds.empty() ? "" : "+") + n.kind;
      OpInfo info = op_info(g, n);
      f.x[kFlops] += info.flops;
      // dominant op: most FLOPs; a compute class beats memory/other at equal FLOPs
      double score = info.flops * (op_class(n.kind) == "memory" ? 0.5 : 1.0);
      if (score > best) best = score, main = &n, main_info = info;
    }
    if (!main && !a.nodes.empty()) {  // only prim:: ops (control flow, constructs)
      main = &g.nodes[a.nodes.front()];
      main_info = op_info(g, *main);
      kinds = main->kind;
      ops = 1;
    }
    f.main_kind = main ? main->kind : "none";
    f.op_class = main ? op_class(main->kind) : "other";
    f.kinds = kinds;
    f.x[kNumOps] = ops;
    f.x[kMainFlops] = main_info.flops;
    for (int v : a.inputs) f.x[kInBytes] += static_cast<double>(g.values[v].info.bytes);
    f.x[kOutBytes] = static_cast<double>(a.output_bytes);
    f.x[kParamBytes] = static_cast<double>(a.param_bytes);
    f.x[kKernel] = main_info.kernel;
    f.x[kStride] = main_info.stride;
    f.x[kGroups] = main_info.groups;
    f.x[kCin] = main_info.cin;
    f.x[kCout] = main_info.cout;
    f.x[kOutSpatial] = main_info.spatial;
    f.x[kInNumel] = main_info.in_numel;
    f.x[kOutNumel] = main_info.out_numel;
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<Sample> make_samples(const std::vector<AtomFeatures>& features, const MachineState& ctx,
                                 const std::vector<double>& ms, const std::string& label) {
  check_machine_state(ctx);
  TESSERA_CHECK(ms.empty() || ms.size() == features.size(), InvalidArgument,
                "{} measured latencies for {} atoms", ms.size(), features.size());
  std::vector<Sample> out(features.size());
  for (size_t i = 0; i < features.size(); ++i) {
    out[i].f = features[i];
    out[i].ctx = ctx;
    out[i].label = label;
    if (!ms.empty()) {
      TESSERA_CHECK(std::isfinite(ms[i]) && ms[i] >= 0, InvalidArgument, "measured ms of atom {} is {}",
                    features[i].atom, ms[i]);
      out[i].ms = ms[i];
    }
  }
  return out;
}

// ---- CSV ------------------------------------------------------------------------------
namespace {
const char* kFixedColumns[] = {"model", "label", "atom", "main_kind", "op_class", "kinds", "threads", "background_load", "ms"};

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') out.back() += '"', ++i;
      else if (c == '"') quoted = false;
      else out.back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else if (c != '\r') {
      out.back() += c;
    }
  }
  return out;
}
}  // namespace

void write_samples_csv(const std::string& path, const std::vector<Sample>& samples) {
  std::ofstream f(path);
  TESSERA_CHECK(f.good(), NotFound, "cannot write samples CSV '{}'", path);
  std::string header;
  for (const char* c : kFixedColumns) header += std::string(header.empty() ? "" : ",") + c;
  for (const auto& n : feature_names()) header += "," + n;
  f << header << "\n";
  for (const auto& s : samples) {
    f << csv_field(s.f.model) << ',' << csv_field(s.label) << ',' << s.f.atom << ',' << csv_field(s.f.main_kind)
      << ',' << csv_field(s.f.op_class) << ',' << csv_field(s.f.kinds) << ',' << s.ctx.threads << ','
      << fmt::format("{}", s.ctx.background_load) << ',' << fmt::format("{}", s.ms);
    for (double x : s.f.x) f << ',' << fmt::format("{}", x);
    f << '\n';
  }
  f.close();  // a failed final flush (disk full) must not pass for a complete file
  TESSERA_CHECK(!f.fail(), Engine, "failed writing samples CSV '{}'", path);
}

std::vector<Sample> read_samples_csv(const std::string& path) {
  std::ifstream f(path);
  TESSERA_CHECK(f.good(), NotFound, "samples CSV '{}' does not exist or cannot be read", path);
  std::string line;
  TESSERA_CHECK(static_cast<bool>(std::getline(f, line)), InvalidArgument, "samples CSV '{}' is empty", path);
  auto header = split_csv(line);
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < header.size(); ++i) col[header[i]] = i;
  // Files written before 0.2 name the background load "load".
  if (!col.count("background_load") && col.count("load")) col["background_load"] = col["load"];
  std::vector<std::string> need(std::begin(kFixedColumns), std::end(kFixedColumns));
  for (const auto& n : feature_names()) need.push_back(n);
  for (const auto& n : need)
    TESSERA_CHECK(col.count(n), InvalidArgument, "samples CSV '{}' has no column '{}'", path, n);
  std::vector<Sample> out;
  int lineno = 1;
  while (std::getline(f, line)) {
    ++lineno;
    if (line.empty() || line == "\r") continue;
    auto cells = split_csv(line);
    TESSERA_CHECK(cells.size() >= header.size(), InvalidArgument, "samples CSV '{}' line {}: {} fields, header has {}",
                  path, lineno, cells.size(), header.size());
    auto num = [&](const std::string& name) {
      const std::string& s = cells[col[name]];
      try {
        size_t used = 0;
        double v = std::stod(s, &used);
        if (used != s.size()) throw std::invalid_argument(s);
        return v;
      } catch (const std::exception&) {
        TESSERA_THROW(InvalidArgument, "samples CSV '{}' line {}: column '{}' = '{}' is not a number", path, lineno,
                      name, s);
      }
    };
    auto whole = [&](const std::string& name) {  // an integer column: no NaN, no fraction, in range
      const double v = num(name);
      TESSERA_CHECK(std::isfinite(v) && v == std::floor(v) && std::abs(v) < 1e9, InvalidArgument,
                    "samples CSV '{}' line {}: column '{}' = {} is not a whole number", path, lineno, name, v);
      return static_cast<int>(v);
    };
    Sample s;
    s.f.model = cells[col["model"]];
    s.label = cells[col["label"]];
    s.f.atom = whole("atom");
    s.f.main_kind = cells[col["main_kind"]];
    s.f.op_class = cells[col["op_class"]];
    s.f.kinds = cells[col["kinds"]];
    s.ctx.threads = whole("threads");
    s.ctx.background_load = num("background_load");
    s.ms = num("ms");
    for (int i = 0; i < kNumFeatures; ++i) s.f.x[i] = num(feature_names()[i]);
    try {
      check_machine_state(s.ctx);
    } catch (const Error& e) {
      TESSERA_THROW(InvalidArgument, "samples CSV '{}' line {}: {}", path, lineno, e.message());
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace tessera::predict
