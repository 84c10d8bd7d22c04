// tessera._testhooks: what the Python tests need to look inside the binding, kept out of the
// product module tessera._core. Built with the tests (TESSERA_BUILD_TESTS), never installed
// by a wheel without them. Needs tessera._core imported first (its error classes and exception
// translator are the ones this module's errors go through).
#include <pybind11/pybind11.h>
#include <torch/extension.h>

#include <string>

#include "tessera/core/error.h"

namespace py = pybind11;

PYBIND11_MODULE(_testhooks, m) {
  m.doc() = "Test hooks of tessera's Python tests (not part of the API).";
  // Each error kind thrown from C++ in a module other than _core: the translator _core
  // registers is process-wide, so the Python class is the one error.h documents.
  m.def(
      "raise_kind",
      [](const std::string& kind, const std::string& what) {
        if (kind == "InvalidArgument") TESSERA_THROW(InvalidArgument, "{}", what);
        if (kind == "NotFound") TESSERA_THROW(NotFound, "{}", what);
        if (kind == "Engine") TESSERA_THROW(Engine, "{}", what);
        if (kind == "Deadline") TESSERA_THROW(Deadline, "{}", what);
        if (kind == "Unsupported") TESSERA_THROW(Unsupported, "{}", what);
        TESSERA_THROW(InvalidArgument, "unknown error kind '{}'", kind);
      },
      py::arg("kind"), py::arg("message"));
  // Tensors cross the binding without copies, both ways.
  m.def("tensor_roundtrip", [](const std::vector<at::Tensor>& xs) { return xs; }, py::arg("tensors"));
  m.def("tensor_data_ptr", [](const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()); });
  m.def("make_tensor", [](int64_t n) {
    auto t = at::arange(n, at::kFloat);
    return py::make_tuple(t, reinterpret_cast<uintptr_t>(t.data_ptr()));
  });
}
