// Bindings of the runtime layer (tessera/runtime/*.h). Wrap only; blocking calls release the GIL.
#include <fmt/format.h>
#include <torch/extension.h>

#include "tessera/graph/threads.h"
#include "tessera/runtime/deployment.h"
#include "tessera/runtime/pipeline.h"
#include "tessera/runtime/server.h"
#include "tessera/runtime/training.h"
#include "tessera/transport/message.h"

#include <algorithm>
#include <chrono>

namespace py = pybind11;
using namespace tessera;
using namespace tessera::runtime;

void bind_runtime(py::module_& m) {
  py::class_<ServerOptions>(m, "ServerOptions")
      .def(py::init<>())
      .def_readwrite("repository", &ServerOptions::repository)
      .def_readwrite("bind", &ServerOptions::bind)
      .def_readwrite("workers", &ServerOptions::workers)
      .def_readwrite("intra_op_threads", &ServerOptions::intra_op_threads)
      .def_readwrite("max_message_bytes", &ServerOptions::max_message_bytes)
      .def_readwrite("curve_secret_key", &ServerOptions::curve_secret_key)
      .def_readwrite("allowed_client_keys", &ServerOptions::allowed_client_keys)
      .def_readwrite("verbose", &ServerOptions::verbose)
      .def_readwrite("forward_timeout_ms", &ServerOptions::forward_timeout_ms)
      .def_readwrite("keep_freed_memory", &ServerOptions::keep_freed_memory)
      .def_readwrite("batch_max", &ServerOptions::batch_max)
      .def_readwrite("batch_delay_us", &ServerOptions::batch_delay_us)
      .def_readwrite("max_queue", &ServerOptions::max_queue)
      .def_readwrite("metrics_port", &ServerOptions::metrics_port);
  py::class_<ServerStats>(m, "ServerStats")
      .def_readonly("requests", &ServerStats::requests)
      .def_readonly("replies", &ServerStats::replies)
      .def_readonly("errors", &ServerStats::errors)
      .def_readonly("late", &ServerStats::late)
      .def_readonly("pings", &ServerStats::pings)
      .def_readonly("echoes", &ServerStats::echoes)
      .def_readonly("bytes_in", &ServerStats::bytes_in)
      .def_readonly("bytes_out", &ServerStats::bytes_out)
      .def_readonly("busy_ms", &ServerStats::busy_ms)
      .def_readonly("forwards", &ServerStats::forwards)
      .def_readonly("forward_failures", &ServerStats::forward_failures)
      .def_readonly("tile_fallbacks", &ServerStats::tile_fallbacks)
      .def_readonly("refused_busy", &ServerStats::refused_busy)
      .def_readonly("batches", &ServerStats::batches)
      .def_readonly("batched", &ServerStats::batched)
      .def_readonly("unbatchable", &ServerStats::unbatchable)
      .def_readonly("queued", &ServerStats::queued)
      .def_readonly("queue_peak", &ServerStats::queue_peak)
      .def_readonly("workers_busy", &ServerStats::workers_busy)
      .def("to_json", &ServerStats::to_json);
  py::class_<Server>(m, "Server")
      .def(py::init<ServerOptions>(), py::arg("options"))
      .def("start", &Server::start, py::call_guard<py::gil_scoped_release>())
      .def("stop", &Server::stop, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("running", &Server::running)
      .def_property_readonly("endpoint", &Server::endpoint)
      .def_property_readonly("metrics_endpoint", &Server::metrics_endpoint)
      .def("metrics_text", &Server::metrics_text)
      .def("stats", &Server::stats)
      .def("models", &Server::models);
  m.def("set_intra_op_threads", &tessera::set_intra_op_threads, py::arg("threads"),
        "LibTorch's intra-op threads and OpenBLAS's pool (process-wide), together.");
  m.def("blas_threads", &tessera::blas_threads, "OpenBLAS's pool size, or -1 without OpenBLAS.");
  m.def("keep_freed_memory", &tessera::keep_freed_memory, py::arg("on") = true,
        "Keep freed tensors' memory in the heap (no page faults per large activation); process-wide.");
  m.def("curve_keypair", &curve_keypair, "A new CURVE key pair (public, secret), Z85 strings.");

  // ---- wire codecs (transport/message.h) ----
  m.def("codec_round_trip", [](const at::Tensor& t, const std::string& codec) {
          return transport::codec_round_trip(t, transport::parse_codec(codec));
        }, py::arg("tensor"), py::arg("codec"), "What the receiver gets when `tensor` travels with `codec`.",
        py::call_guard<py::gil_scoped_release>());
  m.def("codec_wire_bytes", [](const at::Tensor& t, const std::string& codec) {
          auto e = transport::encode_tensor(t, transport::parse_codec(codec));
          return py::make_tuple(e.desc.nbytes, e.desc.params.size(), std::string(transport::codec_name(e.desc.codec)));
        }, py::arg("tensor"), py::arg("codec"), "(frame bytes, parameter bytes, codec used) of `tensor` on the wire.");
  m.def("codec_timing", [](const at::Tensor& t, const std::string& codec, int repeats) {
          // Median encode and decode ms over `repeats` runs, in C++ (no Python in the loop).
          const auto c = transport::parse_codec(codec);
          std::vector<double> enc, dec;
          uint64_t bytes = 0;
          for (int r = 0; r < repeats; ++r) {
            auto t0 = std::chrono::steady_clock::now();
            auto e = transport::encode_tensor(t, c);
            auto t1 = std::chrono::steady_clock::now();
            auto d = transport::decode_tensor(e.frame.data_ptr(), e.frame.nbytes(), e.desc);
            auto t2 = std::chrono::steady_clock::now();
            enc.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
            dec.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
            bytes = e.desc.nbytes + e.desc.params.size();
          }
          auto median = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            return v.empty() ? 0.0 : v[v.size() / 2];
          };
          return py::make_tuple(median(enc), median(dec), bytes);
        }, py::arg("tensor"), py::arg("codec"), py::arg("repeats") = 21,
        "(median encode ms, median decode ms, wire bytes) of `tensor` under `codec`, timed in C++.");

  py::class_<DeploymentOptions>(m, "DeploymentOptions")
      .def(py::init<>())
      .def_readwrite("server", &DeploymentOptions::server)
      .def_readwrite("timeout_ms", &DeploymentOptions::timeout_ms)
      .def_readwrite("retry_ms", &DeploymentOptions::retry_ms)
      .def_readwrite("curve_server_key", &DeploymentOptions::curve_server_key)
      .def_readwrite("curve_public_key", &DeploymentOptions::curve_public_key)
      .def_readwrite("curve_secret_key", &DeploymentOptions::curve_secret_key)
      .def_readwrite("link", &DeploymentOptions::link)
      .def_readwrite("device_slowdown", &DeploymentOptions::device_slowdown)
      .def_readwrite("emulation", &DeploymentOptions::emulation)
      .def_readwrite("codec", &DeploymentOptions::codec)
      .def_readwrite("servers", &DeploymentOptions::servers)
      .def_readwrite("server_policy", &DeploymentOptions::server_policy)
      .def_readwrite("busy_retry_ms", &DeploymentOptions::busy_retry_ms)
      .def_readwrite("probe_timeout_ms", &DeploymentOptions::probe_timeout_ms)
      .def_readwrite("seed", &DeploymentOptions::seed);
  py::class_<ServerState>(m, "ServerState")
      .def_readonly("endpoint", &ServerState::endpoint)
      .def_readonly("available", &ServerState::available)
      .def_readonly("requests", &ServerState::requests)
      .def_readonly("failures", &ServerState::failures)
      .def_readonly("busy", &ServerState::busy)
      .def_readonly("ewma_ms", &ServerState::ewma_ms)
      .def_readonly("ewma_queue_ms", &ServerState::ewma_queue_ms)
      .def("__repr__", [](const ServerState& s) {
        return fmt::format("ServerState({}, available={}, requests={}, failures={}, busy={}, ewma_ms={:.3f}, "
                           "ewma_queue_ms={:.3f})", s.endpoint, s.available, s.requests, s.failures, s.busy,
                           s.ewma_ms, s.ewma_queue_ms);
      });
  py::class_<BlockTiming>(m, "BlockTiming")
      .def_readonly("target", &BlockTiming::target)
      .def_readonly("remote", &BlockTiming::remote)
      .def_readonly("fallback", &BlockTiming::fallback)
      .def_readonly("atoms", &BlockTiming::atoms)
      .def_readonly("compute_ms", &BlockTiming::compute_ms)
      .def_readonly("round_trip_ms", &BlockTiming::round_trip_ms)
      .def_readonly("server_ms", &BlockTiming::server_ms)
      .def_readonly("queue_ms", &BlockTiming::queue_ms)
      .def_readonly("transfer_ms", &BlockTiming::transfer_ms)
      .def_readonly("link_ms", &BlockTiming::link_ms)
      .def_readonly("bytes_up", &BlockTiming::bytes_up)
      .def_readonly("bytes_down", &BlockTiming::bytes_down)
      .def_readonly("codec_up", &BlockTiming::codec_up)
      .def_readonly("codec_down", &BlockTiming::codec_down)
      .def_readonly("error", &BlockTiming::error)
      .def_readonly("busy", &BlockTiming::busy)
      .def_readonly("busy_wait_ms", &BlockTiming::busy_wait_ms)
      .def_readonly("server", &BlockTiming::server)
      .def_readonly("batch", &BlockTiming::batch);
  py::class_<Timeline>(m, "Timeline")
      .def_readonly("blocks", &Timeline::blocks)
      .def_readonly("total_ms", &Timeline::total_ms)
      .def_readonly("device_ms", &Timeline::device_ms)
      .def_readonly("transfer_ms", &Timeline::transfer_ms)
      .def_readonly("server_ms", &Timeline::server_ms)
      .def_readonly("queue_ms", &Timeline::queue_ms)
      .def_readonly("fallback", &Timeline::fallback)
      .def_readonly("server", &Timeline::server);
  py::class_<Deployment>(m, "Deployment")
      .def(py::init<Model, tessera::plan::Plan, DeploymentOptions>(), py::arg("model"), py::arg("plan"),
           py::arg("options"))
      .def(py::init<Model, std::vector<int>, DeploymentOptions>(), py::arg("model"), py::arg("placement"),
           py::arg("options"))
      .def("run", &Deployment::run, py::arg("inputs"), py::call_guard<py::gil_scoped_release>())
      // accessors wait for a request in progress (its lock): without the GIL
      .def("set_placement", &Deployment::set_placement, py::arg("placement"), py::call_guard<py::gil_scoped_release>())
      .def("set_plan", &Deployment::set_plan, py::arg("plan"), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("plan", py::cpp_function(&Deployment::plan, py::call_guard<py::gil_scoped_release>()))
      .def_property_readonly("placement", py::cpp_function(&Deployment::placement, py::call_guard<py::gil_scoped_release>()))
      .def("last_timeline", &Deployment::last_timeline, py::call_guard<py::gil_scoped_release>())
      .def("ping", &Deployment::ping, py::arg("timeout_ms") = 500, py::call_guard<py::gil_scoped_release>())
      .def("echo", &Deployment::echo, py::arg("tensors"), py::call_guard<py::gil_scoped_release>())
      .def("probe", &Deployment::probe, py::arg("bytes"), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("device_slowdown", py::cpp_function(&Deployment::device_slowdown, py::call_guard<py::gil_scoped_release>()))
      .def("set_device_slowdown", &Deployment::set_device_slowdown, py::arg("slowdown"),
           py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("server_available",
                             py::cpp_function(&Deployment::server_available, py::call_guard<py::gil_scoped_release>()))
      .def_property_readonly("servers", py::cpp_function(&Deployment::servers, py::call_guard<py::gil_scoped_release>()))
      .def("server_states", &Deployment::server_states, py::call_guard<py::gil_scoped_release>())
      .def("select_server", &Deployment::select_server, py::call_guard<py::gil_scoped_release>());

  py::class_<PipelineOptions>(m, "PipelineOptions")
      .def(py::init<>())
      .def_readwrite("endpoints", &PipelineOptions::endpoints)
      .def_readwrite("reply_bind", &PipelineOptions::reply_bind)
      .def_readwrite("reply_advertise", &PipelineOptions::reply_advertise)
      .def_readwrite("in_flight", &PipelineOptions::in_flight)
      .def_readwrite("timeout_ms", &PipelineOptions::timeout_ms)
      .def_readwrite("retry_ms", &PipelineOptions::retry_ms)
      .def_readwrite("send_timeout_ms", &PipelineOptions::send_timeout_ms)
      .def_readwrite("slowdown", &PipelineOptions::slowdown)
      .def_readwrite("emulation", &PipelineOptions::emulation);
  py::class_<StageRecord>(m, "StageRecord")
      .def_readonly("node", &StageRecord::node)
      .def_readonly("compute_ms", &StageRecord::compute_ms)
      .def_readonly("cpu_ms", &StageRecord::cpu_ms)
      .def_readonly("accounted_ms", &StageRecord::accounted_ms)
      .def_readonly("queue_ms", &StageRecord::queue_ms)
      .def_readonly("link_in_ms", &StageRecord::link_in_ms)
      .def_readonly("link_back_ms", &StageRecord::link_back_ms)
      .def_readonly("bytes_in", &StageRecord::bytes_in)
      .def_readonly("bytes_back", &StageRecord::bytes_back)
      .def_readonly("ran_remote", &StageRecord::ran_remote)
      .def_readonly("tile_ms", &StageRecord::tile_ms)
      .def_readonly("tile_link_ms", &StageRecord::tile_link_ms)
      .def_readonly("tile_fallbacks", &StageRecord::tile_fallbacks);
  py::class_<FrameRecord>(m, "FrameRecord")
      .def_readonly("request_id", &FrameRecord::request_id)
      .def_readonly("total_ms", &FrameRecord::total_ms)
      .def_readonly("fallback", &FrameRecord::fallback)
      .def_readonly("error", &FrameRecord::error)
      .def_readonly("stages", &FrameRecord::stages);
  py::class_<PipelineDone>(m, "PipelineDone")
      .def_readonly("ticket", &PipelineDone::ticket)
      .def_readonly("outputs", &PipelineDone::outputs)
      .def_readonly("record", &PipelineDone::record);
  py::class_<PipelineStageStats>(m, "PipelineStageStats")
      .def_readonly("node", &PipelineStageStats::node)
      .def_readonly("frames", &PipelineStageStats::frames)
      .def_readonly("compute_ms", &PipelineStageStats::compute_ms)
      .def_readonly("cpu_ms", &PipelineStageStats::cpu_ms)
      .def_readonly("accounted_ms", &PipelineStageStats::accounted_ms)
      .def_readonly("queue_ms", &PipelineStageStats::queue_ms)
      .def_readonly("link_in_ms", &PipelineStageStats::link_in_ms)
      .def_readonly("link_back_ms", &PipelineStageStats::link_back_ms)
      .def_readonly("bytes_in", &PipelineStageStats::bytes_in)
      .def_readonly("tile_ms", &PipelineStageStats::tile_ms)
      .def_readonly("tile_link_ms", &PipelineStageStats::tile_link_ms)
      .def_readonly("tile_fallbacks", &PipelineStageStats::tile_fallbacks);
  py::class_<PipelineStats>(m, "PipelineStats")
      .def_readonly("frames", &PipelineStats::frames)
      .def_readonly("fallbacks", &PipelineStats::fallbacks)
      .def_readonly("late", &PipelineStats::late)
      .def_readonly("stages", &PipelineStats::stages)
      .def_readonly("wall_fps", &PipelineStats::wall_fps)
      .def_readonly("accounted_fps", &PipelineStats::accounted_fps)
      .def_readonly("accounted_bottleneck_ms", &PipelineStats::accounted_bottleneck_ms)
      .def_readonly("bottleneck", &PipelineStats::bottleneck)
      .def_readonly("latency_ms_median", &PipelineStats::latency_ms_median)
      .def("to_json", &PipelineStats::to_json);
  m.def("pipeline_tiling", &pipeline_tiling, py::arg("model"), py::arg("max_tiles") = 2,
        "The model's row chains for the pipeline planners (intra-layer splits).");
  py::class_<Pipeline>(m, "Pipeline")
      .def(py::init<Model, tessera::plan::PipelinePlan, tessera::plan::PipelineNetwork, PipelineOptions>(),
           py::arg("model"), py::arg("plan"), py::arg("network"), py::arg("options"))
      .def("run", &Pipeline::run, py::arg("inputs"), py::call_guard<py::gil_scoped_release>())
      .def("map", &Pipeline::map, py::arg("frames"), py::call_guard<py::gil_scoped_release>())
      .def("stats", &Pipeline::stats, py::call_guard<py::gil_scoped_release>())
      .def("records", &Pipeline::records, py::call_guard<py::gil_scoped_release>())
      .def("submit", &Pipeline::submit, py::arg("inputs"), py::call_guard<py::gil_scoped_release>())
      .def("poll", &Pipeline::poll, py::arg("timeout_ms"), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("in_flight", py::cpp_function(&Pipeline::in_flight, py::call_guard<py::gil_scoped_release>()))
      .def_property_readonly("reply_endpoint", &Pipeline::reply_endpoint);

  // ---- split training (runtime/training.h) ----
  py::class_<OptimizerOptions>(m, "OptimizerOptions")
      .def(py::init<>())
      .def_readwrite("kind", &OptimizerOptions::kind)
      .def_readwrite("lr", &OptimizerOptions::lr)
      .def_readwrite("momentum", &OptimizerOptions::momentum)
      .def_readwrite("weight_decay", &OptimizerOptions::weight_decay)
      .def_readwrite("beta1", &OptimizerOptions::beta1)
      .def_readwrite("beta2", &OptimizerOptions::beta2)
      .def_readwrite("eps", &OptimizerOptions::eps)
      .def("check", &OptimizerOptions::check);
  py::class_<TrainingNode>(m, "TrainingNode")
      .def(py::init<Model, std::vector<int>, OptimizerOptions>(), py::arg("model"), py::arg("atoms"),
           py::arg("optimizer"))
      .def("forward", &TrainingNode::forward, py::arg("micro_batch"), py::arg("block"), py::arg("inputs"),
           py::arg("keep") = true, py::call_guard<py::gil_scoped_release>())
      .def("backward", &TrainingNode::backward, py::arg("micro_batch"), py::arg("block"), py::arg("grad_outputs"),
           py::call_guard<py::gil_scoped_release>())
      .def("commit", &TrainingNode::commit, py::call_guard<py::gil_scoped_release>())
      .def("discard", &TrainingNode::discard)
      .def_property_readonly("version", &TrainingNode::version)
      .def("state", &TrainingNode::state)
      .def("load_state", &TrainingNode::load_state, py::arg("state"))
      .def_property_readonly("atoms", &TrainingNode::atoms)
      .def("param_names", &TrainingNode::param_names)
      .def_property_readonly("stored_bytes", &TrainingNode::stored_bytes)
      .def_property_readonly("peak_stored_bytes", &TrainingNode::peak_stored_bytes);
  py::class_<TrainingServerOptions>(m, "TrainingServerOptions")
      .def(py::init<>())
      .def_readwrite("bind", &TrainingServerOptions::bind)
      .def_readwrite("max_message_bytes", &TrainingServerOptions::max_message_bytes)
      .def_readwrite("threads", &TrainingServerOptions::threads)
      .def_readwrite("verbose", &TrainingServerOptions::verbose);
  py::class_<TrainingServer::Stats>(m, "TrainingServerStats")
      .def_readonly("forwards", &TrainingServer::Stats::forwards)
      .def_readonly("backwards", &TrainingServer::Stats::backwards)
      .def_readonly("commits", &TrainingServer::Stats::commits)
      .def_readonly("aborts", &TrainingServer::Stats::aborts)
      .def_readonly("errors", &TrainingServer::Stats::errors)
      .def_readonly("version", &TrainingServer::Stats::version);
  py::class_<TrainingServer>(m, "TrainingServer")
      .def(py::init<std::string, TrainingServerOptions>(), py::arg("store_dir"),
           py::arg("options") = TrainingServerOptions{}, py::call_guard<py::gil_scoped_release>())
      .def("start", &TrainingServer::start, py::call_guard<py::gil_scoped_release>())
      .def("stop", &TrainingServer::stop, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("endpoint", &TrainingServer::endpoint)
      .def("stats", &TrainingServer::stats);
  py::class_<TrainerOptions>(m, "TrainerOptions")
      .def(py::init<>())
      .def_readwrite("servers", &TrainerOptions::servers)
      .def_readwrite("optimizer", &TrainerOptions::optimizer)
      .def_readwrite("loss", &TrainerOptions::loss)
      .def_readwrite("labels_on", &TrainerOptions::labels_on)
      .def_readwrite("output", &TrainerOptions::output)
      .def_readwrite("micro_batches", &TrainerOptions::micro_batches)
      .def_readwrite("schedule", &TrainerOptions::schedule)
      .def_readwrite("timeout_ms", &TrainerOptions::timeout_ms)
      .def_readwrite("max_in_flight", &TrainerOptions::max_in_flight)
      .def_readwrite("keep_gradients", &TrainerOptions::keep_gradients);
  py::class_<TrainEvent>(m, "TrainEvent")
      .def_readonly("node", &TrainEvent::node)
      .def_readonly("micro_batch", &TrainEvent::micro_batch)
      .def_readonly("block", &TrainEvent::block)
      .def_property_readonly("kind", [](const TrainEvent& e) { return std::string(1, e.kind); })
      .def_readonly("start_ms", &TrainEvent::start_ms)
      .def_readonly("end_ms", &TrainEvent::end_ms)
      .def_readonly("compute_ms", &TrainEvent::compute_ms)
      .def_readonly("bytes_sent", &TrainEvent::bytes_sent)
      .def_readonly("bytes_received", &TrainEvent::bytes_received)
      .def("__repr__", [](const TrainEvent& e) {
        return fmt::format("TrainEvent(node {}, mb {}, block {}, {}, {:.2f}-{:.2f} ms)", e.node, e.micro_batch,
                           e.block, e.kind, e.start_ms, e.end_ms);
      });
  py::class_<StepStats>(m, "StepStats")
      .def_readonly("loss", &StepStats::loss)
      .def_readonly("wall_ms", &StepStats::wall_ms)
      .def_readonly("version", &StepStats::version)
      .def_readonly("forward_ms", &StepStats::forward_ms)
      .def_readonly("backward_ms", &StepStats::backward_ms)
      .def_readonly("bytes_sent", &StepStats::bytes_sent)
      .def_readonly("bytes_received", &StepStats::bytes_received)
      .def_readonly("device_peak_stored_bytes", &StepStats::device_peak_stored_bytes)
      .def_readonly("peak_stored_bytes", &StepStats::peak_stored_bytes)
      .def_readonly("events", &StepStats::events)
      .def("__repr__", [](const StepStats& s) {
        return fmt::format("StepStats(loss {:.4f}, {:.1f} ms, version {})", s.loss, s.wall_ms, s.version);
      });
  py::class_<SplitTrainer>(m, "SplitTrainer")
      .def(py::init<Model, std::vector<int>, TrainerOptions>(), py::arg("model"), py::arg("placement"),
           py::arg("options"), py::call_guard<py::gil_scoped_release>())
      .def("step", &SplitTrainer::step, py::arg("inputs"), py::arg("labels"), py::call_guard<py::gil_scoped_release>())
      .def("predict", &SplitTrainer::predict, py::arg("inputs"), py::call_guard<py::gil_scoped_release>())
      .def("state_dict", &SplitTrainer::state_dict, py::call_guard<py::gil_scoped_release>())
      .def("gradients", &SplitTrainer::gradients, py::call_guard<py::gil_scoped_release>())
      .def("load_state_dict", &SplitTrainer::load_state_dict, py::arg("state"),
           py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("version", &SplitTrainer::version)
      .def_property_readonly("placement", &SplitTrainer::placement)
      .def("blocks", &SplitTrainer::blocks);
}
