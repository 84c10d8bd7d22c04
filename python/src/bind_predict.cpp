// Bindings of the predict layer (tessera/predict/*.h): torch-free. Wrap only.
// Predictor has a trampoline so a Python class can implement it and be used
// wherever the C++ predictors go (predict_atoms calls back into Python).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "tessera/core/error.h"
#include "tessera/predict/features.h"
#include "tessera/predict/predictor.h"

namespace py = pybind11;
using namespace tessera;
using namespace tessera::predict;

namespace {

class PyPredictor : public Predictor {
 public:
  std::string kind() const override { PYBIND11_OVERRIDE_PURE(std::string, Predictor, kind, ); }
  Prediction predict(const std::vector<Sample>& batch) const override {
    py::gil_scoped_acquire gil;
    py::function f = py::get_override(static_cast<const Predictor*>(this), "predict");
    TESSERA_CHECK(static_cast<bool>(f), Unsupported, "a Python predictor must define predict(samples)");
    py::object r = f(batch);
    if (py::isinstance<Prediction>(r)) return r.cast<Prediction>();
    Prediction p;
    try {
      p.ms = r.cast<std::vector<double>>();
    } catch (const py::cast_error&) {
      TESSERA_THROW(InvalidArgument, "Python predictor '{}'.predict returned a {}, expected a Prediction or a "
                    "sequence of floats", kind(), std::string(py::str(r.get_type().attr("__name__"))));
    }
    TESSERA_CHECK(p.ms.size() == batch.size(), InvalidArgument,
                  "Python predictor '{}' returned {} values for {} samples", kind(), p.ms.size(), batch.size());
    p.fallback.assign(batch.size(), 0);
    return p;
  }
  void update(const std::vector<Sample>& samples) override {
    PYBIND11_OVERRIDE_PURE(void, Predictor, update, samples);
  }
  void save(const std::string& path) const override { PYBIND11_OVERRIDE_PURE(void, Predictor, save, path); }
};

std::shared_ptr<Predictor> shared(std::unique_ptr<Predictor> p) { return std::shared_ptr<Predictor>(std::move(p)); }

}  // namespace

void bind_predict(py::module_& m) {
  m.def("op_classes", &op_classes);
  m.def("op_class", &op_class, py::arg("kind"));
  m.def("feature_names", &feature_names);
  m.def("learned_feature_names", &learned_feature_names);
  py::class_<AtomFeatures>(m, "AtomFeatures")
      .def(py::init<>())
      .def_readwrite("model", &AtomFeatures::model)
      .def_readwrite("atom", &AtomFeatures::atom)
      .def_readwrite("main_kind", &AtomFeatures::main_kind)
      .def_readwrite("op_class", &AtomFeatures::op_class)
      .def_readwrite("kinds", &AtomFeatures::kinds)
      .def_property(
          "x", [](const AtomFeatures& f) { return std::vector<double>(f.x.begin(), f.x.end()); },
          [](AtomFeatures& f, const std::vector<double>& x) {
            TESSERA_CHECK(x.size() == f.x.size(), InvalidArgument, "x needs {} features, got {}", f.x.size(),
                          x.size());
            std::copy(x.begin(), x.end(), f.x.begin());
          })
      .def("__getitem__",
           [](const AtomFeatures& f, const std::string& name) {
             const auto& n = feature_names();
             auto it = std::find(n.begin(), n.end(), name);
             if (it == n.end()) throw py::key_error(name);
             return f.x[it - n.begin()];
           })
      .def("__repr__", [](const AtomFeatures& f) {
        return fmt::format("AtomFeatures(atom {} {} [{}] {:.3g} FLOPs)", f.atom, f.main_kind, f.op_class,
                           f.x[kFlops]);
      });
  py::class_<MachineState>(m, "MachineState",
                           "The machine an atom runs on: intra-op threads and background load (cores kept busy).")
      .def(py::init([](int threads, double background_load) { return MachineState{threads, background_load}; }),
           py::arg("threads") = 1, py::arg("background_load") = 0.0)
      .def_readwrite("threads", &MachineState::threads)
      .def_readwrite("background_load", &MachineState::background_load)
      .def("__repr__", [](const MachineState& c) {
        return fmt::format("MachineState(threads={}, background_load={})", c.threads, c.background_load);
      });
  py::class_<Sample>(m, "Sample", "One atom in one machine state (features f, ctx), with its measured ms when known (else < 0) and a label.")
      .def(py::init<>())
      .def_readwrite("f", &Sample::f)
      .def_readwrite("ctx", &Sample::ctx)
      .def_readwrite("ms", &Sample::ms)
      .def_readwrite("label", &Sample::label)
      .def("__repr__", [](const Sample& s) {
        return fmt::format("Sample({} atom {} {} threads={} background_load={} ms={})", s.label, s.f.atom, s.f.main_kind,
                           s.ctx.threads, s.ctx.background_load, s.ms);
      });
  py::class_<Prediction>(m, "Prediction")
      .def(py::init([](std::vector<double> ms, std::vector<uint8_t> fallback) {
             if (fallback.empty()) fallback.assign(ms.size(), 0);
             TESSERA_CHECK(fallback.size() == ms.size(), InvalidArgument, "{} fallback flags for {} values",
                           fallback.size(), ms.size());
             return Prediction{std::move(ms), std::move(fallback)};
           }),
           py::arg("ms"), py::arg("fallback") = std::vector<uint8_t>{})
      .def_readonly("ms", &Prediction::ms)
      .def_property_readonly("fallback",
                             [](const Prediction& p) { return std::vector<bool>(p.fallback.begin(), p.fallback.end()); });
  py::class_<Predictor, PyPredictor, std::shared_ptr<Predictor>>(
      m, "Predictor", "A latency predictor: per-atom milliseconds from features and a context (predict/predictor.h).")
      .def(py::init<>())
      .def("kind", &Predictor::kind)
      .def("predict", &Predictor::predict, py::arg("samples"), py::call_guard<py::gil_scoped_release>())
      .def("update", &Predictor::update, py::arg("samples"), py::call_guard<py::gil_scoped_release>())
      .def(
          "save",
          [](const Predictor& p, const py::object& path) {  // str or os.PathLike
            p.save(py::module_::import("os").attr("fspath")(path).cast<std::string>());
          },
          py::arg("path"));
  m.def("make_predictor", [](const std::string& kind) { return shared(make_predictor(kind)); }, py::arg("kind"));
  m.def(
      "make_xgboost_predictor",
      [](int rounds, int max_depth, double eta, double subsample, double min_child_weight, int nthread, int seed) {
        return shared(make_xgboost_predictor({rounds, max_depth, eta, subsample, min_child_weight, nthread, seed}));
      },
      py::arg("rounds") = 400, py::arg("max_depth") = 6, py::arg("eta") = 0.05, py::arg("subsample") = 0.8,
      py::arg("min_child_weight") = 2.0, py::arg("nthread") = 1, py::arg("seed") = 0);
  m.def("load_predictor", [](const std::string& path) { return shared(load_predictor(path)); }, py::arg("path"));
  m.def("predictor_kinds", &predictor_kinds);
  m.def("atom_features", &atom_features, py::arg("graph"), py::arg("atoms"), py::arg("model_hash"));
  m.def("make_samples", &make_samples, py::arg("features"), py::arg("context"), py::arg("ms") = std::vector<double>{},
        py::arg("label") = "");
  m.def("write_samples_csv", &write_samples_csv, py::arg("path"), py::arg("samples"));
  m.def("read_samples_csv", &read_samples_csv, py::arg("path"));
  m.def("predict_atoms", &predict_atoms, py::arg("predictor"), py::arg("graph"), py::arg("atoms"),
        py::arg("model_hash"), py::arg("context"), py::call_guard<py::gil_scoped_release>());
  m.def("learned_features", &learned_features, py::arg("samples"), py::arg("analytic_ms") = std::vector<double>{});
  py::class_<Accuracy>(m, "Accuracy")
      .def_readonly("atoms", &Accuracy::atoms)
      .def_readonly("atoms_within", &Accuracy::atoms_within)
      .def_readonly("mape", &Accuracy::mape)
      .def_readonly("models", &Accuracy::models)
      .def_readonly("models_within", &Accuracy::models_within)
      .def_readonly("model_mape", &Accuracy::model_mape)
      .def_readonly("fallbacks", &Accuracy::fallbacks)
      .def("__repr__", [](const Accuracy& a) {
        return fmt::format("Accuracy(atoms={} within={:.1f}% mape={:.1f}%, models={} within={:.1f}% mape={:.1f}%, "
                           "fallbacks={})",
                           a.atoms, 100 * a.atoms_within, a.mape, a.models, 100 * a.models_within, a.model_mape,
                           a.fallbacks);
      });
  m.def("accuracy", &accuracy, py::arg("samples"), py::arg("predicted"), py::arg("min_ms") = 0.1,
        py::arg("tolerance") = 0.10);
}
