// predict/xgboost.cpp -- the learned predictor: XGBoost trees correcting the
// calibrated roofline (AnalyticModel).
//
// Target: log(measured ms / analytic ms) -- a multiplicative correction, so the
// trees learn what the roofline misses (cache effects, kernel choice by shape,
// depthwise convolutions, thread scaling) in a scale-free form that carries over
// to models of other sizes. Prediction: analytic * exp(trees). An atom whose
// dominant op kind no training sample had gets the analytic estimate, flagged.
// Through XGBoost's C API (libxgboost-dev); the model is embedded in the
// predictor's JSON file as XGBoost's own JSON.
#include <xgboost/c_api.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <set>

#include "predict_impl.h"
#include "tessera/core/error.h"

#define TESSERA_XGB(call)                                                                            \
  do {                                                                                               \
    if ((call) != 0) TESSERA_THROW(Engine, "XGBoost: {} failed: {}", #call, XGBGetLastError());    \
  } while (0)

namespace tessera::predict {
namespace {

struct DMatrix {
  DMatrixHandle h = nullptr;
  DMatrix(const std::vector<std::vector<float>>& rows) {
    const size_t ncol = learned_feature_names().size();
    std::vector<float> flat;
    flat.reserve(rows.size() * ncol);
    for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
    TESSERA_XGB(XGDMatrixCreateFromMat(flat.data(), rows.size(), ncol, NAN, &h));
  }
  ~DMatrix() {
    if (h) XGDMatrixFree(h);
  }
  DMatrix(const DMatrix&) = delete;
  DMatrix& operator=(const DMatrix&) = delete;
};

class XGBoostPredictor : public Predictor {
 public:
  explicit XGBoostPredictor(XGBoostOptions o) : o_(o) {}
  ~XGBoostPredictor() override {
    if (booster_) XGBoosterFree(booster_);
  }
  std::string kind() const override { return "xgboost"; }

  Prediction predict(const std::vector<Sample>& batch) const override {
    Prediction p;
    p.ms.resize(batch.size());
    p.fallback.assign(batch.size(), 1);
    std::vector<double> base(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      check_machine_state(batch[i].ctx);
      p.ms[i] = base[i] = analytic_.predict(batch[i]);
    }
    if (!booster_ || batch.empty()) return p;
    auto rows = learned_features(batch, base);
    DMatrix d(rows);
    bst_ulong n = 0;
    const float* out = nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    TESSERA_XGB(XGBoosterPredict(booster_, d.h, 0, 0, 0, &n, &out));
    TESSERA_CHECK(n == batch.size(), Engine, "XGBoost returned {} predictions for {} rows", n, batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!seen_.count(batch[i].f.main_kind)) continue;  // never trained on this op: analytic, flagged
      p.ms[i] = base[i] * std::exp(std::clamp(static_cast<double>(out[i]), -5.0, 5.0));
      p.fallback[i] = 0;
    }
    return p;
  }

  void update(const std::vector<Sample>& samples) override {
    for (size_t i = 0; i < samples.size(); ++i) {
      check_machine_state(samples[i].ctx);
      TESSERA_CHECK(samples[i].ms >= 0 && std::isfinite(samples[i].ms), InvalidArgument,
                    "sample {} (model {} atom {}) has no measured ms (ms = {})", i, samples[i].label,
                    samples[i].f.atom, samples[i].ms);
    }
    TESSERA_CHECK(!samples.empty(), InvalidArgument, "no samples to train the xgboost predictor on");
    // A predictor loaded from a file keeps its trees, and the analytic baseline they
    // correct, and adds rounds on the new samples at every update (adapting to a new
    // machine; its training samples are not in the file, so retraining from scratch would
    // forget them); otherwise train from scratch on all samples held.
    const bool continue_training = booster_ != nullptr && loaded_;
    held_.insert(held_.end(), samples.begin(), samples.end());
    if (!continue_training) analytic_.fit(held_);
    const auto& train = continue_training ? samples : held_;
    std::vector<double> base(train.size());
    for (size_t i = 0; i < train.size(); ++i) base[i] = analytic_.predict(train[i]);
    auto rows = learned_features(train, base);
    std::vector<float> labels(train.size());
    for (size_t i = 0; i < train.size(); ++i)
      labels[i] = static_cast<float>(std::log(std::max(train[i].ms, 1e-4) / base[i]));
    DMatrix d(rows);
    TESSERA_XGB(XGDMatrixSetFloatInfo(d.h, "label", labels.data(), labels.size()));
    std::lock_guard<std::mutex> lock(mu_);
    int rounds = o_.rounds;
    if (!continue_training) {
      if (booster_) XGBoosterFree(booster_), booster_ = nullptr;
      TESSERA_XGB(XGBoosterCreate(&d.h, 1, &booster_));
      set_params();
    } else {
      rounds = std::max(1, o_.rounds / 4);
      TESSERA_XGB(XGBoosterSetParam(booster_, "nthread", std::to_string(o_.nthread).c_str()));
    }
    int start = 0;
    if (continue_training) TESSERA_XGB(XGBoosterBoostedRounds(booster_, &start));
    for (int it = 0; it < rounds; ++it) TESSERA_XGB(XGBoosterUpdateOneIter(booster_, start + it, d.h));
    for (const auto& s : samples) seen_.insert(s.f.main_kind);
  }

  void save(const std::string& path) const override {
    nlohmann::json j = {{"format", "tessera-predictor/1"}, {"kind", kind()}, {"analytic", analytic_.to_json()}};
    nlohmann::json x = {{"seen_kinds", seen_},
                        {"options",
                         {{"rounds", o_.rounds}, {"max_depth", o_.max_depth}, {"eta", o_.eta},
                          {"subsample", o_.subsample}, {"min_child_weight", o_.min_child_weight},
                          {"nthread", o_.nthread}, {"seed", o_.seed}}},
                        {"feature_names", learned_feature_names()}};
    if (booster_) {
      std::lock_guard<std::mutex> lock(mu_);
      bst_ulong len = 0;
      const char* buf = nullptr;
      TESSERA_XGB(XGBoosterSaveModelToBuffer(booster_, R"({"format": "json"})", &len, &buf));
      x["model"] = std::string(buf, len);
    }
    j["xgboost"] = x;
    write_json(path, j);
  }

  void set_params() {
    auto set = [&](const char* k, const std::string& v) { TESSERA_XGB(XGBoosterSetParam(booster_, k, v.c_str())); };
    set("objective", "reg:squarederror");
    set("eta", std::to_string(o_.eta));
    set("max_depth", std::to_string(o_.max_depth));
    set("subsample", std::to_string(o_.subsample));
    set("min_child_weight", std::to_string(o_.min_child_weight));
    set("nthread", std::to_string(o_.nthread));
    set("seed", std::to_string(o_.seed));
    set("verbosity", "0");
  }

  XGBoostOptions o_;
  AnalyticModel analytic_;
  std::vector<Sample> held_;
  std::set<std::string> seen_;
  bool loaded_ = false;  // trees from a file: updates continue them
  BoosterHandle booster_ = nullptr;
  mutable std::mutex mu_;
};

}  // namespace

std::unique_ptr<Predictor> make_xgboost_predictor(const XGBoostOptions& o) {
  TESSERA_CHECK(o.rounds >= 1, InvalidArgument, "xgboost rounds = {} must be >= 1", o.rounds);
  TESSERA_CHECK(o.max_depth >= 1, InvalidArgument, "xgboost max_depth = {} must be >= 1", o.max_depth);
  TESSERA_CHECK(o.eta > 0 && o.eta <= 1, InvalidArgument, "xgboost eta = {} must be in (0, 1]", o.eta);
  TESSERA_CHECK(o.subsample > 0 && o.subsample <= 1, InvalidArgument, "xgboost subsample = {} must be in (0, 1]",
                o.subsample);
  TESSERA_CHECK(o.nthread >= 1, InvalidArgument, "xgboost nthread = {} must be >= 1", o.nthread);
  return std::make_unique<XGBoostPredictor>(o);
}

std::unique_ptr<Predictor> xgboost_from_json(const nlohmann::json& j, const std::string& path) {
  XGBoostOptions o;
  std::unique_ptr<XGBoostPredictor> p;
  try {
    const auto& x = j.at("xgboost");
    const auto& opt = x.at("options");
    o.rounds = opt.at("rounds").get<int>();
    o.max_depth = opt.at("max_depth").get<int>();
    o.eta = opt.at("eta").get<double>();
    o.subsample = opt.at("subsample").get<double>();
    o.min_child_weight = opt.at("min_child_weight").get<double>();
    o.nthread = opt.at("nthread").get<int>();
    o.seed = opt.at("seed").get<int>();
    auto names = x.at("feature_names").get<std::vector<std::string>>();
    for (auto& n : names)
      if (n == "load") n = "background_load";  // its name before 0.2
    TESSERA_CHECK(names == learned_feature_names(), InvalidArgument,
                  "predictor file '{}' was trained on other features ({} of them, this build has {})", path,
                  names.size(), learned_feature_names().size());
    p.reset(static_cast<XGBoostPredictor*>(make_xgboost_predictor(o).release()));
    p->analytic_ = AnalyticModel::from_json(j.at("analytic"));
    p->seen_ = x.at("seen_kinds").get<std::set<std::string>>();
    if (x.contains("model")) {
      auto model = x.at("model").get<std::string>();
      TESSERA_XGB(XGBoosterCreate(nullptr, 0, &p->booster_));
      if (XGBoosterLoadModelFromBuffer(p->booster_, model.data(), model.size()) != 0)
        TESSERA_THROW(InvalidArgument, "predictor file '{}': the XGBoost model is corrupt: {}", path,
                      XGBGetLastError());
      p->o_.nthread = o.nthread;
      p->loaded_ = true;
      TESSERA_XGB(XGBoosterSetParam(p->booster_, "nthread", std::to_string(o.nthread).c_str()));
    }
  } catch (const nlohmann::json::exception& e) {
    TESSERA_THROW(InvalidArgument, "predictor file '{}': missing or mistyped field: {}", path, e.what());
  }
  return p;
}

}  // namespace tessera::predict
