// tessera/predict/predictor.h -- latency predictors: features + context -> ms.
//
// One batched interface (after TVM's cost_model.h): predict a whole set of atoms
// per call, update with new measured samples, save, load.
//
//   auto p = make_predictor("xgboost");
//   p->update(samples);                        // train (samples carry measured ms)
//   Prediction r = p->predict(batch);          // r.ms[i], r.fallback[i]
//   p->save("pred.json");  auto q = load_predictor("pred.json");
//
// Predictors
//   lookup    the measured medians themselves, keyed by (model hash, atom, threads,
//             load); a miss falls back to the analytic estimate (flagged).
//   analytic  roofline-style: ms = (c0 + c1 * FLOPs + c2 * bytes moved) * (1 + beta * load)
//             with c >= 0 fitted per (op class, threads) by non-negative least squares
//             on relative error, beta per threads count; pooled over all classes for a
//             class never measured; built-in constants before any calibration. A few
//             measurements (one profiled model) calibrate it.
//   xgboost   gradient-boosted trees (XGBoost, the C library of libxgboost-dev) learning
//             the log-ratio measured / analytic from the atom's features (op class,
//             log FLOPs, bytes, arithmetic intensity, kernel, stride, groups, channels)
//             and the context: a learned correction of the calibrated roofline. An atom
//             whose dominant op kind it never saw gets the analytic estimate, flagged.
//             Chosen over a LibTorch model: trees need no feature scaling, train in a
//             second on a few thousand rows, are the standard learner for tabular cost
//             models (TVM's XGBoost cost model), and keep this library torch-free.
//
// Saved predictors are one JSON file ("tessera-predictor/1"); a corrupt or foreign
// file is refused with InvalidArgument naming what is wrong.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tessera/predict/features.h"

namespace tessera::predict {

// Predictions of one batch, one entry per sample, in batch order.
struct Prediction {
  std::vector<double> ms;         // predicted latency per sample, ms
  std::vector<uint8_t> fallback;  // 1: the predictor could not answer itself, ms is the analytic estimate
};

// A latency predictor: features + machine state -> ms. predict() is const (concurrent calls
// are safe); update() must not run beside any other call.
class Predictor {
 public:
  virtual ~Predictor() = default;
  // "lookup" | "analytic" | "xgboost" | a plug-in's name
  virtual std::string kind() const = 0;
  // One prediction per sample (sample.ms is ignored). Never throws for an unknown op.
  virtual Prediction predict(const std::vector<Sample>& batch) const = 0;
  // Adds measured samples (sample.ms >= 0) and refits. InvalidArgument for samples without ms.
  virtual void update(const std::vector<Sample>& samples) = 0;
  // Writes the predictor as one JSON file.
  virtual void save(const std::string& path) const = 0;
};

// "lookup" | "analytic" | "xgboost"; anything else -> InvalidArgument.
std::unique_ptr<Predictor> make_predictor(const std::string& kind);
// Reads what save() wrote; NotFound for a missing file, InvalidArgument for a corrupt one.
std::unique_ptr<Predictor> load_predictor(const std::string& path);
// The kinds make_predictor knows.
std::vector<std::string> predictor_kinds();

// Predicts every atom of a model in one call (features from the op graph, one context).
Prediction predict_atoms(const Predictor& predictor, const OpGraph& graph, const std::vector<Atom>& atoms,
                         const std::string& model_hash, const MachineState& ctx);

// Options of the XGBoost predictor (make_predictor uses these defaults).
struct XGBoostOptions {
  int rounds = 400;        // boosting rounds per update from scratch
  int max_depth = 6;       // depth of each tree
  double eta = 0.05;            // learning rate (shrinkage), (0, 1]
  double subsample = 0.8;       // share of samples each tree sees, (0, 1]
  double min_child_weight = 2;  // least hessian sum in a leaf
  int nthread = 1;         // XGBoost's own threads (keep 1 beside profiling)
  int seed = 0;            // random seed: the same seed and samples, the same model
};
// An untrained XGBoost predictor with these options (make_predictor("xgboost") uses the defaults).
std::unique_ptr<Predictor> make_xgboost_predictor(const XGBoostOptions& options);

// The learned model's input: one row per sample (see learned_feature_names()).
// `analytic_ms` (one per sample) enters as log feature; pass an empty vector to get 0s.
std::vector<std::vector<float>> learned_features(const std::vector<Sample>& batch,
                                                 const std::vector<double>& analytic_ms);
// Names of learned_features' columns, in order.
const std::vector<std::string>& learned_feature_names();

// Accuracy of predictions against measured samples.
struct Accuracy {
  int atoms = 0;               // samples with ms >= min_ms
  double atoms_within = 0;     // share of them predicted within +-tolerance
  double mape = 0;             // mean |pred - ms| / ms over them, in percent
  int models = 0;              // (model, threads, load) groups
  double models_within = 0;    // share whose predicted sum of atoms is within +-tolerance of the measured sum
  double model_mape = 0;       // percent
  int fallbacks = 0;           // samples answered by the analytic fallback
};
// Throws InvalidArgument when predicted.ms and samples differ in size or no sample has ms.
Accuracy accuracy(const std::vector<Sample>& samples, const Prediction& predicted, double min_ms = 0.1,
                  double tolerance = 0.10);

}  // namespace tessera::predict
