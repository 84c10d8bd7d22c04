// tessera._core: the compiled module. One binding file per layer; they only wrap.
#include "tessera/core/version.h"
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_core(py::module_& m);
void bind_atoms(py::module_& m);
void bind_plan(py::module_& m);
void bind_profile(py::module_& m);
void bind_predict(py::module_& m);
void bind_runtime(py::module_& m);
void bind_adapt(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "tessera engine (C++): atoms, planners, runtime. Use the `tessera` package, not this module.";
  m.attr("__version__") = tessera::kVersionString;  // tessera/core/version.h: the one place
  m.attr("wire_protocol_version") = tessera::kWireProtocolVersion;
  m.attr("atom_store_format") = tessera::kAtomStoreFormat;
  bind_core(m);
  bind_atoms(m);
  bind_plan(m);
  bind_profile(m);
  bind_predict(m);
  bind_runtime(m);
  bind_adapt(m);
}
