// bind_plan.cpp -- Python bindings of the plan layer (tessera/plan/*.h): the atom
// DAG, cost model, context, constraints, plans, every planner (DADS, Neurosurgeon,
// CAS/GADS, CIC/QDMP; see planners.h), the parametric planner, pipelines, energy and
// split training (training.h). Bindings only
// rename and convert (sequences in, lists out); every check lives in C++.
// Torch-free: no LibTorch header here.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <vector>

#include "tessera/core/error.h"
#include "tessera/plan/cost_model.h"
#include "tessera/plan/dag.h"
#include "tessera/plan/energy.h"
#include "tessera/plan/mincut.h"
#include "tessera/plan/parametric.h"
#include "tessera/plan/plan.h"
#include "tessera/plan/pipeline.h"
#include "tessera/plan/tiling.h"
#include "tessera/plan/training.h"
#include "tessera/plan/variants.h"
#include "tessera/core/codec.h"
#include "tessera/plan/planners.h"

namespace py = pybind11;
using namespace tessera::plan;

void bind_plan(py::module_& m) {
  m.attr("MODEL_INPUT") = kModelInput;

  py::class_<DagValue>(m, "DagValue", "A tensor crossing atom boundaries (producer -1 = model input).")
      .def(py::init([](int producer, std::vector<int> consumers, double bytes, bool is_output, std::string name) {
             return DagValue{producer, std::move(consumers), bytes, is_output, std::move(name)};
           }),
           py::arg("producer") = kModelInput, py::arg("consumers") = std::vector<int>{}, py::arg("bytes") = 0.0,
           py::arg("is_output") = false, py::arg("name") = "")
      .def_readwrite("producer", &DagValue::producer)
      .def_readwrite("consumers", &DagValue::consumers)
      .def_readwrite("bytes", &DagValue::bytes)
      .def_readwrite("is_output", &DagValue::is_output)
      .def_readwrite("name", &DagValue::name)
      .def_readwrite("dtype", &DagValue::dtype)
      .def_readwrite("rank", &DagValue::rank)
      .def_readwrite("codec", &DagValue::codec, "wire codec it crosses with ('' = raw)")
      .def_readwrite("codec_ms", &DagValue::codec_ms, "encode + decode ms per transfer")
      .def("__repr__", [](const DagValue& v) {
        return "DagValue(producer=" + std::to_string(v.producer) + ", consumers=" + std::to_string(v.consumers.size()) +
               " atoms, bytes=" + std::to_string(v.bytes) + (v.is_output ? ", output" : "") + ")";
      });

  py::class_<AtomDag>(m, "AtomDag", "Atoms 0..n-1 in topological order and the values between them.")
      .def(py::init([](int num_atoms, std::vector<DagValue> values, std::vector<double> param_bytes,
                       std::vector<std::string> atom_names) {
             AtomDag d;
             d.num_atoms = num_atoms;
             d.values = std::move(values);
             d.param_bytes = std::move(param_bytes);
             d.atom_names = std::move(atom_names);
             return d;
           }),
           py::arg("num_atoms") = 0, py::arg("values") = std::vector<DagValue>{},
           py::arg("param_bytes") = std::vector<double>{}, py::arg("atom_names") = std::vector<std::string>{})
      .def_readwrite("num_atoms", &AtomDag::num_atoms)
      .def_readwrite("values", &AtomDag::values, "list of DagValue (assign a whole list to change it)")
      .def_readwrite("param_bytes", &AtomDag::param_bytes)
      .def_readwrite("atom_names", &AtomDag::atom_names)
      .def("validate", &AtomDag::validate)
      .def("__repr__", [](const AtomDag& d) {
        return "AtomDag(num_atoms=" + std::to_string(d.num_atoms) + ", values=" + std::to_string(d.values.size()) + ")";
      });

  py::class_<LinkCost>(m, "LinkCost", "What a link from one target to another costs the planner: bandwidth, rtt, energy per byte.")
      .def(py::init([](double bw, double rtt, double e) { return LinkCost{bw, rtt, e}; }), py::arg("bandwidth_mbps") = 0.0,
           py::arg("rtt_ms") = 0.0, py::arg("energy_mj_per_byte") = 0.0)
      .def_readwrite("bandwidth_mbps", &LinkCost::bandwidth_mbps)
      .def_readwrite("rtt_ms", &LinkCost::rtt_ms)
      .def_readwrite("energy_mj_per_byte", &LinkCost::energy_mj_per_byte);

  py::class_<CostModel>(m, "CostModel", "compute_ms[target][atom] (0 = device, 1 = server), optional energy and links.")
      .def(py::init([](AtomDag dag, std::vector<std::vector<double>> compute_ms,
                       std::vector<std::vector<double>> energy_mj, std::vector<std::vector<LinkCost>> links) {
             CostModel cm;
             cm.dag = std::move(dag);
             cm.compute_ms = std::move(compute_ms);
             cm.energy_mj = std::move(energy_mj);
             cm.links = std::move(links);
             return cm;
           }),
           py::arg("dag"), py::arg("compute_ms"), py::arg("energy_mj") = std::vector<std::vector<double>>{},
           py::arg("links") = std::vector<std::vector<LinkCost>>{})
      .def_readwrite("dag", &CostModel::dag)
      .def_readwrite("compute_ms", &CostModel::compute_ms)
      .def_readwrite("energy_mj", &CostModel::energy_mj)
      .def_readwrite("links", &CostModel::links)
      .def_property_readonly("num_targets", &CostModel::num_targets)
      .def_property_readonly("num_atoms", &CostModel::num_atoms)
      .def("validate", &CostModel::validate);

  py::class_<Context>(m, "Context", "Run-time context: bandwidth (Mbit/s), rtt (ms), server load, memory, objective.")
      .def(py::init([](double bw, double rtt, double load, double mem, double ew, const std::string& objective,
                       double device_load) {
             Context c;
             c.bandwidth_mbps = bw;
             c.rtt_ms = rtt;
             c.server_load = load;
             c.device_load = device_load;
             c.device_memory_budget_bytes = mem;
             c.energy_weight = ew;
             c.objective = parse_objective(objective);
             return c;
           }),
           py::arg("bandwidth_mbps"), py::arg("rtt_ms") = 0.0, py::arg("server_load") = 1.0,
           py::arg("device_memory_budget_bytes") = kUnlimited, py::arg("energy_weight") = 0.0,
           py::arg("objective") = "latency", py::arg("device_load") = 1.0)
      .def_readwrite("bandwidth_mbps", &Context::bandwidth_mbps)
      .def_readwrite("rtt_ms", &Context::rtt_ms)
      .def_readwrite("server_load", &Context::server_load)
      .def_readwrite("device_load", &Context::device_load)
      .def_readwrite("device_memory_budget_bytes", &Context::device_memory_budget_bytes)
      .def_readwrite("energy_weight", &Context::energy_weight)
      .def_property(
          "objective", [](const Context& c) { return std::string(objective_name(c.objective)); },
          [](Context& c, const std::string& s) { c.objective = parse_objective(s); })
      .def("validate", &Context::validate);

  py::class_<Constraints>(m, "Constraints", "Limits gads searches under; pin[atom] = -1 (free) or a target.")
      .def(py::init([](double mem, double lat, double en, std::vector<int> pin) {
             Constraints c;
             c.device_memory_bytes = mem;
             c.max_latency_ms = lat;
             c.max_energy_mj = en;
             c.pin = std::move(pin);
             return c;
           }),
           py::arg("device_memory_bytes") = kUnlimited, py::arg("max_latency_ms") = kUnlimited,
           py::arg("max_energy_mj") = kUnlimited, py::arg("pin") = std::vector<int>{})
      .def_readwrite("device_memory_bytes", &Constraints::device_memory_bytes)
      .def_readwrite("max_latency_ms", &Constraints::max_latency_ms)
      .def_readwrite("max_energy_mj", &Constraints::max_energy_mj)
      .def_readwrite("pin", &Constraints::pin);

  py::class_<ScheduledBlock>(m, "ScheduledBlock", "A convex set of atoms on one target, with the values it reads and writes (tessera::ScheduledBlock).")
      .def(py::init<>())
      .def_readwrite("target", &ScheduledBlock::target)
      .def_readwrite("atoms", &ScheduledBlock::atoms)
      .def_readwrite("inputs", &ScheduledBlock::inputs)
      .def_readwrite("outputs", &ScheduledBlock::outputs)
      .def("__repr__", [](const ScheduledBlock& b) {
        return "ScheduledBlock(target=" + std::to_string(b.target) + ", " + std::to_string(b.atoms.size()) + " atoms)";
      });

  py::class_<Transfer>(m, "Transfer")
      .def(py::init<>())
      .def_readwrite("value", &Transfer::value)
      .def_readwrite("from_target", &Transfer::from)
      .def_readwrite("to_target", &Transfer::to)
      .def_readwrite("bytes", &Transfer::bytes)
      .def_readwrite("ms", &Transfer::ms)
      .def_readwrite("codec", &Transfer::codec);

  // ---- accuracy-aware variants (plan/variants.h) ----
  py::class_<CodecCost>(m, "CodecCost",
                        "What a wire codec costs per transfer: encoded bytes ratio and encode + decode ms (plan/variants.h).")
      .def(py::init([](double enc, double dec, double ratio) { return CodecCost{enc, dec, ratio}; }),
           py::arg("encode_ms_per_mb") = 0.0, py::arg("decode_ms_per_mb") = 0.0, py::arg("ratio") = 1.0)
      .def_readwrite("encode_ms_per_mb", &CodecCost::encode_ms_per_mb)
      .def_readwrite("decode_ms_per_mb", &CodecCost::decode_ms_per_mb)
      .def_readwrite("ratio", &CodecCost::ratio);
  m.def("with_codec", &with_codec, py::arg("costs"), py::arg("codec"), py::arg("cost") = CodecCost{},
        "The cost model with every value the codec applies to priced as it travels (bytes, encode + decode).");
  m.def("codec_names", &tessera::codec_names);
  py::class_<VariantCandidate>(m, "VariantCandidate")
      .def(py::init<>())
      .def_readwrite("variant", &VariantCandidate::variant)
      .def_readwrite("name", &VariantCandidate::name)
      .def_readwrite("placement", &VariantCandidate::placement)
      .def_readwrite("loss", &VariantCandidate::loss)
      .def_readwrite("device_ms", &VariantCandidate::device_ms)
      .def_readwrite("server_ms", &VariantCandidate::server_ms)
      .def_readwrite("bytes", &VariantCandidate::bytes)
      .def_readwrite("codec_ms", &VariantCandidate::codec_ms)
      .def_readwrite("transfers", &VariantCandidate::transfers)
      .def_readwrite("device_memory_bytes", &VariantCandidate::device_memory_bytes)
      .def_readwrite("energy_mj", &VariantCandidate::energy_mj)
      .def("latency_ms", &VariantCandidate::latency_ms, py::arg("context"));
  m.def("candidate_from_plan", &candidate_from_plan, py::arg("variant"), py::arg("name"), py::arg("plan"),
        py::arg("loss"));
  py::class_<VariantChoice>(m, "VariantChoice")
      .def_readonly("index", &VariantChoice::index)
      .def_readonly("latency_ms", &VariantChoice::latency_ms)
      .def_readonly("objective", &VariantChoice::objective)
      .def_readonly("feasible", &VariantChoice::feasible)
      .def_readonly("why", &VariantChoice::why);
  py::class_<VariantSelector>(m, "VariantSelector",
                              "Chooses a (variant, split) candidate per request under an accuracy budget (plan/variants.h).")
      .def(py::init<std::vector<VariantCandidate>>(), py::arg("candidates"))
      .def("select", &VariantSelector::select, py::arg("context"), py::arg("loss_budget"))
      .def("select_many", [](const VariantSelector& s, const std::vector<Context>& ctxs, double budget) {
             std::vector<int> out;
             out.reserve(ctxs.size());
             for (const auto& c : ctxs) out.push_back(s.select(c, budget).index);
             return out;
           }, py::arg("contexts"), py::arg("loss_budget"), "select() for many contexts in one C++ loop (timing)")
      .def_property_readonly("candidates", &VariantSelector::candidates)
      .def("best_loss", &VariantSelector::best_loss);

  py::class_<Plan>(m, "Plan", "A placement with its predicted metrics, blocks and transfers.")
      .def(py::init<>())
      .def_readwrite("algorithm", &Plan::algorithm)
      .def_readwrite("placement", &Plan::placement)
      .def_property(
          "status", [](const Plan& p) { return std::string(status_name(p.status)); },
          [](Plan& p, const std::string& s) { p.status = parse_status(s); })
      .def_readwrite("reason", &Plan::reason)
      .def_readwrite("latency_ms", &Plan::latency_ms)
      .def_readwrite("throughput_fps", &Plan::throughput_fps)
      .def_readwrite("transfer_bytes", &Plan::transfer_bytes)
      .def_readwrite("device_memory_bytes", &Plan::device_memory_bytes)
      .def_readwrite("device_activation_bytes", &Plan::device_activation_bytes)
      .def_readwrite("energy_mj", &Plan::energy_mj)
      .def_readwrite("objective", &Plan::objective)
      .def_readwrite("target_ms", &Plan::target_ms)
      .def_readwrite("link_ms", &Plan::link_ms)
      .def_readwrite("bandwidth_mbps", &Plan::bandwidth_mbps)
      .def_readwrite("rtt_ms", &Plan::rtt_ms)
      .def_readwrite("blocks", &Plan::blocks)
      .def_readwrite("transfers", &Plan::transfers)
      .def("ok", &Plan::ok)
      .def(
          "explain",
          &Plan::explain, py::arg("cost_model"));

  m.def("activation_peak_bytes", &activation_peak_bytes, py::arg("dag"), py::arg("blocks"), py::arg("target") = 0,
        "Peak bytes of activations a target holds at once when the blocks run in order (plan/plan.h).");

  py::class_<ParametricSegment>(m, "ParametricSegment")
      .def_readonly("bw_lo_mbps", &ParametricSegment::bw_lo_mbps)
      .def_readonly("bw_hi_mbps", &ParametricSegment::bw_hi_mbps)
      .def_readonly("intercept", &ParametricSegment::intercept)
      .def_readonly("slope", &ParametricSegment::slope)
      .def_readonly("placement", &ParametricSegment::placement);

  py::class_<ParametricPlanner>(m, "ParametricPlanner",
                                "Every optimal min-cut plan over bandwidth; a bandwidth change is a lookup.")
      .def(py::init<const CostModel&, const Context&, const Constraints&, double, double>(), py::arg("cost_model"),
           py::arg("context"), py::arg("constraints") = Constraints{},
           py::arg("min_bw") = ParametricPlanner::kMinBandwidth, py::arg("max_bw") = ParametricPlanner::kMaxBandwidth,
           py::call_guard<py::gil_scoped_release>())
      .def("lookup", &ParametricPlanner::plan_at, py::arg("bandwidth_mbps"),
           "The evaluated Plan optimal at this bandwidth.")
      .def("lookup_index", &ParametricPlanner::lookup_index, py::arg("bandwidth_mbps"))
      .def(
          "lookup_placement", [](const ParametricPlanner& p, double bw) { return p.lookup(bw).placement; },
          py::arg("bandwidth_mbps"))
      .def("lookup_indices", &ParametricPlanner::lookup_indices, py::arg("bandwidths_mbps"),
           py::call_guard<py::gil_scoped_release>())
      .def("breakpoints", &ParametricPlanner::breakpoints)
      .def_property_readonly("segments", &ParametricPlanner::segments)
      .def_property_readonly("num_cuts_solved", &ParametricPlanner::num_cuts_solved);

  py::class_<Planner>(m, "Planner", "A planner prepared for one cost model (graph built once).")
      .def_property_readonly("name", &Planner::name)
      .def("plan", &Planner::plan, py::arg("context"), py::arg("constraints") = Constraints{},
           py::arg("current") = std::vector<int>{}, py::call_guard<py::gil_scoped_release>());

  py::class_<CutSolver>(m, "CutSolver", "Low level: the min-cut of an AtomDag (compress = CIC/QDMP reduction).")
      .def(py::init<const AtomDag&, bool>(), py::arg("dag"), py::arg("compress") = false)
      .def_property_readonly("num_nodes", &CutSolver::num_nodes)
      .def_property_readonly("num_edges", &CutSolver::num_edges)
      .def_property_readonly("num_flow_atoms", &CutSolver::num_flow_atoms);

  m.def("planner_names", &planner_names, "Names accepted by make_plan / make_planner.");
  m.def("make_planner", &make_planner, py::arg("algorithm"), py::arg("cost_model"));
  m.def("make_plan", &make_plan, py::arg("algorithm"), py::arg("cost_model"), py::arg("context"),
        py::arg("constraints") = Constraints{}, py::arg("current") = std::vector<int>{},
        py::call_guard<py::gil_scoped_release>());
  // The low-level entry points check their inputs first: a malformed DAG or cost model
  // from Python is an InvalidArgumentError naming the field, never an out-of-range read.
  m.def(
      "evaluate",
      [](const CostModel& cm, const Context& ctx, const std::vector<int>& placement) {
        cm.validate();
        ctx.validate();
        return evaluate(cm, ctx, placement);
      },
      py::arg("cost_model"), py::arg("context"), py::arg("placement"), py::call_guard<py::gil_scoped_release>());
  m.def(
      "validate_plan",
      [](const Plan& p, const CostModel& cm) {
        cm.validate();
        return validate(p, cm);
      },
      py::arg("plan"), py::arg("cost_model"),
      "Problems of a plan (every atom placed, blocks convex and executable in order, outputs back on the device).");
  m.def(
      "validate_plan_on",
      [](const Plan& p, const AtomDag& dag, int num_targets) {
        dag.validate();
        return validate(p, dag, num_targets);
      },
      py::arg("plan"), py::arg("dag"), py::arg("num_targets") = 2,
      "Problems of a plan over an atom DAG alone (what a Deployment checks when it is handed a plan).");
  m.def(
      "plan_from_placement",
      [](const AtomDag& dag, const std::vector<int>& placement, int num_targets) {
        dag.validate();
        return from_placement(dag, placement, num_targets);
      },
      py::arg("dag"), py::arg("placement"), py::arg("num_targets") = 2,
      "A plan (blocks and transfers, no costs) from a placement, checked.");
  m.def(
      "schedule_blocks",
      [](const AtomDag& dag, const std::vector<int>& placement) {
        dag.validate();
        tessera::check_placement(dag, placement, -1);
        return schedule_blocks(dag, placement);
      },
      py::arg("dag"), py::arg("placement"));
  m.def("constraint_violation", &constraint_violation, py::arg("plan"), py::arg("context"),
        py::arg("constraints") = Constraints{});

  // ---- N-node pipelines (plan/pipeline.h) ----
  py::class_<PipelineNode>(m, "PipelineNode")
      .def(py::init<>())
      .def_readwrite("name", &PipelineNode::name)
      .def_readwrite("compute_ms", &PipelineNode::compute_ms)
      .def_readwrite("memory_bytes", &PipelineNode::memory_bytes)
      .def_readwrite("load", &PipelineNode::load);
  py::class_<PipelineNetwork>(m, "PipelineNetwork")
      .def(py::init<>())
      .def_readwrite("nodes", &PipelineNetwork::nodes)
      .def_readwrite("bandwidth_mbps", &PipelineNetwork::bandwidth_mbps)
      .def_readwrite("rtt_ms", &PipelineNetwork::rtt_ms)
      .def_readwrite("tiling", &PipelineNetwork::tiling)
      .def_readwrite("pin", &PipelineNetwork::pin)
      .def("validate", &PipelineNetwork::validate, py::arg("dag"))
      .def("index", &PipelineNetwork::index, py::arg("name"));
  py::class_<Stage>(m, "Stage")
      .def(py::init<>())
      .def_readwrite("node", &Stage::node)
      .def_readwrite("atoms", &Stage::atoms)
      .def_readwrite("helpers", &Stage::helpers);
  py::class_<RowOp>(m, "RowOp")
      .def(py::init<>())
      .def_readwrite("kernel", &RowOp::kernel)
      .def_readwrite("stride", &RowOp::stride)
      .def_readwrite("pad", &RowOp::pad)
      .def_readwrite("dilation", &RowOp::dilation)
      .def_readwrite("label", &RowOp::label);
  py::class_<TileWindow>(m, "TileWindow")
      .def_readonly("in_lo", &TileWindow::in_lo)
      .def_readonly("in_hi", &TileWindow::in_hi)
      .def_readonly("out_lo", &TileWindow::out_lo)
      .def_readonly("out_hi", &TileWindow::out_hi)
      .def_readonly("crop", &TileWindow::crop)
      .def_readonly("slice_rows_out", &TileWindow::slice_rows_out);
  m.def("tile_window", &tile_window, py::arg("chain"), py::arg("rows_in"), py::arg("a"), py::arg("b"));
  m.def("split_rows", &split_rows, py::arg("chain"), py::arg("rows_in"), py::arg("shares"));
  py::class_<PipelineTiling>(m, "PipelineTiling")
      .def(py::init<>())
      .def_readwrite("chain", &PipelineTiling::chain)
      .def_readwrite("ops", &PipelineTiling::ops)
      .def_readwrite("rows_in", &PipelineTiling::rows_in)
      .def_readwrite("rows_out", &PipelineTiling::rows_out)
      .def_readwrite("in_bytes", &PipelineTiling::in_bytes)
      .def_readwrite("out_bytes", &PipelineTiling::out_bytes)
      .def_readwrite("max_tiles", &PipelineTiling::max_tiles)
      .def("empty", &PipelineTiling::empty);
  m.def("stage_tiles", &stage_tiles, py::arg("network"), py::arg("stage"));
  m.def(
      "plan_pipeline_convex_brute_force",
      [](const AtomDag& dag, const PipelineNetwork& net, const std::vector<int>& order, const std::string& objective,
         int max_atoms) { return plan_pipeline_convex_brute_force(dag, net, order, parse_objective(objective), max_atoms); },
      py::arg("dag"), py::arg("network"), py::arg("order"), py::arg("objective") = "throughput",
      py::arg("max_atoms") = 12, py::call_guard<py::gil_scoped_release>());
  py::class_<PipelinePlan>(m, "PipelinePlan")
      .def_readonly("algorithm", &PipelinePlan::algorithm)
      .def_property_readonly("status", [](const PipelinePlan& p) { return std::string(status_name(p.status)); })
      .def_readonly("reason", &PipelinePlan::reason)
      .def_readonly("stages", &PipelinePlan::stages)
      .def_readonly("throughput_fps", &PipelinePlan::throughput_fps)
      .def_readonly("latency_ms", &PipelinePlan::latency_ms)
      .def_readonly("bottleneck_ms", &PipelinePlan::bottleneck_ms)
      .def_readonly("bottleneck", &PipelinePlan::bottleneck)
      .def_readonly("stage_ms", &PipelinePlan::stage_ms)
      .def_readonly("link_ms", &PipelinePlan::link_ms)
      .def_readonly("tile_ms", &PipelinePlan::tile_ms)
      .def("ok", &PipelinePlan::ok)
      .def("explain", &PipelinePlan::explain, py::arg("network"));
  m.def("evaluate_pipeline", &evaluate_pipeline, py::arg("dag"), py::arg("network"), py::arg("stages"),
        py::call_guard<py::gil_scoped_release>());
  m.def(
      "plan_pipeline",
      [](const AtomDag& dag, const PipelineNetwork& net, const std::string& algorithm, const std::vector<int>& order,
         const std::string& objective) {
        return plan_pipeline(dag, net, algorithm, order, parse_objective(objective));
      },
      py::arg("dag"), py::arg("network"), py::arg("algorithm"), py::arg("order"), py::arg("objective"),
      py::call_guard<py::gil_scoped_release>());
  m.def("pipeline_planner_names", &pipeline_planner_names, "The names plan_pipeline's algorithm takes.");
  // ---- energy (plan/energy.h) ----
  py::class_<Radio>(m, "Radio")
      .def(py::init<>())
      .def_readwrite("max_power_mw", &Radio::max_power_mw)
      .def_readwrite("bandwidth_mhz", &Radio::bandwidth_mhz)
      .def_readwrite("levels_mw", &Radio::levels_mw);
  py::class_<PowerModel>(m, "PowerModel")
      .def(py::init<>())
      .def_readwrite("freqs_mhz", &PowerModel::freqs_mhz)
      .def_readwrite("active_mw", &PowerModel::active_mw)
      .def_readwrite("idle_mw", &PowerModel::idle_mw)
      .def_readwrite("rx_mw", &PowerModel::rx_mw)
      .def_readwrite("tx", &PowerModel::tx)
      .def_readwrite("reference_mhz", &PowerModel::reference_mhz)
      .def_readwrite("memory_bound", &PowerModel::memory_bound)
      .def_readwrite("source", &PowerModel::source)
      .def("validate", &PowerModel::validate)
      .def("time_factor", &PowerModel::time_factor, py::arg("frequency_mhz"))
      .def("tx_levels", &PowerModel::tx_levels)
      .def("tx_rate_mbps", &PowerModel::tx_rate_mbps, py::arg("power_mw"), py::arg("bandwidth_mbps"));
  py::class_<Operating>(m, "Operating")
      .def(py::init([](double f, double p) { return Operating{f, p}; }), py::arg("frequency_mhz") = 0.0,
           py::arg("tx_power_mw") = 0.0)
      .def_readwrite("frequency_mhz", &Operating::frequency_mhz)
      .def_readwrite("tx_power_mw", &Operating::tx_power_mw);
  py::class_<EnergyParts>(m, "EnergyParts")
      .def_readonly("compute_mj", &EnergyParts::compute_mj)
      .def_readonly("tx_mj", &EnergyParts::tx_mj)
      .def_readonly("rx_mj", &EnergyParts::rx_mj)
      .def_readonly("idle_mj", &EnergyParts::idle_mj)
      .def_readonly("total_mj", &EnergyParts::total_mj)
      .def_readonly("latency_ms", &EnergyParts::latency_ms)
      .def_readonly("device_ms", &EnergyParts::device_ms)
      .def_readonly("server_ms", &EnergyParts::server_ms)
      .def_readonly("transfer_ms", &EnergyParts::transfer_ms)
      .def_readonly("link_ms", &EnergyParts::link_ms)
      .def_readonly("up_bytes", &EnergyParts::up_bytes)
      .def_readonly("down_bytes", &EnergyParts::down_bytes)
      .def_readonly("tx_rate_mbps", &EnergyParts::tx_rate_mbps)
      .def_property_readonly("throughput_fps", &EnergyParts::throughput_fps)
      .def("explain", &EnergyParts::explain);
  py::class_<EnergyWeights>(m, "EnergyWeights")
      .def(py::init<>())
      .def_readwrite("latency", &EnergyWeights::latency)
      .def_readwrite("energy", &EnergyWeights::energy)
      .def_readwrite("deadline_ms", &EnergyWeights::deadline_ms);
  py::class_<EnergyDecision>(m, "EnergyDecision")
      .def_readonly("placement", &EnergyDecision::placement)
      .def_readonly("op", &EnergyDecision::op)
      .def_readonly("parts", &EnergyDecision::parts)
      .def_readonly("objective", &EnergyDecision::objective)
      .def_readonly("meets_deadline", &EnergyDecision::meets_deadline)
      .def_readonly("lagrangian", &EnergyDecision::lagrangian)
      .def_readonly("candidates", &EnergyDecision::candidates)
      .def_readonly("why", &EnergyDecision::why)
      .def_readonly("bandwidth_mbps", &EnergyDecision::bandwidth_mbps)
      .def_readonly("rtt_ms", &EnergyDecision::rtt_ms)
      .def("explain", &EnergyDecision::explain, py::arg("cost_model"));
  py::class_<ControllerOptions>(m, "ControllerOptions")
      .def(py::init<>())
      .def_readwrite("budget_mj", &ControllerOptions::budget_mj)
      .def_readwrite("V", &ControllerOptions::V)
      .def_readwrite("deadline_ms", &ControllerOptions::deadline_ms)
      .def_readwrite("initial_queue", &ControllerOptions::initial_queue);
  py::class_<EnergyRecord>(m, "EnergyRecord")
      .def_readonly("index", &EnergyRecord::index)
      .def_readonly("bandwidth_mbps", &EnergyRecord::bandwidth_mbps)
      .def_readonly("decision", &EnergyRecord::decision)
      .def_readonly("queue", &EnergyRecord::queue);
  py::class_<EnergyController>(m, "EnergyController")
      .def(py::init<CostModel, PowerModel, ControllerOptions>(), py::arg("cost_model"), py::arg("power"),
           py::arg("options"))
      .def("decide", &EnergyController::decide, py::arg("bandwidth_mbps"), py::arg("rtt_ms"),
           py::call_guard<py::gil_scoped_release>())
      .def("observe", &EnergyController::observe, py::arg("energy_mj"))
      .def_property_readonly("queue", &EnergyController::queue)
      .def_property_readonly("options", &EnergyController::options);
  m.def("device_energy", &device_energy, py::arg("cost_model"), py::arg("power"), py::arg("placement"), py::arg("op"),
        py::arg("bandwidth_mbps"), py::arg("rtt_ms"));
  m.def("plan_energy", [](const CostModel& cm, const PowerModel& pm, double bw, double rtt, const EnergyWeights& w) {
          return plan_energy(cm, pm, bw, rtt, w);
        }, py::arg("cost_model"), py::arg("power"), py::arg("bandwidth_mbps"),
        py::arg("rtt_ms"), py::arg("weights"), py::call_guard<py::gil_scoped_release>());
  m.def("plan_energy_brute_force", &plan_energy_brute_force, py::arg("cost_model"), py::arg("power"),
        py::arg("bandwidth_mbps"), py::arg("rtt_ms"), py::arg("weights"), py::call_guard<py::gil_scoped_release>());
  m.def("run_controller", &run_controller, py::arg("controller"), py::arg("bandwidth_mbps"), py::arg("rtt_ms"),
        py::call_guard<py::gil_scoped_release>());
  m.def(
      "energy_oracle",
      [](const CostModel& cm, const PowerModel& pm, const std::vector<double>& bws, double rtt, double budget,
         double deadline) {
        double lambda = 0;
        auto ds = energy_oracle(cm, pm, bws, rtt, budget, deadline, &lambda);
        return std::make_pair(ds, lambda);
      },
      py::arg("cost_model"), py::arg("power"), py::arg("bandwidth_mbps"), py::arg("rtt_ms"), py::arg("budget_mj"),
      py::arg("deadline_ms") = kUnlimited, py::call_guard<py::gil_scoped_release>(),
      "(decisions, lambda): the offline oracle over every request's bandwidth");
  m.def("energy_hull", &energy_hull, py::arg("cost_model"), py::arg("power"), py::arg("bandwidth_mbps"),
        py::arg("rtt_ms"), py::arg("deadline_ms") = kUnlimited, py::call_guard<py::gil_scoped_release>());
  m.def(
      "energy_oracle_from_hulls",
      [](const std::vector<std::vector<EnergyDecision>>& hulls, double budget) {
        double lambda = 0;
        auto ds = energy_oracle_from_hulls(hulls, budget, &lambda);
        return std::make_pair(ds, lambda);
      },
      py::arg("hulls"), py::arg("budget_mj"), py::call_guard<py::gil_scoped_release>());

  // ---- split and pipeline-parallel training (plan/training.h) ----
  py::class_<TrainingStage>(m, "TrainingStage",
                            "One stage of a training pipeline for simulate_training: its node, per micro-batch "
                            "fwd_ms / bwd_ms, send_fwd_ms (activations to the next stage) / send_bwd_ms (gradients "
                            "to the previous one) on the link, fwd_delay_ms / bwd_delay_ms after them (rtt / 2), "
                            "stored_bytes kept per micro-batch until its backward, update_ms once per step.")
      .def(py::init([](int node, double fwd_ms, double bwd_ms, double send_fwd_ms, double send_bwd_ms,
                       double fwd_delay_ms, double bwd_delay_ms, double stored_bytes, double update_ms) {
             return TrainingStage{node, fwd_ms, bwd_ms, send_fwd_ms, send_bwd_ms,
                                  fwd_delay_ms, bwd_delay_ms, stored_bytes, update_ms};
           }),
           py::arg("node") = 0, py::arg("fwd_ms") = 0.0, py::arg("bwd_ms") = 0.0, py::arg("send_fwd_ms") = 0.0,
           py::arg("send_bwd_ms") = 0.0, py::arg("fwd_delay_ms") = 0.0, py::arg("bwd_delay_ms") = 0.0,
           py::arg("stored_bytes") = 0.0, py::arg("update_ms") = 0.0)
      .def_readwrite("node", &TrainingStage::node)
      .def_readwrite("fwd_ms", &TrainingStage::fwd_ms)
      .def_readwrite("bwd_ms", &TrainingStage::bwd_ms)
      .def_readwrite("send_fwd_ms", &TrainingStage::send_fwd_ms)
      .def_readwrite("send_bwd_ms", &TrainingStage::send_bwd_ms)
      .def_readwrite("fwd_delay_ms", &TrainingStage::fwd_delay_ms)
      .def_readwrite("bwd_delay_ms", &TrainingStage::bwd_delay_ms)
      .def_readwrite("stored_bytes", &TrainingStage::stored_bytes)
      .def_readwrite("update_ms", &TrainingStage::update_ms)
      .def("__repr__", [](const TrainingStage& s) {
        return "TrainingStage(node=" + std::to_string(s.node) + ", fwd_ms=" + std::to_string(s.fwd_ms) +
               ", bwd_ms=" + std::to_string(s.bwd_ms) + ")";
      });
  py::class_<TrainingEvent>(m, "TrainingEvent",
                            "One operation of a simulated training step: stage, micro_batch (-1: update), op "
                            "('F', 'B', 'send_F', 'send_B', 'update'), node (sends: the sender), to_node (sends: "
                            "the receiver, else -1), start_ms, end_ms.")
      .def_readonly("stage", &TrainingEvent::stage)
      .def_readonly("micro_batch", &TrainingEvent::micro_batch)
      .def_property_readonly("op", [](const TrainingEvent& e) { return std::string(training_op_name(e.op)); })
      .def_readonly("node", &TrainingEvent::node)
      .def_readonly("to_node", &TrainingEvent::to_node)
      .def_readonly("start_ms", &TrainingEvent::start_ms)
      .def_readonly("end_ms", &TrainingEvent::end_ms)
      .def("__repr__", [](const TrainingEvent& e) {
        return std::string("TrainingEvent(") + training_op_name(e.op) + ", stage " + std::to_string(e.stage) +
               ", micro-batch " + std::to_string(e.micro_batch) + ", " + std::to_string(e.start_ms) + " - " +
               std::to_string(e.end_ms) + " ms)";
      });
  py::class_<TrainingTimeline>(m, "TrainingTimeline",
                               "A simulated training step: events, makespan_ms, node_busy_ms, and per stage "
                               "peak_in_flight / peak_stored_bytes, per node node_peak_stored_bytes.")
      .def_readonly("events", &TrainingTimeline::events)
      .def_readonly("makespan_ms", &TrainingTimeline::makespan_ms)
      .def_readonly("node_busy_ms", &TrainingTimeline::node_busy_ms)
      .def_readonly("peak_in_flight", &TrainingTimeline::peak_in_flight)
      .def_readonly("peak_stored_bytes", &TrainingTimeline::peak_stored_bytes)
      .def_readonly("node_peak_stored_bytes", &TrainingTimeline::node_peak_stored_bytes);
  m.def(
      "simulate_training",
      [](const std::vector<TrainingStage>& stages, int micro_batches, const std::string& schedule) {
        return simulate_training(stages, micro_batches, parse_schedule(schedule));
      },
      py::arg("stages"), py::arg("micro_batches"), py::arg("schedule") = "1f1b",
      py::call_guard<py::gil_scoped_release>(), "One training step over the stages (plan/training.h).");
  py::class_<TrainingCosts>(m, "TrainingCosts",
                            "Backward ms and optimizer update ms per node and atom (the forward ms are the "
                            "PipelineNetwork's compute_ms), at the full batch.")
      .def(py::init<>())
      .def_readwrite("backward_ms", &TrainingCosts::backward_ms)
      .def_readwrite("update_ms", &TrainingCosts::update_ms)
      .def("validate", &TrainingCosts::validate, py::arg("dag"), py::arg("network"));
  py::class_<TrainingOptions>(m, "TrainingOptions",
                              "The knobs of a training plan: batch_size, micro_batches (choices), schedules, "
                              "labels_on_device, optimizer_state_factor, micro_batch_overhead_ms, order, "
                              "max_candidates.")
      .def(py::init<>())
      .def_readwrite("batch_size", &TrainingOptions::batch_size)
      .def_readwrite("micro_batches", &TrainingOptions::micro_batches)
      .def_property(
          "schedules",
          [](const TrainingOptions& o) {
            std::vector<std::string> names;
            for (auto s : o.schedules) names.emplace_back(schedule_name(s));
            return names;
          },
          [](TrainingOptions& o, const std::vector<std::string>& names) {
            o.schedules.clear();
            for (const auto& n : names) o.schedules.push_back(parse_schedule(n));
          })
      .def_readwrite("labels_on_device", &TrainingOptions::labels_on_device)
      .def_readwrite("optimizer_state_factor", &TrainingOptions::optimizer_state_factor)
      .def_readwrite("micro_batch_overhead_ms", &TrainingOptions::micro_batch_overhead_ms)
      .def_readwrite("order", &TrainingOptions::order)
      .def_readwrite("max_candidates", &TrainingOptions::max_candidates);
  m.def("optimizer_state_factor", &optimizer_state_factor, py::arg("optimizer"),
        "The optimizer's state in multiples of the parameters: sgd 0, sgd_momentum 1, adam 2.");
  py::class_<TrainingPlan>(m, "TrainingPlan", "A placement for training with its simulated step (plan/training.h).")
      .def_readonly("algorithm", &TrainingPlan::algorithm)
      .def_property_readonly("status", [](const TrainingPlan& p) { return std::string(status_name(p.status)); })
      .def_readonly("reason", &TrainingPlan::reason)
      .def_readonly("placement", &TrainingPlan::placement)
      .def_readonly("stages", &TrainingPlan::stages)
      .def_readonly("stage_costs", &TrainingPlan::stage_costs)
      .def_readonly("micro_batches", &TrainingPlan::micro_batches)
      .def_property_readonly("schedule", [](const TrainingPlan& p) { return std::string(schedule_name(p.schedule)); })
      .def_readonly("batch_size", &TrainingPlan::batch_size)
      .def_readonly("step_ms", &TrainingPlan::step_ms)
      .def_readonly("samples_per_s", &TrainingPlan::samples_per_s)
      .def_readonly("node_param_bytes", &TrainingPlan::node_param_bytes)
      .def_readonly("node_stored_bytes", &TrainingPlan::node_stored_bytes)
      .def_readonly("node_memory_bytes", &TrainingPlan::node_memory_bytes)
      .def_readonly("timeline", &TrainingPlan::timeline)
      .def_readonly("micro_batch_choices", &TrainingPlan::micro_batch_choices)
      .def_readonly("best_step_ms", &TrainingPlan::best_step_ms)
      .def_readonly("simulated", &TrainingPlan::simulated)
      .def_readonly("pruned", &TrainingPlan::pruned)
      .def_readonly("over_memory", &TrainingPlan::over_memory)
      .def("ok", &TrainingPlan::ok)
      .def("explain", &TrainingPlan::explain, py::arg("network"));
  m.def(
      "evaluate_training",
      [](const AtomDag& dag, const PipelineNetwork& net, const TrainingCosts& costs, const std::vector<int>& placement,
         int micro_batches, const std::string& schedule, const TrainingOptions& options) {
        return evaluate_training(dag, net, costs, placement, micro_batches, parse_schedule(schedule), options);
      },
      py::arg("dag"), py::arg("network"), py::arg("costs"), py::arg("placement"), py::arg("micro_batches"),
      py::arg("schedule"), py::arg("options"), py::call_guard<py::gil_scoped_release>(),
      "The simulated training step of a given placement (plan/training.h).");
  m.def("plan_training", &plan_training, py::arg("dag"), py::arg("network"), py::arg("costs"), py::arg("options"),
        py::call_guard<py::gil_scoped_release>(),
        "The fastest training step over the cuts, micro-batch choices and schedules (plan/training.h).");
}
