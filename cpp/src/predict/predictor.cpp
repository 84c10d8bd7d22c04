// predict/predictor.cpp -- lookup and analytic (roofline-style) predictors, the
// learned model's feature rows, accuracy metrics, save/load dispatch.
//
// The analytic model is a calibrated roofline written as a sum, which is smooth
// and fits by linear least squares: per op class and thread count,
//   ms = c0 + c1 * GFLOP + c2 * MB moved     (c >= 0; MB = inputs + outputs + weights)
// fitted on relative error (each row divided by its measured ms) by exact
// non-negative least squares over the 7 active sets of 3 unknowns. The load
// factor multiplies: (1 + beta[threads] * load), beta the median sensitivity seen.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "predict_impl.h"
#include "tessera/core/error.h"

namespace tessera::predict {
namespace {

double median(std::vector<double> xs) {
  if (xs.empty()) return 0;
  std::sort(xs.begin(), xs.end());
  size_t n = xs.size();
  return n % 2 ? xs[n / 2] : 0.5 * (xs[n / 2 - 1] + xs[n / 2]);
}

// min ||A c - 1||^2 over c >= 0, A rows = [1, g, b] / ms. Returns the best fit.
Roofline nnls3(const std::vector<std::array<double, 3>>& rows) {
  Roofline best;
  double best_err = INFINITY;
  for (int mask = 1; mask < 8; ++mask) {
    int idx[3], k = 0;
    for (int j = 0; j < 3; ++j)
      if (mask & (1 << j)) idx[k++] = j;
    // normal equations of the active columns
    double M[3][4] = {};
    for (const auto& r : rows)
      for (int a = 0; a < k; ++a) {
        for (int b = 0; b < k; ++b) M[a][b] += r[idx[a]] * r[idx[b]];
        M[a][3] += r[idx[a]];
      }
    for (int a = 0; a < k; ++a) M[a][a] *= 1 + 1e-9;  // ridge for conditioning
    // Gaussian elimination with partial pivoting
    bool ok = true;
    for (int c = 0; c < k && ok; ++c) {
      int p = c;
      for (int r = c + 1; r < k; ++r)
        if (std::fabs(M[r][c]) > std::fabs(M[p][c])) p = r;
      if (std::fabs(M[p][c]) < 1e-300) {
        ok = false;
        break;
      }
      for (int j = 0; j < 4; ++j) std::swap(M[c][j], M[p][j]);
      for (int r = 0; r < k; ++r) {
        if (r == c) continue;
        double f = M[r][c] / M[c][c];
        for (int j = 0; j < 4; ++j) M[r][j] -= f * M[c][j];
      }
    }
    if (!ok) continue;
    double c[3] = {0, 0, 0};
    for (int a = 0; a < k; ++a) {
      c[idx[a]] = M[a][3] / M[a][a];
      if (!(c[idx[a]] >= 0) || !std::isfinite(c[idx[a]])) ok = false;
    }
    if (!ok) continue;
    double err = 0;
    for (const auto& r : rows) {
      double e = r[0] * c[0] + r[1] * c[1] + r[2] * c[2] - 1;
      err += e * e;
    }
    if (err < best_err) best_err = err, best.c0 = c[0], best.c1 = c[1], best.c2 = c[2];
  }
  best.n = static_cast<int>(rows.size());
  return best;
}

template <class Map>
auto nearest_threads(const Map& m, int threads) {
  auto best = m.begin();
  for (auto it = m.begin(); it != m.end(); ++it)
    if (std::abs(it->first - threads) < std::abs(best->first - threads)) best = it;
  return best;
}

}  // namespace

double gflop(const Sample& s) { return s.f.x[kFlops] * 1e-9; }
double mb_moved(const Sample& s) { return (s.f.x[kInBytes] + s.f.x[kOutBytes] + s.f.x[kParamBytes]) * 1e-6; }

// ---- AnalyticModel ----------------------------------------------------------------
void AnalyticModel::fit(const std::vector<Sample>& samples) {
  fits_.clear();
  beta_.clear();
  std::map<std::string, std::map<int, std::vector<std::array<double, 3>>>> rows;
  bool any_unloaded = false;
  for (const auto& s : samples) any_unloaded |= s.ms > 0 && s.ctx.background_load == 0;
  for (const auto& s : samples) {
    if (!(s.ms > 0) || (any_unloaded && s.ctx.background_load != 0)) continue;
    std::array<double, 3> r{1 / s.ms, gflop(s) / s.ms, mb_moved(s) / s.ms};
    rows[s.f.op_class][s.ctx.threads].push_back(r);
    rows["*"][s.ctx.threads].push_back(r);
  }
  for (auto& [cls, by_t] : rows)
    for (auto& [t, rs] : by_t) fits_[cls][t] = nnls3(rs);
  if (!any_unloaded) return;
  std::map<int, std::vector<double>> sens;
  for (const auto& s : samples) {
    if (!(s.ms > 0) || s.ctx.background_load <= 0) continue;
    Roofline r = base(s);
    double b = r.c0 + r.c1 * gflop(s) + r.c2 * mb_moved(s);
    if (b > 0) sens[s.ctx.threads].push_back((s.ms / b - 1) / s.ctx.background_load);
  }
  for (auto& [t, xs] : sens) beta_[t] = std::max(0.0, median(xs));
}

Roofline AnalyticModel::base(const Sample& s) const {
  auto cls = fits_.find(s.f.op_class);
  if (cls == fits_.end() || cls->second.empty()) cls = fits_.find("*");
  if (cls == fits_.end() || cls->second.empty()) {
    Roofline d;  // uncalibrated: ~20 GFLOP/s per thread, ~5 GB/s, 5 us per call
    d.c1 /= std::max(1, s.ctx.threads);
    return d;
  }
  auto it = nearest_threads(cls->second, s.ctx.threads);
  Roofline r = it->second;
  if (it->first != s.ctx.threads) r.c1 *= static_cast<double>(it->first) / std::max(1, s.ctx.threads);
  return r;
}

double AnalyticModel::predict(const Sample& s) const {
  Roofline r = base(s);
  double ms = r.c0 + r.c1 * gflop(s) + r.c2 * mb_moved(s);
  if (s.ctx.background_load > 0 && !beta_.empty()) ms *= 1 + nearest_threads(beta_, s.ctx.threads)->second * s.ctx.background_load;
  return std::max(ms, 1e-6);
}

nlohmann::json AnalyticModel::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  nlohmann::json fits = nlohmann::json::array();
  for (const auto& [cls, by_t] : fits_)
    for (const auto& [t, r] : by_t)
      fits.push_back({{"class", cls}, {"threads", t}, {"c0", r.c0}, {"c1", r.c1}, {"c2", r.c2}, {"n", r.n}});
  j["fits"] = fits;
  nlohmann::json beta = nlohmann::json::array();
  for (const auto& [t, b] : beta_) beta.push_back({{"threads", t}, {"beta", b}});
  j["beta"] = beta;
  return j;
}

AnalyticModel AnalyticModel::from_json(const nlohmann::json& j) {
  AnalyticModel m;
  try {
    for (const auto& f : j.at("fits")) {
      Roofline r;
      r.c0 = f.at("c0").get<double>(), r.c1 = f.at("c1").get<double>(), r.c2 = f.at("c2").get<double>();
      r.n = f.at("n").get<int>();
      TESSERA_CHECK(std::isfinite(r.c0) && std::isfinite(r.c1) && std::isfinite(r.c2) && r.c0 >= 0 && r.c1 >= 0 &&
                        r.c2 >= 0,
                    InvalidArgument, "analytic coefficients of class '{}' are not finite non-negative numbers",
                    f.at("class").get<std::string>());
      m.fits_[f.at("class").get<std::string>()][f.at("threads").get<int>()] = r;
    }
    for (const auto& b : j.at("beta")) m.beta_[b.at("threads").get<int>()] = b.at("beta").get<double>();
  } catch (const nlohmann::json::exception& e) {
    TESSERA_THROW(InvalidArgument, "analytic model: missing or mistyped field: {}", e.what());
  }
  return m;
}

// ---- helpers ----------------------------------------------------------------------------
std::string lookup_key(const AtomFeatures& f, const MachineState& ctx) {
  return fmt::format("{}#{}#{}#{:.3f}", f.model, f.atom, ctx.threads, ctx.background_load);
}

void write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream f(path);
  TESSERA_CHECK(f.good(), NotFound, "cannot write predictor '{}'", path);
  f << j.dump();
  TESSERA_CHECK(f.good(), Engine, "failed writing predictor '{}'", path);
}

nlohmann::json read_predictor_json(const std::string& path) {
  std::ifstream f(path);
  TESSERA_CHECK(f.good(), NotFound, "predictor file '{}' does not exist or cannot be read", path);
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const std::exception& e) {
    TESSERA_THROW(InvalidArgument, "predictor file '{}' is corrupt (not JSON): {}", path,
                  std::string(e.what()).substr(0, 200));
  }
  TESSERA_CHECK(j.is_object() && j.contains("format") && j["format"].is_string() &&
                    j["format"].get<std::string>() == "tessera-predictor/1",
                InvalidArgument, "'{}' is not a tessera predictor (expected format 'tessera-predictor/1')", path);
  TESSERA_CHECK(j.contains("kind") && j["kind"].is_string(), InvalidArgument, "predictor file '{}' has no kind",
                path);
  TESSERA_CHECK(j.contains("analytic") && j["analytic"].is_object(), InvalidArgument,
                "predictor file '{}' has no analytic section", path);
  return j;
}

// ---- predictors --------------------------------------------------------------------------
namespace {

void check_measured(const std::vector<Sample>& samples) {
  for (size_t i = 0; i < samples.size(); ++i) {
    check_machine_state(samples[i].ctx);
    TESSERA_CHECK(samples[i].ms >= 0 && std::isfinite(samples[i].ms), InvalidArgument,
                  "sample {} (model {} atom {}) has no measured ms (ms = {})", i, samples[i].label,
                  samples[i].f.atom, samples[i].ms);
  }
}

class AnalyticPredictor : public Predictor {
 public:
  std::string kind() const override { return "analytic"; }
  Prediction predict(const std::vector<Sample>& batch) const override {
    Prediction p;
    p.ms.reserve(batch.size());
    for (const auto& s : batch) p.ms.push_back(model_.predict(s));
    p.fallback.assign(batch.size(), 0);
    return p;
  }
  void update(const std::vector<Sample>& samples) override {
    check_measured(samples);
    held_.insert(held_.end(), samples.begin(), samples.end());
    model_.fit(held_);
  }
  void save(const std::string& path) const override {
    write_json(path, {{"format", "tessera-predictor/1"}, {"kind", kind()}, {"analytic", model_.to_json()}});
  }
  AnalyticModel model_;
  std::vector<Sample> held_;
};

class LookupPredictor : public AnalyticPredictor {
 public:
  std::string kind() const override { return "lookup"; }
  Prediction predict(const std::vector<Sample>& batch) const override {
    Prediction p;
    for (const auto& s : batch) {
      auto it = table_.find(lookup_key(s.f, s.ctx));
      p.ms.push_back(it != table_.end() ? it->second : model_.predict(s));
      p.fallback.push_back(it == table_.end());
    }
    return p;
  }
  void update(const std::vector<Sample>& samples) override {
    AnalyticPredictor::update(samples);
    for (const auto& s : samples) table_[lookup_key(s.f, s.ctx)] = s.ms;
  }
  void save(const std::string& path) const override {
    write_json(path, {{"format", "tessera-predictor/1"}, {"kind", kind()}, {"analytic", model_.to_json()},
                      {"table", table_}});
  }
  std::map<std::string, double> table_;
};

}  // namespace

std::unique_ptr<Predictor> make_predictor(const std::string& kind) {
  if (kind == "analytic") return std::make_unique<AnalyticPredictor>();
  if (kind == "lookup") return std::make_unique<LookupPredictor>();
  if (kind == "xgboost") return make_xgboost_predictor(XGBoostOptions{});
  TESSERA_THROW(InvalidArgument, "unknown predictor kind '{}'; known: {}", kind, fmt::join(predictor_kinds(), ", "));
}

std::vector<std::string> predictor_kinds() { return {"lookup", "analytic", "xgboost"}; }

std::unique_ptr<Predictor> load_predictor(const std::string& path) {
  auto j = read_predictor_json(path);
  const std::string kind = j["kind"].get<std::string>();
  if (kind == "analytic" || kind == "lookup") {
    auto model = AnalyticModel::from_json(j["analytic"]);
    if (kind == "analytic") {
      auto p = std::make_unique<AnalyticPredictor>();
      p->model_ = std::move(model);
      return p;
    }
    auto p = std::make_unique<LookupPredictor>();
    p->model_ = std::move(model);
    try {
      p->table_ = j.at("table").get<std::map<std::string, double>>();
    } catch (const nlohmann::json::exception& e) {
      TESSERA_THROW(InvalidArgument, "predictor file '{}': bad lookup table: {}", path, e.what());
    }
    return p;
  }
  if (kind == "xgboost") return xgboost_from_json(j, path);
  TESSERA_THROW(InvalidArgument, "predictor file '{}' has unknown kind '{}'; known: {}", path, kind,
                fmt::join(predictor_kinds(), ", "));
}

Prediction predict_atoms(const Predictor& predictor, const OpGraph& graph, const std::vector<Atom>& atoms,
                         const std::string& model_hash, const MachineState& ctx) {
  auto batch = make_samples(atom_features(graph, atoms, model_hash), ctx);
  auto p = predictor.predict(batch);
  TESSERA_CHECK(p.ms.size() == batch.size(), InvalidArgument, "predictor '{}' returned {} values for {} atoms",
                predictor.kind(), p.ms.size(), batch.size());
  if (p.fallback.empty()) p.fallback.assign(batch.size(), 0);
  for (size_t i = 0; i < p.ms.size(); ++i)
    TESSERA_CHECK(std::isfinite(p.ms[i]) && p.ms[i] >= 0, InvalidArgument,
                  "predictor '{}' returned {} ms for atom {}", predictor.kind(), p.ms[i], i);
  return p;
}

// ---- learned features ----------------------------------------------------------------------
const std::vector<std::string>& learned_feature_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& c : op_classes()) n.push_back("class_" + c);
    for (const auto& f : feature_names()) n.push_back("log_" + f);
    for (const char* s : {"log_intensity", "log_flops_per_out", "depthwise", "pointwise", "threads", "background_load",
                          "log_analytic_ms"})
      n.push_back(s);
    return n;
  }();
  return names;
}

std::vector<std::vector<float>> learned_features(const std::vector<Sample>& batch,
                                                 const std::vector<double>& analytic_ms) {
  TESSERA_CHECK(analytic_ms.empty() || analytic_ms.size() == batch.size(), InvalidArgument,
                "{} analytic estimates for {} samples", analytic_ms.size(), batch.size());
  const auto& classes = op_classes();
  std::vector<std::vector<float>> rows;
  rows.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto& s = batch[i];
    std::vector<float> r;
    r.reserve(learned_feature_names().size());
    for (const auto& c : classes) r.push_back(s.f.op_class == c ? 1.f : 0.f);
    for (double x : s.f.x) r.push_back(static_cast<float>(std::log1p(std::max(0.0, x))));
    double bytes = s.f.x[kInBytes] + s.f.x[kOutBytes] + s.f.x[kParamBytes];
    r.push_back(static_cast<float>(std::log((s.f.x[kFlops] + 1) / (bytes + 1))));
    r.push_back(static_cast<float>(std::log1p(s.f.x[kMainFlops] / std::max(1.0, s.f.x[kOutNumel]))));
    bool dw = s.f.op_class == "conv" && s.f.x[kGroups] > 1 && s.f.x[kGroups] >= s.f.x[kCin];
    r.push_back(dw ? 1.f : 0.f);
    r.push_back(s.f.op_class == "conv" && s.f.x[kKernel] == 1 ? 1.f : 0.f);
    r.push_back(static_cast<float>(s.ctx.threads));
    r.push_back(static_cast<float>(s.ctx.background_load));
    r.push_back(analytic_ms.empty() ? 0.f : static_cast<float>(std::log(std::max(analytic_ms[i], 1e-6))));
    rows.push_back(std::move(r));
  }
  return rows;
}

// ---- accuracy ------------------------------------------------------------------------------
Accuracy accuracy(const std::vector<Sample>& samples, const Prediction& pred, double min_ms, double tol) {
  TESSERA_CHECK(pred.ms.size() == samples.size(), InvalidArgument, "{} predictions for {} samples", pred.ms.size(),
                samples.size());
  Accuracy acc;
  double ape = 0;
  std::map<std::string, std::pair<double, double>> models;  // key -> (measured sum, predicted sum)
  int measured = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto& s = samples[i];
    if (!(s.ms >= 0)) continue;
    ++measured;
    if (!pred.fallback.empty() && pred.fallback[i]) ++acc.fallbacks;
    auto& m = models[fmt::format("{}#{}#{:.3f}", s.f.model, s.ctx.threads, s.ctx.background_load)];
    m.first += s.ms, m.second += pred.ms[i];
    if (s.ms < min_ms) continue;
    double e = std::fabs(pred.ms[i] - s.ms) / s.ms;
    ++acc.atoms;
    acc.atoms_within += e <= tol;
    ape += e;
  }
  TESSERA_CHECK(measured > 0, InvalidArgument, "no sample has a measured latency to compare with");
  if (acc.atoms) acc.atoms_within /= acc.atoms, acc.mape = 100 * ape / acc.atoms;
  double mape = 0;
  for (const auto& [k, m] : models) {
    if (m.first <= 0) continue;
    double e = std::fabs(m.second - m.first) / m.first;
    ++acc.models;
    acc.models_within += e <= tol;
    mape += e;
  }
  if (acc.models) acc.models_within /= acc.models, acc.model_mape = 100 * mape / acc.models;
  return acc;
}

}  // namespace tessera::predict
