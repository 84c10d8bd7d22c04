// Bindings of the adaptation layer (tessera/adapt/*.h). Wrap only.
#include <torch/extension.h>

#include <fmt/format.h>

#include "tessera/adapt/adaptive.h"
#include "tessera/adapt/cpufreq.h"
#include "tessera/adapt/monitor.h"
#include "tessera/adapt/policy.h"
#include "tessera/adapt/simulate.h"
#include "tessera/adapt/stream.h"
#include "tessera/core/error.h"
#include "tessera/predict/predictor.h"
#include "tessera/transport/link.h"

namespace py = pybind11;
using namespace tessera;
using namespace tessera::adapt;
using tessera::transport::Emulation;
using tessera::transport::Link;
using tessera::transport::LinkSpec;
using tessera::transport::read_trace;

void bind_adapt(py::module_& m) {
  py::enum_<Emulation>(m, "Emulation").value("Sleep", Emulation::Sleep).value("Account", Emulation::Account);
  py::class_<LinkSpec>(m, "LinkSpec")
      .def(py::init<>())
      .def_readwrite("bandwidth_mbps", &LinkSpec::bandwidth_mbps)
      .def_readwrite("trace", &LinkSpec::trace)
      .def_readwrite("rtt_ms", &LinkSpec::rtt_ms)
      .def_readwrite("burst_bytes", &LinkSpec::burst_bytes)
      .def_readwrite("time_scale", &LinkSpec::time_scale)
      .def_readwrite("min_bandwidth_mbps", &LinkSpec::min_bandwidth_mbps)
      .def_readwrite("label", &LinkSpec::label);
  m.def("read_trace", &read_trace, py::arg("path"));
  py::class_<Link, std::shared_ptr<Link>>(m, "EmulatedLink")
      .def(py::init<LinkSpec>(), py::arg("spec"))
      .def("now_s", &Link::now_s)
      .def("set_virtual_time", &Link::set_virtual_time, py::arg("t_s"))
      .def("use_wall_clock", &Link::use_wall_clock)
      .def("bandwidth_at", &Link::bandwidth_at, py::arg("t_s"))
      .def("bandwidth_now", &Link::bandwidth_now)
      .def("serialization_ms", &Link::serialization_ms, py::arg("bytes"), py::arg("t_s"))
      .def("transmit", &Link::transmit, py::arg("bytes"), py::arg("uplink") = true)
      .def("set_uplink_rate_factor", &Link::set_uplink_rate_factor, py::arg("factor"))
      .def_property_readonly("uplink_rate_factor", &Link::uplink_rate_factor)
      .def("mean_bandwidth", &Link::mean_bandwidth)
      .def("duration_s", &Link::duration_s)
      .def_property_readonly("spec", &Link::spec);
  py::class_<MonitorOptions>(m, "MonitorOptions")
      .def(py::init<>())
      .def_readwrite("window", &MonitorOptions::window)
      .def_readwrite("min_bytes", &MonitorOptions::min_bytes)
      .def_readwrite("load_alpha", &MonitorOptions::load_alpha)
      .def_readwrite("min_device_ms", &MonitorOptions::min_device_ms)
      .def_readwrite("estimator", &MonitorOptions::estimator)
      .def_readwrite("ewma_alpha", &MonitorOptions::ewma_alpha)
      .def_readwrite("kalman_q", &MonitorOptions::kalman_q)
      .def_readwrite("kalman_r", &MonitorOptions::kalman_r);
  py::class_<Monitor>(m, "Monitor")
      .def(py::init<MonitorOptions>(), py::arg("options") = MonitorOptions{})
      .def("observe_transfer", &Monitor::observe_transfer, py::arg("bytes"), py::arg("transfer_ms"))
      .def("observe_rtt", &Monitor::observe_rtt, py::arg("rtt_ms"))
      .def("observe_server", &Monitor::observe_server, py::arg("server_ms"), py::arg("predicted_ms"),
           py::arg("server") = 0)
      .def("observe_device", &Monitor::observe_device, py::arg("device_ms"), py::arg("predicted_ms"))
      .def_property_readonly("bandwidth_mbps", &Monitor::bandwidth_mbps)
      .def_property_readonly("rtt_ms", &Monitor::rtt_ms)
      .def_property_readonly("server_load", [](const Monitor& mo) { return mo.server_load(0); })
      .def("load_of", &Monitor::server_load, py::arg("server") = 0, "The measured load of one server (index).")
      .def_property_readonly("device_load", &Monitor::device_load)
      .def_property_readonly("device_samples", &Monitor::device_samples)
      .def("restart_device_load", &Monitor::restart_device_load)
      .def_property_readonly("samples", &Monitor::samples)
      .def_static("free_memory_bytes", &Monitor::free_memory_bytes);
  py::class_<DeviceState>(m, "DeviceState",
                          "The device's machine state: intra-op threads and background load (cores kept busy).")
      .def(py::init([](int threads, double background_load) { return DeviceState{threads, background_load}; }),
           py::arg("threads") = 1, py::arg("background_load") = 0.0)
      .def_readwrite("threads", &DeviceState::threads)
      .def_readwrite("background_load", &DeviceState::background_load)
      .def("__repr__", [](const DeviceState& s) {
        return fmt::format("DeviceState(threads={}, background_load={})", s.threads, s.background_load);
      });
  py::class_<AdaptiveOptions>(m, "AdaptiveOptions")
      .def(py::init<>())
      .def_readwrite("planner", &AdaptiveOptions::planner)
      .def_readwrite("hysteresis", &AdaptiveOptions::hysteresis)
      .def_readwrite("initial_bandwidth_mbps", &AdaptiveOptions::initial_bandwidth_mbps)
      .def_readwrite("rtt_ms", &AdaptiveOptions::rtt_ms)
      .def_readwrite("probe_every", &AdaptiveOptions::probe_every)
      .def_readwrite("probe_ms", &AdaptiveOptions::probe_ms)
      .def_readwrite("react_to_drops", &AdaptiveOptions::react_to_drops)
      .def_readwrite("device_memory_bytes", &AdaptiveOptions::device_memory_bytes)
      .def_readwrite("load_tolerance", &AdaptiveOptions::load_tolerance)
      .def_readwrite("max_latency_ms", &AdaptiveOptions::max_latency_ms)
      .def_readwrite("free_memory_fraction", &AdaptiveOptions::free_memory_fraction)
      .def_readwrite("monitor", &AdaptiveOptions::monitor)
      .def_readwrite("profiled", &AdaptiveOptions::profiled)
      .def_readwrite("state_tolerance", &AdaptiveOptions::state_tolerance)
      .def_readwrite("infer_background_load", &AdaptiveOptions::infer_background_load)
      .def_readwrite("max_background_load", &AdaptiveOptions::max_background_load)
      .def_readwrite("load_step", &AdaptiveOptions::load_step)
      .def_property_readonly("predictor_name", [](const AdaptiveOptions& a) { return a.predictor.name; },
                             "the device cost predictor's name ('' without one)")
      .def(
          "use_predictor",
          [](AdaptiveOptions& a, std::shared_ptr<predict::Predictor> p, const Model& model) {
            TESSERA_CHECK(p != nullptr, InvalidArgument, "use_predictor needs a predictor");
            a.predictor.name = p->kind();
            a.predictor.predict = [p, model](const DeviceState& s) {
              return predict::predict_atoms(*p, model.graph(), model.atoms(), model.hash(),
                                            {s.threads, s.background_load})
                  .ms;
            };
          },
          py::arg("predictor"), py::arg("model"),
          "Device costs in unprofiled states from a predictor (C++ or Python) over the model's atoms.")
      .def(
          "use_cost_function",
          [](AdaptiveOptions& a, const std::string& name, py::function f) {
            auto fn = std::make_shared<py::function>(std::move(f));
            a.predictor.name = name;
            a.predictor.predict = [fn](const DeviceState& s) {
              py::gil_scoped_acquire gil;
              return (*fn)(s.threads, s.background_load).cast<std::vector<double>>();
            };
          },
          py::arg("name"), py::arg("function"),
          "Device costs in unprofiled states from function(threads, background_load) -> ms per atom.")
      .def("clear_predictor", [](AdaptiveOptions& a) { a.predictor = {}; });
  py::class_<RequestRecord>(m, "RequestRecord")
      .def_readonly("index", &RequestRecord::index)
      .def_readonly("link_time_s", &RequestRecord::link_time_s)
      .def_readonly("est_bandwidth", &RequestRecord::est_bandwidth)
      .def_readonly("true_bandwidth", &RequestRecord::true_bandwidth)
      .def_readonly("plan_id", &RequestRecord::plan_id)
      .def_readonly("device_atoms", &RequestRecord::device_atoms)
      .def_readonly("device_param_bytes", &RequestRecord::device_param_bytes)
      .def_readonly("switched", &RequestRecord::switched)
      .def_readonly("decide_us", &RequestRecord::decide_us)
      .def_readonly("total_ms", &RequestRecord::total_ms)
      .def_readonly("device_ms", &RequestRecord::device_ms)
      .def_readonly("transfer_ms", &RequestRecord::transfer_ms)
      .def_readonly("server_ms", &RequestRecord::server_ms)
      .def_readonly("queue_ms", &RequestRecord::queue_ms)
      .def_readonly("predicted_ms", &RequestRecord::predicted_ms)
      .def_readonly("fallback", &RequestRecord::fallback)
      .def_readonly("probed", &RequestRecord::probed)
      .def_readonly("server", &RequestRecord::server)
      .def_readonly("busy", &RequestRecord::busy)
      .def_readonly("est_load", &RequestRecord::est_load)
      .def_readonly("est_device_load", &RequestRecord::est_device_load)
      .def_readonly("estimate_device_atoms", &RequestRecord::estimate_device_atoms)
      .def_readonly("why", &RequestRecord::why)
      .def_readonly("frequency_mhz", &RequestRecord::frequency_mhz)
      .def_readonly("tx_power_mw", &RequestRecord::tx_power_mw)
      .def_readonly("tx_rate_mbps", &RequestRecord::tx_rate_mbps)
      .def_readonly("energy_mj", &RequestRecord::energy_mj)
      .def_readonly("compute_mj", &RequestRecord::compute_mj)
      .def_readonly("tx_mj", &RequestRecord::tx_mj)
      .def_readonly("rx_mj", &RequestRecord::rx_mj)
      .def_readonly("idle_mj", &RequestRecord::idle_mj)
      .def_readonly("energy_queue", &RequestRecord::energy_queue)
      .def_readonly("frequency_applied", &RequestRecord::frequency_applied)
      .def_readonly("cost_source", &RequestRecord::cost_source)
      .def_readonly("device_threads", &RequestRecord::device_threads)
      .def_readonly("device_background_load", &RequestRecord::device_background_load);
  py::class_<Observation>(m, "Observation")
      .def(py::init<>())
      .def_readwrite("index", &Observation::index)
      .def_readwrite("link_time_s", &Observation::link_time_s)
      .def_readwrite("true_bandwidth", &Observation::true_bandwidth)
      .def_readwrite("est_bandwidth", &Observation::est_bandwidth)
      .def_readwrite("rtt_ms", &Observation::rtt_ms)
      .def_readwrite("server_load", &Observation::server_load)
      .def_readwrite("device_load", &Observation::device_load)
      .def_readwrite("memory_budget_bytes", &Observation::memory_budget_bytes)
      .def_readwrite("replan", &Observation::replan)
      .def_readwrite("current", &Observation::current)
      .def_readwrite("device_samples", &Observation::device_samples)
      .def_readwrite("device_state", &Observation::device_state);
  py::class_<Decision>(m, "Decision")
      .def_readonly("placement", &Decision::placement)
      .def_readonly("plan_id", &Decision::plan_id)
      .def_readonly("predicted_ms", &Decision::predicted_ms)
      .def_readonly("estimate_device_atoms", &Decision::estimate_device_atoms)
      .def_readonly("why", &Decision::why)
      .def_readonly("frequency_mhz", &Decision::frequency_mhz)
      .def_readonly("tx_power_mw", &Decision::tx_power_mw)
      .def_readonly("device_time_factor", &Decision::device_time_factor)
      .def_readonly("uplink_rate_factor", &Decision::uplink_rate_factor)
      .def_readonly("cost_source", &Decision::cost_source)
      .def_readonly("device_state", &Decision::device_state);
  py::class_<Policy, std::shared_ptr<Policy>>(m, "Policy")
      .def_property_readonly("name", &Policy::name)
      .def("decide", &Policy::decide, py::arg("observation"))
      .def_property_readonly("uses_estimates", &Policy::uses_estimates)
      .def("breakpoints", &Policy::breakpoints);
  m.def("static_policy", &make_static_policy, py::arg("name"), py::arg("placement"));
  m.def("oracle_policy", &make_oracle_policy, py::arg("cost_model"), py::arg("rtt_ms"),
        py::call_guard<py::gil_scoped_release>());
  m.def("lagged_oracle_policy", &make_lagged_oracle_policy, py::arg("cost_model"), py::arg("rtt_ms"), py::arg("link"),
        py::arg("lag_s"), py::call_guard<py::gil_scoped_release>());
  m.def("cpufreq_unavailable", &cpufreq_unavailable,
        "why a chosen clock would be emulated here ('' when cpufreq can set it)");
  m.def("energy_policy", &make_energy_policy, py::arg("cost_model"), py::arg("power"), py::arg("options"),
        py::call_guard<py::gil_scoped_release>());
  m.def("adaptive_policy", &make_adaptive_policy, py::arg("cost_model"), py::arg("options"),
        py::call_guard<py::gil_scoped_release>());
  py::class_<SimulationOptions>(m, "SimulationOptions")
      .def(py::init<>())
      .def_readwrite("period_s", &SimulationOptions::period_s)
      .def_readwrite("requests", &SimulationOptions::requests)
      .def_readwrite("rtt_ms", &SimulationOptions::rtt_ms)
      .def_readwrite("server_load", &SimulationOptions::server_load)
      .def_readwrite("device_load", &SimulationOptions::device_load)
      .def_readwrite("timeout_ms", &SimulationOptions::timeout_ms)
      .def_readwrite("retry_ms", &SimulationOptions::retry_ms)
      .def_readwrite("compute_jitter", &SimulationOptions::compute_jitter)
      .def_readwrite("sample_noise", &SimulationOptions::sample_noise)
      .def_readwrite("outlier_rate", &SimulationOptions::outlier_rate)
      .def_readwrite("outlier_factor", &SimulationOptions::outlier_factor)
      .def_readwrite("seed", &SimulationOptions::seed)
      .def_readwrite("server_load_trace", &SimulationOptions::server_load_trace)
      .def_readwrite("device_load_trace", &SimulationOptions::device_load_trace)
      .def_readwrite("memory_trace", &SimulationOptions::memory_trace)
      .def_readwrite("adaptive", &SimulationOptions::adaptive);
  m.def("simulate", &simulate, py::arg("cost_model"), py::arg("link"), py::arg("policy"), py::arg("options"),
        "One policy over a trace on the cost model alone (no execution): one RequestRecord per request.",
        py::call_guard<py::gil_scoped_release>());
  py::class_<Controller>(m, "Controller")
      .def(py::init<Model, plan::CostModel, runtime::DeploymentOptions, std::shared_ptr<Policy>, AdaptiveOptions>(),
           py::arg("model"), py::arg("cost_model"), py::arg("options"), py::arg("policy"), py::arg("adaptive"),
           py::call_guard<py::gil_scoped_release>())
      .def("run", &Controller::run, py::arg("inputs"), py::call_guard<py::gil_scoped_release>())
      // accessors wait for a run() in progress (its lock): without the GIL
      .def("set_memory_budget", &Controller::set_memory_budget, py::arg("bytes"), py::call_guard<py::gil_scoped_release>())
      .def("set_machine_state", &Controller::set_machine_state, py::arg("threads") = py::none(),
           py::arg("background_load") = py::none(), py::call_guard<py::gil_scoped_release>())
      .def("timeline", &Controller::timeline, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("placement", py::cpp_function(&Controller::placement, py::call_guard<py::gil_scoped_release>()))
      .def("monitor", &Controller::monitor, "a copy of the monitor's state", py::call_guard<py::gil_scoped_release>())
      .def("deployment", &Controller::deployment, py::return_value_policy::reference_internal)
      .def("policy", &Controller::policy, py::return_value_policy::reference_internal)
      .def("breakpoints", &Controller::breakpoints, py::call_guard<py::gil_scoped_release>());
  py::class_<AdaptiveDeployment, Controller>(m, "AdaptiveDeployment")
      .def(py::init<Model, plan::CostModel, runtime::DeploymentOptions, AdaptiveOptions>(), py::arg("model"),
           py::arg("cost_model"), py::arg("options"), py::arg("adaptive"), py::call_guard<py::gil_scoped_release>());
  py::class_<LoadSwitchOptions>(m, "LoadSwitchOptions")
      .def(py::init<>())
      .def_readwrite("policy", &LoadSwitchOptions::policy)
      .def_readwrite("switch_up", &LoadSwitchOptions::switch_up)
      .def_readwrite("switch_down", &LoadSwitchOptions::switch_down)
      .def_readwrite("queue_up", &LoadSwitchOptions::queue_up)
      .def_readwrite("rate_window", &LoadSwitchOptions::rate_window)
      .def_readwrite("service_ewma", &LoadSwitchOptions::service_ewma);
  py::class_<LoadSwitch>(m, "LoadSwitch",
                         "The light/heavy-load decision of a stream: latency plan or throughput plan, by arrival "
                         "rate and queue (adapt/load_switch.h).")
      .def(py::init<double, double, LoadSwitchOptions>(), py::arg("latency_ms"), py::arg("throughput_fps"),
           py::arg("options") = LoadSwitchOptions{})
      .def("arrive", &LoadSwitch::arrive, py::arg("t_s"))
      .def("served_latency_mode", &LoadSwitch::served_latency_mode, py::arg("service_ms"))
      .def("decide", [](LoadSwitch& s, int queued) { return std::string(mode_name(s.decide(queued))); },
           py::arg("queued"))
      .def_property_readonly("mode", [](const LoadSwitch& s) { return std::string(mode_name(s.mode())); })
      .def_property_readonly("arrival_rate", &LoadSwitch::arrival_rate)
      .def_property_readonly("latency_rate", &LoadSwitch::latency_rate)
      .def_property_readonly("why", &LoadSwitch::why);
  py::class_<StreamContext>(m, "StreamContext")
      .def(py::init<>())
      .def_readwrite("bandwidth_mbps", &StreamContext::bandwidth_mbps)
      .def_readwrite("rtt_ms", &StreamContext::rtt_ms);
  py::class_<StreamRecord>(m, "StreamRecord")
      .def_readonly("index", &StreamRecord::index)
      .def_readonly("arrival_s", &StreamRecord::arrival_s)
      .def_readonly("start_s", &StreamRecord::start_s)
      .def_readonly("done_s", &StreamRecord::done_s)
      .def_readonly("wait_ms", &StreamRecord::wait_ms)
      .def_readonly("latency_ms", &StreamRecord::latency_ms)
      .def_readonly("service_ms", &StreamRecord::service_ms)
      .def_readonly("mode", &StreamRecord::mode)
      .def_readonly("switched", &StreamRecord::switched)
      .def_readonly("fallback", &StreamRecord::fallback)
      .def_readonly("queued", &StreamRecord::queued)
      .def_readonly("arrival_rate", &StreamRecord::arrival_rate)
      .def_readonly("latency_rate", &StreamRecord::latency_rate)
      .def_readonly("why", &StreamRecord::why);
  py::class_<StreamStats>(m, "StreamStats")
      .def_readonly("frames", &StreamStats::frames)
      .def_readonly("fallbacks", &StreamStats::fallbacks)
      .def_readonly("switches", &StreamStats::switches)
      .def_readonly("latency_frames", &StreamStats::latency_frames)
      .def_readonly("throughput_frames", &StreamStats::throughput_frames)
      .def_readonly("served_fps", &StreamStats::served_fps)
      .def_readonly("steady_fps", &StreamStats::steady_fps)
      .def_readonly("arrival_fps", &StreamStats::arrival_fps)
      .def_readonly("latency_ms_p50", &StreamStats::latency_ms_p50)
      .def_readonly("latency_ms_p99", &StreamStats::latency_ms_p99)
      .def_readonly("wait_ms_p50", &StreamStats::wait_ms_p50)
      .def_readonly("latency_plan_ms", &StreamStats::latency_plan_ms)
      .def_readonly("latency_plan_fps", &StreamStats::latency_plan_fps)
      .def_readonly("throughput_plan_fps", &StreamStats::throughput_plan_fps)
      .def("to_json", &StreamStats::to_json);
  py::class_<StreamController>(m, "StreamController")
      .def(py::init<Model, plan::CostModel, StreamContext, runtime::DeploymentOptions, runtime::PipelineOptions,
                    LoadSwitchOptions>(),
           py::arg("model"), py::arg("cost_model"), py::arg("context"), py::arg("deployment"), py::arg("pipeline"),
           py::arg("options"), py::call_guard<py::gil_scoped_release>())
      .def("serve", &StreamController::serve, py::arg("frames"), py::arg("arrivals_s"),
           py::call_guard<py::gil_scoped_release>())
      .def("records", &StreamController::records, py::call_guard<py::gil_scoped_release>())
      .def("stats", &StreamController::stats, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("latency_plan", &StreamController::latency_plan)
      .def_property_readonly("throughput_plan", &StreamController::throughput_plan);
}
