// Bindings of the graph and atoms layers (tessera/atoms/model.h). Wrap only.
#include <torch/extension.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/atoms/model.h"

namespace py = pybind11;
using namespace tessera;

void bind_atoms(py::module_& m) {
  py::class_<TensorInfo>(m, "TensorInfo")
      .def_readonly("shape", &TensorInfo::shape)
      .def_readonly("dtype", &TensorInfo::dtype)
      .def_readonly("bytes", &TensorInfo::bytes)
      .def("__repr__", [](const TensorInfo& t) { return "TensorInfo(" + t.dtype + " " + t.shape_str() + ")"; });
  py::class_<OpNode>(m, "OpNode")
      .def_readonly("id", &OpNode::id)
      .def_readonly("kind", &OpNode::kind)
      .def_readonly("inputs", &OpNode::inputs)
      .def_readonly("args", &OpNode::args)
      .def_readonly("outputs", &OpNode::outputs)
      .def_readonly("helper", &OpNode::helper)
      .def_readonly("atom", &OpNode::atom)
      .def_readonly("scope", &OpNode::scope)
      .def("__repr__", [](const OpNode& n) { return fmt::format("OpNode({} {}, atom {})", n.id, n.kind, n.atom); });
  py::class_<OpValue>(m, "OpValue")
      .def_readonly("id", &OpValue::id)
      .def_readonly("name", &OpValue::name)
      .def_readonly("type", &OpValue::type)
      .def_readonly("is_tensor", &OpValue::is_tensor)
      .def_readonly("info", &OpValue::info)
      .def_readonly("producer", &OpValue::producer)
      .def_readonly("consumers", &OpValue::consumers)
      .def_property_readonly("shape", [](const OpValue& v) { return v.info.shape; })
      .def_property_readonly("dtype", [](const OpValue& v) { return v.info.dtype; })
      .def_property_readonly("bytes", [](const OpValue& v) { return v.info.bytes; })
      .def("__repr__", [](const OpValue& v) {
        return fmt::format("OpValue({} '{}' {} {})", v.id, v.name, v.type, v.is_tensor ? v.info.shape_str() : "");
      });
  py::class_<OpGraph>(m, "OpGraph")
      .def_readonly("nodes", &OpGraph::nodes)
      .def_readonly("values", &OpGraph::values)
      .def_readonly("inputs", &OpGraph::inputs)
      .def_readonly("outputs", &OpGraph::outputs)
      .def_readonly("output_structure", &OpGraph::output_structure)
      .def("num_compute_nodes", &OpGraph::num_compute_nodes)
      .def("summary", &OpGraph::summary, py::arg("max_rows") = -1);
  py::class_<Atom>(m, "Atom")
      .def_readonly("id", &Atom::id)
      .def_readonly("name", &Atom::name)
      .def_readonly("nodes", &Atom::nodes)
      .def_readonly("op_kinds", &Atom::op_kinds)
      .def_readonly("inputs", &Atom::inputs)
      .def_readonly("outputs", &Atom::outputs)
      .def_readonly("output_bytes", &Atom::output_bytes)
      .def_readonly("param_bytes", &Atom::param_bytes)
      .def_readonly("file", &Atom::file)
      .def_readonly("sha256", &Atom::sha256)
      .def_readonly("params", &Atom::params)
      .def("__repr__", [](const Atom& a) {
        return fmt::format("Atom({} [{}] out {} B, params {} B)", a.id, fmt::join(a.op_kinds, ","), a.output_bytes,
                           a.param_bytes);
      });
  py::class_<Block>(m, "Block")
      .def_property_readonly("atoms", &Block::atoms)
      .def_property_readonly("inputs", &Block::inputs)
      .def_property_readonly("outputs", &Block::outputs)
      .def("__call__", &Block::operator(), py::arg("inputs"), py::call_guard<py::gil_scoped_release>())
      .def("graph_str", &Block::graph_str);
  py::class_<LoadOptions>(m, "LoadOptions")
      .def(py::init<>())
      .def_readwrite("optimize_numerics", &LoadOptions::optimize_numerics)
      .def_readwrite("trainable", &LoadOptions::trainable);
  py::class_<TrainBlock>(m, "TrainBlock")
      .def_property_readonly("atoms", &TrainBlock::atoms)
      .def_property_readonly("inputs", &TrainBlock::inputs)
      .def_property_readonly("outputs", &TrainBlock::outputs)
      .def_property_readonly("params", &TrainBlock::params)
      .def("__call__", &TrainBlock::operator(), py::arg("inputs"), py::arg("params"))
      .def("graph_str", &TrainBlock::graph_str);
  py::class_<Model>(m, "Model")
      .def_static("load", &Model::load, py::arg("path"), py::arg("example_inputs"), py::arg("options") = LoadOptions{},
                  py::call_guard<py::gil_scoped_release>())
      .def_static(
          "load_bytes",
          [](py::bytes data, const std::vector<at::Tensor>& xs, const LoadOptions& o, const std::string& label) {
            std::string s = data;
            py::gil_scoped_release release;
            return Model::load_bytes(s, xs, o, label);
          },
          py::arg("data"), py::arg("example_inputs"), py::arg("options") = LoadOptions{}, py::arg("label") = "<bytes>")
      .def_static(
          "load_script_module",
          [](py::object script_module_c, const std::vector<at::Tensor>& xs, const LoadOptions& o,
             const std::string& label) {
            // torch._C.ScriptModule is torch::jit::Module on the C++ side (same pybind11).
            auto mod = script_module_c.cast<torch::jit::Module>();
            py::gil_scoped_release release;
            return Model::load_module(&mod, xs, o, label);
          },
          py::arg("module"), py::arg("example_inputs"), py::arg("options") = LoadOptions{},
          py::arg("label") = "<module>")
      .def_static("open", &Model::open, py::arg("store_dir"), py::arg("atoms") = std::nullopt,
                  py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("graph", &Model::graph, py::return_value_policy::reference_internal)
      .def_property_readonly("atoms", &Model::atoms, py::return_value_policy::reference_internal)
      .def_property_readonly("num_atoms", &Model::num_atoms)
      .def_property_readonly("hash", &Model::hash)
      .def("dag", &Model::dag)
      .def("dag_value", &Model::dag_value, py::arg("graph_value"),
           "The id in dag() of a graph value, -1 if it crosses no atom boundary.")
      .def("loaded_atoms", &Model::loaded_atoms)
      .def("loaded_param_bytes", &Model::loaded_param_bytes)
      .def("save", &Model::save, py::arg("dir"), py::arg("overwrite") = false, py::call_guard<py::gil_scoped_release>())
      .def("combine", &Model::combine, py::arg("atoms"), py::call_guard<py::gil_scoped_release>())
      .def("run", py::overload_cast<const std::vector<at::Tensor>&, const std::vector<int>&>(&Model::run, py::const_),
           py::arg("inputs"), py::arg("placement"), py::call_guard<py::gil_scoped_release>())
      .def("run", py::overload_cast<const std::vector<at::Tensor>&>(&Model::run, py::const_), py::arg("inputs"),
           py::call_guard<py::gil_scoped_release>())
      .def("run_blocks", &Model::run_blocks, py::arg("inputs"), py::arg("blocks"),
           py::call_guard<py::gil_scoped_release>())
      .def("check_inputs", &Model::check_inputs, py::arg("inputs"))
      .def_property_readonly("trainable", &Model::trainable)
      .def("parameters", &Model::parameters, py::arg("atoms") = std::vector<int>{})
      .def("train_block", &Model::train_block, py::arg("atoms"), py::call_guard<py::gil_scoped_release>());
}
