// placeholder: replaced by the profile layer
#include <pybind11/pybind11.h>
void bind_profile(pybind11::module_&) {}
