// Bindings of the profile layer (tessera/profile/profile.h). Wrap only.
#include <torch/extension.h>

#include "tessera/profile/profile.h"

namespace py = pybind11;
using namespace tessera;
using profile::CostTable;
using profile::ProfileOptions;

void bind_profile(py::module_& m) {
  py::class_<ProfileOptions>(m, "ProfileOptions")
      .def(py::init([](int threads, int repeats, int warmup, double background_load, double settle, double reference_ms,
                       int max_discarded, double max_wait_ms) {
             return ProfileOptions{threads, repeats, warmup, background_load, settle, reference_ms, max_discarded, max_wait_ms};
           }),
           py::arg("threads") = 0, py::arg("repeats") = 20, py::arg("warmup") = 3, py::arg("background_load") = 0.0,
           py::arg("settle") = 0.0, py::arg("reference_ms") = 0.0, py::arg("max_discarded") = -1,
           py::arg("max_wait_ms") = 30000.0)
      .def_readwrite("max_wait_ms", &ProfileOptions::max_wait_ms)
      .def_readwrite("settle", &ProfileOptions::settle)
      .def_readwrite("reference_ms", &ProfileOptions::reference_ms)
      .def_readwrite("max_discarded", &ProfileOptions::max_discarded)
      .def_readwrite("threads", &ProfileOptions::threads)
      .def_readwrite("repeats", &ProfileOptions::repeats)
      .def_readwrite("warmup", &ProfileOptions::warmup)
      .def_readwrite("background_load", &ProfileOptions::background_load);
  py::class_<CostTable>(m, "CostTable")
      .def(py::init<>())
      .def_readwrite("model_hash", &CostTable::model_hash)
      .def_readwrite("label", &CostTable::label)
      .def_readonly("threads", &CostTable::threads)
      .def_readonly("repeats", &CostTable::repeats)
      .def_readonly("warmup", &CostTable::warmup)
      .def_readonly("background_load", &CostTable::background_load)
      .def_readonly("atom_ms", &CostTable::atom_ms)
      .def_readonly("atom_q1_ms", &CostTable::atom_q1_ms)
      .def_readonly("atom_q3_ms", &CostTable::atom_q3_ms)
      .def_readonly("param_bytes", &CostTable::param_bytes)
      .def_readonly("value_bytes", &CostTable::value_bytes)
      .def_readonly("model_ms", &CostTable::model_ms)
      .def_readonly("model_q1_ms", &CostTable::model_q1_ms)
      .def_readonly("model_q3_ms", &CostTable::model_q3_ms)
      .def_readonly("canary_reference_ms", &CostTable::canary_reference_ms)
      .def_readonly("canary_ms", &CostTable::canary_ms)
      .def_readonly("rounds_discarded", &CostTable::rounds_discarded)
      .def_readonly("settled", &CostTable::settled)
      .def_readonly("waited_ms", &CostTable::waited_ms)
      .def_property_readonly("num_atoms", &CostTable::num_atoms)
      .def("sum_atom_ms", &CostTable::sum_atom_ms)
      .def("summary", &CostTable::summary, py::arg("atoms") = std::vector<Atom>{}, py::arg("top") = -1)
      .def("to_json", &CostTable::to_json)
      .def_static("from_json", &CostTable::from_json, py::arg("text"))
      .def("write", &CostTable::write, py::arg("path"))
      .def_static("read", &CostTable::read, py::arg("path"));
  m.def(
      "canary_ms",
      [](int runs) {
        py::gil_scoped_release release;
        return profile::canary_ms(runs);
      },
      py::arg("runs") = 5);
  m.def(
      "profile",
      [](const Model& model, const std::vector<at::Tensor>& inputs, const ProfileOptions& o, py::object progress) {
        profile::ProgressFn fn;
        if (!progress.is_none())
          fn = [&progress](int done, int total) {
            py::gil_scoped_acquire gil;
            progress(done, total);
            if (PyErr_CheckSignals() != 0) throw py::error_already_set();  // Ctrl-C stops a long run
          };
        py::gil_scoped_release release;
        return profile::profile(model, inputs, o, fn);
      },
      py::arg("model"), py::arg("inputs"), py::arg("options") = ProfileOptions{}, py::arg("progress") = py::none());
}
