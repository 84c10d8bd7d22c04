// Internal to the predict layer: the analytic model shared by every predictor
// (lookup and xgboost fall back to it), and JSON helpers. Not installed.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "tessera/predict/predictor.h"

namespace tessera::predict {

// ms = (c0 + c1 * GFLOP + c2 * MB moved) * (1 + beta[threads] * load)
struct Roofline {
  double c0 = 0.005, c1 = 0.05, c2 = 0.2;  // ms, ms per GFLOP, ms per MB
  int n = 0;                                // samples it was fitted on
};

class AnalyticModel {
 public:
  // Fits from scratch on every sample held (the ones with ms >= 0).
  void fit(const std::vector<Sample>& samples);
  double predict(const Sample& s) const;
  bool calibrated() const { return !fits_.empty(); }
  nlohmann::json to_json() const;
  static AnalyticModel from_json(const nlohmann::json& j);  // InvalidArgument on bad fields

 private:
  // class ("*" = every class pooled) -> threads -> fit
  std::map<std::string, std::map<int, Roofline>> fits_;
  std::map<int, double> beta_;  // threads -> load sensitivity
  Roofline base(const Sample& s) const;
};

double gflop(const Sample& s);
double mb_moved(const Sample& s);

std::string lookup_key(const AtomFeatures& f, const MachineState& ctx);

// Reads a predictor file: parsed JSON with format and kind checked.
nlohmann::json read_predictor_json(const std::string& path);
void write_json(const std::string& path, const nlohmann::json& j);

std::unique_ptr<Predictor> xgboost_from_json(const nlohmann::json& j, const std::string& path);

}  // namespace tessera::predict
