// placeholder: replaced by the runtime layer
#include <pybind11/pybind11.h>
void bind_runtime(pybind11::module_&) {}
