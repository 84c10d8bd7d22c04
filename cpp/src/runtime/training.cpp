// runtime/training.cpp -- split and pipelined training over atoms (runtime/training.h).
//
// Wire: a Train message's body is a JSON command; its tensors depend on the op:
//   open     {"op","session","atoms":[..],"optimizer":{..}}        -> {"version"}
//   forward  {"op","session","mb","block":[..]}  + block inputs     -> outputs
//   backward {"op","session","mb","block":[..],"defined":[0/1..]} + defined output grads
//                                                                   -> {"defined":[..]} + defined input grads
//   commit   {"op","session","version": v}   applies the step if the weights are at v - 1;
//            at v already (a retried commit whose answer was lost): nothing to do
//   abort    {"op","session"}                drops gradients and kept activations
//   state    {"op","session"}                -> {"names":[..]} + the parameters
//   load     {"op","session","names":[..],"version": v} + tensors
//   status   {"op"}                          -> {"version"}
// Every answer is a TrainReply carrying {"version": the weights' version} (server_ms = the
// command's compute time) or an Error naming what was wrong.
#include "tessera/runtime/training.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <zmq.hpp>

#include "tessera/core/error.h"
#include "tessera/graph/tensor.h"
#include "tessera/graph/threads.h"
#include "tessera/transport/message.h"
#include "tessera/transport/wire.h"

namespace tessera::runtime {
namespace {
using json = nlohmann::json;
using transport::Header;
using transport::Message;
using transport::MsgType;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

int64_t tensor_bytes(const std::vector<at::Tensor>& ts) {
  int64_t b = 0;
  for (const auto& t : ts)
    if (t.defined()) b += static_cast<int64_t>(t.nbytes());
  return b;
}

json optimizer_json(const OptimizerOptions& o) {
  return {{"kind", o.kind}, {"lr", o.lr}, {"momentum", o.momentum}, {"weight_decay", o.weight_decay},
          {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps}};
}

OptimizerOptions optimizer_from_json(const json& j) {
  OptimizerOptions o;
  o.kind = j.at("kind").get<std::string>();
  o.lr = j.at("lr").get<double>();
  o.momentum = j.at("momentum").get<double>();
  o.weight_decay = j.at("weight_decay").get<double>();
  o.beta1 = j.at("beta1").get<double>();
  o.beta2 = j.at("beta2").get<double>();
  o.eps = j.at("eps").get<double>();
  return o;
}

}  // namespace

// ---- OptimizerOptions ------------------------------------------------------------------
void OptimizerOptions::check() const {
  TESSERA_CHECK(kind == "sgd" || kind == "adam", InvalidArgument, "optimizer '{}' is unknown (known: sgd, adam)", kind);
  TESSERA_CHECK(std::isfinite(lr) && lr > 0, InvalidArgument, "optimizer lr must be > 0, got {}", lr);
  TESSERA_CHECK(momentum >= 0 && momentum < 1, InvalidArgument, "optimizer momentum must be in [0, 1), got {}",
                momentum);
  TESSERA_CHECK(std::isfinite(weight_decay) && weight_decay >= 0, InvalidArgument,
                "optimizer weight_decay must be >= 0, got {}", weight_decay);
  TESSERA_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, InvalidArgument,
                "optimizer betas must be in [0, 1), got ({}, {})", beta1, beta2);
  TESSERA_CHECK(std::isfinite(eps) && eps > 0, InvalidArgument, "optimizer eps must be > 0, got {}", eps);
}

// ---- TrainingNode ----------------------------------------------------------------------
struct TrainingNode::Impl {
  explicit Impl(Model m) : model(std::move(m)) {}
  Model model;
  std::vector<int> atoms;
  std::set<int> atom_set;
  OptimizerOptions opt_options;
  NamedTensors params;                       // the model's own tensors, requiring grad
  std::map<std::string, size_t> param_index;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  uint64_t version = 0;
  struct Kept {
    std::vector<at::Tensor> inputs, outputs;  // inputs: leaves (float ones require grad)
    int64_t bytes = 0;
  };
  std::map<std::pair<uint64_t, std::vector<int>>, Kept> kept;
  int64_t stored = 0, peak = 0;
  bool keep_gradients = false;
  NamedTensors last_grads;

  void make_optimizer() {
    std::vector<at::Tensor> ps;
    for (auto& [n, t] : params) ps.push_back(t);
    if (opt_options.kind == "sgd")
      optimizer = std::make_unique<torch::optim::SGD>(
          ps, torch::optim::SGDOptions(opt_options.lr).momentum(opt_options.momentum).weight_decay(opt_options.weight_decay));
    else
      optimizer = std::make_unique<torch::optim::Adam>(
          ps, torch::optim::AdamOptions(opt_options.lr)
                  .betas({opt_options.beta1, opt_options.beta2})
                  .eps(opt_options.eps)
                  .weight_decay(opt_options.weight_decay));
  }

  TrainBlock block_of(const std::vector<int>& block) {
    TESSERA_CHECK(!block.empty(), InvalidArgument, "an empty block");
    for (int a : block)
      TESSERA_CHECK(atom_set.count(a), InvalidArgument, "atom {} is not one of this node's atoms ({} of them)", a,
                    atoms.size());
    return model.train_block(block);
  }

  // Drops the accumulated gradients and kept activations (a step's state).
  void reset_step() {
    for (auto& [n, t] : params)
      if (t.grad().defined()) t.mutable_grad().reset();
    kept.clear();
    stored = peak = 0;
  }
};

TrainingNode::TrainingNode(Model model, std::vector<int> atoms, OptimizerOptions optimizer)
    : impl_(std::make_unique<Impl>(model)) {
  TESSERA_CHECK(model.trainable(), InvalidArgument,
                "model {} was not loaded trainable: a frozen store holds its weights as constants, nothing can be "
                "trained through it (load it with trainable=True and save it again)",
                model.hash().substr(0, 12));
  optimizer.check();
  std::sort(atoms.begin(), atoms.end());
  atoms.erase(std::unique(atoms.begin(), atoms.end()), atoms.end());
  for (int a : atoms)
    TESSERA_CHECK(a >= 0 && a < model.num_atoms(), InvalidArgument, "atom id {} out of range: the model has {} atoms",
                  a, model.num_atoms());
  auto& m = *impl_;
  m.atoms = atoms;
  m.atom_set.insert(atoms.begin(), atoms.end());
  m.opt_options = optimizer;
  if (!atoms.empty()) m.params = m.model.parameters(atoms);
  for (size_t i = 0; i < m.params.size(); ++i) {
    m.params[i].second.requires_grad_(true);
    m.param_index[m.params[i].first] = i;
  }
  m.make_optimizer();
}

TrainingNode::~TrainingNode() = default;
TrainingNode::TrainingNode(TrainingNode&&) noexcept = default;
TrainingNode& TrainingNode::operator=(TrainingNode&&) noexcept = default;

std::vector<at::Tensor> TrainingNode::forward(uint64_t mb, const std::vector<int>& block,
                                              const std::vector<at::Tensor>& inputs, bool keep) {
  auto& m = *impl_;
  TrainBlock tb = m.block_of(block);
  TESSERA_CHECK(!keep || !m.kept.count({mb, tb.atoms()}), InvalidArgument,
                "micro-batch {} already ran forward through atoms [{}] and awaits its backward", mb,
                fmt::join(tb.atoms(), ", "));
  TESSERA_CHECK(inputs.size() == tb.inputs().size(), InvalidArgument,
                "block of atoms [{}] takes {} inputs, got {}", fmt::join(tb.atoms(), ", "), tb.inputs().size(),
                inputs.size());
  Impl::Kept k;
  for (size_t i = 0; i < inputs.size(); ++i) {
    TESSERA_CHECK(inputs[i].defined(), InvalidArgument, "input {} of block [{}] is undefined", i,
                  fmt::join(tb.atoms(), ", "));
    at::Tensor x = inputs[i].detach();
    // a gradient for every float input but the model's own (nobody needs the raw input's)
    const int v = tb.inputs()[i];
    if (at::isFloatingType(x.scalar_type()) && m.model.graph().values[v].producer >= 0) x.requires_grad_(true);
    k.inputs.push_back(x);
  }
  std::vector<at::Tensor> ps;
  for (const auto& n : tb.params()) ps.push_back(m.params.at(m.param_index.at(n)).second);
  if (!keep) {
    at::NoGradGuard no_grad;
    return tb(inputs, ps);
  }
  {
    at::AutoGradMode grad(true);
    k.outputs = tb(k.inputs, ps);
  }
  k.bytes = tensor_bytes(k.outputs) + tensor_bytes(k.inputs);
  std::vector<at::Tensor> out;
  for (const auto& y : k.outputs) out.push_back(y.detach());
  m.stored += k.bytes;
  m.peak = std::max(m.peak, m.stored);
  m.kept.emplace(std::make_pair(mb, tb.atoms()), std::move(k));
  return out;
}

std::vector<at::Tensor> TrainingNode::backward(uint64_t mb, const std::vector<int>& block,
                                               const std::vector<at::Tensor>& grad_outputs) {
  auto& m = *impl_;
  std::vector<int> ids = block;
  std::sort(ids.begin(), ids.end());
  auto it = m.kept.find({mb, ids});
  TESSERA_CHECK(it != m.kept.end(), InvalidArgument,
                "no forward of micro-batch {} through atoms [{}] awaits a backward here", mb, fmt::join(ids, ", "));
  auto& k = it->second;
  TESSERA_CHECK(grad_outputs.size() == k.outputs.size(), InvalidArgument,
                "block of atoms [{}] has {} outputs, got {} gradients", fmt::join(ids, ", "), k.outputs.size(),
                grad_outputs.size());
  std::vector<at::Tensor> outs, grads;
  for (size_t i = 0; i < grad_outputs.size(); ++i) {
    if (!grad_outputs[i].defined() || !k.outputs[i].requires_grad()) continue;
    TESSERA_CHECK(grad_outputs[i].sizes() == k.outputs[i].sizes(), InvalidArgument,
                  "gradient {} of block [{}] has shape [{}], its output has [{}]", i, fmt::join(ids, ", "),
                  fmt::join(grad_outputs[i].sizes(), "x"), fmt::join(k.outputs[i].sizes(), "x"));
    outs.push_back(k.outputs[i]);
    grads.push_back(grad_outputs[i].to(k.outputs[i].scalar_type()));
  }
  if (!outs.empty()) {
    at::AutoGradMode grad(true);
    torch::autograd::backward(outs, grads);
  }
  std::vector<at::Tensor> gin;
  for (auto& x : k.inputs) gin.push_back(x.requires_grad() && x.grad().defined() ? x.grad() : at::Tensor());
  m.stored -= k.bytes;
  m.kept.erase(it);
  return gin;
}

void TrainingNode::commit() {
  auto& m = *impl_;
  if (m.keep_gradients) {
    m.last_grads.clear();
    for (auto& [n, t] : m.params)
      if (t.grad().defined()) m.last_grads.emplace_back(n, t.grad().detach().clone());
  }
  if (!m.params.empty()) {
    at::NoGradGuard no_grad;
    m.optimizer->step();
  }
  m.reset_step();
  ++m.version;
}

void TrainingNode::discard() {
  auto& m = *impl_;
  m.reset_step();
}

uint64_t TrainingNode::version() const { return impl_->version; }
void TrainingNode::set_keep_gradients(bool keep) { impl_->keep_gradients = keep; }
NamedTensors TrainingNode::last_gradients() const { return impl_->last_grads; }
void TrainingNode::set_version(uint64_t v) { impl_->version = v; }
const std::vector<int>& TrainingNode::atoms() const { return impl_->atoms; }
int64_t TrainingNode::stored_bytes() const { return impl_->stored; }
int64_t TrainingNode::peak_stored_bytes() const { return impl_->peak; }

std::vector<std::string> TrainingNode::param_names() const {
  std::vector<std::string> out;
  for (auto& [n, t] : impl_->params) out.push_back(n);
  return out;
}

NamedTensors TrainingNode::state() const {
  NamedTensors out;
  for (auto& [n, t] : impl_->params) out.emplace_back(n, t.detach().clone());
  return out;
}

void TrainingNode::load_state(const NamedTensors& state) {
  auto& m = *impl_;
  at::NoGradGuard no_grad;
  for (const auto& [n, t] : state) {
    auto it = m.param_index.find(n);
    if (it == m.param_index.end()) continue;
    auto& p = m.params[it->second].second;
    TESSERA_CHECK(t.defined() && t.sizes() == p.sizes(), InvalidArgument,
                  "parameter {} has shape [{}], the state gives [{}]", n, fmt::join(p.sizes(), "x"),
                  t.defined() ? fmt::format("{}", fmt::join(t.sizes(), "x")) : "undefined");
    p.copy_(t);
  }
  m.reset_step();
  m.make_optimizer();  // fresh optimizer state (momentum, Adam's moments)
}

// ---- TrainingServer --------------------------------------------------------------------
struct TrainingServer::Impl {
  explicit Impl(Model m) : model(std::move(m)) {}
  std::string store_dir;
  TrainingServerOptions opt;
  Model model;
  std::array<uint8_t, 32> hash{};
  zmq::context_t ctx{1};
  std::thread thread;
  std::atomic<bool> running{false};
  std::string endpoint;
  mutable std::mutex mu;
  Stats stats;
  // the session
  std::string session;
  std::unique_ptr<TrainingNode> node;
  json open_optimizer;   // the session's optimizer, as opened
  uint64_t version = 0;  // the weights' version (survives sessions)

  TrainingNode& session_node(const json& cmd) {
    const auto s = cmd.at("session").get<std::string>();
    TESSERA_CHECK(node && s == session, InvalidArgument,
                  "session '{}' is not open here (the open one: '{}'; another trainer may have replaced it)", s,
                  session);
    return *node;
  }

  // One command -> (reply body, tensors). Throws what it rejects.
  std::pair<json, std::vector<at::Tensor>> handle(const json& cmd, std::vector<at::Tensor>& tensors) {
    const std::string op = cmd.at("op").get<std::string>();
    json out;
    std::vector<at::Tensor> ts;
    if (op == "status") {
    } else if (op == "open") {
      auto atoms = cmd.at("atoms").get<std::vector<int>>();
      auto o = optimizer_from_json(cmd.at("optimizer"));
      const auto s = cmd.at("session").get<std::string>();
      auto sorted = atoms;
      std::sort(sorted.begin(), sorted.end());
      sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
      if (node && s == session && node->atoms() == sorted && cmd.at("optimizer") == open_optimizer) {
        node->discard();  // the same trainer again (after a failed step): its optimizer's state stays
      } else {
        auto fresh = std::make_unique<TrainingNode>(model, atoms, o);
        fresh->set_version(version);
        node = std::move(fresh);  // replaces a previous session and its uncommitted gradients
        open_optimizer = cmd.at("optimizer");
      }
      node->set_keep_gradients(cmd.value("keep_gradients", false));
      session = s;
    } else if (op == "forward") {
      auto& n = session_node(cmd);
      ts = n.forward(cmd.at("mb").get<uint64_t>(), cmd.at("block").get<std::vector<int>>(), tensors,
                     cmd.value("keep", true));
      std::lock_guard<std::mutex> l(mu);
      ++stats.forwards;
    } else if (op == "backward") {
      auto& n = session_node(cmd);
      auto defined = cmd.at("defined").get<std::vector<int>>();
      std::vector<at::Tensor> grads;
      size_t next = 0;
      for (int d : defined) {
        if (d) {
          TESSERA_CHECK(next < tensors.size(), InvalidArgument, "backward: 'defined' names more tensors than sent");
          grads.push_back(tensors[next++]);
        } else {
          grads.emplace_back();
        }
      }
      TESSERA_CHECK(next == tensors.size(), InvalidArgument, "backward: {} tensors sent, 'defined' names {}",
                    tensors.size(), next);
      auto gin = n.backward(cmd.at("mb").get<uint64_t>(), cmd.at("block").get<std::vector<int>>(), grads);
      std::vector<int> d;
      for (auto& g : gin) {
        d.push_back(g.defined());
        if (g.defined()) ts.push_back(g);
      }
      out["defined"] = d;
      std::lock_guard<std::mutex> l(mu);
      ++stats.backwards;
    } else if (op == "commit") {
      auto& n = session_node(cmd);
      const auto v = cmd.at("version").get<uint64_t>();
      out["peak_stored_bytes"] = n.peak_stored_bytes();  // before the commit clears it
      if (v == version + 1) {
        n.commit();
        version = n.version();
        std::lock_guard<std::mutex> l(mu);
        ++stats.commits;
      } else {
        TESSERA_CHECK(v == version, InvalidArgument,
                      "commit of version {}: the weights here are at version {} (the trainer and this server "
                      "diverged)",
                      v, version);
      }
    } else if (op == "abort") {
      session_node(cmd).discard();
      std::lock_guard<std::mutex> l(mu);
      ++stats.aborts;
    } else if (op == "state" || op == "grads") {
      auto& n = session_node(cmd);
      std::vector<std::string> names;
      for (auto& [name, t] : op == "state" ? n.state() : n.last_gradients()) {
        names.push_back(name);
        ts.push_back(t);
      }
      out["names"] = names;
    } else if (op == "load") {
      auto& n = session_node(cmd);
      auto names = cmd.at("names").get<std::vector<std::string>>();
      TESSERA_CHECK(names.size() == tensors.size(), InvalidArgument, "load: {} names for {} tensors", names.size(),
                    tensors.size());
      NamedTensors st;
      for (size_t i = 0; i < names.size(); ++i) st.emplace_back(names[i], tensors[i]);
      n.load_state(st);
      version = cmd.at("version").get<uint64_t>();
      n.set_version(version);
    } else {
      TESSERA_THROW(InvalidArgument, "unknown training command '{}'", op);
    }
    out["version"] = version;
    return {out, ts};
  }

  void serve(zmq::socket_t& sock) {
    std::vector<zmq::message_t> frames;
    while (running.load()) {
      zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      if (!transport::receive(sock, frames)) break;
      // ROUTER: identity, (empty delimiter), then the message
      size_t first = 1;
      if (frames.size() > first && frames[first].size() == 0) ++first;
      Header rh;
      rh.type = MsgType::Error;
      std::string body;
      std::vector<at::Tensor> out;
      const auto t0 = Clock::now();
      std::string op = "?";
      try {
        Message msg = transport::decode_message(frames, first, opt.max_message_bytes);
        rh.request_id = msg.header.request_id;
        TESSERA_CHECK(msg.header.type == MsgType::Train, InvalidArgument,
                      "a training server answers Train messages only, got {}", transport::msg_type_name(msg.header.type));
        TESSERA_CHECK(msg.header.model_hash == hash, InvalidArgument,
                      "the message is for another model (this server trains {})", model.hash().substr(0, 12));
        json cmd;
        try {
          cmd = json::parse(msg.body);
        } catch (const std::exception& e) {
          TESSERA_THROW(InvalidArgument, "the command is not JSON: {}", e.what());
        }
        TESSERA_CHECK(cmd.is_object() && cmd.contains("op") && cmd["op"].is_string(), InvalidArgument,
                      "the command has no \"op\"");
        op = cmd["op"].get<std::string>();
        std::pair<json, std::vector<at::Tensor>> r;
        try {
          r = handle(cmd, msg.tensors);
        } catch (const json::exception& e) {
          TESSERA_THROW(InvalidArgument, "command '{}': {}", op, e.what());
        }
        body = r.first.dump();
        out = std::move(r.second);
        rh.type = MsgType::TrainReply;
      } catch (const std::exception& e) {
        body = e.what();
        out.clear();
        std::lock_guard<std::mutex> l(mu);
        ++stats.errors;
      }
      rh.server_ms = ms_since(t0);
      rh.model_hash = hash;
      if (opt.verbose) fmt::print(stderr, "tessera-train-server: {} {} in {:.2f} ms\n", op, transport::msg_type_name(rh.type), rh.server_ms);
      // reply: the identity frame, the delimiter if one came, the message
      try {
        sock.send(frames[0], zmq::send_flags::sndmore);
        transport::send_message(sock, rh, body, out, /*delimiter=*/first == 2);
      } catch (const std::exception& e) {
        fmt::print(stderr, "tessera-train-server: reply failed: {}\n", e.what());
      }
      std::lock_guard<std::mutex> l(mu);
      stats.version = version;
    }
  }
};

TrainingServer::TrainingServer(std::string store_dir, TrainingServerOptions options)
    : impl_(std::make_unique<Impl>(Model::open(store_dir, std::vector<int>{}))) {
  impl_->store_dir = store_dir;
  impl_->opt = options;
  TESSERA_CHECK(impl_->model.trainable(), InvalidArgument,
                "atom store {} is frozen (saved without trainable=True): its atoms hold their weights as constants",
                store_dir);
  impl_->hash = transport::hash_from_hex(impl_->model.hash());
}

TrainingServer::~TrainingServer() { stop(); }

void TrainingServer::start() {
  auto& m = *impl_;
  TESSERA_CHECK(!m.running.load(), InvalidArgument, "the training server is running already");
  if (m.opt.threads > 0) set_intra_op_threads(m.opt.threads);
  auto sock = std::make_shared<zmq::socket_t>(m.ctx, zmq::socket_type::router);
  sock->set(zmq::sockopt::linger, 0);
  try {
    sock->bind(m.opt.bind);
  } catch (const zmq::error_t& e) {
    TESSERA_THROW(InvalidArgument, "cannot bind the training server to {}: {}", m.opt.bind, e.what());
  }
  m.endpoint = sock->get(zmq::sockopt::last_endpoint);
  m.running = true;
  m.thread = std::thread([this, sock] { impl_->serve(*sock); });
}

void TrainingServer::stop() {
  auto& m = *impl_;
  if (!m.running.exchange(false)) return;
  if (m.thread.joinable()) m.thread.join();
}

std::string TrainingServer::endpoint() const { return impl_->endpoint; }

TrainingServer::Stats TrainingServer::stats() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->stats;
}

// ---- the device's client of one server ---------------------------------------------------
namespace {

struct Answer {
  json body;
  std::vector<at::Tensor> tensors;
  double server_ms = 0;
  uint64_t bytes_sent = 0, bytes_received = 0;
};

class RemoteNode {
 public:
  RemoteNode(zmq::context_t& ctx, std::string endpoint, std::array<uint8_t, 32> hash, int timeout_ms)
      : ctx_(ctx), endpoint_(std::move(endpoint)), hash_(hash), timeout_ms_(timeout_ms) {
    connect();
  }
  const std::string& endpoint() const { return endpoint_; }
  zmq::socket_t& socket() { return *sock_; }

  // Sends a command; returns its request id (the answer comes through take()).
  uint64_t send(const json& cmd, const std::vector<at::Tensor>& tensors, size_t* bytes) {
    Header h;
    h.type = MsgType::Train;
    h.request_id = ++next_id_;
    h.model_hash = hash_;
    bool sent = false;
    try {
      sent = transport::send_message(*sock_, h, cmd.dump(), tensors, /*delimiter=*/true, false, bytes);
    } catch (const zmq::error_t& e) {
      fail(fmt::format("sending '{}' failed: {}", cmd.value("op", "?"), e.what()));
    }
    if (!sent) fail(fmt::format("could not send '{}' (the server does not take messages)", cmd.value("op", "?")));
    return h.request_id;
  }

  // A received message for this node, decoded; false if nothing came within timeout_ms.
  bool receive(int timeout_ms, uint64_t& id, Answer& a) {
    zmq::pollitem_t item{sock_->handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms));
    if (!(item.revents & ZMQ_POLLIN)) return false;
    take(id, a);
    return true;
  }

  // Decodes the message waiting on the socket (poll said so).
  void take(uint64_t& id, Answer& a) {
    std::vector<zmq::message_t> frames;
    if (!transport::receive(*sock_, frames)) fail("the socket closed");
    size_t bytes = 0;
    for (auto& f : frames) bytes += f.size();
    Message msg;
    try {
      msg = transport::decode_message(frames, frames.size() > 0 && frames[0].size() == 0 ? 1 : 0, 1ull << 34);
    } catch (const std::exception& e) {
      fail(fmt::format("a malformed answer: {}", e.what()));
    }
    id = msg.header.request_id;
    if (msg.header.type == MsgType::Error) {
      TESSERA_THROW(Engine, "training server {} refused a command: {}", endpoint_, msg.body);
    }
    if (msg.header.type != MsgType::TrainReply) fail(fmt::format("an answer of type {}", transport::msg_type_name(msg.header.type)));
    try {
      a.body = json::parse(msg.body);
    } catch (const std::exception& e) {
      fail(fmt::format("an answer that is not JSON: {}", e.what()));
    }
    a.tensors = std::move(msg.tensors);
    a.server_ms = msg.header.server_ms;
    a.bytes_received = bytes;
  }

  // send + wait for its answer (nothing else may be outstanding).
  Answer call(const json& cmd, const std::vector<at::Tensor>& tensors = {}, int timeout_ms = -1) {
    size_t sent = 0;
    const uint64_t want = send(cmd, tensors, &sent);
    const auto t0 = Clock::now();
    const int limit = timeout_ms < 0 ? timeout_ms_ : timeout_ms;
    while (true) {
      const int left = limit - static_cast<int>(ms_since(t0));
      uint64_t id = 0;
      Answer a;
      if (left <= 0 || !receive(left, id, a)) {
        reset();
        TESSERA_THROW(Deadline, "training server {} did not answer '{}' within {} ms", endpoint_,
                      cmd.value("op", "?"), limit);
      }
      if (id == want) {
        a.bytes_sent = sent;
        return a;
      }
    }
  }

  // Drops the connection (late answers of an aborted step must not be taken for new ones).
  void reset() { connect(); }

  [[noreturn]] void fail(const std::string& why) {
    reset();
    TESSERA_THROW(Engine, "training server {}: {}", endpoint_, why);
  }

 private:
  void connect() {
    sock_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
    sock_->set(zmq::sockopt::linger, 0);
    sock_->set(zmq::sockopt::immediate, 1);
    sock_->set(zmq::sockopt::sndtimeo, timeout_ms_);
    try {
      sock_->connect(endpoint_);
    } catch (const zmq::error_t& e) {
      TESSERA_THROW(InvalidArgument, "cannot connect to training server '{}': {}", endpoint_, e.what());
    }
  }
  zmq::context_t& ctx_;
  std::string endpoint_;
  std::array<uint8_t, 32> hash_;
  int timeout_ms_;
  std::unique_ptr<zmq::socket_t> sock_;
  uint64_t next_id_ = 0;
};

}  // namespace

// ---- SplitTrainer ------------------------------------------------------------------------
struct SplitTrainer::Impl {
  explicit Impl(Model m) : model(std::move(m)) {}
  Model model;
  std::vector<int> placement;
  TrainerOptions opt;
  zmq::context_t ctx{1};
  std::unique_ptr<TrainingNode> local;
  std::vector<std::unique_ptr<RemoteNode>> remotes;  // remotes[k - 1] = node k
  std::string session;
  uint64_t version = 0;
  bool commit_unsure = false;  // a commit's answer was lost: resolved at the next step
  bool reopen = false;         // a step failed: a server may have restarted without the session
  void open_sessions();        // opens (again) the session on every server, checking versions
  struct Blk {
    std::vector<int> atoms, inputs, outputs;  // graph value ids
    int node = 0;
  };
  std::vector<Blk> blocks;
  int loss_value = -1;  // graph value id the loss reads
  std::array<uint8_t, 32> hash{};

  json cmd(const std::string& op) const { return {{"op", op}, {"session", session}}; }

  void abort_all() {
    reopen = true;
    for (auto& r : remotes) {
      try {
        r->reset();
        r->call(cmd("abort"), {}, std::min(opt.timeout_ms, 2000));
      } catch (const std::exception&) {  // best effort: a dead server has nothing to abort
      }
    }
    local->discard();
  }

  // After a commit that failed or whose answer was lost: where do the servers stand? None
  // stepped: the step did not happen (everyone discards). Some stepped: the step happened; the
  // others commit now (their gradients are still there), then the device.
  void resolve_commits() {
    if (!commit_unsure) return;
    std::vector<uint64_t> at;
    bool any_next = false;
    for (auto& r : remotes) {
      at.push_back(r->call(cmd("status")).body.at("version").get<uint64_t>());
      TESSERA_CHECK(at.back() == version || at.back() == version + 1, Engine,
                    "training server {} is at version {} after a failed commit, the device at {}: restore the weights "
                    "with load_state_dict",
                    r->endpoint(), at.back(), version);
      any_next |= at.back() == version + 1;
    }
    if (!any_next) {
      abort_all();
    } else {
      for (size_t r = 0; r < remotes.size(); ++r) {
        if (at[r] != version) continue;
        auto c = cmd("commit");
        c["version"] = version + 1;
        remotes[r]->call(c);
      }
      local->commit();  // with the gradients it kept
      version = local->version();
    }
    commit_unsure = false;
  }
};

SplitTrainer::SplitTrainer(Model model, std::vector<int> placement, TrainerOptions options)
    : impl_(std::make_unique<Impl>(model)) {
  auto& m = *impl_;
  TESSERA_CHECK(model.trainable(), InvalidArgument,
                "model {} was not loaded trainable: a frozen model holds its weights as constants (load it with "
                "trainable=True)",
                model.hash().substr(0, 12));
  options.optimizer.check();
  TESSERA_CHECK(options.loss == "cross_entropy" || options.loss == "mse", InvalidArgument,
                "loss '{}' is unknown (known: cross_entropy, mse)", options.loss);
  TESSERA_CHECK(options.labels_on == "device" || options.labels_on == "server", InvalidArgument,
                "labels_on must be 'device' or 'server', got '{}'", options.labels_on);
  TESSERA_CHECK(options.schedule == "gpipe" || options.schedule == "1f1b", InvalidArgument,
                "schedule '{}' is unknown (known: gpipe, 1f1b)", options.schedule);
  TESSERA_CHECK(options.micro_batches >= 1, InvalidArgument, "micro_batches must be >= 1, got {}",
                options.micro_batches);
  TESSERA_CHECK(options.timeout_ms > 0, InvalidArgument, "timeout_ms must be > 0, got {}", options.timeout_ms);
  TESSERA_CHECK(options.max_in_flight >= 0, InvalidArgument, "max_in_flight must be >= 0 (0: the schedule's), got {}",
                options.max_in_flight);
  const int num_nodes = static_cast<int>(options.servers.size()) + 1;
  check_placement(model.dag(), placement, num_nodes);
  const auto& outs = model.graph().outputs;
  TESSERA_CHECK(options.output < static_cast<int>(outs.size()), InvalidArgument,
                "output {} does not exist: the model has {} outputs", options.output, outs.size());
  TESSERA_CHECK(options.output >= 0 || outs.size() == 1, InvalidArgument,
                "the model has {} outputs: say which one the loss reads (output=0..{})", outs.size(), outs.size() - 1);
  m.loss_value = outs[options.output < 0 ? 0 : options.output];
  m.placement = placement;
  m.opt = options;
  m.hash = transport::hash_from_hex(model.hash());
  // the blocks, in execution order (their graph-value interfaces from a lazy schedule)
  std::vector<std::vector<int>> groups;
  std::vector<int> nodes;
  for (auto& b : schedule_blocks(model.dag(), placement)) {
    groups.push_back(b.atoms);
    nodes.push_back(b.target);
  }
  Schedule sch = model.schedule(groups);
  for (size_t i = 0; i < groups.size(); ++i) {
    Block b = sch.block(i);
    m.blocks.push_back({b.atoms(), b.inputs(), b.outputs(), nodes[i]});
  }
  const int producer = model.graph().values[m.loss_value].producer;
  const int out_atom = producer >= 0 ? model.graph().nodes[producer].atom : -1;
  if (options.labels_on == "device" && out_atom >= 0)
    TESSERA_CHECK(placement[out_atom] == 0, InvalidArgument,
                  "labels_on='device' needs the loss's output '{}' made on the device (a U-shaped split: the labels "
                  "and the logits' gradient stay there), but its atom {} runs on node {}; place it on the device or "
                  "pass labels_on='server'",
                  model.graph().values[m.loss_value].name, out_atom, placement[out_atom]);
  // parameters shared by atoms on two nodes would be two copies stepping apart
  std::map<std::string, int> holder;
  for (int a = 0; a < model.num_atoms(); ++a)
    for (const auto& p : model.atoms()[a].params) {
      auto [it, fresh] = holder.emplace(p, placement[a]);
      TESSERA_CHECK(fresh || it->second == placement[a], Unsupported,
                    "parameter {} is used by atoms on node {} and node {} (tied weights): place those atoms on one node",
                    p, it->second, placement[a]);
    }
  std::vector<int> local_atoms;
  for (int a = 0; a < model.num_atoms(); ++a)
    if (placement[a] == 0) local_atoms.push_back(a);
  m.local = std::make_unique<TrainingNode>(model, local_atoms, options.optimizer);
  m.local->set_keep_gradients(options.keep_gradients);
  m.session = fmt::format("{:016x}", std::hash<std::string>()(fmt::format(
                                         "{}{}", static_cast<const void*>(this),
                                         std::chrono::steady_clock::now().time_since_epoch().count())));
  for (int k = 1; k < num_nodes; ++k)
    m.remotes.push_back(std::make_unique<RemoteNode>(m.ctx, options.servers[k - 1], m.hash, options.timeout_ms));
  m.open_sessions();
}

void SplitTrainer::Impl::open_sessions() {
  for (size_t k = 1; k <= remotes.size(); ++k) {
    std::vector<int> atoms;
    for (int a = 0; a < model.num_atoms(); ++a)
      if (placement[a] == static_cast<int>(k)) atoms.push_back(a);
    auto c = cmd("open");
    c["atoms"] = atoms;
    c["optimizer"] = optimizer_json(opt.optimizer);
    c["keep_gradients"] = opt.keep_gradients;
    auto a = remotes[k - 1]->call(c);
    const auto v = a.body.at("version").get<uint64_t>();
    TESSERA_CHECK(v == version, Engine,
                  "training server {} holds weights of version {}, this trainer's are at version {}: restart it from "
                  "the store, or set its weights with load_state_dict",
                  remotes[k - 1]->endpoint(), v, version);
  }
  reopen = false;
}

SplitTrainer::~SplitTrainer() = default;

uint64_t SplitTrainer::version() const { return impl_->version; }
const std::vector<int>& SplitTrainer::placement() const { return impl_->placement; }
std::vector<std::pair<std::vector<int>, int>> SplitTrainer::blocks() const {
  std::vector<std::pair<std::vector<int>, int>> out;
  for (auto& b : impl_->blocks) out.emplace_back(b.atoms, b.node);
  return out;
}

namespace {
// What the device knows of one micro-batch during a step.
struct MicroBatch {
  std::map<int, at::Tensor> env;   // graph value -> forward value
  std::map<int, at::Tensor> grad;  // graph value -> accumulated gradient
  size_t next_f = 0;               // next block to run forward
  int next_b = -1;                 // next block to run backward (counting down); -1 before the loss
  bool waiting = false;            // a remote task of it is out
  bool loss_done = false, done = false;
};
}  // namespace

StepStats SplitTrainer::step(const std::vector<at::Tensor>& inputs, const at::Tensor& labels) {
  auto& m = *impl_;
  const auto& g = m.model.graph();
  TESSERA_CHECK(inputs.size() == g.inputs.size(), InvalidArgument, "the model takes {} inputs, got {}",
                g.inputs.size(), inputs.size());
  TESSERA_CHECK(labels.defined(), InvalidArgument, "labels are undefined");
  const int64_t B = inputs.empty() ? 0 : inputs[0].dim() > 0 ? inputs[0].size(0) : 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    TESSERA_CHECK(inputs[i].defined() && inputs[i].dim() > 0 && inputs[i].size(0) == B, InvalidArgument,
                  "input {} must be a tensor with the batch ({}) as its first dimension", i, B);
    TESSERA_CHECK(dtype_name(inputs[i].scalar_type()) == g.values[g.inputs[i]].info.dtype, InvalidArgument,
                  "input {} '{}' has dtype {}, the model expects {}", i, g.values[g.inputs[i]].name,
                  dtype_name(inputs[i].scalar_type()), g.values[g.inputs[i]].info.dtype);
  }
  const int M = m.opt.micro_batches;
  TESSERA_CHECK(B >= M && B % M == 0, InvalidArgument, "a batch of {} does not divide into {} micro-batches", B, M);
  TESSERA_CHECK(labels.dim() > 0 && labels.size(0) == B, InvalidArgument,
                "labels have shape [{}]: their first dimension must be the batch ({})", fmt::join(labels.sizes(), "x"), B);
  if (m.opt.loss == "cross_entropy")
    TESSERA_CHECK(labels.dim() == 1 && labels.scalar_type() == at::kLong, InvalidArgument,
                  "cross_entropy labels must be int64 class ids of shape [{}], got {} [{}]", B,
                  dtype_name(labels.scalar_type()), fmt::join(labels.sizes(), "x"));
  m.resolve_commits();
  if (m.reopen) m.open_sessions();  // after a failure: the servers may have restarted

  const auto t0 = Clock::now();
  StepStats st;
  const int N = static_cast<int>(m.remotes.size()) + 1;
  st.forward_ms.assign(N, 0);
  st.backward_ms.assign(N, 0);
  const int K = static_cast<int>(m.blocks.size());
  std::vector<MicroBatch> mbs(M);
  auto xs = std::vector<std::vector<at::Tensor>>(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) xs[i] = inputs[i].chunk(M, 0);
  auto ys = labels.chunk(M, 0);
  for (int i = 0; i < M; ++i)
    for (size_t j = 0; j < inputs.size(); ++j) mbs[i].env[g.inputs[j]] = xs[j][i].contiguous();
  const bool gpipe = m.opt.schedule == "gpipe";
  const int max_in_flight = m.opt.max_in_flight > 0 ? m.opt.max_in_flight : gpipe ? M : std::max(1, K);
  int started = 0, finished = 0, forwards_done = 0;
  double loss_total = 0;
  // remote tasks out: request id per node -> (micro-batch, block, backward?, event index)
  struct Out {
    int mb, block;
    bool backward;
    size_t event;
  };
  std::vector<std::map<uint64_t, Out>> out(N);
  size_t outstanding = 0;

  auto input_values = [&](MicroBatch& b, const Impl::Blk& blk) {
    std::vector<at::Tensor> v;
    for (int id : blk.inputs) {
      auto it = b.env.find(id);
      TESSERA_CHECK(it != b.env.end(), Engine, "value {} is not available for block [{}]", id, fmt::join(blk.atoms, ", "));
      v.push_back(it->second);
    }
    return v;
  };
  auto grads_of = [&](MicroBatch& b, const Impl::Blk& blk, std::vector<int>* defined) {
    std::vector<at::Tensor> v;
    for (int id : blk.outputs) {
      auto it = b.grad.find(id);
      at::Tensor t = it == b.grad.end() ? at::Tensor() : it->second;
      if (defined) defined->push_back(t.defined());
      v.push_back(t);
    }
    return v;
  };
  auto after_forward = [&](int i, int k, std::vector<at::Tensor> outs) {
    auto& b = mbs[i];
    const auto& blk = m.blocks[k];
    for (size_t j = 0; j < blk.outputs.size(); ++j) b.env[blk.outputs[j]] = outs[j];
    b.next_f = k + 1;
    if (b.next_f == static_cast<size_t>(K)) ++forwards_done;
  };
  auto after_backward = [&](int i, int k, const std::vector<at::Tensor>& gin) {
    auto& b = mbs[i];
    const auto& blk = m.blocks[k];
    for (size_t j = 0; j < blk.inputs.size(); ++j) {
      if (!gin[j].defined()) continue;
      auto& acc = b.grad[blk.inputs[j]];
      acc = acc.defined() ? acc + gin[j] : gin[j];
    }
    for (int id : blk.outputs) b.grad.erase(id);
    b.next_b = k - 1;
    if (b.next_b < 0) {
      b.done = true;
      b.env.clear();
      b.grad.clear();
      ++finished;
    }
  };
  auto event = [&](int node, int mb, int block, char kind) {
    TrainEvent e;
    e.node = node;
    e.micro_batch = mb;
    e.block = block;
    e.kind = kind;
    e.start_ms = ms_since(t0);
    st.events.push_back(e);
    return st.events.size() - 1;
  };
  auto run_loss = [&](int i) {
    auto& b = mbs[i];
    const size_t ev = event(0, i, -1, 'L');
    at::Tensor logits = b.env.at(m.loss_value).detach().requires_grad_(true);
    at::Tensor loss;
    {
      at::AutoGradMode grad(true);
      if (m.opt.loss == "cross_entropy") {
        TESSERA_CHECK(logits.dim() == 2 && logits.size(0) == ys[i].size(0), InvalidArgument,
                      "cross_entropy reads [batch, classes] scores, output '{}' has shape [{}]",
                      g.values[m.loss_value].name, fmt::join(logits.sizes(), "x"));
        loss = at::cross_entropy_loss(logits, ys[i], {}, at::Reduction::Sum) / static_cast<double>(B);
      } else {
        TESSERA_CHECK(ys[i].sizes() == logits.sizes(), InvalidArgument,
                      "mse labels of a micro-batch have shape [{}], the output '{}' has [{}]",
                      fmt::join(ys[i].sizes(), "x"), g.values[m.loss_value].name, fmt::join(logits.sizes(), "x"));
        loss = (logits - ys[i].to(logits.scalar_type())).pow(2).sum() / static_cast<double>(labels.numel());
      }
      loss.backward();
    }
    loss_total += loss.item<double>();
    auto& acc = b.grad[m.loss_value];
    acc = acc.defined() ? acc + logits.grad() : logits.grad();
    b.loss_done = true;
    b.next_b = K - 1;
    st.events[ev].end_ms = ms_since(t0);
    st.events[ev].compute_ms = st.events[ev].end_ms - st.events[ev].start_ms;
  };
  // Starts task (i, k) forward or backward: locally now, or sent to its server.
  auto start = [&](int i, int k, bool backward) {
    auto& b = mbs[i];
    const auto& blk = m.blocks[k];
    const size_t ev = event(blk.node, i, k, backward ? 'B' : 'F');
    if (blk.node == 0) {
      const auto c0 = Clock::now();
      if (!backward) {
        after_forward(i, k, m.local->forward(i, blk.atoms, input_values(b, blk)));
      } else {
        after_backward(i, k, m.local->backward(i, blk.atoms, grads_of(b, blk, nullptr)));
      }
      const double ms = ms_since(c0);
      (backward ? st.backward_ms : st.forward_ms)[0] += ms;
      st.events[ev].end_ms = ms_since(t0);
      st.events[ev].compute_ms = ms;
      return;
    }
    auto c = m.cmd(backward ? "backward" : "forward");
    c["mb"] = i;
    c["block"] = blk.atoms;
    std::vector<at::Tensor> ts;
    if (!backward) {
      ts = input_values(b, blk);
    } else {
      std::vector<int> defined;
      for (auto& t : grads_of(b, blk, &defined))
        if (t.defined()) ts.push_back(t);
      c["defined"] = defined;
    }
    size_t sent = 0;
    const uint64_t id = m.remotes[blk.node - 1]->send(c, ts, &sent);
    st.events[ev].bytes_sent = sent;
    st.bytes_sent += sent;
    out[blk.node][id] = {i, k, backward, ev};
    b.waiting = true;
    ++outstanding;
  };
  // Takes one answer from any server (waiting up to the timeout).
  auto take_answer = [&]() {
    std::vector<zmq::pollitem_t> items;
    for (auto& r : m.remotes) items.push_back({r->socket().handle(), 0, ZMQ_POLLIN, 0});
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(m.opt.timeout_ms));
    bool any = false;
    for (size_t r = 0; r < items.size(); ++r) {
      if (!(items[r].revents & ZMQ_POLLIN)) continue;
      any = true;
      uint64_t id = 0;
      Answer a;
      m.remotes[r]->take(id, a);
      auto it = out[r + 1].find(id);
      if (it == out[r + 1].end()) continue;  // a late answer of something aborted
      const Out o = it->second;
      out[r + 1].erase(it);
      --outstanding;
      mbs[o.mb].waiting = false;
      auto& e = st.events[o.event];
      e.end_ms = ms_since(t0);
      e.compute_ms = a.server_ms;
      e.bytes_received = a.bytes_received;
      st.bytes_received += a.bytes_received;
      (o.backward ? st.backward_ms : st.forward_ms)[r + 1] += a.server_ms;
      if (!o.backward) {
        TESSERA_CHECK(a.tensors.size() == m.blocks[o.block].outputs.size(), Engine,
                      "training server {} answered a forward with {} tensors, the block has {} outputs",
                      m.remotes[r]->endpoint(), a.tensors.size(), m.blocks[o.block].outputs.size());
        after_forward(o.mb, o.block, std::move(a.tensors));
      } else {
        auto defined = a.body.at("defined").get<std::vector<int>>();
        std::vector<at::Tensor> gin;
        size_t next = 0;
        for (int d : defined) gin.push_back(d && next < a.tensors.size() ? a.tensors[next++] : at::Tensor());
        TESSERA_CHECK(gin.size() == m.blocks[o.block].inputs.size(), Engine,
                      "training server {} answered a backward with {} gradients, the block has {} inputs",
                      m.remotes[r]->endpoint(), gin.size(), m.blocks[o.block].inputs.size());
        after_backward(o.mb, o.block, gin);
      }
    }
    if (!any) {
      std::set<std::string> late;
      for (int n = 1; n < N; ++n)
        if (!out[n].empty()) late.insert(m.remotes[n - 1]->endpoint());
      TESSERA_THROW(Deadline, "training server {} did not answer within {} ms (step aborted; no weight moved)",
                    fmt::join(late, ", "), m.opt.timeout_ms);
    }
  };

  try {
    while (finished < M) {
      // the next task by the schedule's rule: a backward first under 1F1B, a forward first under
      // GPipe (whose backwards wait for every forward)
      int pick = -1;
      bool pick_backward = false;
      auto want_backward = [&]() {
        for (int i = 0; i < M; ++i) {
          auto& b = mbs[i];
          if (b.done || b.waiting) continue;
          if (!b.loss_done && b.next_f == static_cast<size_t>(K)) {
            run_loss(i);  // the loss is the device's, right after the last forward
          }
          // GPipe: backwards once every forward ran - or once no further forward may start (the
          // in-flight bound): then it runs groups of max_in_flight micro-batches
          if (b.loss_done && b.next_b >= 0 &&
              (!gpipe || (forwards_done == started && (started == M || started - finished >= max_in_flight)))) {
            pick = i, pick_backward = true;
            return true;
          }
        }
        return false;
      };
      auto want_forward = [&]() {
        for (int i = 0; i < M; ++i) {
          auto& b = mbs[i];
          if (b.done || b.waiting || b.next_f >= static_cast<size_t>(K)) continue;
          if (b.next_f == 0 && started - finished >= max_in_flight) continue;
          pick = i, pick_backward = false;
          return true;
        }
        return false;
      };
      if (gpipe ? (want_forward() || want_backward()) : (want_backward() || want_forward())) {
        auto& b = mbs[pick];
        if (!pick_backward && b.next_f == 0) ++started;
        start(pick, pick_backward ? b.next_b : static_cast<int>(b.next_f), pick_backward);
        continue;
      }
      TESSERA_CHECK(outstanding > 0, Engine, "the training schedule stalled ({} of {} micro-batches done)", finished, M);
      take_answer();
    }
  } catch (...) {
    m.abort_all();
    throw;
  }
  st.device_peak_stored_bytes = m.local->peak_stored_bytes();
  st.peak_stored_bytes.assign(N, 0);
  st.peak_stored_bytes[0] = st.device_peak_stored_bytes;
  // commits: the servers, then the device
  for (size_t r = 0; r < m.remotes.size(); ++r) {
    auto c = m.cmd("commit");
    c["version"] = m.version + 1;
    try {
      auto a = m.remotes[r]->call(c);
      st.peak_stored_bytes[r + 1] = a.body.value("peak_stored_bytes", int64_t{0});
    } catch (const std::exception& e) {
      // the commit may have been applied with its answer lost: the next step asks every server's
      // version and finishes or drops the step everywhere (resolve_commits)
      m.commit_unsure = true;
      m.reopen = true;
      throw;
    }
  }
  m.local->commit();
  m.version = m.local->version();
  st.version = m.version;
  st.loss = loss_total;
  st.wall_ms = ms_since(t0);
  return st;
}

at::Tensor SplitTrainer::predict(const std::vector<at::Tensor>& inputs) {
  auto& m = *impl_;
  m.model.check_inputs(inputs);
  std::map<int, at::Tensor> env;
  for (size_t j = 0; j < inputs.size(); ++j) env[m.model.graph().inputs[j]] = inputs[j];
  try {
    for (size_t k = 0; k < m.blocks.size(); ++k) {
      const auto& blk = m.blocks[k];
      std::vector<at::Tensor> in;
      for (int id : blk.inputs) in.push_back(env.at(id));
      std::vector<at::Tensor> outs;
      if (blk.node == 0) {
        outs = m.local->forward(0, blk.atoms, in, /*keep=*/false);
      } else {
        auto c = m.cmd("forward");
        c["mb"] = 0;
        c["block"] = blk.atoms;
        c["keep"] = false;
        outs = m.remotes[blk.node - 1]->call(c, in).tensors;
      }
      for (size_t j = 0; j < blk.outputs.size(); ++j) env[blk.outputs[j]] = outs.at(j);
    }
  } catch (...) {
    m.abort_all();
    throw;
  }
  return env.at(m.loss_value);
}

NamedTensors SplitTrainer::gradients() {
  TESSERA_CHECK(impl_->opt.keep_gradients, InvalidArgument,
                "the trainer keeps no gradients: make it with keep_gradients=True");
  return gather("grads");
}

NamedTensors SplitTrainer::state_dict() { return gather("state"); }

NamedTensors SplitTrainer::gather(const std::string& op) {
  auto& m = *impl_;
  NamedTensors all = op == "state" ? m.local->state() : m.local->last_gradients();
  for (auto& r : m.remotes) {
    auto a = r->call(m.cmd(op));
    auto names = a.body.at("names").get<std::vector<std::string>>();
    TESSERA_CHECK(names.size() == a.tensors.size(), Engine, "training server {} sent {} names for {} tensors",
                  r->endpoint(), names.size(), a.tensors.size());
    for (size_t i = 0; i < names.size(); ++i) all.emplace_back(names[i], a.tensors[i].clone());
  }
  return all;
}

void SplitTrainer::load_state_dict(const NamedTensors& state) {
  auto& m = *impl_;
  std::map<std::string, at::Tensor> by_name(state.begin(), state.end());
  for (const auto& a : m.model.atoms())
    for (const auto& n : a.params) TESSERA_CHECK(by_name.count(n), InvalidArgument, "the state has no parameter {}", n);
  for (auto& r : m.remotes) {
    auto c = m.cmd("load");
    std::vector<std::string> names;
    std::vector<at::Tensor> ts;
    for (auto& [n, t] : state) {
      names.push_back(n);
      ts.push_back(t.detach().contiguous());
    }
    c["names"] = names;
    c["version"] = m.version;
    r->call(c, ts);
  }
  m.local->load_state(state);
  m.local->set_version(m.version);
  m.commit_unsure = false;
}

}  // namespace tessera::runtime
