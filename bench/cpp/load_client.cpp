// bench/cpp/load_client.cpp -- one emulated device of the server load benchmark
// (bench/bench_server.py starts many of these as separate processes). Not part of the library.
//
//   tessera-bench-client ENDPOINT SPEC_DIR CLIENT_ID SECONDS [--timeout-ms N] [--think-ms X] [--fallback-ms X]
//                        [--ping]
//
// SPEC_DIR (written by bench_server.py): spec.txt with lines
//   hash HEX            the model's hash
//   atoms A B C ...     the server block's atoms
//   inputs K            K input/expected pairs: in_<k>.bin / out_<k>.bin (raw float32)
//   in_shape D0 D1 ...  out_shape D0 D1 ...
// A closed loop with its own DEALER: send a Request of input (CLIENT_ID + i) mod K, wait for
// its answer (up to timeout_ms), check a Reply against the expected output (bit-identical,
// or within rtol 1e-4 / atol 1e-5, else wrong), note a Busy and the time it took to come
// back (when a device would start running the block itself; it then sleeps fallback_ms, the
// device's own time for the block), then think_ms, and again,
// until SECONDS have passed. Prints one JSON object: counts, latencies and send times.
// --ping: Pings instead (the transport's own round trip under the same load), in latency_ms.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "tessera/core/error.h"
#include "tessera/transport/message.h"

namespace {
using namespace tessera;
using namespace tessera::transport;
using Clock = std::chrono::steady_clock;

at::Tensor read_tensor(const std::string& path, const std::vector<int64_t>& shape) {
  std::ifstream f(path, std::ios::binary);
  TESSERA_CHECK(f.good(), NotFound, "cannot read {}", path);
  at::Tensor t = at::empty(shape, at::kFloat);
  f.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  TESSERA_CHECK(f.gcount() == static_cast<std::streamsize>(t.nbytes()), InvalidArgument,
                "{} holds {} bytes, shape [{}] needs {}", path, f.gcount(), fmt::join(shape, ", "), t.nbytes());
  return t;
}

std::string list(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += fmt::format("{}{:.3f}", i ? ", " : "", v[i]);
  return s + "]";
}
}  // namespace

int main(int argc, char** argv) {
  try {
    TESSERA_CHECK(argc >= 5, InvalidArgument,
                  "usage: tessera-bench-client ENDPOINT SPEC_DIR CLIENT_ID SECONDS [--timeout-ms N] [--think-ms X] "
                  "[--fallback-ms X]");
    const std::string endpoint = argv[1], dir = argv[2];
    const uint64_t client = std::stoull(argv[3]);
    const double seconds = std::stod(argv[4]);
    int timeout_ms = 10000;
    double think_ms = 0, fallback_ms = 0;
    bool ping = false;
    for (int i = 5; i < argc; i += 2) {
      const std::string a = argv[i];
      if (a == "--ping") {
        ping = true;
        --i;
        continue;
      }
      TESSERA_CHECK(i + 1 < argc, InvalidArgument, "{} needs a value", a);
      if (a == "--timeout-ms") timeout_ms = std::stoi(argv[i + 1]);
      else if (a == "--think-ms") think_ms = std::stod(argv[i + 1]);
      else if (a == "--fallback-ms") fallback_ms = std::stod(argv[i + 1]);
      else TESSERA_THROW(InvalidArgument, "unknown option {}", a);
    }
    at::set_num_threads(1);
    std::ifstream spec(dir + "/spec.txt");
    TESSERA_CHECK(spec.good(), NotFound, "no {}/spec.txt", dir);
    std::string hash;
    std::vector<int> atoms;
    std::vector<int64_t> in_shape, out_shape;
    int k_inputs = 0;
    for (std::string line; std::getline(spec, line);) {
      std::istringstream ls(line);
      std::string key;
      ls >> key;
      if (key == "hash") ls >> hash;
      else if (key == "atoms") for (int a; ls >> a;) atoms.push_back(a);
      else if (key == "inputs") ls >> k_inputs;
      else if (key == "in_shape") for (int64_t d; ls >> d;) in_shape.push_back(d);
      else if (key == "out_shape") for (int64_t d; ls >> d;) out_shape.push_back(d);
    }
    TESSERA_CHECK(!hash.empty() && !atoms.empty() && k_inputs > 0, InvalidArgument, "{}/spec.txt is incomplete", dir);
    std::vector<at::Tensor> ins, outs;
    for (int k = 0; k < k_inputs; ++k) {
      ins.push_back(read_tensor(fmt::format("{}/in_{}.bin", dir, k), in_shape));
      outs.push_back(read_tensor(fmt::format("{}/out_{}.bin", dir, k), out_shape));
    }
    const std::string body = encode_atoms(atoms);
    zmq::context_t ctx(1);
    auto connect = [&] {
      zmq::socket_t s(ctx, zmq::socket_type::dealer);
      s.set(zmq::sockopt::linger, 0);
      s.connect(endpoint);
      return s;
    };
    zmq::socket_t sock = connect();
    uint64_t sent = 0, ok = 0, identical = 0, wrong = 0, busy = 0, errors = 0, timeouts = 0;
    double max_diff = 0;
    std::vector<double> latency, busy_ms, t_sent, t_busy;
    std::string first_error;
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    for (uint64_t i = 0; Clock::now() < end; ++i) {
      const int k = static_cast<int>((client + i) % static_cast<uint64_t>(k_inputs));
      Header h;
      h.type = ping ? MsgType::Ping : MsgType::Request;
      h.request_id = (client << 32) | (i + 1);
      h.model_hash = hash_from_hex(hash);
      h.atom_count = static_cast<uint32_t>(atoms.size());
      h.budget_us = int64_t{timeout_ms} * 1000;
      const auto t0 = Clock::now();
      if (ping) send_message(sock, h, "", {}, true);
      else send_message(sock, h, body, {ins[static_cast<size_t>(k)]}, true);
      ++sent;
      const double at_ms = std::chrono::duration<double, std::milli>(t0 - start).count();
      bool answered = false;
      while (!answered) {
        zmq::pollitem_t item{static_cast<void*>(sock), 0, ZMQ_POLLIN, 0};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            t0 + std::chrono::milliseconds(timeout_ms) - Clock::now());
        if (left.count() <= 0 || zmq::poll(&item, 1, left) <= 0) break;
        std::vector<zmq::message_t> frames;
        if (!zmq::recv_multipart(sock, std::back_inserter(frames), zmq::recv_flags::dontwait)) continue;
        Message m = decode_message(frames, 1, 1ull << 32);
        if (m.header.request_id != h.request_id) continue;  // a late answer to an earlier request
        answered = true;
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (m.header.type == MsgType::Pong) {
          ++ok;
          latency.push_back(ms);
          t_sent.push_back(at_ms);
        } else if (m.header.type == MsgType::Busy) {
          ++busy;
          busy_ms.push_back(ms);
          t_busy.push_back(at_ms);
          if (fallback_ms > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(fallback_ms));
        } else if (m.header.type == MsgType::Reply && m.tensors.size() == 1) {
          const at::Tensor& y = m.tensors[0];
          const at::Tensor& want = outs[static_cast<size_t>(k)];
          if (y.sizes() != want.sizes() || !at::allclose(y, want, 1e-4, 1e-5)) {
            ++wrong;
          } else {
            ++ok;
            identical += at::equal(y, want);
            max_diff = std::max(max_diff, (y - want).abs().max().item<double>());
            latency.push_back(ms);
            t_sent.push_back(at_ms);
          }
        } else {
          ++errors;
          if (first_error.empty()) first_error = m.body.substr(0, 200);
        }
      }
      if (!answered) {
        ++timeouts;
        sock = connect();  // a late reply must never be taken for a later request's
      }
      if (think_ms > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(think_ms));
    }
    for (auto& c : first_error)
      if (c == '"' || c == '\\' || c < 32) c = ' ';
    std::printf(
        "{\"client\": %llu, \"sent\": %llu, \"ok\": %llu, \"identical\": %llu, \"wrong\": %llu, \"busy\": %llu, "
        "\"errors\": %llu, \"timeouts\": %llu, \"max_abs_diff\": %.3g, \"first_error\": \"%s\", \"latency_ms\": %s, "
        "\"t_ms\": %s, \"busy_ms\": %s, \"t_busy_ms\": %s}\n",
        (unsigned long long)client, (unsigned long long)sent, (unsigned long long)ok, (unsigned long long)identical,
        (unsigned long long)wrong, (unsigned long long)busy, (unsigned long long)errors, (unsigned long long)timeouts,
        max_diff, first_error.c_str(), list(latency).c_str(), list(t_sent).c_str(), list(busy_ms).c_str(),
        list(t_busy).c_str());
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "tessera-bench-client: error: %s\n", e.message().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tessera-bench-client: error: %s\n", e.what());
    return 1;
  }
}
