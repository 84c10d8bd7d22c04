// Errors: tessera::Error kinds become Python classes that subclass both
// tessera.TesseraError and the matching built-in exception.
#include <pybind11/pybind11.h>

#include "tessera/core/error.h"

namespace py = pybind11;

namespace {
PyObject* g_classes[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};

PyObject* make_class(py::module_& m, const char* name, PyObject* base, PyObject* builtin, const char* doc) {
  py::tuple bases = builtin ? py::make_tuple(py::handle(base), py::handle(builtin)) : py::make_tuple(py::handle(base));
  std::string qual = std::string("tessera.") + name;
  PyObject* cls = PyErr_NewExceptionWithDoc(qual.c_str(), doc, bases.ptr(), nullptr);
  if (!cls) throw py::error_already_set();
  m.add_object(name, py::handle(cls));
  return cls;
}
}  // namespace

void bind_core(py::module_& m) {
  PyObject* base = make_class(m, "TesseraError", PyExc_Exception, nullptr, "Base class of every tessera error.");
  using K = tessera::ErrorKind;
  g_classes[static_cast<int>(K::InvalidArgument)] =
      make_class(m, "InvalidArgumentError", base, PyExc_ValueError, "Bad input: the message names what was wrong.");
  g_classes[static_cast<int>(K::NotFound)] =
      make_class(m, "NotFoundError", base, PyExc_FileNotFoundError, "A file, store, model or atom does not exist.");
  g_classes[static_cast<int>(K::Engine)] =
      make_class(m, "EngineError", base, PyExc_RuntimeError, "A failure inside the engine.");
  g_classes[static_cast<int>(K::Deadline)] =
      make_class(m, "DeadlineError", base, PyExc_TimeoutError, "A deadline passed.");
  g_classes[static_cast<int>(K::Unsupported)] =
      make_class(m, "UnsupportedError", base, PyExc_NotImplementedError, "Not supported (yet): says what.");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const tessera::Error& e) {
      PyErr_SetString(g_classes[static_cast<int>(e.kind())], e.what());
    }
  });
}
