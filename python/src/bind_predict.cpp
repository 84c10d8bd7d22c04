// placeholder: replaced by the predict layer
#include <pybind11/pybind11.h>
void bind_predict(pybind11::module_&) {}
